"""
The storage of a trash cluster node: the partition layout of its RAID array
(``trash:nodes:<node>:disk``), the filesystems and their mounts, from
``trash:storage``.

Safety first. Partitions are created only on a disk without a partition table or
whose table already matches the pillar, and only in space that holds no
signature; existing partitions are never changed, moved or deleted. A filesystem
is made only on a partition on which blkid finds nothing at all: nothing is ever
reformatted. An fstab entry or a mount that names another device is refused, not
replaced. Every refusal says what was found and changes nothing.
"""

import logging
import os
import shutil
import sys
import tempfile

from salt.exceptions import CommandExecutionError

for _name in [n for n in sys.modules if n == "trashlib" or n.startswith("trashlib.")]:
    del sys.modules[_name]

try:
    from trashlib import raid as _raid
    from trashlib import storage as _storage

    HAS_LIB = True
except ImportError:  # pragma: no cover - reported by __virtual__
    HAS_LIB = False

log = logging.getLogger(__name__)

__virtualname__ = "trash_storage"

MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-E", "nodiscard"],
    "xfs": ["mkfs.xfs", "-q", "-K"],
    "swap": ["mkswap"],
}


def __virtual__():
    if not HAS_LIB:
        return False, "trash_storage: the trashlib package from _utils/ is not importable"
    if "trash.config" not in __salt__:
        return False, "trash_storage: the trash execution module is not loaded"
    return __virtualname__


def _run(cmd, **kwargs):
    return __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True,
                                   output_loglevel="quiet", **kwargs)


def _layout(node=None):
    cfg = __salt__["trash.config"]()
    node = node or __opts__["id"]
    if node not in cfg["nodes"]:
        raise CommandExecutionError(f"trash_storage: {node!r} is not a cluster node")
    return _storage.wanted(cfg, node)


def signature(device, offset=None, size=None):
    """
    What ``blkid -p`` finds on ``device`` (or in a region of it): filesystem, partition
    table, RAID, LVM or DRBD signatures; ``{}`` for nothing.

    CLI Example:

    .. code-block:: bash

        salt-call trash_storage.signature /dev/sda7
    """
    return _content(_probe(device, offset, size))


def _content(found):
    # on a partition device blkid also reports the partition's entry in its disk's table
    # (PART_ENTRY_*): where the partition is, not what it holds
    return {k: v for k, v in found.items() if not k.startswith("PART_ENTRY_")}


def _probe(device, offset=None, size=None):
    """Everything ``blkid -p`` reports, the partition entry (PART_ENTRY_*) included."""
    cmd = ["blkid", "-p", "-o", "export"]
    if offset is not None:
        cmd += ["--offset", str(offset), "--size", str(size)]
    found = _run(cmd + [device])
    # blkid exits 2 when it finds nothing
    if found["retcode"] not in (0, 2):
        raise CommandExecutionError(f"blkid {device}: {found['stderr'].strip()}")
    out = _raid.parse_export(found["stdout"]) if found["retcode"] == 0 else {}
    out.pop("DEVNAME", None)
    return out


def _number(cmd):
    res = _run(cmd)
    if res["retcode"] != 0:
        raise CommandExecutionError(f"{' '.join(cmd)}: {(res['stderr'] or res['stdout']).strip()}")
    return int(res["stdout"].strip())


def read_disk(device):
    """
    What ``device`` holds: its size, sector size, partition table (as sfdisk reads
    it) and, without a table, what blkid finds on the whole device.

    CLI Example:

    .. code-block:: bash

        salt-call trash_storage.read_disk /dev/sda
    """
    if not os.path.exists(device):
        raise CommandExecutionError(f"trash_storage: the disk {device} does not exist")
    size = _number(["blockdev", "--getsize64", device])
    sector = _number(["blockdev", "--getss", device])
    dump = _run(["sfdisk", "--json", device], env={"LC_ALL": "C"})
    if dump["retcode"] == 0 and dump["stdout"].strip():
        return _storage.Disk(device, size, sector, _storage.parse_sfdisk_json(dump["stdout"]))
    if "does not contain a recognized partition table" not in dump["stderr"]:
        # only a disk that sfdisk has read and found without a table counts as blank
        raise CommandExecutionError(f"sfdisk --json {device}: "
                                    f"{(dump['stderr'] or dump['stdout']).strip()}")
    return _storage.Disk(device, size, sector, None, signature(device) or None)


def _md_sysfs(device, attr):
    try:
        with open(f"/sys/block/{os.path.basename(device)}/md/{attr}", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def _md_array(device):
    """The md device as the kernel reports it (raid.Array), None when there is none."""
    state = _md_sysfs(device, "array_state")
    if state is None:
        return None
    if state in ("clear", "inactive"):
        return _raid.Array(state)
    res = _run(["mdadm", "--detail", "--export", device], env={"LC_ALL": "C"})
    if res["retcode"] != 0:
        raise CommandExecutionError(f"mdadm --detail {device}: "
                                    f"{(res['stderr'] or res['stdout']).strip()}")
    detail = _raid.parse_export(res["stdout"])
    return _raid.Array(state, detail.get("MD_LEVEL"), detail.get("MD_UUID"),
                       int(detail.get("MD_DEVICES", 0)), _raid.detail_members(detail),
                       int(_md_sysfs(device, "degraded") or 0),
                       _md_sysfs(device, "sync_action") or "idle")


def _md_member(path):
    """What the member device ``path`` holds (raid.Member)."""
    if not os.path.exists(path):
        return _raid.Member()
    real = os.path.realpath(path)
    try:
        holders = tuple(sorted(os.listdir(f"/sys/class/block/{os.path.basename(real)}/holders")))
    except OSError:
        holders = ()
    res = _run(["mdadm", "--examine", "--export", real], env={"LC_ALL": "C"})
    block = _raid.parse_export(res["stdout"]) if res["retcode"] == 0 else {}
    return _raid.Member(real, holders, block or None, signature(real))


def _initramfs(conf):
    """Rebuild the initramfs so that early boot assembles the array under its name."""
    if not shutil.which("update-initramfs"):
        return None
    res = _run(["update-initramfs", "-u"])
    if res["retcode"] != 0:
        # the line is in mdadm.conf now, so the next run sees nothing to do: say it once
        return (f"{conf} names the array now, but update-initramfs -u failed: "
                f"{(res['stderr'] or res['stdout']).strip()}; run it by hand, else the "
                "initramfs may assemble the array under another name at the next boot")
    return None


def raid(test=False, conf=_raid.CONF):
    """
    Create or assemble this node's software RAID array (``trash:nodes:<node>:raid``)
    and name it in mdadm.conf (then the initramfs is rebuilt) so that every boot
    assembles it under the pillar's device name.

    An array is created only on members that hold nothing at all (no md superblock,
    partition table, filesystem or other signature, not in use); members that carry the
    superblocks of one array of the pillar's level are assembled, never recreated.
    Anything else is refused, with what was found, and nothing is changed. A running
    array is never changed: a missing member is reported with the command that adds
    the replaced disk. ``test=True`` shows the plan.

    CLI Example:

    .. code-block:: bash

        salt-call trash_storage.raid test=True
    """
    cfg = __salt__["trash.config"]()
    node = __opts__["id"]
    if node not in cfg["nodes"]:
        raise CommandExecutionError(f"trash_storage: {node!r} is not a cluster node")
    want = _raid.wanted(cfg, node)
    if want is None:
        return {"result": True, "changes": {},
                "comment": f"{cfg['nodes'][node]['disk']} is not a software RAID of the pillar"}
    if not shutil.which("mdadm"):
        raise CommandExecutionError("trash_storage: mdadm is not installed (trash.packages "
                                    "installs it on a node with trash:nodes:<node>:raid)")
    array = _md_array(want.device)
    if array is not None and array.state not in ("clear", "inactive"):
        # a running array is only compared with the pillar: its members need no probing
        members = {m: _raid.Member(os.path.realpath(m) if os.path.exists(m) else None)
                   for m in want.members}
    else:
        members = {m: _md_member(m) for m in want.members}
    todo = _raid.plan(want, array, members)
    if todo.refusals:
        return _refused(f"build {_raid.describe(want)}", todo.refusals)
    changes = {}
    if todo.action:
        changes[want.device] = {"old": None, "new": f"{todo.action}d: RAID {want.level} of "
                                                    f"{', '.join(want.members)}"}
        if test:
            changes[conf] = {"old": None, "new": f"ARRAY {want.device} with the new UUID, "
                                                 "then update-initramfs -u"}
            return {"result": None, "changes": changes,
                    "comment": "\n".join([f"would run: {' '.join(todo.command)}",
                                          *todo.notes])}
        res = _run(list(todo.command), env={"LC_ALL": "C"})
        if shutil.which("udevadm"):
            _run(["udevadm", "settle", "--timeout=60"])
        array = _md_array(want.device)
        if res["retcode"] != 0 or array is None or array.state in ("clear", "inactive"):
            return {"result": False, "changes": {},
                    "comment": f"{' '.join(todo.command)} failed: "
                               f"{(res['stderr'] or res['stdout']).strip()}"}
    try:
        with open(conf, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    line, refusal = _raid.conf_plan(want, array.uuid, text)
    if refusal:
        return {"result": False, "changes": changes, "comment": refusal}
    notes = list(todo.notes)
    if todo.action:
        notes += _raid.health(want, array, {m: os.path.realpath(m) for m in want.members})
    if line:
        changes[conf] = {"old": None, "new": line}
        if test:
            return {"result": None, "changes": changes,
                    "comment": "\n".join([f"would add to {conf}: {line}, then "
                                          "update-initramfs -u"] + notes)}
        os.makedirs(os.path.dirname(conf), exist_ok=True)
        _append(conf, text, [line])
        failed = _initramfs(conf)
        if failed:
            return {"result": False, "changes": changes, "comment": failed}
    head = (f"{todo.action}d {_raid.describe(want)}" if todo.action
            else f"{_raid.describe(want)} is running")
    return {"result": True, "changes": changes, "comment": "\n".join([head] + notes)}


def _plan(layout):
    disk = read_disk(layout.disk)
    first = _storage.plan(layout, disk)
    if first.refusals or not first.create:
        return disk, first
    probes = {n: signature(layout.disk, off, size)
              for n, (off, size) in first.regions(disk.sector_size).items()}
    return disk, _storage.plan(layout, disk, probes)


def _array_pending(want):
    """True when ``want``'s disk is a software RAID of the pillar that is not there yet
    (in test mode of a whole apply the RAID state creates it first)."""
    cfg = __salt__["trash.config"]()
    return bool(cfg["nodes"][__opts__["id"]].get("raid")) and not os.path.exists(want.disk)


def _created_by_layout(want):
    """Numbers of the partitions the layout would create now (none when it refuses)."""
    if _array_pending(want):
        return {p.number for p in want.partitions}
    _, plan = _plan(want)
    return set() if plan.refusals else {p.number for p in plan.create}


def _refused(what, refusals):
    return {"result": False, "changes": {},
            "comment": f"refusing to {what}:\n" + "\n".join(refusals)}


def layout(test=False):
    """
    Create the partitions of ``trash:storage`` that this node's disk lacks.

    Only on a disk without a partition table or whose table matches the pillar;
    refuses, creating nothing, when the disk holds another table type, a partition
    that differs in number, start, size or type, or a signature (a filesystem, DRBD
    metadata, …) in the space where a partition would be created. Existing
    partitions are never changed or deleted. ``test=True`` shows the plan.

    CLI Example:

    .. code-block:: bash

        salt-call trash_storage.layout test=True
    """
    want = _layout()
    if test and _array_pending(want):
        return {"result": None, "changes": {},
                "comment": f"{want.disk} does not exist yet (the RAID state creates it): its "
                           "partitions are planned once it does"}
    disk, plan = _plan(want)
    if plan.refusals:
        return _refused(f"partition {want.disk}", plan.refusals)
    if not plan.create:
        return {"result": True, "changes": {},
                "comment": f"the partitions of {want.disk} match the pillar "
                           f"({', '.join(map(str, sorted(plan.present)))})"}
    changes = {f"partition {p.number}": {
        "old": None, "new": _storage.describe_part(want, p, disk.sector_size)}
        for p in plan.create}
    if plan.new_table:
        changes["table"] = {"old": None, "new": f"{want.label} partition table on {want.disk}"}
    script = _storage.script(want, plan)
    if test:
        return {"result": None, "changes": changes,
                "comment": f"would create on {want.disk} with sfdisk:\n{script}"}
    cmd = ["sfdisk", "--no-reread", "--wipe", "never", "--wipe-partitions", "never"]
    cmd += [] if plan.new_table else ["--append"]
    res = _run(cmd + [want.disk], stdin=script)
    if res["retcode"] != 0:
        return {"result": False, "changes": {},
                "comment": f"sfdisk on {want.disk} failed: {(res['stderr'] or res['stdout']).strip()}"}
    if shutil.which("udevadm"):
        # the partition nodes appear through udev: wait until it has handled the events
        _run(["udevadm", "settle", "--timeout=60"])
    after = _storage.plan(want, read_disk(want.disk))
    if after.refusals or after.create:
        return {"result": False, "changes": changes,
                "comment": f"sfdisk wrote a table on {want.disk} that differs from the plan:\n"
                           + "\n".join(after.refusals or
                                       [f"partition {p.number} still missing" for p in after.create])}
    return {"result": True, "changes": changes,
            "comment": f"created partitions {', '.join(str(p.number) for p in plan.create)} "
                       f"on {want.disk}"}


def filesystems(test=False):
    """
    Make the filesystems and swap of ``trash:storage`` on partitions that hold nothing.

    A partition on which blkid finds anything else (another filesystem, DRBD
    metadata, a partition table, …) is refused and then nothing is made at all;
    nothing is ever reformatted. In test mode a partition the layout is about to
    create is planned as well (a whole ``state.apply test=True`` shows every step).

    CLI Example:

    .. code-block:: bash

        salt-call trash_storage.filesystems test=True
    """
    want = _layout()
    refusals, pending, present = [], [], []
    later = _created_by_layout(want) if test else set()
    for number, fs in _storage.filesystems(want):
        device = _storage.partition_device(want.disk, number)
        if not os.path.exists(device):
            if number in later:
                # test mode of a whole apply: the layout state creates it first
                pending.append((number, fs, device))
            else:
                refusals.append(f"partition {number}: {device} does not exist (the layout "
                                "creates it)")
            continue
        found = signature(device)
        if not found:
            pending.append((number, fs, device))
        elif found.get("TYPE") == fs:
            present.append(device)
        else:
            what = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
            refusals.append(
                f"partition {number}: {device} holds {what}, the pillar wants {fs}; it is never "
                f"reformatted. If its content is expendable, erase it yourself "
                f"(wipefs --all {device}) and apply again")
    if refusals:
        return _refused("make filesystems, nothing was changed", refusals)
    if not pending:
        return {"result": True, "changes": {},
                "comment": f"filesystems present on {', '.join(present) or 'no partition'}"}
    changes = {device: {"old": None, "new": fs} for _, fs, device in pending}
    if test:
        return {"result": None, "changes": changes,
                "comment": "would make " + ", ".join(f"{fs} on {d}" for _, fs, d in pending)}
    made = {}
    for number, fs, device in pending:
        res = _run(MKFS[fs] + [device])
        if res["retcode"] != 0:
            return {"result": False, "changes": made,
                    "comment": f"{MKFS[fs][0]} on {device} failed: "
                               f"{(res['stderr'] or res['stdout']).strip()}"}
        made[device] = changes[device]
    return {"result": True, "changes": changes,
            "comment": "made " + ", ".join(f"{fs} on {d}" for _, fs, d in pending)}


def _rdev(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_rdev if st.st_rdev else None


def _mounted(mount):
    """(major:minor, source) of what is mounted on ``mount``, or None."""
    res = _run(["findmnt", "--noheadings", "--first-only", "--output", "MAJ:MIN,SOURCE",
                "--mountpoint", mount])
    if res["retcode"] != 0 or not res["stdout"].strip():
        return None
    majmin, _, source = res["stdout"].strip().partition(" ")
    return majmin.strip(), source.strip()


def _swaps():
    try:
        with open("/proc/swaps", encoding="utf-8") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return set()
    return {_rdev(line.split()[0]) for line in lines if line.split()}


def mounts(test=False, fstab="/etc/fstab"):
    """
    Add the fstab entries of ``trash:storage`` (by UUID), mount what is not mounted
    and enable swap.

    An existing fstab entry for the mount point (for swap: naming the partition) is
    kept as it is when it names the partition and the filesystem, however it names it
    (path, UUID=, PARTUUID=, LABEL=) and whatever its options; an entry or a mount
    of another device on a mount point is refused, and then nothing is changed. The
    partitions must already carry their filesystems (``filesystems``); in test mode
    one still to be made is planned with the UUID it will get left open.

    CLI Example:

    .. code-block:: bash

        salt-call trash_storage.mounts test=True
    """
    want = _layout()
    try:
        with open(fstab, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    entries = _storage.parse_fstab(text)
    refusals, wanted, devices = [], [], {}
    later = _created_by_layout(want) if test else set()
    for number, fs, mount in _storage.mounts(want):
        device = _storage.partition_device(want.disk, number)
        exists = os.path.exists(device)
        probed = _probe(device) if exists else {}
        found = _content(probed)
        if test and not found and (exists or number in later):
            # test mode of a whole apply: the earlier states make the filesystem first
            wanted.append((number, fs, mount, {device}))
            devices[number] = (device, None, f"<uuid-of-the-new-{fs}>")
            continue
        if found.get("TYPE") != fs:
            refusals.append(f"partition {number}: {device} does not hold {fs} yet "
                            "(filesystems makes it)")
            continue
        rdev = _rdev(device)
        names = {device, os.path.realpath(device), f"UUID={found['UUID']}",
                 f"/dev/disk/by-uuid/{found['UUID']}"}
        for key, prefix in (("PART_ENTRY_UUID", "PARTUUID="), ("LABEL", "LABEL=")):
            if probed.get(key):
                names.add(prefix + probed[key])
        names |= {e.spec for e in entries if e.spec.startswith("/") and _rdev(e.spec) == rdev}
        wanted.append((number, fs, mount, names))
        devices[number] = (device, rdev, found["UUID"])
    add, _, fstab_refusals = _storage.fstab_plan(wanted, entries)
    refusals += fstab_refusals
    actions, swaps = [], _swaps()
    for number, fs, mount, _ in wanted:
        device, rdev, _ = devices[number]
        if rdev is None:  # made by an earlier state: neither mounted nor swapped on yet
            actions.append((number, fs, mount, device))
            continue
        if fs == "swap":
            if rdev not in swaps:
                actions.append((number, fs, None, device))
            continue
        now = _mounted(mount)
        if now is None:
            actions.append((number, fs, mount, device))
        elif now[0] != f"{os.major(rdev)}:{os.minor(rdev)}":
            refusals.append(f"{mount} is mounted from {now[1]}, the pillar wants {device} "
                            f"(partition {number}); refusing to mount over it")
    if refusals:
        return _refused("mount, nothing was changed", refusals)
    lines = [_storage.fstab_entry(fs, mount, devices[n][2]).line()
             for n, fs, mount, _ in wanted if n in add]
    changes = {}
    if lines:
        changes[fstab] = {"old": None, "new": lines}
    for number, fs, mount, device in actions:
        changes[mount or f"swap {device}"] = {"old": None if fs == "swap" else "not mounted",
                                              "new": device}
    if not changes:
        return {"result": True, "changes": {},
                "comment": "fstab and mounts match the pillar"}
    if test:
        return {"result": None, "changes": changes,
                "comment": "would " + ", ".join(
                    ([f"add {len(lines)} line(s) to {fstab}"] if lines else [])
                    + [f"mount {d} on {m}" if m else f"enable swap on {d}"
                       for _, _, m, d in actions])}
    if lines:
        _append(fstab, text, lines)
    done = {fstab: changes[fstab]} if lines else {}
    for number, fs, mount, device in actions:
        if fs == "swap":
            res = _run(["swapon", device])
        else:
            os.makedirs(mount, exist_ok=True)
            res = _run(["mount", "-t", fs, device, mount])
        if res["retcode"] != 0:
            return {"result": False, "changes": done,
                    "comment": f"{'swapon' if fs == 'swap' else 'mount'} {device} failed: "
                               f"{(res['stderr'] or res['stdout']).strip()}"}
        key = mount or f"swap {device}"
        done[key] = changes[key]
    return {"result": True, "changes": changes,
            "comment": "storage mounted: " + ", ".join(sorted(changes))}


def _append(path, text, lines):
    """Append ``lines`` to the file ``path`` (content ``text``), replacing it atomically."""
    new = text + ("" if not text or text.endswith("\n") else "\n") + "\n".join(lines) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".trash-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    # durable before the mounts are reported done: a power cut must not lose the entries
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
