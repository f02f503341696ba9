"""The truth about one node in one look: findings from what the tools report.

Pure: ``assess`` takes the parsed answers of corosync, Pacemaker and the drift
check and returns a verdict with one line per finding, worst first.
"""

import datetime

OK, DEGRADED, FAILED = "ok", "degraded", "failed"
_RANK = {OK: 0, DEGRADED: 1, FAILED: 2}


def _corosync(cfg, node, links, quorum):
    """Findings about membership and the heartbeat links (R2, R3, DESIGN.md §5)."""
    if links is None:
        return [(FAILED, f"corosync is not running on {node}")]
    out = []
    peer = cfg["nodes"][node]["peer"]
    peer_id = cfg["nodes"][peer]["nodeid"]
    members = {name for _, name in (quorum or {}).get("members", [])}
    if quorum is not None and not quorum["quorate"]:
        why = " (waiting to see every node once: wait_for_all)" if "WaitForAll" in quorum["flags"] else ""
        out.append((FAILED, f"not quorate{why}: the cluster does nothing"))
    if peer not in members:
        out.append((DEGRADED, f"{peer} is not a cluster member: lost, fenced or not started"))
        return out
    zones = cfg["cluster"]["links"]
    down = [zones[n] for n, link in sorted(links["links"].items())
            if n < len(zones) and link["peers"].get(peer_id) != "connected"]
    if down:
        up = [z for z in zones if z not in down]
        line = f"heartbeat link(s) to {peer} down: {', '.join(down)}; up: {', '.join(up)}"
        if up == ["serial"]:
            # membership holds over the serial link alone, but DRBD and DLM have no path
            line += ("; only the serial link holds the membership: DRBD and DLM are cut "
                     "off, nobody is fenced, DRBD must outdate the peer")
        out.append((DEGRADED, line))
    return out


def _pacemaker(cfg, node, status):
    if status is None:
        return [(FAILED, f"Pacemaker is not running on {node}")]
    out = []
    for name in cfg["cluster"]["nodes"]:
        try:
            state = status.node(name)
        except KeyError:
            out.append((DEGRADED, f"Pacemaker does not know node {name}"))
            continue
        if state.unclean:
            out.append((FAILED, f"{name} is unclean: waiting to be fenced"))
        elif not state.online:
            out.append((DEGRADED, f"{name} is offline in Pacemaker"))
        elif state.standby or state.maintenance:
            out.append((DEGRADED, f"{name} is in {'standby' if state.standby else 'maintenance'}"))
    for inst in status.failed():
        out.append((FAILED, f"{inst.resource} failed on {', '.join(inst.nodes) or 'no node'}"))
    for failure in status.failures:
        # remembered until cleaned up: it may keep the resource off that node
        out.append((DEGRADED, f"{failure.describe()}; once the cause is fixed: "
                              f"crm_resource --cleanup --resource {failure.resource} "
                              f"--node {failure.node}"))
    for inst in status.instances:
        if inst.blocked or not inst.managed:
            out.append((DEGRADED, f"{inst.resource} is {'blocked' if inst.blocked else 'unmanaged'}"))
    for name, g in sorted(cfg["guests"].items()):
        if g["storage"] != "cluster":
            continue
        where = sorted(status.running_on(f"guest-{name}"))
        if not where:
            out.append((DEGRADED, f"guest {name} is stopped (home {g['home']})"))
        elif where != [g["home"]]:
            out.append((DEGRADED, f"guest {name} runs on {', '.join(where)}, away from its home "
                                  f"{g['home']}: migrate it back by hand once {g['home']} "
                                  "is verified (R13)"))
    return out + _fence_history(cfg, status)


# who asks the fencers (a FenceEvent's requester), in this stack
_REQUESTERS = {"pacemaker-controld": "Pacemaker", "drbd": "DRBD's fence-peer handler",
               "stonith-api": "DLM", "stonith_admin": "an administrator (stonith_admin)"}


def _completed(e):
    try:
        return datetime.datetime.strptime(e.completed, "%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return None


def _fence_history(cfg, status):
    """Findings from the fencers' history: who fenced a node that is away now, requests
    that wait, and failures no later success has answered."""
    out = []
    online = status.online
    last = {}
    for e in status.fencing:  # pending first, then newest first
        if e.status == "success":
            last.setdefault(e.target, e)

    def who(e):
        return _REQUESTERS.get(e.requester, e.requester)

    def asked(e):
        return f"asked by {e.origin} for {who(e)}"
    for e in status.fencing:
        if e.status == "pending" and e.origin in online:
            line = (FAILED, f"fencing ({e.action}) of {e.target} is pending, {asked(e)}")
        elif e.status == "pending":
            # its fencer went with its node; the rejoining fencer marks it failed
            line = (DEGRADED, f"a request to fence ({e.action}) {e.target} waits in the history, "
                              f"{asked(e)}: {e.origin} was gone before it ran; it is marked "
                              f"failed when {e.origin} rejoins")
        elif (e.status == "failed" and "presumed failed" not in e.reason
              and (e.target not in last or e.completed > last[e.target].completed)):
            line = (DEGRADED, f"fencing ({e.action}) of {e.target} failed at {e.completed}, "
                              f"{asked(e)}: {e.reason or 'no reason given'}; once understood: "
                              f"stonith_admin --history {e.target} --cleanup")
        else:
            continue
        if line not in out:
            out.append(line)
    # one loss brings requests from DRBD's handler, Pacemaker and DLM, run in turn (each
    # waits the delay of a device that has one): they complete within the fence delay and
    # a minute, and the first of them is what powered the node off
    span = datetime.timedelta(seconds=cfg["cluster"]["fence_delay"] + 60)
    for name in cfg["cluster"]["nodes"]:
        if name in online or name not in last:
            continue
        newest = _completed(last[name])
        loss = [e for e in status.fencing if e.status == "success" and e.target == name
                and newest is not None and _completed(e) is not None
                and newest - _completed(e) <= span] or [last[name]]
        first = loss[-1]
        # the devices turn a reboot into off (cib.py: pcmk_reboot_action)
        done = "powered off" if first.action in ("off", "reboot") else f"fenced ({first.action})"
        then = [w for w in dict.fromkeys(who(e) for e in reversed(loss)) if w != who(first)]
        also = f"; then also for {', '.join(then)}" if then else ""
        out.append((DEGRADED, f"{name} was {done} at {first.completed} through "
                              f"{first.delegate}, {asked(first)}{also}"))
    return out


def _drbd(cfg, node, proc):
    """Findings about this node's mirrors from /proc/drbd (parsed): down, not replicating,
    no good data here, a resync under way."""
    if proc is None:
        return []
    out = []
    peer = cfg["nodes"][node]["peer"]
    for name, res in sorted(cfg["drbd"]["resources"].items()):
        st = proc.get(res["minor"])
        if st is None or st["cs"] == "Unconfigured":
            out.append((FAILED, f"{name} is down on {node}: its guests and filesystems "
                                "cannot run here"))
            continue
        local, remote = st["ds"]
        if st["cs"] == "StandAlone":
            out.append((FAILED, f"{name} is StandAlone: {node} refuses to talk to {peer} "
                                "(split brain or incompatible data); nothing replicates until "
                                "a person decides which side to discard"))
        elif st["cs"] in ("SyncSource", "SyncTarget"):
            progress = f" ({st['sync']:.0f}%)" if st["sync"] is not None else ""
            out.append((DEGRADED, f"{name} resynchronising{progress}: "
                                  f"{'to' if st['cs'] == 'SyncSource' else 'from'} {peer}"))
        elif st["cs"] != "Connected":
            out.append((DEGRADED, f"{name} is {st['cs']}: not replicating to {peer} "
                                  f"(peer data {remote})"))
        if local not in ("UpToDate",) and st["cs"] not in ("SyncTarget",):
            out.append((FAILED if local in ("Diskless", "Failed") else DEGRADED,
                        f"{name} data on {node} is {local}: it cannot be promoted here"))
    return out


def _raid(cfg, node, mdstat):
    """Findings about this node's software RAID from /proc/mdstat (parsed)."""
    if mdstat is None or not cfg["nodes"][node].get("raid"):
        return []
    disk = cfg["nodes"][node]["disk"]
    md = mdstat.get(disk.rsplit("/", 1)[-1])
    if md is None or md["state"] != "active":
        state = "not assembled" if md is None else md["state"]
        return [(FAILED, f"the RAID array {disk} is {state}: the partitions, mirrors and "
                         "guests on it are unavailable")]
    out = []
    if md["status"] and "_" in md["status"]:
        out.append((DEGRADED, f"the RAID array {disk} is degraded [{md['status']}] (members "
                              f"present: {', '.join(md['members'])}); once the disk is "
                              f"replaced: mdadm {disk} --add <disk>"))
    if md["sync"]:
        out.append((DEGRADED, f"the RAID array {disk}: {md['sync']} (its redundancy is "
                              "complete once it ends)"))
    return out


def _fencing(cfg, node, bmcs):
    """Findings about the BMCs this node fences through: fencing that cannot work."""
    out = []
    for target, entry in sorted((bmcs or {}).items()):
        if entry.get("state") == "unreachable":
            out.append((FAILED, f"cannot fence {target}: its BMC {entry['address']} is "
                                f"unreachable ({entry.get('reason', 'no answer')})"))
    return out


def _local_guests(node, local):
    """Findings about this node's /local guests ({name: state} from libvirt)."""
    return [(DEGRADED, f"/local guest {name} is {state} on {node}"
                       + (" (virsh start it; libvirt autostarts it at boot)"
                          if state == "stopped" else ""))
            for name, state in sorted((local or {}).items()) if state != "running"]


def _constraints(foreign):
    """Findings about the constraints the formula does not own (which it leaves alone):
    DRBD's fence constraints and an administrator's moves and bans."""
    out = []
    for c in foreign or ():
        cid, rsc = c.get("id", ""), c.get("rsc", "?")
        if cid.startswith("drbd-fence-by-handler-"):
            only = (c.get("expression") or {}).get("value", "?")
            out.append((DEGRADED, f"{rsc} may be promoted only on {only}: DRBD's fence-peer "
                                  f"handler found the other copy outdated (constraint {cid}); "
                                  f"it goes by itself once the other side has resynced from "
                                  f"{only}; removing it by hand risks running old data"))
        elif cid.startswith(("cli-prefer-", "cli-ban-")):
            what = "kept on" if cid.startswith("cli-prefer-") else "banned from"
            out.append((DEGRADED, f"{rsc} is {what} {c.get('node', '?')} by an administrator's "
                                  f"crm_resource (constraint {cid}); once it may move again: "
                                  f"crm_resource --clear --resource {rsc}"))
        else:
            out.append((DEGRADED, f"constraint {cid} ({c.get('kind', 'constraint')} of {rsc}) "
                                  "is not this formula's: the pillar does not describe it"))
    return out


def assess(cfg, node, links=None, quorum=None, pacemaker=None, drift=None, drbd=None,
           bmcs=None, local=None, constraints=None, mdstat=None, stalled=None, dlm=None):
    """{"verdict", "findings": [lines, worst first]} for ``node``; ``constraints``: the
    ones the formula does not own (attribute dicts); ``mdstat``: /proc/mdstat parsed;
    ``stalled``: (mount point, seconds) of a cluster file system that did not answer;
    ``dlm``: the transport the kernel's DLM runs with (tcp, sctp; None: not running)."""
    findings = _corosync(cfg, node, links, quorum) + _pacemaker(cfg, node, pacemaker) + \
        _drbd(cfg, node, drbd) + _fencing(cfg, node, bmcs) + _local_guests(node, local) + \
        _constraints(constraints) + _raid(cfg, node, mdstat)
    first = cfg["cluster"]["links"][0]
    if dlm not in (None, "sctp"):
        findings.append((DEGRADED, f"DLM runs over {dlm.upper()}: it reaches the peer over the "
                                   f"first corosync link ({first}) only, and GFS2 and lvmlockd "
                                   "wait while that link is down; /etc/dlm/dlm.conf asks for "
                                   "SCTP, which DLM takes when it starts, and both nodes must "
                                   "agree: stop DLM on both nodes at once (every guest and "
                                   "/shared with it) to change over"))
    if stalled:
        mount, seconds = stalled
        why = ("DLM reaches the peer over none of the corosync links" if dlm == "sctp" else
               f"DLM reaches the peer over the first corosync link ({first}) only")
        findings.append((FAILED, f"{mount} did not answer a read within {seconds} s: GFS2 "
                                 f"waits for a DLM lock, and {why}; the guests' files "
                                 "were not checked"))
    for concern, paths in sorted((drift or {}).items()):
        if paths:
            findings.append((DEGRADED, f"{concern} files differ from the pillar: "
                                       f"{', '.join(paths)} (state.apply fixes them)"))
    findings.sort(key=lambda f: -_RANK[f[0]])
    verdict = findings[0][0] if findings else OK
    return {"verdict": verdict,
            "findings": [f"{level}: {text}" for level, text in findings] or
                        ["ok: members, links, mirrors, fencing, resources and configuration as the "
                         "pillar says"]}
