"""The generated CIB driven through node loss, rejoin and split by Pacemaker's own scheduler.

Each scenario runs crm_simulate transition after transition until the cluster
settles, with the DRBD agent's promotion scores published between transitions
(crmsim.py), and asserts where everything ends up and what happened on the
way (REQUIREMENTS.md R4, R8, R9, R12, R13, R15; DESIGN.md §2).

The ``check_*`` functions are plain assertions over the runs. The mutation
tests at the end break one constraint of the CIB at a time and prove that the
matching check fails: the scenarios have teeth.
"""

import copy
import xml.etree.ElementTree as ET

import crmsim
import pytest

from trashlib import cib, model, pcmk

pytestmark = pytest.mark.skipif(bool(crmsim.missing_tools()),
                                reason=f"Pacemaker tools missing: {crmsim.missing_tools()}")

BOTH = frozenset({"node1", "node2"})
N1, N2 = frozenset({"node1"}), frozenset({"node2"})
# changes that interrupt a resource where it runs
DISRUPTIVE = ("stop", "restart", "recover", "move", "demote", "migrate", "re-promote")


# --- building blocks -------------------------------------------------------------------------

def _cfg(pillar, defaults):
    return model.load(copy.deepcopy(pillar), defaults)


def _cib_text(cfg, mutate=None):
    root = cib.build(cfg)
    if mutate is not None:
        mutate(root)
    return ET.tostring(root, encoding="unicode")


def _find(run, task, resource, node):
    found = run.find(task, resource, node)
    if found is None:
        raise AssertionError(f"{task} {resource or ''} on {node} never happened; "
                             f"ran: {run.summary()}")
    return found


def _before(run, first, then):
    """``first`` (task, primitive or None, node) is done before ``then`` starts (R12).

    In one transition that means the transition graph makes ``then`` wait for
    ``first``; across transitions, ``first`` happened in an earlier one.
    """
    (i, a), (j, b) = _find(run, *first), _find(run, *then)
    assert i < j or (i == j and run.graphs[i].waits_for(b, a)), \
        f"{then} does not wait for {first} (transitions {i} and {j})"


def _all_wait_for_fencing(run, target):
    """Every start and promote of the fencing transition waits for the fencing (R9, R12)."""
    index, fencing = _find(run, "off", None, target)
    graph = run.graphs[index]
    starts = [a for a in graph.actions if a.kind == "rsc" and a.task in ("start", "promote")]
    assert starts, "the fencing transition starts something"
    early = [a.key for a in starts if not graph.waits_for(a, fencing)]
    assert not early, f"start before {target} is fenced: {early}"


def _disrupted_on(run, node):
    return [c for step in run.steps for c in step.runnable
            if c.action in DISRUPTIVE and c.source == node]


def _guest_resources(status):
    return {i.resource for i in status.instances if i.resource.startswith("guest-")}


# --- the checks ------------------------------------------------------------------------------

def check_both_up(run, cfg):
    """Scenario 1: both nodes up, everything where the design puts it, started in R12's order."""
    final = run.final
    assert final.online == BOTH
    assert not run.fenced, "nobody is fenced when both nodes come up together"
    for clone in ("dlm-clone", "lvmlockd-clone", "shared-fs-clone"):
        assert final.roles(clone) == {"node1": pcmk.STARTED, "node2": pcmk.STARTED}, clone
    assert final.promoted_on("drbd-mirror0-clone") == BOTH, "mirror 0 is dual-primary (GFS2)"
    assert final.promoted_on("drbd-mirror1-clone") == N1
    assert final.unpromoted_on("drbd-mirror1-clone") == N2
    assert final.promoted_on("drbd-mirror2-clone") == N2
    assert final.unpromoted_on("drbd-mirror2-clone") == N1
    assert final.running_on("vg-vg_node1") == N1
    assert final.running_on("vg-vg_node2") == N2
    assert final.running_on("guest-stinky") == N1
    assert final.running_on("guest-fileserver") == N1
    assert final.running_on("guest-shell2") == N2
    # each node runs the device that fences its peer, never the one that fences itself
    assert final.running_on("fence-node1") == N2
    assert final.running_on("fence-node2") == N1
    # R15: /local guests are outside Pacemaker
    cluster_guests = {cib.guest_id(n) for n, g in cfg["guests"].items()
                      if g["storage"] == "cluster"}
    assert _guest_resources(final) == cluster_guests
    assert not final.has("guest-knox") and not final.has("guest-ns1")
    assert not final.failed()
    # R12 order, per node: dlm -> lvmlockd -> DRBD promote -> VG / GFS2 -> guests
    for node, vg, mirror, guests in (("node1", "vg-vg_node1", "drbd-mirror1",
                                      ("guest-stinky", "guest-fileserver")),
                                     ("node2", "vg-vg_node2", "drbd-mirror2", ("guest-shell2",))):
        _before(run, ("start", "dlm", node), ("start", "lvmlockd", node))
        _before(run, ("start", "lvmlockd", node), ("start", vg, node))
        _before(run, ("promote", mirror, node), ("start", vg, node))
        _before(run, ("start", "dlm", node), ("start", "shared-fs", node))
        _before(run, ("promote", "drbd-mirror0", node), ("start", "shared-fs", node))
        for guest in guests:
            _before(run, ("start", vg, node), ("start", guest, node))
            _before(run, ("start", "shared-fs", node), ("start", guest, node))


def _check_peer_lost(run, lost, survivor, taken_vg, taken_mirror, failover, pinned, kept):
    """The survivor fences the lost node (off), then takes over its VG and failover guests."""
    assert [(f.node, f.action) for f in run.fenced] == [(lost, "off")], run.fenced
    final = run.final
    assert final.online == {survivor}
    assert final.node(lost).online is False
    # R9/R12: nothing of the lost node's is taken over before it is fenced
    _all_wait_for_fencing(run, lost)
    _before(run, ("off", None, lost), ("promote", taken_mirror, survivor))
    _before(run, ("off", None, lost), ("start", taken_vg, survivor))
    for guest in failover:
        _before(run, ("off", None, lost), ("start", guest, survivor))
        assert final.running_on(guest) == {survivor}, f"failover guest {guest}"
    assert final.promoted_on(f"{taken_mirror}-clone") == {survivor}
    assert final.running_on(taken_vg) == {survivor}, "R8: the survivor takes over the VG"
    assert final.promoted_on("drbd-mirror0-clone") == {survivor}
    assert final.running_on("shared-fs-clone") == {survivor}
    for guest in pinned:
        assert not final.running_on(guest), f"non-failover guest {guest} must stay stopped"
        assert not [c for c in run.changes_of(guest) if c.action == "start"], guest
    # the survivor's own guests and storage run on, untouched
    assert not _disrupted_on(run, survivor), _disrupted_on(run, survivor)
    for rsc in kept:
        assert final.running_on(rsc) == {survivor}, rsc
        assert not run.changes_of(rsc), f"{rsc} must not be touched: {run.changes_of(rsc)}"
    assert not final.failed()


def check_node1_lost(run):
    """Scenario 2: node1 fails; node2 fences it and takes over vg_node1 and fileserver."""
    _check_peer_lost(run, "node1", "node2", "vg-vg_node1", "drbd-mirror1",
                     failover=("guest-fileserver",), pinned=("guest-stinky",),
                     kept=("guest-shell2", "vg-vg_node2"))


def check_node2_lost(run):
    """Scenario 3, the mirror image: node1 fences node2 and takes over vg_node2."""
    _check_peer_lost(run, "node2", "node1", "vg-vg_node2", "drbd-mirror2",
                     failover=(), pinned=("guest-shell2",),
                     kept=("guest-stinky", "guest-fileserver", "vg-vg_node1"))


def _check_rejoin(run, back, survivor, vg, mirror, failover, pinned, others):
    """A fenced node returns: it gets its infrastructure back and nothing else (R13)."""
    assert not run.fenced
    final = run.final
    assert final.online == BOTH
    # the returning node gets its infrastructure back ...
    for clone in ("dlm-clone", "lvmlockd-clone", "shared-fs-clone"):
        assert final.running_on(clone) == BOTH, clone
    assert final.promoted_on("drbd-mirror0-clone") == BOTH
    assert final.running_on(f"fence-{survivor}") == {back}
    # ... and nothing else: its mirror, its VG and its failover guests stay on the survivor
    assert final.promoted_on(f"{mirror}-clone") == {survivor}
    assert final.unpromoted_on(f"{mirror}-clone") == {back}
    assert final.running_on(vg) == {survivor}
    for guest in failover:
        assert final.running_on(guest) == {survivor}, guest
    # a pinned guest can only run at home and only with its VG: it waits for the admin
    for guest in pinned:
        assert not final.running_on(guest), guest
    for rsc in (vg, *failover, *pinned, *others):
        assert not run.changes_of(rsc), f"{rsc}: {run.changes_of(rsc)}"
    # not one resource on the survivor is stopped, restarted or demoted by the rejoin
    assert not _disrupted_on(run, survivor), _disrupted_on(run, survivor)
    assert not final.failed()


def check_rejoin(run):
    """Scenario 4: node1 returns after scenario 2; nothing moves back (R13)."""
    _check_rejoin(run, "node1", "node2", "vg-vg_node1", "drbd-mirror1",
                  failover=("guest-fileserver",), pinned=("guest-stinky",),
                  others=("guest-shell2", "vg-vg_node2"))


def check_rejoin_node2(run):
    """Scenario 4, mirrored: node2 returns after scenario 3; shell2 waits for the admin."""
    _check_rejoin(run, "node2", "node1", "vg-vg_node2", "drbd-mirror2",
                  failover=(), pinned=("guest-shell2",),
                  others=("guest-stinky", "guest-fileserver", "vg-vg_node1"))


def check_manual_failback(run):
    """Scenario 4b: the admin moves vg_node1 home; its mirror, fileserver and stinky follow."""
    assert not run.fenced
    final = run.final
    assert final.promoted_on("drbd-mirror1-clone") == N1
    assert final.unpromoted_on("drbd-mirror1-clone") == N2
    assert final.running_on("vg-vg_node1") == N1
    assert final.running_on("guest-fileserver") == N1, "a failover guest follows its VG"
    assert final.running_on("guest-stinky") == N1
    assert final.running_on("guest-shell2") == N2
    assert not run.changes_of("guest-shell2") and not run.changes_of("vg-vg_node2")
    _before(run, ("stop", "guest-fileserver", "node2"), ("stop", "vg-vg_node1", "node2"))
    _before(run, ("stop", "vg-vg_node1", "node2"), ("demote", "drbd-mirror1", "node2"))
    _before(run, ("demote", "drbd-mirror1", "node2"), ("promote", "drbd-mirror1", "node1"))
    _before(run, ("promote", "drbd-mirror1", "node1"), ("start", "vg-vg_node1", "node1"))
    _before(run, ("start", "vg-vg_node1", "node1"), ("start", "guest-fileserver", "node1"))
    _before(run, ("start", "vg-vg_node1", "node1"), ("start", "guest-stinky", "node1"))


def check_fence_race_config(cib_text, cfg):
    """Scenario 5: the configuration that makes the priority node win a fence race (R4)."""
    root = ET.fromstring(cib_text)
    prio = cfg["cluster"]["priority_node"]
    params = {p.get("id"): {nv.get("name"): nv.get("value")
                            for nv in p.iterfind("instance_attributes/nvpair")}
              for p in root.iter("primitive") if p.get("class") == "stonith"}
    bans = {(c.get("rsc"), c.get("node")) for c in root.iter("rsc_location")
            if c.get("score") == "-INFINITY"}
    assert set(params) == {f"fence-{n}" for n in cfg["cluster"]["nodes"]}
    for target in cfg["cluster"]["nodes"]:
        rid = f"fence-{target}"
        assert params[rid]["pcmk_host_list"] == target
        assert (rid, target) in bans, f"{rid} must never run on {target}"
        assert "pcmk_delay_max" not in params[rid], "a random delay would reopen the race"
        if target == prio:
            # the survivor that shoots the priority node waits first
            assert params[rid].get("pcmk_delay_base") == f"{cfg['cluster']['fence_delay']}s"
        else:
            assert "pcmk_delay_base" not in params[rid], f"{rid} fences the loser: no delay"
    props = {nv.get("name"): nv.get("value") for nv in root.iterfind(
        "configuration/crm_config/cluster_property_set/nvpair")}
    assert props["stonith-enabled"] == "true"
    assert props["stonith-action"] == "off"
    assert props.get("priority-fencing-delay") in (None, "0"), "one mechanism, not two"


def check_cold_start_alone(run):
    """A node that starts without its peer but with quorum fences the peer before any service."""
    assert [(f.node, f.action) for f in run.fenced] == [("node2", "off")]
    _all_wait_for_fencing(run, "node2")
    assert run.find("off", None, "node2")[0] == 0, "fencing is the first thing that happens"
    final = run.final
    assert final.promoted_on("drbd-mirror1-clone") == N1
    assert final.promoted_on("drbd-mirror2-clone") == N1
    for rsc in ("vg-vg_node1", "vg-vg_node2", "guest-fileserver", "guest-stinky"):
        assert final.running_on(rsc) == N1, rsc
    assert not final.running_on("guest-shell2")


def check_cold_start_without_quorum(run):
    """Without quorum (wait_for_all: the peer never seen) nothing starts and nobody is fenced."""
    assert not run.fenced
    assert not run.executed(task="start") and not run.executed(task="promote")
    assert not any(i.nodes for i in run.final.instances)
    blocked = run.steps[-1].blocked
    assert blocked and all(c.reason == "quorum freeze" for c in blocked)


# --- the scenarios: chains of events from a fresh CIB, each settled ----------------------------
#
# A chain is a tuple of events, each one settle() call: ("boot", online, quorum) first, then
# ("fail", node), ("up", node) or ("move", resource, node). Settled states are cached per
# (CIB text, chain), so scenarios that share a prefix (boot, node1 lost, ...) compute it once;
# a mutated CIB is a different key and gets its own runs.

BOOT = ("boot", ("node1", "node2"), True)
ALONE = ("boot", ("node1",), True)
ALONE_NO_QUORUM = ("boot", ("node1",), False)
FAIL1, FAIL2 = ("fail", "node1"), ("fail", "node2")
UP1, UP2 = ("up", "node1"), ("up", "node2")
MOVE_VG1_HOME = ("move", "vg-vg_node1", "node1")

_settled = {}


@pytest.fixture(scope="module")
def workroot(tmp_path_factory):
    return tmp_path_factory.mktemp("crmsim")


def _workdir(workroot):
    return workroot / f"c{len(list(workroot.iterdir()))}"


def _state(cib_text, chain, workroot):
    """(Cluster at the end of the chain, Run of its last event); the cluster is a fresh copy."""
    key = (cib_text, chain)
    if not chain:
        return crmsim.Cluster(cib_text, _workdir(workroot)), None
    if key not in _settled:
        event = chain[-1]
        if event[0] == "boot":
            assert len(chain) == 1, "boot starts a chain"
            _, online, quorum = event
            cluster = crmsim.Cluster(cib.with_status(cib_text, online), _workdir(workroot),
                                     quorum=quorum)
            run = cluster.settle()
        else:
            cluster, _ = _state(cib_text, chain[:-1], workroot)
            if event[0] == "fail":
                run = cluster.settle(node_fail=[event[1]])
            elif event[0] == "up":
                run = cluster.settle(node_up=[event[1]])
            elif event[0] == "move":
                cluster.crm_resource("--move", "--resource", event[1], "--node", event[2])
                run = cluster.settle()
            else:
                raise ValueError(event)
        _settled[key] = (cluster.cib, cluster.quorum, run)
    cib_after, quorum, run = _settled[key]
    return crmsim.Cluster(cib_after, _workdir(workroot), quorum), run


SCENARIOS = {
    "both_up": ((BOOT,), lambda run, cluster, cfg: check_both_up(run, cfg)),
    # the fence race is configuration: no transition to run
    "fence_config": ((), lambda run, cluster, cfg: check_fence_race_config(cluster.cib, cfg)),
    "node1_lost": ((BOOT, FAIL1), lambda run, cluster, cfg: check_node1_lost(run)),
    "node2_lost": ((BOOT, FAIL2), lambda run, cluster, cfg: check_node2_lost(run)),
    "rejoin": ((BOOT, FAIL1, UP1), lambda run, cluster, cfg: check_rejoin(run)),
    "rejoin_node2": ((BOOT, FAIL2, UP2), lambda run, cluster, cfg: check_rejoin_node2(run)),
    "manual_failback": ((BOOT, FAIL1, UP1, MOVE_VG1_HOME),
                        lambda run, cluster, cfg: check_manual_failback(run)),
    "cold_start_alone": ((ALONE,), lambda run, cluster, cfg: check_cold_start_alone(run)),
    "cold_start_without_quorum": ((ALONE_NO_QUORUM,),
                                  lambda run, cluster, cfg: check_cold_start_without_quorum(run)),
}


def _play(name, cib_text, cfg, workroot):
    chain, check = SCENARIOS[name]
    cluster, run = _state(cib_text, chain, workroot)
    check(run, cluster, cfg)
    return cluster, run


@pytest.fixture(scope="module")
def scfg(_example_pillar, defaults):
    return _cfg(_example_pillar, defaults)


@pytest.fixture(scope="module")
def real_cib(scfg):
    return _cib_text(scfg)


def test_1_both_nodes_up(real_cib, scfg, workroot):
    _, run = _play("both_up", real_cib, scfg, workroot)
    assert 2 <= len(run.steps) <= 4, "boot settles in a few transitions"


def test_1_promotion_needs_the_agents_scores(real_cib, tmp_path):
    """Without the DRBD agent's scores mirror 0 is never promoted: the emulation matters."""
    cluster = crmsim.Cluster(cib.with_status(real_cib, BOTH), tmp_path)
    cluster.simulate()
    step = cluster.simulate()
    assert step.idle
    assert not step.after.promoted_on("drbd-mirror0-clone")
    assert not step.after.running_on("shared-fs-clone")


def test_2_node1_lost(real_cib, scfg, workroot):
    _play("node1_lost", real_cib, scfg, workroot)


def test_3_node2_lost(real_cib, scfg, workroot):
    _play("node2_lost", real_cib, scfg, workroot)


def test_4_node1_rejoins_nothing_moves_back(real_cib, scfg, workroot):
    _play("rejoin", real_cib, scfg, workroot)


def test_4_mirrored_node2_rejoins_nothing_moves_back(real_cib, scfg, workroot):
    _play("rejoin_node2", real_cib, scfg, workroot)


def test_4b_manual_failback_then_clear(real_cib, scfg, workroot):
    cluster, _ = _play("manual_failback", real_cib, scfg, workroot)
    # dropping the move constraint moves nothing back again
    cluster.crm_resource("--clear", "--resource", "vg-vg_node1")
    after = cluster.settle()
    assert len(after.steps) == 1 and after.first.idle


def test_5_split_priority_node_wins(real_cib, scfg, workroot):
    """Both cut off: the delay makes node1 shoot first; node1's view is scenario 3."""
    _play("fence_config", real_cib, scfg, workroot)
    _play("node2_lost", real_cib, scfg, workroot)


def test_promotion_score_attributes_round_trip(real_cib):
    """The driver writes the attributes where crm_attribute --lifetime reboot does."""
    text = cib.with_status(real_cib, BOTH)
    scores = {"node1": {"master-drbd-mirror1": 10000}, "node2": {"master-drbd-mirror1": 1000}}
    text = crmsim.set_node_attributes(text, scores)
    assert crmsim.node_attributes(text) == scores
    nv = ET.fromstring(text).find("status/node_state[@uname='node2']/transient_attributes"
                                  "/instance_attributes/nvpair")
    assert (nv.get("id"), nv.get("name"), nv.get("value")) == (
        "status-2-master-drbd-mirror1", "master-drbd-mirror1", "1000")
    assert crmsim.node_attributes(crmsim.set_node_attributes(text, {})) == {}


def test_5_priority_follows_the_pillar(_example_pillar, defaults):
    pillar = copy.deepcopy(_example_pillar)
    pillar["trash"]["cluster"]["priority_node"] = "node2"
    cfg = _cfg(pillar, defaults)
    check_fence_race_config(_cib_text(cfg), cfg)


def test_cold_start_alone_fences_the_peer_first(real_cib, scfg, workroot):
    _play("cold_start_alone", real_cib, scfg, workroot)


def test_cold_start_alone_without_quorum_starts_nothing(real_cib, scfg, workroot):
    _play("cold_start_without_quorum", real_cib, scfg, workroot)


# --- teeth: break one thing, the matching scenario must fail ----------------------------------
# The tests above run the same _play on the real CIB: they are the baseline.

def _constraint(root, cid):
    cons = root.find("configuration/constraints")
    return cons, next(c for c in cons if c.get("id") == cid)


def _drop_constraint(cid):
    def mutate(root):
        cons, elem = _constraint(root, cid)
        cons.remove(elem)
    return mutate


def _set_nvpair(name, value):
    def mutate(root):
        for nv in root.iter("nvpair"):
            if nv.get("name") == name:
                nv.set("value", value)
    return mutate


def _influence_default(root):
    _, elem = _constraint(root, "colocation-guest-stinky-with-vg-vg_node1")
    del elem.attrib["influence"]


def _delay_on_wrong_device(root):
    devices = {p.get("id"): p.find("instance_attributes") for p in root.iter("primitive")}
    delay = next(nv for nv in devices["fence-node1"] if nv.get("name") == "pcmk_delay_base")
    devices["fence-node1"].remove(delay)
    devices["fence-node2"].append(delay)


MUTANTS = {
    # stickiness 0: node1's rejoin reshuffles clone instances and restarts node2's guests
    "stickiness-0": (_set_nvpair("resource-stickiness", "0"), "rejoin"),
    # the pinned guest's home preference drags vg_node1 and fileserver back on rejoin
    "pinned-guest-influences-its-vg": (_influence_default, "rejoin"),
    # a non-failover guest would fail over
    "pinned-guest-not-banned": (_drop_constraint("location-guest-stinky-avoid-node2"),
                                "node1_lost"),
    "fence-action-reboot": (_set_nvpair("stonith-action", "reboot"), "node1_lost"),
    "fence-delay-on-the-wrong-device": (_delay_on_wrong_device, "fence_config"),
    "fence-device-may-run-on-its-target": (_drop_constraint("location-fence-node1-avoid-node1"),
                                           "fence_config"),
    "vg-not-ordered-after-promote": (
        _drop_constraint("order-drbd-mirror1-clone-promote-vg-vg_node1-start"), "both_up"),
    "guest-not-ordered-after-shared-fs": (
        _drop_constraint("order-shared-fs-clone-start-guest-fileserver-start"), "both_up"),
    "failover-guest-not-colocated-with-vg": (
        _drop_constraint("colocation-guest-fileserver-with-vg-vg_node1"), "manual_failback"),
    "no-quorum-policy-ignore": (_set_nvpair("no-quorum-policy", "ignore"),
                                "cold_start_without_quorum"),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_scenarios_catch_a_broken_cib(mutant, scfg, workroot):
    mutate, name = MUTANTS[mutant]
    with pytest.raises(AssertionError):
        _play(name, _cib_text(scfg, mutate), scfg, workroot)
