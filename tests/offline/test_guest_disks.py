"""trash_disks.disks for real: /local images under a scratch trash_root, and logical volumes
in a real lvmlockd shared VG (lock type dlm) on a loop device (tests/lvmsandbox.py: lvmlockd in
test mode, LVM writing metadata only, since this kernel has no device-mapper).

What this machine cannot do is activate an LV, so no LV is ever reported active (lv_attr's
state is X, unknown). Where the test needs vg_node1 to be active on this node, as on the node
where Pacemaker's LVM-activate started it, ``pretend_active`` turns that one character of
lvs' real answer into ``a``; everything else (vgs, lvs, lvcreate, lvmlockd's locks) is real.
"""

import hashlib
import json
import os
import subprocess

import pytest

import lvmsandbox
from modload import load, run_all, trash_module

M = 1 << 20


@pytest.fixture
def box(tmp_path):
    reason = lvmsandbox.available()
    if reason:
        pytest.skip(reason)
    with lvmsandbox.Sandbox(tmp_path / "lvm") as sandbox:
        yield sandbox


@pytest.fixture
def pillar(example_pillar):
    guests = example_pillar["trash"]["guests"]
    for name, size in {"stinky": "8M", "fileserver": "4M", "shell2": "8M", "ns1": "16M",
                       "knox": "16M"}.items():
        guests[name]["disk_size"] = size
    return example_pillar


def pretend_active(base):
    """cmd.run_all whose lvs answer shows every LV active on this node."""
    def run(cmd, **kwargs):
        res = base(cmd, **kwargs)
        if cmd[0] == "lvs" and res["retcode"] == 0:
            report = json.loads(res["stdout"])
            for row in report["report"][0]["lv"]:
                row["lv_attr"] = row["lv_attr"][:4] + "a" + row["lv_attr"][5:]
            res = dict(res, stdout=json.dumps(report))
        return res
    return run


def disks_module(pillar, root, runner):
    trash = trash_module(pillar, "trash_for_disks_test")
    return load("_modules/trash_disks.py", "trash_disks_under_test",
                salt={"trash.config": trash.config, "cmd.run_all": runner},
                opts={"id": "node1", "trash_root": str(root)})


def real_lvs(box):
    out = box.run("lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                  "-o", "lv_name,vg_name,lv_size").stdout
    return {(r["vg_name"], r["lv_name"]): int(r["lv_size"])
            for r in json.loads(out)["report"][0]["lv"]}


def ex_locks(box):
    """Number of LV locks lvmlockd holds exclusively (``LK LV ex <uuid>``)."""
    return sum(1 for line in box.run("lvmlockctl", "--info").stdout.splitlines()
               if line.startswith("LK LV ex"))


def test_local_images_created_sparse_once_never_shrunk_or_replaced(box, pillar, tmp_path):
    root = tmp_path / "root"
    mod = disks_module(pillar, root, box.run_all(run_all))
    target = root / "local/guests/ns1.img"
    preview = mod.disks(test=True)
    assert preview["result"] is None
    assert preview["changes"] == {"ns1": {"old": None,
                                          "new": "/local/guests/ns1.img 16M (sparse raw image)"}}
    assert not target.exists()
    applied = mod.disks()
    assert applied["result"] is True and applied["changes"] == preview["changes"]
    st = os.stat(target)
    assert st.st_size == 16 * M and st.st_blocks == 0 and st.st_mode & 0o777 == 0o600
    assert mod.disks()["changes"] == {}
    # the guest wrote to it; then the pillar asks for more: reported, never touched
    with open(target, "r+b") as handle:
        handle.write(b"guest data")
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    pillar["trash"]["guests"]["ns1"]["disk_size"] = "32M"
    grown = mod.disks()
    assert grown["result"] is False and grown["changes"] == {}
    assert "truncate --size '>32M' /local/guests/ns1.img" in grown["comment"]
    # the command it names grows the image and keeps its data
    subprocess.run(["truncate", "--size", ">32M", str(target)], check=True)
    assert os.path.getsize(target) == 32 * M
    assert target.read_bytes()[:10] == b"guest data"
    assert mod.disks()["result"] is True
    pillar["trash"]["guests"]["ns1"]["disk_size"] = "8M"  # smaller: fine, left as it is
    assert mod.disks()["result"] is True and os.path.getsize(target) == 32 * M
    # a guest that leaves the pillar keeps its disk
    del pillar["trash"]["guests"]["ns1"]
    gone = mod.disks()
    assert gone["result"] is True and gone["changes"] == {}
    assert "/local/guests/ns1.img is the disk of no /local guest of node1" in gone["comment"]
    assert target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() != before


def test_lvs_in_a_shared_vg_only_where_it_is_active(box, pillar, tmp_path):
    box.run("vgcreate", "--shared", "--locktype", "dlm", "vg_node1", box.loops[0])
    root = tmp_path / "root"
    real = box.run_all(run_all)
    mod = disks_module(pillar, root, real)

    # a shared VG without any LV: never activated by LVM-activate; the state says how to
    # make the first LV, and those very commands work
    empty = mod.disks()
    assert empty["result"] is False and list(empty["changes"]) == ["ns1"]
    hint = next(line for line in empty["comment"].splitlines()
                if line.startswith("vg_node1 is visible on this node but holds no"))
    commands = hint.split("Create the first by hand here: ")[1].split("; then ")[0]
    for command in commands.split(" && "):
        box.run(*command.split())
    assert real_lvs(box) == {("vg_node1", "fileserver"): 4 * M}

    # visible, lockspace started, but no LV of it active here: left to the active node
    idle = mod.disks()
    assert idle["result"] is True and idle["changes"] == {}
    assert ("vg_node1 is not active on this node; its LVs are created where it is active "
            "(fileserver, stinky)") in idle["comment"]
    assert set(real_lvs(box)) == {("vg_node1", "fileserver")}

    # where it is active: the missing LV is created by the real lvcreate, with lvmlockd's
    # exclusive lock for this node
    here = disks_module(pillar, root, pretend_active(real))
    locks = ex_locks(box)
    preview = here.disks(test=True)
    assert preview["result"] is None and preview["changes"] == {
        "stinky": {"old": None, "new": "/dev/vg_node1/stinky 8M (logical volume)"}}
    assert set(real_lvs(box)) == {("vg_node1", "fileserver")}
    applied = here.disks()
    assert applied["result"] is True and applied["changes"] == preview["changes"]
    assert real_lvs(box) == {("vg_node1", "fileserver"): 4 * M, ("vg_node1", "stinky"): 8 * M}
    assert ex_locks(box) == locks + 1
    assert here.disks()["changes"] == {}

    # never shrunk, never grown: a larger disk_size is reported, the LV stays as it is
    pillar["trash"]["guests"]["stinky"]["disk_size"] = "16M"
    small = here.disks()
    assert small["result"] is False and small["changes"] == {}
    assert "where vg_node1 is active: lvextend --size 16M vg_node1/stinky" in small["comment"]
    assert real_lvs(box)[("vg_node1", "stinky")] == 8 * M

    # no room: nothing at all is created
    pillar["trash"]["guests"]["stinky"]["disk_size"] = "8M"
    pillar["trash"]["guests"]["big"] = {"home": "node1", "disk_size": "64M"}
    full = here.disks()
    assert full["result"] is False and full["changes"] == {}
    assert "vg_node1 has 48M free, the missing logical volumes need 64M (big 64M)" \
        in full["comment"]

    # a guest that left the pillar keeps its LV
    del pillar["trash"]["guests"]["big"]
    del pillar["trash"]["guests"]["fileserver"]
    gone = here.disks()
    assert gone["result"] is True and gone["changes"] == {}
    assert "vg_node1/fileserver is the disk of no guest of vg_node1" in gone["comment"]
    assert ("vg_node1", "fileserver") in real_lvs(box)

    # the lockspace stopped under a stale view: LVM itself refuses, and that is reported
    box.run("lvchange", "--activate", "n", "vg_node1")
    box.run("vgchange", "--lock-stop", "vg_node1")
    pillar["trash"]["guests"]["newbox"] = {"home": "node1", "disk_size": "4M"}
    refused = here.disks()
    assert refused["result"] is False and refused["changes"] == {}
    assert "lvcreate of /dev/vg_node1/newbox failed" in refused["comment"]
    assert "Cannot access VG vg_node1 due to failed lock." in refused["comment"]
    assert ("vg_node1", "newbox") not in real_lvs(box)
