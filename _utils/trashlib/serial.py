"""The serial heartbeat (R3): an IP link over the ttyS0 null-modem cable.

corosync 3 has no serial transport, so pppd carries IP over the cable and knet
uses it as its lowest-priority link (DESIGN.md §5).
"""

import ipaddress

PEER_FILE = "/etc/ppp/peers/trash-serial"
UNIT_FILE = "/etc/systemd/system/trash-serial-link.service"
COROSYNC_DROPIN = "/etc/systemd/system/corosync.service.d/trash-serial-link.conf"
# how long corosync waits at start for the serial link's address
ADDRESS_WAIT = 30


def peer_options(cfg, node):
    here = cfg["nodes"][node]
    there = cfg["nodes"][here["peer"]]
    serial = cfg["serial"]
    prefix = ipaddress.ip_interface(here["addresses"]["serial"]).network.prefixlen
    return "\n".join([
        "# Managed by Salt (trash.serial). Local changes are overwritten.",
        f"/dev/{serial['device']}",
        str(serial["baud"]),
        f"{here['ip']['serial']}:{there['ip']['serial']}",
        f"netmask {ipaddress.ip_network(f'0.0.0.0/{prefix}').netmask}",
        # a null-modem cable has no modem control lines and no peer to authenticate to
        "local",
        "nocrtscts",
        "noauth",
        "nodefaultroute",
        # never give up: the link is a heartbeat path and must come back by itself
        "persist",
        "maxfail 0",
        "holdoff 2",
        "lcp-echo-interval 1",
        "lcp-echo-failure 5",
        "nodetach",
        ""])


def unit(cfg):
    return "\n".join([
        "# Managed by Salt (trash.serial). Local changes are overwritten.",
        "[Unit]",
        "Description=trash: IP link over the serial null-modem cable (last corosync link)",
        "Before=corosync.service",
        "",
        "[Service]",
        "ExecStart=/usr/sbin/pppd call trash-serial",
        "Restart=always",
        "RestartSec=2",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        ""])


def corosync_dropin(cfg, node):
    """corosync waits (bounded) for the serial link's address before it starts.

    corosync binds each knet link to its address once, at start: started before pppd
    has negotiated, it would run without the serial link until its next restart.
    """
    address = cfg["nodes"][node]["ip"]["serial"]
    # $$ is a literal $ for systemd, which expands $NAME itself
    wait = (f"for i in $$(seq {ADDRESS_WAIT}); do ip -o -4 addr show | grep -q 'inet {address}[ /]' "
            f"&& exit 0; sleep 1; done; echo 'trash: serial link address {address} not up after "
            f"{ADDRESS_WAIT} s, corosync starts without it' >&2")
    return "\n".join([
        "# Managed by Salt (trash.serial). Local changes are overwritten.",
        "# corosync binds each knet link to its address once, at start: wait for the serial",
        "# link's address (bounded, so that a broken cable never keeps the cluster down).",
        "[Unit]",
        "Wants=trash-serial-link.service",
        "After=trash-serial-link.service",
        "",
        "[Service]",
        f'ExecStartPre=/bin/sh -c "{wait}"',
        ""])
