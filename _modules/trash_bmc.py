"""
The BMCs this node fences through (R4): each one's address and its machine's power state.

A node fences its peer through the peer's BMC, with the password the formula wrote to the
root-only file ``/etc/trash/fence/<peer>.password`` (the same file the Pacemaker fence device
reads through ``password_script``). The password is read here, handed to the IPMI client
(``trashlib.bmc``, over pyghmi) and never returned or logged.

Minion option ``trash_root`` (default ``/``): where the password file is looked for, as
``trash.manage_files`` writes it.
"""

import logging
import os
import sys

from salt.exceptions import CommandExecutionError

# Every module that imports trashlib drops it first (see _modules/trash.py).
for _name in [n for n in sys.modules if n == "trashlib" or n.startswith("trashlib.")]:
    del sys.modules[_name]

try:
    import pyghmi  # noqa: F401  (trashlib.bmc imports it when it talks to a BMC)

    HAS_PYGHMI = True
except ImportError:
    HAS_PYGHMI = False

from trashlib import bmc as _bmc  # noqa: E402
from trashlib import cib as _cib  # noqa: E402

log = logging.getLogger(__name__)

__virtualname__ = "trash_bmc"


def __virtual__():
    if not HAS_PYGHMI:
        return False, "trash_bmc: pyghmi is not installed"
    if "trash.config" not in __salt__:
        return False, "trash_bmc: the trash execution module is not loaded"
    return __virtualname__


def _password(path):
    """(password, None) or (None, why not). Read as fence_ipmilan reads the output of
    ``password_script``: trailing white space stripped."""
    try:
        with open(path, encoding="utf-8") as f:
            password = f.read().rstrip()
    except FileNotFoundError:
        return None, f"no password file {path} (the formula writes it: not applied yet?)"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read the password file {path}: {getattr(exc, 'strerror', exc)}"
    if not password:
        return None, f"the password file {path} is empty"
    return password, None


def status(timeout=10):
    """
    For each node this node may fence (its peer): the BMC's address, port and user name,
    and the power state it reports: ``on``, ``off``, or ``unreachable`` with the reason
    (no answer, login refused, no password file, ...). The password is never shown.

    CLI Example:

    .. code-block:: bash

        salt-call trash_bmc.status
        salt-call trash_bmc.status timeout=5
    """
    cfg = __salt__["trash.config"]()
    node = __opts__["id"]
    if node not in cfg["nodes"]:
        raise CommandExecutionError(
            f"trash_bmc: {node!r} is not a cluster node (trash:nodes has {', '.join(cfg['nodes'])})")
    root = __opts__.get("trash_root", "/")
    out = {}
    for target in sorted(cfg["nodes"]):
        if target == node:  # a node never runs the device that fences itself
            continue
        bmc = cfg["nodes"][target]["bmc"]
        secret = _cib.fence_secret_path(target)
        entry = {"address": bmc["address"], "port": bmc["port"], "username": bmc["username"],
                 "password_file": secret}
        password, problem = _password(os.path.join(root, secret.lstrip("/")))
        if problem:
            entry.update(state=_bmc.UNREACHABLE, reason=problem)
        else:
            entry.update(_bmc.probe(bmc["address"], bmc["port"], bmc["username"], password,
                                    timeout=float(timeout)))
        del password
        if entry["state"] == _bmc.UNREACHABLE:
            log.warning("trash_bmc: %s's BMC %s:%s: %s", target, bmc["address"], bmc["port"],
                        entry["reason"])
        out[target] = entry
    return out
