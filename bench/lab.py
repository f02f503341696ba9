#!/usr/bin/env python3
"""Benchmark: the lab from nothing to a converged cluster, and its memory.

Prints figures, and ratios against goals or against a floor measured in the same run;
no pass/fail (these machines are shared and noisy):
- converge: image (built when not cached: `--cold` removes the cached image first),
  boot, `state.apply` on both nodes, and the wait until `trash.status` says ok on both
  (Pacemaker has started every guest). Goals: cold <= 10 min, warm <= 5 min.
- memory: resident memory of every process the lab started (QEMU, BMCs). Goal <= 6 GiB.
- node loss against its floor (corosync token + consensus + power-off acknowledgement +
  guest start) is not measured yet: `lab/trashlab drill node-loss node1` prints its timeline.
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

from tlab import converge, image, lab  # noqa: E402

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="remove the cached image first")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root")
    out = {"converge": converge_figures(args.cold)}
    mem = lab_memory()
    out["memory"] = {k: round(v / GIB, 2) for k, v in mem.items()}
    out["memory"]["total GiB"] = round(sum(mem.values()) / GIB, 2)
    if args.json:
        print(json.dumps(out, indent=1))
        return
    c = out["converge"]
    goal = 600 if c["cached image"] == "no" else 300
    print(f"converge ({'cold' if goal == 600 else 'warm'} image cache): image {c['image s']} s, "
          f"up {c['up s']} s, state.apply {c['state.apply s']} s, until ok {c['until ok s']} s")
    print(f"  total {c['total s']} s = {c['total s'] / goal:.2f}x the goal of {goal} s")
    print("memory: " + ", ".join(f"{k} {v} GiB" for k, v in out["memory"].items()
                                 if k != "total GiB"))
    print(f"  total {out['memory']['total GiB']} GiB = "
          f"{out['memory']['total GiB'] / 6:.2f}x the goal of 6 GiB")


if __name__ == "__main__":
    main()
