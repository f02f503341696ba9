"""Basics every node needs: /etc/hosts, chrony, the salt-minion's masters.

/etc/hosts is a whole file: the standard Debian loopback lines, then every node's
name and FQDN on its back-channel address. Debian's ``127.0.1.1 <hostname>`` line
is left out on purpose: a node's own name must resolve to the address its peer
reaches it on, not to loopback (corosync, Pacemaker, DLM and libvirt migration look
the name up).
"""

HOSTS = "/etc/hosts"
CHRONY = "/etc/chrony/conf.d/trash.conf"
MINION = "/etc/salt/minion.d/trash.conf"


def hosts(cfg):
    lines = ["# Managed by Salt (trash.basics). Local changes are overwritten.",
             "127.0.0.1\tlocalhost",
             "::1\t\tlocalhost ip6-localhost ip6-loopback",
             "ff02::1\t\tip6-allnodes",
             "ff02::2\t\tip6-allrouters",
             "",
             "# the cluster nodes on their back-channel addresses"]
    for name in cfg["cluster"]["nodes"]:
        node = cfg["nodes"][name]
        names = [node["fqdn"], name] if node["fqdn"] != name else [name]
        lines.append(f"{node['ip']['backchannel']}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def chrony(cfg, node):
    """A conf.d fragment (Debian's chrony.conf reads /etc/chrony/conf.d/*.conf first)."""
    here = cfg["nodes"][node]
    peer = cfg["nodes"][here["peer"]]
    lines = ["# Managed by Salt (trash.basics). Local changes are overwritten.",
             "# Debian's own chrony.conf keeps its pool; these servers come in addition."]
    lines += [f"server {s} iburst" for s in cfg["ntp"]["servers"]]
    lines += ["# the peer node, over the back-channel: both keep one time when the",
              "# Internet is gone",
              f"peer {peer['ip']['backchannel']} iburst",
              "local stratum 10 orphan"]
    return "\n".join(lines) + "\n"


def minion(cfg, node):
    """Multi-master minion configuration: every master by its back-channel address."""
    masters = [cfg["nodes"][m]["ip"]["backchannel"] for m in cfg["salt"]["masters"]]
    lines = ["# Managed by Salt (trash.basics). Local changes are overwritten.",
             "# Takes effect when the salt-minion restarts.",
             f"id: {node}",
             "master:"]
    lines += [f"  - {m}" for m in masters]
    # the beacons that report membership, quorum, heartbeat links and the DRBD mirrors
    # (README, "Events")
    every = cfg["salt"]["beacon_interval"]
    lines += ["beacons:", "  trash_corosync:", f"    - interval: {every}",
              "  trash_drbd:", f"    - interval: {every}"]
    return "\n".join(lines) + "\n"
