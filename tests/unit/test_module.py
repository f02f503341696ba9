"""The trash execution module with the loader mocked: test mode, diffs, checks, secrets."""

import os
import pathlib
from unittest import mock

import pytest
from salt.exceptions import CommandExecutionError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def secrets(pillar):
    t = pillar["trash"]
    return [t["cluster"]["authkey"], t["drbd"]["shared_secret"],
            t["nodes"]["node1"]["bmc"]["password"], t["nodes"]["node2"]["bmc"]["password"]]


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def test_validate_and_config_redacted(trash_mod, example_pillar):
    assert trash_mod.validate() == {"valid": True}
    text = repr(trash_mod.config())
    assert "<secret>" in text and not any(s in text for s in secrets(example_pillar))


def test_validate_lists_problems(trash_mod, example_pillar):
    example_pillar["trash"]["guests"]["stinky"]["home"] = "node7"
    result = trash_mod.validate()
    assert result["valid"] is False
    assert any(p.startswith("trash:guests:stinky:home:") for p in result["problems"])


def test_the_beacons_read_the_defaults_from_the_file_cache_only(trash_mod, tmp_path):
    """cached=True (the beacons, in the minion daemon) never asks the file client: it
    reads what the last job cached, and says how to fill the cache when it is empty."""
    trash_mod.__opts__["cachedir"] = str(tmp_path)
    trash_mod.__salt__["cp.get_file_str"] = mock.Mock(side_effect=AssertionError("fetched"))
    with pytest.raises(CommandExecutionError, match="not in this minion's file cache yet"):
        trash_mod.config(cached=True)
    cached = tmp_path / "files/base/trash/defaults.yaml"
    cached.parent.mkdir(parents=True)
    cached.write_text((ROOT / "salt/trash/defaults.yaml").read_text())
    assert trash_mod.config(cached=True)["nodes"].keys() == {"node1", "node2"}


def test_not_a_cluster_node(trash_mod):
    trash_mod.__opts__["id"] = "backup1"
    with pytest.raises(CommandExecutionError, match="'backup1' is not a cluster node"):
        trash_mod.plan()


def test_render_writes_exactly_the_plan(trash_mod, tmp_path):
    out = tmp_path / "out"
    result = trash_mod.render(str(out))
    planned = sorted(p["path"].lstrip("/") for p in trash_mod.plan())
    assert tree(out) == planned == sorted(os.path.relpath(f, out) for f in result["files"])
    assert oct(os.stat(out / "etc/corosync/authkey").st_mode & 0o777) == "0o400"


def test_render_invalid_pillar_writes_nothing(trash_mod, example_pillar, tmp_path):
    example_pillar["trash"]["drbd"]["resources"]["mirror2"]["minor"] = 0
    with pytest.raises(CommandExecutionError, match="trash:drbd:resources:mirror2:minor"):
        trash_mod.render(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_manage_files_test_mode_predicts_and_writes_nothing(trash_mod, tmp_path):
    result = trash_mod.manage_files("drbd", test=True)
    assert result["result"] is None
    assert set(result["changes"]) == {"/etc/drbd.d/global_common.conf", "/etc/drbd.d/mirror0.res",
                                      "/etc/drbd.d/mirror1.res", "/etc/drbd.d/mirror2.res",
                                      "/usr/local/lib/trash/drbd-event",
                                      "/usr/local/lib/trash/drbd-fence-peer",
                                      "/etc/lvm/lvmlocal.conf"}
    assert not (tmp_path / "root").exists()


def test_manage_files_applies_then_converges(trash_mod, tmp_path, run_all):
    first = trash_mod.manage_files("cluster")
    assert first["result"] is True and len(first["changes"]) == 9
    assert run_all.call_count == 2  # corosync and crm_verify checked the new files
    root = tmp_path / "root"
    assert (root / "etc/trash/fence/node2.password").read_text().strip() != ""
    second = trash_mod.manage_files("cluster")
    assert second == {"result": True, "changes": {},
                      "comment": "9 cluster files are in the rendered state"}
    assert run_all.call_count == 2  # nothing pending, nothing checked


def test_manage_files_writes_durably(trash_mod, tmp_path):
    """Each file and each directory entry (new directories too) is fsync'd before the state
    reports it: a node powered off right after an apply keeps its files (seen in the lab)."""
    synced = []
    real_fsync = trash_mod.os.fsync

    def fsync(fd):
        synced.append(trash_mod.os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    with mock.patch.object(trash_mod.os, "fsync", fsync):
        trash_mod.manage_files("cluster")
    root = str(tmp_path / "root")
    files = {p for p in synced if "/.trash-" in p}
    assert len(files) == 9  # the temporary files, before each is renamed into place
    dirs = set(synced) - files
    assert {root + "/etc/corosync", root + "/etc/dlm", root + "/etc/sysctl.d",
            root + "/etc/trash/fence", root + "/etc/trash", root + "/etc"} <= dirs
    synced.clear()
    with mock.patch.object(trash_mod.os, "fsync", fsync):
        trash_mod.render(str(tmp_path / "out"))
    assert synced == []  # rendering for a preview or a test stays cheap


def test_manage_files_reports_a_real_diff_without_secrets(trash_mod, example_pillar, tmp_path):
    trash_mod.manage_files("drbd")
    example_pillar["trash"]["drbd"]["resources"]["mirror1"]["port"] = 7800
    trash_mod.__context__.clear()
    result = trash_mod.manage_files("drbd", test=True)
    diff = result["changes"]["/etc/drbd.d/mirror1.res"]["diff"]
    assert "-        address 10.10.1.1:7789;" in diff and "+        address 10.10.1.1:7800;" in diff
    assert list(result["changes"]) == ["/etc/drbd.d/mirror1.res"]
    changed_all = trash_mod.manage_files("drbd", test=True)
    assert not any(s in repr(changed_all) for s in secrets(example_pillar))


def test_secret_file_diff_is_never_shown(trash_mod, example_pillar, tmp_path):
    trash_mod.manage_files("cluster")
    example_pillar["trash"]["nodes"]["node2"]["bmc"]["password"] = "n3w-s3cret"
    trash_mod.__context__.clear()
    result = trash_mod.manage_files("cluster")
    assert result["changes"]["/etc/trash/fence/node2.password"] == {
        "diff": "secret content changed (not shown)"}
    assert "n3w-s3cret" not in repr(result)


def test_mode_drift_is_repaired(trash_mod, tmp_path):
    trash_mod.manage_files("cluster")
    key = tmp_path / "root/etc/corosync/authkey"
    os.chmod(key, 0o644)
    result = trash_mod.manage_files("cluster")
    assert result["changes"] == {"/etc/corosync/authkey": {"mode": {"old": "0644", "new": "0400"}}}
    assert oct(os.stat(key).st_mode & 0o777) == "0o400"


def test_failed_check_writes_nothing_and_shows_the_tool_message(trash_mod, run_all, tmp_path,
                                                                  example_pillar):
    secret = example_pillar["trash"]["drbd"]["shared_secret"]
    run_all.return_value = {"retcode": 10, "stdout": "",
                            "stderr": f"mirror0.res:7: unknown option, near {secret}"}
    result = trash_mod.manage_files("drbd")
    assert result["result"] is False and result["changes"] == {}
    assert "drbd check failed" in result["comment"] and "unknown option" in result["comment"]
    assert secret not in result["comment"]
    assert not (tmp_path / "root").exists()


def test_files_on_an_unmounted_shared_fs_wait(trash_mod, monkeypatch):
    trash_mod.__opts__["trash_root"] = "/"
    monkeypatch.setattr(trash_mod.os.path, "ismount", lambda path: False)
    result = trash_mod.manage_files("guests", test=True)
    assert result["result"] is True and result["changes"] == {}
    assert "waits for /shared to be mounted" in result["comment"]
    assert "/local/guests/ns1.xml (waits for /local" in result["comment"]


def test_unknown_concern(trash_mod):
    from salt.exceptions import SaltInvocationError

    with pytest.raises(SaltInvocationError, match="unknown concern 'storage'"):
        trash_mod.plan(concern="storage")


def test_a_pillar_that_did_not_render_is_named(trash_mod, example_pillar, tmp_path):
    example_pillar["_errors"] = ["Rendering SLS 'trash.cluster' failed"]
    assert trash_mod.validate() == {
        "valid": False, "problems": ["pillar: did not render: Rendering SLS 'trash.cluster' failed"]}
    with pytest.raises(CommandExecutionError, match="did not render"):
        trash_mod.render(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_cib_apply_dry_run_before_pacemaker_runs_plans_the_push(trash_mod, run_all):
    run_all.return_value = {"retcode": 102, "stdout": "",
                            "stderr": "Could not connect to the CIB: Transport endpoint is not connected"}
    ret = trash_mod.cib_apply(test=True)
    assert ret["result"] is None and ret["changes"] == {
        "pacemaker": {"old": None, "new": "/etc/trash/cib.xml"}}
    # for real, with nothing to wait for, it refuses and says why
    with pytest.raises(trash_mod.CommandExecutionError, match="is the cluster running"):
        trash_mod.cib_apply()


def test_ifupdown_release_plans_then_releases_once_and_keeps_the_original(trash_mod, tmp_path):
    import pathlib
    source = pathlib.Path(__file__).resolve().parents[1] / "data/ifupdown/interfaces"
    target = tmp_path / "root/etc/network/interfaces"
    target.parent.mkdir(parents=True)
    target.write_text(source.read_text())
    planned = trash_mod.ifupdown_release(test=True)
    assert planned["result"] is None and target.read_text() == source.read_text()
    assert planned["changes"]["/etc/network/interfaces"]["released"] == ["eth0", "eth1", "eth1:0"]
    done = trash_mod.ifupdown_release()
    assert done["result"] is True and "iface eth0" not in target.read_text()
    assert (target.parent / "interfaces.trash-orig").read_text() == source.read_text()
    assert trash_mod.ifupdown_release() == {
        "result": True, "changes": {},
        "comment": "ifupdown configures none of the links networkd does"}
