"""The drills (lab/tlab/drill.py) against the converged lab: every drill's verdict and the
key facts of its timeline. Runs after test_converge.py and test_host.py (tests/lab/
conftest.py orders it) and in this file's order, as one chain, because a fenced node's
return costs minutes under TCG: each loss leaves a node off, `rejoin` brings it back
(nothing moves back), and the next drill starts from there (isolate, storage-link-loss
and power-off accept guests away from home).

CI and `bin/test` run every drill: the serial link, node1's loss, its rejoin and converge,
the storage link's loss with fileserver away on node2 (node1 yields), node1's rejoin,
isolate (node1 fences node2 although node2 holds more: a peer that is gone gets no
handler delay), node2's rejoin and node2 powered off through its BMC (last: it stays off,
`trashlab drill restore` brings it back). TRASHLAB_CHAIN=full adds the tests marked
full_chain (tests/lab/conftest.py): fileserver moved home, the storage link's loss at home
and node2's rejoin after it; the whole chain took 44 minutes on the 2-core host of
2026-11-28, whose TCG was 2.5x slower than today's."""

import sys

import pytest

from tlab import converge, drill

FENCE_DELAY = drill.FENCE_DELAY_S
TOKEN_CONSENSUS = (drill.TOKEN_MS + drill.CONSENSUS_MS) / 1000


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def run(name, *args):
    d = drill.run(name, args)
    say("\n" + d.render())
    return d


def passed(d):
    assert d.verdict == "pass", d.render()
    return d.as_dict()


@pytest.fixture(scope="module")
def ready(lab):
    """A settled cluster (restore waits for one)."""
    passed(run("restore"))
    return lab


def test_serial_link_loss_neither_fences_nor_fails_over(ready):
    d = passed(run("link-loss", "serial"))
    assert d["facts"]["window_s"] >= 2 * TOKEN_CONSENSUS
    events = [e["event"] for e in d["timeline"]]
    assert "corosync reports serial down" in events
    assert "corosync reports serial up again (both nodes)" in events
    assert not any(e.startswith("fencing") for e in events), events


def test_node_loss_fences_the_lost_node_off_and_fails_over(ready):
    d = passed(run("node-loss", "node1"))
    t = d["facts"]["seconds_from_cut"]
    assert t["peer lost (survivor's corosync membership)"] is not None
    # node2 waits the fence delay before it shoots the priority node
    assert t["BMC power off (bmc log)"] >= FENCE_DELAY, t
    assert t["fileserver running on node2"] >= t["BMC power off (bmc log)"], t


def test_rejoin_moves_nothing_back(ready):
    d = passed(run("rejoin", "node1"))
    assert d["facts"]["placement_after"]["guest-fileserver"] == ["node2"]


def test_rejoined_node_converges_without_change(ready):
    res = converge.converge(("node1",))["node1"]
    say("\n" + "\n".join(converge.summary({"node1": res})))
    assert not res["error"], res["error"]
    changed = [s for s in res["states"] if s["changes"] or s["result"] is not True]
    assert not changed, "\n".join(converge.summary({"node1": res}))


def test_storage_link_loss_keeps_the_node_that_holds_the_failover_guest(ready):
    """fileserver is still on node2 (R13): node2 is Primary of mirror1 and mirror2, node1
    of neither. mirror0's handler on node1 yields (lab/README.md, "What the storage link's
    loss does"): node2 powers node1 off once the fence delay of node1's device has passed,
    and every guest that ran on node2 runs on."""
    d = passed(run("storage-link-loss"))
    assert d["facts"]["single_primary_held"] == {"node1": [], "node2": ["mirror1", "mirror2"]}
    assert d["facts"]["drbd_on_survivor"]["mirror1"].split()[1:3] == [
        "Primary/Unknown", "UpToDate/Outdated"], d["facts"]["drbd_on_survivor"]
    t = d["facts"]["seconds_from_cut"]
    assert t["BMC power off"] is not None and t["BMC power off"] >= FENCE_DELAY, t


def test_a_cib_push_during_the_outage_keeps_drbds_fence_constraints(ready):
    """node1 is off and its copies outdated: DRBD's handler placed constraints
    (drbd-fence-by-handler-*) that keep any outdated copy from being promoted. A
    state.apply on node2 now pushes the rendered CIB, which has none of them: they stay."""
    before = drill._fence_constraints("node2")
    assert before, "DRBD's handler placed no constraint"
    sid = "trash-pacemaker-configured"
    ret = converge.call("node2", "state.sls_id", sid, "trash", timeout=900)
    failed = {k: s["comment"] for k, s in ret.items() if s["result"] is not True}
    assert not failed, failed
    assert any(s["__id__"] == sid for s in ret.values()), sorted(ret)
    assert drill._fence_constraints("node2") == before


def test_status_on_the_survivor_says_who_powered_the_peer_off(ready):
    """An administrator's first look at node2 during that outage: node1 is gone, DRBD's
    handler had it powered off through node2, and node1's own request (its handler
    yielded) waits in the history without threatening node2."""
    st = converge.call("node2", "trash.status")
    lines = st["findings"]
    say("\n" + "\n".join(lines))
    # DLM asks too once node1 is off and gone from the membership (its request may
    # complete later): the line names DRBD's handler first
    assert any(f.startswith("degraded: node1 was powered off at ") and
               "through node2, asked by node2 for DRBD's fence-peer handler" in f
               for f in lines), lines
    assert "degraded: a request to fence (off) node2 waits in the history, asked by node1 " \
           "for DRBD's fence-peer handler: node1 was gone before it ran; it is marked " \
           "failed when node1 rejoins" in lines, lines
    assert not any("is pending" in f for f in lines), lines


def test_node1_rejoins_and_resyncs_after_the_storage_link_loss(ready):
    """node2 wrote to mirror1 and mirror2 after it had outdated node1's copies: the rejoin
    syncs them back (no split brain: every mirror UpToDate on both sides)."""
    passed(run("rejoin", "node1"))


@pytest.mark.full_chain
def test_an_administrator_moves_the_failover_guest_home(ready):
    """R13: nothing moved back by itself; once node1 is verified the administrator moves
    fileserver home (restore: crm_resource --move, then --clear) and the cluster settles."""
    d = passed(run("restore"))
    events = [e["event"] for e in d["timeline"]]
    assert "guest fileserver back home on node1" in events, events


@pytest.mark.full_chain
def test_storage_link_loss_at_home_keeps_the_priority_node(ready):
    """Each node Primary of one single-primary mirror: a tie, the priority node stays and
    its request is not delayed."""
    d = passed(run("storage-link-loss"))
    assert d["facts"]["single_primary_held"] == {"node1": ["mirror1"], "node2": ["mirror2"]}
    assert d["facts"]["drbd_on_survivor"]["mirror0"].split()[1] == "Primary/Unknown"
    t = d["facts"]["seconds_from_cut"]
    assert t["BMC power off"] is not None and t["BMC power off"] < FENCE_DELAY, t


@pytest.mark.full_chain
def test_node2_rejoins_and_resyncs_after_the_storage_link_loss(ready):
    """node2 wrote to its mirror2 after it had outdated node1's copy: the rejoin syncs
    node2's data back (no split brain: every mirror UpToDate on both sides)."""
    passed(run("rejoin", "node2"))


def test_isolation_leaves_exactly_the_priority_node(ready):
    """In CI fileserver is still on node2 (node2 Primary of mirror1 and mirror2, the
    drill's facts show it), as in the storage link's loss before: node1's handler for
    mirror0 must not yield this time, node2 is gone from the membership."""
    d = passed(run("isolate"))
    t = d["facts"]["seconds_from_cut"]
    # node1's device for node2 has no delay: node2 is off before node2's delayed shot
    # at node1 could fire; a yielding handler would have doubled node1's wait
    assert t["BMC power off"] is not None and t["BMC power off"] < FENCE_DELAY, t


def test_node2_rejoins_after_isolation(ready):
    d = passed(run("rejoin", "node2"))
    assert d["facts"]["placement_after"]["guest-fileserver"] == ["node1"]


def test_power_off_through_the_bmc_is_fenced_and_nothing_else_moves(ready):
    """The last loss, as nothing follows it: node2 off through its BMC. node1 fences it
    (fence_ipmilan finds it off already), keeps its guests, shell2 stays stopped."""
    d = passed(run("power-off", "node2"))
    t = d["facts"]["seconds_from_cut"]
    assert t["fencing done (survivor's stonith history)"] is not None, t
    assert d["facts"]["libvirt_running_on_survivor"] == ["fileserver", "ns1", "stinky"]
    # status on the survivor, after every loss and rejoin of the chain: the last fencing
    # explained; the requests the rejoined nodes' fencers marked failed say nothing
    lines = converge.call("node1", "trash.status")["findings"]
    say("\n" + "\n".join(lines))
    assert any(f.startswith("degraded: node2 was powered off at ") and
               "through node1, asked by node1 for " in f for f in lines), lines
    assert not any("fencing (" in f or "waits in the history" in f for f in lines), lines
