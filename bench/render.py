#!/usr/bin/env python3
"""Benchmark: trash.render of one node, example pillar vs. 200 guests and 100 VLANs.

Prints figures and their ratio (goal: the large pillar costs at most 2x the
example), measured in the same run, alternating, as medians. Two views:
- cli: ``salt-call --local ... trash.render``, what an administrator waits for;
- core: the model and the renderers in-process, without Salt's start-up.
No pass/fail: these machines are shared and noisy, so figures are for reading.
"""

import argparse
import copy
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_utils"))

from trashlib import files, model  # noqa: E402


def example():
    out = {}
    for name in ("cluster", "secrets"):
        out = model.merge(out, yaml.safe_load((ROOT / f"pillar/trash/{name}.sls").read_text()))
    return out


def large(base, guests=200, vlans=100):
    """The example cluster with ``guests`` guests and ``vlans`` customer VLANs."""
    pillar = copy.deepcopy(base)
    t = pillar["trash"]
    for i in range(vlans):
        vid = 200 + i
        t["network"]["vlans"][vid] = {"bridge": f"vbr{vid}", "description": f"customer {i}"}
    t["guests"] = {}
    for i in range(guests):
        home = ("node1", "node2")[i % 2]
        local = i % 10 == 9
        t["guests"][f"guest{i:03d}"] = {
            "home": home, "memory": 512 + 256 * (i % 4), "vcpus": 1 + i % 2, "disk_size": "20G",
            "storage": "local" if local else "cluster",
            "failover": (not local) and i % 3 == 0,
            "networks": ["vbr0", f"vbr{200 + i % vlans}", "vbr1"],
        }
    return pillar


def write_pillar_dir(pillar, path):
    (path / "trash").mkdir(parents=True)
    shutil.copy(ROOT / "pillar/top.sls", path / "top.sls")
    (path / "trash/cluster.sls").write_text(yaml.safe_dump(pillar))
    (path / "trash/secrets.sls").write_text("{}\n")


def time_cli(pillar_dir, outdir):
    cmd = [str(ROOT / ".venv/bin/salt-call"), "--local", f"--config-dir={ROOT}/etc/salt",
           f"--pillar-root={pillar_dir}", "--id=node1", "--log-level=quiet", "--out=quiet",
           "--retcode-passthrough", "trash.render", str(outdir)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def time_core(pillar, defaults):
    start = time.perf_counter()
    cfg = model.load(pillar, defaults)
    count = len(files.plan(cfg, "node1"))
    return time.perf_counter() - start, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    defaults = yaml.safe_load((ROOT / "salt/trash/defaults.yaml").read_text())
    small, big = example(), large(example())
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="trash-bench-"))
    try:
        dirs = {}
        for name, pillar in (("example", small), ("large", big)):
            write_pillar_dir(pillar, tmp / f"pillar-{name}")
            dirs[name] = tmp / f"pillar-{name}"
        cli = {"example": [], "large": []}
        core = {"example": [], "large": []}
        counts = {}
        for _ in range(args.rounds):
            for name, pillar in (("example", small), ("large", big)):
                out = tmp / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                cli[name].append(time_cli(dirs[name], out))
                seconds, counts[name] = time_core(pillar, defaults)
                core[name].append(seconds)
        print(f"trash.render of node1, median of {args.rounds} alternating rounds "
              f"({os.cpu_count()} cores, shared machine)")
        print(f"{'pillar':<10}{'files':>7}{'cli s':>10}{'core ms':>10}")
        for name in ("example", "large"):
            print(f"{name:<10}{counts[name]:>7}{statistics.median(cli[name]):>10.3f}"
                  f"{statistics.median(core[name]) * 1000:>10.1f}")
        ratio_cli = statistics.median(cli["large"]) / statistics.median(cli["example"])
        ratio_core = statistics.median(core["large"]) / statistics.median(core["example"])
        print(f"ratio large/example: cli {ratio_cli:.2f}x (goal <= 2x), core {ratio_core:.1f}x "
              f"(the core grows with the pillar; Salt's start-up dominates the command)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
