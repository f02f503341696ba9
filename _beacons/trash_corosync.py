"""
Beacon: corosync membership, quorum and heartbeat links of a trash cluster node.

Fires only on change; the first poll after a (re)load records a baseline. Each
event's tag ends in what changed, its data names the reporting node, the old and
the new value and a timestamp:

- ``salt/beacon/<id>/trash_corosync/membership``: ``subject`` the node, ``old``
  member/absent, ``new`` member/lost
- ``salt/beacon/<id>/trash_corosync/quorum``: quorate / not quorate
- ``salt/beacon/<id>/trash_corosync/link/<zone>``: the link to the peer on
  back-channel, storage or serial, connected / disconnected
- ``salt/beacon/<id>/trash_corosync/corosync``: running / stopped

.. code-block:: yaml

    beacons:
      trash_corosync:
        - interval: 5
"""

import time

__virtualname__ = "trash_corosync"


def __virtual__():
    return __virtualname__


def validate(config):
    """The configuration is a list of dicts; only ``interval`` is known."""
    if not isinstance(config, list):
        return False, "trash_corosync: the configuration must be a list"
    for item in config:
        if not isinstance(item, dict):
            return False, "trash_corosync: each item of the configuration must be a dict"
        unknown = set(item) - {"interval"}
        if unknown:
            return False, f"trash_corosync: unknown option(s) {', '.join(sorted(unknown))}"
    return True, "valid beacon configuration"


def beacon(config):
    """Compare corosync's view with the last poll; one event per change."""
    now = __salt__["trash.corosync_snapshot"](cached=True)
    last = __context__.get("trash_corosync.last")
    __context__["trash_corosync.last"] = now
    if last is None:
        return []
    stamp = time.time()
    node = __opts__["id"]
    return [dict(event, node=node, timestamp=stamp) for event in __salt__["trash.corosync_events"](last, now)]
