"""Pacemaker's machine-readable answers as typed results.

Pure functions over the XML that ``crm_simulate --output-as xml`` and
``crm_mon --output-as xml`` print (Pacemaker 2.1); nothing here runs a command.

``parse_simulation(text)`` answers "what would the cluster do": which nodes it
fences and which resources it starts, stops, moves, promotes, demotes, restarts
or recovers (the scheduler's summary), what it executed (``--simulate``) and
the cluster before and after. ``parse_status(text)`` reads ``crm_mon``;
``parse_graph(text)`` reads a transition graph (``crm_simulate --save-graph``)
and answers which action waits for which. ``promotion_scores(status)`` gives
the scores the linbit DRBD agent would publish for a status.

Resource names in a change are instance names as Pacemaker prints them
(``dlm:0`` for a clone instance); :func:`base_id` strips the instance number.
Roles are Pacemaker 2.1's words: ``Stopped``, ``Started``, ``Unpromoted``,
``Promoted`` (``Slave``/``Master`` from older tools are translated).
"""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

STOPPED, STARTED, UNPROMOTED, PROMOTED = "Stopped", "Started", "Unpromoted", "Promoted"
_ROLE_ALIASES = {"Master": PROMOTED, "Slave": UNPROMOTED}
# the scheduler's words for a change of one resource (``<actions><rsc_action action=...>``)
CHANGE_KINDS = ("start", "stop", "move", "promote", "demote", "restart", "recover",
                "migrate", "reload", "re-promote")
_FENCE_TASK = re.compile(r"^Fence \((?P<action>[^)]*)\)$")
_INSTANCE = re.compile(r":\d+$")


class ParseError(ValueError):
    """The text is not the XML output of the Pacemaker tool it was given as."""


def base_id(resource):
    """'dlm:1' -> 'dlm'; a primitive id is returned unchanged."""
    return _INSTANCE.sub("", resource)


def _role(text):
    return _ROLE_ALIASES.get(text, text) if text else None


def _bool(elem, name, default=False):
    value = elem.get(name)
    return default if value is None else value == "true"


@dataclass(frozen=True)
class Node:
    name: str
    id: str
    online: bool
    standby: bool
    maintenance: bool
    pending: bool
    unclean: bool
    shutdown: bool
    expected_up: bool
    is_dc: bool
    type: str


@dataclass(frozen=True)
class Instance:
    """One primitive, or one instance of a cloned primitive, and where it is active."""

    resource: str          # primitive id, the same for every instance of a clone
    parent: str | None     # id of the enclosing clone or group
    clone: str | None      # id of the enclosing clone, when there is one
    agent: str
    role: str
    nodes: tuple           # names of the nodes it is active on
    active: bool
    failed: bool
    managed: bool
    blocked: bool
    orphaned: bool


@dataclass(frozen=True)
class Failure:
    """A failed operation Pacemaker remembers (crm_mon's <failures>) until a cleanup."""

    resource: str  # the primitive (a clone instance's id without ":n")
    node: str
    task: str      # start, stop, monitor, ...
    exit: str      # e.g. "not installed", "error"; "Timed Out" for a timeout
    reason: str
    when: str

    def describe(self):
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.resource}: {self.task} failed on {self.node}: {self.exit}{why}, {self.when}"


@dataclass(frozen=True)
class FenceEvent:
    """One fencing request in the fencers' history (crm_mon's <fence_history>)."""

    target: str
    action: str      # off, reboot, on
    origin: str      # the node whose fencer was asked
    client: str      # e.g. pacemaker-controld.856, (null).drbd.4826, stonith-api.2827
    status: str      # pending, success, failed
    delegate: str    # the node that ran the device ("" while pending)
    completed: str   # "2026-12-07 20:56:46Z" ("" while pending)
    reason: str      # exit-reason of a failed request

    @property
    def requester(self):
        """The client without its process id; a tagged client (stonith_admin --tag) by its tag."""
        name = self.client.rsplit(".", 1)[0] if self.client[-1:].isdigit() else self.client
        return name.split(").", 1)[1] if name.startswith("(null).") else name


@dataclass(frozen=True)
class ClusterStatus:
    nodes: tuple           # Node, in the tool's order
    instances: tuple       # Instance, in the tool's order
    attributes: tuple = () # (node, name, value) of the node attributes, when shown
    failures: tuple = ()   # Failure: operations that failed and are not cleaned up
    fencing: tuple = ()    # FenceEvent, pending first, then newest first (the tool's order)

    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def online(self):
        return frozenset(n.name for n in self.nodes if n.online)

    def _members(self, rid):
        return [i for i in self.instances if rid in (i.resource, i.parent, i.clone)]

    def roles(self, rid):
        """{node: role} of a primitive or of every instance of a clone or group."""
        out = {}
        for inst in self._members(rid):
            for node in inst.nodes:
                out[node] = inst.role
        return out

    def running_on(self, rid):
        """Nodes on which the resource (any instance of it) is active."""
        return frozenset(self.roles(rid))

    def promoted_on(self, rid):
        return frozenset(n for n, role in self.roles(rid).items() if role == PROMOTED)

    def unpromoted_on(self, rid):
        return frozenset(n for n, role in self.roles(rid).items() if role == UNPROMOTED)

    def has(self, rid):
        """Whether the configuration holds the resource at all."""
        return bool(self._members(rid))

    def clone_of(self, resource):
        """The clone id holding a primitive (or instance) id, or None."""
        rid = base_id(resource)
        for inst in self.instances:
            if inst.resource == rid:
                return inst.clone
        return None

    def failed(self):
        return tuple(i for i in self.instances if i.failed)

    def placement(self):
        """{resource id: {node: role}} for every active resource; clones under the clone id."""
        out = {}
        for inst in self.instances:
            key = inst.clone or inst.resource
            for node in inst.nodes:
                out.setdefault(key, {})[node] = inst.role
        return out


@dataclass(frozen=True)
class Change:
    """One line of the scheduler's summary: what happens to one resource.

    ``source`` is the node the resource leaves or acts on in place, ``dest`` the
    node where it ends up; a start has only ``dest``, a stop only ``source``, an
    in-place promote, demote, restart or recover has both equal.
    """

    action: str            # one of CHANGE_KINDS
    resource: str          # as printed: 'vg-vg_node1', 'drbd-mirror1:0'
    source: str | None
    dest: str | None
    role: str | None
    next_role: str | None
    reason: str | None
    blocked: bool

    @property
    def rsc(self):
        return base_id(self.resource)

    @property
    def node(self):
        """The node where the change takes effect."""
        return self.dest or self.source

    def describe(self):
        """One line for a person: 'move vg-vg_node1 node1 -> node2'."""
        where = (f"{self.source} -> {self.dest}"
                 if self.source and self.dest and self.source != self.dest else self.node)
        text = f"{self.action} {self.resource} {where}"
        if self.role and self.next_role and self.role != self.next_role:
            text += f" ({self.role} -> {self.next_role})"
        if self.reason:
            text += f" due to {self.reason}"
        return text + (" (blocked)" if self.blocked else "")


@dataclass(frozen=True)
class Fencing:
    node: str
    action: str            # off, reboot, on
    reason: str | None

    def describe(self):
        return f"fence ({self.action}) {self.node}" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Step:
    """One action of the transition crm_simulate executed (``--simulate``)."""

    kind: str              # rsc, pseudo, fencing, cluster
    task: str              # operation: start, stop, promote, monitor, notify, off, ...
    resource: str | None   # instance id as in the graph ('dlm:0'); pseudo: None
    node: str | None
    interval_ms: int = 0


@dataclass(frozen=True)
class Simulation:
    """One crm_simulate call.

    ``before`` is the cluster as given, before the injected events (``injected``);
    ``changes`` and ``fencing`` are the scheduler's plan after them, including
    blocked changes; ``executed`` and ``after`` exist only with ``--simulate``.
    """

    before: ClusterStatus
    changes: tuple         # Change
    fencing: tuple         # Fencing
    executed: tuple        # Step; empty without --simulate
    after: ClusterStatus | None
    injected: tuple        # (action, node) of --node-up/--node-down/--node-fail
    status_code: int
    status_message: str

    @property
    def runnable(self):
        """The changes the cluster would carry out."""
        return tuple(c for c in self.changes if not c.blocked)

    @property
    def blocked(self):
        """Changes the scheduler wants but may not make (no quorum, a failed dependency)."""
        return tuple(c for c in self.changes if c.blocked)

    @property
    def idle(self):
        """Nothing left to do: no runnable change, no fencing, nothing executed."""
        return not (self.runnable or self.fencing or self.executed)

    @property
    def fenced(self):
        """Nodes fenced in this transition (summary and executed graph)."""
        names = {f.node for f in self.fencing}
        names |= {s.node for s in self.executed if s.kind == "fencing"}
        return frozenset(names)

    def changes_of(self, rid):
        """Changes of a primitive (all its instances) or of every instance of a clone."""
        return tuple(c for c in self.changes
                     if rid in (c.rsc, self.before.clone_of(c.resource)))

    def describe(self):
        """The transition for a person, fencing first, one line per change."""
        return [f.describe() for f in self.fencing] + [c.describe() for c in self.changes]

    def summary(self):
        """{action: sorted (resource, node) pairs}; clone instances under the primitive id."""
        out = {}
        for c in self.runnable:
            out.setdefault(c.action, set()).add((c.rsc, c.node))
        if self.fenced:
            out["fence"] = {(None, n) for n in self.fenced}
        return {k: sorted(v, key=lambda p: (p[0] or "", p[1] or "")) for k, v in out.items()}


def _root(text, tool):
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParseError(f"{tool} output is not XML: {exc}") from None
    if root.tag != "pacemaker-result":
        raise ParseError(f"{tool} output has no <pacemaker-result> root (found <{root.tag}>)")
    return root


def _node(elem):
    return Node(name=elem.get("name"), id=elem.get("id"), online=_bool(elem, "online"),
                standby=_bool(elem, "standby"), maintenance=_bool(elem, "maintenance"),
                pending=_bool(elem, "pending"), unclean=_bool(elem, "unclean"),
                shutdown=_bool(elem, "shutdown"), expected_up=_bool(elem, "expected_up"),
                is_dc=_bool(elem, "is_dc"), type=elem.get("type", "member"))


def _instances(parent_elem, parent=None, clone=None):
    out = []
    for elem in parent_elem:
        if elem.tag == "resource":
            out.append(Instance(
                resource=elem.get("id"), parent=parent, clone=clone,
                agent=elem.get("resource_agent", ""), role=_role(elem.get("role")),
                nodes=tuple(n.get("name") for n in elem.findall("node")),
                active=_bool(elem, "active"), failed=_bool(elem, "failed"),
                managed=_bool(elem, "managed", True), blocked=_bool(elem, "blocked"),
                orphaned=_bool(elem, "orphaned")))
        elif elem.tag == "clone":
            out += _instances(elem, elem.get("id"), elem.get("id"))
        elif elem.tag in ("group", "bundle", "replica"):
            out += _instances(elem, elem.get("id"), clone)
    return out


def _status(elem):
    """A <cluster_status>, <revised_cluster_status> or crm_mon's result element."""
    nodes = elem.find("nodes")
    resources = elem.find("resources")
    attrs = []
    for node in elem.findall("node_attributes/node"):
        attrs += [(node.get("name"), a.get("name"), a.get("value"))
                  for a in node.findall("attribute")]
    failures = []
    for f in elem.findall("failures/failure"):
        op_key = f.get("op_key", "")
        task = f.get("task", "")
        resource = op_key[:op_key.rfind(f"_{task}_")] if f"_{task}_" in op_key else op_key
        exit_ = "Timed Out" if f.get("status") == "Timed Out" else f.get("exitstatus", "")
        failures.append(Failure(resource=base_id(resource), node=f.get("node"), task=task,
                                exit=exit_, reason=f.get("exitreason", ""),
                                when=f.get("last-rc-change", "")))
    fencing = tuple(FenceEvent(
        target=e.get("target", ""), action=e.get("action", ""), origin=e.get("origin", ""),
        client=e.get("client", ""), status=e.get("status", ""), delegate=e.get("delegate", ""),
        completed=e.get("completed", ""), reason=e.get("exit-reason", ""))
        for e in elem.findall("fence_history/fence_event"))
    return ClusterStatus(
        nodes=tuple(_node(n) for n in (nodes if nodes is not None else [])),
        instances=tuple(_instances(resources) if resources is not None else []),
        attributes=tuple(attrs), failures=tuple(failures), fencing=fencing)


def _change(elem):
    action = elem.get("action")
    if action not in CHANGE_KINDS:
        raise ParseError(f"unknown resource action {action!r} in {ET.tostring(elem)!r}")
    source, dest = elem.get("source"), elem.get("dest")
    node = elem.get("node")
    if node is not None:
        # 'node' stands alone: where a stop leaves, where a start arrives, where a
        # resource is recovered in place
        if action == "stop":
            source = node
        elif action == "start":
            dest = node
        else:
            source = dest = node
    elif source is not None and dest is None and action != "stop":
        dest = source           # in place: promote, demote, restart, recover, re-promote
    return Change(action=action, resource=elem.get("resource"), source=source, dest=dest,
                  role=_role(elem.get("role")), next_role=_role(elem.get("next-role")),
                  reason=elem.get("reason"), blocked=_bool(elem, "blocked"))


def _step(elem):
    if elem.tag == "rsc_action":
        return Step("rsc", elem.get("op"), elem.get("resource"), elem.get("node"),
                    int(elem.get("interval", "0")))
    if elem.tag == "fencing_action":
        return Step("fencing", elem.get("op"), None, elem.get("target"))
    if elem.tag == "cluster_action":
        return Step("cluster", elem.get("task"), elem.get("id"), elem.get("node"))
    if elem.tag == "pseudo_action":
        return Step("pseudo", elem.get("task"), None, elem.get("node"))
    raise ParseError(f"unknown transition element <{elem.tag}>")


def parse_simulation(text):
    """``crm_simulate --output-as xml`` (with --run or --simulate) as a :class:`Simulation`."""
    root = _root(text, "crm_simulate")
    before = root.find("cluster_status")
    if before is None:
        raise ParseError("crm_simulate output has no <cluster_status>")
    changes, fencing = [], []
    actions = root.find("actions")
    for elem in (actions if actions is not None else []):
        if elem.tag == "rsc_action":
            changes.append(_change(elem))
        elif elem.tag == "node_action":
            match = _FENCE_TASK.match(elem.get("task", ""))
            if match:
                fencing.append(Fencing(elem.get("node"), match.group("action"),
                                       elem.get("reason")))
    transition = root.find("transition")
    executed = tuple(_step(e) for e in transition) if transition is not None else ()
    after = root.find("revised_cluster_status")
    injected = tuple((e.get("action"), e.get("node"))
                     for e in root.findall("modifications/modify_node"))
    status = root.find("status")
    return Simulation(
        before=_status(before), changes=tuple(changes), fencing=tuple(fencing),
        executed=executed, after=_status(after) if after is not None else None,
        injected=injected,
        status_code=int(status.get("code")) if status is not None else 0,
        status_message=status.get("message", "") if status is not None else "")


def parse_status(text):
    """``crm_mon --output-as xml`` as a :class:`ClusterStatus`."""
    return _status(_root(text, "crm_mon"))


def promotion_scores(status, promoted=10000, unpromoted=1000):
    """The promotion scores the linbit DRBD agent would publish for this status.

    {node: {attribute: score}} for every promotable clone: ``promoted`` where an
    instance is Primary (Promoted), ``unpromoted`` where it is an UpToDate
    Secondary; the attribute is ``master-<primitive id>``, the name Pacemaker 2.1
    reads for promotable clones (``crm_master``). Nodes without an instance get
    none, so a node that is offline publishes nothing.
    """
    scores = {n.name: {} for n in status.nodes if n.online}
    for inst in status.instances:
        if inst.clone is None or inst.role not in (PROMOTED, UNPROMOTED):
            continue
        for node in inst.nodes:
            if node in scores:
                value = promoted if inst.role == PROMOTED else unpromoted
                scores[node][f"master-{inst.resource}"] = value
    return scores


@dataclass(frozen=True)
class GraphAction:
    """One action of a transition graph (``crm_simulate --save-graph``) and what it waits for."""

    id: int
    kind: str              # rsc, pseudo, fencing, cluster
    task: str              # start, stop, promote, monitor, notify, ...; fencing: off, reboot, on
    resource: str | None   # primitive id ('dlm'); None for fencing and cluster events
    instance: str | None   # clone instance ('dlm:0'), else the primitive id
    node: str | None       # where it runs; fencing: the target
    key: str               # Pacemaker's operation key
    interval_ms: int
    inputs: tuple          # ids of the actions it waits for


@dataclass(frozen=True)
class Graph:
    actions: tuple         # GraphAction

    def find(self, task, resource=None, node=None):
        """Actions with this task, on this primitive (any instance) and node, when given."""
        return tuple(a for a in self.actions if a.task == task
                     and (resource is None or a.resource == resource)
                     and (node is None or a.node == node))

    def waits_for(self, then, first):
        """Whether action ``then`` runs only after ``first`` (directly or through others)."""
        inputs = {a.id: a.inputs for a in self.actions}
        seen, todo = set(), list(inputs.get(then.id, ()))
        while todo:
            current = todo.pop()
            if current == first.id:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(inputs.get(current, ()))
        return False


def _graph_action(elem, inputs):
    attrs = elem.find("attributes")
    meta = attrs.attrib if attrs is not None else {}
    common = {"id": int(elem.get("id")), "key": elem.get("operation_key", ""),
              "node": elem.get("on_node"), "inputs": inputs,
              "interval_ms": int(meta.get("CRM_meta_interval", "0"))}
    if elem.tag == "rsc_op":
        prim = elem.find("primitive")
        rid = prim.get("id") if prim is not None else None
        instance = prim.get("long-id", rid) if prim is not None else None
        return GraphAction(kind="rsc", task=elem.get("operation"), resource=rid,
                           instance=instance, **common)
    if elem.tag == "crm_event" and elem.get("operation") == "stonith":
        return GraphAction(kind="fencing", task=meta.get("CRM_meta_stonith_action", "reboot"),
                           resource=None, instance=None, **common)
    if elem.tag == "crm_event":
        return GraphAction(kind="cluster", task=elem.get("operation"), resource=None,
                           instance=None, **common)
    if elem.tag == "pseudo_event":
        return GraphAction(kind="pseudo", task=elem.get("operation"), resource=None,
                           instance=None, **common)
    raise ParseError(f"unknown graph action <{elem.tag}>")


def parse_graph(text):
    """A transition graph (``crm_simulate --save-graph FILE``) as a :class:`Graph`."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParseError(f"transition graph is not XML: {exc}") from None
    if root.tag != "transition_graph":
        raise ParseError(f"not a transition graph (found <{root.tag}>)")
    actions = []
    for synapse in root.iterfind("synapse"):
        inputs = tuple(int(t.get("id")) for trigger in synapse.iterfind("inputs/trigger")
                       for t in trigger)
        actions += [_graph_action(elem, inputs) for elem in synapse.iterfind("action_set/*")]
    return Graph(tuple(actions))
