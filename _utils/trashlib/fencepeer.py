"""The fence-peer handler of a dual-primary mirror (DRBD 8.4): fences the peer through
Pacemaker, as drbd-utils' stonith_admin-fence-peer.sh does, and lets the priority node
yield when its peer holds more.

Both nodes call it when the mirror disconnects. The fence device aimed at the priority
node waits ``fence_delay`` (pcmk_delay_base), so the priority node wins the race. That is
the wrong node when its peer is Primary of more single-primary mirrors than it is (a
failover guest away from home): powering the peer off leaves those mirrors with an
outdated copy only, and every guest on them stopped (lab/README.md, "What the storage
link's loss does"). Then the priority node asks with ``--delay`` twice the fence delay and
its peer's request comes first. It yields only while the peer is still a cluster member
once corosync's membership had time to settle: a peer that is gone (every link lost) is
fenced by Pacemaker and DLM without that delay anyway, and the static priority decides.
A wrong view costs time, never both nodes: the handler only ever adds delay.

The standard library only: Salt installs this file as the handler itself.
"""

import argparse
import os
import subprocess
import sys
import syslog
import time
import xml.etree.ElementTree as ET

TAG = "drbd-fence-peer"
PROMOTED = ("Promoted", "Master")  # Pacemaker 2.1 / older


def parse_proc(text):
    """/proc/drbd (8.4) -> {minor: {"cs": ..., "ro": ..., "ds": ...}}."""
    out = {}
    for line in text.splitlines():
        head = line.split()
        if head and head[0].endswith(":") and head[0][:-1].isdigit():
            out[int(head[0][:-1])] = dict(f.split(":", 1) for f in head[1:] if ":" in f)
    return out


def cluster_view(xml_text, mirrors):
    """crm_mon's XML -> ({node: a clean, online member}, {node: [mirrors promoted there]})
    for the given DRBD primitives."""
    root = ET.fromstring(xml_text)
    nodes = root.find("nodes")
    members = {n.get("name"): n.get("online") == "true" and n.get("unclean") != "true"
               for n in (nodes if nodes is not None else [])}
    held = {}
    for res in root.iter("resource"):
        if res.get("id") in mirrors and res.get("role") in PROMOTED:
            for n in res.findall("node"):
                held.setdefault(n.get("name"), []).append(res.get("id"))
    return members, held


def extra_delay(me, peer, args, proc, crm_mon, sleep, log):
    """Seconds this node adds to its request to fence ``peer``: 0, or twice the fence
    delay when it is the priority node and ``peer`` holds more single-primary mirrors."""
    if me != args.priority:
        return 0  # its request targets the priority node, whose device waits already
    mine = sorted(rid for rid, minor in args.mirrors.items()
                  if proc.get(minor, {}).get("ro", "").startswith("Primary/"))
    if len(args.mirrors) - len(mine) <= len(mine):
        return 0  # the peer cannot hold more: no need to ask the cluster
    for attempt in ("now", "after settling"):
        try:
            members, held = cluster_view(crm_mon(), args.mirrors)
        except (OSError, subprocess.SubprocessError, ET.ParseError) as e:
            log(f"cluster view unavailable ({e}): the priority rule decides")
            return 0
        theirs = held.get(peer, [])
        if len(theirs) <= len(mine) or not members.get(peer):
            log(f"{peer} holds {len(theirs)} single-primary mirror(s), {me} {len(mine)}, "
                f"{peer} {'a member' if members.get(peer) else 'gone'} ({attempt}): "
                "the priority rule decides")
            return 0
        if attempt == "now":
            # a peer that lost every link is still a member for token + consensus
            sleep(args.settle)
    extra = 2 * args.fence_delay
    log(f"{peer} is Primary of {', '.join(theirs)}, {me} of {', '.join(mine) or 'none'}, "
        f"and {peer} is still a member: {me} yields, its request waits {extra} s more")
    return extra


def run(cmd, timeout=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def main(argv=None, env=None, runner=run, sleep=time.sleep, proc_path="/proc/drbd",
         nodename=None):
    """DRBD's exit codes: 7 the peer was fenced, 1 anything else (I/O stays frozen)."""
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog=TAG, description=__doc__.split("\n\n")[0])
    p.add_argument("--priority", required=True, help="the cluster's priority node")
    p.add_argument("--fence-delay", type=int, required=True, help="seconds (pcmk_delay_base)")
    p.add_argument("--settle", type=int, required=True,
                   help="seconds corosync needs to notice a lost member")
    p.add_argument("mirrors", nargs="*", metavar="PRIMITIVE:MINOR",
                   help="the single-primary mirrors' DRBD primitives and minors")
    args = p.parse_args(argv)
    args.mirrors = {m.rsplit(":", 1)[0]: int(m.rsplit(":", 1)[1]) for m in args.mirrors}
    name = env.get("DRBD_RESOURCE", "?")

    def log(msg):
        syslog.openlog(TAG, syslog.LOG_PID)
        syslog.syslog(f"{name}: {msg}")
        print(f"{TAG}: {name}: {msg}", file=sys.stderr)

    peers = env.get("DRBD_PEERS", "").split()
    minors = [int(m) for m in env.get("DRBD_MINOR", "").split()]
    if not peers or not minors:
        log("DRBD_PEERS or DRBD_MINOR unset: cannot fence")
        return 1
    with open(proc_path) as f:
        proc = parse_proc(f.read())
    stale = [m for m in minors if not proc.get(m, {}).get("ds", "").startswith("UpToDate/")]
    if stale:
        log(f"minor(s) {stale} not UpToDate here: will not fence the peer")
        return 1
    me = nodename or os.uname().nodename

    def crm_mon():
        # the fast path never gets here; a slow crm_mon must not eat the priority's margin
        r = runner(["crm_mon", "-1", "--output-as=xml"], timeout=max(2, args.fence_delay // 3))
        if r.returncode != 0:
            raise OSError(f"crm_mon exited {r.returncode}")
        return r.stdout

    for peer in peers:
        extra = extra_delay(me, peer, args, proc, crm_mon, sleep, log)
        cmd = ["stonith_admin", "--tolerance", "5s", "--tag", "drbd", "--fence", peer]
        if extra:
            # stonith_admin's own 120 s would expire during the delay
            cmd += ["--delay", str(extra), "--timeout", str(extra + 120)]
        r = runner(cmd)
        if r.returncode != 0:
            log(f"fencing {peer} failed: stonith_admin exited {r.returncode}")
            return 1
        log(f"{peer} fenced")
    return 7


if __name__ == "__main__":
    sys.exit(main())
