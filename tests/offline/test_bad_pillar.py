"""A bad pillar is rejected by trash.render, state.show_highstate and state.apply test=True:
one message naming every problem's key, no traceback, nothing written.

Each kind is a copy of pillar/ with its YAML changed. The salt-calls of all kinds run
concurrently (each with its own cache directory) and the tests read their results.
"""

import concurrent.futures
import json
import os

import pytest
import saltcli


def _third_node(trash):
    trash["nodes"]["node3"] = {
        "nodeid": 3, "disk": "/dev/sda",
        "addresses": {"internet": "192.0.2.13/24", "storage": "10.10.1.3/24",
                      "backchannel": "10.10.2.3/24", "ipmi": "10.10.4.9/30",
                      "serial": "10.10.5.5/30"},
        "bmc": {"address": "10.10.4.10", "username": "fence", "password": "x"}}


# kind: (change to the example pillar, [(key, part of its message)])
KINDS = {
    "guest-home-not-a-node": (
        lambda t: t["guests"]["stinky"].update(home="node3"),
        [("trash:guests:stinky:home", "'node3' is not a member of trash:nodes")]),
    "duplicate-ip": (
        lambda t: t["nodes"]["node2"]["addresses"].update(storage="10.10.1.1/24"),
        [("trash:nodes:node2:addresses:storage", "10.10.1.1 is also used")]),
    "duplicate-drbd-minor": (
        lambda t: t["drbd"]["resources"]["mirror2"].update(minor=1),
        [("trash:drbd:resources:mirror2:minor", "minor 1 is also used by mirror1")]),
    "duplicate-drbd-port": (
        lambda t: t["drbd"]["resources"]["mirror2"].update(port=7789),
        [("trash:drbd:resources:mirror2:port", "port 7789 is also used by mirror1")]),
    "vlan-0": (
        lambda t: t["network"]["vlans"].update({0: {"bridge": "vbr0x"}}),
        [("trash:network:vlans:0", "outside 1-4094")]),
    "vlan-4095": (
        lambda t: t["network"]["vlans"].update({4095: {"bridge": "vbr4095"}}),
        [("trash:network:vlans:4095", "outside 1-4094")]),
    "bridge-twice": (
        lambda t: t["network"]["vlans"].update({102: {"bridge": "vbr1"}}),
        [("trash:network:vlans:102:bridge", "bridge vbr1 is already defined")]),
    "drbd-partition-missing": (
        lambda t: t["storage"]["partitions"].pop(8),
        [("trash:drbd:resources:mirror2:partition", "partition 8 is missing")]),
    "two-resources-one-partition": (
        lambda t: t["drbd"]["resources"]["mirror2"].update(partition=7),
        [("trash:drbd:resources:mirror2:partition", "also the backing device of mirror1")]),
    "failover-guest-on-local-storage": (
        lambda t: t["guests"]["knox"].update(failover=True),
        [("trash:guests:knox:failover", "cannot fail over")]),
    "priority-node-not-a-member": (
        lambda t: t["cluster"].update(priority_node="node3"),
        [("trash:cluster:priority_node", "'node3' is not a member of trash:nodes")]),
    "node-without-bmc": (
        lambda t: t["nodes"]["node2"].pop("bmc"),
        [("trash:nodes:node2:bmc", "missing")]),
    "three-nodes-with-two-node": (
        _third_node,
        [("trash:nodes", "two_node quorum needs exactly two nodes, found 3")]),
    "wrong-type": (
        lambda t: t["guests"]["stinky"].update(memory="lots"),
        [("trash:guests:stinky:memory", "must be an integer, not str 'lots'")]),
}
SEVERAL = ("guest-home-not-a-node", "duplicate-drbd-port", "vlan-4095", "node-without-bmc",
           "failover-guest-on-local-storage", "wrong-type")


def _several(trash):
    for kind in SEVERAL:
        KINDS[kind][0](trash)


KINDS["several-at-once"] = (_several, [p for kind in SEVERAL for p in KINDS[kind][1]])
COMMANDS = ("render", "show_highstate", "apply")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{(kind, command): (CompletedProcess, directory that must stay empty or absent)}."""
    jobs = {}
    for kind, (mutate, _) in KINDS.items():
        top = tmp_path_factory.mktemp(kind)
        pillar = saltcli.pillar_dir(top / "pillar", mutate)
        out = top / "out"
        jobs[kind, "render"] = (
            dict(args=("trash.render", out), pillar_root=pillar, cachedir=top / "cache-r"), out)
        jobs[kind, "show_highstate"] = (
            dict(args=("state.show_highstate", "--out=json"), pillar_root=pillar,
                 cachedir=top / "cache-s"), None)
        root = top / "root"
        root.mkdir()
        config = saltcli.write_config(top / "config", top / "cache-a", trash_root=root)
        jobs[kind, "apply"] = (
            dict(args=("state.apply", "test=True", "--out=json"), config_dir=config,
                 pillar_root=pillar), root)

    def run(kwargs):
        args = kwargs["args"]
        return saltcli.salt_call(*args, node="node1",
                                 **{k: v for k, v in kwargs.items() if k != "args"})

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(run, job[0]) for key, job in jobs.items()}
        return {key: (futures[key].result(), jobs[key][1]) for key in jobs}


def _problem_lines(text, expected):
    """Assert each expected key is reported with its message; return the matching lines."""
    lines = []
    for key, fragment in expected:
        found = [line.strip() for line in text.splitlines()
                 if line.strip().startswith(f"{key}: ") and fragment in line]
        assert found, f"{key} ({fragment}) is not reported in:\n{text}"
        lines += found
    return lines


@pytest.mark.parametrize("kind", KINDS)
def test_render_rejects_and_writes_nothing(kind, runs):
    proc, out = runs[kind, "render"]
    assert proc.returncode != 0
    assert not saltcli.has_traceback(proc), proc.stderr
    # one message, listing every problem
    assert (proc.stdout + proc.stderr).count("invalid trash pillar") == 1, proc.stderr
    _problem_lines(proc.stderr, KINDS[kind][1])
    assert not out.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_show_highstate_shows_the_problems_once(kind, runs):
    proc, _ = runs[kind, "show_highstate"]
    assert not saltcli.has_traceback(proc), proc.stdout + proc.stderr
    high = saltcli.local(proc)
    # no state that could change anything is rendered, only the failing validation
    assert not [sid for sid, body in high.items() if "files_managed" in body.get("trash", [])]
    assert set(high) == {"trash-pillar-validated"}, list(high)
    problems = [p for arg in high["trash-pillar-validated"]["trash"]
                if isinstance(arg, dict) and "problems" in arg for p in arg["problems"]]
    _problem_lines("\n".join(problems), KINDS[kind][1])
    for problem in problems:
        assert (proc.stdout + proc.stderr).count(json.dumps(problem)[1:-1]) == 1, problem


@pytest.mark.parametrize("kind", KINDS)
def test_apply_test_mode_fails_and_writes_nothing(kind, runs):
    proc, root = runs[kind, "apply"]
    assert proc.returncode != 0
    assert not saltcli.has_traceback(proc), proc.stdout + proc.stderr
    results = saltcli.local(proc)
    assert [r["__id__"] for r in results.values()] == ["trash-pillar-validated"]
    (result,) = results.values()
    assert result["result"] is False
    assert result["comment"].count("invalid trash pillar") == 1
    _problem_lines(result["comment"], KINDS[kind][1])
    assert list(root.iterdir()) == []


def test_several_problems_are_all_in_one_message(runs):
    proc, _ = runs["several-at-once", "render"]
    header, *rest = proc.stderr[proc.stderr.index("invalid trash pillar"):].splitlines()
    listed = [line for line in rest if line.startswith("  trash")]
    assert f", {len(listed)} problem(s)" in header
    assert len(_problem_lines("\n".join(listed), KINDS["several-at-once"][1])) >= len(SEVERAL)
