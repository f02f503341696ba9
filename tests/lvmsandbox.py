"""Real LVM on loop devices on a machine without device-mapper, without touching the host's LVM.

- A private ``lvm.conf`` (``LVM_SYSTEM_DIR``) sees only the sandbox's loop devices, never
  activates (``global/activation = 0``: LVM writes metadata only, and ``lvs`` reports the
  state of every LV as ``X``, unknown) and uses lvmlockd (``global/use_lvmlockd = 1``).
- lvmlockd runs in test mode (``-T``: no lock manager, so no corosync or dlm is needed) with
  ``-g dlm``, inside a private mount namespace whose ``/run`` is a tmpfs: LVM's commands
  look for ``/run/lvmlockd.pid`` and ``/run/lvm/lvmlockd.socket``, and the host's ``/run``
  stays untouched. Every LVM command runs in that namespace (``nsenter``).

So a *shared* VG of lock type dlm can be created (``vgcreate --shared``), its lockspace
started and stopped, and LVs created in it by the very command line the formula uses. What
cannot be had here: an active LV (no device-mapper), hence lv_attr's state ``a``.

Findings on lvm2 2.03.16 that this relies on: lvmlockd aborts (``munmap_chunk(): invalid
pointer``) when ``LVM_LVMLOCKD_SOCKET`` is set in its own environment; it neither quits on
``lvmlockctl --quit`` nor on SIGTERM while a lockspace is started (the global lockspace that any
LVM command joins included), and a VG's lockspace stops only once its LVs' locks are released
(``vgchange --activate n``, then ``lvmlockctl --stop-lockspaces``).
"""

import os
import pathlib
import shutil
import subprocess
import time

LVM_COMMANDS = {"lvs", "vgs", "pvs", "lvcreate", "lvchange", "vgchange", "vgcreate",
                "pvcreate", "lvextend", "lvmlockctl", "lvm"}


class Sandbox:
    def __init__(self, workdir, disks=1, size=64 << 20):
        self.workdir = pathlib.Path(workdir)
        self.loops = []
        self.proc = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(disks):
                image = self.workdir / f"pv{i}.img"
                with open(image, "wb") as handle:
                    handle.truncate(size)
                self.loops.append(subprocess.run(
                    ["losetup", "--find", "--show", str(image)], check=True,
                    capture_output=True, text=True).stdout.strip())
            self._configure()
            self._start()
        except BaseException:
            self.close()
            raise

    def _configure(self):
        etc = self.workdir / "etc"
        etc.mkdir(exist_ok=True)
        (self.workdir / "lock").mkdir(exist_ok=True)
        accept = ", ".join(f'"a|^{loop}$|"' for loop in self.loops)
        (etc / "lvm.conf").write_text(f"""\
devices {{
    global_filter = [ {accept}, "r|.*|" ]
    use_devicesfile = 0
    obtain_device_list_from_udev = 0
}}
global {{
    use_lvmlockd = 1
    activation = 0
    locking_dir = "{self.workdir / 'lock'}"
}}
activation {{
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}}
backup {{
    backup = 0
    archive = 0
}}
""")
        self.env = {"LVM_SYSTEM_DIR": str(etc), "LVM_SUPPRESS_FD_WARNINGS": "1"}

    def _start(self):
        env = {k: v for k, v in os.environ.items() if k != "LVM_LVMLOCKD_SOCKET"}
        env.update(self.env)
        self.log = open(self.workdir / "lvmlockd.log", "wb")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs trash-lvm-sandbox /run && mkdir -p /run/lvm && "
             "exec lvmlockd -T -f -g dlm -A 0"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while self.run("test", "-S", "/run/lvm/lvmlockd.socket", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("lvmlockd (test mode) did not start: "
                                   + (self.workdir / "lvmlockd.log").read_text())
            time.sleep(0.05)

    def prefix(self):
        """The command prefix that runs a command in the sandbox's mount namespace."""
        return ["nsenter", "--target", str(self.proc.pid), "--mount", "--"]

    def run(self, *cmd, check=True):
        proc = subprocess.run(self.prefix() + list(cmd), capture_output=True, text=True,
                              env=dict(os.environ, **self.env), check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: rc {proc.returncode}: {proc.stderr}")
        return proc

    def run_all(self, base):
        """A ``cmd.run_all`` that runs LVM's commands in the sandbox and everything else
        through ``base`` (modload.run_all)."""
        def run_all(cmd, env=None, **kwargs):
            if cmd and os.path.basename(cmd[0]) in LVM_COMMANDS:
                cmd = self.prefix() + list(cmd)
            return base(cmd, env=dict(env or {}, **self.env), **kwargs)
        return run_all

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                # lvmlockd ignores SIGTERM while a lockspace is started (the global one too,
                # which any LVM command joins), and a VG's lockspace stops only once its LVs'
                # locks are released
                self.run("vgchange", "--activate", "n", check=False)
                self.run("lvmlockctl", "--stop-lockspaces", check=False)
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.log.close()
            self.proc = None
        for loop in self.loops:
            subprocess.run(["losetup", "--detach", loop], check=False)
        self.loops = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def available():
    """None when the sandbox can run here, else why not."""
    if os.geteuid() != 0:
        return "loop devices and namespaces need root"
    missing = [t for t in ("lvm", "lvmlockd", "losetup", "unshare", "nsenter")
               if shutil.which(t) is None]
    return f"missing {', '.join(missing)} (lvm2, lvm2-lockd, util-linux)" if missing else None
