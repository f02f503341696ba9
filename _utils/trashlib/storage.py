"""The partition layout, filesystems and mounts of a node's RAID array: pure functions.

``wanted(cfg, node)`` is the layout the pillar asks for; ``parse_sfdisk_json`` reads
what the disk holds; ``plan(layout, disk, probes)`` says which partitions to create,
or why nothing may be done. The module ``trash_storage`` runs the tools.

Rules (docs/pillar.md, ``trash:storage``):

- Partitions lie on the disk in this order, each starting on a 1 MiB boundary:
  GPT: by number (1, 2, 4, 5, …; a number without an entry leaves no gap).
  msdos: the primaries 1, 2 and 4 by number, then the extended partition 3 up to
  the end of the disk, holding the logicals 5, 6, … by number, each behind its
  extended boot record (1 MiB apart). Partition 4 is a primary before the extended
  one, so the design document's numbers stay valid in an MBR.
- A partition that exists must have the wanted number, type and size (exact, in
  bytes) and lie in that order; anything else is refused. Nothing existing is ever
  changed or deleted: the plan only appends missing partitions, into space that holds
  no signature.
"""

import json
import re
from dataclasses import dataclass, field

from trashlib import model

ALIGN_BYTES = 1 << 20
EXTENDED = 3
LABELS = {"gpt": "gpt", "msdos": "dos"}
TYPES = {
    "gpt": {"linux": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "swap": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"},
    "dos": {"linux": "83", "swap": "82", "extended": "5"},
}
TYPE_NAMES = {"linux": "Linux filesystem", "swap": "Linux swap", "extended": "extended"}
# an existing extended partition may carry any of the extended types
DOS_EXTENDED = {"5", "f", "85"}
# the GPT partition entry array (128 entries of 128 bytes) at each end of the disk
GPT_ENTRIES_BYTES = 128 * 128


@dataclass(frozen=True)
class Want:
    """A partition the pillar asks for; ``size`` in bytes, None for the rest of the disk."""

    number: int
    size: int
    kind: str  # linux, swap, extended
    role: str
    logical: bool = False
    filesystem: str = None
    mount: str = None


@dataclass(frozen=True)
class Layout:
    label: str  # gpt or dos, as sfdisk names it
    disk: str
    partitions: tuple  # of Want, in disk order


@dataclass(frozen=True)
class Part:
    """A partition entry in sectors, as sfdisk reads or writes it."""

    number: int
    start: int
    size: int
    type: str


@dataclass(frozen=True)
class Table:
    label: str
    sector_size: int
    first_lba: int = None
    last_lba: int = None
    partitions: dict = field(default_factory=dict)  # number -> Part


@dataclass(frozen=True)
class Disk:
    """What a disk holds: its size, sector size, partition table (or None) and, when it
    has no table sfdisk reads, the signature blkid finds on the whole device."""

    device: str
    size: int  # bytes
    sector_size: int
    table: Table = None
    signature: dict = None


@dataclass(frozen=True)
class Plan:
    create: tuple = ()  # of Part, in the order sfdisk gets them
    present: tuple = ()  # numbers that exist and match
    refusals: tuple = ()
    new_table: bool = False  # the disk has no table: the script writes one

    def regions(self, sector_size):
        """{number: (offset, size)} in bytes of every partition to create (for probing)."""
        return {p.number: (p.start * sector_size, p.size * sector_size) for p in self.create}


def partition_device(disk, number):
    """/dev/sda + 5 -> /dev/sda5; /dev/md0 + 5 -> /dev/md0p5 (the kernel's naming)."""
    return f"{disk}{'p' if disk[-1].isdigit() else ''}{number}"


def _role(number, spec):
    if spec.get("drbd"):
        return f"DRBD {spec['drbd']}"
    if spec.get("filesystem") == "swap":
        return "swap"
    return f"{spec.get('filesystem')} {spec.get('mount') or '(not mounted)'}"


def wanted(cfg, node):
    """The layout of ``node``'s disk from the (validated) model."""
    st = cfg["storage"]
    label = LABELS[st["label"]]
    wants = []
    for number in sorted(st["partitions"]):
        spec = st["partitions"][number]
        size = None if spec["size"] == "rest" else model.parse_size(spec["size"])
        kind = "swap" if spec.get("filesystem") == "swap" else "linux"
        wants.append(Want(number, size, kind, _role(number, spec),
                          logical=label == "dos" and number > 4,
                          filesystem=spec.get("filesystem"), mount=spec.get("mount")))
    primaries = [w for w in wants if not w.logical]
    logicals = [w for w in wants if w.logical]
    if logicals:
        primaries.append(Want(EXTENDED, None, "extended", "extended (holds 5-)"))
    return Layout(label, cfg["nodes"][node]["disk"], tuple(primaries + logicals))


def parse_sfdisk_json(text):
    """``sfdisk --json`` output -> Table."""
    pt = json.loads(text)["partitiontable"]
    parts = {}
    for entry in pt.get("partitions", []):
        number = int(re.search(r"(\d+)$", entry["node"]).group(1))
        parts[number] = Part(number, int(entry["start"]), int(entry["size"]),
                             str(entry["type"]).upper() if pt["label"] == "gpt"
                             else str(entry["type"]).lower())
    return Table(pt["label"], int(pt.get("sectorsize", 512)), pt.get("firstlba"),
                 pt.get("lastlba"), parts)


def _new_usable(label, disk):
    ss = disk.sector_size
    total = disk.size // ss
    if label == "gpt":
        entries = -(-GPT_ENTRIES_BYTES // ss)
        return 2 + entries, total - 2 - entries
    return 1, total - 1


def _align(sector, align):
    return -(-sector // align) * align


def _describe(sig):
    return ", ".join(f"{k}={v}" for k, v in sorted(sig.items()))


def _bytes(sectors, ss):
    return f"{sectors * ss} bytes"


def plan(layout, disk, probes=None):
    """What to do on ``disk`` for ``layout``.

    ``probes`` maps the number of each partition to create to what blkid finds in its
    space (a dict, empty or None when nothing); without probes the space is not judged
    (the module probes ``Plan.regions`` and plans again).
    """
    ss = disk.sector_size
    align = max(1, ALIGN_BYTES // ss)
    table = disk.table
    refusals = []
    dev = disk.device
    if table is None:
        if disk.signature:
            what = _describe(disk.signature)
            return Plan(refusals=(
                f"{dev} has no partition table sfdisk can read but holds {what}; refusing to "
                "partition it. If its content is expendable, erase it yourself "
                f"(wipefs --all {dev}) and apply again; nothing was changed",))
        first, last = _new_usable(layout.label, disk)
        actual = {}
    else:
        if table.label != layout.label:
            return Plan(refusals=(
                f"{dev} has a {table.label} partition table, the pillar wants {layout.label} "
                "(trash:storage:label); refusing to replace a partition table, nothing was "
                "changed",))
        first, last = (table.first_lba, table.last_lba) if table.first_lba is not None \
            else (1, disk.size // ss - 1)
        actual = dict(table.partitions)
    if table is not None and table.sector_size != ss:
        refusals.append(f"{dev}: the table was written for {table.sector_size}-byte sectors, "
                        f"the disk has {ss}")
    numbers = {w.number for w in layout.partitions}
    for number in sorted(set(actual) - numbers):
        a = actual[number]
        refusals.append(f"{dev}: partition {number} (start {a.start}, "
                        f"{_bytes(a.size, ss)}, type {a.type}) is not in the pillar's layout; "
                        "refusing to work on a disk partitioned otherwise")
    types = TYPES[layout.label]
    create, present = [], []
    cursor = first
    ext_end = None  # exclusive end of the extended partition
    for w in layout.partitions:
        start_min = cursor + 1 if w.logical else cursor
        limit = ext_end if w.logical else last + 1
        a = actual.get(w.number)
        if a is not None:
            ok_types = DOS_EXTENDED if w.kind == "extended" else {types[w.kind]}
            problems = []
            if a.type not in ok_types:
                problems.append(f"type {a.type}, the pillar wants {types[w.kind]} "
                                f"({TYPE_NAMES[w.kind]})")
            if w.size is not None and a.size * ss != w.size:
                problems.append(f"size {a.size * ss} bytes, the pillar wants {w.size} bytes")
            if a.start < start_min or (limit is not None and a.start + a.size > limit):
                problems.append(f"start {a.start}: it lies out of order (the layout puts it "
                                f"at or after sector {start_min}"
                                + (" and inside the extended partition)" if w.logical else ")"))
            if problems:
                refusals.append(f"{dev}: partition {number_role(w)} exists with "
                                + "; ".join(problems)
                                + "; refusing to change an existing partition")
            present.append(w.number)
            if w.kind == "extended":
                cursor, ext_end = a.start, a.start + a.size
            else:
                cursor = a.start + a.size
            continue
        start = _align(start_min, align)
        if w.kind == "extended":
            size = last + 1 - start
        elif w.size is None:
            size = (limit if limit is not None else last + 1) - start
        elif w.size % ss:
            refusals.append(f"{dev}: partition {number_role(w)}: {w.size} bytes is not a "
                            f"multiple of the {ss}-byte sector")
            size = w.size // ss
        else:
            size = w.size // ss
        end = start + size
        if w.logical and ext_end is None:
            refusals.append(f"{dev}: partition {number_role(w)} needs the extended partition 3")
        elif size <= 0 or end > (limit if limit is not None else last + 1):
            room = max(0, (limit if limit is not None else last + 1) - start)
            refusals.append(f"{dev}: partition {number_role(w)} does not fit: it needs "
                            f"{_bytes(max(size, 0), ss)} from sector {start}, "
                            f"{_bytes(room, ss)} remain")
        for b in actual.values():
            if b.number != w.number and not (w.kind == "extended" and b.number > 4) \
                    and not (b.number == EXTENDED and w.logical) \
                    and b.start < end and start < b.start + b.size:
                refusals.append(f"{dev}: partition {number_role(w)} (sectors {start}-{end - 1}) "
                                f"would overlap the existing partition {b.number}")
        sig = (probes or {}).get(w.number)
        if sig:
            refusals.append(
                f"{dev}: the space of partition {number_role(w)} (sectors {start}-{end - 1}) "
                f"holds {_describe(sig)}; refusing to create a partition over it. If its "
                f"content is expendable, erase it yourself (wipefs --all --offset "
                f"{start * ss} {dev} wipes the signature) and apply again; nothing was changed")
        create.append(Part(w.number, start, size, types[w.kind]))
        if w.kind == "extended":
            cursor, ext_end = start, end
        else:
            cursor = end
    if refusals:
        return Plan(refusals=tuple(refusals))
    return Plan(tuple(create), tuple(present), (), table is None)


def number_role(want):
    return f"{want.number} ({want.role})"


def script(layout, plan_):
    """The sfdisk script for ``plan_``: a new table, or lines for ``sfdisk --append``."""
    lines = [f"label: {layout.label}", ""] if plan_.new_table else []
    for p in plan_.create:
        size = "" if p.number == EXTENDED and layout.label == "dos" else f", size={p.size}"
        lines.append(f"{partition_device(layout.disk, p.number)} : start={p.start}{size}, "
                     f"type={p.type}")
    return "\n".join(lines) + "\n"


def describe_part(layout, part, sector_size):
    want = next(w for w in layout.partitions if w.number == part.number)
    return (f"{part.size * sector_size} bytes at sector {part.start}, "
            f"{TYPE_NAMES[want.kind]}: {want.role}")


# ---- filesystems and mounts ------------------------------------------------------------


def filesystems(layout):
    """[(number, filesystem)] of every partition that carries one."""
    return [(w.number, w.filesystem) for w in sorted(layout.partitions, key=lambda w: w.number)
            if w.filesystem]


def mounts(layout):
    """[(number, filesystem, mount point)] in mount order (parents first); swap has mount None."""
    out = [(w.number, w.filesystem, w.mount) for w in layout.partitions
           if w.filesystem and (w.mount or w.filesystem == "swap")]
    return sorted(out, key=lambda m: (m[2] is None, (m[2] or "").rstrip("/").count("/"),
                                      m[2] or "", m[0]))


@dataclass(frozen=True)
class FstabEntry:
    spec: str
    file: str
    vfstype: str
    options: str = "defaults"
    freq: str = "0"
    passno: str = "0"

    def line(self):
        spec, file = (f.replace(" ", "\\040") for f in (self.spec, self.file))
        return f"{spec}\t{file}\t{self.vfstype}\t{self.options}\t{self.freq}\t{self.passno}"


def parse_fstab(text):
    """fstab text -> [FstabEntry] (comments and blank lines skipped, \\040 decoded)."""
    out = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 3:
            continue
        fields = [f.replace("\\040", " ") for f in fields]
        out.append(FstabEntry(*fields[:6]))
    return out


def fstab_entry(filesystem, mount, uuid):
    """The line the formula writes for a partition."""
    if filesystem == "swap":
        return FstabEntry(f"UUID={uuid}", "none", "swap", "sw", "0", "0")
    return FstabEntry(f"UUID={uuid}", mount, filesystem, "defaults", "0",
                      "1" if mount == "/" else "2")


def fstab_plan(wanted_mounts, entries):
    """Which fstab lines to add, or why not.

    ``wanted_mounts``: [(number, filesystem, mount, names)] where ``names`` is every
    spelling of the partition an fstab may use (its path, UUID=…, PARTUUID=…, …).
    An existing entry for the mount point (for swap: naming the partition) is accepted
    as it is when it names the partition and the filesystem; naming anything else is
    refused.
    """
    add, present, refusals = [], [], []
    for number, fs, mount, names in wanted_mounts:
        if fs == "swap":
            mine = [e for e in entries if e.spec in names]
            if any(e.vfstype != "swap" for e in mine):
                refusals.append(f"partition {number} (swap) appears in fstab as "
                                + ", ".join(f"{e.file} {e.vfstype}" for e in mine))
            elif mine:
                present.append(number)
            else:
                add.append(number)
            continue
        same = [e for e in entries if e.file.rstrip("/") == mount.rstrip("/")
                or e.file == mount]
        if not same:
            add.append(number)
            continue
        wrong = [e for e in same if e.spec not in names or e.vfstype != fs]
        if wrong:
            refusals.append(f"{mount}: fstab mounts "
                            + ", ".join(f"{e.spec} ({e.vfstype})" for e in wrong)
                            + f" there, the pillar wants partition {number} ({fs}); refusing "
                            "to change it")
        else:
            present.append(number)
    return add, present, refusals
