"""The DRBD beacon over real /proc/drbd captures: a baseline, then one event per change."""

import pathlib

import pytest

from modload import load

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/drbd"


@pytest.fixture
def beacon(trash_mod, tmp_path):
    proc = tmp_path / "drbd"
    bea = load("_beacons/trash_drbd.py", "trash_drbd_beacon", context={},
               opts={"id": "node1", "trash_proc_drbd": str(proc)},
               salt={"trash.config": trash_mod.config})

    def poll(capture):
        if capture is None:
            proc.unlink(missing_ok=True)
        else:
            proc.write_text((DATA / f"{capture}.txt").read_text())
        return [(e["tag"], e["old"], e["new"]) for e in bea.beacon([{"interval": 5}])]
    return poll


def test_baseline_then_the_initial_sync_and_pacemaker_as_events(beacon):
    assert beacon("proc-fresh-connected") == []  # the baseline
    assert beacon("proc-fresh-connected") == []  # nothing changed
    # node1 forced mirror0 and mirror1: it is the source, the peer is syncing
    assert beacon("proc-syncing") == [
        ("mirror0/connection", "Connected", "SyncSource"), ("mirror0/disk", "Inconsistent", "UpToDate"),
        ("mirror1/connection", "Connected", "SyncSource"), ("mirror1/disk", "Inconsistent", "UpToDate")]
    # under Pacemaker: mirror0 Primary on both, mirror1 here, mirror2 on the peer
    assert beacon("proc-node1-running") == [
        ("mirror0/connection", "SyncSource", "Connected"), ("mirror0/role", "Secondary", "Primary"),
        ("mirror0/peer_disk", "Inconsistent", "UpToDate"),
        ("mirror1/connection", "SyncSource", "Connected"), ("mirror1/role", "Secondary", "Primary"),
        ("mirror1/peer_disk", "Inconsistent", "UpToDate"),
        ("mirror2/disk", "Inconsistent", "UpToDate"), ("mirror2/peer_disk", "Inconsistent", "UpToDate")]


def test_the_module_unloaded_reads_as_every_resource_down(beacon):
    beacon("proc-node1-running")
    events = beacon(None)
    assert ("mirror1/connection", "Connected", "Unconfigured") in events
    assert ("mirror1/role", "Primary", "Unconfigured") in events
    assert len(events) == 12


def test_validate_refuses_unknown_options():
    bea = load("_beacons/trash_drbd.py", "trash_drbd_beacon_v")
    assert bea.validate([{"interval": 5}])[0] is True
    ok, why = bea.validate([{"interval": 5, "resource": "mirror0"}])
    assert ok is False and "resource" in why
