"""
DRBD on a trash cluster node: internal metadata on the backing partitions.

Metadata is created only on a device that has none and holds nothing else: a
device with a filesystem, a partition table, an LVM or RAID signature or DRBD
metadata of another version is refused and left untouched. Nothing here forces a
primary or discards data.
"""

import logging
import os
import sys

from salt.exceptions import CommandExecutionError

# Every module that imports trashlib drops it first: whichever loads first after a
# sync of _utils must not pick up the copy a long-running minion still holds.
for _name in [n for n in sys.modules if n == "trashlib" or n.startswith("trashlib.")]:
    del sys.modules[_name]

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
    for name, spec in backing_devices().items():
        device = spec["device"]
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
