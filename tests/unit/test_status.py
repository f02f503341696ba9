"""Status: corosync's and Pacemaker's real answers (captured) turned into one verdict."""

import pathlib

import pytest

from trashlib import corosync, pcmk, status

DATA = pathlib.Path(__file__).parents[1] / "data"


def text(name):
    return (DATA / name).read_text()


def links(name):
    return corosync.parse_links(text(f"corosync/cfgtool-s-{name}.txt"))


def quorum(name):
    return corosync.parse_quorum(text(f"corosync/quorumtool-s-{name}.txt"))


def test_parse_links_and_quorum_on_real_output():
    both = links("both")
    assert both["nodeid"] == 1 and sorted(both["links"]) == [0, 1, 2]
    assert both["links"][2] == {"addr": "10.10.5.1", "peers": {2: "connected"}}
    assert links("backchannel-down")["links"][0]["peers"] == {2: "disconnected"}
    q = quorum("both")
    assert q["quorate"] is True and q["members"] == [(1, "node1"), (2, "node2")]
    assert "2Node" in q["flags"] and "WaitForAll" in q["flags"]
    alone = quorum("alone")
    assert alone["quorate"] is False and alone["members"] == [(1, "node1")]


@pytest.fixture
def settled():
    """Pacemaker's view after node1 failed and came back (captured crm_mon)."""
    return pcmk.parse_status(text("pcmk/crm_mon-rejoined.xml"))


def test_healthy_membership(cfg):
    found = status.assess(cfg, "node1", links("both"), quorum("both"), None)
    # Pacemaker is not running in this call: that alone is reported
    assert found["findings"] == ["failed: Pacemaker is not running on node1"]


def test_a_link_down_is_named_by_its_zone(cfg, settled):
    found = status.assess(cfg, "node1", links("backchannel-down"), quorum("both"), settled)
    assert any("heartbeat link(s) to node2 down: backchannel; up: storage, serial" in f
               for f in found["findings"])


def test_only_the_serial_link_left_is_not_hidden(cfg, settled):
    only_serial = links("both")
    for n in (0, 1):
        only_serial["links"][n]["peers"][2] = "disconnected"
    found = status.assess(cfg, "node1", only_serial, quorum("both"), settled)
    line = next(f for f in found["findings"] if "heartbeat" in f)
    assert "only the serial link holds the membership" in line and line.startswith("degraded")


def test_peer_lost_and_quorum(cfg):
    lost = status.assess(cfg, "node1", links("peer-lost"), quorum("peer-lost"), None)
    assert "degraded: node2 is not a cluster member: lost, fenced or not started" in lost["findings"]
    alone = status.assess(cfg, "node1", links("alone"), quorum("alone"), None)
    assert alone["verdict"] == "failed"
    assert alone["findings"][0].startswith("failed: not quorate (waiting to see every node once")


def test_guests_away_from_home_after_a_rejoin(cfg, settled):
    found = status.assess(cfg, "node1", links("both"), quorum("both"), settled)
    assert found["verdict"] == "degraded"
    assert ("degraded: guest fileserver runs on node2, away from its home node1: migrate it "
            "back by hand once node1 is verified (R13)") in found["findings"]
    assert "degraded: guest stinky is stopped (home node1)" in found["findings"]
    assert not any("shell2" in f for f in found["findings"])


def test_corosync_down_is_a_failure_and_drift_is_named(cfg, settled):
    found = status.assess(cfg, "node2", None, None, settled,
                          drift={"drbd": ["/etc/drbd.d/mirror1.res"], "cluster": []})
    assert found["findings"][0] == "failed: corosync is not running on node2"
    assert ("degraded: drbd files differ from the pillar: /etc/drbd.d/mirror1.res "
            "(state.apply fixes them)") in found["findings"]


def test_corosync_events_from_real_snapshots(cfg):
    both = corosync.snapshot(cfg, "node1", links("both"), quorum("both"))
    assert both == {"running": True, "quorate": True, "members": ["node1", "node2"],
                    "links": {"backchannel": "connected", "storage": "connected",
                              "serial": "connected"}}
    cut = corosync.snapshot(cfg, "node1", links("backchannel-down"), quorum("both"))
    lost = corosync.snapshot(cfg, "node1", links("peer-lost"), quorum("peer-lost"))
    alone = corosync.snapshot(cfg, "node1", links("alone"), quorum("alone"))
    down = corosync.snapshot(cfg, "node1", None, None)
    tags = lambda a, b: [(e["tag"], e["subject"], e["old"], e["new"]) for e in corosync.events(a, b)]
    assert tags(both, both) == []
    assert tags(both, cut) == [("link/backchannel", "backchannel", "connected", "disconnected")]
    assert ("membership", "node2", "member", "lost") in tags(both, lost)
    assert ("quorum", "quorum", "quorate", "not quorate") in tags(lost, alone)
    assert tags(both, down) == [("corosync", "corosync", "running", "stopped")]


def drbd_proc(name):
    from trashlib import drbd
    return drbd.parse_proc_drbd(text(f"drbd/{name}.txt"))


def test_mirrors_replicating_and_up_to_date_are_ok(cfg):
    found = status.assess(cfg, "node1", links("both"), quorum("both"), None,
                          drbd=drbd_proc("proc-node1-running"))["findings"]
    assert not [f for f in found if "mirror" in f], found


def test_a_resync_a_down_mirror_and_a_standalone_one_are_named(cfg):
    proc = drbd_proc("proc-syncing")  # mirror0/1 SyncSource, mirror2 both Inconsistent
    found = status.assess(cfg, "node1", links("both"), quorum("both"), None,
                          drbd=proc)["findings"]
    assert "degraded: mirror0 resynchronising (26%): to node2" in found
    assert "degraded: mirror2 data on node1 is Inconsistent: it cannot be promoted here" in found
    del proc[1]
    proc[0] = dict(proc[0], cs="StandAlone", ds=("UpToDate", "DUnknown"), sync=None)
    result = status.assess(cfg, "node1", links("both"), quorum("both"), None, drbd=proc)
    assert result["verdict"] == "failed"
    assert any(f.startswith("failed: mirror0 is StandAlone: node1 refuses to talk to node2")
               for f in result["findings"])
    assert ("failed: mirror1 is down on node1: its guests and filesystems cannot run here"
            in result["findings"])


def test_an_unreachable_bmc_means_fencing_cannot_work(cfg):
    bmcs = {"node2": {"address": "10.10.4.2", "state": "unreachable",
                      "reason": "no answer within 5 s"}}
    result = status.assess(cfg, "node1", links("both"), quorum("both"), None, bmcs=bmcs)
    assert ("failed: cannot fence node2: its BMC 10.10.4.2 is unreachable (no answer within 5 s)"
            in result["findings"])
    bmcs["node2"]["state"] = "on"
    result = status.assess(cfg, "node1", links("both"), quorum("both"), None, bmcs=bmcs)
    assert not any("fence" in f for f in result["findings"])


def test_a_remembered_failure_is_named_with_its_cleanup(cfg):
    st = pcmk.parse_status(text("pcmk/crm_mon-start-failed.xml"))
    found = status.assess(cfg, "node1", links("both"), quorum("both"), st)["findings"]
    assert ("degraded: guest-fileserver: start failed on node1: not installed (environment is "
            "invalid, resource considered stopped), 2026-11-27 04:54:30Z; once the cause is "
            "fixed: crm_resource --cleanup --resource guest-fileserver --node node1") in found


def test_local_guests_not_running_are_named(cfg):
    result = status.assess(cfg, "node1", links("both"), quorum("both"), None,
                           local={"ns1": "stopped", "other": "running"})
    assert ("degraded: /local guest ns1 is stopped on node1 (virsh start it; libvirt "
            "autostarts it at boot)") in result["findings"]
    assert not any("other" in f for f in result["findings"])


@pytest.mark.parametrize("capture, level, words", [
    ("mdstat-clean.txt", None, None),
    ("mdstat-assembled.txt", None, None),
    ("mdstat-resync.txt", "degraded", "the RAID array /dev/md9: resync 1.7%"),
    ("mdstat-degraded.txt", "degraded", "is degraded [U_] (members present: loop0); once the "
                                        "disk is replaced: mdadm /dev/md9 --add <disk>"),
    ("mdstat-inactive.txt", "failed", "the RAID array /dev/md9 is inactive"),
    ("mdstat-none.txt", "failed", "the RAID array /dev/md9 is not assembled"),
])
def test_the_software_raid_from_real_mdstat(cfg, capture, level, words):
    from trashlib import raid
    cfg["nodes"]["node1"].update(disk="/dev/md9", raid={"level": 1, "members": ["/dev/loop0",
                                                                                 "/dev/loop1"]})
    mdstat = raid.parse_mdstat(text(f"raid/{capture}"))
    found = status.assess(cfg, "node1", links("both"), quorum("both"), mdstat=mdstat)
    lines = [f for f in found["findings"] if "RAID" in f]
    if level is None:
        assert lines == [], found
    else:
        assert len(lines) == 1 and lines[0].startswith(f"{level}: ") and words in lines[0], lines


def test_a_cluster_file_system_that_does_not_answer_fails_the_node(cfg):
    got = status.assess(cfg, "node1", links("backchannel-down"), quorum("both"),
                        stalled=("/shared", 10), dlm="tcp")
    assert got["verdict"] == "failed"
    line = [f for f in got["findings"] if "/shared did not" in f]
    assert len(line) == 1 and line[0].startswith("failed: /shared did not answer a read "
                                                 "within 10 s"), got
    assert "first corosync link (backchannel) only" in line[0]
    over_sctp = status.assess(cfg, "node1", links("backchannel-down"), quorum("both"),
                              stalled=("/shared", 10), dlm="sctp")["findings"]
    assert any("/shared did not answer" in f and "over none of the corosync links" in f
               for f in over_sctp), over_sctp
    assert not any("/shared" in f for f in status.assess(
        cfg, "node1", links("backchannel-down"), quorum("both"))["findings"])


def test_reads_within_gives_up_on_a_read_that_never_ends(trash_mod, tmp_path):
    """A FIFO without a writer blocks its reader, as a GFS2 read waiting for the peer's
    lock does: the probe answers False instead of waiting for it."""
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    plain = tmp_path / "plain.xml"
    plain.write_text("<domain/>")
    assert trash_mod._reads_within([str(plain)], 30) is True
    assert trash_mod._reads_within([str(plain), str(fifo)], 1) is False
    with open(fifo, "w"):  # the stuck reader gets its end of file and exits
        pass


def test_dlm_over_tcp_is_named_with_the_way_to_sctp(cfg):
    """DLM takes its transport when it starts: a node whose DLM still runs over TCP (it
    started before dlm.conf said SCTP) has one path to the peer, and status says so."""
    tcp = status.assess(cfg, "node1", links("both"), quorum("both"), dlm="tcp")
    line = [f for f in tcp["findings"] if "DLM runs over" in f]
    assert len(line) == 1 and line[0].startswith("degraded: DLM runs over TCP: it reaches the "
                                                 "peer over the first corosync link "
                                                 "(backchannel) only"), tcp
    assert "stop DLM on both nodes at once" in line[0]
    for dlm in ("sctp", None):  # SCTP, or DLM not running: nothing to say
        assert not any("DLM runs" in f for f in status.assess(
            cfg, "node1", links("both"), quorum("both"), dlm=dlm)["findings"])


def fence_lines(cfg, node, capture):
    st = pcmk.parse_status(text(f"pcmk/{capture}"))
    return [f for f in status.assess(cfg, node, links("both"), quorum("both"), st)["findings"]
            if "fence" in f or "powered off" in f]


def test_who_fenced_the_absent_peer_and_the_request_it_left(cfg):
    """On the survivor after the storage link's loss (captured crm_mon): the peer was
    powered off by DRBD's handler through the survivor, and the peer's own request, which
    waited when its node went, is explained instead of looking like a fencing to come."""
    lines = fence_lines(cfg, "node1", "crm_mon-node2-lost.xml")
    assert "degraded: node2 was powered off at 2026-12-07 21:05:55Z through node1, asked by " \
           "node1 for DRBD's fence-peer handler" in lines, lines
    waits = [f for f in lines if "waits in the history" in f]
    assert waits == ["degraded: a request to fence (off) node1 waits in the history, asked by "
                     "node2 for DRBD's fence-peer handler: node2 was gone before it ran; it is "
                     "marked failed when node2 rejoins"], lines
    # node1's request of the earlier outage, marked failed by its restarted fencer: no finding
    assert not any("failed at" in f for f in lines), lines
    away = fence_lines(cfg, "node2", "crm_mon-node1-lost.xml")
    # the earlier loss's requests (Pacemaker, DLM at 20:50) are another story
    assert "degraded: node1 was powered off at 2026-12-07 20:56:46Z through node2, asked by " \
           "node2 for DRBD's fence-peer handler" in away, away


def test_the_first_request_of_a_loss_powered_the_node_off(cfg):
    """Once node1 is off its membership is lost too: DLM asks as well, and its request,
    run after the device's delay, is the newest success. The line names the first."""
    import dataclasses
    st = pcmk.parse_status(text("pcmk/crm_mon-node1-lost.xml"))
    drbd = st.fencing[1]
    dlm = dataclasses.replace(st.fencing[-1], completed="2026-12-07 20:57:58Z")
    later = dataclasses.replace(st, fencing=(st.fencing[0], dlm) + st.fencing[1:])
    lines = status.assess(cfg, "node2", links("both"), quorum("both"), later)["findings"]
    assert "degraded: node1 was powered off at 2026-12-07 20:56:46Z through node2, asked by " \
           "node2 for DRBD's fence-peer handler; then also for DLM" in lines, lines
    assert drbd.requester == "drbd" and dlm.requester == "stonith-api"
    # beyond the fence delay and a minute (the example's 15 s + 60): DLM's own loss
    alone = dataclasses.replace(dlm, completed="2026-12-07 20:58:02Z")
    lines = status.assess(cfg, "node2", links("both"), quorum("both"), dataclasses.replace(
        st, fencing=(alone,) + st.fencing[1:]))["findings"]
    assert "degraded: node1 was powered off at 2026-12-07 20:58:02Z through node2, asked by " \
           "node2 for DLM" in lines, lines


def test_pending_and_unanswered_failed_fencing(cfg):
    """A request from a live node is a fencing to come; a failure no later success answers
    is named with its reason; both peers online again: their old successes say nothing."""
    import dataclasses
    st = pcmk.parse_status(text("pcmk/crm_mon-node2-lost.xml"))
    pending, success, failed = st.fencing[:3]
    both = status.assess(cfg, "node1", links("both"), quorum("both"), dataclasses.replace(
        pcmk.parse_status(text("pcmk/crm_mon-rejoined.xml")),
        fencing=(dataclasses.replace(pending, origin="node1", target="node2"), success,
                 dataclasses.replace(failed, completed="2026-12-07 21:09:00Z",
                                     reason="fence_ipmilan: Unable to obtain correct plug status"))))
    lines = both["findings"]
    assert both["verdict"] == "failed"
    assert "failed: fencing (off) of node2 is pending, asked by node1 for DRBD's fence-peer " \
           "handler" in lines, lines
    assert "degraded: fencing (off) of node2 failed at 2026-12-07 21:09:00Z, asked by node1 " \
           "for DRBD's fence-peer handler: fence_ipmilan: Unable to obtain correct plug " \
           "status; once understood: stonith_admin --history node2 --cleanup" in lines, lines
    assert not any("powered off" in f for f in lines), lines
    # the same failure before the success: answered, nothing to say
    older = dataclasses.replace(failed, reason="fence_ipmilan: timed out")
    st2 = dataclasses.replace(pcmk.parse_status(text("pcmk/crm_mon-rejoined.xml")),
                              fencing=(success, older))
    assert not any("fenc" in f for f in status.assess(
        cfg, "node1", links("both"), quorum("both"), st2)["findings"])
    # node1's yielding request after node1's rejoin: its fencer restarted, nothing ran
    stale = dataclasses.replace(failed, completed="2026-12-07 21:09:00Z")
    st3 = dataclasses.replace(st2, fencing=(stale, success))
    assert not any("fenc" in f for f in status.assess(
        cfg, "node1", links("both"), quorum("both"), st3)["findings"])
