"""The node's software RAID array (``trash:nodes:<node>:raid``): pure functions.

``plan(want, array, members)`` decides from what mdadm, sysfs and blkid report whether
the array is there, may be assembled from members that already carry its superblocks,
may be created on members that hold nothing at all, or must be left to a person; and
``conf_plan`` whether mdadm.conf names it, so that every boot assembles it under the
pillar's name. The module ``trash_storage`` runs the tools.

Nothing here ever adds, removes or replaces a member of an existing array: a degraded
array is reported with the command that repairs it.
"""

import re
from dataclasses import dataclass

CONF = "/etc/mdadm/mdadm.conf"


@dataclass(frozen=True)
class Want:
    device: str  # /dev/mdN
    level: int
    members: tuple  # as the pillar names them


@dataclass(frozen=True)
class Array:
    """The md device as the kernel and ``mdadm --detail --export`` report it."""

    state: str  # md/array_state: clean, active, inactive, …
    level: str = None  # raid1
    uuid: str = None
    raid_devices: int = None
    members: tuple = ()  # kernel paths of the members present (/dev/vdb)
    degraded: int = 0  # md/degraded: members missing
    sync: str = "idle"  # md/sync_action: resync, recover, check, idle


@dataclass(frozen=True)
class Member:
    """What one member device holds: its kernel path, the devices built on it (holders
    in sysfs), its md superblock (``mdadm --examine --export``) and blkid's signature."""

    real: str = None  # None: the path does not exist
    holders: tuple = ()
    superblock: dict = None
    signature: dict = None


@dataclass(frozen=True)
class Plan:
    action: str = None  # None (present), "create" or "assemble"
    refusals: tuple = ()
    notes: tuple = ()
    command: tuple = ()


def wanted(cfg, node):
    """The array of ``node``, None when its disk is not a software RAID of the formula."""
    spec = cfg["nodes"][node].get("raid")
    if not spec:
        return None
    return Want(cfg["nodes"][node]["disk"], spec["level"], tuple(spec["members"]))


def parse_export(text):
    """KEY=VALUE lines (``mdadm --export``, ``blkid -o export``) as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def detail_members(detail):
    """The member device paths in ``mdadm --detail --export`` (MD_DEVICE_<name>_DEV)."""
    return tuple(sorted(v for k, v in detail.items()
                        if k.startswith("MD_DEVICE_") and k.endswith("_DEV")))


def norm_uuid(text):
    """mdadm writes UUIDs as 4 groups with colons, blkid as 5 with dashes: compare bare."""
    return re.sub(r"[^0-9a-f]", "", (text or "").lower())


def create_command(want):
    return ("mdadm", "--create", want.device, "--run", "--metadata=1.2",
            f"--level={want.level}", f"--raid-devices={len(want.members)}", *want.members)


def assemble_command(want):
    return ("mdadm", "--assemble", want.device, *want.members)


def describe(want):
    return f"{want.device}: RAID {want.level} of {', '.join(want.members)}"


def health(want, array, real):
    """Notes on a running array: missing members and resync progress; ``real`` maps
    each pillar member to its kernel path."""
    notes = []
    if array.degraded:
        missing = [m for m in want.members if real.get(m) not in array.members]
        notes.append(f"{want.device} is degraded: {array.degraded} of {array.raid_devices} "
                     f"member(s) missing ({', '.join(missing) or 'unknown'}); once the disk "
                     f"is replaced: mdadm {want.device} --add <disk>")
    if array.sync not in ("idle", "frozen"):
        notes.append(f"{want.device}: {array.sync} in progress (cat /proc/mdstat)")
    return tuple(notes)


def plan(want, array, members):
    """The Plan for ``want``: ``array`` is the md device's Array (None when the kernel
    has no such device), ``members`` {pillar path: Member} with real paths resolved."""
    level = f"raid{want.level}"
    if array is not None and array.state not in ("clear", "inactive"):
        refusals = []
        if array.level != level:
            refusals.append(f"{want.device} is {array.level}, the pillar says {level}")
        have = set(array.members)
        real = {members[m].real for m in want.members if members[m].real}
        foreign = sorted(have - real)
        if foreign:
            refusals.append(f"{want.device} holds {', '.join(foreign)}, which "
                            f"trash:nodes:…:raid:members does not name")
        if refusals:
            return Plan(refusals=tuple(refusals) + (
                "the array is left as it is: correct the pillar, or the array by hand",))
        return Plan(notes=health(want, array, {m: members[m].real for m in want.members}))
    if array is not None and array.state == "inactive":
        return Plan(refusals=(
            f"{want.device} is assembled but not started (inactive): a member is missing "
            f"or stale; see mdadm --detail {want.device}, and once the cause is known start "
            f"it by hand (mdadm --run {want.device})",))
    refusals = []
    for path in want.members:
        m = members[path]
        if m.real is None:
            refusals.append(f"{path} does not exist")
        elif m.holders:
            refusals.append(f"{path} is in use by {', '.join(m.holders)}")
    if refusals:
        return Plan(refusals=tuple(refusals))
    blocks = {p: members[p].superblock for p in want.members}
    if all(blocks.values()):
        kinds = {(norm_uuid(b.get("MD_UUID")), b.get("MD_LEVEL"), b.get("MD_DEVICES"))
                 for b in blocks.values()}
        block = next(iter(blocks.values()))
        if len(kinds) == 1 and block.get("MD_LEVEL") == level \
                and block.get("MD_DEVICES") == str(len(want.members)):
            return Plan("assemble", notes=(
                f"the members carry the superblocks of one {level} array "
                f"(UUID {block.get('MD_UUID')}): assembling it, nothing is written",),
                command=assemble_command(want))
        return Plan(refusals=tuple(
            f"{p} carries the superblock of a {b.get('MD_LEVEL')} array of "
            f"{b.get('MD_DEVICES')} device(s), UUID {b.get('MD_UUID')}"
            for p, b in blocks.items()) + (
            f"they do not make up the pillar's {level} of {len(want.members)}: nothing "
            "is assembled or created",))
    for path in want.members:
        m = members[path]
        if m.superblock:
            refusals.append(f"{path} carries an md superblock (UUID "
                            f"{m.superblock.get('MD_UUID')}) but the other members do not")
        elif m.signature:
            found = m.signature.get("TYPE") or m.signature.get("PTTYPE") or "a signature"
            kind = "a partition table" if "PTTYPE" in m.signature and "TYPE" not in m.signature \
                else "a signature"
            refusals.append(f"{path} holds {kind} ({found})")
    if refusals:
        return Plan(refusals=tuple(refusals) + (
            "an array is created only on members that hold nothing at all: nothing was "
            "changed; wipe a member by hand (wipefs) only if its data is not needed",))
    return Plan("create", command=create_command(want))


def parse_conf(text):
    """The ARRAY lines of mdadm.conf: [(device, {key: value})], continuations joined."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if raw[:1].isspace() and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line.strip())
    arrays = []
    for line in lines:
        words = line.split()
        if words[0].upper() != "ARRAY":
            continue
        device = words[1] if len(words) > 1 and "=" not in words[1] else None
        keys = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        arrays.append((device, {k.lower(): v for k, v in keys.items()}))
    return arrays


def conf_line(want, uuid):
    return f"ARRAY {want.device} metadata=1.2 UUID={uuid}"


def conf_plan(want, uuid, text):
    """(line to append or None, refusal or None) for mdadm.conf holding ``text``."""
    for device, keys in parse_conf(text):
        same_uuid = norm_uuid(keys.get("uuid")) == norm_uuid(uuid)
        if same_uuid and device == want.device:
            return None, None
        if same_uuid or device == want.device:
            return None, (f"{CONF} has 'ARRAY {device} … UUID={keys.get('uuid')}' for "
                          f"{want.device} (UUID {uuid}): correct the line by hand, then "
                          f"update-initramfs -u")
    return conf_line(want, uuid), None


def parse_mdstat(text):
    """/proc/mdstat: {md name: {"level", "members": [..], "status": "[UU]", "sync": text}}."""
    arrays = {}
    current = None
    for line in text.splitlines():
        head = re.match(r"^(md\S+) : (\S+)(?: \((?:auto-)?read-only\))?\s*(\S*)\s*(.*)$", line)
        if head:
            name, state, level, rest = head.groups()
            if not level.startswith("raid"):
                level, rest = None, f"{level} {rest}".strip()
            current = arrays[name] = {
                "state": state, "level": level, "status": None, "sync": None,
                "members": sorted(re.sub(r"\[\d+\].*$", "", w) for w in rest.split())}
            continue
        if current is None:
            continue
        status = re.search(r"\[(\d+)/(\d+)\] \[([U_]+)\]", line)
        if status:
            current["status"] = status.group(3)
        sync = re.search(r"(resync|recovery|check|reshape|repair)\s*=\s*(\S+)", line)
        if sync:
            current["sync"] = f"{sync.group(1)} {sync.group(2)}"
        if not line.strip():
            current = None
    return arrays
