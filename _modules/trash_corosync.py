"""
corosync as a trash cluster node sees it: membership, quorum and each heartbeat
link named by its zone (back-channel, storage, serial).
"""

from trashlib import corosync as _corosync

__virtualname__ = "trash_corosync"

# a wedged corosync must not block the caller (a beacon runs in the minion's loop)
TIMEOUT = 10


def __virtual__():
    if "trash.config" not in __salt__:
        return False, "trash_corosync: the trash execution module is not loaded"
    return __virtualname__


def _ask(cmd):
    return __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True,
                                   output_loglevel="quiet", timeout=TIMEOUT)


def snapshot():
    """
    Membership, quorum and the state of each heartbeat link to the peer, by zone.

    CLI Example:

    .. code-block:: bash

        salt-call trash_corosync.snapshot
    """
    cfg = __salt__["trash.config"]()
    node = __opts__["id"]
    links = quorum = None
    probe = _ask(["corosync-cfgtool", "-s"])
    if probe["retcode"] == 0:
        links = _corosync.parse_links(probe["stdout"])
        answer = _ask(["corosync-quorumtool", "-s"])
        # quorumtool exits non-zero when not quorate, and still says why
        if "Quorum information" in answer["stdout"]:
            quorum = _corosync.parse_quorum(answer["stdout"])
    return _corosync.snapshot(cfg, node, links, quorum)


def events(old, new):
    """
    The changes between two snapshots, one event each (used by the trash_corosync beacon).

    CLI Example:

    .. code-block:: bash

        salt-call trash_corosync.events "$OLD_SNAPSHOT" "$NEW_SNAPSHOT"
    """
    return _corosync.events(old, new)
