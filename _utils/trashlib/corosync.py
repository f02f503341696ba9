"""corosync.conf and the authkey (corosync 3, knet, votequorum two_node)."""

import base64

KEYFILE = "/etc/corosync/authkey"

def links(cfg, node):
    """The knet links in priority order: [(linknumber, zone)]."""
    return list(enumerate(cfg["cluster"]["links"]))


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
