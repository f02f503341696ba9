"""The storage states against disks that hold data, on node1's loop devices: a disk with a
foreign partition table and RAID members with one are refused and left intact, empty
members become an array that is later assembled, never recreated. They need the formula in
the node, not a converged cluster, so they run before the first converge (tests/lab/
conftest.py orders them after test_lab.py): each salt-call on an idle node takes a fraction
of what it takes beside a running cluster."""

import json
import pathlib
import sys

import pytest

from trashlib import raid

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))

from tlab import converge  # noqa: E402


@pytest.fixture(scope="module")
def pushed(lab):
    """The lab with the checkout and lab pillar in node1 (what salt-call --local reads)."""
    converge.push(("node1",))
    return lab


def test_storage_refuses_a_disk_with_a_foreign_table_and_leaves_it_intact(pushed):
    """node1's storage states pointed (by a pillar override) at a disk that holds another
    partition table with data on it: every storage state refuses, nothing is written."""
    setup = ("set -e; rm -f /var/tmp/foreign.img; truncate -s 2G /var/tmp/foreign.img; "
             "printf 'label: gpt\\nstart=2048, size=409600, type=L\\n' | "
             "sfdisk -q /var/tmp/foreign.img; "
             "dd if=/dev/urandom of=/var/tmp/foreign.img bs=1M seek=1 count=4 conv=notrunc "
             "status=none; losetup -fP --show /var/tmp/foreign.img")
    r = pushed.run("node1", setup, timeout=120)
    assert r.returncode == 0, r.stderr
    loop = r.stdout.strip()
    digest = "dd if=/var/tmp/foreign.img bs=1M count=8 status=none | sha256sum"
    try:
        before = pushed.run("node1", digest, timeout=60).stdout
        override = json.dumps({"trash": {"nodes": {"node1": {"disk": loop, "raid": None}}}})
        ret = converge.call("node1", "state.sls", "trash.storage", f"pillar={override}")
        results = {s["__id__"]: s for s in ret.values()}
        part = results["trash-storage-partitions-created"]
        assert part["result"] is False and part["changes"] == {}, part
        assert "refus" in part["comment"] and loop in part["comment"], part["comment"]
        # the RAID state has nothing to do: this disk is no software RAID of the pillar
        assert results["trash-storage-raid"]["changes"] == {}, results
        assert all(results[i]["result"] is False for i in (
            "trash-storage-partitions-created", "trash-storage-filesystems-created",
            "trash-storage-mounted")), results
        assert pushed.run("node1", digest, timeout=60).stdout == before
        table = json.loads(pushed.run("node1", f"sfdisk --json {loop}", timeout=60).stdout)
        assert [p["size"] for p in table["partitiontable"]["partitions"]] == [409600]
    finally:
        pushed.run("node1", f"losetup -d {loop}; rm -f /var/tmp/foreign.img", timeout=60)


def storage_with(node, disk, raid):
    """state.sls trash.storage on ``node`` with its disk and raid overridden: {id: state}."""
    override = json.dumps({"trash": {"nodes": {node: {"disk": disk, "raid": raid}}}})
    ret = converge.call(node, "state.sls", "trash.storage", f"pillar={override}")
    return {s["__id__"]: s for s in ret.values()}


def test_raid_is_created_on_empty_members_assembled_from_its_own_and_never_over_data(pushed):
    """On node1's loop devices: members holding data are refused and left intact; empty
    ones become an array; stopped, it is assembled again (same UUID), never recreated."""
    node = "node1"
    files = ["/var/tmp/raid-a.img", "/var/tmp/raid-b.img"]
    setup = (f"set -e; cp {raid.CONF} /var/tmp/mdadm.conf.saved; "
             f"for f in {' '.join(files)}; do rm -f $f; truncate -s 64M $f; done; "
             f"printf 'label: gpt\\nstart=2048, size=40960, type=L\\n' | sfdisk -q {files[0]}; "
             f"dd if=/dev/urandom of={files[0]} bs=1M seek=1 count=4 conv=notrunc status=none; "
             + "; ".join(f"losetup -f --show {f}" for f in files))
    r = pushed.run(node, setup, timeout=120)
    assert r.returncode == 0, r.stderr
    loops = r.stdout.split()
    spec = {"level": 1, "members": loops}
    digest = f"sha256sum {files[0]}"
    try:
        before = pushed.run(node, digest, timeout=60).stdout
        state = storage_with(node, "/dev/md9", spec)["trash-storage-raid"]
        assert state["result"] is False and state["changes"] == {}, state
        assert f"{loops[0]} holds a partition table (gpt)" in state["comment"], state["comment"]
        assert pushed.run(node, digest, timeout=60).stdout == before
        assert pushed.run(node, "test -e /sys/block/md9", timeout=60).returncode == 1

        pushed.run(node, f"wipefs -qa {loops[0]}", timeout=60)
        state = storage_with(node, "/dev/md9", spec)["trash-storage-raid"]
        assert state["result"] is True and "created" in state["changes"]["/dev/md9"]["new"], state
        uuid = raid.parse_export(pushed.run(
            node, "mdadm --detail --export /dev/md9", timeout=60).stdout)["MD_UUID"]
        assert state["changes"][raid.CONF]["new"] == f"ARRAY /dev/md9 metadata=1.2 UUID={uuid}"

        pushed.run(node, "mdadm --stop /dev/md9", timeout=60)
        state = storage_with(node, "/dev/md9", spec)["trash-storage-raid"]
        assert state["result"] is True, state
        assert list(state["changes"]) == ["/dev/md9"], state
        assert "assembled" in state["changes"]["/dev/md9"]["new"], state
        detail = raid.parse_export(pushed.run(
            node, "mdadm --detail --export /dev/md9", timeout=60).stdout)
        assert detail["MD_UUID"] == uuid, detail
        state = storage_with(node, "/dev/md9", spec)["trash-storage-raid"]
        assert state["result"] is True and state["changes"] == {}, state
    finally:
        pushed.run(node, "mdadm --stop /dev/md9 2>/dev/null; "
                            f"losetup -d {' '.join(loops)}; rm -f {' '.join(files)}; "
                            f"mv /var/tmp/mdadm.conf.saved {raid.CONF}", timeout=120)
