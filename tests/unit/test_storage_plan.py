"""The storage layout: the wanted partitions, sfdisk's JSON (real captures), the plan and
its refusals, fstab, and the model's layout rules."""

import dataclasses
import pathlib

import pytest
import yaml

from modload import load
from trashlib import model, storage

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/storage"
SIZE = 128 << 20
GPT_LINUX = storage.TYPES["gpt"]["linux"]


def small(example_pillar, defaults, label="gpt", **changes):
    trash = example_pillar["trash"]
    parts = yaml.safe_load((DATA / "layout-small.yaml").read_text())
    for number, spec in changes.items():
        parts[int(number[1:])] = spec
    trash["storage"] = {"label": label, "partitions": parts}
    cfg = model.load(example_pillar, defaults)
    # the captures were taken on an image file named sda
    return dataclasses.replace(storage.wanted(cfg, "node1"), disk="sda")


def captured(name):
    return storage.parse_sfdisk_json((DATA / f"{name}.json").read_text())


def disk(table=None, signature=None, size=SIZE, sector=512):
    return storage.Disk("sda", size, sector, table, signature)


def problems(pillar, defaults):
    with pytest.raises(model.PillarError) as info:
        model.load(pillar, defaults)
    return dict(info.value.problems)


# ---- the wanted layout ----------------------------------------------------------------


def test_gpt_keeps_the_documents_numbers_in_disk_order(cfg):
    layout = storage.wanted(cfg, "node1")
    assert layout.label == "gpt" and layout.disk == "/dev/sda"
    assert [w.number for w in layout.partitions] == [1, 2, 4, 5, 6, 7, 8]
    assert [w.kind for w in layout.partitions] == ["linux", "swap"] + ["linux"] * 5
    assert layout.partitions[0].size == 20 << 30 and layout.partitions[0].mount == "/"
    assert layout.partitions[4].role == "DRBD mirror0"


def test_msdos_puts_primary_4_before_the_extended_3_holding_5_to_8(cfg):
    cfg["storage"]["label"] = "msdos"
    layout = storage.wanted(cfg, "node1")
    assert layout.label == "dos"
    assert [(w.number, w.kind, w.logical) for w in layout.partitions] == [
        (1, "linux", False), (2, "swap", False), (4, "linux", False), (3, "extended", False),
        (5, "linux", True), (6, "linux", True), (7, "linux", True), (8, "linux", True)]


@pytest.mark.parametrize("disk_, number, device", [
    ("/dev/sda", 5, "/dev/sda5"), ("/dev/md0", 5, "/dev/md0p5"), ("/dev/nvme0n1", 1, "/dev/nvme0n1p1")])
def test_partition_device_follows_the_kernels_naming(disk_, number, device):
    assert storage.partition_device(disk_, number) == device


# ---- sfdisk --json, captured from real runs (capture.py) --------------------------------


def test_parse_gpt_capture():
    table = captured("gpt-full")
    assert table.label == "gpt" and table.sector_size == 512
    assert (table.first_lba, table.last_lba) == (2048, 262110)
    assert sorted(table.partitions) == [1, 2, 4, 5, 6, 7, 8]
    assert table.partitions[1] == storage.Part(1, 2048, 65536, GPT_LINUX)
    assert table.partitions[2].type == storage.TYPES["gpt"]["swap"]


def test_parse_dos_capture_reads_the_extended_and_logical_partitions():
    table = captured("dos-full")
    assert table.label == "dos" and table.first_lba is None
    assert table.partitions[3].type == "5" and table.partitions[2].type == "82"
    ext = table.partitions[3]
    assert all(ext.start < table.partitions[n].start < ext.start + ext.size for n in (5, 6, 7, 8))
    # 4 is a primary outside the extended partition, before it on the disk
    assert table.partitions[4].start + table.partitions[4].size <= ext.start


# ---- the plan ------------------------------------------------------------------------


@pytest.mark.parametrize("label,name", [("gpt", "gpt"), ("msdos", "dos")])
def test_blank_disk_gets_exactly_the_captured_table(example_pillar, defaults, label, name):
    layout = small(example_pillar, defaults, label)
    plan = storage.plan(layout, disk())
    assert plan.new_table and not plan.refusals and plan.present == ()
    full = captured(f"{name}-full").partitions
    assert {p.number: p for p in plan.create} == full


@pytest.mark.parametrize("label,name", [("gpt", "gpt"), ("msdos", "dos")])
def test_matching_table_needs_nothing(example_pillar, defaults, label, name):
    layout = small(example_pillar, defaults, label)
    plan = storage.plan(layout, disk(captured(f"{name}-full")))
    assert plan.create == () and plan.refusals == ()
    assert sorted(plan.present) == sorted(captured(f"{name}-full").partitions)


@pytest.mark.parametrize("label,name,missing", [("gpt", "gpt", [5, 6, 7, 8]),
                                                 ("msdos", "dos", [6, 7, 8])])
def test_installed_node_gets_the_missing_partitions_appended(example_pillar, defaults, label,
                                                             name, missing):
    layout = small(example_pillar, defaults, label)
    plan = storage.plan(layout, disk(captured(f"{name}-installed")))
    assert not plan.new_table and not plan.refusals
    full = captured(f"{name}-full").partitions
    assert [p.number for p in plan.create] == missing
    assert all(p == full[p.number] for p in plan.create)
    text = storage.script(layout, plan)
    assert not text.startswith("label:")
    assert text.splitlines()[0] == f"sda{missing[0]} : start={full[missing[0]].start}, " \
                                   f"size={full[missing[0]].size}, type={full[missing[0]].type}"


def test_script_of_a_new_dos_table_lets_the_extended_run_to_the_end(example_pillar, defaults):
    layout = small(example_pillar, defaults, "msdos")
    text = storage.script(layout, storage.plan(layout, disk()))
    lines = text.splitlines()
    assert lines[0] == "label: dos"
    assert "sda3 : start=116736, type=5" in lines


def test_foreign_table_is_refused(example_pillar, defaults):
    plan = storage.plan(small(example_pillar, defaults), disk(captured("foreign")))
    assert plan.create == ()
    text = "\n".join(plan.refusals)
    assert "partition 1 (ext4 /) exists with size 132120576 bytes, the pillar wants 33554432" in text


def test_another_table_type_is_refused(example_pillar, defaults):
    plan = storage.plan(small(example_pillar, defaults), disk(captured("dos-full")))
    assert plan.create == ()
    assert plan.refusals == ("sda has a dos partition table, the pillar wants gpt "
                             "(trash:storage:label); refusing to replace a partition table, "
                             "nothing was changed",)


def test_a_partition_the_pillar_does_not_know_is_refused(example_pillar, defaults):
    table = captured("gpt-installed")
    extra = {**table.partitions, 3: storage.Part(3, 200000, 2048, GPT_LINUX)}
    plan = storage.plan(small(example_pillar, defaults),
                        disk(dataclasses.replace(table, partitions=extra)))
    assert plan.create == ()
    assert any("partition 3 (start 200000" in r and "not in the pillar's layout" in r
               for r in plan.refusals)


def test_a_partition_of_another_type_is_refused(example_pillar, defaults):
    table = captured("gpt-installed")
    parts = dict(table.partitions)
    parts[2] = dataclasses.replace(parts[2], type=GPT_LINUX)
    plan = storage.plan(small(example_pillar, defaults),
                        disk(dataclasses.replace(table, partitions=parts)))
    assert plan.create == ()
    assert "partition 2 (swap) exists with type 0FC63DAF" in plan.refusals[0]


def test_partitions_out_of_order_are_refused(example_pillar, defaults):
    table = captured("gpt-full")
    parts = dict(table.partitions)
    # 4 moved behind 5: same size and type, but not where the layout puts it
    parts[4] = dataclasses.replace(parts[4], start=parts[8].start + parts[8].size)
    plan = storage.plan(small(example_pillar, defaults, p8={"size": "8M", "drbd": "mirror2"}),
                        disk(dataclasses.replace(table, partitions=parts)))
    assert any("partition 4 (ext4 /var)" in r and "out of order" in r for r in plan.refusals)


@pytest.mark.parametrize("found", [{"TYPE": "ext4", "USAGE": "filesystem"},
                                   {"TYPE": "drbd", "VERSION": "v08"}])
def test_a_signature_in_the_space_of_a_new_partition_is_refused(example_pillar, defaults, found):
    layout = small(example_pillar, defaults)
    table = captured("gpt-installed")
    first = storage.plan(layout, disk(table))
    assert first.regions(512)[6] == (149504 * 512, 16384 * 512)
    plan = storage.plan(layout, disk(table), {5: {}, 6: found, 7: None, 8: {}})
    assert plan.create == () and len(plan.refusals) == 1
    assert plan.refusals[0].startswith("sda: the space of partition 6 (DRBD mirror0) "
                                       "(sectors 149504-165887) holds ")
    assert f"TYPE={found['TYPE']}" in plan.refusals[0]


def test_a_signature_on_a_disk_without_table_is_refused(example_pillar, defaults):
    plan = storage.plan(small(example_pillar, defaults), disk(None, {"TYPE": "LVM2_member"}))
    assert plan.create == ()
    assert "holds TYPE=LVM2_member; refusing to partition it" in plan.refusals[0]


def test_a_disk_too_small_is_refused(example_pillar, defaults):
    plan = storage.plan(small(example_pillar, defaults), disk(size=64 << 20))
    assert plan.create == ()
    assert any("partition 5 (ext4 /local) does not fit" in r for r in plan.refusals)


def test_a_size_that_is_no_multiple_of_the_sector_is_refused(example_pillar, defaults):
    layout = small(example_pillar, defaults, p7={"size": "9K", "drbd": "mirror1"})
    plan = storage.plan(layout, disk(sector=4096, size=SIZE))
    assert any("9216 bytes is not a multiple of the 4096-byte sector" in r for r in plan.refusals)


def test_a_table_for_other_sectors_is_refused(example_pillar, defaults):
    plan = storage.plan(small(example_pillar, defaults), disk(captured("gpt-full"), sector=4096))
    assert any("written for 512-byte sectors, the disk has 4096" in r for r in plan.refusals)


# ---- fstab ---------------------------------------------------------------------------


FSTAB = """# /etc/fstab: static file system information.
UUID=1111-root /               ext4    errors=remount-ro 0       1
/dev/sda4      /var            ext4    defaults          0       2
UUID=2222-swap none            swap    sw                0       0
/dev/sdb1      /media/usb0     auto    rw,user,noauto    0       0
"""


def test_parse_fstab_skips_comments():
    entries = storage.parse_fstab(FSTAB)
    assert [e.file for e in entries] == ["/", "/var", "none", "/media/usb0"]
    assert entries[0].options == "errors=remount-ro" and entries[0].passno == "1"


def test_fstab_plan_accepts_an_installed_node_as_it_is():
    wanted = [(1, "ext4", "/", {"/dev/sda1", "UUID=1111-root"}),
              (4, "ext4", "/var", {"/dev/sda4", "UUID=4444"}),
              (2, "swap", None, {"/dev/sda2", "UUID=2222-swap"}),
              (5, "ext4", "/local", {"/dev/sda5", "UUID=5555"})]
    add, present, refusals = storage.fstab_plan(wanted, storage.parse_fstab(FSTAB))
    assert (add, sorted(present), refusals) == ([5], [1, 2, 4], [])


def test_fstab_plan_refuses_another_device_or_filesystem_on_a_mount_point():
    wanted = [(1, "ext4", "/", {"/dev/sda1", "UUID=9999"}),
              (4, "xfs", "/var", {"/dev/sda4"})]
    add, present, refusals = storage.fstab_plan(wanted, storage.parse_fstab(FSTAB))
    assert add == [] and present == []
    assert refusals[0] == ("/: fstab mounts UUID=1111-root (ext4) there, the pillar wants "
                           "partition 1 (ext4); refusing to change it")
    assert "/dev/sda4 (ext4)" in refusals[1]


def test_fstab_lines():
    assert storage.fstab_entry("ext4", "/", "abc").line() == "UUID=abc\t/\text4\tdefaults\t0\t1"
    assert storage.fstab_entry("ext4", "/var", "abc").passno == "2"
    assert storage.fstab_entry("swap", None, "abc").line() == "UUID=abc\tnone\tswap\tsw\t0\t0"
    # a space in a mount point is escaped as fstab wants it, and read back
    line = storage.fstab_entry("ext4", "/srv/my data", "abc").line()
    assert line.split("\t")[1] == "/srv/my\\040data"
    assert storage.parse_fstab(line)[0].file == "/srv/my data"


def test_mounts_come_parents_first_and_swap_last(example_pillar, defaults):
    layout = small(example_pillar, defaults)
    assert storage.mounts(layout) == [(1, "ext4", "/"), (5, "ext4", "/local"),
                                      (4, "ext4", "/var"), (2, "swap", None)]


# ---- the model's layout rules ---------------------------------------------------------


def test_example_layout_is_valid_as_msdos(example_pillar, defaults):
    example_pillar["trash"]["storage"]["label"] = "msdos"
    model.load(example_pillar, defaults)


def test_rest_is_valid_on_the_last_partition(example_pillar, defaults):
    small(example_pillar, defaults)  # 8: rest


@pytest.mark.parametrize("label,change,key,words", [
    ("msdos", {6: None}, "trash:storage:partitions",
     "logical partitions are numbered 5, 6, ... without a gap, not 5, 7, 8"),
    ("gpt", {4: {"size": "rest", "filesystem": "ext4", "mount": "/var"}},
     "trash:storage:partitions:4:size", "only the partition at the end of the disk (8)"),
    ("msdos", {4: {"size": "rest", "filesystem": "ext4", "mount": "/var"}},
     "trash:storage:partitions:4:size", "only the partition at the end of the disk (8)"),
    ("gpt", {5: {"size": "16M", "filesystem": "ext4", "mount": "/var/"}},
     "trash:storage:partitions:5:mount", "/var/ is also the mount point of partition 4"),
    ("gpt", {6: {"size": "8M", "drbd": "mirror0", "mount": "/data"}},
     "trash:storage:partitions:6:mount", "only a partition with a filesystem is mounted"),
    ("gpt", {5: {"size": "16M", "filesystem": "ext4", "mount": "/shared"}},
     "trash:storage:partitions:5:mount", "is trash:shared:mountpoint"),
    ("msdos", {8: {"size": "2T", "drbd": "mirror2"}},
     "trash:storage:partitions", "an msdos label addresses less than 2 TiB"),
    ("gpt", {2: {"size": "0", "filesystem": "swap"}},
     "trash:storage:partitions:2:size", "'0' is not a size"),
    ("gpt", {2: {"filesystem": "swap"}},
     "trash:storage:partitions:2:size", "None is not a size"),
])
def test_layout_rules(example_pillar, defaults, label, change, key, words):
    parts = yaml.safe_load((DATA / "layout-small.yaml").read_text())
    for number, spec in change.items():
        if spec is None:
            del parts[number]
        else:
            parts[number] = spec
    example_pillar["trash"]["storage"] = {"label": label, "partitions": parts}
    found = problems(example_pillar, defaults)
    assert key in found, found
    assert words in found[key]


# ---- the states translate the module's answers -----------------------------------------


@pytest.mark.parametrize("state_name,function", [
    ("storage_layout", "trash_storage.layout"),
    ("storage_filesystems", "trash_storage.filesystems"),
    ("storage_mounted", "trash_storage.mounts")])
@pytest.mark.parametrize("test", [True, False])
def test_states_pass_test_mode_to_the_module(state_name, function, test):
    calls = []

    def answer(test):
        calls.append(test)
        return {"result": None if test else True, "changes": {"x": {"old": None, "new": 1}},
                "comment": "c"}

    mod = load("_states/trash.py", "trash_state_for_storage")
    mod.__salt__ = {function: answer}
    mod.__opts__ = {"test": test}
    ret = getattr(mod, state_name)("id")
    assert calls == [test]
    assert ret == {"name": "id", "result": None if test else True,
                   "changes": {"x": {"old": None, "new": 1}}, "comment": "c"}
