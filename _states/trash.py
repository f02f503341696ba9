"""
States of the trash.net cluster. The work is done by the ``trash`` execution
module; these functions only translate its answers into state returns.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "trash"


def _translate(name, function, **kwargs):
    """The state return of an execution-module call that answers result/changes/comment."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        ret.update(__salt__[function](test=__opts__["test"], **kwargs))
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=str(exc))
    return ret


def __virtual__():
    if "trash.manage_files" not in __salt__:
        return False, "trash: the trash execution module is not loaded"
    return __virtualname__


def pillar_valid(name, problems=None):
    """
    Succeed when the trash pillar is valid; fail listing every problem with its key.

    problems
        The problems found when the SLS was rendered (shown by show_highstate);
        without them the pillar is validated now.

    .. code-block:: yaml

        trash-pillar-validated:
          trash.pillar_valid: []
    """
    if problems is None:
        problems = __salt__["trash.validate"]().get("problems", [])
    if not problems:
        return {"name": name, "changes": {}, "result": True, "comment": "the trash pillar is valid"}
    return {"name": name, "changes": {}, "result": False,
            "comment": f"invalid trash pillar, {len(problems)} problem(s), nothing was changed:\n"
                       + "\n".join(problems)}


def files_managed(name, concern):
    """
    Manage every file of one concern (``cluster``, ``drbd``, ``guests``) exactly as
    ``trash.render`` writes it. The real tools check new files before any is written;
    diffs never show a secret.

    .. code-block:: yaml

        trash-drbd-files-managed:
          trash.files_managed:
            - concern: drbd
    """
    return _translate(name, "trash.manage_files", concern=concern)


def pacemaker_configured(name, wait=900):
    """
    Bring the Pacemaker configuration (resources, constraints, defaults, the cluster
    properties this formula sets) to the rendered CIB. In test mode the changes name
    the predicted transition: what would start, stop, move, promote, and whom the
    cluster would fence. The first configuration (the one that brings the fence
    devices) waits up to ``wait`` seconds for every node to be online in Pacemaker.

    .. code-block:: yaml

        trash-pacemaker-configured:
          trash.pacemaker_configured: []
    """
    return _translate(name, "trash.cib_apply", wait=wait)


def drbd_metadata(name):
    """
    Create DRBD internal metadata on this node's backing devices that have none;
    refuse (changing nothing) when a device holds anything else.

    .. code-block:: yaml

        trash-drbd-metadata-created:
          trash.drbd_metadata: []
    """
    return _translate(name, "trash_drbd.metadata")


def drbd_initial_sync(name, timeout=600):
    """
    Give every new mirror its first UpToDate copy, once: on the node named by
    ``trash:drbd:initial_sync_source``, and only while neither side has held data;
    the other node brings its new resources up as the sync target.

    .. code-block:: yaml

        trash-drbd-initial-sync:
          trash.drbd_initial_sync: []
    """
    return _translate(name, "trash_drbd.initial_sync", timeout=timeout)


def corosync_reloaded(name):
    """
    Make the running corosync take the rendered corosync.conf without a restart; fail
    naming what only a restart can change.

    .. code-block:: yaml

        trash-corosync-reloaded:
          trash.corosync_reloaded: []
    """
    return _translate(name, "trash.corosync_reload")


def storage_raid(name):
    """
    Create (on members that hold nothing) or assemble (from its own superblocks) this
    node's software RAID array and name it in mdadm.conf; refuse anything else. A node
    without ``trash:nodes:<node>:raid`` has nothing to do.

    .. code-block:: yaml

        trash-storage-raid:
          trash.storage_raid: []
    """
    return _translate(name, "trash_storage.raid")


def storage_layout(name):
    """
    Create the partitions of ``trash:storage`` that this node's disk lacks; refuse
    (changing nothing) a disk with another table, differing partitions, or a
    signature where a partition would be created. Test mode shows the plan.

    .. code-block:: yaml

        trash-storage-partitions-created:
          trash.storage_layout: []
    """
    return _translate(name, "trash_storage.layout")


def storage_filesystems(name):
    """
    Make the filesystems and swap of ``trash:storage`` on partitions that hold
    nothing; a partition holding anything else is refused, never reformatted.

    .. code-block:: yaml

        trash-storage-filesystems-created:
          trash.storage_filesystems: []
    """
    return _translate(name, "trash_storage.filesystems")


def storage_mounted(name):
    """
    Add the partitions' fstab entries, mount them and enable swap; accept matching
    existing entries and mounts, refuse ones that name another device.

    .. code-block:: yaml

        trash-storage-mounted:
          trash.storage_mounted: []
    """
    return _translate(name, "trash_storage.mounts")


def guests_defined(name):
    """
    Define this node's /local guests in libvirt as the pillar says, with autostart;
    never undefine or destroy a domain.

    .. code-block:: yaml

        trash-guests-local-defined:
          trash.guests_defined: []
    """
    return _translate(name, "trash_guests.defined")


def guest_disks(name):
    """
    Create the guests' disks this node lacks: each cluster guest's logical volume where its
    volume group is active, each /local guest's sparse image; never shrink, grow or remove
    one. Test mode shows what would be created, with sizes.

    .. code-block:: yaml

        trash-guest-disks-created:
          trash.guest_disks: []
    """
    return _translate(name, "trash_disks.disks")


def ifupdown_released(name):
    """
    Take the links networkd configures away from /etc/network/interfaces (ifupdown),
    keeping everything else; effective from the next boot.

    .. code-block:: yaml

        trash-ifupdown-released:
          trash.ifupdown_released: []
    """
    return _translate(name, "trash.ifupdown_release")


def units_at_boot(name, enable=(), disable=()):
    """
    The systemd units ``enable`` enabled and ``disable`` disabled at boot, without a
    manager reload each (``trash-systemd-reloaded`` reloads once).

    .. code-block:: yaml

        trash-corosync-at-boot:
          trash.units_at_boot:
            - enable: [corosync]
            - onchanges_in:
              - cmd: trash-systemd-reloaded
    """
    return _translate(name, "trash.units_at_boot", enable=enable, disable=disable)
