"""
States of the trash.net cluster. The work is done by the ``trash`` execution
module; these functions only translate its answers into state returns.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "trash"


def __virtual__():
    if "trash.manage_files" not in __salt__:
        return False, "trash: the trash execution module is not loaded"
    return __virtualname__


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
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        ret.update(__salt__["trash.manage_files"](concern, test=__opts__["test"]))
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=str(exc))
    return ret
