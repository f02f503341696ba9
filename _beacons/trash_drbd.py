"""
Beacon: the DRBD mirrors of a trash cluster node, from /proc/drbd (DRBD 8.4).

Fires only on change; the first poll after a (re)load records a baseline. For each
resource of ``trash:drbd:resources`` and each of its connection state, this node's
role, this node's disk state and the peer's disk state, a change is one event:

- ``salt/beacon/<id>/trash_drbd/<resource>/connection``: e.g. Connected → WFConnection
  (the peer or the storage link is gone), StandAlone (split brain or refused)
- ``salt/beacon/<id>/trash_drbd/<resource>/role``: Secondary → Primary
- ``salt/beacon/<id>/trash_drbd/<resource>/disk``: UpToDate → Inconsistent, Outdated, ...
- ``salt/beacon/<id>/trash_drbd/<resource>/peer_disk``: UpToDate → DUnknown, Outdated, ...

Each carries ``subject`` (the resource), ``old``, ``new``, ``node`` and ``timestamp``.
A resource that is not up reads as Unconfigured. Minion option ``trash_proc_drbd``
reads another file than /proc/drbd.

.. code-block:: yaml

    beacons:
      trash_drbd:
        - interval: 5
"""

import sys
import time

# Every module that imports trashlib drops it first (see _modules/trash.py).
for _name in [n for n in sys.modules if n == "trashlib" or n.startswith("trashlib.")]:
    del sys.modules[_name]

from trashlib import drbd as _drbd  # noqa: E402

__virtualname__ = "trash_drbd"


def __virtual__():
    return __virtualname__


def validate(config):
    """The configuration is a list of dicts; only ``interval`` is known."""
    if not isinstance(config, list) or not all(isinstance(i, dict) for i in config):
        return False, "trash_drbd: the configuration must be a list of dicts"
    unknown = {k for item in config for k in item} - {"interval"}
    if unknown:
        return False, f"trash_drbd: unknown option(s) {', '.join(sorted(unknown))}"
    return True, "valid beacon configuration"


def _read():
    try:
        with open(__opts__.get("trash_proc_drbd", "/proc/drbd"), encoding="utf-8") as f:
            return _drbd.parse_proc_drbd(f.read())
    except OSError:  # the module is not loaded: every resource is down
        return {}


def beacon(config):
    """Compare /proc/drbd with the last poll; one event per change."""
    now = _read()
    last = __context__.get("trash_drbd.last")
    __context__["trash_drbd.last"] = now
    if last is None:
        return []
    cfg = __salt__["trash.config"](cached=True)  # in-process; the current pillar
    stamp = time.time()
    node = __opts__["id"]
    return [dict(event, node=node, timestamp=stamp) for event in _drbd.events(cfg, last, now)]
