"""trash_drbd.initial_sync with DRBD scripted from real captures (tests/data/drbd): who
forces, when nobody does, what is made on the mirrors, and the mark that lets a failed
run be finished."""

import pathlib

import pytest

from modload import load

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/drbd"
FRESH_GI = (DATA / "gi-just-created.txt").read_text()
SYNCED_GI = (DATA / "gi-synced.txt").read_text()


class Drbd:
    """cmd.run_all as a node's tools answer: DRBD resources with a generation identifier,
    LVM without volume groups, every other tool succeeding (or failing, on request)."""

    def __init__(self, gi, fail=None):
        self.gi = gi
        self.fail = fail
        self.calls = []
        self.vgs = set()

    def __call__(self, cmd, python_shell=False, ignore_retcode=True, output_loglevel=None,
                 env=None, stdin=None):
        assert python_shell is False
        self.calls.append(cmd)
        if self.fail and cmd[0] == self.fail:
            return {"retcode": 5, "stdout": "", "stderr": f"{cmd[0]}: simulated failure"}
        if "get-gi" in cmd:
            return {"retcode": 0, "stdout": self.gi, "stderr": ""}
        if cmd[:3] == ["systemctl", "is-active", "--quiet"]:
            return {"retcode": 3, "stdout": "", "stderr": ""}
        if cmd[0] == "vgs":
            return {"retcode": 0 if cmd[1] in self.vgs else 5, "stdout": "", "stderr": ""}
        if cmd[0] == "vgcreate":
            self.vgs.add(cmd[-2])
        if cmd[0] == "lvs":
            return {"retcode": 5, "stdout": "", "stderr": ""}
        if cmd[:2] == ["blockdev", "--getsize64"]:
            return {"retcode": 0, "stdout": str(384 << 20), "stderr": ""}
        return {"retcode": 0, "stdout": "", "stderr": ""}

    def ran(self, *prefix):
        return [c for c in self.calls if c[:len(prefix)] == list(prefix)]


@pytest.fixture
def drbd_mod(trash_mod, example_pillar, tmp_path, monkeypatch):
    def make(node="node1", gi=FRESH_GI, proc="proc-fresh-connected.txt", source="node1",
             fail=None):
        example_pillar["trash"]["drbd"]["initial_sync_source"] = source
        tools = Drbd(gi, fail)
        trash_mod.__context__.clear()
        written = []
        mod = load("_modules/trash_drbd.py", "trash_drbd_unit",
                   salt={"trash.config": trash_mod.config, "cmd.run_all": tools,
                         "trash_storage.signature": lambda dev: {},
                         "trash.manage_files": lambda concern: written.append(concern) or {
                             "result": True, "changes": {"/shared/guests/a.xml": {}},
                             "comment": ""}},
                   opts={"id": node})
        text = (DATA / proc).read_text()
        monkeypatch.setattr(mod, "_proc", lambda: mod._drbd.parse_proc_drbd(text))
        monkeypatch.setattr(mod, "MARKS", str(tmp_path / f"marks-{node}"))
        monkeypatch.setattr(mod.os, "makedirs", _makedirs_outside(tmp_path))
        mod.tools, mod.written = tools, written
        return mod
    return make


def _makedirs_outside(tmp_path):
    """os.makedirs for the marks only; the mount point is not created on this machine."""
    import os
    real = os.makedirs

    def makedirs(path, mode=0o777, exist_ok=False):
        if str(path).startswith(str(tmp_path)):
            real(path, mode, exist_ok)
    return makedirs


def test_parsers_read_the_captures():
    from trashlib import drbd
    assert drbd.never_synced(drbd.parse_gi(FRESH_GI))
    assert not drbd.never_synced(drbd.parse_gi(SYNCED_GI))
    with pytest.raises(ValueError):
        drbd.parse_gi("No valid meta data found")
    syncing = drbd.parse_proc_drbd((DATA / "proc-syncing.txt").read_text())
    assert syncing[0] == {"cs": "SyncSource", "ro": ("Secondary", "Secondary"),
                          "ds": ("UpToDate", "Inconsistent"), "sync": 26.1}
    assert syncing[2]["ds"] == ("Inconsistent", "Inconsistent") and syncing[2]["sync"] is None
    running = drbd.parse_proc_drbd((DATA / "proc-node1-running.txt").read_text())
    assert [running[m]["ro"] for m in (0, 1, 2)] == [
        ("Primary", "Primary"), ("Primary", "Secondary"), ("Secondary", "Primary")]


def test_source_forces_makes_gfs2_vgs_and_volumes_then_hands_back(drbd_mod):
    mod = drbd_mod()
    ret = mod.initial_sync()
    assert ret["result"] is True, ret["comment"]
    t = mod.tools
    assert [c[-1] for c in t.ran("drbdadm", "primary", "--force")] == ["mirror0", "mirror1",
                                                                       "mirror2"]
    assert [c[-1] for c in t.ran("drbdadm", "secondary")] == ["mirror0", "mirror1", "mirror2"]
    mkfs = t.ran("mkfs.gfs2")
    assert len(mkfs) == 1 and mkfs[0][-1] == "/dev/drbd0"
    assert "trashnet:shared" in mkfs[0] and mkfs[0][mkfs[0].index("-J") + 1] == "12"
    # the guests' XML went onto the new filesystem, mounted without DLM, then unmounted
    assert t.ran("mount", "-t", "gfs2", "-o", "lockproto=lock_nolock") and t.ran("umount")
    assert mod.written == ["guests"]
    assert [c[-2:] for c in t.ran("vgcreate", "--shared")] == [["vg_node1", "/dev/drbd1"],
                                                             ["vg_node2", "/dev/drbd2"]]
    # every cluster guest's volume in its home node's VG, made with the VG
    created = {(c[-1], c[c.index("--name") + 1]) for c in t.ran("lvcreate")}
    assert created == {("vg_node1", "stinky"), ("vg_node1", "fileserver"),
                       ("vg_node2", "shell2")}
    # the lock managers of the bootstrap are stopped, the VGs deactivated first
    order = [c[0] for c in t.calls if c[0] in ("vgchange", "systemctl", "lvmlockctl")]
    assert order[-2:] == ["systemctl", "systemctl"] and "lvmlockctl" in order
    assert ret["changes"]["mirror1"]["content"]["new"].startswith("shared volume group vg_node1")
    assert not mod._marked()


def test_target_only_brings_its_side_up(drbd_mod):
    mod = drbd_mod(node="node2", proc="proc-node1-running.txt")
    # nothing is up on node2 yet: /proc/drbd lists none of its minors
    mod._proc = lambda: {}
    ret = mod.initial_sync()
    assert ret["result"] is True
    assert [c[-1] for c in mod.tools.ran("drbdadm", "up")] == ["mirror0", "mirror1", "mirror2"]
    assert not mod.tools.ran("drbdadm", "primary")
    assert ret["changes"]["mirror0"]["initial sync"]["new"] == "syncing from node1"


@pytest.mark.parametrize("test", [False, True])
def test_a_target_already_up_waits_for_the_source_without_a_change(drbd_mod, test):
    """node2's sides are up and connected, nothing synced yet (a real capture): a second
    apply during the first sync has nothing to do and says so."""
    mod = drbd_mod(node="node2", proc="proc-fresh-connected.txt")
    ret = mod.initial_sync(test=test)
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert "mirror1 (Connected Secondary/Secondary Inconsistent/Inconsistent)" in ret["comment"]
    assert ret["comment"].endswith("up already: node1 makes the first copy"), ret["comment"]
    assert not mod.tools.ran("drbdadm", "up") and not mod.tools.ran("drbdadm", "primary")


def test_no_named_source_refuses_and_changes_nothing(drbd_mod):
    mod = drbd_mod(source=None)
    ret = mod.initial_sync()
    assert ret["result"] is False and ret["changes"] == {}
    assert "trash:drbd:initial_sync_source" in ret["comment"]
    assert not mod.tools.ran("drbdadm", "up") and not mod.tools.ran("drbdadm", "primary")


def test_a_peer_with_data_is_never_overwritten(drbd_mod):
    mod = drbd_mod(proc="proc-syncing.txt")
    ret = mod.initial_sync()
    assert ret["result"] is True
    # mirror0 and mirror1 are attached with an UpToDate copy here: left alone, their
    # generation identifiers not even read; only mirror2 is forced
    assert [c[-1] for c in mod.tools.ran("drbdadm", "primary", "--force")] == ["mirror2"]
    assert set(ret["changes"]) == {"mirror2"}
    assert [c[-1] for c in mod.tools.ran("drbdadm", "get-gi")] == ["mirror2"]


def test_a_replaced_disk_on_the_source_node_syncs_from_the_peer(drbd_mod):
    """The source node's mirror1 is new (its disk replaced: fresh generation identifiers)
    and connected to a peer that holds the data (a real SyncTarget capture): nothing is
    forced or created, nothing reported as changed, the comment says who syncs whom."""
    mod = drbd_mod(proc="proc-node2-synctarget.txt")
    ret = mod.initial_sync()
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert "mirror1 (Inconsistent/UpToDate)" in ret["comment"], ret["comment"]
    assert "nothing forced" in ret["comment"] and "first copy" not in ret["comment"]
    t = mod.tools
    assert not t.ran("drbdadm", "primary") and not t.ran("drbdadm", "up")
    assert not t.ran("mkfs.gfs2") and not t.ran("vgcreate") and not mod._marked()
    # mirror0 and mirror2 hold UpToDate copies here: only mirror1's identifiers are read
    assert [c[-1] for c in t.ran("drbdadm", "get-gi")] == ["mirror1"]


def test_a_dry_run_on_a_replaced_disk_says_it_syncs_from_the_peer(drbd_mod):
    mod = drbd_mod(proc="proc-node2-synctarget.txt")
    ret = mod.initial_sync(test=True)
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert "mirror1 (Inconsistent/UpToDate)" in ret["comment"], ret["comment"]
    assert "first copy" not in ret["comment"] and "nothing would be forced" in ret["comment"]
    assert all("get-gi" in c for c in mod.tools.calls)


def test_held_data_is_left_to_pacemaker(drbd_mod):
    mod = drbd_mod(gi=SYNCED_GI, proc="proc-node1-running.txt")
    ret = mod.initial_sync()
    assert ret == {"result": True, "changes": {},
                   "comment": "every mirror has held data on this node: Pacemaker runs them"}
    # attached UpToDate copies need no generation identifiers: no command at all
    assert mod.tools.calls == []


def test_test_mode_plans_and_runs_nothing(drbd_mod):
    mod = drbd_mod()
    ret = mod.initial_sync(test=True)
    assert ret["result"] is None and set(ret["changes"]) == {"mirror0", "mirror1", "mirror2"}
    assert all("get-gi" in c for c in mod.tools.calls)


def test_a_failed_run_is_finished_by_the_next(drbd_mod):
    mod = drbd_mod(fail="vgcreate")
    with pytest.raises(mod.CommandExecutionError, match="vgcreate --shared vg_node1 failed"):
        mod.initial_sync()
    assert mod._marked() == ["mirror1"]
    # handed back all the same, lock managers stopped
    assert [c[-1] for c in mod.tools.ran("drbdadm", "secondary")] == ["mirror0", "mirror1"]
    # next run: mirror1 has held data now (forced), and the mark says it is unfinished
    again = drbd_mod(gi=SYNCED_GI, proc="proc-node1-running.txt")
    again.MARKS = mod.MARKS
    ret = again.initial_sync()
    assert ret["result"] is True and set(ret["changes"]) == {"mirror1"}
    assert not again.tools.ran("drbdadm", "primary", "--force")
    assert [c[-1] for c in again.tools.ran("drbdadm", "primary")] == ["mirror1"]
    assert again.tools.ran("vgcreate", "--shared") and not again._marked()


def test_a_dry_run_before_the_metadata_exists_plans_the_first_sync(drbd_mod):
    mod = drbd_mod()
    mod.__salt__["cmd.run_all"] = lambda cmd, **kw: {
        "retcode": 255, "stdout": "", "stderr": "open(/dev/sda6) failed: No such file"}
    ret = mod.initial_sync(test=True)
    assert ret["result"] is None and set(ret["changes"]) == {"mirror0", "mirror1", "mirror2"}
    with pytest.raises(mod.CommandExecutionError, match="generation identifiers of mirror0"):
        mod.initial_sync()
