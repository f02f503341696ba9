"""The rendering contract, through salt-call exactly as a user runs it from the repo root."""

import pytest
import saltcli

NODES = saltcli.NODES
CONCERN_STATES = {"cluster": "trash-cluster-files-managed", "drbd": "trash-drbd-files-managed",
                  "guests": "trash-guests-files-managed"}
# files that hold a secret: root-only and never world- or group-readable
SECRETS = {"node1": ("/etc/corosync/authkey", "/etc/trash/fence/node2.password"),
           "node2": ("/etc/corosync/authkey", "/etc/trash/fence/node1.password")}


def _files_managed(high):
    """{state id: concern} of every trash.files_managed state of a show_highstate answer."""
    out = {}
    for sid, body in high.items():
        args = body.get("trash", [])
        if "files_managed" in args:
            (concern,) = [a["concern"] for a in args if isinstance(a, dict) and "concern" in a]
            out[sid] = concern
    return out


@pytest.mark.parametrize("node", NODES)
def test_show_highstate_has_one_files_state_per_concern(node, cli_plans):
    proc = saltcli.salt_call("state.show_highstate", "--out=json", node=node)
    assert proc.returncode == 0, proc.stderr
    assert not saltcli.has_traceback(proc)
    assert "[ERROR" not in proc.stderr and "[CRITICAL" not in proc.stderr, proc.stderr
    managed = _files_managed(saltcli.local(proc))
    for concern, sid in CONCERN_STATES.items():
        assert managed.get(sid) == concern, managed
    # every file the plan lists belongs to a concern that one state manages, and no
    # state manages a concern without files
    assert set(managed.values()) == {f["concern"] for f in cli_plans[node]}
    assert len(managed) == len(set(managed.values())), managed


@pytest.mark.parametrize("node", NODES)
def test_render_writes_exactly_the_plan(node, cli_renders, cli_plans):
    proc, outdir = cli_renders[node]
    assert proc.returncode == 0, proc.stderr
    assert not saltcli.has_traceback(proc)
    answer = saltcli.local(proc)
    plan = {f["path"]: f for f in cli_plans[node]}
    assert answer["node"] == node
    assert sorted(answer["files"]) == sorted(f"{outdir}{p}" for p in plan)
    files, dirs = saltcli.walk(outdir)
    # nothing else: no stray temporary file, no symlink, no other file, no empty directory
    assert files == set(plan)
    parents = {p.rsplit("/", i)[0] for p in plan for i in range(1, p.count("/"))}
    assert dirs == parents - {""}
    for path, spec in plan.items():
        assert saltcli.mode(f"{outdir}{path}") == spec["mode"], path


@pytest.mark.parametrize("node", NODES)
def test_secrets_are_root_only(node, rendered, cli_plans):
    planned = {f["path"]: f["mode"] for f in cli_plans[node]}
    for path in SECRETS[node]:
        assert planned[path] == "0400"
        assert saltcli.mode(f"{rendered[node]}{path}") == "0400"
    # the peer's BMC password is on this node, its own is not (its peer fences it)
    fence = {p for p in planned if p.startswith("/etc/trash/fence/")}
    assert fence == {SECRETS[node][1]}


def test_both_nodes_share_the_cluster_wide_files(rendered):
    for path in ("/etc/corosync/corosync.conf", "/etc/corosync/authkey", "/etc/trash/cib.xml",
                 "/etc/drbd.d/mirror0.res", "/etc/drbd.d/mirror1.res"):
        assert (rendered["node1"] / path.lstrip("/")).read_bytes() == \
            (rendered["node2"] / path.lstrip("/")).read_bytes(), path
    # /local guests exist only on their home node
    assert (rendered["node1"] / "local/guests/ns1.xml").exists()
    assert not (rendered["node1"] / "local/guests/knox.xml").exists()
    assert (rendered["node2"] / "local/guests/knox.xml").exists()


def test_pillar_root_renders_from_another_pillar_dir(tmp_path, rendered):
    def mutate(trash):
        trash["cluster"]["name"] = "testnet"
        trash["guests"]["extra"] = {"home": "node2", "memory": 768, "networks": ["vbr1"]}

    pillar = saltcli.pillar_dir(tmp_path / "pillar", mutate)
    outdir = tmp_path / "out"
    proc = saltcli.salt_call("trash.render", outdir, "--out=json", node="node1",
                             pillar_root=pillar)
    assert proc.returncode == 0, proc.stderr
    corosync = (outdir / "etc/corosync/corosync.conf").read_text()
    assert "cluster_name: testnet" in corosync
    original = (rendered["node1"] / "etc/corosync/corosync.conf").read_text()
    assert "cluster_name: trashnet" in original
    guest = (outdir / "shared/guests/extra.xml").read_text()
    assert "<memory unit=\"MiB\">768</memory>" in guest
    assert not (rendered["node1"] / "shared/guests/extra.xml").exists()
    # the repo's own pillar is untouched by the copy
    proc = saltcli.salt_call("trash.plan", "--out=json", node="node1")
    assert "/shared/guests/extra.xml" not in {f["path"] for f in saltcli.local(proc)}


def test_a_minion_that_is_no_node_renders_nothing(tmp_path):
    outdir = tmp_path / "out"
    proc = saltcli.salt_call("trash.render", outdir, node="node3")
    assert proc.returncode != 0
    assert "no trash pillar is assigned to this minion" in proc.stderr
    assert not saltcli.has_traceback(proc)
    assert not outdir.exists()
    proc = saltcli.salt_call("trash.render", outdir, "node=node3", node="node1")
    assert proc.returncode != 0
    assert "'node3' is not a cluster node" in proc.stderr
    assert not saltcli.has_traceback(proc)
    assert not outdir.exists()


# the services the formula starts on a live node (trash_root /), the files they follow,
# and the state that enables each at boot once it runs
SERVICES = {"trash-chrony-running": ("chrony", "trash-basics-files-managed",
                                     "trash-chrony-at-boot"),
            "trash-networkd-running": ("systemd-networkd", "trash-network-files-managed",
                                       "trash-networkd-at-boot"),
            "trash-firewall-loaded": ("nftables", "trash-firewall-files-managed",
                                      "trash-firewall-at-boot"),
            "trash-serial-link-running": ("trash-serial-link", "trash-serial-files-managed",
                                          "trash-serial-link-at-boot"),
            "trash-corosync-running": ("corosync", None, "trash-corosync-at-boot")}


def _args(state, fun):
    return {k: v for a in state[fun] if isinstance(a, dict) for k, v in a.items()}


def test_services_are_started_only_on_a_live_node(tmp_path):
    live = saltcli.salt_call("state.show_highstate", "--out=json")
    assert live.returncode == 0, live.stderr
    high = saltcli.local(live)
    for sid, (service, files, at_boot) in SERVICES.items():
        args = _args(high[sid], "service")
        assert args["name"] == service and "enable" not in args, high[sid]
        if files:
            assert args["watch"] == [{"trash": files}], high[sid]
        boot = _args(high[at_boot], "trash")
        assert boot["enable"] == [service] and boot["require"] == [{"service": sid}], boot
        assert boot["onchanges_in"] == [{"cmd": "trash-systemd-reloaded"}], boot
    # nftables and networkd are reloaded, never restarted (a restart flushes every table)
    for sid in ("trash-firewall-loaded", "trash-networkd-running"):
        assert {"reload": True} in high[sid]["service"]
    config = saltcli.write_config(tmp_path / "config", tmp_path / "cache",
                                  trash_root=tmp_path / "root")
    image = saltcli.salt_call("state.show_highstate", "--out=json", config_dir=config)
    assert image.returncode == 0, image.stderr
    boots = {at_boot for _, _, at_boot in SERVICES.values()}
    assert not (set(SERVICES) | boots | {"trash-systemd-reloaded"}) & set(saltcli.local(image))


@pytest.mark.parametrize("node", NODES)
def test_the_lab_pillar_is_valid(node):
    proc = saltcli.salt_call("trash.validate", "--out=json", node=node, pillar_root="lab/pillar")
    assert saltcli.local(proc) == {"valid": True}, proc.stdout + proc.stderr
