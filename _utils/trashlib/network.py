"""The nodes' network as systemd-networkd files, and what a change of them touches.

One ``.netdev`` per virtual link (bond, VLAN, bridge) and one ``.network`` per link,
all named ``trash-<link>.<kind>`` under /etc/systemd/network: the zones of
trash:network:zones (a zone may name a bond), the Internet bridge carrying the
node's internet address and gateway, the LAN trunk with one VLAN and one bridge
per trash:network:vlans id, the cross-links with their addresses.

``changes(old, new)`` is pure: given two file sets it names the links that
``networkctl reload`` creates and the links ``networkctl reconfigure`` must touch,
so that a change never touches a link it does not concern.
"""

import posixpath

DIR = "/etc/systemd/network"
PREFIX = "trash-"
HEADER = "# Managed by Salt (trash.network). Local changes are overwritten."
# zones whose interface carries the node's own address of that zone
ADDRESS_ZONES = ("storage", "backchannel", "ipmi")


def _file(*sections):
    lines = [HEADER]
    for name, items in sections:
        lines += ["", f"[{name}]"] + [f"{key}={value}" for key, value in items]
    return "\n".join(lines) + "\n"


def _path(link, kind):
    return f"{DIR}/{PREFIX}{link}.{kind}"


def _static(items=()):
    # no IPv6 link-local addresses, router advertisements or DHCP on a cluster link:
    # each link has exactly the addresses the pillar gives it
    return [*items, ("LinkLocalAddressing", "no"), ("IPv6AcceptRA", "no")]


def vlan_link(cfg, vid):
    return f"{cfg['network']['zones']['lan']}.{vid}"


def files(cfg, node):
    """{path: text} of every networkd file of ``node``, in a stable order."""
    net = cfg["network"]
    zones = net["zones"]
    here = cfg["nodes"][node]
    out = {}
    for bond in sorted(net["bonds"]):
        spec = net["bonds"][bond]
        mode = spec.get("mode", "active-backup")
        out[_path(bond, "netdev")] = _file(
            ("NetDev", [("Name", bond), ("Kind", "bond")]),
            # the carrier of each member is watched: a pulled cable fails over
            ("Bond", [("Mode", mode), ("MIIMonitorSec", "100ms")]))
        for member in spec["members"]:
            out[_path(member, "network")] = _file(
                ("Match", [("Name", member)]), ("Network", [("Bond", bond)]))
    bridge = net["internet_bridge"]
    out[_path(zones["internet"], "network")] = _file(
        ("Match", [("Name", zones["internet"])]),
        ("Network", _static([("Bridge", bridge)])))
    out[_path(bridge, "netdev")] = _file(("NetDev", [("Name", bridge), ("Kind", "bridge")]))
    items = [("Address", here["addresses"]["internet"])]
    if here.get("gateway"):
        items.append(("Gateway", here["gateway"]))
    out[_path(bridge, "network")] = _file(
        ("Match", [("Name", bridge)]),
        # guests bridge onto it: it stays configured while the uplink has no carrier
        ("Network", _static(items + [("ConfigureWithoutCarrier", "yes")])))
    for zone in ADDRESS_ZONES:
        out[_path(zones[zone], "network")] = _file(
            ("Match", [("Name", zones[zone])]),
            ("Network", _static([("Address", here["addresses"][zone]),
                                 ("ConfigureWithoutCarrier", "yes")])))
    vids = sorted(net["vlans"])
    out[_path(zones["lan"], "network")] = _file(
        ("Match", [("Name", zones["lan"])]),
        ("Network", _static([("VLAN", vlan_link(cfg, v)) for v in vids])))
    for vid in vids:
        link, vbr = vlan_link(cfg, vid), net["vlans"][vid]["bridge"]
        out[_path(link, "netdev")] = _file(
            ("NetDev", [("Name", link), ("Kind", "vlan")]), ("VLAN", [("Id", vid)]))
        out[_path(link, "network")] = _file(
            ("Match", [("Name", link)]), ("Network", _static([("Bridge", vbr)])))
        out[_path(vbr, "netdev")] = _file(("NetDev", [("Name", vbr), ("Kind", "bridge")]))
        # the host has no address on a guest network; the bridge only switches
        out[_path(vbr, "network")] = _file(
            ("Match", [("Name", vbr)]),
            ("Network", _static([("ConfigureWithoutCarrier", "yes")])))
    return dict(sorted(out.items()))


def owned(path):
    """True for a file of /etc/systemd/network this formula owns (``trash-*``)."""
    return posixpath.dirname(path) == DIR and posixpath.basename(path).startswith(PREFIX)


def _links(text):
    """The link names a networkd file is about: [Match] Name= or [NetDev] Name=."""
    section, names = None, []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section in ("Match", "NetDev") and line.startswith("Name="):
            names += line[len("Name="):].split()
    return names


def changes(old, new):
    """What replacing the networkd files ``old`` by ``new`` ({path: text}) touches.

    Returns ``{"created": [...], "reconfigure": [...], "recreate": [...], "removed": [...]}``:
    ``created`` links get a new .netdev (``networkctl reload`` creates them);
    ``reconfigure`` links existed and their .network changed (``networkctl
    reconfigure`` re-applies them, and only them); ``recreate`` links have a changed
    .netdev, which networkd does not apply to an existing link: it must be deleted
    and created again, which interrupts it; ``removed`` links lost their files
    (networkd leaves them as they are until they are deleted or the node reboots).
    Links whose files did not change appear nowhere.
    """
    def text(files, path):
        value = files.get(path)
        return value.decode() if isinstance(value, bytes) else value

    created, reconfigure, recreate, removed = set(), set(), set(), set()
    for path in sorted(set(old) | set(new)):
        before, after = text(old, path), text(new, path)
        if before == after:
            continue
        netdev = path.endswith(".netdev")
        if after is None:
            removed.update(_links(before))
        elif before is None:
            (created if netdev else reconfigure).update(_links(after))
        else:
            (recreate if netdev else reconfigure).update(_links(before) + _links(after))
    gone = removed - set().union(set(), *(_links(text(new, p)) for p in new))
    reconfigure = (reconfigure | removed) - gone - created
    return {"created": sorted(created), "reconfigure": sorted(reconfigure - recreate),
            "recreate": sorted(recreate), "removed": sorted(gone)}


def describe(change):
    """One line saying what a change does to the running network, or None."""
    parts = []
    if change["created"]:
        parts.append(f"networkctl reload creates {', '.join(change['created'])}")
    if change["reconfigure"]:
        parts.append(f"networkctl reconfigure {' '.join(change['reconfigure'])}")
    if change["recreate"]:
        parts.append(f"{', '.join(change['recreate'])} must be deleted and recreated "
                     f"(a changed .netdev; this interrupts them)")
    if change["removed"]:
        parts.append(f"{', '.join(change['removed'])} no longer configured (delete them "
                     f"with networkctl delete)")
    return "; ".join(parts) or None


# -- ifupdown ---------------------------------------------------------------------------
IFUPDOWN = "/etc/network/interfaces"
STANZAS = ("iface", "mapping", "auto", "source", "source-directory", "rename")


def managed_links(cfg, node):
    """Every link name networkd configures on ``node`` (interfaces, bonds, VLANs, bridges)."""
    return sorted({name for text in files(cfg, node).values() for name in _links(text)})


def release_ifupdown(text, managed):
    """/etc/network/interfaces without what it says about the ``managed`` links: their
    ``auto``/``allow-*`` entries and their ``iface`` stanzas (with the options under them,
    aliases like eth0:1 too), so that ifupdown no longer configures what networkd does.
    Everything else, comments included, stays. Returns (new text, [names released])."""
    managed = set(managed)

    def ours(name):
        return name in managed or name.split(":")[0] in managed

    out, released, skipping = [], [], False
    for line in text.splitlines(keepends=True):
        words = line.split()
        first = words[0] if words else ""
        starts = first in STANZAS or first.startswith("allow-")
        if skipping and not starts and line.strip() and line[:1] in (" ", "\t"):
            continue  # an option (or an indented comment) of the stanza being removed
        skipping = False
        if first == "iface" and len(words) > 1 and ours(words[1]):
            skipping = True
            released.append(words[1])
            continue
        if first == "auto" or first.startswith("allow-"):
            keep = [w for w in words[1:] if not ours(w)]
            gone = [w for w in words[1:] if ours(w)]
            released += gone
            if not keep:
                continue
            if gone:
                line = " ".join([first, *keep]) + "\n"
        out.append(line)
    return "".join(out), sorted(set(released))
