"""DRBD configuration in the syntax of the version the nodes run (8.4 or 9).

8.4 and 9 disagree on where options live: ``fencing`` is a ``disk`` option in
8.4 and a ``net`` option in 9; 9 needs ``node-id`` per host and names the
unfence handler ``unfence-peer``; the crm-fence-peer scripts differ by version.

A single-primary mirror's fence-peer handler (crm-fence-peer) outdates the peer through
a Pacemaker constraint. A dual-primary mirror cannot be fenced that way: both sides are
Primary, both handlers race, the loser's I/O stays frozen under GFS2 and its unmount
hangs until Pacemaker fences it, and the loser may be the priority node (lab/README.md,
"What the storage link's loss does"). Its handler (trashlib/fencepeer.py) fences the peer
through Pacemaker instead: both ask, the fence device aimed at the priority node waits
``fence_delay``, so the other node is powered off, unless it holds more of the
single-primary mirrors.
"""

import math
import pathlib

from trashlib import cib, fencepeer, storage

HANDLER = "/usr/local/lib/trash/drbd-event"
FENCE_PEER = "/usr/local/lib/trash/drbd-fence-peer"


def _disk_of(cfg, node, res):
    return storage.partition_device(cfg["nodes"][node]["disk"], res["partition"])


def global_common(cfg):
    dr = cfg["drbd"]
    return "\n".join([
        "# Managed by Salt (trash.drbd). Local changes are overwritten.",
        "global {",
        "    usage-count no;",
        "}",
        "common {",
        "    net {",
        f"        protocol {dr['protocol']};",
        "    }",
        "}",
        ""])


def resource(cfg, res):
    """Text of /etc/drbd.d/<name>.res; identical on both nodes."""
    dr = cfg["drbd"]
    v9 = str(dr["version"]) == "9"
    suffix = ".9" if v9 else ""
    disk_opts = [f"        resync-rate {dr['resync_rate']};"]
    net_opts = [
        f"        protocol {dr['protocol']};",
        "        cram-hmac-alg sha1;",
        f"        shared-secret \"{dr['shared_secret']}\";",
        f"        after-sb-0pri {dr['after_sb_0pri']};",
        f"        after-sb-1pri {dr['after_sb_1pri']};",
        f"        after-sb-2pri {dr['after_sb_2pri']};",
    ]
    if res["dual_primary"]:
        net_opts.append("        allow-two-primaries yes;")
    fencing = "        fencing resource-and-stonith;"
    (net_opts if v9 else disk_opts).append(fencing)
    unfence = "unfence-peer" if v9 else "after-resync-target"
    # the stonith handler reads /proc/drbd, which DRBD 9 no longer fills
    fence_peer = (fence_peer_command(cfg) if res["dual_primary"] and not v9
                  else f"/usr/lib/drbd/crm-fence-peer{suffix}.sh")
    out = [
        "# Managed by Salt (trash.drbd). Local changes are overwritten.",
        f"resource {res['name']} {{",
        "    disk {", *disk_opts, "    }",
        "    net {", *net_opts, "    }",
        "    handlers {",
        f"        fence-peer \"{fence_peer}\";",
        f"        {unfence} \"/usr/lib/drbd/crm-unfence-peer{suffix}.sh\";",
        f"        split-brain \"{HANDLER} split-brain\";",
        "    }",
    ]
    for index, name in enumerate(cfg["cluster"]["nodes"]):
        node = cfg["nodes"][name]
        out.append(f"    on {name} {{")
        if v9:
            out.append(f"        node-id {index};")
        out += [f"        device /dev/drbd{res['minor']};",
                f"        disk {_disk_of(cfg, name, res)};",
                f"        address {node['ip']['storage']}:{res['port']};",
                "        meta-disk internal;",
                "    }"]
    out += ["}", ""]
    return "\n".join(out)


def fence_peer_command(cfg):
    """The dual-primary mirror's fence-peer handler with this cluster's facts."""
    cl = cfg["cluster"]
    token = cl["totem"]["token"]
    # corosync notices a lost member after token + consensus (1.2 x token unless set)
    settle = math.ceil(2 * (token + cl["totem"].get("consensus", 1.2 * token)) / 1000)
    single = [f"{cib.drbd_primitive_id(name)}:{res['minor']}"
              for name, res in sorted(cfg["drbd"]["resources"].items())
              if not res["dual_primary"]]
    return " ".join([FENCE_PEER, "--priority", cl["priority_node"],
                     "--fence-delay", str(cl["fence_delay"]), "--settle", str(settle), *single])


def fence_peer_handler():
    """The file of trashlib/fencepeer.py, run by DRBD as the handler."""
    source = pathlib.Path(fencepeer.__file__).read_text()
    return "#!/usr/bin/python3\n# Managed by Salt (trash.drbd). Local changes are overwritten.\n" \
        + source


def event_handler():
    """The DRBD handler that reports to the Salt event bus (split brain and others).

    It hands the event to the local salt-minion (its event bus, tag ``fire_master``),
    which forwards it to every master it is connected to: `salt-call event.send`
    authenticates on its own and, with Salt 3008.4, reaches only the first master. DRBD's
    values are reduced to the characters names and addresses use, so they cannot break
    the YAML they are put in."""
    return "\n".join([
        "#!/bin/sh",
        "# Managed by Salt (trash.drbd). Called by DRBD as a handler: reports the",
        "# event to the Salt masters through the local salt-minion; never decides",
        "# anything itself.",
        "kind=\"${1:?usage: drbd-event KIND}\"",
        "clean() { printf %s \"$1\" | tr -cd 'A-Za-z0-9_.:-'; }",
        "data=\"resource: '$(clean \"${DRBD_RESOURCE:-}\")', minor: '$(clean \"${DRBD_MINOR:-}\")',"
        " peer: '$(clean \"${DRBD_PEER:-${DRBD_PEER_ADDRESS:-}}\")'\"",
        "exec salt-call --local --retcode-passthrough event.fire \\",
        "    \"{data: {$data}, tag: 'trash/drbd/$(clean \"$kind\")', events: null, pretag: null}\" \\",
        "    fire_master >/dev/null 2>&1",
        ""])


# -- LVM on DRBD ---------------------------------------------------------------------------
LVMLOCAL = "/etc/lvm/lvmlocal.conf"


def lvmlocal():
    """/etc/lvm/lvmlocal.conf: lvmlockd for the shared volume groups, and LVM looking at
    DRBD devices only. The volume groups live on /dev/drbdN, whose backing partitions
    carry the same PV signatures: scanned there too (under any of their /dev/disk
    aliases), LVM would see every PV twice. The nodes keep no other LVM (R17)."""
    return "\n".join([
        "# Managed by Salt (trash.drbd). Local changes are overwritten.",
        "global {",
        "    use_lvmlockd = 1",
        "}",
        "devices {",
        '    global_filter = [ "a|^/dev/drbd[0-9]+$|", "r|.*|" ]',
        "}",
        "local {",
        "}",
        ""])


# -- observed state ------------------------------------------------------------------------
# drbdmeta/drbdadm get-gi: current:bitmap:history1:history2:flags... ; a resource whose
# metadata was just created has current UUID 4 (UUID_JUST_CREATED) and nothing else
JUST_CREATED = "0000000000000004"


def parse_gi(text):
    """The generation identifiers of `drbdadm get-gi` / `drbdmeta ... get-gi`."""
    fields = text.strip().splitlines()[-1].split(":") if text.strip() else []
    if len(fields) < 4 or not all(len(f) == 16 for f in fields[:4]):
        raise ValueError(f"not DRBD generation identifiers: {text.strip()!r}")
    return {"current": fields[0], "bitmap": fields[1], "history": fields[2:4]}


def never_synced(gi):
    """True when this side has never held UpToDate data: metadata as created, no history."""
    zero = "0" * 16
    return gi["current"] == JUST_CREATED and gi["bitmap"] == zero and \
        gi["history"] == [zero, zero]


def parse_proc_drbd(text):
    """/proc/drbd (DRBD 8.4): {minor: {"cs", "ro": (local, peer), "ds": (local, peer),
    "sync": percent or None}}."""
    out, last = {}, None
    for line in text.splitlines():
        head = line.strip().split()
        if head and head[0].endswith(":") and head[0][:-1].isdigit():
            last = int(head[0][:-1])
            fields = dict(f.split(":", 1) for f in head[1:] if ":" in f)
            if "cs" not in fields:  # an unconfigured minor
                out[last] = {"cs": "Unconfigured", "ro": None, "ds": None, "sync": None}
                continue
            out[last] = {"cs": fields["cs"], "ro": tuple(fields.get("ro", "/").split("/")),
                         "ds": tuple(fields.get("ds", "/").split("/")), "sync": None}
        elif last is not None and "sync'ed:" in line:
            out[last]["sync"] = float(line.split("sync'ed:")[1].split("%")[0])
    return out


def describe(state):
    """One line for a resource's /proc/drbd entry: connection, roles, disks (local/peer)."""
    if not state or state["cs"] == "Unconfigured":
        return "down"
    line = f"{state['cs']} {'/'.join(state['ro'])} {'/'.join(state['ds'])}"
    return line + (f" {state['sync']:.1f}%" if state["sync"] is not None else "")


# what the DRBD beacon reports of each resource, and where in /proc/drbd it is
WATCHED = {"connection": lambda st: st["cs"],
           "role": lambda st: st["ro"][0] if st["ro"] else "Unconfigured",
           "disk": lambda st: st["ds"][0] if st["ds"] else "Unconfigured",
           "peer_disk": lambda st: st["ds"][1] if st["ds"] else "Unconfigured"}
DOWN = {"cs": "Unconfigured", "ro": None, "ds": None, "sync": None}


def events(cfg, last, now):
    """Beacon events between two parsed /proc/drbd: one per resource and watched field
    that changed, e.g. {"tag": "mirror1/connection", "subject": "mirror1",
    "old": "Connected", "new": "WFConnection"}. Resync progress is not an event."""
    out = []
    for name, res in sorted(cfg["drbd"]["resources"].items()):
        before = last.get(res["minor"], DOWN)
        after = now.get(res["minor"], DOWN)
        for field, read in WATCHED.items():
            old, new = read(before), read(after)
            if old != new:
                out.append({"tag": f"{name}/{field}", "subject": name, "old": old, "new": new})
    return out
