"""
The guests' disks (R14, R15): the logical volume of each cluster guest in its volume group
(``/dev/<vg>/<guest>``) and the raw image of each /local guest (``/local/guests/<guest>.img``),
created when missing with the pillar's ``disk_size``; never shrunk, grown or removed.

Cluster guests' volume groups are lvmlockd shared VGs (lock type dlm) that Pacemaker's
LVM-activate activates exclusively on one node at a time. An LV is created only on the node
where its VG is active (an LV of it has a device-mapper device here: LVM-activate's own
test), by ``lvcreate --activate ey``, so that it is active, with its exclusive lock, right
where the guest will run; on the other node the state says so and changes nothing. /local
images are created sparse under the minion option ``trash_root`` (default ``/``); on a live
node only once /local is mounted.

A disk smaller than ``disk_size`` is reported with the command that grows it by hand; a disk
that belongs to no guest of the pillar is named and left alone. Refusals (something else at
an image's path, a VG of another lock type, a VG without room, a guest whose data sits in
another place of this node) say what was found and then nothing is created at all.
"""

import logging
import os
import shutil
import stat
import sys

from salt.exceptions import CommandExecutionError

for _name in [n for n in sys.modules if n == "trashlib" or n.startswith("trashlib.")]:
    del sys.modules[_name]

try:
    from trashlib import disks as _disks
    from trashlib import durable as _durable

    HAS_LIB = True
except ImportError:  # pragma: no cover - reported by __virtual__
    HAS_LIB = False

log = logging.getLogger(__name__)

__virtualname__ = "trash_disks"

GUESTS_DIR = "/local/guests"


def __virtual__():
    if not HAS_LIB:
        return False, "trash_disks: the trashlib package from _utils/ is not importable"
    if "trash.config" not in __salt__:
        return False, "trash_disks: the trash execution module is not loaded"
    return __virtualname__


def _run(cmd, **kwargs):
    return __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True,
                                   output_loglevel="quiet", **kwargs)


def _lvm():
    """(vgs, lvs) as LVM sees them on this node; (None, []) where LVM is not installed."""
    if shutil.which("lvs") is None:
        return None, []
    out = []
    for cmd, parse in ((_disks.VGS, _disks.parse_vgs), (_disks.LVS, _disks.parse_lvs)):
        res = _run(cmd, env={"LC_ALL": "C"})
        if res["retcode"] != 0:
            raise CommandExecutionError(
                f"trash_disks: {cmd[0]} failed: {(res['stderr'] or res['stdout']).strip()}")
        try:
            out.append(parse(res["stdout"]))
        except (ValueError, KeyError) as exc:
            raise CommandExecutionError(f"trash_disks: cannot read {cmd[0]}: {exc}")
    return tuple(out)


def _target(root, path):
    return os.path.join(root, path.lstrip("/"))


def _file(path):
    """What ``path`` holds, as disks.File."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return _disks.File("other", what="a dangling symbolic link")
        return _disks.File("missing")
    except NotADirectoryError:
        return _disks.File("other", what=f"unreachable ({os.path.dirname(path)} is not a "
                                         "directory)")
    if stat.S_ISREG(st.st_mode):
        return _disks.File("file", st.st_size)
    kinds = {stat.S_IFDIR: "a directory", stat.S_IFBLK: "a block device",
             stat.S_IFCHR: "a character device", stat.S_IFIFO: "a FIFO",
             stat.S_IFSOCK: "a socket"}
    return _disks.File("other", what=kinds.get(stat.S_IFMT(st.st_mode), "not a regular file"))


def _create_image(target, size):
    """A new sparse file of ``size`` bytes, root-only; never over an existing path. Durable
    before this returns (a fenced node is powered off)."""
    directory = os.path.dirname(target)
    _durable.makedirs(directory)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(target)  # the empty file this call has just made
        raise
    os.close(fd)
    _durable.fsync_dir(directory)


def _plan():
    """(disks.Plan of this node, the root its /local images are under)."""
    cfg = __salt__["trash.config"]()
    node = __opts__["id"]
    if node not in cfg["nodes"]:
        raise CommandExecutionError(f"trash_disks: {node!r} is not a cluster node")
    root = __opts__.get("trash_root", "/")
    vgs, lvs = _lvm()
    images = {d.path: _file(_target(root, d.path))
              for d in _disks.wanted(cfg, node) if d.kind == "image"}
    guests_dir = _target(root, GUESTS_DIR)
    found = sorted(os.listdir(guests_dir)) if os.path.isdir(guests_dir) else []
    ready = root != "/" or os.path.ismount("/local")
    return _disks.plan(cfg, node, vgs, lvs, images, ready, found), root


def disks(test=False):
    """
    Create the guests' disks that this node lacks: the logical volume of each cluster guest
    whose volume group is active here, the sparse image of each of its /local guests. Never
    resizes or removes a disk; reports one smaller than ``disk_size``. ``test=True`` shows
    what would be created, with sizes, and changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-call trash_disks.disks test=True
    """
    todo, root = _plan()
    lines = list(todo.problems) + list(todo.notes)
    if todo.refusals:
        return {"result": False, "changes": {},
                "comment": "\n".join(["refusing to create guest disks, nothing was changed:"]
                                     + list(todo.refusals) + list(todo.notes))}
    present = ", ".join(f"{d.guest} ({_disks.human(s)})" for d, s in todo.present)
    if not todo.create:
        head = f"guest disks present: {present}" if present else "no guest disk to create here"
        return {"result": not todo.problems, "changes": {}, "comment": "\n".join([head] + lines)}
    changes = {d.guest: {"old": None, "new": _disks.describe(d, size)} for d, size in todo.create}
    made = ", ".join(changes[d.guest]["new"] for d, _ in todo.create)
    if test:
        return {"result": False if todo.problems else None, "changes": changes,
                "comment": "\n".join([f"would create {made}"] + lines)}
    done = {}
    for disk, size in todo.create:
        if disk.kind == "lv":
            res = _run(_disks.lvcreate(disk.vg, disk.guest, size), env={"LC_ALL": "C"})
            if res["retcode"] != 0:
                return {"result": False, "changes": done,
                        "comment": f"lvcreate of {disk.path} failed: "
                                   f"{(res['stderr'] or res['stdout']).strip()}"}
        else:
            try:
                _create_image(_target(root, disk.path), size)
            except OSError as exc:
                return {"result": False, "changes": done,
                        "comment": f"creating {disk.path} failed: {exc}"}
        done[disk.guest] = changes[disk.guest]
    wrong = _check_lvs([(d, s) for d, s in todo.create if d.kind == "lv"])
    if wrong:
        return {"result": False, "changes": changes,
                "comment": "lvcreate reported success, but LVM now shows: " + "; ".join(wrong)}
    return {"result": not todo.problems, "changes": changes,
            "comment": "\n".join([f"created {made}"] + lines)}


def _check_lvs(created):
    """What LVM shows that differs from the LVs just created (nothing, normally)."""
    if not created:
        return []
    _, lvs = _lvm()
    have = {(lv.vg, lv.name): lv for lv in lvs}
    wrong = []
    for disk, size in created:
        lv = have.get((disk.vg, disk.guest))
        if lv is None:
            wrong.append(f"{disk.path} is missing")
        elif lv.size < disk.size:
            wrong.append(f"{disk.path} is {_disks.human(lv.size)}, not {_disks.human(size)}")
    return wrong
