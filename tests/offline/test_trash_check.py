"""trash.check (the real tools, run by the module) and the states that rely on it."""

import os
import pathlib

import pytest
import saltcli

NODES = saltcli.NODES
COROSYNC_LOG = pathlib.Path("/var/log/corosync/corosync.log")

# pillars the model accepts and only the real tools refuse: (change, check, tool's words)
TOOL_ONLY = {
    "corosync-cipher": (lambda t: t["cluster"].update(crypto_cipher="aes999"), "corosync",
                        "Invalid cipher type"),
    "drbd-resync-rate": (lambda t: t["drbd"].update(resync_rate="5000G"), "drbd",
                         "out of range"),
}


@pytest.fixture(scope="module")
def tool_only_pillars(tmp_path_factory):
    return {kind: saltcli.pillar_dir(tmp_path_factory.mktemp(kind) / "pillar", change)
            for kind, (change, _, _) in TOOL_ONLY.items()}


def _log_state():
    return COROSYNC_LOG.stat().st_size if COROSYNC_LOG.exists() else None


@pytest.mark.parametrize("node", NODES)
def test_check_accepts_the_example_pillar(node, caller):
    before = _log_state()
    assert caller(node).cmd("trash.check") == {}
    # corosync -t appends to the config's log file: the check must not touch this machine's
    assert _log_state() == before


@pytest.mark.parametrize("node", NODES)
def test_check_accepts_drbd_9(node, caller, pillar9, tmp_path, monkeypatch):
    check = caller(node, pillar9)
    assert check.cmd("trash.check", concern="drbd") == {}
    # also where `modinfo drbd` reports the stock kernel's 8.4 module, which would turn
    # drbdadm 9 into drbdadm-84 (see test_real_tools)
    (tmp_path / "modinfo").write_text("#!/bin/sh\necho 8.4.11\n")
    (tmp_path / "modinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("DRBD_DRIVER_VERSION_OVERRIDE", raising=False)
    assert check.cmd("trash.check", concern="drbd") == {}


@pytest.mark.parametrize("kind", TOOL_ONLY)
def test_check_returns_the_tools_message(kind, caller, tool_only_pillars):
    _, name, words = TOOL_ONLY[kind]
    module = caller("node1", tool_only_pillars[kind])
    assert module.cmd("trash.validate") == {"valid": True}
    problems = module.cmd("trash.check")
    assert set(problems) == {name}
    assert words in problems[name]
    # the message names the file by its target path, not by the check's staging directory
    assert "trash-check-" not in problems[name]
    assert "/etc/" in problems[name]


# shared secrets that break the DRBD file, with the part drbdadm then quotes in its error
BAD_SECRETS = {"64-characters": ("9", "S3cr3t" * 10 + "Long", "S3cr3tS3cr3tS3cr3tS3"),
               "quote": ("8.4", 'Um8sw0N6"UbUeTswea', "UbUeTswea")}


@pytest.mark.parametrize("case", BAD_SECRETS)
def test_drbdadm_quotes_part_of_a_shared_secret_it_refuses(case, trees, tmp_path):
    """Why the model refuses such secrets: the check's message would show part of one."""
    version, secret, quoted = BAD_SECRETS[case]
    good = saltcli.example_pillar()["trash"]["drbd"]["shared_secret"]
    (tmp_path / "etc/drbd.d").mkdir(parents=True)
    for path in (trees[version]["node1"] / "etc/drbd.d").iterdir():
        (tmp_path / "etc/drbd.d" / path.name).write_text(path.read_text().replace(good, secret))
    proc = saltcli.drbdadm(version, saltcli.drbd_main(tmp_path, tmp_path), "dump", "all")
    assert proc.returncode != 0
    assert quoted in proc.stderr and secret not in proc.stderr


@pytest.mark.parametrize("case", BAD_SECRETS)
def test_model_refuses_shared_secrets_drbdadm_would_quote(case, caller, tmp_path):
    _, secret, _ = BAD_SECRETS[case]
    pillar = saltcli.pillar_dir(tmp_path / "pillar",
                                lambda t: t["drbd"].update(shared_secret=secret))
    answer = caller("node1", pillar).cmd("trash.validate")
    assert answer["valid"] is False
    assert [p for p in answer["problems"] if p.startswith("trash:drbd:shared_secret: ")]
    assert secret not in str(answer)


@pytest.mark.parametrize("version", ("8.4", "9"))
def test_the_longest_shared_secret_passes_both_drbdadm(version, caller, tmp_path):
    def change(trash):
        trash["drbd"].update(version=version, shared_secret="S" * 63)
    pillar = saltcli.pillar_dir(tmp_path / "pillar", change)
    assert caller("node1", pillar).cmd("trash.check", concern="drbd") == {}


@pytest.fixture
def apply_config(tmp_path):
    """state.apply config: etc/salt/minion with absolute paths and trash_root in tmp."""
    root = tmp_path / "root"
    root.mkdir()
    return saltcli.write_config(tmp_path / "config", tmp_path / "cache", trash_root=root), root


@pytest.mark.parametrize("kind", TOOL_ONLY)
def test_apply_test_mode_fails_with_the_tools_message(kind, apply_config, tool_only_pillars):
    config, root = apply_config
    _, name, words = TOOL_ONLY[kind]
    proc = saltcli.salt_call("state.apply", "test=True", "--out=json", node="node1",
                             config_dir=config, pillar_root=tool_only_pillars[kind])
    assert proc.returncode != 0
    assert not saltcli.has_traceback(proc), proc.stdout + proc.stderr
    results = {r["__id__"]: r for r in saltcli.local(proc).values()}
    failed = {sid: r for sid, r in results.items() if r["result"] is False}
    concern = "cluster" if name == "corosync" else "drbd"
    assert set(failed) == {f"trash-{concern}-files-managed"}, results
    comment = failed[f"trash-{concern}-files-managed"]["comment"]
    assert comment.startswith("nothing written:")
    assert f"{name} check failed" in comment and words in comment
    assert list(root.iterdir()) == []


def test_apply_writes_what_render_writes(apply_config, rendered, cli_plans):
    config, root = apply_config

    def apply(*args):
        proc = saltcli.salt_call("state.apply", *args, "--out=json", node="node1",
                                 config_dir=config)
        assert not saltcli.has_traceback(proc), proc.stdout + proc.stderr
        return proc.returncode, {r["__id__"]: r for r in saltcli.local(proc).values()}

    rc, preview = apply("test=True")
    assert rc == 0
    planned = {f["path"] for f in cli_plans["node1"]}
    predicted = {path for r in preview.values() for path in r["changes"]}
    assert predicted == planned
    assert all(r["result"] is None for r in preview.values() if r["changes"])
    assert list(root.iterdir()) == []  # test mode wrote nothing

    rc, applied = apply()
    assert rc == 0 and all(r["result"] is True for r in applied.values()), applied
    files, _ = saltcli.walk(root)
    assert files == planned
    for path in planned:
        written, expected = root / path.lstrip("/"), rendered["node1"] / path.lstrip("/")
        assert written.read_bytes() == expected.read_bytes(), path
        assert saltcli.mode(written) == saltcli.mode(expected), path
        assert written.stat().st_uid == 0, path

    rc, again = apply("test=True")
    assert rc == 0
    assert all(r["result"] is True and not r["changes"] for r in again.values()), again
