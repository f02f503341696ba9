"""The software RAID plan: create only on members that hold nothing, assemble from the
array's own superblocks, never touch a running array; mdadm.conf names it once. The
parsers read real captures of mdadm 4.2 on the lab's Debian 12 nodes (tests/data/raid)."""

import pathlib

import pytest

from trashlib import raid

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/raid"
WANT = raid.Want("/dev/md0", 1, ("/dev/vdb", "/dev/vdc"))
UUID = "4f3c1e0a:6d2b9c11:8e7f5a43:19b0c2d7"


def text(name):
    return (DATA / name).read_text()


def test_parse_detail_and_examine_on_real_output():
    clean = raid.parse_export(text("detail-clean.txt"))
    assert clean["MD_LEVEL"] == "raid1" and clean["MD_DEVICES"] == "2"
    assert raid.detail_members(clean) == ("/dev/loop0", "/dev/loop1")
    assert raid.detail_members(raid.parse_export(text("detail-degraded.txt"))) == ("/dev/loop0",)
    member = raid.parse_export(text("examine-member.txt"))
    assert raid.norm_uuid(member["MD_UUID"]) == raid.norm_uuid(clean["MD_UUID"])
    # blkid writes the same UUID in another form
    assert raid.norm_uuid(raid.parse_export(text("blkid-member.txt"))["UUID"]) == \
        raid.norm_uuid(clean["MD_UUID"])


def test_a_real_member_is_assembled_and_never_created_over():
    sb = raid.parse_export(text("examine-member.txt"))
    sig = raid.parse_export(text("blkid-member.txt"))
    both = {"/dev/vdb": raid.Member("/dev/vdb", (), sb, sig),
            "/dev/vdc": raid.Member("/dev/vdc", (), sb, sig)}
    assert raid.plan(WANT, None, both).action == "assemble"
    one = dict(both, **{"/dev/vdc": blank("/dev/vdc")})
    plan = raid.plan(WANT, None, one)
    assert plan.action is None and "/dev/vdb carries an md superblock" in plan.refusals[0]


def test_parse_mdstat_on_real_output():
    assert raid.parse_mdstat(text("mdstat-none.txt")) == {}
    assert raid.parse_mdstat(text("mdstat-clean.txt")) == {"md9": {
        "state": "active", "level": "raid1", "status": "UU", "sync": None,
        "members": ["loop0", "loop1"]}}
    assert raid.parse_mdstat(text("mdstat-resync.txt"))["md9"]["sync"] == "resync 1.7%"
    assert raid.parse_mdstat(text("mdstat-degraded.txt"))["md9"]["status"] == "U_"
    assert raid.parse_mdstat(text("mdstat-inactive.txt")) == {"md9": {
        "state": "inactive", "level": None, "status": None, "sync": None,
        "members": ["loop0"]}}
    assembled = raid.parse_mdstat(text("mdstat-assembled.txt"))["md9"]
    assert (assembled["state"], assembled["level"], assembled["status"]) == ("active", "raid1", "UU")


def test_debians_mdadm_conf_names_no_array_and_gets_one_line():
    debian = text("mdadm-conf-debian.txt")
    assert raid.parse_conf(debian) == []
    line, refusal = raid.conf_plan(WANT, UUID, debian)
    assert line == f"ARRAY /dev/md0 metadata=1.2 UUID={UUID}" and refusal is None


def blank(path):
    return raid.Member(path, (), None, {})


def block(uuid=UUID, level="raid1", devices="2"):
    return {"MD_LEVEL": level, "MD_DEVICES": devices, "MD_UUID": uuid}


def members(**over):
    out = {"/dev/vdb": blank("/dev/vdb"), "/dev/vdc": blank("/dev/vdc")}
    out.update({f"/dev/{k}": v for k, v in over.items()})
    return out


def running(**over):
    spec = dict(state="clean", level="raid1", uuid=UUID, raid_devices=2,
                members=("/dev/vdb", "/dev/vdc"))
    spec.update(over)
    return raid.Array(**spec)


def test_blank_members_get_a_new_array_with_exactly_this_command():
    plan = raid.plan(WANT, None, members())
    assert plan.action == "create" and not plan.refusals
    assert plan.command == ("mdadm", "--create", "/dev/md0", "--run", "--metadata=1.2",
                            "--level=1", "--raid-devices=2", "/dev/vdb", "/dev/vdc")


@pytest.mark.parametrize("member, words", [
    (raid.Member("/dev/vdc", (), None, {"PTUUID": "x", "PTTYPE": "gpt"}),
     "/dev/vdc holds a partition table (gpt)"),
    (raid.Member("/dev/vdc", (), None, {"TYPE": "ext4", "UUID": "x"}),
     "/dev/vdc holds a signature (ext4)"),
    (raid.Member("/dev/vdc", (), block(), {"TYPE": "linux_raid_member"}),
     "/dev/vdc carries an md superblock"),
    (raid.Member(), "/dev/vdc does not exist"),
    (raid.Member("/dev/vdc", ("md127",), None, {}), "/dev/vdc is in use by md127"),
])
def test_a_member_that_holds_anything_is_refused_and_nothing_runs(member, words):
    plan = raid.plan(WANT, None, members(vdc=member))
    assert plan.action is None and plan.command == ()
    assert any(words in r for r in plan.refusals), plan.refusals


def test_members_with_the_arrays_own_superblocks_are_assembled_not_created():
    sb = raid.Member("/dev/vdb", (), block(), {"TYPE": "linux_raid_member"})
    plan = raid.plan(WANT, None, members(vdb=sb, vdc=raid.Member("/dev/vdc", (), block(), {})))
    assert plan.action == "assemble" and plan.command == (
        "mdadm", "--assemble", "/dev/md0", "/dev/vdb", "/dev/vdc")


@pytest.mark.parametrize("other", [
    block(uuid="00000000:00000000:00000000:00000001"),  # two arrays' members
    block(level="raid5", devices="3"),
])
def test_superblocks_that_do_not_make_up_the_pillars_array_are_refused(other):
    plan = raid.plan(WANT, None, members(vdb=raid.Member("/dev/vdb", (), block(), {}),
                                         vdc=raid.Member("/dev/vdc", (), other, {})))
    assert plan.action is None and plan.refusals
    assert "nothing is assembled or created" in plan.refusals[-1]


def test_a_running_array_as_the_pillar_says_needs_nothing():
    plan = raid.plan(WANT, running(), members())
    assert plan == raid.Plan()


def test_a_running_array_is_never_changed_when_it_differs():
    plan = raid.plan(WANT, running(level="raid5"), members())
    assert plan.action is None and "is raid5, the pillar says raid1" in plan.refusals[0]
    plan = raid.plan(WANT, running(members=("/dev/vdb", "/dev/vdd")), members())
    assert plan.action is None and "holds /dev/vdd" in plan.refusals[0]


def test_a_degraded_or_resyncing_array_is_reported_with_the_repair_command():
    plan = raid.plan(WANT, running(members=("/dev/vdb",), degraded=1, sync="recover"),
                     members())
    assert plan.action is None and not plan.refusals
    assert "1 of 2 member(s) missing (/dev/vdc)" in plan.notes[0]
    assert "mdadm /dev/md0 --add" in plan.notes[0]
    assert "recover in progress" in plan.notes[1]


def test_members_named_by_id_match_the_kernels_names():
    by_id = raid.Want("/dev/md0", 1, ("/dev/disk/by-id/a", "/dev/disk/by-id/b"))
    plan = raid.plan(by_id, running(), {"/dev/disk/by-id/a": blank("/dev/vdb"),
                                        "/dev/disk/by-id/b": blank("/dev/vdc")})
    assert plan == raid.Plan()


def test_an_inactive_array_is_left_to_a_person():
    plan = raid.plan(WANT, raid.Array("inactive"), members())
    assert plan.action is None and "mdadm --run /dev/md0" in plan.refusals[0]


def test_mdadm_conf_gets_the_array_once():
    line = f"ARRAY /dev/md0 metadata=1.2 UUID={UUID}"
    assert raid.conf_plan(WANT, UUID, "MAILADDR root\n") == (line, None)
    assert raid.conf_plan(WANT, UUID, f"MAILADDR root\n{line}\n") == (None, None)
    # the same array under the dashed form or continued on the next line is the same line
    assert raid.conf_plan(WANT, UUID, "ARRAY /dev/md0\n   UUID=4f3c1e0a-6d2b-9c11-8e7f-5a4319b0c2d7\n") \
        == (None, None)


@pytest.mark.parametrize("text", [
    f"ARRAY /dev/md127 metadata=1.2 UUID={UUID}\n",
    "ARRAY /dev/md0 metadata=1.2 UUID=00000000:00000000:00000000:00000001\n",
])
def test_mdadm_conf_naming_it_otherwise_is_refused(text):
    line, refusal = raid.conf_plan(WANT, UUID, text)
    assert line is None and "correct the line by hand" in refusal


class Tools:
    """cmd.run_all as mdadm and blkid answer for members that hold ``content``."""

    def __init__(self, content):
        self.content = content
        self.calls = []

    def __call__(self, cmd, python_shell=False, ignore_retcode=True, output_loglevel=None,
                 env=None):
        assert python_shell is False
        self.calls.append(cmd)
        if cmd[:2] == ["mdadm", "--examine"]:
            return {"retcode": 1, "stdout": "",
                    "stderr": text("examine-blank.txt").replace("/dev/loop0", cmd[-1])}
        if cmd[0] == "blkid":
            found = self.content.get(cmd[-1])
            return {"retcode": 0 if found else 2, "stdout": found or "", "stderr": ""}
        raise AssertionError(f"unexpected command {cmd}")


@pytest.fixture
def raid_mod(trash_mod, example_pillar):
    from unittest import mock

    from modload import load
    disks = ["/dev/vdb", "/dev/vdc"]
    example_pillar["trash"]["nodes"]["node1"].update(
        disk="/dev/md0", raid={"level": 1, "members": disks})

    def make(content):
        tools = Tools(content)
        mod = load("_modules/trash_storage.py", "trash_storage_raid_unit",
                   salt={"trash.config": trash_mod.config, "cmd.run_all": tools},
                   opts={"id": "node1"})
        mod.tools = tools
        return mod, disks

    real_exists = __import__("os").path.exists
    with mock.patch("shutil.which", return_value="/sbin/mdadm"), \
            mock.patch("os.path.exists", lambda p: p in disks or real_exists(p)):
        yield make


def test_test_mode_shows_the_create_command_and_runs_nothing(raid_mod, tmp_path):
    mod, disks = raid_mod({})
    result = mod.raid(test=True, conf=str(tmp_path / "mdadm.conf"))
    assert result["result"] is None, result
    assert result["changes"]["/dev/md0"] == {
        "old": None, "new": f"created: RAID 1 of {disks[0]}, {disks[1]}"}
    assert "would run: mdadm --create /dev/md0 --run --metadata=1.2" in result["comment"]
    assert [c[:2] for c in mod.tools.calls if c[0] == "mdadm"] == [["mdadm", "--examine"]] * 2
    assert not (tmp_path / "mdadm.conf").exists()


def test_a_member_with_a_partition_table_refuses_before_any_write(raid_mod, tmp_path):
    mod, disks = raid_mod({})
    mod.tools.content[disks[1]] = (DATA / "blkid-gpt-disk.txt").read_text()
    result = mod.raid(conf=str(tmp_path / "mdadm.conf"))
    assert result["result"] is False and result["changes"] == {}
    assert f"{disks[1]} holds a partition table (gpt)" in result["comment"], result["comment"]
    assert not any(c[:2] == ["mdadm", "--create"] for c in mod.tools.calls)
