"""The trash pillar: defaults merged with pillar, validated, normalised.

Pure functions, no I/O and no Salt: ``load(pillar, defaults)`` returns the
normalised configuration of the whole cluster or raises :class:`PillarError`
listing every problem at once, each with its key path.
"""

import base64
import binascii
import copy
import ipaddress
import re

SECRET = "<secret>"
ZONES = ("internet", "storage", "backchannel", "lan", "ipmi")
# zones whose addresses are point-to-point cross-links between the two nodes
CROSS_LINKS = ("storage", "backchannel", "serial")
NODE_ADDRESS_ZONES = ("internet", "storage", "backchannel", "ipmi", "serial")
LINKS = ("backchannel", "storage", "serial")

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_SIZE = re.compile(r"^([0-9]+)([KMGT]?)$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

NODE_KEYS = {"nodeid", "disk", "raid", "addresses", "gateway", "bmc"}
RAID_KEYS = {"level", "members"}
# mdadm levels the formula creates, with the fewest members each needs
RAID_LEVELS = {1: 2, 5: 3, 6: 4, 10: 2}
_MD = re.compile(r"^/dev/md[0-9]+$")
BMC_KEYS = {"address", "username", "password", "port"}
PARTITION_KEYS = {"size", "filesystem", "mount", "drbd"}
DRBD_KEYS = {"minor", "port", "partition", "dual_primary", "home"}
VG_KEYS = {"drbd", "home"}
VLAN_KEYS = {"bridge", "description"}
BOND_KEYS = {"members", "mode"}


class PillarError(Exception):
    """Every problem found in the pillar, as (key path, message) pairs."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(self.text())

    def text(self):
        lines = [f"invalid trash pillar, {len(self.problems)} problem(s), nothing was changed:"]
        lines += [f"  {path}: {message}" for path, message in self.problems]
        return "\n".join(lines)


def merge(base, over):
    """Recursive dict merge; lists and scalars from ``over`` replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_size(text):
    """'20G' -> bytes; None when malformed."""
    match = _SIZE.match(str(text).strip().upper())
    if not match:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]


class _Checker:
    def __init__(self):
        self.problems = []

    def err(self, path, message):
        self.problems.append((path, message))

    def typed(self, value, path, kind, required=True):
        """Return value when it has the type, else record the problem and return None."""
        names = {bool: "true or false", int: "an integer", str: "a string",
                 dict: "a mapping", list: "a list"}
        if value is None:
            if required:
                self.err(path, f"missing, must be {names[kind]}")
            return None
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            self.err(path, f"must be {names[kind]}, not {type(value).__name__} {value!r}")
            return None
        return value

    def keys(self, mapping, path, allowed):
        for key in mapping:
            if key not in allowed:
                self.err(f"{path}:{key}", f"unknown key (known: {', '.join(sorted(allowed))})")

    def integer(self, value, path, low, high, required=True):
        value = self.typed(value, path, int, required)
        if value is not None and not low <= value <= high:
            self.err(path, f"{value} is outside {low}-{high}")
            return None
        return value

    def name(self, value, path, pattern=_NAME, what="a name"):
        if self.typed(value, path, str) is not None and not pattern.match(value):
            self.err(path, f"{value!r} is not valid as {what} (pattern {pattern.pattern})")


def _known(value, names):
    """``value in names``, False rather than TypeError for a list or mapping from YAML."""
    try:
        return value in names
    except TypeError:
        return False


def _iface(text):
    if not isinstance(text, str):
        return None
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def load(pillar, defaults):
    """Merge ``pillar['trash']`` over ``defaults['trash']`` and validate it.

    Returns the normalised configuration; raises PillarError with every problem.
    """
    chk = _Checker()
    raw = pillar.get("trash") if isinstance(pillar, dict) else None
    if raw is None:
        raise PillarError([("trash", "missing: no trash pillar is assigned to this minion")])
    if not isinstance(raw, dict):
        raise PillarError([("trash", f"must be a mapping, not {type(raw).__name__}")])
    base = defaults["trash"]
    chk.keys(raw, "trash", set(base))
    for key, value in raw.items():
        if key in base and isinstance(base[key], dict) and value is not None \
                and not isinstance(value, dict):
            chk.err(f"trash:{key}", f"must be a mapping, not {type(value).__name__}")
    if chk.problems:
        raise PillarError(chk.problems)
    cfg = merge(base, {k: v for k, v in raw.items() if v is not None})

    _check_cluster(chk, cfg)
    _check_serial(chk, cfg)
    nodes = _check_nodes(chk, cfg)
    bridges = _check_network(chk, cfg)
    _check_storage(chk, cfg)
    _check_drbd(chk, cfg, nodes)
    _check_shared_and_vgs(chk, cfg, nodes)
    _check_guests(chk, cfg, nodes, bridges)
    _check_notify(chk, cfg)
    _check_salt(chk, cfg, nodes)
    _check_firewall(chk, cfg)
    _check_ntp(chk, cfg)
    _check_packages(chk, cfg)
    if chk.problems:
        raise PillarError(chk.problems)
    return _normalise(cfg)


def _check_cluster(chk, cfg):
    cl = cfg["cluster"]
    p = "trash:cluster"
    chk.keys(cl, p, {"name", "domain", "priority_node", "two_node", "links", "totem",
                     "crypto_cipher", "crypto_hash", "stickiness", "home_preference",
                     "fence_delay", "fence_action", "no_quorum_policy", "load_threshold",
                     "node_action_limit", "monitor_interval", "timeout_factor",
                     "authkey"})
    chk.name(cl.get("name"), f"{p}:name", what="a cluster name")
    chk.typed(cl.get("domain"), f"{p}:domain", str)
    chk.typed(cl.get("two_node"), f"{p}:two_node", bool)
    links = chk.typed(cl.get("links"), f"{p}:links", list)
    if links is not None:
        for i, link in enumerate(links):
            if link not in LINKS:
                chk.err(f"{p}:links:{i}", f"{link!r} is not a link (known: {', '.join(LINKS)})")
        if len(set(map(str, links))) != len(links):
            chk.err(f"{p}:links", "names a link twice")
        if not links:
            chk.err(f"{p}:links", "needs at least one link")
    totem = chk.typed(cl.get("totem"), f"{p}:totem", dict)
    if totem is not None:
        for key, value in totem.items():
            chk.integer(value, f"{p}:totem:{key}", 1, 10**7)
    for key in ("stickiness", "home_preference"):
        chk.integer(cl.get(key), f"{p}:{key}", 0, 1000000)
    if isinstance(cl.get("stickiness"), int) and isinstance(cl.get("home_preference"), int) \
            and not isinstance(cl.get("stickiness"), bool) \
            and cl["stickiness"] <= cl["home_preference"]:
        chk.err(f"{p}:stickiness", "must be greater than home_preference, or resources "
                "move back to their home node when it rejoins (R13)")
    chk.integer(cl.get("fence_delay"), f"{p}:fence_delay", 1, 600)
    if cl.get("fence_action") not in ("off", "reboot"):
        chk.err(f"{p}:fence_action", f"{cl.get('fence_action')!r} must be off or reboot")
    if cl.get("no_quorum_policy") not in ("freeze", "stop"):
        chk.err(f"{p}:no_quorum_policy", "must be freeze or stop (DLM and GFS2 need one of them)")
    chk.integer(cl.get("load_threshold"), f"{p}:load_threshold", 1, 100000, required=False)
    chk.integer(cl.get("node_action_limit"), f"{p}:node_action_limit", 1, 1000, required=False)
    chk.integer(cl.get("monitor_interval"), f"{p}:monitor_interval", 10, 3600)
    chk.integer(cl.get("timeout_factor"), f"{p}:timeout_factor", 1, 10)
    for key in ("crypto_cipher", "crypto_hash"):
        chk.typed(cl.get(key), f"{p}:{key}", str)
    key = chk.typed(cl.get("authkey"), f"{p}:authkey", str)
    if key is not None:
        try:
            size = len(base64.b64decode(key, validate=True))
        except (binascii.Error, ValueError):
            chk.err(f"{p}:authkey", "is not valid base64")
        else:
            if not 128 <= size <= 4096:
                chk.err(f"{p}:authkey", f"decodes to {size} bytes; corosync needs 128-4096")


def _check_serial(chk, cfg):
    p = "trash:serial"
    ser = cfg["serial"]
    chk.keys(ser, p, {"device", "baud"})
    dev = chk.typed(ser.get("device"), f"{p}:device", str)
    if dev is not None and not re.match(r"^tty[A-Za-z0-9]+$", dev):
        chk.err(f"{p}:device", f"{dev!r} is not a tty name like ttyS0")
    baud = chk.typed(ser.get("baud"), f"{p}:baud", int)
    if baud is not None and baud not in (9600, 19200, 38400, 57600, 115200, 230400, 460800):
        chk.err(f"{p}:baud", f"{baud} is not a serial line speed")


def _check_nodes(chk, cfg):
    """Validate trash:nodes; return the set of valid node names."""
    p = "trash:nodes"
    nodes = cfg["nodes"]
    if not isinstance(nodes, dict) or not nodes:
        chk.err(p, "must name the cluster nodes")
        return set()
    if cfg["cluster"].get("two_node") is True and len(nodes) != 2:
        chk.err(p, f"two_node quorum needs exactly two nodes, found {len(nodes)}: "
                   f"{', '.join(map(str, nodes))}")
    prio = cfg["cluster"].get("priority_node")
    if prio is None:
        chk.err("trash:cluster:priority_node", "missing: name the node that wins a fence race (R4)")
    elif not _known(prio, nodes):
        chk.err("trash:cluster:priority_node", f"{prio!r} is not a member of trash:nodes")
    ids = {}
    seen_ips = {}
    for name, node in nodes.items():
        np = f"{p}:{name}"
        chk.name(name, np, what="a node name (it is the minion id and hostname)")
        if chk.typed(node, np, dict) is None:
            continue
        chk.keys(node, np, NODE_KEYS)
        nid = chk.integer(node.get("nodeid"), f"{np}:nodeid", 1, 65535)
        if nid is not None:
            if nid in ids:
                chk.err(f"{np}:nodeid", f"{nid} is also the nodeid of {ids[nid]}")
            ids[nid] = name
        disk = chk.typed(node.get("disk"), f"{np}:disk", str)
        if disk is not None and not disk.startswith("/dev/"):
            chk.err(f"{np}:disk", f"{disk!r} is not a device path under /dev/")
        if node.get("raid") is not None:
            _check_raid(chk, node["raid"], disk, f"{np}:raid")
        addrs = chk.typed(node.get("addresses"), f"{np}:addresses", dict)
        for zone in NODE_ADDRESS_ZONES if addrs is not None else ():
            ap = f"{np}:addresses:{zone}"
            value = chk.typed(addrs.get(zone), ap, str)
            if value is None:
                continue
            iface = _iface(value)
            if iface is None or "/" not in value:
                chk.err(ap, f"{value!r} is not an address with prefix length (like 10.0.0.1/24)")
                continue
            _unique_ip(chk, seen_ips, iface.ip, ap)
        if addrs is not None:
            chk.keys(addrs, f"{np}:addresses", set(NODE_ADDRESS_ZONES))
        gw = node.get("gateway")
        if gw is not None and chk.typed(gw, f"{np}:gateway", str) is not None:
            try:
                gwip = ipaddress.ip_address(gw)
            except ValueError:
                chk.err(f"{np}:gateway", f"{gw!r} is not an IP address")
            else:
                inet = _iface(addrs.get("internet", "")) if addrs else None
                if inet is not None and gwip not in inet.network:
                    chk.err(f"{np}:gateway", f"{gw} is not in the internet subnet {inet.network}")
        bmc = node.get("bmc")
        if bmc is None:
            chk.err(f"{np}:bmc", "missing: every node needs a BMC through which its peer fences it (R4)")
        elif chk.typed(bmc, f"{np}:bmc", dict) is not None:
            chk.keys(bmc, f"{np}:bmc", BMC_KEYS)
            addr = chk.typed(bmc.get("address"), f"{np}:bmc:address", str)
            if addr is not None:
                try:
                    _unique_ip(chk, seen_ips, ipaddress.ip_address(addr), f"{np}:bmc:address")
                except ValueError:
                    chk.err(f"{np}:bmc:address", f"{addr!r} is not an IP address")
            chk.typed(bmc.get("username"), f"{np}:bmc:username", str)
            chk.typed(bmc.get("password"), f"{np}:bmc:password", str)
            if "port" in bmc:
                chk.integer(bmc["port"], f"{np}:bmc:port", 1, 65535)
    valid = {n for n in nodes if isinstance(n, str) and isinstance(nodes[n], dict)}
    if len(valid) == 2 and not chk.problems:
        _check_cross_links(chk, cfg, sorted(valid))
    return valid


def _check_raid(chk, raid, disk, path):
    """trash:nodes:<node>:raid: the software RAID array that ``disk`` names."""
    if chk.typed(raid, path, dict) is None:
        return
    chk.keys(raid, path, RAID_KEYS)
    level = chk.typed(raid.get("level"), f"{path}:level", int)
    if level is not None and level not in RAID_LEVELS:
        chk.err(f"{path}:level", f"{level} must be one of {', '.join(map(str, RAID_LEVELS))}")
    members = chk.typed(raid.get("members"), f"{path}:members", list) or []
    for i, member in enumerate(members):
        if not isinstance(member, str) or not member.startswith("/dev/"):
            chk.err(f"{path}:members", f"{member!r} is not a device path under /dev/")
        elif member in members[:i]:
            chk.err(f"{path}:members", f"{member} is named twice")
        elif member == disk:
            chk.err(f"{path}:members", f"{member} is the array itself (trash:nodes:…:disk)")
    if level in RAID_LEVELS and members and len(members) < RAID_LEVELS[level]:
        chk.err(f"{path}:members", f"RAID {level} needs at least {RAID_LEVELS[level]} "
                                   f"members, found {len(members)}")
    if isinstance(disk, str) and not _MD.match(disk):
        chk.err(f"{path[:-len(':raid')]}:disk",
                f"{disk!r} must be the array's device /dev/md<N> when raid is set")


def _unique_ip(chk, seen, ip, path):
    if ip in seen:
        chk.err(path, f"address {ip} is also used at {seen[ip]}")
    else:
        seen[ip] = path


def _check_cross_links(chk, cfg, names):
    nodes = cfg["nodes"]
    a, b = names
    for zone in CROSS_LINKS + ("internet",):
        na = ipaddress.ip_interface(nodes[a]["addresses"][zone]).network
        nb = ipaddress.ip_interface(nodes[b]["addresses"][zone]).network
        if na != nb:
            chk.err(f"trash:nodes:{b}:addresses:{zone}",
                    f"subnet {nb} differs from {a}'s {na}: the {zone} link joins both nodes")
    for node, peer in ((a, b), (b, a)):
        bmc = ipaddress.ip_address(nodes[node]["bmc"]["address"])
        ipmi = ipaddress.ip_interface(nodes[peer]["addresses"]["ipmi"]).network
        if bmc not in ipmi:
            chk.err(f"trash:nodes:{node}:bmc:address",
                    f"{bmc} is not in {peer}'s ipmi subnet {ipmi}: {peer} reaches "
                    f"{node}'s BMC over its own ipmi cross-link")


def _check_network(chk, cfg):
    """Validate trash:network; return the set of bridge names guests may use."""
    p = "trash:network"
    net = cfg["network"]
    chk.keys(net, p, {"zones", "internet_bridge", "bonds", "vlans"})
    zones = chk.typed(net.get("zones"), f"{p}:zones", dict) or {}
    chk.keys(zones, f"{p}:zones", set(ZONES))
    for zone in ZONES:
        name = zones.get(zone)
        if chk.typed(name, f"{p}:zones:{zone}", str) is not None and not _IFNAME.match(name):
            chk.err(f"{p}:zones:{zone}", f"{name!r} is not an interface name")
    used = [z for z in ZONES if isinstance(zones.get(z), str)]
    for i, zone in enumerate(used):
        for other in used[i + 1:]:
            if zones[zone] == zones[other]:
                chk.err(f"{p}:zones:{other}", f"{zones[other]} also carries zone {zone}")
    bonds = chk.typed(net.get("bonds"), f"{p}:bonds", dict) or {}
    members = {}
    for bond, spec in bonds.items():
        bp = f"{p}:bonds:{bond}"
        if not isinstance(bond, str) or not _IFNAME.match(bond):
            chk.err(bp, f"{bond!r} is not an interface name")
        if chk.typed(spec, bp, dict) is None:
            continue
        chk.keys(spec, bp, BOND_KEYS)
        lst = chk.typed(spec.get("members"), f"{bp}:members", list)
        for member in lst or ():
            if member in members:
                chk.err(f"{bp}:members", f"{member} is already a member of {members[member]}")
            members[member] = bond
            if member in zones.values():
                chk.err(f"{bp}:members", f"{member} carries a zone itself; name the bond in "
                                         f"trash:network:zones instead")
        if lst is not None and len(lst) < 2:
            chk.err(f"{bp}:members", "a bond needs at least two members")
        if spec.get("mode", "active-backup") not in (
                "active-backup", "balance-rr", "balance-xor", "802.3ad", "broadcast",
                "balance-tlb", "balance-alb"):
            chk.err(f"{bp}:mode", f"{spec.get('mode')!r} is not a bonding mode")
    bridges = {}
    ib = net.get("internet_bridge")
    if chk.typed(ib, f"{p}:internet_bridge", str) is not None:
        bridges[ib] = f"{p}:internet_bridge"
    vlans = chk.typed(net.get("vlans"), f"{p}:vlans", dict) or {}
    for vid, spec in vlans.items():
        vp = f"{p}:vlans:{vid}"
        try:
            number = int(vid)
        except (TypeError, ValueError):
            number = None
        if number is None or not 1 <= number <= 4094 or isinstance(vid, bool):
            chk.err(vp, f"VLAN id {vid!r} is outside 1-4094")
        if chk.typed(spec, vp, dict) is None:
            continue
        chk.keys(spec, vp, VLAN_KEYS)
        chk.typed(spec.get("description", ""), f"{vp}:description", str)
        lan = zones.get("lan")
        if number is not None and isinstance(lan, str) and len(f"{lan}.{number}") > 15:
            chk.err(vp, f"the VLAN interface {lan}.{number} would be longer than 15 characters")
        bridge = chk.typed(spec.get("bridge"), f"{vp}:bridge", str)
        if bridge is None:
            continue
        if not _IFNAME.match(bridge):
            chk.err(f"{vp}:bridge", f"{bridge!r} is not an interface name (at most 15 characters)")
        if bridge in bridges:
            chk.err(f"{vp}:bridge", f"bridge {bridge} is already defined at {bridges[bridge]}")
        else:
            bridges[bridge] = f"{vp}:bridge"
    return set(bridges)


def _check_storage(chk, cfg):
    p = "trash:storage"
    st = cfg["storage"]
    chk.keys(st, p, {"label", "partitions"})
    label = st.get("label")
    if label not in ("gpt", "msdos"):
        chk.err(f"{p}:label", f"{label!r} must be gpt or msdos")
    parts = chk.typed(st.get("partitions"), f"{p}:partitions", dict) or {}
    if not parts:
        chk.err(f"{p}:partitions", "missing: the partition layout of the nodes' RAID array")
    for number, spec in parts.items():
        pp = f"{p}:partitions:{number}"
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 128:
            chk.err(pp, f"partition number {number!r} must be an integer 1-128")
        elif label == "msdos" and (number == 3 or number > 63):
            chk.err(pp, "partition 3 is the extended partition of an msdos label"
                    if number == 3 else "msdos labels hold at most 63 partitions")
        if chk.typed(spec, pp, dict) is None:
            continue
        chk.keys(spec, pp, PARTITION_KEYS)
        size = spec.get("size")
        if size != "rest" and (not isinstance(size, str) or not parse_size(size)):
            chk.err(f"{pp}:size", f"{size!r} is not a size like 20G (or rest)")
        fs, drbd = spec.get("filesystem"), spec.get("drbd")
        if fs is not None and drbd is not None:
            chk.err(pp, "has both a filesystem and a DRBD resource")
        if fs is None and drbd is None:
            chk.err(pp, "needs a filesystem (ext4, xfs, swap) or a drbd resource")
        if fs is not None and fs not in ("ext4", "xfs", "swap"):
            chk.err(f"{pp}:filesystem", f"{fs!r} must be ext4, xfs or swap")
        mount = spec.get("mount")
        if mount is not None and (not isinstance(mount, str) or not mount.startswith("/")):
            chk.err(f"{pp}:mount", f"{mount!r} is not an absolute path")
        if fs == "swap" and mount is not None:
            chk.err(f"{pp}:mount", "swap is not mounted")
        elif fs is None and mount is not None:
            chk.err(f"{pp}:mount", "only a partition with a filesystem is mounted")
    _check_layout(chk, cfg, label, parts)


def _check_layout(chk, cfg, label, parts):
    """The rules of the layout as a whole (storage.py places the partitions)."""
    p = "trash:storage:partitions"
    numbers = sorted(n for n, s in parts.items() if isinstance(n, int) and not isinstance(n, bool)
                     and isinstance(s, dict))
    logicals = [n for n in numbers if n > 4] if label == "msdos" else []
    if logicals and logicals != list(range(5, 5 + len(logicals))):
        chk.err(p, f"msdos logical partitions are numbered 5, 6, ... without a gap, not "
                   f"{', '.join(map(str, logicals))}")
    # the partition at the end of the disk: the last logical, else the last primary
    last = (logicals or numbers or [None])[-1]
    for number in numbers:
        if parts[number].get("size") == "rest" and number != last:
            chk.err(f"{p}:{number}:size", f"only the partition at the end of the disk "
                                          f"({last}) may take the rest")
    if label == "msdos":
        total = sum(parse_size(parts[n]["size"]) or 0 for n in numbers
                    if isinstance(parts[n].get("size"), str))
        if total >= 2 << 40:
            chk.err(p, f"the partitions add up to {total >> 30} GiB; an msdos label addresses "
                       "less than 2 TiB (use label: gpt)")
    seen = {}
    shared = cfg["shared"].get("mountpoint") if isinstance(cfg.get("shared"), dict) else None
    for number in numbers:
        mount = parts[number].get("mount")
        if not isinstance(mount, str):
            continue
        key = mount.rstrip("/") or "/"
        if key in seen:
            chk.err(f"{p}:{number}:mount", f"{mount} is also the mount point of partition "
                                           f"{seen[key]}")
        seen[key] = number
        if isinstance(shared, str) and key == (shared.rstrip("/") or "/"):
            chk.err(f"{p}:{number}:mount", f"{mount} is trash:shared:mountpoint (GFS2)")


def _check_drbd(chk, cfg, nodes):
    p = "trash:drbd"
    dr = cfg["drbd"]
    chk.keys(dr, p, {"version", "protocol", "resync_rate", "after_sb_0pri", "after_sb_1pri",
                     "after_sb_2pri", "resources", "shared_secret", "initial_sync_source"})
    source = dr.get("initial_sync_source")
    if source is not None and not _known(source, nodes):
        chk.err(f"{p}:initial_sync_source", f"{source!r} is not a member of trash:nodes")
    if str(dr.get("version")) not in ("8.4", "9"):
        chk.err(f"{p}:version", f"{dr.get('version')!r} must be \"8.4\" or \"9\"")
    if dr.get("protocol") not in ("A", "B", "C"):
        chk.err(f"{p}:protocol", f"{dr.get('protocol')!r} must be A, B or C")
    if not isinstance(dr.get("resync_rate"), str) or parse_size(dr["resync_rate"]) is None:
        chk.err(f"{p}:resync_rate", f"{dr.get('resync_rate')!r} is not a rate like 100M")
    policies = {
        "after_sb_0pri": ("disconnect", "discard-younger-primary", "discard-older-primary",
                          "discard-zero-changes", "discard-least-changes"),
        "after_sb_1pri": ("disconnect", "consensus", "discard-secondary", "call-pri-lost-after-sb",
                          "violently-as0p"),
        "after_sb_2pri": ("disconnect", "call-pri-lost-after-sb", "violently-as0p"),
    }
    for key, allowed in policies.items():
        if dr.get(key) not in allowed:
            chk.err(f"{p}:{key}", f"{dr.get(key)!r} must be one of {', '.join(allowed)}")
    secret = chk.typed(dr.get("shared_secret"), f"{p}:shared_secret", str)
    # drbdadm 9 refuses more than 63 characters; a quote or backslash breaks the quoted
    # string, and either way drbdadm's message would quote part of the secret
    if secret is not None and (not 1 <= len(secret) <= 63
                               or re.search(r'["\\\x00-\x1f]', secret)):
        chk.err(f"{p}:shared_secret", "must be 1-63 characters without quotes, backslashes "
                                      "or control characters")
    resources = chk.typed(dr.get("resources"), f"{p}:resources", dict) or {}
    parts = cfg["storage"].get("partitions") if isinstance(cfg["storage"].get("partitions"), dict) else {}
    minors, ports, used_parts = {}, {}, {}
    for name, res in resources.items():
        rp = f"{p}:resources:{name}"
        chk.name(name, rp, _ID, "a DRBD resource name")
        if chk.typed(res, rp, dict) is None:
            continue
        chk.keys(res, rp, DRBD_KEYS)
        for key, table, low, high in (("minor", minors, 0, 255), ("port", ports, 1, 65535)):
            value = chk.integer(res.get(key), f"{rp}:{key}", low, high)
            if value is not None:
                if value in table:
                    chk.err(f"{rp}:{key}", f"{key} {value} is also used by {table[value]}")
                table[value] = name
        part = chk.integer(res.get("partition"), f"{rp}:partition", 1, 128)
        if part is not None:
            if part in used_parts:
                chk.err(f"{rp}:partition", f"partition {part} is also the backing device of "
                                           f"{used_parts[part]}")
            used_parts[part] = name
            spec = parts.get(part)
            if not isinstance(spec, dict):
                chk.err(f"{rp}:partition", f"partition {part} is missing from trash:storage:partitions")
            elif spec.get("drbd") != name:
                chk.err(f"{rp}:partition", f"trash:storage:partitions:{part} must say drbd: {name}")
        dual = chk.typed(res.get("dual_primary", False), f"{rp}:dual_primary", bool)
        home = res.get("home")
        if dual is False and home is None:
            chk.err(f"{rp}:home", "missing: a single-primary resource needs a home node")
        elif home is not None and not _known(home, nodes):
            chk.err(f"{rp}:home", f"{home!r} is not a member of trash:nodes")
        if dual and home is not None:
            chk.err(f"{rp}:home", "a dual-primary resource is primary on both nodes and has no home")
    for number, spec in parts.items():
        if isinstance(spec, dict) and spec.get("drbd") is not None \
                and not _known(spec["drbd"], resources):
            chk.err(f"trash:storage:partitions:{number}:drbd",
                    f"{spec['drbd']!r} is not a resource in trash:drbd:resources")


def _check_shared_and_vgs(chk, cfg, nodes):
    resources = cfg["drbd"].get("resources") if isinstance(cfg["drbd"].get("resources"), dict) else {}
    sh = cfg["shared"]
    p = "trash:shared"
    chk.keys(sh, p, {"drbd", "mountpoint", "fstype", "options"})
    res = sh.get("drbd")
    if res is None:
        chk.err(f"{p}:drbd", "missing: the dual-primary DRBD resource that carries GFS2 (R10)")
    elif not _known(res, resources):
        chk.err(f"{p}:drbd", f"{res!r} is not a resource in trash:drbd:resources")
    elif not (isinstance(resources[res], dict) and resources[res].get("dual_primary") is True):
        chk.err(f"{p}:drbd", f"{res} must have dual_primary: true for GFS2 on both nodes")
    mp = sh.get("mountpoint")
    if not isinstance(mp, str) or not mp.startswith("/"):
        chk.err(f"{p}:mountpoint", f"{mp!r} is not an absolute path")
    chk.typed(sh.get("options"), f"{p}:options", str)
    if sh.get("fstype") != "gfs2":
        chk.err(f"{p}:fstype", "must be gfs2: only a cluster filesystem may be mounted on both nodes")
    vgs = chk.typed(cfg["volume_groups"], "trash:volume_groups", dict) or {}
    users = {res: "trash:shared"} if _known(res, resources) else {}
    for name, vg in vgs.items():
        vp = f"trash:volume_groups:{name}"
        chk.name(name, vp, _ID, "a volume group name")
        if chk.typed(vg, vp, dict) is None:
            continue
        chk.keys(vg, vp, VG_KEYS)
        r = vg.get("drbd")
        if not _known(r, resources):
            chk.err(f"{vp}:drbd", f"{r!r} is not a resource in trash:drbd:resources")
        else:
            if r in users:
                chk.err(f"{vp}:drbd", f"{r} is already used by {users[r]}")
            users[r] = vp
            if isinstance(resources[r], dict) and resources[r].get("dual_primary"):
                chk.err(f"{vp}:drbd", f"{r} is dual-primary; a volume group is active on one node")
            elif isinstance(resources[r], dict) and vg.get("home") != resources[r].get("home"):
                chk.err(f"{vp}:home", f"must equal the home of {r} ({resources[r].get('home')!r})")
        if not _known(vg.get("home"), nodes):
            chk.err(f"{vp}:home", f"{vg.get('home')!r} is not a member of trash:nodes")


def _check_guests(chk, cfg, nodes, bridges):
    defaults = cfg["guest_defaults"]
    chk.keys(defaults, "trash:guest_defaults", {"vcpus", "memory", "disk_size", "storage",
                                                "failover", "networks", "description",
                                                "domain_type", "stop", "kernel"})
    guests = chk.typed(cfg["guests"], "trash:guests", dict) or {}
    vgs = cfg["volume_groups"] if isinstance(cfg["volume_groups"], dict) else {}
    homes = {vg.get("home") for vg in vgs.values()
             if isinstance(vg, dict) and isinstance(vg.get("home"), str)}
    for name, spec in guests.items():
        gp = f"trash:guests:{name}"
        chk.name(name, gp, what="a guest name")
        if chk.typed(spec, gp, dict) is None:
            continue
        chk.keys(spec, gp, set(defaults) | {"home"})
        g = merge(defaults, spec)
        home = g.get("home")
        if home is None:
            chk.err(f"{gp}:home", "missing: the node the guest runs on")
        elif not _known(home, nodes):
            chk.err(f"{gp}:home", f"{home!r} is not a member of trash:nodes")
        chk.integer(g.get("vcpus"), f"{gp}:vcpus", 1, 256)
        chk.integer(g.get("memory"), f"{gp}:memory", 64, 4 << 20)
        chk.typed(g.get("description"), f"{gp}:description", str)
        if not isinstance(g.get("disk_size"), str) or parse_size(g["disk_size"]) is None:
            chk.err(f"{gp}:disk_size", f"{g.get('disk_size')!r} is not a size like 20G")
        failover = chk.typed(g.get("failover"), f"{gp}:failover", bool)
        storage = g.get("storage")
        if storage not in ("cluster", "local"):
            chk.err(f"{gp}:storage", f"{storage!r} must be cluster (a logical volume in the home "
                                     f"node's volume group) or local (/local, no failover)")
        if storage == "local" and failover:
            chk.err(f"{gp}:failover", "a guest on /local storage cannot fail over (R15); "
                                      "use storage: cluster or failover: false")
        if storage == "cluster" and _known(home, nodes) and home not in homes:
            chk.err(f"{gp}:home", f"{home} has no volume group in trash:volume_groups for "
                                  f"cluster storage")
        if g.get("domain_type") not in ("kvm", "qemu"):
            chk.err(f"{gp}:domain_type", f"{g.get('domain_type')!r} must be kvm or qemu")
        if g.get("stop") not in ("shutdown", "destroy"):
            chk.err(f"{gp}:stop", f"{g.get('stop')!r} must be shutdown or destroy")
        kernel = g.get("kernel")
        if kernel is not None and not (isinstance(kernel, str) and kernel.startswith("/")):
            chk.err(f"{gp}:kernel", f"{kernel!r} must be an absolute path on the nodes, or null")
        nets = chk.typed(g.get("networks"), f"{gp}:networks", list)
        for i, net in enumerate(nets or ()):
            if not _known(net, bridges):
                chk.err(f"{gp}:networks:{i}", f"{net!r} is not a bridge (known: "
                                              f"{', '.join(sorted(bridges))})")


def _check_notify(chk, cfg):
    p = "trash:notify"
    no = cfg["notify"]
    chk.keys(no, p, {"email", "webhook", "rate_limit"})
    chk.integer(no.get("rate_limit"), f"{p}:rate_limit", 0, 86400)
    email = no.get("email")
    if email is not None and chk.typed(email, f"{p}:email", dict) is not None:
        chk.keys(email, f"{p}:email", {"to", "from", "smtp_host", "smtp_port"})
        to = chk.typed(email.get("to"), f"{p}:email:to", list)
        if to is not None and (not to or not all(isinstance(a, str) and "@" in a for a in to)):
            chk.err(f"{p}:email:to", "must be a list of mail addresses")
        chk.typed(email.get("from"), f"{p}:email:from", str)
        chk.typed(email.get("smtp_host"), f"{p}:email:smtp_host", str)
        chk.integer(email.get("smtp_port", 25), f"{p}:email:smtp_port", 1, 65535)
    hook = no.get("webhook")
    if hook is not None and chk.typed(hook, f"{p}:webhook", dict) is not None:
        chk.keys(hook, f"{p}:webhook", {"url"})
        url = chk.typed(hook.get("url"), f"{p}:webhook:url", str)
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            chk.err(f"{p}:webhook:url", f"{url!r} is not an http(s) URL")


def _check_salt(chk, cfg, nodes):
    chk.keys(cfg["salt"], "trash:salt", {"masters", "beacon_interval"})
    chk.integer(cfg["salt"].get("beacon_interval"), "trash:salt:beacon_interval", 1, 3600)
    masters = cfg["salt"].get("masters")
    if masters == "all":
        return
    if not isinstance(masters, list) or not masters:
        chk.err("trash:salt:masters", "must be all or a list of node names")
        return
    for i, m in enumerate(masters):
        if not _known(m, nodes):
            chk.err(f"trash:salt:masters:{i}", f"{m!r} is not a member of trash:nodes")


def _sources(chk, value, path):
    """A non-empty list of IPv4/IPv6 addresses or networks (host bits zero)."""
    sources = chk.typed(value, path, list)
    if sources is not None and not sources:
        chk.err(path, "is empty: name the addresses or networks that may connect")
    for i, source in enumerate(sources or ()):
        try:
            if not isinstance(source, str):
                raise TypeError("not a string")
            ipaddress.ip_network(source)
        except (TypeError, ValueError) as exc:
            chk.err(f"{path}:{i}", f"{source!r} is not an address or network ({exc})")


def _check_firewall(chk, cfg):
    p = "trash:firewall"
    fw = cfg["firewall"]
    chk.keys(fw, p, {"ssh_sources", "ssh_port", "internet_allow", "libvirt_tls"})
    if chk.typed(fw.get("ssh_sources"), f"{p}:ssh_sources", list) not in (None, []):
        _sources(chk, fw["ssh_sources"], f"{p}:ssh_sources")
    chk.integer(fw.get("ssh_port"), f"{p}:ssh_port", 1, 65535)
    chk.typed(fw.get("libvirt_tls"), f"{p}:libvirt_tls", bool)
    allow = chk.typed(fw.get("internet_allow"), f"{p}:internet_allow", dict) or {}
    for name, spec in allow.items():
        ap = f"{p}:internet_allow:{name}"
        chk.name(name, ap, _ID, "a service name")
        if chk.typed(spec, ap, dict) is None:
            continue
        chk.keys(spec, ap, {"port", "protocol", "sources"})
        chk.integer(spec.get("port"), f"{ap}:port", 1, 65535)
        if spec.get("protocol") not in ("tcp", "udp"):
            chk.err(f"{ap}:protocol", f"{spec.get('protocol')!r} must be tcp or udp")
        _sources(chk, spec.get("sources"), f"{ap}:sources")


def _check_packages(chk, cfg):
    packages = chk.typed(cfg["packages"], "trash:packages", list)
    for i, name in enumerate(packages or ()):
        if not isinstance(name, str) or not re.match(r"^[a-z0-9][a-z0-9+.-]+$", name):
            chk.err(f"trash:packages:{i}", f"{name!r} is not a Debian package name")


def _check_ntp(chk, cfg):
    p = "trash:ntp"
    chk.keys(cfg["ntp"], p, {"servers"})
    servers = chk.typed(cfg["ntp"].get("servers"), f"{p}:servers", list)
    for i, server in enumerate(servers or ()):
        if not isinstance(server, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9.:-]*$", server):
            chk.err(f"{p}:servers:{i}", f"{server!r} is not a host name or address")


def _normalise(cfg):
    """Add what every renderer derives, so that it is derived once."""
    names = sorted(cfg["nodes"])
    for name in names:
        node = cfg["nodes"][name]
        node["name"] = name
        node["peer"] = next((n for n in names if n != name), None)
        node["fqdn"] = f"{name}.{cfg['cluster']['domain']}" if cfg["cluster"]["domain"] else name
        node["ip"] = {z: str(ipaddress.ip_interface(a).ip) for z, a in node["addresses"].items()}
        node["bmc"].setdefault("port", 623)
        node.setdefault("raid", None)
    cfg["cluster"]["nodes"] = names
    if cfg["salt"]["masters"] == "all":
        cfg["salt"]["masters"] = names
    cfg["network"]["vlans"] = {int(v): spec for v, spec in cfg["network"]["vlans"].items()}
    for name, res in cfg["drbd"]["resources"].items():
        res.setdefault("dual_primary", False)
        res.setdefault("home", None)
        res["name"] = name
        res["device"] = f"/dev/drbd{res['minor']}"
    vg_of_home = {}
    for name, vg in cfg["volume_groups"].items():
        vg["name"] = name
        vg_of_home.setdefault(vg["home"], name)
    for name, spec in list(cfg["guests"].items()):
        g = merge(cfg["guest_defaults"], spec)
        g["name"] = name
        if g["storage"] == "cluster":
            g["vg"] = vg_of_home[g["home"]]
            g["disk"] = f"/dev/{g['vg']}/{name}"
            g["xml"] = f"{cfg['shared']['mountpoint']}/guests/{name}.xml"
        else:
            g["vg"] = None
            g["disk"] = f"/local/guests/{name}.img"
            g["xml"] = f"/local/guests/{name}.xml"
        cfg["guests"][name] = g
    return cfg


def redact(cfg):
    """A copy of the configuration with every secret replaced, safe to print."""
    out = copy.deepcopy(cfg)
    if out["cluster"].get("authkey") is not None:
        out["cluster"]["authkey"] = SECRET
    if out["drbd"].get("shared_secret") is not None:
        out["drbd"]["shared_secret"] = SECRET
    for node in out["nodes"].values():
        if isinstance(node, dict) and isinstance(node.get("bmc"), dict) and "password" in node["bmc"]:
            node["bmc"]["password"] = SECRET
    return out
