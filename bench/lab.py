#!/usr/bin/env python3
"""Benchmark: the lab from nothing to a converged cluster, and its memory.

Prints figures, and ratios against goals or against a floor measured in the same run;
no pass/fail (these machines are shared and noisy):
- converge: image (built when not cached: `--cold` removes the cached image first),
  boot, `state.apply` on both nodes, and the wait until `trash.status` says ok on both
  (Pacemaker has started every guest). Goals: cold <= 10 min, warm <= 5 min.
- memory: resident memory of every process the lab started (QEMU, BMCs). Goal <= 6 GiB.
- node loss (`--node-loss`): the drill `node-loss node1` on the converged lab, cut → every
  failover guest running on node2, against its floor measured in the same run: corosync's
  token + consensus (configured), one IPMI round trip from node2 to node1's BMC
  (`fence_ipmilan -o status`, the power-off acknowledgement's cost without the off) and
  the guest's start as Pacemaker timed it (its start operation's exec-time on node2).
  Goal <= 1.5x the floor. The fence delay (the lab pillar's fence_delay: node1 is the
  priority node) is printed beside it: it is a decision, not overhead. The lab is restored after it.
Needs root; the lab is taken down first and left up at the end (`lab/trashlab down`).
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / "_utils"))

from tlab import converge, drill, image, lab  # noqa: E402
from trashlib import cib  # noqa: E402

GIB = 1 << 30


def rss(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def lab_memory():
    """{process: bytes resident} of the lab's QEMUs and BMCs."""
    out = {}
    for node in lab.NODES:
        out[f"qemu {node}"] = rss(lab.qemu_pid(node))
        pid = lab.bmc_pid(node)
        if pid:
            out[f"bmc {node}"] = rss(pid)
    return out


def converge_figures(cold):
    figures = {}
    lab.down()
    if cold:
        shutil.rmtree(image.image_dir(), ignore_errors=True)
    figures["cached image"] = "no" if not image.ready() else "yes"
    t0 = time.monotonic()
    up = lab.up()
    t1 = time.monotonic()
    results = converge.converge(lab.NODES)
    t2 = time.monotonic()
    if not converge.ok(results):
        print("\n".join(converge.summary(results)))
        raise SystemExit("bench: the converge failed")
    health = converge.health(lab.NODES, wait=1200)
    t3 = time.monotonic()
    if not all(st.get("verdict") == "ok" for st in health.values()):
        print("\n".join(converge.health_lines(health)))
        raise SystemExit("bench: the cluster did not become healthy")
    figures.update({"image s": (up or {}).get("image_s"), "up s": round(t1 - t0, 1),
                    "state.apply s": round(t2 - t1, 1), "until ok s": round(t3 - t2, 1),
                    "total s": round(t3 - t0, 1)})
    return figures


def _exec_ms(node, rsc, task="start"):
    """exec-time of the last successful ``task`` of ``rsc`` on ``node`` (Pacemaker's own
    timing of the agent), in seconds."""
    import xml.etree.ElementTree as ET
    r = lab.run(node, "crm_mon -1 -o --output-as xml", timeout=120)
    best = None
    for hist in ET.fromstring(r.stdout).iter("resource_history"):
        if hist.get("id") != rsc:
            continue
        for op in hist.iter("operation_history"):
            if op.get("task") == task and op.get("rc") == "0":
                best = int(op.get("exec-time", "0ms").rstrip("ms")) / 1000
    return best


def ipmi_round_trip(survivor, victim, tries=3):
    """Seconds for one `fence_ipmilan -o status` from survivor to victim's BMC, with the
    CIB's parameters and password file (the best of ``tries``)."""
    bmc = drill.PILLAR["nodes"][victim]["bmc"]
    cmd = (f"s=$(date +%s.%N); fence_ipmilan -P -a {bmc['address']} -u {bmc.get('port', 623)} "
           f"-l {bmc['username']} -S 'cat {cib.fence_secret_path(victim)}' -o status "
           ">/dev/null 2>&1; "
           "rc=$?; e=$(date +%s.%N); echo $rc $s $e")
    best = None
    for _ in range(tries):
        rc, s, e = lab.run(survivor, cmd, timeout=120).stdout.split()
        if rc not in ("0", "2"):  # the fence agents' status: 0 on, 2 off
            raise SystemExit(f"bench: fence_ipmilan status from {survivor} failed (rc {rc})")
        took = float(e) - float(s)
        best = took if best is None else min(best, took)
    return round(best, 2)


def node_loss_figures():
    victim, survivor = "node1", "node2"
    guests = drill.failover_guests()
    d = drill.run("node-loss", (victim,))
    if d.verdict != "pass":
        print(d.render())
        raise SystemExit("bench: the node-loss drill failed")
    t = d.facts["seconds_from_cut"]
    took = max(t[f"{g} running on {survivor}"] for g in guests)
    start = round(max(_exec_ms(survivor, f"guest-{g}") or 0 for g in guests), 1)
    ipmi = ipmi_round_trip(survivor, victim)
    corosync = (drill.TOKEN_MS + drill.CONSENSUS_MS) / 1000
    floor = round(corosync + ipmi + start, 1)
    restored = drill.run("restore")
    if restored.verdict != "pass":
        print(restored.render())
    return {"cut to guests running s": took, "floor s": floor,
            "corosync token+consensus s": corosync, "ipmi round trip s": ipmi,
            "guest start s": start, "fence delay s": drill.FENCE_DELAY_S,
            "fenced s": t["BMC power off (bmc log)"], "ratio": round(took / floor, 2),
            "restored": restored.verdict}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="remove the cached image first")
    ap.add_argument("--node-loss", action="store_true",
                    help="also drill node-loss node1 against its floor")
    ap.add_argument("--node-loss-only", action="store_true",
                    help="only the node-loss figures, on the settled lab that is up")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    # each part printed as soon as it is measured: a later failure keeps the earlier figures
    show = (lambda *a: None) if args.json else print
    out = {}
    if not args.node_loss_only:
        c = out["converge"] = converge_figures(args.cold)
        goal = 600 if c["cached image"] == "no" else 300
        show(f"converge ({'cold' if goal == 600 else 'warm'} image cache): image "
             f"{c['image s']} s, up {c['up s']} s, state.apply {c['state.apply s']} s, "
             f"until ok {c['until ok s']} s")
        show(f"  total {c['total s']} s = {c['total s'] / goal:.2f}x the goal of {goal} s")
    mem = lab_memory()
    m = out["memory"] = {k: round(v / GIB, 2) for k, v in mem.items()}
    m["total GiB"] = round(sum(mem.values()) / GIB, 2)
    show("memory: " + ", ".join(f"{k} {v} GiB" for k, v in m.items() if k != "total GiB"))
    show(f"  total {m['total GiB']} GiB = {m['total GiB'] / 6:.2f}x the goal of 6 GiB")
    if args.node_loss or args.node_loss_only:
        n = out["node loss"] = node_loss_figures()
        show(f"node loss (node1): cut -> every failover guest running on node2 "
             f"{n['cut to guests running s']} s (node1 powered off +{n['fenced s']} s)")
        show(f"  floor {n['floor s']} s = corosync {n['corosync token+consensus s']} s + "
             f"IPMI round trip {n['ipmi round trip s']} s + guest start "
             f"{n['guest start s']} s; ratio {n['ratio']:.2f}x (goal <= 1.5x; the "
             f"{n['fence delay s']} s fence delay that lets node1 win a split is in it)")
    if args.json:
        print(json.dumps(out, indent=1))

if __name__ == "__main__":
    main()
