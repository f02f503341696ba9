"""trashlib.pcmk on real output of crm_simulate and crm_mon (Pacemaker 2.1.5).

The captures in tests/data/pcmk/ were produced by tests/data/pcmk/capture.py on
the CIB generated from the example pillar; README.md there says which is which.
"""

import dataclasses
import pathlib

import pytest

from trashlib import pcmk

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "pcmk"


def sim(name):
    return pcmk.parse_simulation((DATA / f"{name}.xml").read_text())


def only(items):
    items = list(items)
    assert len(items) == 1, items
    return items[0]


def change(s, action, resource):
    return only(c for c in s.changes if c.action == action and c.rsc == resource)


def test_base_id():
    assert pcmk.base_id("drbd-mirror1:0") == "drbd-mirror1"
    assert pcmk.base_id("vg-vg_node1") == "vg-vg_node1"
    assert pcmk.base_id("fence-node1") == "fence-node1"


def test_boot_first_transition():
    s = sim("simulate-boot-1")
    assert s.before.online == {"node1", "node2"}
    assert not any(i.nodes for i in s.before.instances), "nothing ran before the boot"
    assert not s.fencing and not s.fenced and not s.idle
    # a stopped instance started and promoted in one go: 'dest' only
    promote = change(s, "promote", "drbd-mirror1")
    assert (promote.resource, promote.source, promote.dest) == ("drbd-mirror1:0", None, "node1")
    assert (promote.role, promote.next_role) == ("Stopped", "Promoted")
    start = change(s, "start", "vg-vg_node1")
    assert (start.source, start.dest, start.node) == (None, "node1", "node1")
    assert {c.node for c in s.changes_of("dlm-clone")} == {"node1", "node2"}
    # the executed graph: probes first (interval 0), recurring monitors with their interval
    probes = [x for x in s.executed
              if x.kind == "rsc" and x.task == "monitor" and not x.interval_ms]
    assert ("fence-node1", "node1") in {(x.resource, x.node) for x in probes}
    assert pcmk.Step("rsc", "monitor", "vg-vg_node1", "node1", 30000) in s.executed
    assert any(x.kind == "pseudo" and x.task == "dlm-clone_start_0" for x in s.executed)
    assert s.after.promoted_on("drbd-mirror1-clone") == {"node1"}
    assert s.after.unpromoted_on("drbd-mirror1-clone") == {"node2"}
    assert s.after.running_on("vg-vg_node1") == {"node1"}
    assert not s.after.running_on("guest-stinky")
    assert (s.status_code, s.status_message) == (0, "OK")


def test_boot_second_transition_promotes_in_place():
    s = sim("simulate-boot-2")
    promotes = [c for c in s.changes if c.action == "promote"]
    assert {(c.rsc, c.source, c.dest) for c in promotes} == {
        ("drbd-mirror0", "node1", "node1"), ("drbd-mirror0", "node2", "node2")}
    assert all((c.role, c.next_role) == ("Unpromoted", "Promoted") for c in promotes)
    assert s.summary()["start"] == [("guest-fileserver", "node1"), ("guest-shell2", "node2"),
                                    ("guest-stinky", "node1"), ("shared-fs", "node1"),
                                    ("shared-fs", "node2")]
    assert s.after.placement()["guest-fileserver"] == {"node1": "Started"}
    assert s.after.placement()["drbd-mirror0-clone"] == {"node1": "Promoted", "node2": "Promoted"}


def test_settled_transition_is_idle():
    s = sim("simulate-settled-idle")
    assert s.idle and not s.changes and not s.executed
    assert s.summary() == {}
    assert s.before.placement() == s.after.placement()


def test_node_failure_fences_then_takes_over():
    s = sim("simulate-node1-fail")
    assert s.injected == (("Failing", "node1"),)
    assert s.fencing == (pcmk.Fencing("node1", "off", "peer is no longer part of the cluster"),)
    assert s.fenced == {"node1"}
    # 'before' is the input, before the injected failure
    assert s.before.node("node1").online and not s.before.node("node1").unclean
    assert not s.after.node("node1").unclean and not s.after.node("node1").online
    stop = change(s, "stop", "drbd-mirror1")
    assert (stop.source, stop.dest, stop.role, stop.reason) == (
        "node1", None, "Promoted", "node availability")
    move = change(s, "move", "vg-vg_node1")
    assert (move.source, move.dest, move.node) == ("node1", "node2", "node2")
    assert move.describe() == "move vg-vg_node1 node1 -> node2"
    assert {c.action for c in s.changes_of("drbd-mirror1-clone")} == {"stop", "promote"}
    assert not s.changes_of("guest-shell2")
    # the graph: the fencing operation comes before the promotion on the survivor
    order = [(x.kind, x.task, x.resource and pcmk.base_id(x.resource), x.node)
             for x in s.executed if x.kind != "pseudo"]
    assert order.index(("fencing", "off", None, "node1")) < \
        order.index(("rsc", "promote", "drbd-mirror1", "node2"))
    assert s.after.running_on("guest-fileserver") == {"node2"}
    assert s.after.online == {"node2"}


def test_run_only_preview_has_no_transition():
    s = sim("run-preview-node2-fail")
    assert s.after is None and s.executed == ()
    assert s.fenced == {"node2"}
    assert s.describe()[0] == "fence (off) node2: peer is no longer part of the cluster"
    assert "move vg-vg_node2 node2 -> node1" in s.describe()
    assert "promote drbd-mirror2:0 node1 (Unpromoted -> Promoted)" in s.describe()
    assert s.summary()["fence"] == [(None, "node2")]
    assert s.summary()["stop"][-1] == ("shared-fs", "node2")


def test_manual_move_demotes_and_promotes():
    s = sim("simulate-manual-move")
    demote = change(s, "demote", "drbd-mirror1")
    assert (demote.source, demote.dest, demote.role, demote.next_role) == (
        "node2", "node2", "Promoted", "Unpromoted")
    assert change(s, "move", "guest-fileserver").dest == "node1"
    assert change(s, "start", "guest-stinky").node == "node1"
    assert s.after.promoted_on("drbd-mirror1-clone") == {"node1"}


def test_restart_and_clone_instance_move():
    s = sim("simulate-rejoin-stickiness-0")
    assert s.injected == (("Online", "node1"),)
    restart = change(s, "restart", "guest-shell2")
    assert (restart.source, restart.dest) == ("node2", "node2")
    assert restart.reason == "required vg-vg_node2 start"
    move = only(c for c in s.changes_of("lvmlockd-clone") if c.action == "move")
    assert (move.resource, move.source, move.dest) == ("lvmlockd:0", "node2", "node1")


def test_recover_in_place():
    s = sim("simulate-recover-guest")
    recover = only(s.changes)
    assert (recover.action, recover.resource, recover.source, recover.dest) == (
        "recover", "guest-shell2", "node2", "node2")
    assert [(x.task, x.node) for x in s.executed] == [
        ("stop", "node2"), ("start", "node2"), ("monitor", "node2")]


def test_blocked_changes_are_not_runnable():
    s = sim("simulate-no-quorum")
    assert s.changes and s.blocked == s.changes and not s.runnable
    assert {c.reason for c in s.blocked} == {"quorum freeze"}
    assert s.summary() == {}
    assert s.describe()[0] == "start fence-node2 node1 due to quorum freeze (blocked)"
    assert s.before.node("node2").unclean
    assert not s.fenced, "no quorum: nobody is fenced"


def test_crm_mon_status_and_attributes():
    st = pcmk.parse_status((DATA / "crm_mon-rejoined.xml").read_text())
    assert st.online == {"node1", "node2"}
    assert st.running_on("vg-vg_node1") == {"node2"}
    assert st.roles("drbd-mirror1-clone") == {"node1": "Unpromoted", "node2": "Promoted"}
    assert st.roles("drbd-mirror1") == st.roles("drbd-mirror1-clone")
    assert st.has("guest-stinky") and not st.running_on("guest-stinky")
    assert not st.has("guest-knox")
    assert st.clone_of("dlm:1") == "dlm-clone" and st.clone_of("vg-vg_node1") is None
    assert ("node2", "master-drbd-mirror1", "10000") in st.attributes
    assert ("node1", "master-drbd-mirror1", "1000") in st.attributes
    assert not st.failed()
    with pytest.raises(KeyError):
        st.node("node3")


def test_promotion_scores_follow_roles():
    st = pcmk.parse_status((DATA / "crm_mon-rejoined.xml").read_text())
    assert pcmk.promotion_scores(st) == {
        "node1": {"master-drbd-mirror0": 10000, "master-drbd-mirror1": 1000,
                  "master-drbd-mirror2": 1000},
        "node2": {"master-drbd-mirror0": 10000, "master-drbd-mirror1": 10000,
                  "master-drbd-mirror2": 10000}}
    # the same scores crm_mon shows for the emulated agent
    assert {(n, a, str(v)) for n, attrs in pcmk.promotion_scores(st).items()
            for a, v in attrs.items()} == set(st.attributes)
    lost = sim("simulate-node1-fail").after
    assert pcmk.promotion_scores(lost) == {"node2": {
        "master-drbd-mirror0": 10000, "master-drbd-mirror1": 10000,
        "master-drbd-mirror2": 10000}}


def test_results_are_frozen():
    s = sim("simulate-settled-idle")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.before.nodes[0].online = False


def test_legacy_role_names_are_translated():
    text = ('<pacemaker-result><cluster_status><nodes/><resources>'
            '<clone id="c" multi_state="true"><resource id="r" role="Master" active="true">'
            '<node name="n1"/></resource><resource id="r" role="Slave" active="true">'
            '<node name="n2"/></resource></clone></resources></cluster_status>'
            '<actions><rsc_action action="promote" resource="r:1" role="Slave" '
            'next-role="Master" source="n2"/></actions></pacemaker-result>')
    s = pcmk.parse_simulation(text)
    assert s.before.roles("c") == {"n1": "Promoted", "n2": "Unpromoted"}
    assert (s.changes[0].role, s.changes[0].next_role) == ("Unpromoted", "Promoted")


@pytest.mark.parametrize("text", ["", "not xml", "<cib/>",
                                  "<pacemaker-result><actions/></pacemaker-result>"])
def test_garbage_is_refused(text):
    with pytest.raises(pcmk.ParseError):
        pcmk.parse_simulation(text)


def test_crm_mon_output_is_not_a_simulation():
    with pytest.raises(pcmk.ParseError):
        pcmk.parse_simulation((DATA / "crm_mon-rejoined.xml").read_text())


def test_unknown_action_is_refused():
    text = ('<pacemaker-result><cluster_status/><actions>'
            '<rsc_action action="teleport" resource="r" node="n1"/></actions></pacemaker-result>')
    with pytest.raises(pcmk.ParseError, match="teleport"):
        pcmk.parse_simulation(text)


def graph():
    return pcmk.parse_graph((DATA / "graph-node1-fail.xml").read_text())


def test_graph_fencing_comes_first():
    g = graph()
    fencing = only(g.find("off"))
    assert (fencing.kind, fencing.node, fencing.key, fencing.inputs) == (
        "fencing", "node1", "stonith-node1-off", ())
    promote = only(g.find("promote", "drbd-mirror1", "node2"))
    assert (promote.kind, promote.instance) == ("rsc", "drbd-mirror1:1")
    start = only(g.find("start", "guest-fileserver", "node2"))
    vg = only(g.find("start", "vg-vg_node1", "node2"))
    assert g.waits_for(promote, fencing) and g.waits_for(start, fencing)
    assert g.waits_for(start, vg) and g.waits_for(vg, promote)
    assert not g.waits_for(fencing, start) and not g.waits_for(vg, start)


def test_graph_kinds_and_intervals():
    g = graph()
    assert {a.kind for a in g.actions} == {"rsc", "pseudo", "fencing"}
    monitor = only(a for a in g.find("monitor", "vg-vg_node1", "node2"))
    assert monitor.interval_ms == 30000
    # the stops on the fenced node are pseudo actions: nobody runs them
    assert not g.find("stop", "guest-stinky")
    assert any(a.kind == "pseudo" and a.key == "guest-stinky_stop_0" for a in g.actions)


@pytest.mark.parametrize("text", ["", "<cib/>"])
def test_graph_garbage_is_refused(text):
    with pytest.raises(pcmk.ParseError):
        pcmk.parse_graph(text)


def test_failed_operations_are_read_until_cleaned_up():
    text = (DATA / "crm_mon-start-failed.xml").read_text()
    st = pcmk.parse_status(text)
    assert st.failures == (pcmk.Failure(
        resource="guest-fileserver", node="node1", task="start", exit="not installed",
        reason="environment is invalid, resource considered stopped",
        when="2026-11-27 04:54:30Z"),)
    assert st.online == {"node1", "node2"}
    assert pcmk.parse_status((DATA / "crm_mon-rejoined.xml").read_text()).failures == ()


def test_fence_history_from_real_crm_mon():
    """node1's view after the storage link's loss at home: node2's own request (left
    pending when node2 was powered off), the success against node2, and node1's request of
    an earlier outage that its restarted fencer marked failed; pending first, then newest."""
    st = pcmk.parse_status((DATA / "crm_mon-node2-lost.xml").read_text())
    assert [(e.status, e.target, e.origin, e.requester) for e in st.fencing[:3]] == [
        ("pending", "node1", "node2", "drbd"),
        ("success", "node2", "node1", "drbd"),
        ("failed", "node2", "node1", "drbd")]
    assert (st.fencing[1].delegate, st.fencing[1].completed) == ("node1", "2026-12-07 21:05:55Z")
    assert st.fencing[2].reason == "Initiated by earlier fencer process and presumed failed"
    assert {e.requester for e in st.fencing} == {"drbd", "pacemaker-controld", "stonith-api"}
    assert st.fencing[-1].action == "reboot"
    assert pcmk.parse_status((DATA / "crm_mon-rejoined.xml").read_text()).fencing == ()
