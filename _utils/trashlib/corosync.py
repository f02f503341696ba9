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
