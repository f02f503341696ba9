"""The drills (lab/README.md, "Drills"): cut cables or power at the host, watch what the
cluster does from the inside, print a timeline and a verdict.

Every drill starts from a settled cluster (both nodes online, every mirror
Connected UpToDate/UpToDate, every resource where the pillar puts it) and leaves
its cut in place: `restore` (run after each drill by `trashlab drill`, and by the tests)
plugs every cable, powers every node on through its BMC, waits until both are online and
every mirror is UpToDate, brings moved failover guests home by hand (crm_resource --move,
then --clear) and cleans up the failures the drill caused.

Times: the host's clock. Events seen by polling carry the time of the poll that saw them
(a poll of a TCG guest takes ~1-2 s); events from a guest's journal are converted to the
host's clock with the offset measured at the start of the drill (date in the guest
against the host's clock around it); the BMCs log on the host's clock.
"""

import datetime
import json
import re
import sys
import time
import xml.etree.ElementTree as ET

from . import lab
from .converge import ROOT

sys.path.insert(0, str(ROOT / "_utils"))

import yaml  # noqa: E402

from trashlib import corosync, drbd, pcmk  # noqa: E402

PILLAR = yaml.safe_load((ROOT / "lab/pillar/trash/cluster.sls").read_text())["trash"]
NODES = lab.NODES
PEER = lab.PEER
PRIORITY = PILLAR["cluster"]["priority_node"]
LINK_NAMES = ("backchannel", "storage", "serial")  # knet links 0, 1, 2
LINK_IFACE = {"storage": "eth1", "backchannel": "eth2", "lan": "eth3"}
NODEID = {n: PILLAR["nodes"][n]["nodeid"] for n in NODES}
TOKEN_MS = 3000          # defaults.yaml: corosync token
CONSENSUS_MS = 3600      # corosync's default: 1.2 × token
# trash:cluster:fence_delay (pcmk_delay_base of the device that fences the priority node)
FENCE_DELAY_S = PILLAR["cluster"].get("fence_delay") or yaml.safe_load(
    (ROOT / "salt/trash/defaults.yaml").read_text())["trash"]["cluster"]["fence_delay"]
MINORS = {name: r["minor"] for name, r in PILLAR["drbd"]["resources"].items()}


def _cluster_guests():
    """{name: home} of the guests Pacemaker runs (not storage: local)."""
    return {n: s["home"] for n, s in PILLAR["guests"].items() if s.get("storage") != "local"}


def settled_placement():
    """Where a settled cluster runs everything (the pillar's homes); /local guests are
    not Pacemaker's (libvirt's autostart runs them)."""
    out = {}
    for name, spec in PILLAR["guests"].items():
        out[f"guest-{name}"] = [] if spec.get("storage") == "local" else [spec["home"]]
    for name, vg in PILLAR["volume_groups"].items():
        out[f"vg-{name}"] = [vg["home"]]
    out["shared-fs"] = list(NODES)
    return out


def failover_guests():
    return sorted(n for n, s in PILLAR["guests"].items()
                  if s.get("failover") and s.get("storage") != "local")


def pinned_guests(node):
    return sorted(n for n, home in _cluster_guests().items()
                  if home == node and not PILLAR["guests"][n].get("failover"))


def home_of(guest):
    return PILLAR["guests"][guest]["home"]


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%H:%M:%S.%f")[:-4]


# -- observing a node ---------------------------------------------------------------------
SEP = "=====trashlab-drill====="


class View:
    """One poll of a node: corosync membership and links, crm_mon, fence history, DRBD."""

    def __init__(self, node, at, reachable, quorum=None, links=None, status=None,
                 history=(), drbd_state=None, raw=""):
        self.node, self.at, self.reachable = node, at, reachable
        self.quorum, self.links, self.status = quorum, links, status
        self.history, self.drbd, self.raw = history, drbd_state, raw

    @property
    def members(self):
        return sorted(name for _, name in (self.quorum or {}).get("members", []))

    def placement(self):
        if self.status is None:
            return None
        out = {}
        for key in settled_placement():
            out[key] = sorted(self.status.running_on(key))
        return out


def parse_history(text):
    """stonith_admin --history '*' --verbose --output-as xml: a list of fence_event attribute dicts."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return []
    # Pacemaker 2.1: <list name="fencing history"><fence_event target= action= status=
    # delegate= origin= completed= .../></list>; any element with a target is an event
    return [dict(e.attrib) for e in root.iter() if "target" in e.attrib]


def look(node, timeout=60):
    """Poll node once (one command through its agent)."""
    cmd = (f"corosync-quorumtool -s 2>&1; echo {SEP}; corosync-cfgtool -s 2>&1; echo {SEP}; "
           f"crm_mon --one-shot --output-as xml 2>/dev/null; echo {SEP}; "
           f"stonith_admin --history '*' --verbose --output-as xml 2>/dev/null; echo {SEP}; "
           "cat /proc/drbd")
    at = time.time()
    try:
        r = lab.run(node, cmd, timeout=timeout)
    except (lab.AgentError, OSError, ValueError) as e:
        return View(node, at, False, raw=str(e))
    at = (at + time.time()) / 2
    parts = r.stdout.split(SEP + "\n")
    if len(parts) < 5:
        return View(node, at, True, raw=r.stdout + r.stderr)
    try:
        status = pcmk.parse_status(parts[2])
    except (pcmk.ParseError, ET.ParseError):
        status = None
    return View(node, at, True, quorum=corosync.parse_quorum(parts[0]),
                links=_links(node, parts[1]), status=status,
                history=parse_history(parts[3]), drbd_state=drbd.parse_proc_drbd(parts[4]),
                raw=r.stdout)


def _links(node, text):
    parsed = corosync.parse_links(text)
    peer = NODEID[PEER[node]]
    return {LINK_NAMES[n]: link["peers"].get(peer) for n, link in parsed["links"].items()
            if n < len(LINK_NAMES)}


def clock_offset(node):
    """Guest clock minus host clock, in seconds (the agent's round trip halved)."""
    t0 = time.time()
    r = lab.run(node, "date +%s.%N", timeout=60)
    t1 = time.time()
    return float(r.stdout.strip()) - (t0 + t1) / 2


POWER_ACTIONS = r": (power off|power on|power cycle|hard reset|soft off)(: | refused| failed)"


def bmc_events(node, since, pattern=POWER_ACTIONS):
    """The requests node's BMC logged (host clock) at or after since, power actions unless
    pattern says otherwise: [(t, line)]."""
    out = []
    try:
        lines = lab.bmc_log(node).read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S+ \w+ (.*)$", line)
        if not m or not re.search(pattern, m.group(3)):
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=datetime.timezone.utc).timestamp() + int(m.group(2)) / 1000
        if t >= since:
            out.append((t, m.group(3)))
    return out


JOURNAL_EVENTS = [
    # (timeline event, regex on the message) — Pacemaker 2.1.5, corosync 3.1 wording
    ("corosync: link down", re.compile(r"link: host: \d+ link: \d+ is down")),
    ("corosync: link up", re.compile(r"rx: host: \d+ link: \d+ is up")),
    ("corosync: processor failed", re.compile(r"A processor failed, forming new configuration")),
    ("corosync: members left", re.compile(r"Members left: ")),
    ("corosync: members joined", re.compile(r"Members joined: ")),
    ("fencing requested", re.compile(r"[Rr]equesting (peer )?fencing|wants to fence")),
    ("fence-peer handler", re.compile(r"drbd-fence-peer\[\d+\]: ")),
    ("fencing delayed", re.compile(r"Delaying '\w+' action targeting")),
    ("fencing done", re.compile(r"Operation '\w+' targeting \S+ (by|on) \S+ for \S+.*: OK"
                                r"|Peer \S+ was terminated \(\w+\) by \S+")),
    ("fencing failed", re.compile(r"Operation '\w+' targeting .*(failed|[Ee]rror|[Tt]imed? ?out)")),
    ("drbd: connection lost", re.compile(r"drbd \w+: (PingAck did not arrive|conn\( \w+ -> "
                                         r"(NetworkFailure|BrokenPipe|Timeout|WFConnection))")),
    ("drbd: fence-peer handler", re.compile(r"drbd \w+: helper command: \S+ fence-peer")),
    ("drbd: peer outdated", re.compile(r"pdsk\( \w+ -> Outdated \)|crm-fence-peer.*(Placed|placed|"
                                       r"constraint)")),
    ("drbd: connected", re.compile(r"drbd \w+: conn\( \w+ -> Connected \)")),
    ("drbd: role change", re.compile(r"drbd \w+: role\( \w+ -> \w+ \)")),
    ("drbd: split brain", re.compile(r"[Ss]plit-[Bb]rain detected")),
]


def journal(node, since_guest, until_guest=None):
    """Journal lines of node (guest clock) since since_guest, as (t_guest, message)."""
    cmd = f"journalctl -o short-unix --no-pager --since @{int(since_guest) - 1}"
    if until_guest:
        cmd += f" --until @{int(until_guest) + 2}"
    try:
        r = lab.run(node, cmd, timeout=120)
    except (lab.AgentError, OSError, ValueError):
        return []
    out = []
    for line in r.stdout.splitlines():
        head, _, msg = line.partition(" ")
        try:
            t = float(head)
        except ValueError:
            continue
        if t >= since_guest:
            out.append((t, msg))
    return out


def journal_events(node, since, offset, until=None, pick=None):
    """The JOURNAL_EVENTS of node since since (host clock): [(t_host, event, message)]."""
    out = []
    for t, msg in journal(node, since + offset, until + offset if until else None):
        for event, rx in JOURNAL_EVENTS:
            if (pick is None or event in pick) and rx.search(msg):
                out.append((t - offset, event, msg.strip()[:220]))
                break
    return out


# -- a drill's record -----------------------------------------------------------------------
class Drill:
    def __init__(self, name, args=()):
        self.name, self.args = name, list(args)
        self.start = time.time()
        self.cut = None
        self.events = []          # {"t", "event", "node", "source", "detail"}
        self.checks = []          # {"check", "ok", "detail"}
        self.facts = {}
        self.notes = []

    def mark(self, event, node=None, t=None, source="poll", detail=None, once=False):
        if once and any(e["event"] == event and e["node"] == node for e in self.events):
            return
        self.events.append({"t": t if t is not None else time.time(), "event": event,
                            "node": node, "source": source, "detail": detail})
        lab.say(f"  {iso(self.events[-1]['t'])} {event}{f' ({node})' if node else ''}"
                f"{f': {detail}' if detail and source == 'poll' else ''}")

    def first(self, event, node=None, source=None):
        for e in sorted(self.events, key=lambda e: e["t"]):
            if e["event"] == event and (node is None or e["node"] == node) \
                    and (source is None or e["source"] == source):
                return e["t"]
        return None

    def check(self, what, ok, detail=None):
        self.checks.append({"check": what, "ok": bool(ok), "detail": detail})
        return ok

    def since_cut(self, t):
        return None if t is None or self.cut is None else round(t - self.cut, 1)

    @property
    def verdict(self):
        return "pass" if self.checks and all(c["ok"] for c in self.checks) else "fail"

    def as_dict(self):
        base = self.cut or self.start
        return {"drill": self.name, "args": self.args, "verdict": self.verdict,
                "started": datetime.datetime.fromtimestamp(
                    self.start, datetime.timezone.utc).isoformat(timespec="seconds"),
                "duration_s": round(time.time() - self.start, 1),
                "timeline": [dict(e, t=round(e["t"] - base, 1), at=iso(e["t"]))
                             for e in sorted(self.events, key=lambda e: e["t"])],
                "facts": self.facts,
                "checks": self.checks,
                "reasons": [f"{c['check']}: {c['detail']}" for c in self.checks if not c["ok"]],
                "notes": self.notes}

    def render(self):
        d = self.as_dict()
        out = [f"drill {d['drill']} {' '.join(d['args'])}".rstrip()
               + f" (started {d['started']}, {d['duration_s']} s)",
               "timeline (seconds from the cut; host clock):"]
        for e in d["timeline"]:
            where = f" [{e['node']}]" if e["node"] else ""
            src = "" if e["source"] == "poll" else f" <{e['source']}>"
            detail = f"  {e['detail']}" if e["detail"] and e["source"] != "poll" else \
                (f"  {e['detail']}" if e["detail"] else "")
            out.append(f"  {e['t']:+8.1f}s  {e['at']}  {e['event']}{where}{src}{detail}")
        if d["facts"]:
            out.append("facts:")
            out += [f"  {k}: {v}" for k, v in d["facts"].items()]
        out.append("checks:")
        out += [f"  [{'ok' if c['ok'] else 'FAIL'}] {c['check']}"
                + (f": {c['detail']}" if c["detail"] and not c["ok"] else "")
                for c in d["checks"]]
        out += [f"note: {n}" for n in d["notes"]]
        out.append(f"verdict: {d['verdict'].upper()}"
                   + ("" if d["verdict"] == "pass" else " — " + "; ".join(d["reasons"])))
        return "\n".join(out)


class DrillError(Exception):
    pass


def wait(what, probe, timeout, every=2):
    """Poll probe() until it returns (true, detail); return detail, or raise DrillError.
    Between polls at least ``every`` seconds and at least as long as the poll took: under
    TCG one poll (crm_mon, stonith_admin) costs 5-25 s of the node's only vCPU, and
    back-to-back polls slowed the very fencing and failover they watch."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        t0 = time.monotonic()
        ok, last = probe()
        if ok:
            return last
        now = time.monotonic()
        if now > deadline:
            raise DrillError(f"not within {timeout} s: {what}; last seen: {last}")
        time.sleep(max(every, now - t0))


# -- preconditions ----------------------------------------------------------------------
def drbd_ok(view):
    if not view.drbd:
        return False
    return all(view.drbd.get(m, {}).get("cs") == "Connected"
               and view.drbd[m].get("ds") == ("UpToDate", "UpToDate") for m in MINORS.values())


def links_ok(view):
    return view.links == dict.fromkeys(LINK_NAMES, "connected")


def is_settled(view, anywhere=False):
    """Both online, every link and mirror up, nothing failed, and everything where the
    pillar puts it (``anywhere``: wherever it runs after a loss and a rejoin, GFS2 on both)."""
    st = view.status
    where = view.placement()
    placed = (where.get("shared-fs") == list(NODES) if anywhere
              else where == settled_placement())
    return (view.reachable and st is not None and st.online == set(NODES) and placed
            and not st.failed() and drbd_ok(view) and links_ok(view)
            and len(view.members) == 2)


def require_settled(d, timeout=300, anywhere=False):
    def probe():
        v = look(PRIORITY)
        return is_settled(v, anywhere), {"placement": v.placement(), "links": v.links,
                               "members": v.members,
                               "drbd": {m: drbd.describe(s) for m, s in (v.drbd or {}).items()},
                               "failed": [i.resource for i in v.status.failed()]
                               if v.status else None}
    try:
        wait("the cluster is settled (run `trashlab drill restore`)", probe, timeout, every=5)
    except DrillError as e:
        raise DrillError(f"{d.name}: not started: {e}")
    d.facts["offset_s"] = {n: round(clock_offset(n), 2) for n in NODES}
    d.facts["history_before"] = {}
    d.facts["fenced_before"] = {}
    for n in NODES:
        hist = look(n).history
        d.facts["history_before"][n] = len(hist)
        d.facts["fenced_before"][n] = {t: fenced_count(hist, t) for t in NODES}


def fenced_count(history, target):
    return sum(1 for h in history if h.get("target") == target
               and h.get("status") == "success")


# -- cuts ------------------------------------------------------------------------------------
def cut_links(node, ifaces, serial):
    for iface in ifaces:
        lab.set_link(node, iface, False)
    if serial:
        lab.set_serial(node, False)


def _fence_facts(d, survivor, victim, since):
    """Fence events from the survivor's history and the victim's BMC log."""
    for t, line in bmc_events(victim, since):
        d.mark(f"BMC of {victim}: {line.split(': ', 2)[-1]}", victim, t=t, source="bmc log",
               detail=line)


def loss(d, victim, how, timeout=600, anywhere=False):
    """node-loss / power-off: the survivor must lose victim, fence it (off) through its
    BMC, and run every failover guest; victim's pinned guests stay stopped. ``anywhere``:
    start from a cluster that is up everywhere, guests wherever earlier losses left them."""
    survivor = PEER[victim]
    require_settled(d, anywhere=anywhere)
    offset = d.facts["offset_s"][survivor]
    d.facts["window"] = ("until the survivor runs every failover guest and has fenced "
                         f"{victim}, at most {timeout} s")
    d.cut = time.time()
    if how == "links":
        cut_links(victim, [f"eth{i}" for i in lab.NICS], serial=True)
        d.mark(f"cut: eth0-eth{lab.NICS[-1]} and the serial cable of {victim} pulled", victim, t=d.cut,
               source="host")
    else:
        rc, out = lab.bmc_request(victim, "off")
        d.mark(f"cut: {victim} powered off through its BMC (rc {rc})", victim, t=d.cut,
               source="host", detail=out)
        if rc:
            raise DrillError(f"BMC power off of {victim} failed: {out}")
    fo = failover_guests()

    def probe():
        v = look(survivor)
        if not v.reachable:
            return False, "survivor unreachable"
        if victim not in v.members and v.quorum and v.members:
            d.mark("peer lost (survivor's corosync membership)", survivor, once=True,
                   detail=f"members {v.members}")
        st = v.status
        if st is not None:
            n = st.node(victim) if victim in {x.name for x in st.nodes} else None
            if n and not n.online:
                d.mark("peer offline in Pacemaker", survivor, once=True,
                       detail="unclean" if n.unclean else "clean")
        # a new successful fencing of victim (the history keeps earlier ones)
        fenced = fenced_count(v.history, victim) > d.facts["fenced_before"][survivor][victim]
        new = [h for h in v.history if h.get("target") == victim
               and h.get("status") == "success"] if fenced else []
        for h in v.history:
            if h.get("target") == victim and h.get("status") == "pending":
                d.mark("fencing started (pending in the survivor's history)", survivor,
                       once=True, detail=f"{h.get('action')} by {h.get('delegate')}")
        done = [h for h in new if h.get("status") == "success"]
        if done:
            d.mark("fencing done (survivor's stonith history)", survivor, once=True,
                   detail=f"{done[0].get('action')} by {done[0].get('delegate')} "
                          f"completed {done[0].get('completed')}")
        running = {g for g in fo if st is not None and
                   st.running_on(f"guest-{g}") == {survivor}}
        for g in running:
            d.mark(f"failover guest {g} running on {survivor}", survivor, once=True)
        facts = {"members": v.members, "fence": new[:3], "running": sorted(running)}
        return bool(done) and running == set(fo), facts

    try:
        wait(f"{survivor} fences {victim} and runs {fo}", probe, timeout, every=1)
        d.check(f"{survivor} fenced {victim} and runs every failover guest", True)
    except DrillError as e:
        d.check(f"{survivor} fenced {victim} and runs every failover guest", False, str(e))
    verify_after_loss(d, victim, survivor, offset)


def verify_after_loss(d, victim, survivor, offset):
    # every fencing the loss causes has happened once Pacemaker is at rest
    r = lab.run(survivor, "crm_resource --wait --timeout=300", timeout=360)
    d.mark("Pacemaker at rest (crm_resource --wait)", survivor, detail=f"rc {r.returncode}")
    _fence_facts(d, survivor, victim, d.cut)
    ons = [l for _, l in bmc_events(victim, d.cut) if ": power on" in l]
    d.check(f"{victim} stayed off once fenced (no power on through its BMC: R13)", not ons,
            ons)
    for t, ev, msg in journal_events(survivor, d.cut, offset):
        d.mark(ev, survivor, t=t, source="journal", detail=msg)
    src = PILLAR["nodes"][survivor]["addresses"]["ipmi"].split("/")[0] + ":"
    if d.name == "power-off":
        # fence_ipmilan asked to power off a machine that is off only reads its status
        seen = [l for _, l in bmc_events(victim, d.cut, r": chassis status: off$")
                if l.startswith(src)]
        what = "found it off"
    else:
        seen = [l for _, l in bmc_events(victim, d.cut)
                if l.startswith(src) and ": power off: the machine is off" in l]
        what = "powered it off"
    d.check(f"{victim}'s BMC: {survivor} ({src[:-1]}, its eth4) {what}", bool(seen),
            seen[:3])
    rc, out = lab.bmc_request(victim, "status")
    d.check(f"{victim} is off (its BMC)", rc == 0 and out.endswith(": off"), out)
    rc, out = lab.bmc_request(survivor, "status")
    d.check(f"{survivor} is on (its BMC) and was not fenced",
            rc == 0 and out.endswith(": on")
            and not [l for _, l in bmc_events(survivor, d.cut) if "power off" in l], out)
    v = look(survivor)
    st = v.status
    d.check(f"{survivor} alone in corosync, quorate (two_node)",
            v.members == [survivor] and v.quorum and v.quorum["quorate"], v.quorum)
    # the history keeps the action each client asked for: DLM asks for a reboot, which
    # the devices carry out as an off (pcmk_reboot_action); the BMC log above is the proof
    hist = [h for h in v.history if h.get("target") == victim and h.get("status") == "success"]
    hist = hist[:len(hist) - d.facts["fenced_before"][survivor][victim]]  # newest first
    d.check(f"{survivor}'s stonith history: {victim} fenced with action off",
            any(h.get("action") == "off" for h in hist), v.history[:3])
    for g in failover_guests():
        where = sorted(st.running_on(f"guest-{g}")) if st else None
        d.check(f"failover guest {g} runs on {survivor}", where == [survivor], where)
    for g in pinned_guests(victim):
        where = sorted(st.running_on(f"guest-{g}")) if st else None
        d.check(f"pinned guest {g} of {victim} stays stopped", where == [], where)
    for g in pinned_guests(survivor):
        where = sorted(st.running_on(f"guest-{g}")) if st else None
        d.check(f"{survivor}'s own guest {g} kept running", where == [survivor], where)
    r = lab.run(survivor, "virsh list --name --state-running", timeout=120)
    running = set(r.stdout.split())
    d.check(f"libvirt on {survivor} runs {failover_guests()}",
            set(failover_guests()) <= running, sorted(running))
    d.facts["libvirt_running_on_survivor"] = sorted(running)
    t = {k: d.since_cut(d.first(k, survivor)) for k in (
        "peer lost (survivor's corosync membership)",
        "fencing started (pending in the survivor's history)",
        "fencing done (survivor's stonith history)")}
    jt = {"members left (journal)": d.since_cut(d.first("corosync: members left", survivor,
                                                       "journal")),
          "fencing requested (journal)": d.since_cut(d.first("fencing requested", survivor,
                                                              "journal")),
          "fencing done (journal)": d.since_cut(d.first("fencing done", survivor, "journal")),
          # the survivor's own power off (in power-off, the cut is a power off too)
          "BMC power off (bmc log)": d.since_cut(min(
              (t for t, l in bmc_events(victim, d.cut) if "power off" in l
               and l.startswith(PILLAR["nodes"][survivor]["addresses"]["ipmi"].split("/")[0])),
              default=None))}
    t.update(jt)
    for g in failover_guests():
        t[f"{g} running on {survivor}"] = d.since_cut(
            d.first(f"failover guest {g} running on {survivor}", survivor))
    d.facts["seconds_from_cut"] = t


def node_loss(victim):
    d = Drill("node-loss", [victim])
    loss(d, victim, "links")
    return d


def power_off(victim):
    d = Drill("power-off", [victim])
    # after a rejoin (nothing moves back) as well as from a settled cluster
    loss(d, victim, "bmc", anywhere=True)
    return d


def _quiet_window(d, since, window, expect_links):
    """For window seconds (all of it: what goes wrong is recorded, the watch goes on, so
    the timeline shows where it leads): nobody fenced, nothing moved, both online, two
    members."""
    settled = settled_placement()
    deadline = time.monotonic() + window
    bad, seen = [], {}
    polls = 0

    def note(node, key, text):
        if seen.get((node, key)) != text:
            seen[(node, key)] = text
            bad.append(f"{node} at {iso(time.time())}: {text}")
            d.mark(f"changed: {key}", node, detail=text)

    while time.monotonic() < deadline:
        for node in NODES:
            v = look(node)
            polls += 1
            if not v.reachable or v.status is None:
                note(node, "reachable", "unreachable or no crm_mon")
                continue
            if v.members != list(NODES):
                note(node, "members", f"members {v.members}")
            if v.status.online != set(NODES):
                note(node, "online", f"online {sorted(v.status.online)}")
            where = v.placement()
            if where != settled or ("placement", node) in [k[::-1] for k in seen]:
                diff = {k: w for k, w in where.items() if w != settled[k]}
                if diff or seen.get((node, "placement")):
                    note(node, "placement", f"moved/stopped {diff}" if diff else "as settled")
            if v.status.failed():
                note(node, "failed", str(sorted({f"{i.resource}" for i in v.status.failed()})))
            if len(v.history) > d.facts["history_before"][node]:
                note(node, "fencing", str(v.history[:2]))
            if expect_links and v.links != expect_links[node]:
                note(node, "links", str(v.links))
    d.facts["quiet_polls"] = polls
    fences = {n: [l for _, l in bmc_events(n, since) if "power" in l] for n in NODES}
    d.check("no BMC power action during the window", not any(fences.values()), fences)
    d.check("both nodes online, both in corosync, nothing moved or failed during the window",
            not bad, bad[:8])


def link_loss(link):
    """One link cut at node1's end: corosync loses that link only; no fencing, no
    failover within the window; then plugged again and seen back."""
    if link == "storage":
        raise DrillError("the storage link's loss fences the non-priority node (the "
                         "dual-primary mirror): drill it with storage-link-loss")
    if link not in LINK_NAMES:
        raise DrillError(f"no link {link!r} ({', '.join(LINK_NAMES)})")
    d = Drill("link-loss", [link])
    require_settled(d)
    side = "node1"
    d.cut = time.time()
    if link == "serial":
        lab.set_serial(side, False)
        what = "serial cable (ttyS0 chardev, QMP chardev-change)"
    else:
        lab.set_link(side, LINK_IFACE[link], False)
        what = LINK_IFACE[link]
    d.mark(f"cut: {what} of {side} pulled", side, t=d.cut, source="host")
    down = {n: {**dict.fromkeys(LINK_NAMES, "connected"), link: "disconnected"} for n in NODES}

    def seen_down():
        views = {n: look(n) for n in NODES}
        for n, v in views.items():
            if v.links == down[n]:
                d.mark(f"corosync reports {link} down", n, once=True)
        return all(v.links == down[n] for n, v in views.items()), \
            {n: v.links for n, v in views.items()}
    try:
        wait(f"both corosyncs report {link} down and the others connected", seen_down, 180)
        d.check(f"corosync on both nodes reports {link} down, the other links connected", True)
    except DrillError as e:
        d.check(f"corosync on both nodes reports {link} down, the other links connected",
                False, str(e))
    window = max(2 * (TOKEN_MS + CONSENSUS_MS) / 1000, FENCE_DELAY_S + 15) + 30
    d.facts["window_s"] = window
    d.notes.append(f"watched {window:.0f} s after corosync reported the link down: "
                   f"> 2×(token {TOKEN_MS} ms + consensus {CONSENSUS_MS} ms) and > the "
                   f"{FENCE_DELAY_S} s fence delay plus an IPMI power off")
    _quiet_window(d, d.cut, window, down)
    d.mark("window over", t=time.time(), source="host")
    # replug
    t = time.time()
    if link == "serial":
        lab.set_serial(side, True)
    else:
        lab.set_link(side, LINK_IFACE[link], True)
    d.mark(f"replug: {what} of {side}", side, t=t, source="host")

    def seen_up():
        views = {n: look(n) for n in NODES}
        return all(links_ok(v) for v in views.values()), {n: v.links for n, v in views.items()}
    try:
        wait("every link connected again on both nodes", seen_up, 300)
        d.mark(f"corosync reports {link} up again (both nodes)")
        d.check(f"{link} back after the replug", True)
    except DrillError as e:
        d.check(f"{link} back after the replug", False, str(e))
    for n in NODES:
        for t, ev, msg in journal_events(n, d.cut, d.facts["offset_s"][n],
                                         pick={"corosync: link down", "corosync: link up",
                                               "fencing requested", "fencing done",
                                               "drbd: connection lost",
                                               "drbd: fence-peer handler",
                                               "drbd: peer outdated", "drbd: connected",
                                               "drbd: role change", "drbd: split brain"}):
            d.mark(ev, n, t=t, source="journal", detail=msg)
    return d


def _fence_constraints(node):
    r = lab.run(node, "cibadmin --query --scope constraints", timeout=60)
    return re.findall(r'id="(drbd-fence-by-handler-[^"]+)"', r.stdout) if r.returncode == 0 \
        else []


def storage_link_loss():
    """The storage link (eth1) cut at node1's end, corosync's other links alive: every
    mirror disconnects. The dual-primary mirror0 cannot be fenced by a constraint (both
    sides are Primary); its handler fences the peer through Pacemaker on both nodes, and
    the node Primary of more single-primary mirrors stays, the priority node on a tie
    (_utils/trashlib/fencepeer.py). The single-primary mirrors' handlers outdate the
    peer's copy meanwhile."""
    d = Drill("storage-link-loss")
    require_settled(d, anywhere=True)
    before = look(PRIORITY)
    survivor, held = holder_of_more(before)
    d.facts["single_primary_held"] = held
    d.cut = time.time()
    cut_links("node1", ["eth1"], serial=False)
    d.mark("cut: eth1 (storage) of node1 pulled", "node1", t=d.cut, source="host")
    d.mark(f"{survivor} must stay", survivor, t=d.cut, source="host",
           detail=f"Primary of single-primary mirrors: {held}")
    _survives(d, survivor)
    v = look(survivor)
    d.facts["drbd_on_survivor"] = {name: drbd.describe((v.drbd or {}).get(m))
                                   for name, m in MINORS.items()}
    d.facts["fence_constraints"] = _fence_constraints(survivor)
    for name, res in PILLAR["drbd"]["resources"].items():
        state = d.facts["drbd_on_survivor"][name]
        if res.get("dual_primary") or name in held[survivor]:
            fields = state.split()
            d.check(f"{name} stays Primary on {survivor} with its data",
                    fields[1:2] == ["Primary/Unknown"] and fields[2:3] != []
                    and fields[2].startswith("UpToDate/"), state)
    return d


def holder_of_more(view):
    """(the node Primary of more single-primary mirrors, the priority node on a tie;
    {node: [those mirrors]}), read from one node's /proc/drbd."""
    held = {n: [] for n in NODES}
    for name, res in sorted(PILLAR["drbd"]["resources"].items()):
        ro = tuple((view.drbd or {}).get(MINORS[name], {}).get("ro") or ())
        if res.get("dual_primary") or len(ro) != 2:
            continue
        for node, role in zip((view.node, PEER[view.node]), ro):
            if role == "Primary":
                held[node].append(name)
    other = PEER[PRIORITY]
    return (other if len(held[other]) > len(held[PRIORITY]) else PRIORITY), held


def isolate():
    """Every link between the nodes pulled (eth1-eth3 and the serial cable, at node1's
    end; eth0 and the eth4 BMC links stay): the priority node survives, the other is
    powered off by it, whoever holds more of the single-primary mirrors: mirror0's
    handler on node1 adds no delay for a peer that is no member any more."""
    d = Drill("isolate")
    require_settled(d, anywhere=True)
    d.facts["single_primary_held"] = holder_of_more(look(PRIORITY))[1]
    d.cut = time.time()
    cut_links("node1", ["eth1", "eth2", "eth3"], serial=True)
    d.mark("cut: eth1, eth2, eth3 and the serial cable of node1 pulled", "node1", t=d.cut,
           source="host")
    _survives(d, PRIORITY)
    return d


def _survives(d, survivor, timeout=600):
    """After the cut: survivor powers the other off through its BMC, exactly once, is
    never powered off itself, and runs its own and every failover guest; the other's
    pinned guests stop."""
    loser = PEER[survivor]
    fo = failover_guests()

    def probe():
        v = look(survivor)
        if loser not in v.members and v.members:
            d.mark("peer lost (corosync membership)", survivor, once=True)
        for h in v.history:
            if h.get("target") == loser and h.get("status") == "pending":
                d.mark("fencing started (pending in history)", survivor, once=True)
            if h.get("target") == survivor and h.get("status") == "pending":
                # a request of the loser's that waits (a yielding handler's delay)
                d.mark(f"{h.get('origin')} asks to fence {survivor} (pending)", survivor,
                       once=True, detail=f"for {h.get('client')}")
        done = [h for h in v.history if h.get("target") == loser
                and h.get("status") == "success"]
        if fenced_count(v.history, loser) <= d.facts["fenced_before"][survivor][loser]:
            done = []
        if done:
            d.mark(f"fencing of {loser} done ({survivor}'s stonith history)", survivor,
                   once=True, detail=f"{done[0].get('action')} by {done[0].get('delegate')} "
                                     f"for {done[0].get('client')}")
        st = v.status
        running = {g for g in fo if st is not None and st.running_on(f"guest-{g}") == {survivor}}
        return bool(done) and running == set(fo), {"members": v.members, "hist": v.history[:2]}
    try:
        # every 2 s: each poll costs the survivor's single vCPU, which must fence
        wait(f"{survivor} fences {loser}", probe, timeout, every=2)
        d.check(f"{survivor} fenced {loser}", True)
    except DrillError as e:
        d.check(f"{survivor} fenced {loser}", False, str(e))
    # at rest: a second fencing (a late request from the loser) would show now
    r = lab.run(survivor, "crm_resource --wait --timeout=300", timeout=360)
    d.mark("Pacemaker at rest (crm_resource --wait)", survivor, detail=f"rc {r.returncode}")
    off = {n: [(t, l) for t, l in bmc_events(n, d.cut) if "power off" in l] for n in NODES}
    for n, evs in off.items():
        for t, l in evs:
            d.mark(f"BMC of {n}: power off", n, t=t, source="bmc log", detail=l)
    d.check(f"{loser} powered off through its BMC, exactly once", len(off[loser]) == 1, off)
    d.check(f"{survivor} never powered off", not off[survivor], off)
    ons = [l for _, l in bmc_events(loser, d.cut) if ": power on" in l]
    d.check(f"{loser} stayed off (no power on through its BMC: R13)", not ons, ons)
    rc1, o1 = lab.bmc_request(survivor, "status")
    rc2, o2 = lab.bmc_request(loser, "status")
    d.check(f"{survivor} on, {loser} off (BMCs)", o1.endswith(": on") and o2.endswith(": off"),
            [o1, o2])
    v = look(survivor)
    st = v.status
    for g in fo + pinned_guests(survivor):
        where = sorted(st.running_on(f"guest-{g}")) if st else None
        d.check(f"guest {g} runs on {survivor}", where == [survivor], where)
    for g in pinned_guests(loser):
        where = sorted(st.running_on(f"guest-{g}")) if st else None
        d.check(f"pinned guest {g} of {loser} stopped", where == [], where)
    for t, ev, msg in journal_events(survivor, d.cut, d.facts["offset_s"][survivor]):
        d.mark(ev, survivor, t=t, source="journal", detail=msg)
    d.facts["seconds_from_cut"] = {
        "peer lost": d.since_cut(d.first("peer lost (corosync membership)")),
        "fencing requested (journal)": d.since_cut(d.first("fencing requested",
                                                           source="journal")),
        "BMC power off": d.since_cut(min((t for t, _ in off[loser]), default=None)),
        "fencing done (history)": d.since_cut(d.first(
            f"fencing of {loser} done ({survivor}'s stonith history)"))}


def rejoin(node):
    """node is off after a loss: plug its cables, power it on through its BMC; it rejoins
    (two members, Pacemaker online, every corosync link connected, every mirror
    UpToDate/UpToDate) and nothing moves back."""
    d = Drill("rejoin", [node])
    other = PEER[node]
    rc, out = lab.bmc_request(node, "status")
    if not out.endswith(": off"):
        raise DrillError(f"rejoin {node}: {node} is not off ({out}); run a loss drill first")
    v0 = look(other)
    before = v0.placement()
    d.facts["placement_before"] = before
    d.facts["offset_s"] = {other: round(clock_offset(other), 2)}
    plug_everything()
    d.cut = time.time()
    rc, out = lab.bmc_request(node, "on")
    d.mark(f"power on of {node} through its BMC (rc {rc})", node, t=d.cut, source="host",
           detail=out)

    def probe():
        up = lab.ping(node, timeout=2)
        if up:
            d.mark(f"{node}'s agent answers (booted)", node, once=True)
        v = look(other)
        if node in v.members:
            d.mark("corosync: two members", other, once=True)
        if v.status is not None and v.status.online == set(NODES):
            d.mark("Pacemaker: both online", other, once=True)
        if v.drbd and drbd_ok(v):
            d.mark("DRBD: every mirror Connected UpToDate/UpToDate", other, once=True)
        if links_ok(v):
            d.mark("corosync: every link connected", other, once=True)
        return (len(v.members) == 2 and v.status is not None
                and v.status.online == set(NODES) and drbd_ok(v) and links_ok(v)), \
            {"members": v.members, "links": v.links,
             "drbd": {m: drbd.describe(s) for m, s in (v.drbd or {}).items()}}
    what = f"{node} rejoined: two members, both online, every link connected, every mirror UpToDate"
    try:
        # a rejoin took 252 s on a quiet host and 749 s on a busy one (2026-11-28): its
        # liveness bound must hold on the slow one; the timeline shows how long it took
        wait(f"{node} rejoins", probe, 900, every=3)
        d.check(what, True)
    except DrillError as e:
        d.check(what, False, str(e))
    # the cluster at rest: no action pending
    r = lab.run(other, "crm_resource --wait --timeout=600", timeout=660)
    d.mark("Pacemaker idle (crm_resource --wait)", other, detail=f"rc {r.returncode}")
    d.check("Pacemaker reached rest", r.returncode == 0, r.stderr.strip()[-300:])
    v = look(other)
    after = v.placement()
    d.facts["placement_after"] = after
    for g in failover_guests():
        k = f"guest-{g}"
        d.check(f"failover guest {g} stays on {before.get(k)} (no failback, stickiness)",
                after.get(k) == before.get(k), {"before": before.get(k), "after": after.get(k)})
    for k in ("vg-" + n for n in PILLAR["volume_groups"]):
        # a group stopped because only the returning node had its newest data (DRBD's
        # fence constraint) starts now; a running one must not move
        d.check(f"{k} stays where it was" if before.get(k) else f"{k} may start now",
                after.get(k) == before.get(k) or not before.get(k),
                {"before": before.get(k), "after": after.get(k)})
    d.check("shared-fs on both nodes again", after.get("shared-fs") == list(NODES),
            after.get("shared-fs"))
    d.check("no failed resource", v.status is not None and not v.status.failed(),
            [i.resource for i in v.status.failed()] if v.status else None)
    d.facts["seconds_from_power_on"] = {
        e["event"]: d.since_cut(e["t"]) for e in d.events if e["source"] == "poll"}
    return d


# -- restore -------------------------------------------------------------------------------
def plug_everything():
    for node in NODES:
        if not lab.qemu_pid(node):
            continue
        for i in lab.NICS:
            lab.set_link(node, f"eth{i}", True)
        if lab.serial_backend(node) in (None, "null"):
            lab.set_serial(node, True)


def restore():
    """Back to a settled cluster the way an administrator would do it."""
    d = Drill("restore")
    d.cut = time.time()
    plug_everything()
    d.mark(f"every cable plugged (eth0-eth{lab.NICS[-1]}, serial)", t=time.time(), source="host")
    for node in NODES:
        rc, out = lab.bmc_request(node, "status")
        if not out.endswith(": on"):
            rc, out = lab.bmc_request(node, "on")
            d.mark(f"power on of {node} through its BMC (rc {rc})", node, source="host",
                   detail=out)
    lab.wait_ready(NODES, timeout=600)
    d.mark("both nodes booted (agents answer)")

    def probe():
        # a fence may still land after the drill (e.g. a stop that times out): power on
        # again whatever its BMC reports off
        for node in NODES:
            rc, out = lab.bmc_request(node, "status")
            if out.endswith(": off"):
                rc, out = lab.bmc_request(node, "on")
                d.mark(f"power on of {node} through its BMC (rc {rc})", node,
                       source="host", detail=out)
        v = look(PRIORITY)
        if not v.reachable:
            v = look(PEER[PRIORITY])
        ok = (len(v.members) == 2 and v.status is not None
              and v.status.online == set(NODES) and drbd_ok(v) and links_ok(v))
        return ok, {"members": v.members, "links": v.links,
                    "online": sorted(v.status.online) if v.status else None,
                    "drbd": {m: drbd.describe(s) for m, s in (v.drbd or {}).items()}}
    try:
        wait("both online, every link connected, every mirror UpToDate", probe, 900, every=5)
        d.mark("both online, every link and mirror up")
    except DrillError as e:
        d.check("both nodes online, links connected, mirrors UpToDate", False, str(e))
        return d
    r = lab.run(PRIORITY, "crm_resource --cleanup", timeout=300)
    d.mark("crm_resource --cleanup", detail=f"rc {r.returncode}")
    lab.run(PRIORITY, "crm_resource --wait --timeout=600", timeout=660)
    v = look(PRIORITY)
    moved = []
    for g in failover_guests():
        home = home_of(g)
        if v.status is not None and v.status.running_on(f"guest-{g}") != {home}:
            moved.append((g, home))
    for g, home in moved:
        r = lab.run(PRIORITY, f"crm_resource --move --resource guest-{g} --node {home}",
                    timeout=120)
        d.mark(f"crm_resource --move guest-{g} --node {home}", detail=f"rc {r.returncode} "
               f"{(r.stdout + r.stderr).strip()[:200]}")
        try:
            wait(f"guest-{g} runs on {home}",
                 lambda: (lambda st: (st is not None and st.running_on(f"guest-{g}") == {home},
                                      st.placement() if st else None))(look(PRIORITY).status),
                 600, every=5)
            d.mark(f"guest {g} back home on {home}", home)
        except DrillError as e:
            d.check(f"guest {g} back on {home}", False, str(e))
        r = lab.run(PRIORITY, f"crm_resource --clear --resource guest-{g}", timeout=120)
        d.mark(f"crm_resource --clear guest-{g}", detail=f"rc {r.returncode}")
    try:
        def settled():
            v = look(PRIORITY)
            if v.status is not None and v.status.failed():
                lab.run(PRIORITY, "crm_resource --cleanup", timeout=300)
            return is_settled(v), {"placement": v.placement(),
                                   "failed": [i.resource for i in v.status.failed()]
                                   if v.status else None}
        wait("settled: everything where the pillar puts it, nothing failed", settled, 900,
             every=5)
        d.mark("settled")
        d.check("the cluster is settled again", True)
    except DrillError as e:
        d.check("the cluster is settled again", False, str(e))
    return d


DRILLS = {
    "node-loss": (node_loss, 1), "power-off": (power_off, 1), "link-loss": (link_loss, 1),
    "isolate": (isolate, 0), "rejoin": (rejoin, 1), "storage-link-loss": (storage_link_loss, 0),
    "restore": (restore, 0),
}


def run(name, args=()):
    if name not in DRILLS:
        raise DrillError(f"no drill {name!r} ({', '.join(DRILLS)})")
    fn, nargs = DRILLS[name]
    if len(args) != nargs:
        raise DrillError(f"drill {name} takes {nargs} argument(s)")
    if nargs and name != "link-loss" and args[0] not in NODES:
        raise DrillError(f"no node {args[0]!r}")
    d = fn(*args)
    return d


def main(args, as_json=False):
    d = run(args[0], args[1:])
    print(json.dumps(d.as_dict(), indent=1, default=str) if as_json else d.render())
    return 0 if d.verdict == "pass" else 1
