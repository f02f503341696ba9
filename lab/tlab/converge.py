"""Converge the lab by Salt the way the README tells users: the repository's formula and
the lab's pillar (lab/pillar) pushed into each guest at /srv/trash, then `salt-call
--local ... state.apply` in each guest, both nodes at once (trash_root is / there, so
the live states run: storage, DRBD metadata, services)."""

import json
import pathlib
import shlex
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from . import lab

ROOT = pathlib.Path(__file__).resolve().parents[2]
GUEST_DIR = "/srv/trash"
# what a node needs for `salt-call --local` from a checkout (etc/salt/minion's relative
# paths: file_roots salt, module_dirs .); the pillar is the lab's
PARTS = ("salt", "_modules", "_states", "_beacons", "_utils", "etc/salt/minion", "lab/pillar")
TIMEOUT = 1500  # s for one state.apply in a TCG guest


def stage(dest):
    """The tree pushed into a guest: PARTS of the checkout, symlinks resolved (the lab
    pillar's secrets.sls is a link to pillar/trash/secrets.sls)."""
    dest = pathlib.Path(dest)
    for part in PARTS:
        src, dst = ROOT / part, dest / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    return dest


def push(nodes=lab.NODES):
    """Replace /srv/trash in each node with the checkout's formula and the lab pillar."""
    with tempfile.TemporaryDirectory(prefix="trashlab-formula-") as tmp:
        stage(tmp)
        for node in nodes:
            lab.run(node, f"rm -rf {GUEST_DIR}", check=True)
            lab.push(node, tmp, GUEST_DIR)


def command(node, test=False, function="state.apply"):
    argv = ["salt-call", "--local", f"--config-dir={GUEST_DIR}/etc/salt",
            f"--pillar-root={GUEST_DIR}/lab/pillar", f"--id={node}", "--out=json",
            "--log-level=quiet", function]
    if test:
        argv.append("test=True")
    return f"cd {GUEST_DIR} && {shlex.join(argv)}"


def call(node, function, *args, timeout=600):
    """Any salt-call function with the lab pillar in a guest (after push); its return."""
    argv = ["salt-call", "--local", f"--config-dir={GUEST_DIR}/etc/salt",
            f"--pillar-root={GUEST_DIR}/lab/pillar", f"--id={node}", "--out=json",
            "--log-level=quiet", function, *args]
    r = lab.run(node, f"cd {GUEST_DIR} && {shlex.join(argv)}", timeout=timeout)
    try:
        return json.loads(r.stdout)["local"]
    except (ValueError, KeyError):
        raise lab.LabError(f"{node}: salt-call {function} exited {r.returncode}: "
                           f"{r.stdout.strip()[-2000:]}\n{r.stderr.strip()[-2000:]}") from None


def apply(node, test=False):
    """One state.apply in a guest: {"seconds", "states": [...], "error"}; each state
    {"id", "result", "changes", "comment"} in the order they ran."""
    t0 = time.monotonic()
    r = lab.run(node, command(node, test), timeout=TIMEOUT)
    took = round(time.monotonic() - t0, 1)
    try:
        ret = json.loads(r.stdout)["local"]
    except (ValueError, KeyError):
        return {"node": node, "seconds": took, "states": [],
                "error": f"salt-call exited {r.returncode}: {r.stdout.strip()[-3000:]}\n"
                         f"{r.stderr.strip()[-3000:]}"}
    if not isinstance(ret, dict):  # a render error: a list of messages
        return {"node": node, "seconds": took, "states": [],
                "error": "\n".join(map(str, ret if isinstance(ret, list) else [ret]))}
    states = [{"id": s.get("__id__", key), "result": s.get("result"),
               "changes": s.get("changes") or {}, "comment": str(s.get("comment", "")),
               "run_num": s.get("__run_num__", 0)}
              for key, s in ret.items()]
    states.sort(key=lambda s: s["run_num"])
    return {"node": node, "seconds": took, "states": states, "error": None}


def failed(result):
    """The ids of the states that failed (False; None too when not in test mode)."""
    return [s["id"] for s in result["states"] if s["result"] is False]


def converge(nodes=lab.NODES, test=False, push_first=True):
    """Push the formula, then state.apply on every node at once: {node: apply()}."""
    if push_first:
        push(nodes)
    with ThreadPoolExecutor(len(nodes)) as pool:
        results = list(pool.map(lambda n: apply(n, test), nodes))
    return {r["node"]: r for r in results}


def summary(results):
    """Lines: per node its time, then per state id, result, number of changes, comment."""
    lines = []
    for node, res in results.items():
        n_changed = sum(1 for s in res["states"] if s["changes"])
        lines.append(f"== {node}: {len(res['states'])} states, {n_changed} changed, "
                     f"{len(failed(res))} failed, {res['seconds']} s")
        if res["error"]:
            lines.append(f"   ERROR: {res['error']}")
        for s in res["states"]:
            first = s["comment"].strip().splitlines()[0] if s["comment"].strip() else ""
            mark = {True: "ok", False: "FAILED", None: "test"}[s["result"]]
            lines.append(f"   {s['id']:<36} {mark:<6} {len(s['changes']):>3}  {first[:110]}")
    return lines


def ok(results):
    return all(not r["error"] and not failed(r) for r in results.values())


def health(nodes=lab.NODES, wait=0, every=15, log=lab.say):
    """trash.status of every node ({node: status}); with ``wait`` seconds, asked again
    until every verdict is ok or the time is up (Pacemaker starts the guests minutes after
    a first converge under TCG), saying what is still awaited."""
    deadline = time.monotonic() + wait
    while True:
        def status(node):
            try:
                return call(node, "trash.status", timeout=300)
            except lab.LabError as exc:
                return {"node": node, "verdict": "failed", "findings": [str(exc)]}

        with ThreadPoolExecutor(len(nodes)) as pool:
            answers = dict(zip(nodes, pool.map(status, nodes)))
        if all(a.get("verdict") == "ok" for a in answers.values()) or time.monotonic() >= deadline:
            return answers
        pending = sorted({f for a in answers.values() for f in a.get("findings", [])
                          if not f.startswith("ok")})
        log(f"trashlab: waiting ({int(deadline - time.monotonic())} s left): "
            + "; ".join(pending[:4]) + (" …" if len(pending) > 4 else ""))
        time.sleep(every)


def health_lines(answers):
    """trash.status of each node as an administrator reads it."""
    lines = []
    for node, st in answers.items():
        lines.append(f"== {node}: {st.get('verdict', '?').upper()}")
        lines += [f"   {f}" for f in st.get("findings", [])]
        if st.get("raid"):
            lines.append(f"   raid: {st['raid']}")
        for key in ("mirrors", "guests", "fencing"):
            if st.get(key):
                lines.append(f"   {key}: " + ", ".join(
                    f"{k} {v if isinstance(v, str) else '+'.join(v)}"
                    for k, v in st[key].items()))
    return lines
