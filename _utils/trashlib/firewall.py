"""The host firewall: /etc/nftables.conf with one table, ``inet trash``.

What the node itself accepts, by zone: from the Internet zone (its bridge) only what
trash:firewall allows (ssh from named sources, nothing by default); on each
cross-link only the cluster's own services, and only from the peer's address on
that link; loopback and established/related traffic everywhere; nothing else.

The file replaces only its own table (``table``/``delete table``/``table`` in one
atomic transaction): tables of other software (libvirt, a container runtime) stay.
It has no forward hook: guests' bridged frames are never filtered by it, whether or
not br_netfilter hands them to the IP hooks (a forward chain with policy drop would
drop every guest's traffic where br_netfilter is loaded).
"""

import ipaddress

PATH = "/etc/nftables.conf"
TABLE = "trash"
COROSYNC_PORT = 5405  # knet link n listens on UDP 5405 + n (measured with corosync 3.1.7)
DLM_PORT = 21064
SALT_PORTS = (4505, 4506)
MIGRATION_PORTS = (49152, 49215)  # libvirt's default migration_port_min/max
LIBVIRT_TLS_PORT = 16514
NTP_PORT = 123
SERIAL_IFNAME = "ppp*"  # pppd names the serial link ppp<n>
# only to an address of the interface the packet came in on: nothing reaches a
# cross-link address over eth0
LOCAL = "fib daddr . iif type local"


def _family(source):
    return "ip6" if ipaddress.ip_network(source, strict=False).version == 6 else "ip"


def _set(values):
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def services(cfg, node):
    """The cluster services the node accepts from its peer: [(what, zone, proto, ports)].

    ``ports`` is a list of ints or (low, high) ranges; ``zone`` names the cross-link.
    """
    links = cfg["cluster"]["links"]
    out = [(f"corosync knet link {n} ({zone})", zone, "udp", [COROSYNC_PORT + n])
           for n, zone in enumerate(links)]
    drbd_ports = sorted(r["port"] for r in cfg["drbd"]["resources"].values())
    if drbd_ports:
        out.append(("DRBD", "storage", "tcp", drbd_ports))
    # DLM over SCTP (corosync.dlm_conf): one association over every corosync link
    out += [(f"DLM ({zone})", zone, "sctp", [DLM_PORT]) for zone in links]
    if node in cfg["salt"]["masters"]:
        out.append(("salt-master", "backchannel", "tcp", list(SALT_PORTS)))
    out.append(("ssh (administration, migration over ssh)", "backchannel", "tcp",
                [cfg["firewall"]["ssh_port"]]))
    migration = [MIGRATION_PORTS]
    if cfg["firewall"]["libvirt_tls"]:
        migration.append(LIBVIRT_TLS_PORT)
    out.append(("libvirt migration", "backchannel", "tcp", migration))
    out.append(("NTP (chrony peer)", "backchannel", "udp", [NTP_PORT]))
    return out


def _ports(ports):
    return _set(f"{p[0]}-{p[1]}" if isinstance(p, tuple) else p for p in ports)


def ruleset(cfg, node):
    here = cfg["nodes"][node]
    peer = cfg["nodes"][here["peer"]]
    zones = cfg["network"]["zones"]
    fw = cfg["firewall"]
    ifname = dict(zones, serial=SERIAL_IFNAME)
    internet = cfg["network"]["internet_bridge"]
    rules = [
        'iif "lo" accept',
        "ct state established,related accept",
        "ct state invalid drop",
        "icmp type { echo-request, destination-unreachable, time-exceeded, "
        "parameter-problem } accept",
        "icmpv6 type { echo-request, destination-unreachable, packet-too-big, time-exceeded, "
        "parameter-problem, nd-neighbor-solicit, nd-neighbor-advert } accept",
        "",
        f"# Internet zone ({zones['internet']} on bridge {internet}): only what "
        "trash:firewall allows",
    ]
    allowed = [("ssh", "tcp", fw["ssh_port"], fw["ssh_sources"])]
    allowed += [(name, spec["protocol"], spec["port"], spec["sources"])
                for name, spec in sorted(fw["internet_allow"].items())]
    if not any(sources for _, _, _, sources in allowed):
        rules.append("# nothing: trash:firewall names no source")
    for name, proto, port, sources in allowed:
        for family in ("ip", "ip6"):
            these = [s for s in sources if _family(s) == family]
            if these:
                rules.append(f'iifname "{internet}" {LOCAL} {family} saddr {_set(these)} '
                             f'{proto} dport {port} accept comment "{name}"')
    rules += ["", "# cross-links: the cluster's services, from the peer's address on that link"]
    for what, zone, proto, ports in services(cfg, node):
        rules.append(f'iifname "{ifname[zone]}" {LOCAL} ip saddr {peer["ip"][zone]} '
                     f'{proto} dport {_ports(ports)} accept comment "{what}"')
        if proto == "sctp":
            # an SCTP association spans every link: on the side that connected, the peer's
            # packets on a path conntrack has not seen yet come from the service's port
            rules.append(f'iifname "{ifname[zone]}" {LOCAL} ip saddr {peer["ip"][zone]} '
                         f'{proto} sport {_ports(ports)} accept comment "{what}, replies"')
    body = "\n".join(f"\t\t{r}" if r else "" for r in rules)
    return "\n".join([
        "#!/usr/sbin/nft -f",
        "# Managed by Salt (trash.firewall). Local changes are overwritten.",
        f"# Replaces only table inet {TABLE}, atomically; other tables stay. No forward hook:",
        "# guests' bridged traffic is not filtered here, with or without br_netfilter.",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        "",
        f"table inet {TABLE} {{",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        body,
        "\t}",
        "}",
        ""])
