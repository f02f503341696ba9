"""Drive Pacemaker's scheduler offline: crm_simulate on a CIB file, transition by transition.

crm_simulate computes one transition per call, pretends every action succeeded
and runs no agent. So a scenario is a loop: simulate, then publish what the
agents would have published (here the linbit DRBD agent's promotion scores:
10000 where a mirror is Primary, 1000 where it is an UpToDate Secondary), and
simulate again until the scheduler has nothing left to do.

The parsing lives in ``trashlib.pcmk`` (pure); this module only runs the tools
on files in a private directory. Nothing here touches a live cluster: every
command gets the CIB as a file (``--xml-file`` or ``CIB_file``).

Quorum is the CIB's ``have-quorum`` attribute, set here before every call:
crm_simulate 2.1.5 applies ``--quorum`` only together with another injected
event (``--node-fail``, ``--node-up``, ``--op-inject``, ...), so on its own the
flag silently does nothing.
"""

import os
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from trashlib import pcmk

TOOLS = ("crm_simulate", "crm_resource", "crm_mon")
TIMEOUT = 60


class SimulationError(RuntimeError):
    pass


def missing_tools():
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def simulate_command(cib_path, out_path=None, graph_path=None, *, node_up=(), node_down=(),
                     node_fail=(), inject=(), execute=True):
    """The crm_simulate argument list: one transition on a CIB file, XML output."""
    cmd = ["crm_simulate", "--xml-file", str(cib_path), "--output-as", "xml",
           "--simulate" if execute else "--run"]
    if out_path is not None:
        cmd += ["--save-output", str(out_path)]
    if graph_path is not None:
        cmd += ["--save-graph", str(graph_path)]
    for flag, nodes in (("--node-up", node_up), ("--node-down", node_down),
                        ("--node-fail", node_fail), ("--op-inject", inject)):
        for name in nodes:
            cmd += [flag, name]
    return cmd


def _strip_comment(cib_text):
    return cib_text.split("\n", 1)[1] if cib_text.startswith("<!--") else cib_text


def with_quorum(cib_text, quorum):
    """The CIB with ``have-quorum`` set as the cluster would (1 or 0)."""
    root = ET.fromstring(_strip_comment(cib_text))
    root.set("have-quorum", "1" if quorum else "0")
    return ET.tostring(root, encoding="unicode")


def node_attributes(cib_text, prefix="master-"):
    """{node: {name: value}} of the transient attributes whose name starts with prefix."""
    root = ET.fromstring(_strip_comment(cib_text))
    out = {}
    for state in root.iterfind("status/node_state"):
        attrs = out.setdefault(state.get("uname"), {})
        for nv in state.iterfind("transient_attributes/instance_attributes/nvpair"):
            if nv.get("name", "").startswith(prefix):
                attrs[nv.get("name")] = int(nv.get("value"))
    return {node: attrs for node, attrs in out.items() if attrs}


def set_node_attributes(cib_text, values, prefix="master-"):
    """The CIB with the transient attributes starting with prefix replaced by ``values``.

    ``values`` is {node: {name: value}}; the node's other attributes stay. The
    XML is the one ``crm_attribute --lifetime reboot`` writes.
    """
    root = ET.fromstring(_strip_comment(cib_text))
    for state in root.iterfind("status/node_state"):
        node_id = state.get("id")
        ta = state.find("transient_attributes")
        if ta is None:
            ta = ET.SubElement(state, "transient_attributes", id=node_id)
        ia = ta.find("instance_attributes")
        if ia is None:
            ia = ET.SubElement(ta, "instance_attributes", id=f"status-{node_id}")
        for nv in list(ia):
            if nv.get("name", "").startswith(prefix):
                ia.remove(nv)
        for name, value in sorted(values.get(state.get("uname"), {}).items()):
            ET.SubElement(ia, "nvpair", id=f"status-{node_id}-{name}", name=name,
                          value=str(value))
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class Run:
    """The transitions of one settle() call and the CIB they left."""

    steps: tuple            # pcmk.Simulation, in order
    graphs: tuple           # pcmk.Graph of each step
    cib: str

    @property
    def final(self):
        return self.steps[-1].after

    @property
    def first(self):
        return self.steps[0]

    @property
    def fenced(self):
        return tuple(f for step in self.steps for f in step.fencing)

    def changes_of(self, rid):
        return tuple(c for step in self.steps for c in step.changes_of(rid))

    def find(self, task, resource=None, node=None):
        """(transition index, pcmk.GraphAction) of the first matching action, or None."""
        for index, graph in enumerate(self.graphs):
            found = graph.find(task, resource, node)
            if found:
                return index, found[0]
        return None

    def executed(self, resource=None, task=None):
        """Executed resource operations (not pseudo actions) across all steps."""
        return tuple(s for step in self.steps for s in step.executed
                     if s.kind == "rsc"
                     and (resource is None or pcmk.base_id(s.resource) == resource)
                     and (task is None or s.task == task))

    def summary(self):
        out = {}
        for step in self.steps:
            for kind, items in step.summary().items():
                out.setdefault(kind, set()).update(items)
        return {k: sorted(v, key=lambda p: (p[0] or "", p[1] or "")) for k, v in out.items()}


class Cluster:
    """A CIB file and the scheduler's view of it, advanced one transition at a time."""

    def __init__(self, cib_text, workdir, quorum=True):
        self.cib = _strip_comment(cib_text)
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.quorum = quorum        # None: leave the CIB's have-quorum alone
        self.calls = 0
        self.last_output = self.last_graph = None

    def _path(self, name):
        return self.workdir / name

    def simulate(self, *, execute=True, **events):
        """One transition; with execute the CIB advances to its result."""
        if self.quorum is not None:
            self.cib = with_quorum(self.cib, self.quorum)
        self._path("in.xml").write_text(self.cib)
        # relative names: the command line crm_simulate echoes into its output stays neutral
        cmd = simulate_command("in.xml", "out.xml" if execute else None, "graph.xml",
                               execute=execute, **events)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                              cwd=self.workdir, check=False)
        self.calls += 1
        if proc.returncode != 0:
            raise SimulationError(f"{' '.join(cmd)}: rc {proc.returncode}\n{proc.stderr}"
                                  f"\n{proc.stdout}")
        result = pcmk.parse_simulation(proc.stdout)
        self.last_graph = pcmk.parse_graph(self._path("graph.xml").read_text())
        if execute:
            self.cib = self._path("out.xml").read_text()
        self.last_output = proc.stdout
        return result

    def publish_promotion_scores(self, status):
        """Write the DRBD agent's scores for ``status``; True when they changed."""
        wanted = {node: attrs for node, attrs in pcmk.promotion_scores(status).items()
                  if attrs}
        if wanted == node_attributes(self.cib):
            return False
        self.cib = set_node_attributes(self.cib, wanted)
        return True

    def settle(self, max_transitions=10, **events):
        """Simulate transitions (events injected into the first) until nothing is left to do."""
        steps, graphs = [], []
        for _ in range(max_transitions):
            step = self.simulate(**events)
            events = {}
            steps.append(step)
            graphs.append(self.last_graph)
            changed = self.publish_promotion_scores(step.after)
            if step.idle and not changed:
                return Run(tuple(steps), tuple(graphs), self.cib)
        raise SimulationError(f"not settled after {max_transitions} transitions: "
                              f"{steps[-1].summary()}")

    def crm_resource(self, *args):
        """Run crm_resource against the CIB file (for example --move, --clear)."""
        cib_path = self._path("in.xml")
        cib_path.write_text(self.cib)
        env = dict(os.environ, CIB_file=str(cib_path))
        proc = subprocess.run(["crm_resource", *args], capture_output=True, text=True,
                              timeout=TIMEOUT, env=env, check=False)
        self.calls += 1
        if proc.returncode != 0:
            raise SimulationError(f"crm_resource {' '.join(args)}: rc {proc.returncode}\n"
                                  f"{proc.stderr}")
        self.cib = cib_path.read_text()
        return proc.stdout

    def crm_mon(self):
        """crm_mon's XML for the current CIB file."""
        cib_path = self._path("in.xml")
        cib_path.write_text(self.cib)
        env = dict(os.environ, CIB_file=str(cib_path))
        proc = subprocess.run(["crm_mon", "--output-as", "xml", "--one-shot",
                               "--show-node-attributes"], capture_output=True, text=True,
                              timeout=TIMEOUT, env=env, check=False)
        self.calls += 1
        if proc.returncode != 0:
            raise SimulationError(f"crm_mon: rc {proc.returncode}\n{proc.stderr}")
        return proc.stdout

    def fork(self, workdir):
        """A copy of this cluster (same CIB, same quorum) that advances on its own."""
        return Cluster(self.cib, workdir, self.quorum)
