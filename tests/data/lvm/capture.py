"""Write the LVM captures of this folder from real lvm2 runs on loop devices.

Run as root from the repository root: ``.venv/bin/python tests/data/lvm/capture.py``.
LVM runs in tests/lvmsandbox.py's sandbox: a private lvm.conf that sees only two 64 MiB loop
devices and never activates (this machine's kernel has no device-mapper), lvmlockd in test
mode in a private mount namespace. ``vg_node1`` is a *shared* VG (``vgcreate --shared``, lock
type dlm) on the first, ``vg_local`` a VG without lock type on the second. Each capture is the
stdout of the exact command the module ``trash_disks`` runs (trashlib.disks ``LVS``, ``VGS``):

- ``none``: nothing visible yet (``lvs-none.json``, ``vgs-none.json``)
- ``empty``: vg_node1 just created (its lockspace started by vgcreate), no LV yet
- ``shared``: vg_node1 holding ``stinky`` (8 MiB) and ``fileserver`` (4 MiB), both created by
  the module's lvcreate command line, and ``retired`` (4 MiB, a guest that left the pillar);
  vg_local holding ``ns1`` (4 MiB)
- ``lvcreate-stopped.txt``: lvcreate's exit status and stderr on vg_node1 once its lockspace
  is stopped (``vgchange --lock-stop``), as on a node where Pacemaker has not activated it

Without device-mapper every LV's state (the 5th lv_attr character) is ``X`` (unknown); an
active LV (``a``) can only be captured on a node with device-mapper (the lab).
"""

import os
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "_utils"))

import lvmsandbox  # noqa: E402
from trashlib.disks import LVS, VGS, lvcreate  # noqa: E402


def capture(box, name):
    for kind, cmd in (("lvs", LVS), ("vgs", VGS)):
        (HERE / f"{kind}-{name}.json").write_text(box.run(*cmd).stdout)


def main():
    reason = lvmsandbox.available()
    if reason:
        sys.exit(f"capture.py: {reason}")
    with tempfile.TemporaryDirectory() as tmp, lvmsandbox.Sandbox(tmp, disks=2) as box:
        shared, local = box.loops
        capture(box, "none")
        box.run("vgcreate", "--shared", "--locktype", "dlm", "vg_node1", shared)
        capture(box, "empty")
        box.run(*lvcreate("vg_node1", "stinky", 8 << 20))
        box.run(*lvcreate("vg_node1", "fileserver", 4 << 20))
        box.run(*lvcreate("vg_node1", "retired", 4 << 20))
        box.run("vgcreate", "--locktype", "none", "vg_local", local)
        box.run(*lvcreate("vg_local", "ns1", 4 << 20))
        capture(box, "shared")
        box.run("lvchange", "--activate", "n", "vg_node1")
        box.run("vgchange", "--lock-stop", "vg_node1")
        stopped = box.run(*lvcreate("vg_node1", "shell2", 4 << 20), check=False)
        (HERE / "lvcreate-stopped.txt").write_text(
            f"exit status {stopped.returncode}\n{stopped.stderr}")
        version = box.run("lvm", "version").stdout
        (HERE / "lvm-version.txt").write_text(version)


if __name__ == "__main__":
    os.umask(0o022)
    main()
