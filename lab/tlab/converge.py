"""Converge the lab with Salt as the README tells users, in one of two ways.

- `converge()` (the default: `lab/trashlab converge`, bin/demo, the lab tier): the checkout
  and the lab's pillar pushed to /srv/trash in each node, then `salt-call --local
  state.apply` in each, both nodes at once. Under TCG every Salt process costs 10-40 s of
  CPU, so this is the quick way, and the one the drills use.
- `converge(masters=True)` (`lab/trashlab converge --masters`): README "Deploying on the
  cluster": both nodes run a salt-master and a salt-minion, every minion talks to both
  masters over the back-channel, and node1's master runs `salt 'node*' state.apply`.
  `bootstrap` does, once, what an installer and an administrator do before that (README
  steps 3 and 4): the back-channel as the Debian installer leaves it (an ifupdown stanza,
  unless the formula took it over already), the units, the master configuration, one
  master key pair for both masters, the minion configuration, the keys accepted on both
  masters after comparing fingerprints. Not in the lab tier: too slow under TCG
  (lab/README.md).

trash_root is / in the nodes, so the live states run: storage, DRBD metadata, services."""

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
# the checkout as etc/salt/master serves it: file_roots salt/ (whose _modules, _states,
# _beacons and _utils stay symlinks, as in a checkout), runner_dirs _runners/, the reactor,
# etc/ (the master configuration, etc/salt/minion for salt-call --local, the units)
PARTS = ("salt", "_modules", "_states", "_beacons", "_utils", "_runners", "reactor", "etc")
# the lab's pillar, presented where etc/salt/master's pillar_roots looks (/srv/trash/pillar)
LAB_PILLAR = "lab/pillar"
SECRETS = "pillar/trash/secrets.sls"
UNITS = ("salt-master.service", "salt-minion.service")
MASTER_PKI = "/etc/salt/pki/master"
# the node whose master converges; both masters serve the same checkout
CONVERGER = "node1"
# salt's CLI waits -t seconds for the returns before it asks whether the minions still run
# the job, and gives up on a minion that does not answer that within gather_job_timeout
# (10 s; a busy TCG node can take longer): a state.apply takes minutes under TCG, so the
# question must not come before it ends
APPLY_TIMEOUT = 2400   # s: `salt -t` of a state.apply
TIMEOUT = 1500  # s for one `salt-call --local state.apply` in a TCG node
SALT_TIMEOUT = 900     # s: `salt -t` of other jobs (sync_all took 207-300+ s on a node
                       # running its guests)


def backchannel_iface():
    """The lab's back-channel interface (lab.CROSS_LINKS: eth2)."""
    return next(f"eth{i}" for i, zone in lab.CROSS_LINKS.items() if zone == "backchannel")


def pillar_nodes():
    import yaml  # the host's (lab.ensure_host_tools), only when converging
    return yaml.safe_load((ROOT / LAB_PILLAR / "trash/cluster.sls").read_text())["trash"]["nodes"]


def stage(dest):
    """The tree pushed into a guest: PARTS of the checkout (their internal symlinks kept)
    and lab/pillar as pillar/ (symlinks resolved: its secrets.sls is a link into the
    checkout's pillar/)."""
    dest = pathlib.Path(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PARTS:
        src, dst = ROOT / part, dest / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, dst)
    shutil.copytree(ROOT / LAB_PILLAR, dest / "pillar", ignore=ignore)
    return dest


def push(nodes=lab.NODES):
    """Replace /srv/trash in each node with the checkout and the lab pillar (secrets
    root-only, README step 2)."""
    with tempfile.TemporaryDirectory(prefix="trashlab-formula-") as tmp:
        stage(tmp)
        for node in nodes:
            lab.run(node, f"rm -rf {GUEST_DIR}", check=True)
            lab.push(node, tmp, GUEST_DIR)
            lab.run(node, f"chmod 600 {GUEST_DIR}/{SECRETS}", check=True)


def _parallel(fn, nodes):
    with ThreadPoolExecutor(len(nodes)) as pool:
        return dict(zip(nodes, pool.map(fn, nodes)))


def salt(master, target, function, *args, timeout=SALT_TIMEOUT, run_timeout=None):
    """`salt TARGET FUNCTION ARGS` on ``master``'s node: {minion: return} (a minion that
    did not answer has a string there). TARGET: a glob, or a list/tuple of ids."""
    tgt = ["-L", ",".join(target)] if isinstance(target, (list, tuple)) else [target]
    argv = ["salt", *tgt, function, *args, "--out=json", "--static", f"-t{timeout}"]
    r = lab.run(master, shlex.join(argv), timeout=run_timeout or timeout + 180)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise lab.LabError(f"{master}: salt {function} exited {r.returncode}: "
                           f"{r.stdout.strip()[-2000:]}\n{r.stderr.strip()[-2000:]}") from None


def _keys(master):
    """The keys on ``master`` with their fingerprints (`salt-key -F`):
    {"minions": {id: fingerprint}, "minions_pre": {...}, "minions_rejected": {...}, ...}."""
    r = lab.run(master, "salt-key -F --out=json", timeout=120)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise lab.LabError(f"{master}: salt-key -F exited {r.returncode}: {r.stderr.strip()}") from None


# -- bootstrap: what the installer and the administrator do before the first apply -----
def _installed(node):
    """What of the set-up is already in place on ``node``."""
    r = lab.run(node, "for f in /etc/systemd/system/salt-minion.service "
                      "/etc/salt/minion.d/trash.conf /etc/salt/master.d/trash.conf "
                      f"{MASTER_PKI}/master.pub; do test -e $f && echo $f; done; "
                      "systemctl is-active salt-master salt-minion", timeout=60)
    return r.stdout.split()


def _install(node):
    """README steps 3 and 4 up to starting the master, after the installer's network."""
    address = pillar_nodes()[node]["addresses"]["backchannel"]
    iface = backchannel_iface()
    # the back-channel as the Debian installer leaves a server: an ifupdown stanza (the
    # formula's trash-ifupdown-released takes it away later, networkd takes the link over;
    # the stanza is not written again once that happened: interfaces.trash-orig exists)
    stanza = (f"\n# the back-channel, as the installer configured it\nallow-hotplug {iface}\n"
              f"iface {iface} inet static\n\taddress {address}\n")
    units = " ".join(f"{GUEST_DIR}/etc/systemd/{u}" for u in UNITS)
    script = f"""set -e
if [ ! -e /etc/network/interfaces.trash-orig ] && ! grep -q '^iface {iface} ' /etc/network/interfaces; then
    printf %s {shlex.quote(stanza)} >> /etc/network/interfaces
    ifup {iface}
fi
install -m 644 {units} /etc/systemd/system/
systemctl daemon-reload
mkdir -p /etc/salt/master.d
ln -sfn {GUEST_DIR}/etc/salt/master /etc/salt/master.d/trash.conf
"""
    lab.run(node, script, timeout=120, check=True)


def _share_master_key(src, dst):
    """Both masters need one key pair: a minion keeps one master key
    (minion_master.pub) and refuses a master whose key differs ("The master key has
    changed"). Copied through the agent, never printed."""
    pub = lab.run(src, f"cat {MASTER_PKI}/master.pub", timeout=60, check=True).stdout
    have = lab.run(dst, f"cat {MASTER_PKI}/master.pub 2>/dev/null", timeout=60).stdout
    if have == pub:
        return False
    pem = lab.run(src, f"cat {MASTER_PKI}/master.pem", timeout=60, check=True).stdout
    lab.run(dst, f"systemctl stop salt-master; install -d -m 700 {MASTER_PKI} && "
                 f"umask 077 && cat > {MASTER_PKI}/master.pem && chmod 400 {MASTER_PKI}/master.pem",
            input=pem, timeout=120, check=True)
    lab.run(dst, f"cat > {MASTER_PKI}/master.pub && chmod 644 {MASTER_PKI}/master.pub",
            input=pub, timeout=60, check=True)
    return True


def _start_minion(node):
    """README step 4: the minion configuration the formula manages (so that the first
    apply does not change it: its masters and its beacons hold from the start), rendered
    from the checkout with salt-call --local; then the minion started."""
    script = f"""set -e
if [ ! -e /etc/salt/minion.d/trash.conf ]; then
    d=$(mktemp -d)
    cd {GUEST_DIR}
    salt-call --local --config-dir={GUEST_DIR}/etc/salt --id={node} --log-level=quiet \\
        trash.render $d concern=basics >/dev/null
    mkdir -p /etc/salt/minion.d
    cp -p $d/etc/salt/minion.d/trash.conf /etc/salt/minion.d/trash.conf
    rm -rf $d
fi
systemctl enable --now salt-minion
# its key pair, made when it starts, before its fingerprint can be compared
for i in $(seq 120); do test -s /etc/salt/pki/minion/minion.pub && exit 0; sleep 1; done
exit 1
"""
    lab.run(node, script, timeout=300, check=True)


def colons(hexdigest):
    """A hex digest as Salt prints fingerprints (ab:cd:...)."""
    return ":".join(hexdigest[i:i + 2] for i in range(0, len(hexdigest), 2))


def _minion_finger(node):
    """The fingerprint of the minion's public key as Salt 3008.4's `salt-key -f` prints it
    on a master: the sha256 of the PEM text without its last newline (the key as the
    master stores it; `salt-call --local key.finger` hashes the PEM body instead,
    salt#69970, fixed after 3008.4 by salt#70011)."""
    r = lab.run(node, 'printf %s "$(cat /etc/salt/pki/minion/minion.pub)" | sha256sum',
                timeout=120)
    digest = r.stdout.split()[0] if r.returncode == 0 and r.stdout.split() else ""
    if len(digest) != 64:
        raise lab.LabError(f"{node}: no minion key to hash: {r.stderr.strip()}")
    return colons(digest)


def accept_keys(nodes=lab.NODES, timeout=300):
    """Accept every node's minion on every master, each key only when its fingerprint on
    the master (`salt-key -F`) is the one the minion has for its own key."""
    fingers = _parallel(_minion_finger, nodes)
    deadline = time.monotonic() + timeout

    def on(master):
        while True:
            keys = _keys(master)
            bad = [m for m in nodes if m in keys.get("minions_rejected", {})
                   or m in keys.get("minions_denied", {})]
            if bad:
                raise lab.LabError(f"{master}'s master rejected or denied {bad}: {keys}")
            if all(m in keys.get("minions", {}) for m in nodes):
                return keys
            pending = {m: f for m, f in keys.get("minions_pre", {}).items() if m in nodes}
            for minion, seen in pending.items():
                if seen != fingers[minion]:
                    raise lab.LabError(f"{master}: the pending key of {minion} has fingerprint "
                                       f"{seen}, the minion's is {fingers[minion]}: not accepted")
            if pending:
                lab.run(master, " && ".join(f"salt-key -y -a {m}" for m in pending),
                        timeout=300, check=True)
                continue
            if time.monotonic() > deadline:
                raise lab.LabError(f"{master}: not every minion's key arrived within "
                                   f"{timeout} s: {keys}")
            time.sleep(5)  # a minion asks again every acceptance_wait_time (10 s)

    return _parallel(on, lab.NODES)


def wait_answering(masters=lab.NODES, nodes=lab.NODES, timeout=600):
    """Until `salt -L nodes test.ping` from each of ``masters`` answers every node."""
    deadline = time.monotonic() + timeout

    def on(master):
        while True:
            try:
                ret = salt(master, list(nodes), "test.ping", timeout=60)
            except lab.LabError as exc:  # e.g. no key accepted yet: no minion to target
                ret = {"error": str(exc)}
            if all(ret.get(n) is True for n in nodes):
                return ret
            if time.monotonic() > deadline:
                raise lab.LabError(f"{master}'s master: not every minion answers: {ret}")
            time.sleep(5)

    return _parallel(on, list(masters))


def bootstrap(log=lab.say):
    """Masters and minions on both nodes as README "Deploying" steps 3 and 4 set them up,
    once (each step is skipped where it is done). Returns the seconds it took, or 0."""
    t0 = time.monotonic()
    have = _parallel(_installed, lab.NODES)
    done = all({"/etc/systemd/system/salt-minion.service", "/etc/salt/minion.d/trash.conf",
                "/etc/salt/master.d/trash.conf"} <= set(h) and h[-2:] == ["active", "active"]
               for h in have.values())
    if done and all(set(_keys(m).get("minions", {})) >= set(lab.NODES) for m in lab.NODES):
        return 0
    log("trashlab: setting up the salt-masters and salt-minions (README, Deploying 3-4)")
    _parallel(_install, lab.NODES)
    first, others = lab.NODES[0], lab.NODES[1:]
    # the first master makes the key pair (after it told systemd it started)
    lab.run(first, "systemctl enable --now salt-master && for i in $(seq 120); do "
                   f"test -s {MASTER_PKI}/master.pub && exit 0; sleep 1; done; exit 1",
            timeout=300, check=True)
    for node in others:
        _share_master_key(first, node)
        lab.run(node, "systemctl enable --now salt-master", timeout=300, check=True)
    _parallel(_start_minion, lab.NODES)
    accept_keys(lab.NODES)
    wait_answering()
    took = round(time.monotonic() - t0, 1)
    log(f"trashlab: masters and minions up, keys accepted on both masters ({took} s)")
    return took


def refresh(nodes=lab.NODES):
    """After a push: each master forgets its list of the checkout's files, then every
    minion syncs the custom modules (README step 5: `sync_all` after every pull)."""
    _parallel(lambda m: lab.run(m, "salt-run fileserver.clear_file_list_cache >/dev/null",
                                timeout=300), lab.NODES)
    ret = salt(CONVERGER, list(nodes), "saltutil.sync_all")
    missing = [n for n in nodes if not isinstance(ret.get(n), dict)]
    if missing:
        raise lab.LabError(f"saltutil.sync_all: no answer from {missing}: {ret}")
    return ret


# -- the apply through the masters ----------------------------------------------------
# the salt CLI prints each minion's return as it arrives (one line each: --out-indent=-1);
# each line is stamped with the guest's clock, so each node's time is its own
STAMP = ("import sys, time\n"
         "for line in iter(sys.stdin.readline, ''):\n"
         "    sys.stdout.write('%.1f %s' % (time.time(), line))\n"
         "    sys.stdout.flush()\n")


def apply_command(nodes, test=False):
    target = ["node*"] if tuple(nodes) == lab.NODES else ["-L", ",".join(nodes)]
    argv = ["salt", *target, "state.apply", *(["test=True"] if test else []), "--out=json",
            "--out-indent=-1", f"-t{APPLY_TIMEOUT}"]
    return (f"cd / && date +%s.%N && PYTHONUNBUFFERED=1 {shlex.join(argv)} "
            f"| python3 -u -c {shlex.quote(STAMP)}")


def _result(node, took, ret, error=None):
    """One node's return as apply() reports it."""
    if error is not None:
        return {"node": node, "seconds": took, "states": [], "error": error}
    if not isinstance(ret, dict):  # a render error (a list of messages) or no return
        return {"node": node, "seconds": took, "states": [],
                "error": "\n".join(map(str, ret if isinstance(ret, list) else [ret]))}
    states = [{"id": s.get("__id__", key), "result": s.get("result"),
               "changes": s.get("changes") or {}, "comment": str(s.get("comment", "")),
               "run_num": s.get("__run_num__", 0), "ms": float(s.get("duration") or 0)}
              for key, s in ret.items()]
    states.sort(key=lambda s: s["run_num"])
    return {"node": node, "seconds": took, "states": states, "error": None}


def parse_apply(nodes, stdout, stderr="", returncode=0):
    """{node: result} from apply_command's output: the start time, then one stamped line
    per minion's return."""
    lines = stdout.splitlines()
    try:
        t0 = float(lines[0])
    except (IndexError, ValueError):
        t0 = None
    out = {}
    for line in lines[1:]:
        stamp, _, text = line.partition(" ")
        try:
            ret = json.loads(text)
        except ValueError:
            continue
        if not isinstance(ret, dict):
            continue
        for node, value in ret.items():
            took = round(float(stamp) - t0, 1) if t0 is not None else None
            out[node] = _result(node, took, value)
    for node in nodes:
        if node not in out:
            out[node] = _result(node, None, None, error=(
                f"no return from {node}: salt exited {returncode}: "
                f"{stdout.strip()[-2000:]}\n{stderr.strip()[-2000:]}"))
    return {node: out[node] for node in nodes}


def apply_all(nodes=lab.NODES, test=False):
    """One `salt 'node*' state.apply` from CONVERGER's master: {node: result}, each
    {"node", "seconds", "states": [...], "error"}; each state {"id", "result", "changes",
    "comment"} in the order they ran."""
    r = lab.run(CONVERGER, apply_command(nodes, test), timeout=APPLY_TIMEOUT + 300)
    return parse_apply(tuple(nodes), r.stdout, r.stderr, r.returncode)



# -- salt-call --local ----------------------------------------------------------------
def command(node, test=False, function="state.apply", *args):
    argv = ["salt-call", "--local", f"--config-dir={GUEST_DIR}/etc/salt",
            f"--pillar-root={GUEST_DIR}/pillar", f"--id={node}", "--out=json",
            "--log-level=quiet", function, *args]
    if test:
        argv.append("test=True")
    # Salt and what it runs yield the node's one vCPU to the cluster's daemons: starved
    # behind them under TCG, pacemakerd kills a subdaemon that has not answered its IPC
    # check five times, and the peer fences the node (measured 2026-11-28)
    return f"cd {GUEST_DIR} && nice -n 10 {shlex.join(argv)}"


def call(node, function, *args, timeout=600):
    """Any function by `salt-call --local` with the lab pillar in a node (after a push);
    its return."""
    r = lab.run(node, command(node, False, function, *args), timeout=timeout)
    try:
        return json.loads(r.stdout)["local"]
    except (ValueError, KeyError):
        raise lab.LabError(f"{node}: salt-call {function} exited {r.returncode}: "
                           f"{r.stdout.strip()[-2000:]}\n{r.stderr.strip()[-2000:]}") from None


def apply(node, test=False):
    """One `salt-call --local state.apply` in a node: {"node", "seconds", "states": [...],
    "error"}; each state {"id", "result", "changes", "comment"} in the order they ran."""
    t0 = time.monotonic()
    r = lab.run(node, command(node, test), timeout=TIMEOUT)
    took = round(time.monotonic() - t0, 1)
    try:
        ret = json.loads(r.stdout)["local"]
    except (ValueError, KeyError):
        return _result(node, took, None, error=f"salt-call exited {r.returncode}: "
                       f"{r.stdout.strip()[-3000:]}\n{r.stderr.strip()[-3000:]}")
    return _result(node, took, ret)


def failed(result):
    """The ids of the states that failed (False; None too when not in test mode)."""
    return [s["id"] for s in result["states"] if s["result"] is False]


def converge(nodes=lab.NODES, test=False, push_first=True, masters=False):
    """Push the checkout, then state.apply on ``nodes`` at once:
    {node: result}. With ``masters``, through node1's master as README "Deploying" says
    (the masters and minions set up first if they are not, then synced)."""
    if push_first:
        # both masters serve the checkout; salt-call --local needs it where it runs only
        # (the other node may be off: a drill)
        push(lab.NODES if masters else tuple(nodes))
    if not masters:
        return _parallel(lambda n: apply(n, test), tuple(nodes))
    bootstrap()
    if push_first:
        refresh()
    return apply_all(tuple(nodes), test)


def summary(results, slowest=8):
    """Lines: per node its time and its slowest states, then per state id, result, number
    of changes, comment."""
    lines = []
    for node, res in results.items():
        n_changed = sum(1 for s in res["states"] if s["changes"])
        lines.append(f"== {node}: {len(res['states'])} states, {n_changed} changed, "
                     f"{len(failed(res))} failed, {res['seconds']} s")
        top = sorted(res["states"], key=lambda s: -s["ms"])[:slowest]
        if top:
            lines.append("   slowest: " + ", ".join(
                f"{s['id']} {s['ms'] / 1000:.0f} s" for s in top))
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

        answers = _parallel(status, tuple(nodes))
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
