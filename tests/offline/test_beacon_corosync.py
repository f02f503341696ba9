"""The corosync beacon on a real two-node corosync: it fires on change, only on change."""

import copy
import os

import pytest

from corosync_pair import running_pair, wait
from modload import file_cache, load, run_all, trash_module
from trashlib import model

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture
def beacon(tmp_path, example_pillar, defaults):
    """(pair, poll): poll() runs the beacon of node1 once, inside node1's namespace."""
    cfg = model.load(copy.deepcopy(example_pillar), defaults)
    with running_pair(cfg, tmp_path) as pair:
        in_ns = lambda cmd, **kw: run_all(["ip", "netns", "exec", pair.ns["node1"], *cmd], **kw)
        trash = trash_module(example_pillar, "trash_for_beacon",
                             cachedir=file_cache(tmp_path / "cache"))
        trash.__salt__["cmd.run_all"] = in_ns
        bea = load("_beacons/trash_corosync.py", "trash_corosync_beacon", opts={"id": "node1"},
                   context={}, salt={"trash.corosync_snapshot": trash.corosync_snapshot,
                                     "trash.corosync_events": trash.corosync_events})
        yield pair, lambda: bea.beacon([{"interval": 5}])


def strip(events):
    return [(e["tag"], e["subject"], e["old"], e["new"]) for e in events]


def test_baseline_then_only_changes(beacon):
    pair, poll = beacon
    assert poll() == []  # the first poll records a baseline
    assert poll() == []  # nothing changed, nothing fires

    pair.link("storage", "node1", up=False)
    fired = []
    wait(lambda: fired.extend(poll()) or fired, 60, "the storage link event")
    assert strip(fired) == [("link/storage", "storage", "connected", "disconnected")]
    assert fired[0]["node"] == "node1" and fired[0]["timestamp"] > 0
    assert poll() == []

    pair.link("storage", "node1", up=True)
    fired = []
    wait(lambda: fired.extend(poll()) or fired, 60, "the storage link coming back")
    assert strip(fired) == [("link/storage", "storage", "disconnected", "connected")]

    pair.stop("node2")
    fired = []
    wait(lambda: fired.extend(poll()) or any(e["tag"] == "membership" for e in fired), 60,
         "node2 leaving")
    assert ("membership", "node2", "member", "lost") in strip(fired)


def test_validate():
    bea = load("_beacons/trash_corosync.py", "trash_corosync_beacon_v")
    assert bea.validate([{"interval": 5}])[0] is True
    assert bea.validate({"interval": 5})[0] is False
    assert "unknown option(s) intervall" in bea.validate([{"intervall": 5}])[1]
