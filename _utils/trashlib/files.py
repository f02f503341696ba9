"""Every file the states manage on a node, with its content, owner, mode and check.

``plan(cfg, node)`` is the single source of truth: ``trash.render`` writes
exactly this list, and the ``trash.files_managed`` state manages exactly it.
"""

from dataclasses import dataclass, field

from trashlib import agents, basics, cib, corosync, drbd, firewall, libvirt, network, serial


@dataclass(frozen=True)
class FileSpec:
    path: str
    content: bytes = field(repr=False)
    concern: str
    mode: str = "0644"
    secret: bool = False
    # name of the offline check that must accept the file before it goes live
    check: str = None
    # the file lives on this mount point and must wait for it
    needs_mount: str = None


CONCERNS = ("basics", "network", "firewall", "serial", "cluster", "drbd", "guests")
# a concern that owns files by name: {concern: (directory, predicate)}; an owned file that
# is not in the plan any more is removed
OWNED = {"network": (network.DIR, network.owned)}


def plan(cfg, node):
    """All files of ``node`` in a stable order."""
    if node not in cfg["nodes"]:
        raise KeyError(node)
    peer = cfg["nodes"][node]["peer"]
    out = [
        FileSpec(basics.HOSTS, basics.hosts(cfg).encode(), "basics"),
        FileSpec(basics.CHRONY, basics.chrony(cfg, node).encode(), "basics", check="chrony"),
        FileSpec(basics.MINION, basics.minion(cfg, node).encode(), "basics"),
    ]
    out += [FileSpec(path, text.encode(), "network")
            for path, text in network.files(cfg, node).items()]
    out.append(FileSpec(firewall.PATH, firewall.ruleset(cfg, node).encode(), "firewall", "0755",
                        check="nftables"))
    out += [
        FileSpec(serial.PEER_FILE, serial.peer_options(cfg, node).encode(), "serial"),
        FileSpec(serial.UNIT_FILE, serial.unit(cfg).encode(), "serial"),
        FileSpec(serial.COROSYNC_DROPIN, serial.corosync_dropin(cfg, node).encode(), "serial"),
        FileSpec("/etc/corosync/corosync.conf", corosync.conf(cfg).encode(), "cluster",
                 check="corosync"),
        FileSpec("/etc/corosync/authkey", corosync.authkey(cfg), "cluster", "0400", secret=True),
        FileSpec(corosync.DLM_CONF, corosync.dlm_conf(cfg).encode(), "cluster"),
        FileSpec(corosync.DLM_SYSCTL, corosync.dlm_sysctl(cfg).encode(), "cluster"),
        FileSpec("/etc/trash/cib.xml", cib.render(cfg).encode(), "cluster", "0600", check="cib"),
        # this node fences its peer, so it holds the peer's BMC password, and only that
        FileSpec(cib.fence_secret_path(peer),
                 (cfg["nodes"][peer]["bmc"]["password"] + "\n").encode(), "cluster", "0400",
                 secret=True),
    ]
    out += [FileSpec(path, text.encode(), "cluster", mode)
            for path, (text, mode) in agents.files().items()]
    out.append(FileSpec("/etc/drbd.d/global_common.conf", drbd.global_common(cfg).encode(),
                        "drbd", check="drbd"))
    for name in sorted(cfg["drbd"]["resources"]):
        res = cfg["drbd"]["resources"][name]
        # the shared secret is inside: root only (diffs show it redacted)
        out.append(FileSpec(f"/etc/drbd.d/{name}.res", drbd.resource(cfg, res).encode(), "drbd",
                            "0600", check="drbd"))
    out.append(FileSpec(drbd.HANDLER, drbd.event_handler().encode(), "drbd", "0755"))
    out.append(FileSpec(drbd.FENCE_PEER, drbd.fence_peer_handler().encode(), "drbd", "0755"))
    out.append(FileSpec(drbd.LVMLOCAL, drbd.lvmlocal().encode(), "drbd"))
    shared = cfg["shared"]["mountpoint"]
    for name in sorted(cfg["guests"]):
        g = cfg["guests"][name]
        if g["storage"] == "cluster":
            out.append(FileSpec(g["xml"], libvirt.render(cfg, g).encode(), "guests",
                                needs_mount=shared))
        elif g["home"] == node:
            out.append(FileSpec(g["xml"], libvirt.render(cfg, g).encode(), "guests",
                                needs_mount="/local"))
    return out
