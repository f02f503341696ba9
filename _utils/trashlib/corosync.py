"""corosync.conf and the authkey (corosync 3, knet, votequorum two_node)."""

import base64

KEYFILE = "/etc/corosync/authkey"
DLM_CONF = "/etc/dlm/dlm.conf"
DLM_SYSCTL = "/etc/sysctl.d/60-trash-dlm.conf"

def links(cfg, node):
    """The knet links in priority order: [(linknumber, zone)]."""
    return list(enumerate(cfg["cluster"]["links"]))


def dlm_conf(cfg):
    """dlm_controld's configuration: DLM over SCTP, so that it reaches the peer over every
    corosync link. Over TCP (what dlm_controld picks under corosync 3) the kernel uses each
    node's first link address only: with the first link down, corosync keeps both members,
    but every GFS2 or lvmlockd request that needs a lock the peer holds waits for that
    link. The kernel reads the protocol when DLM starts, and both nodes must use the same."""
    return ("# Managed by Salt (trash.cluster). Local changes are overwritten.\n"
            "# SCTP: DLM reaches the peer over every corosync link, not only the first.\n"
            "# Takes effect when DLM next starts; both nodes must agree.\n"
            "protocol=sctp\n")


def dlm_sysctl(cfg):
    """Non-local binds: over SCTP DLM binds the node's address on every link when it starts,
    and the serial link's exists only while pppd holds the link (without them DLM failed
    with EADDRNOTAVAIL and GFS2 did not mount). The path joins once the address is there."""
    return ("# Managed by Salt (trash.cluster). Local changes are overwritten.\n"
            "# DLM binds every corosync link's address, the serial link's before pppd has it.\n"
            "net.ipv4.ip_nonlocal_bind = 1\n")


def conf(cfg):
    """corosync.conf text; identical on both nodes."""
    cl = cfg["cluster"]
    link_list = links(cfg, None)
    out = ["# Managed by Salt (trash.cluster). Local changes are overwritten.",
           "totem {",
           "    version: 2",
           f"    cluster_name: {cl['name']}",
           "    transport: knet",
           f"    keyfile: {KEYFILE}",
           f"    crypto_cipher: {cl['crypto_cipher']}",
           f"    crypto_hash: {cl['crypto_hash']}",
           # passive: one link carries traffic, the next takes over (R3)
           "    link_mode: passive"]
    for key, value in sorted(cl["totem"].items()):
        out.append(f"    {key}: {value}")
    count = len(link_list)
    for number, zone in link_list:
        out += ["    interface {",
                f"        linknumber: {number}",
                # knet picks the highest priority in passive mode
                f"        knet_link_priority: {count - number}",
                "    }"]
    out += ["}", "", "nodelist {"]
    for name in cl["nodes"]:
        node = cfg["nodes"][name]
        out += ["    node {", f"        name: {name}", f"        nodeid: {node['nodeid']}"]
        for number, zone in link_list:
            out.append(f"        ring{number}_addr: {node['ip'][zone]}")
        out.append("    }")
    out += ["}", "", "quorum {", "    provider: corosync_votequorum"]
    if cl["two_node"]:
        out.append("    two_node: 1")
    out += ["}", "", "logging {", "    to_logfile: yes",
            "    logfile: /var/log/corosync/corosync.log", "    to_syslog: yes",
            "    timestamp: on", "}", ""]
    return "\n".join(out)


def authkey(cfg):
    return base64.b64decode(cfg["cluster"]["authkey"])


def parse_cmap(text):
    """``corosync-cmapctl`` output ('key (type) = value' lines) as {key: value}."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep and " (" in key:
            out[key.split(" (", 1)[0]] = value
    return out


def expected_cmap(cfg):
    """The cmap entries the rendered corosync.conf sets, as corosync-cmapctl prints them.

    None means the key must be absent. The keyfile and logging are left out: they
    are fixed paths, and corosync reads the key only at start.
    """
    cl = cfg["cluster"]
    out = {
        "totem.cluster_name": cl["name"],
        "totem.transport": "knet",
        "totem.crypto_cipher": cl["crypto_cipher"],
        "totem.crypto_hash": cl["crypto_hash"],
        "totem.link_mode": "passive",
        "quorum.provider": "corosync_votequorum",
        "quorum.two_node": "1" if cl["two_node"] else None,
    }
    out.update({f"totem.{key}": str(value) for key, value in cl["totem"].items()})
    link_list = links(cfg, None)
    for number, _ in link_list:
        out[f"totem.interface.{number}.knet_link_priority"] = str(len(link_list) - number)
    for index, name in enumerate(cl["nodes"]):
        node = cfg["nodes"][name]
        out[f"nodelist.node.{index}.name"] = name
        out[f"nodelist.node.{index}.nodeid"] = str(node["nodeid"])
        for number, zone in link_list:
            out[f"nodelist.node.{index}.ring{number}_addr"] = node["ip"][zone]
    return out


def parse_links(text):
    """``corosync-cfgtool -s``: {"nodeid": local id, "links": {n: {"addr", "peers": {id: state}}}}."""
    out = {"nodeid": None, "links": {}}
    link = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Local node ID"):
            out["nodeid"] = int(line.split()[3].rstrip(","))
        elif line.startswith("LINK ID"):
            link = {"addr": None, "peers": {}}
            out["links"][int(line.split()[2])] = link
        elif link is not None and line.startswith("addr"):
            link["addr"] = line.split("=", 1)[1].strip()
        elif link is not None and line.startswith("nodeid:"):
            nodeid, _, state = line[len("nodeid:"):].partition(":")
            if state.strip() != "localhost":
                link["peers"][int(nodeid)] = state.strip()
    return out


def parse_quorum(text):
    """``corosync-quorumtool -s``: quorate, flags and the members as (nodeid, name)."""
    out = {"quorate": False, "flags": [], "members": []}
    in_members = False
    for raw in text.splitlines():
        line = raw.strip()
        key, sep, value = line.partition(":")
        if sep and key == "Quorate":
            out["quorate"] = value.strip() == "Yes"
        elif sep and key == "Flags":
            out["flags"] = value.split()
        elif line.startswith("Nodeid") and "Name" in line:
            in_members = True
        elif in_members and line:
            fields = line.split()
            if fields[0].isdigit():
                out["members"].append((int(fields[0]), fields[2]))
    return out


def snapshot(cfg, node, links, quorum):
    """What corosync says about the cluster, seen from ``node``, in the pillar's words.

    ``links``/``quorum`` are parse_links/parse_quorum results, None when corosync is down.
    """
    if links is None:
        return {"running": False, "quorate": None, "members": [], "links": {}}
    peer = cfg["nodes"][node]["peer"]
    peer_id = cfg["nodes"][peer]["nodeid"]
    zones = cfg["cluster"]["links"]
    return {
        "running": True,
        "quorate": quorum["quorate"] if quorum else None,
        "members": sorted(name for _, name in quorum["members"]) if quorum else [],
        "links": {zones[n]: link["peers"].get(peer_id, "unknown")
                  for n, link in sorted(links["links"].items()) if n < len(zones)},
    }


def events(old, new):
    """The changes between two snapshots, one event each: kind, subject, old and new value."""
    out = []
    if old["running"] != new["running"]:
        out.append({"tag": "corosync", "subject": "corosync",
                    "old": "running" if old["running"] else "stopped",
                    "new": "running" if new["running"] else "stopped"})
    if old["quorate"] != new["quorate"] and None not in (old["quorate"], new["quorate"]):
        out.append({"tag": "quorum", "subject": "quorum",
                    "old": "quorate" if old["quorate"] else "not quorate",
                    "new": "quorate" if new["quorate"] else "not quorate"})
    if old["running"] and new["running"]:
        for name in sorted(set(old["members"]) | set(new["members"])):
            was, now = name in old["members"], name in new["members"]
            if was != now:
                out.append({"tag": "membership", "subject": name,
                            "old": "member" if was else "absent",
                            "new": "member" if now else "lost"})
        for zone in sorted(set(old["links"]) & set(new["links"])):
            if old["links"][zone] != new["links"][zone]:
                out.append({"tag": f"link/{zone}", "subject": zone,
                            "old": old["links"][zone], "new": new["links"][zone]})
    return out
