"""trash_storage.layout with the tools scripted (their answers are real captures): the
exact sfdisk command, its script, and that test mode writes nothing."""

import pathlib
from unittest import mock

import pytest
import yaml

from modload import load

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/storage"
SIZE = 128 << 20


class Tools:
    """cmd.run_all answering as the tools do for a 128 MiB disk holding ``before``; after
    an sfdisk write, sfdisk --json shows ``after``."""

    def __init__(self, before, after):
        self.tables = [before, after]
        self.calls = []
        self.writes = []

    def __call__(self, cmd, python_shell=False, ignore_retcode=True, output_loglevel=None,
                 stdin=None, env=None):
        assert python_shell is False and isinstance(cmd, list)
        self.calls.append(cmd)
        if cmd[:2] == ["blockdev", "--getsize64"]:
            return {"retcode": 0, "stdout": f"{SIZE}\n", "stderr": ""}
        if cmd[:2] == ["blockdev", "--getss"]:
            return {"retcode": 0, "stdout": "512\n", "stderr": ""}
        if cmd[:2] == ["sfdisk", "--json"]:
            table = self.tables[1 if self.writes else 0]
            if table is None:
                return {"retcode": 1, "stdout": "",
                        "stderr": "sfdisk: /dev/sda: does not contain a recognized partition table"}
            return {"retcode": 0, "stdout": (DATA / f"{table}.json").read_text(), "stderr": ""}
        if cmd[0] == "udevadm":
            return {"retcode": 0, "stdout": "", "stderr": ""}
        if cmd[0] == "blkid":
            return {"retcode": 2, "stdout": "", "stderr": ""}
        if cmd[0] == "sfdisk":
            self.writes.append((cmd, stdin))
            return {"retcode": 0, "stdout": "", "stderr": ""}
        raise AssertionError(f"unexpected command {cmd}")


@pytest.fixture
def storage_mod(trash_mod, example_pillar):
    parts = yaml.safe_load((DATA / "layout-small.yaml").read_text())
    example_pillar["trash"]["storage"] = {"label": "gpt", "partitions": parts}

    def make(before, after):
        tools = Tools(before, after)
        mod = load("_modules/trash_storage.py", "trash_storage_unit",
                   salt={"trash.config": trash_mod.config, "cmd.run_all": tools},
                   opts={"id": "node1"})
        mod.tools = tools
        return mod

    real_exists = __import__("os").path.exists
    with mock.patch("os.path.exists", lambda p: p == "/dev/sda" or real_exists(p)):
        yield make


def test_test_mode_runs_no_write(storage_mod):
    mod = storage_mod("gpt-installed", "gpt-full")
    result = mod.layout(test=True)
    assert result["result"] is None and mod.tools.writes == []
    assert sorted(result["changes"]) == ["partition 5", "partition 6", "partition 7",
                                         "partition 8"]
    assert "/dev/sda5 : start=116736, size=32768, type=0FC63DAF" in result["comment"]
    # the space of each new partition was probed, region by region
    assert ["blkid", "-p", "-o", "export", "--offset", str(116736 * 512), "--size",
            str(32768 * 512), "/dev/sda"] in mod.tools.calls


def test_appends_to_a_matching_table_and_never_deletes_or_wipes(storage_mod):
    mod = storage_mod("gpt-installed", "gpt-full")
    result = mod.layout()
    assert result["result"] is True, result["comment"]
    [(cmd, script)] = mod.tools.writes
    assert cmd == ["sfdisk", "--no-reread", "--wipe", "never", "--wipe-partitions", "never",
                   "--append", "/dev/sda"]
    assert script.splitlines()[0] == ("/dev/sda5 : start=116736, size=32768, "
                                      "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4")
    assert not any("--delete" in c or "always" in c for c in mod.tools.calls)


def test_a_blank_disk_gets_a_new_table(storage_mod):
    mod = storage_mod(None, "gpt-full")
    result = mod.layout()
    assert result["result"] is True and "table" in result["changes"]
    [(cmd, script)] = mod.tools.writes
    assert "--append" not in cmd and script.startswith("label: gpt\n")


def test_a_table_that_differs_after_the_write_is_reported(storage_mod):
    mod = storage_mod("gpt-installed", "gpt-installed")
    result = mod.layout()
    assert result["result"] is False and "differs from the plan" in result["comment"]


def test_a_disk_sfdisk_cannot_read_is_not_taken_for_blank(storage_mod):
    mod = storage_mod("gpt-full", "gpt-full")
    answer = mod.tools.__call__

    def failing(cmd, **kwargs):
        if cmd[:2] == ["sfdisk", "--json"]:
            return {"retcode": 1, "stdout": "", "stderr": "sfdisk: cannot open /dev/sda: "
                                                          "Input/output error"}
        return answer(cmd, **kwargs)

    mod.__salt__["cmd.run_all"] = failing
    with pytest.raises(mod.CommandExecutionError, match="Input/output error"):
        mod.layout()
    assert mod.tools.writes == []


def test_a_matching_table_needs_no_command_that_writes(storage_mod):
    mod = storage_mod("gpt-full", "gpt-full")
    result = mod.layout()
    assert result == {"result": True, "changes": {},
                      "comment": "the partitions of /dev/sda match the pillar (1, 2, 4, 5, 6, 7, 8)"}
    assert mod.tools.writes == []


# blkid -p on a fresh partition of the lab's /dev/vdb (a real capture): a partition device
# always reports its entry in the disk's table, which says nothing about its content
FRESH_PARTITION = """DEVNAME=/dev/vdb5
PART_ENTRY_SCHEME=gpt
PART_ENTRY_UUID=b5bb1d37-5f07-9648-9fab-74cbe3806e1a
PART_ENTRY_TYPE=0fc63daf-8483-4772-8e79-3d69d8477de4
PART_ENTRY_NUMBER=5
PART_ENTRY_OFFSET=2048
PART_ENTRY_SIZE=1048576
PART_ENTRY_DISK=254:16
"""


def test_the_partition_entry_is_not_a_signature(storage_mod):
    mod = storage_mod("gpt-full", "gpt-full")
    answers = {"fresh": FRESH_PARTITION,
               "ext4": FRESH_PARTITION + "UUID=64792e98-e4a3-4428-8311-2d3958ed450c\n"
                                         "TYPE=ext4\nUSAGE=filesystem\n"}
    mod.__salt__["cmd.run_all"] = lambda cmd, **kw: {
        "retcode": 0, "stdout": answers[cmd[-1]], "stderr": ""}
    assert mod.signature("fresh") == {}
    assert mod.signature("ext4") == {"UUID": "64792e98-e4a3-4428-8311-2d3958ed450c",
                                     "TYPE": "ext4", "USAGE": "filesystem"}
    # the mounts still accept an fstab entry by PARTUUID=
    assert mod._probe("ext4")["PART_ENTRY_UUID"] == "b5bb1d37-5f07-9648-9fab-74cbe3806e1a"
