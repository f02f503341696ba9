"""The storage layout on real image files and loop devices: partitions only on a blank or
matching disk, filesystems only on empty partitions, fstab and mounts that never fight
what is there; every refusal leaves the disk byte for byte as it was.

The disk is /dev/trashtest-*/sda, a loop device of the whole image. This container's
loop devices get no partition nodes, so after the layout the test exposes each
partition as a loop device over its sectors (losetup --offset --sizelimit) and links
it as /dev/trashtest-*/sdaN, the name the module derives from the disk.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import uuid

import pytest
import yaml

from modload import load, trash_module
from trashlib import storage

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/storage"
SIZE = 128 << 20


def run_all(cmd, python_shell=False, ignore_retcode=True, output_loglevel=None, stdin=None,
            env=None):
    """cmd.run_all for real, with Salt's ``stdin``; a command never reads the terminal."""
    proc = subprocess.run(cmd, input=stdin or "", capture_output=True, text=True, check=False,
                          env=dict(os.environ, **(env or {})))
    return {"retcode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def blkid(device):
    out = run_all(["blkid", "-p", "-o", "export", str(device)])
    return dict(line.split("=", 1) for line in out["stdout"].splitlines() if "=" in line)


def mounted(path):
    return run_all(["findmnt", "--mountpoint", str(path)])["retcode"] == 0


class Rig:
    """An image file, the loop devices over it and the links the module sees."""

    def __init__(self, tmp_path):
        self.image = tmp_path / "disk.img"
        with open(self.image, "wb") as handle:
            handle.truncate(SIZE)
        self.devdir = pathlib.Path(f"/dev/trashtest-{uuid.uuid4().hex[:8]}")
        self.devdir.mkdir()
        self.disk = self.devdir / "sda"
        self.mnt = tmp_path / "mnt"
        self.loops = []

    def attach(self, offset=None, size=None):
        cmd = ["losetup", "--find", "--show"]
        if offset is not None:
            cmd += ["--offset", str(offset), "--sizelimit", str(size)]
        loop = subprocess.run(cmd + [str(self.image)], check=True, capture_output=True,
                              text=True).stdout.strip()
        self.loops.append(loop)
        return loop

    def sfdisk(self, script):
        """Write a table straight into the image file (before the disk is attached)."""
        subprocess.run(["sfdisk", "-q", "--wipe", "never", "--wipe-partitions", "never",
                        str(self.image)], input=script, text=True, check=True)

    def table(self):
        return storage.parse_sfdisk_json(subprocess.run(
            ["sfdisk", "--json", str(self.image)], capture_output=True, text=True,
            check=True).stdout)

    def attach_disk(self):
        os.symlink(self.attach(), self.disk)

    def expose(self):
        """/dev/trashtest-*/sdaN for every partition of the image's table."""
        for number, part in self.table().partitions.items():
            if number != storage.EXTENDED or self.table().label == "gpt":
                os.symlink(self.attach(part.start * 512, part.size * 512),
                           self.devdir / f"sda{number}")

    def part(self, number):
        return self.devdir / f"sda{number}"

    def digest(self):
        with open(self.image, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    def close(self):
        for path in sorted(self.mnt.rglob("*"), key=lambda p: -len(p.parts)) + [self.mnt]:
            if path.is_dir() and mounted(path):
                subprocess.run(["umount", str(path)], check=False)
        swaps = pathlib.Path("/proc/swaps").read_text().split()
        for loop in self.loops:
            if loop in swaps:
                subprocess.run(["swapoff", loop], check=False)
        for loop in reversed(self.loops):
            subprocess.run(["losetup", "--detach", loop], check=False)
        shutil.rmtree(self.devdir, ignore_errors=True)


@pytest.fixture
def rig(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    rig = Rig(tmp_path)
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture
def pillar(example_pillar, rig):
    trash = example_pillar["trash"]
    parts = yaml.safe_load((DATA / "layout-small.yaml").read_text())
    for spec in parts.values():
        if spec.get("mount"):
            spec["mount"] = str(rig.mnt) + spec["mount"].rstrip("/")
    trash["storage"] = {"label": "gpt", "partitions": parts}
    trash["nodes"]["node1"]["disk"] = str(rig.disk)
    return example_pillar


@pytest.fixture
def mod(pillar):
    trash = trash_module(pillar, "trash_for_storage_test")
    return load("_modules/trash_storage.py", "trash_storage_under_test", opts={"id": "node1"},
                salt={"trash.config": trash.config, "cmd.run_all": run_all})


def layout_script(pillar, defaults, table=True, keep=None):
    """The sfdisk script of the pillar's layout (only partitions ``keep``) on a blank disk."""
    from trashlib import model

    want = storage.wanted(model.load(pillar, defaults), "node1")
    plan = storage.plan(want, storage.Disk(want.disk, SIZE, 512))
    create = tuple(p for p in plan.create if keep is None or p.number in keep)
    text = storage.script(want, storage.Plan(create, (), (), table))
    return text.replace(want.disk, "sda")


@pytest.mark.parametrize("label,name", [("gpt", "gpt"), ("msdos", "dos")])
def test_blank_disk_plan_create_converge(rig, pillar, mod, label, name):
    pillar["trash"]["storage"]["label"] = label
    rig.attach_disk()
    blank = rig.digest()
    preview = mod.layout(test=True)
    assert preview["result"] is None
    numbers = [1, 2, 4, 5, 6, 7, 8] + ([3] if label == "msdos" else [])
    assert sorted(preview["changes"]) == sorted([f"partition {n}" for n in numbers] + ["table"])
    assert preview["changes"]["partition 6"]["new"] == \
        f"{8 << 20} bytes at sector {captured_start(name, 6)}, Linux filesystem: DRBD mirror0"
    assert f"label: {'dos' if label == 'msdos' else 'gpt'}" in preview["comment"]
    assert rig.digest() == blank  # test mode wrote nothing

    applied = mod.layout()
    assert applied["result"] is True, applied["comment"]
    assert applied["changes"] == preview["changes"]
    # exactly the pillar's table: the one captured from the same layout
    expected = storage.parse_sfdisk_json((DATA / f"{name}-full.json").read_text())
    assert rig.table().label == expected.label
    assert rig.table().partitions == expected.partitions
    verify = subprocess.run(["sfdisk", "--verify", str(rig.image)], capture_output=True,
                            text=True, check=False)
    assert verify.returncode == 0 and "No errors detected" in verify.stdout, verify.stdout

    written = rig.digest()
    again = mod.layout()
    assert again == {"result": True, "changes": {},
                     "comment": again["comment"]} and "match the pillar" in again["comment"]
    assert rig.digest() == written


def test_test_mode_of_a_whole_apply_plans_every_step_and_changes_nothing(rig, mod, tmp_path):
    rig.attach_disk()
    fstab = tmp_path / "fstab"
    fstab.write_text("# empty\n")
    blank = rig.digest()
    layout = mod.layout(test=True)
    # the partitions do not exist yet: the later steps plan on what the layout creates
    made = mod.filesystems(test=True)
    mounts = mod.mounts(test=True, fstab=str(fstab))
    assert [r["result"] for r in (layout, made, mounts)] == [None, None, None], \
        [r["comment"] for r in (layout, made, mounts)]
    assert sorted(made["changes"]) == sorted(str(rig.part(n)) for n in (1, 2, 4, 5))
    assert mounts["changes"][str(fstab)]["new"][0] == \
        f"UUID=<uuid-of-the-new-ext4>\t{rig.mnt}\text4\tdefaults\t0\t2"
    assert f"swap {rig.part(2)}" in mounts["changes"]
    assert rig.digest() == blank and fstab.read_text() == "# empty\n"
    assert not mounted(rig.mnt)
    # outside test mode a missing partition is an error, not a plan
    real = mod.filesystems()
    assert real["result"] is False and f"{rig.part(1)} does not exist" in real["comment"]


def captured_start(name, number):
    return storage.parse_sfdisk_json((DATA / f"{name}-full.json").read_text()) \
        .partitions[number].start


def test_installed_disk_gets_only_the_missing_partitions(rig, pillar, defaults, mod):
    rig.sfdisk(layout_script(pillar, defaults, keep=(1, 2, 4)))
    before = rig.table().partitions
    rig.attach_disk()
    applied = mod.layout()
    assert applied["result"] is True, applied["comment"]
    assert sorted(applied["changes"]) == ["partition 5", "partition 6", "partition 7",
                                          "partition 8"]
    after = rig.table().partitions
    assert {n: after[n] for n in before} == before  # 1, 2, 4 untouched
    expected = storage.parse_sfdisk_json((DATA / "gpt-full.json").read_text()).partitions
    assert {n: (p.start, p.size, p.type) for n, p in after.items()} == \
        {n: (p.start, p.size, p.type) for n, p in expected.items()}


def test_foreign_table_is_refused_and_untouched(rig, mod):
    rig.sfdisk("label: gpt\nstart=2048, type=L\n")
    rig.attach_disk()
    before = rig.digest()
    for test in (True, False):
        result = mod.layout(test=test)
        assert result["result"] is False and result["changes"] == {}
        assert "partition 1 (ext4 " in result["comment"]
        assert "exists with size 132120576 bytes, the pillar wants 33554432" in result["comment"]
    assert rig.digest() == before


def test_another_table_type_is_refused_and_untouched(rig, pillar, defaults, mod):
    pillar["trash"]["storage"]["label"] = "msdos"
    rig.sfdisk(layout_script(pillar, defaults))
    pillar["trash"]["storage"]["label"] = "gpt"
    rig.attach_disk()
    before = rig.digest()
    result = mod.layout()
    assert result["result"] is False
    assert "has a dos partition table, the pillar wants gpt" in result["comment"]
    assert rig.digest() == before


@pytest.mark.parametrize("what", ["ext4", "drbd"])
def test_a_signature_where_a_partition_goes_is_refused(rig, pillar, defaults, mod, what):
    rig.sfdisk(layout_script(pillar, defaults, keep=(1, 2, 4)))
    part6 = storage.parse_sfdisk_json((DATA / "gpt-full.json").read_text()).partitions[6]
    loop = rig.attach(part6.start * 512, part6.size * 512)
    if what == "ext4":
        subprocess.run(["mkfs.ext4", "-q", loop], check=True, input="", text=True)
    else:
        subprocess.run(["drbdmeta", "--force", "0", "v08", loop, "internal", "create-md"],
                       check=True, capture_output=True)
    subprocess.run(["losetup", "--detach", loop], check=True)
    rig.loops.remove(loop)
    rig.attach_disk()
    before = rig.digest()
    result = mod.layout()
    assert result["result"] is False and result["changes"] == {}
    assert f"the space of partition 6 (DRBD mirror0) (sectors {part6.start}-" in result["comment"]
    assert f"TYPE={what}" in result["comment"]
    assert rig.digest() == before
    assert sorted(rig.table().partitions) == [1, 2, 4]  # not even 5 was created


def test_blank_disk_without_table_but_a_filesystem_is_refused(rig, mod):
    subprocess.run(["mkfs.ext4", "-q", "-F", str(rig.image)], check=True, input="", text=True)
    rig.attach_disk()
    before = rig.digest()
    result = mod.layout()
    assert result["result"] is False
    assert "has no partition table sfdisk can read but holds" in result["comment"]
    assert "TYPE=ext4" in result["comment"]
    assert rig.digest() == before


def test_filesystems_and_mounts_plan_make_converge(rig, pillar, mod, tmp_path):
    rig.attach_disk()
    assert mod.layout()["result"] is True
    rig.expose()
    fstab = tmp_path / "fstab"
    fstab.write_text("# static file system information\nproc /proc proc defaults 0 0\n")
    mounts_before = mod.mounts(fstab=str(fstab))
    assert mounts_before["result"] is False and "does not hold ext4 yet" in mounts_before["comment"]

    preview = mod.filesystems(test=True)
    assert preview["result"] is None
    assert preview["changes"] == {str(rig.part(n)): {"old": None, "new": fs}
                                  for n, fs in ((1, "ext4"), (2, "swap"), (4, "ext4"), (5, "ext4"))}
    assert all(blkid(rig.part(n)) == {} for n in (1, 2, 4, 5))  # test mode made nothing
    made = mod.filesystems()
    assert made["result"] is True and made["changes"] == preview["changes"]
    assert [blkid(rig.part(n)).get("TYPE") for n in (1, 2, 4, 5)] == ["ext4", "swap", "ext4", "ext4"]
    assert all(blkid(rig.part(n)) == {} for n in (6, 7, 8))  # DRBD partitions stay empty
    assert mod.filesystems() == {"result": True, "changes": {},
                                 "comment": mod.filesystems()["comment"]}

    text = fstab.read_text()
    planned = mod.mounts(test=True, fstab=str(fstab))
    assert planned["result"] is None
    assert sorted(planned["changes"]) == sorted([str(fstab), str(rig.mnt), f"{rig.mnt}/var",
                                                 f"{rig.mnt}/local", f"swap {rig.part(2)}"])
    assert fstab.read_text() == text and not mounted(rig.mnt)
    done = mod.mounts(fstab=str(fstab))
    assert done["result"] is True, done["comment"]
    assert done["changes"] == planned["changes"]
    uuid1 = blkid(rig.part(1))["UUID"]
    lines = fstab.read_text().splitlines()
    assert lines[:2] == text.splitlines()  # what was there stays
    assert f"UUID={uuid1}\t{rig.mnt}\text4\tdefaults\t0\t2" in lines
    assert f"UUID={blkid(rig.part(2))['UUID']}\tnone\tswap\tsw\t0\t0" in lines
    assert all(mounted(p) for p in (rig.mnt, rig.mnt / "var", rig.mnt / "local"))
    assert os.path.realpath(rig.part(2)) in pathlib.Path("/proc/swaps").read_text()
    again = mod.mounts(fstab=str(fstab))
    assert again["result"] is True and again["changes"] == {}
    assert fstab.read_text().splitlines() == lines


def test_installed_node_fstab_is_accepted_as_it_is(rig, pillar, mod, tmp_path):
    rig.attach_disk()
    assert mod.layout()["result"] is True
    rig.expose()
    assert mod.filesystems()["result"] is True
    # an installer wrote / by device path with its own options, /var by UUID
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{rig.part(1)} {rig.mnt} ext4 errors=remount-ro 0 1\n"
                     f"UUID={blkid(rig.part(4))['UUID']} {rig.mnt}/var ext4 defaults 0 2\n")
    text = fstab.read_text()
    done = mod.mounts(fstab=str(fstab))
    assert done["result"] is True, done["comment"]
    added = fstab.read_text()[len(text):].splitlines()
    assert [line.split("\t")[1] for line in added] == [f"{rig.mnt}/local", "none"]
    assert fstab.read_text().startswith(text)


def test_a_partition_holding_another_filesystem_is_never_reformatted(rig, pillar, mod):
    rig.attach_disk()
    assert mod.layout()["result"] is True
    rig.expose()
    # /var's partition holds swap: an admin's decision the formula does not overrule
    subprocess.run(["mkswap", "-q", str(rig.part(4))], check=True)
    before = rig.digest()
    for test in (True, False):
        result = mod.filesystems(test=test)
        assert result["result"] is False and result["changes"] == {}
        assert f"partition 4: {rig.part(4)} holds " in result["comment"]
        assert "TYPE=swap" in result["comment"] and "the pillar wants ext4" in result["comment"]
        assert f"wipefs --all {rig.part(4)}" in result["comment"]
    assert rig.digest() == before
    assert blkid(rig.part(1)) == {}  # all or nothing: the empty partition got nothing either


def test_a_mount_point_of_another_device_is_refused(rig, pillar, mod, tmp_path):
    rig.attach_disk()
    assert mod.layout()["result"] is True
    rig.expose()
    assert mod.filesystems()["result"] is True
    fstab = tmp_path / "fstab"
    fstab.write_text(f"UUID=0000-other {rig.mnt}/var ext4 defaults 0 2\n")
    result = mod.mounts(fstab=str(fstab))
    assert result["result"] is False and result["changes"] == {}
    assert f"{rig.mnt}/var: fstab mounts UUID=0000-other (ext4) there" in result["comment"]
    assert fstab.read_text() == f"UUID=0000-other {rig.mnt}/var ext4 defaults 0 2\n"
    assert not mounted(rig.mnt)
