"""The guests' disks (R14, R15): pure planning; the module ``trash_disks`` runs the tools.

``wanted(cfg, node)`` lists the disks a node may have to create: the logical volume of every
cluster guest (``/dev/<vg>/<guest>``; created wherever Pacemaker has activated that VG) and
the raw image of every /local guest whose home is the node. ``parse_lvs`` and ``parse_vgs``
read LVM's JSON reports; ``plan`` says what to create, what stays as it is, and why nothing
may be done.

Rules (docs/pillar.md, ``disk_size``):

- A disk is created only when missing. An existing one is never resized or removed: one
  smaller than ``disk_size`` is reported with the command that grows it by hand, a larger one
  is fine. A disk that belongs to no guest of the pillar is named, never touched.
- An LV is created only in a VG that is *active on this node*: visible, shared (lock type
  dlm: Pacemaker's LVM-activate with ``vg_access_mode=lvmlockd`` accepts no other) and holding
  an LV with a device-mapper device here. That is what LVM-activate's monitor calls running
  (it counts the VG's device-mapper devices); its start runs ``vgchange --lockstart`` and
  ``lvchange -aey`` on the VG, so where it runs the lockspace is started. Elsewhere the VG's
  LVs are left to the node where it is active.
- A VG without any LV is never active: LVM-activate refuses to start it ("doesn't contain any
  logical volume", resource-agents 4.12). Its first LV is made by hand; the plan says how.
- Refused, creating nothing at all: an image path that holds something else than a file, a
  VG of another lock type, a VG without room for the LVs it lacks, and a guest whose disk
  would be created while its data sits in another place of the same node (its home or
  storage changed: an empty disk must not silently replace it).
"""

import json
from dataclasses import dataclass

from trashlib import cib, model

LOCK_TYPE = "dlm"
# the reports ``parse_lvs`` and ``parse_vgs`` read (sizes in bytes)
LVS = ["lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
       "-o", "lv_name,vg_name,lv_size,lv_attr"]
VGS = ["vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
       "-o", "vg_name,vg_lock_type,vg_extent_size,vg_free,lv_count"]
UNITS = (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10))
# lv_attr's 5th character (the state) that says no device-mapper device exists for the LV
# on this node: "-" inactive, "X" unknown (LVM cannot ask the kernel), "h" historical
UNMAPPED = "-Xh"


@dataclass(frozen=True)
class Disk:
    """A disk the pillar asks for; ``size`` in bytes (``disk_size``)."""

    guest: str
    kind: str  # "lv" or "image"
    path: str  # /dev/<vg>/<guest> or /local/guests/<guest>.img (as the model names it)
    size: int
    vg: str = None


@dataclass(frozen=True)
class LV:
    name: str
    vg: str
    size: int  # bytes
    attr: str

    @property
    def mapped(self):
        """A device-mapper device exists for it on this node (active, suspended, …)."""
        return len(self.attr) > 4 and self.attr[4] not in UNMAPPED


@dataclass(frozen=True)
class VG:
    name: str
    lock_type: str  # "" for none
    extent_size: int
    free: int  # bytes
    lv_count: int


@dataclass(frozen=True)
class File:
    """What the path of an image holds: ``missing``, a ``file`` of ``size`` bytes, or
    ``other`` (``what`` says what)."""

    kind: str
    size: int = 0
    what: str = ""


@dataclass(frozen=True)
class Plan:
    create: tuple = ()  # of (Disk, size in bytes it gets)
    present: tuple = ()  # of (Disk, its size)
    problems: tuple = ()  # the state fails, but creates what it can
    refusals: tuple = ()  # nothing is created
    notes: tuple = ()


def human(size):
    """Bytes in the pillar's notation when exact (``40G``, ``64M``), else in bytes."""
    for unit, factor in UNITS:
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size} bytes"


def describe(disk, size):
    kind = "logical volume" if disk.kind == "lv" else "sparse raw image"
    return f"{disk.path} {human(size)} ({kind})"


def wanted(cfg, node):
    """The disks ``node`` may have to create, by guest name (from the validated model)."""
    out = []
    for name in sorted(cfg["guests"]):
        g = cfg["guests"][name]
        size = model.parse_size(g["disk_size"])
        if g["storage"] == "cluster":
            out.append(Disk(name, "lv", g["disk"], size, g["vg"]))
        elif g["home"] == node:
            out.append(Disk(name, "image", g["disk"], size))
    return tuple(out)


def _rows(text, kind):
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the {kind}s report is not JSON: {exc}") from None
    rows = []
    for section in data.get("report", []):
        rows += section.get(kind, [])
    return rows


def _bytes(text):
    # --units b --nosuffix: whole bytes; a "B" or decimals are tolerated all the same
    return int(float(str(text).strip().rstrip("Bb") or 0))


def parse_lvs(text):
    """[LV] of the report of ``LVS``."""
    return [LV(r["lv_name"], r["vg_name"], _bytes(r["lv_size"]), r["lv_attr"])
            for r in _rows(text, "lv")]


def parse_vgs(text):
    """{name: VG} of the report of ``VGS``."""
    return {r["vg_name"]: VG(r["vg_name"], r.get("vg_lock_type") or "",
                             _bytes(r["vg_extent_size"]), _bytes(r["vg_free"]),
                             int(r["lv_count"] or 0))
            for r in _rows(text, "vg")}


def rounded(size, extent):
    """The size LVM gives an LV of ``size`` bytes: whole extents."""
    return -(-size // extent) * extent if extent else size


def lvcreate(vg, name, size):
    """The command that creates an LV of ``size`` bytes (LVM rounds up to whole extents).

    ``--activate ey``: active, with lvmlockd's exclusive LV lock, on this node, where
    LVM-activate has activated the VG with ``lvchange -aey``. Its monitor would count an
    inactive new LV as running all the same (another LV of the VG has a device), so the
    guest's VirtualDomain would find no device until the VG is restarted. ``--zero y
    --wipesignatures y``: the new disk starts clean, whatever freed extents held before;
    ``--yes`` answers the wipe prompt (there is no terminal)."""
    return ["lvcreate", "--activate", "ey", "--wipesignatures", "y", "--zero", "y", "--yes",
            "--name", name, "--size", f"{size}b", vg]


def _grow_lv(disk):
    return (f"where {disk.vg} is active: lvextend --size {human(disk.size)} "
            f"{disk.vg}/{disk.guest}")


def _grow_image(disk):
    # '>': at least, never less (truncate with a plain size would cut a larger image)
    return f"with the guest shut off: truncate --size '>{human(disk.size)}' {disk.path}"


def plan(cfg, node, vgs, lvs, images, local_ready=True, found_images=()):
    """What to do about ``wanted(cfg, node)``.

    ``vgs``: {name: VG} visible on this node, None when LVM is not installed; ``lvs``: [LV]
    visible; ``images``: {path: File} of every wanted image's path; ``local_ready``: /local is
    mounted (or the root is not /); ``found_images``: names of the files in /local/guests.
    """
    disks = wanted(cfg, node)
    by_vg = {}
    for lv in lvs:
        by_vg.setdefault(lv.vg, {})[lv.name] = lv
    pillar_vgs = sorted(cfg["volume_groups"])
    create, present, problems, refusals, notes = [], [], [], [], []
    if vgs is None:
        notes.append("LVM is not installed on this node: no volume group is active here")
        vgs = {}

    # ---- logical volumes, VG by VG
    lv_disks = [d for d in disks if d.kind == "lv"]
    for vg_name in sorted({d.vg for d in lv_disks}):
        mine = [d for d in lv_disks if d.vg == vg_name]
        guests = ", ".join(d.guest for d in mine)
        vg, have = vgs.get(vg_name), by_vg.get(vg_name, {})
        if vg is None:
            notes.append(f"{vg_name} is not active on this node; its LVs are created where "
                         f"it is active ({guests})")
            continue
        if vg.lock_type != LOCK_TYPE:
            refusals.append(
                f"{vg_name} has lock type {vg.lock_type or 'none'}, not {LOCK_TYPE}: the "
                f"cluster's volume groups are lvmlockd shared VGs (Pacemaker's LVM-activate, "
                f"vg_access_mode=lvmlockd, refuses any other); make it shared "
                f"(vgchange --lock-type {LOCK_TYPE} {vg_name}, with dlm and lvmlockd running)")
            continue
        if not have and vg.lv_count == 0:
            first = mine[0]
            problems.append(
                f"{vg_name} is visible on this node but holds no logical volume: Pacemaker's "
                f"LVM-activate refuses to start a volume group without one, so it is never "
                f"active and its LVs are not created here. Create the first by hand here: "
                f"vgchange --lock-start {vg_name} && lvcreate --activate ey --name "
                f"{first.guest} --size {human(first.size)} {vg_name}; then "
                f"crm_resource --cleanup --resource {cib.vg_id(vg_name)}")
            continue
        if not any(lv.mapped for lv in have.values()):
            notes.append(f"{vg_name} is not active on this node; its LVs are created where "
                         f"it is active ({guests})")
            continue
        need = 0
        for disk in mine:
            lv = have.get(disk.guest)
            if lv is None:
                elsewhere = _elsewhere(disk, by_vg, pillar_vgs, images, found_images)
                if elsewhere:
                    refusals.append(_moved(disk, elsewhere))
                    continue
                size = rounded(disk.size, vg.extent_size)
                create.append((disk, size))
                need += size
            elif lv.size < disk.size:
                problems.append(_small(disk, lv.size, _grow_lv(disk)))
            else:
                present.append((disk, lv.size))
        if need > vg.free:
            short = [f"{d.guest} {human(s)}" for d, s in create if d.vg == vg_name]
            refusals.append(f"{vg_name} has {human(vg.free)} free, the missing logical volumes "
                            f"need {human(need)} ({', '.join(short)}): grow the volume group "
                            f"or lower their disk_size")

    # ---- images under /local
    for disk in (d for d in disks if d.kind == "image"):
        found = images.get(disk.path, File("missing"))
        if found.kind == "other":
            refusals.append(f"{disk.guest}: {disk.path} is {found.what}, not an image file; "
                            "it is left alone (move it away yourself)")
        elif found.kind == "file":
            if found.size < disk.size:
                problems.append(_small(disk, found.size, _grow_image(disk)))
            else:
                present.append((disk, found.size))
        elif not local_ready:
            notes.append(f"{disk.path} waits for /local to be mounted")
        else:
            elsewhere = _elsewhere(disk, by_vg, pillar_vgs, images, found_images)
            if elsewhere:
                refusals.append(_moved(disk, elsewhere))
            else:
                create.append((disk, disk.size))

    # ---- disks of no guest: named, never touched
    for vg_name in pillar_vgs:
        ours = {d.guest for d in lv_disks if d.vg == vg_name}
        for name in sorted(set(by_vg.get(vg_name, {})) - ours):
            notes.append(f"{vg_name}/{name} is the disk of no guest of {vg_name} in the pillar: "
                         "left as it is (lvremove it yourself if that is intended)")
    local = {d.path.rsplit("/", 1)[1] for d in disks if d.kind == "image"}
    for name in sorted(set(found_images) - local):
        if name.endswith(".img"):
            notes.append(f"/local/guests/{name} is the disk of no /local guest of {node} in the "
                         "pillar: left as it is (remove it yourself if that is intended)")
    return Plan(tuple(create), tuple(present), tuple(problems), tuple(refusals), tuple(notes))


def _small(disk, size, how):
    return (f"{disk.guest}: {disk.path} is {human(size)}, smaller than its disk_size "
            f"{human(disk.size)}; a disk is never resized by the formula. Grow it by hand "
            f"{how}, then grow the partition and filesystem inside the guest")


def _elsewhere(disk, by_vg, pillar_vgs, images, found_images):
    """Where this node holds another disk of ``disk``'s guest, or None."""
    for vg_name in pillar_vgs:
        if vg_name != disk.vg and disk.guest in by_vg.get(vg_name, {}):
            return f"/dev/{vg_name}/{disk.guest}"
    image = f"{disk.guest}.img"
    if disk.kind == "lv" and image in found_images:
        return f"/local/guests/{image}"
    return None


def _moved(disk, elsewhere):
    return (f"{disk.guest}: the pillar puts its disk at {disk.path}, but this node holds "
            f"{elsewhere} (its home or storage changed?); an empty disk is not created beside "
            f"its data. Create {disk.path} yourself and copy the data over (the old disk is "
            "left for you to remove)")
