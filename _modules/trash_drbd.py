"""
DRBD on a trash cluster node: internal metadata on the backing partitions.

Metadata is created only on a device that has none and holds nothing else: a
device with a filesystem, a partition table, an LVM or RAID signature or DRBD
metadata of another version is refused and left untouched. Nothing here forces a
primary or discards data, except ``initial_sync`` on the node the pillar names, and only
while neither side has ever held data.
"""

import logging
import os
import sys
import time

from salt.exceptions import CommandExecutionError

# Every module that imports trashlib drops it first: whichever loads first after a
# sync of _utils must not pick up the copy a long-running minion still holds.
for _name in [n for n in sys.modules if n == "trashlib" or n.startswith("trashlib.")]:
    del sys.modules[_name]

from trashlib import disks as _disks  # noqa: E402
from trashlib import drbd as _drbd  # noqa: E402
from trashlib import storage as _storage  # noqa: E402

log = logging.getLogger(__name__)

__virtualname__ = "trash_drbd"

# drbdmeta's metadata formats: 8.4 kernels read v08, DRBD 9 reads v09
FORMAT = {"8.4": "v08", "9": "v09"}


def __virtual__():
    if "trash.config" not in __salt__ or "trash_storage.signature" not in __salt__:
        return False, "trash_drbd: the trash and trash_storage execution modules are not loaded"
    return __virtualname__


def _run(cmd):
    return __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True,
                                   output_loglevel="quiet")


def backing_devices(node=None):
    """
    The backing device of every DRBD resource on this node (or ``node``).

    CLI Example:

    .. code-block:: bash

        salt-call trash_drbd.backing_devices
    """
    cfg = __salt__["trash.config"]()
    node = node or __opts__["id"]
    if node not in cfg["nodes"]:
        raise CommandExecutionError(f"trash_drbd: {node!r} is not a cluster node")
    disk = cfg["nodes"][node]["disk"]
    return {name: {"device": _storage.partition_device(disk, res["partition"]),
                   "minor": res["minor"]}
            for name, res in sorted(cfg["drbd"]["resources"].items())}


def probe(device, version="8.4"):
    """
    What is on ``device``: ``{"metadata": bool, "signature": {...} or None}``; metadata
    means DRBD metadata of ``version``, signature what blkid finds otherwise.

    CLI Example:

    .. code-block:: bash

        salt-call trash_drbd.probe /dev/sda7
    """
    fmt = FORMAT[version]
    md = _run(["drbdmeta", "0", fmt, device, "internal", "dump-md"])
    if md["retcode"] == 0:
        return {"metadata": True, "signature": None}
    return {"metadata": False, "signature": __salt__["trash_storage.signature"](device) or None}


def metadata(test=False):
    """
    Create DRBD internal metadata on every backing device of this node that has none.

    Refuses, and creates nothing at all, when any device is missing or holds a
    filesystem, a partition table, another signature or metadata of another DRBD
    version; the comment says what was found and how to proceed.

    CLI Example:

    .. code-block:: bash

        salt-call trash_drbd.metadata test=True
    """
    cfg = __salt__["trash.config"]()
    version = str(cfg["drbd"]["version"])
    refusals, pending, present = [], [], []
    attached = _proc()
    for name, spec in backing_devices().items():
        device = spec["device"]
        st = attached.get(spec["minor"], {})
        if st.get("cs", "Unconfigured") != "Unconfigured" and (st.get("ds") or ("",))[0] \
                not in ("Diskless", ""):
            # DRBD has the device open (drbdmeta could not read it): its metadata is there
            present.append(name)
            continue
        if not os.path.exists(device):
            refusals.append(f"{name}: its backing device {device} does not exist "
                            "(the storage layout creates it)")
            continue
        found = probe(device, version)
        if found["metadata"]:
            present.append(name)
        elif found["signature"]:
            what = ", ".join(f"{k}={v}" for k, v in sorted(found["signature"].items()))
            refusals.append(
                f"{name}: {device} is not empty ({what}); DRBD metadata would overwrite its "
                f"end. If its content is expendable, erase it yourself (wipefs --all {device}) "
                "and apply again; nothing was changed")
        else:
            pending.append((name, spec))
    if refusals:
        return {"result": False, "changes": {},
                "comment": "refusing to create DRBD metadata:\n" + "\n".join(refusals)}
    if not pending:
        return {"result": True, "changes": {},
                "comment": f"DRBD metadata present for {', '.join(present) or 'no resource'}"}
    fmt = FORMAT[version]
    changes = {name: {"metadata": {"old": None, "new": f"internal {fmt} on {spec['device']}"}}
               for name, spec in pending}
    if test:
        return {"result": None, "changes": changes,
                "comment": f"would create DRBD metadata for {', '.join(changes)}"}
    created = []
    for name, spec in pending:
        cmd = ["drbdmeta", "--force", str(spec["minor"]), fmt, spec["device"], "internal",
               "create-md"]
        if fmt == "v09":
            cmd.append("1")  # one peer: the other node
        res = _run(cmd)
        if res["retcode"] != 0:
            return {"result": False, "changes": {n: changes[n] for n in created},
                    "comment": f"drbdmeta create-md for {name} failed: "
                               f"{(res['stderr'] or res['stdout']).strip()}"}
        created.append(name)
    return {"result": True, "changes": changes,
            "comment": f"created DRBD metadata for {', '.join(changes)}"}


def _proc():
    try:
        with open("/proc/drbd", encoding="utf-8") as f:
            return _drbd.parse_proc_drbd(f.read())
    except OSError:  # the module is not loaded: nothing is up
        return {}


def _gi(name, spec, up, version):
    if up:
        # drbdadm asks the kernel (drbdsetup get-gi), and where that fails, as it did on
        # a loaded node, reads the attached backing device, which is busy: ask again
        for attempt in range(3):
            if attempt:
                time.sleep(2 * attempt)
            res = _run(["drbdadm", "get-gi", name])
            if res["retcode"] == 0:
                break
    else:
        res = _run(["drbdmeta", str(spec["minor"]), FORMAT[version], spec["device"],
                    "internal", "get-gi"])
    if res["retcode"] != 0:
        raise CommandExecutionError(f"trash_drbd: cannot read the generation identifiers of "
                                    f"{name}: {(res['stderr'] or res['stdout']).strip()}")
    return _drbd.parse_gi(res["stdout"])


def _must(cmd, what):
    res = _run(cmd)
    if res["retcode"] != 0:
        raise CommandExecutionError(f"{what} failed: {(res['stderr'] or res['stdout']).strip()}")
    return res["stdout"]


def _peer_holds_data(state):
    """A connected resource whose sides are not both new: DRBD syncs from the side that
    holds data by itself, and nothing may be forced."""
    return (state.get("cs") in ("Connected", "SyncSource", "SyncTarget")
            and tuple(state.get("ds") or ()) != ("Inconsistent", "Inconsistent"))


def _syncs_from_peer(states, test):
    """The comment for new sides whose peer holds the data ({name: /proc/drbd state})."""
    held = ", ".join(f"{n} ({'/'.join(st.get('ds') or ('?', '?'))})" for n, st in states.items())
    return (f"the peer holds the data of {held}: this side syncs from it, nothing "
            + ("would be forced" if test else "forced"))


def _wait_connected(names, minors, timeout):
    """Wait until every resource is connected to its peer; {name: state} when it is."""
    deadline, said = time.monotonic() + timeout, 0.0
    while True:
        proc = _proc()
        states = {n: proc.get(minors[n], {}) for n in names}
        waiting = [n for n, st in states.items()
                   if st.get("cs") not in ("Connected", "SyncSource", "SyncTarget")]
        if not waiting:
            return states
        now = time.monotonic()
        if now >= deadline:
            raise CommandExecutionError(
                f"the peer did not connect to {', '.join(waiting)} within {timeout} s "
                f"(connection: {', '.join(states[n].get('cs', 'down') for n in waiting)}): "
                "apply the state on the peer as well; nothing was forced")
        if now - said >= 30:
            log.info("trash_drbd: waiting for the peer to connect to %s", ", ".join(waiting))
            said = now
        time.sleep(2)


class _LockManagers:
    """dlm_controld and lvmlockd for the first shared volume groups, before Pacemaker runs
    them. Fencing is off in this dlm_controld: it runs only while every mirror involved
    has never held data and the peer runs no DLM, and it stops before Pacemaker starts."""

    def __init__(self):
        self.started, self.vgs = [], []

    def opened(self, vg_name):
        self.vgs.append(vg_name)

    def start(self):
        if self.started:
            return
        _must(["modprobe", "dlm"], "modprobe dlm")
        _must(["systemd-run", f"--unit={BOOTSTRAP_DLM}", "--collect", "-p", "Type=notify",
               "-p", "NotifyAccess=main", "/usr/sbin/dlm_controld", "--foreground",
               "--enable_fencing", "0", "--enable_startup_fencing", "0"],
              "starting dlm_controld for the initial volume groups")
        self.started.append(BOOTSTRAP_DLM)
        _must(["systemctl", "start", "lvmlockd"], "starting lvmlockd")
        self.started.append("lvmlockd")

    def stop(self):
        for vg_name in self.vgs:  # Pacemaker's LVM-activate activates them where they run
            _run(["vgchange", "--activate", "n", vg_name])
            _run(["vgchange", "--lock-stop", vg_name])
        if "lvmlockd" in self.started:
            _run(["lvmlockctl", "--stop-lockspaces", "--wait", "1"])
        for unit in reversed(self.started):
            _run(["systemctl", "stop", unit])
        self.started = []


BOOTSTRAP_DLM = "trash-bootstrap-dlm"


def _journal_mb(device):
    """GFS2 journal size: 128 MiB (mkfs.gfs2's default) on devices of 4 GiB and more,
    less on small ones so that two journals leave room for data (8 MiB at least)."""
    size = int(_must(["blockdev", "--getsize64", device], f"blockdev {device}"))
    return max(8, min(128, size // (32 << 20)))


def _create_content(cfg, name, device, locks):
    """What lives on a new mirror, made or finished (a run that failed half-way left
    some of it): GFS2, or the shared volume group with its guests' logical volumes
    (LVM-activate refuses a volume group without any). A description of it."""
    found = __salt__["trash_storage.signature"](device) or {}
    sh = cfg["shared"]
    if sh["drbd"] == name:
        table = f"{cfg['cluster']['name']}:{_fs_name(sh['mountpoint'])}"
        if found.get("TYPE") != "gfs2":
            _refuse_foreign(name, device, found)
            _must(["mkfs.gfs2", "-O", "-K", "-p", "lock_dlm", "-t", table,
                   "-j", str(len(cfg["cluster"]["nodes"])), "-J", str(_journal_mb(device)),
                   device], f"mkfs.gfs2 on {device}")
        return f"GFS2 {table}, " + _guest_xml(sh["mountpoint"], device)
    for vg_name, vg in sorted(cfg["volume_groups"].items()):
        if vg["drbd"] != name:
            continue
        locks.start()
        if found.get("TYPE") != "LVM2_member":
            _refuse_foreign(name, device, found)
            _must(["pvcreate", device], f"pvcreate {device}")
        if _run(["vgs", vg_name])["retcode"] != 0:
            _must(["vgcreate", "--shared", vg_name, device], f"vgcreate --shared {vg_name}")
        locks.opened(vg_name)
        _must(["vgchange", "--lock-start", vg_name], f"vgchange --lock-start {vg_name}")
        made = []
        for disk in _disks.wanted(cfg, __opts__["id"]):
            if disk.vg == vg_name and _run(["lvs", f"{vg_name}/{disk.guest}"])["retcode"]:
                _must(_disks.lvcreate(vg_name, disk.guest, disk.size),
                      f"lvcreate {vg_name}/{disk.guest}")
                made.append(f"{disk.guest} {_disks.human(disk.size)}")
        return f"shared volume group {vg_name}" + (f" with {', '.join(made)}" if made else "")
    return "nothing (no filesystem or volume group names it)"


def _guest_xml(mountpoint, device):
    """The cluster guests' domain XML written onto the new GFS2: Pacemaker's VirtualDomain
    reads it there as soon as the filesystem is mounted. Mounted without DLM, which is
    safe only now: the filesystem is new and the peer's side is not readable yet."""
    os.makedirs(mountpoint, exist_ok=True)
    _must(["mount", "-t", "gfs2", "-o", "lockproto=lock_nolock", device, mountpoint],
          f"mounting {device} (lock_nolock) on {mountpoint}")
    try:
        ret = __salt__["trash.manage_files"]("guests")
    finally:
        _must(["umount", mountpoint], f"umount {mountpoint}")
    if ret["result"] is False:
        raise CommandExecutionError(f"writing the guests' domain XML: {ret['comment']}")
    return f"{len(ret['changes'])} guest definitions on it"


def _refuse_foreign(name, device, found):
    if found:
        what = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
        raise CommandExecutionError(f"{name}: {device} already holds {what}; left as it is")


def _fs_name(mountpoint):
    """GFS2's lock table wants a short name: the mount point's last component."""
    return (mountpoint.rstrip("/").rsplit("/", 1)[-1] or "shared")[:30]


MARKS = "/var/lib/trash/initial-sync"


def _marked():
    try:
        return sorted(os.listdir(MARKS))
    except OSError:
        return []


def _mark(name, on):
    path = os.path.join(MARKS, name)
    if on:
        os.makedirs(MARKS, mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("forced primary; what lives on the mirror is not complete yet\n")
            f.flush()
            os.fsync(f.fileno())
    elif os.path.exists(path):
        os.unlink(path)


def initial_sync(test=False, timeout=600):
    """
    Give every new mirror its first UpToDate copy, once.

    A DRBD resource whose metadata was just created has no data on either node, and
    Pacemaker never promotes it. The node named by ``trash:drbd:initial_sync_source``
    makes its own (empty) side the source: only when the resource has never been
    synced on this node, is connected to its peer and the peer's side has never held
    data either (both Inconsistent). It then creates what lives on the mirror (GFS2
    for ``trash:shared``; the shared volume group of ``trash:volume_groups`` with the
    logical volumes of its guests), and hands the resource back as Secondary for
    Pacemaker to promote. A run that fails half-way leaves a mark
    (/var/lib/trash/initial-sync/<resource>) and the next run finishes the job. The
    other node brings its new resources up and becomes the sync target. Resources
    that have held data are Pacemaker's and are not touched.

    CLI Example:

    .. code-block:: bash

        salt-call trash_drbd.initial_sync test=True
    """
    cfg = __salt__["trash.config"]()
    node = __opts__["id"]
    version = str(cfg["drbd"]["version"])
    source = cfg["drbd"]["initial_sync_source"]
    if version != "8.4":
        return {"result": True, "changes": {},
                "comment": "the initial sync is made by hand with DRBD 9 (drbdadm primary "
                           "--force on one node, once): not automated yet"}
    devices = backing_devices()
    proc = _proc()
    minors = {n: s["minor"] for n, s in devices.items()}
    up = {n: proc.get(s["minor"], {}).get("cs", "Unconfigured") != "Unconfigured"
          for n, s in devices.items()}
    fresh = []
    for name, spec in devices.items():
        local = (proc.get(spec["minor"], {}).get("ds") or ("",))[0]
        if up[name] and local in ("UpToDate", "Outdated", "Consistent"):
            # its attached copy holds data: no generation identifiers needed (drbdadm
            # get-gi found the attached backing device busy on a loaded node)
            continue
        try:
            gi = _gi(name, spec, up[name], version)
        except CommandExecutionError:
            if not test:
                raise
            # a dry run before the partitions and their metadata exist: they will be new
            fresh.append(name)
            continue
        if _drbd.never_synced(gi):
            fresh.append(name)
    unfinished = [n for n in _marked() if n in devices and n not in fresh]
    if not fresh and not unfinished:
        return {"result": True, "changes": {},
                "comment": "every mirror has held data on this node: Pacemaker runs them"}
    if fresh and source is None:
        return {"result": False, "changes": {},
                "comment": f"{', '.join(fresh)} never held data on this node, and nothing "
                           "says which node's empty side becomes the first copy. Set "
                           "trash:drbd:initial_sync_source: <node> in the pillar (used only "
                           "while both sides are new); nothing was changed"}
    if unfinished and _run(["systemctl", "is-active", "--quiet", "pacemaker"])["retcode"] == 0:
        return {"result": False, "changes": {},
                "comment": f"the first copy of {', '.join(unfinished)} was forced here but "
                           "what lives on it is not complete, and Pacemaker runs DRBD now: "
                           "stop Pacemaker on this node and apply again"}
    role = "source" if node == source else "target"
    changes = {n: {"initial sync": {"old": "never synced",
                                    "new": f"{node} is the source" if role == "source"
                                    else f"syncing from {source}"}} for n in fresh}
    for name in unfinished:
        changes[name] = {"content": {"old": "incomplete", "new": "completed"}}
    # the target only brings its side up: one that is up already waits for the source
    waiting = [n for n in fresh if role == "target" and up[n]]
    for name in waiting:
        del changes[name]
    said_waiting = [", ".join(f"{n} ({_drbd.describe(proc.get(minors[n]))})" for n in waiting)
                    + f" up already: {source} makes the first copy"] if waiting else []
    if test:
        # a side that is up and connected shows now what the real run would find
        from_peer = {n: proc.get(minors[n], {}) for n in fresh if role == "source" and up[n]
                     and _peer_holds_data(proc.get(minors[n], {}))}
        for name in from_peer:
            del changes[name]
        rest = [n for n in fresh if n not in from_peer and n not in waiting]
        said = list(said_waiting)
        if rest:
            said.append(f"would bring up {', '.join(rest)} for the initial sync"
                        + (" and make this node's side the first copy" if role == "source"
                           else f" from {source}"))
        if from_peer:
            said.append(_syncs_from_peer(from_peer, test=True))
        if unfinished:
            said.append(f"would finish {', '.join(unfinished)}")
        return {"result": None if changes else True, "changes": changes,
                "comment": "; ".join(said)}
    for name in fresh + unfinished:
        if not up[name]:
            _must(["drbdadm", "up", name], f"drbdadm up {name}")
    if role == "target" and not unfinished:
        brought = [n for n in fresh if n not in waiting]
        said = ([f"brought up {', '.join(brought)}: {source} makes the first copy"]
                if brought else []) + said_waiting
        return {"result": True, "changes": changes, "comment": "; ".join(said)}
    forced, from_peer = [], {}
    if role == "source" and fresh:
        states = _wait_connected(fresh, minors, timeout)
        for name in fresh:
            if _peer_holds_data(states[name]):
                # the peer has (or is getting) data, e.g. this node's disk was replaced:
                # DRBD syncs this side from it by itself
                from_peer[name] = states[name]
                if up[name]:
                    del changes[name]  # nothing was done here
                else:
                    changes[name]["initial sync"]["new"] = "brought up: syncing from the peer"
                continue
            forced.append(name)
    locks = _LockManagers()
    promoted = []
    try:
        for name in forced + unfinished:
            if name in forced:
                _mark(name, True)
                _must(["drbdadm", "primary", "--force", name], f"drbdadm primary --force {name}")
            else:
                _must(["drbdadm", "primary", name], f"drbdadm primary {name}")
            promoted.append(name)
            content = _create_content(cfg, name, f"/dev/drbd{minors[name]}", locks)
            changes[name]["content"] = {"old": None if name in forced else "incomplete",
                                        "new": content}
            _mark(name, False)
    finally:
        locks.stop()
        for name in promoted:
            _run(["drbdadm", "secondary", name])
    done = forced + unfinished
    said = ([f"{node} is the first copy of {', '.join(done)}; the peer syncs from it"]
            if done else [])
    if from_peer:
        said.append(_syncs_from_peer(from_peer, test=False))
    return {"result": True, "changes": changes, "comment": "; ".join(said)}
