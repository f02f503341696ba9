"""Regenerate the captures in this directory with the real Pacemaker tools.

    .venv/bin/python tests/data/pcmk/capture.py

Each file is the verbatim stdout of one crm_simulate or crm_mon call (Pacemaker
2.1.5) on the CIB generated from the example pillar, at the point of the
scenario named in README.md. tests/unit/test_pcmk.py parses them.
"""

import copy
import pathlib
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT / "_utils"), str(ROOT / "tests/offline")]

import crmsim  # noqa: E402
import yaml  # noqa: E402
from trashlib import cib, model  # noqa: E402


def _cfg():
    defaults = yaml.safe_load((ROOT / "salt/trash/defaults.yaml").read_text())
    pillar = {}
    for name in ("cluster", "secrets"):
        text = (ROOT / f"pillar/trash/{name}.sls").read_text()
        pillar = model.merge(pillar, yaml.safe_load(text))
    return model.load(pillar, defaults)


def _cib(cfg, stickiness=None):
    root = cib.build(copy.deepcopy(cfg))
    if stickiness is not None:
        for nv in root.iter("nvpair"):
            if nv.get("name") == "resource-stickiness":
                nv.set("value", str(stickiness))
    return ET.tostring(root, encoding="unicode")


def main():
    cfg = _cfg()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pcmk-capture-"))
    out = {}

    def keep(name, cluster):
        out[name] = cluster.last_output

    both = ["node1", "node2"]
    c = crmsim.Cluster(cib.with_status(_cib(cfg), both), tmp / "boot")
    c.simulate()
    keep("simulate-boot-1.xml", c)
    c.publish_promotion_scores(crmsim.pcmk.parse_simulation(c.last_output).after)
    c.simulate()
    keep("simulate-boot-2.xml", c)
    c.settle()
    keep("simulate-settled-idle.xml", c)
    settled = c.cib

    p = crmsim.Cluster(settled, tmp / "preview")
    p.simulate(execute=False, node_fail=["node2"])
    keep("run-preview-node2-fail.xml", p)

    r = crmsim.Cluster(settled, tmp / "recover")
    r.simulate(inject=["guest-shell2_monitor_30000@node2=7"])
    keep("simulate-recover-guest.xml", r)

    f = crmsim.Cluster(settled, tmp / "fail")
    f.simulate(node_fail=["node1"])
    keep("simulate-node1-fail.xml", f)
    out["graph-node1-fail.xml"] = (tmp / "fail" / "graph.xml").read_text()
    f.publish_promotion_scores(crmsim.pcmk.parse_simulation(f.last_output).after)
    f.settle()
    f.settle(node_up=["node1"])
    out["crm_mon-rejoined.xml"] = f.crm_mon()
    f.crm_resource("--move", "--resource", "vg-vg_node1", "--node", "node1")
    f.simulate()
    keep("simulate-manual-move.xml", f)

    # a deliberately broken CIB (stickiness 0): clone instances reshuffle on rejoin
    s = crmsim.Cluster(cib.with_status(_cib(cfg, stickiness=0), both), tmp / "stick0")
    s.settle()
    s.settle(node_fail=["node1"])
    s.simulate(node_up=["node1"])
    keep("simulate-rejoin-stickiness-0.xml", s)

    q = crmsim.Cluster(cib.with_status(_cib(cfg), ["node1"]), tmp / "noquorum", quorum=False)
    q.simulate()
    keep("simulate-no-quorum.xml", q)

    for name, text in out.items():
        (HERE / name).write_text(text)
        print(name, len(text))


if __name__ == "__main__":
    main()
