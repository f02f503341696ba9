"""The lab's base image: Debian 12 with the stock kernel and the cluster's packages.

Built once and cached under CACHE/images/<key>/, where <key> is a hash of this file
and of the Salt pins (requirements.txt): change either and the next `up` rebuilds.
Everything runs on the host: debootstrap and apt-get into a directory (Debian's mirror),
pip wheels built on the host and installed into a venv inside the image, then
`mkfs.ext4 -d` and `qemu-img convert`. No loop device, no mount on the host: the chroot's
/proc and /dev live in a private mount namespace (`unshare -m`) that dies with the build.
"""

import hashlib
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
REQUIREMENTS = REPO / "requirements.txt"

MIRROR = os.environ.get("TRASHLAB_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
SALT = "salt==3008.4"              # as pinned in requirements.txt
SALT_VENV = "/opt/saltstack/venv"  # salt-call, salt-minion, salt-master symlinked into /usr/local/bin
# Also in Salt's venv, for the formula's modules in the nodes: pyghmi (trash_bmc) and
# libvirt-python (trash_guests), at the versions requirements.txt pins (see pinned()).
SALT_VENV_EXTRAS = ("pyghmi", "libvirt-python")
ROOT_SIZE = "8G"                   # sparse: the qcow2 holds only what is used

# What the formula installs (trash:packages in salt/trash/defaults.yaml: the image has the
# same, so the lab's state.apply finds them installed), plus the lab's own plumbing.
DEFAULTS = REPO / "salt/trash/defaults.yaml"


def formula_packages():
    import yaml  # the host's: bin/setup installs python3-yaml
    return yaml.safe_load(DEFAULTS.read_text())["trash"]["packages"]


LAB_PACKAGES = [
    "linux-image-amd64",
    "iputils-ping", "bridge-utils", "parted", "gdisk", "tcpdump",
    "python3", "python3-venv",
    "dbus", "netbase", "kmod", "udev", "procps", "psmisc", "less", "ca-certificates",
    # the lab's plumbing: host->guest commands over virtio-serial; the initramfs's shell
    "qemu-guest-agent", "busybox-static",
    # the lab pillar's software RAID: trash.packages adds mdadm on such a node, and the
    # lab's nodes have no mirror to fetch it from
    "mdadm",
]


def all_packages():
    return formula_packages() + LAB_PACKAGES

# Enabled by their packages, started by the formula when it is time: not at the lab's boot
# (each costs seconds of TCG, and a corosync with Debian's default config is not wanted).
DISABLED_UNITS = [
    "corosync", "pacemaker", "libvirtd", "libvirt-guests", "virtlogd", "virtlockd",
    "chrony", "nftables",
    # Debian enables dlm.service, whose Requires= would start corosync at the first boot
    # with Debian's example configuration (a real server meets that: README, step 5).
    # lvmlockd.service and lvmlocks.service stay enabled as Debian has them: the formula
    # disables them (trash-pacemaker-owns-lock-and-mirror-daemons)
    "dlm",
    "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer",
    "e2scrub_reap", "fstrim.timer", "logrotate.timer",
    # mdadm's monthly check would read both RAID disks in whatever test runs then
    "mdcheck_start.timer", "mdcheck_continue.timer", "mdmonitor-oneshot.timer",
]

# modules the initramfs loads (with their dependencies) before it mounts /dev/vda
INITRAMFS_MODULES = ["crc32c_generic", "virtio_pci", "virtio_blk", "virtio_net", "ext4"]

INITRAMFS_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /lib/modules/$m 2>/dev/null; done
root=/dev/vda
for arg in $(cat /proc/cmdline); do case $arg in root=*) root=${arg#root=};; esac; done
i=0
while [ ! -b $root ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o rw $root /newroot || { echo "initramfs: cannot mount $root"; sleep 5; reboot -f; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
"""

GUEST_FILES = {
    "/etc/fstab": "/dev/vda / ext4 defaults,discard 0 1\n",
    "/etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    # no nameserver: lookups fail at once instead of timing out (Salt resolves its FQDN)
    "/etc/resolv.conf": "",
    "/etc/network/interfaces": "auto lo\niface lo inet loopback\n"
                               "source /etc/network/interfaces.d/*\n",
    # hostname comes from the kernel command line (systemd.hostname=); make it permanent
    "/etc/systemd/system/trashlab-hostname.service": """\
[Unit]
Description=trashlab: persist the hostname given on the kernel command line
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/trashlab-hostname

[Install]
WantedBy=sysinit.target
""",
    "/usr/local/sbin/trashlab-hostname": """\
#!/bin/sh
h=$(hostname)
[ "$(cat /etc/hostname 2>/dev/null)" = "$h" ] || echo "$h" > /etc/hostname
grep -qw "$h" /etc/hosts || echo "127.0.1.1 $h.trash.net $h" >> /etc/hosts
""",
    # the console (ttyS1, a unix socket on the host) logs root in: the lab is local only
    "/etc/systemd/system/serial-getty@ttyS1.service.d/autologin.conf": """\
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 - $TERM
""",
    # ttyS0 is the null-modem cable to the peer: no getty, no console on it
    "/etc/sysctl.d/50-trashlab.conf": "kernel.printk = 4 4 1 7\n",
    "/etc/salt/minion.d/.keep": "",
}


GUEST_KERNEL = "/usr/lib/trashlab/halt.bin"  # the lab pillar's guest_defaults:kernel


def halt_kernel():
    """A multiboot kernel (QEMU loads it with -kernel) that halts the CPU with interrupts
    off: a started nested guest then costs its TCG node ≈3 % of the vCPU, where SeaBIOS
    looking for something to boot kept 9-15 % per guest (measured 2026-11-28)."""
    load, magic, flags = 0x100000, 0x1BADB002, 0x00010000  # flag 16: the address fields
    code = bytes([0xFA, 0xF4, 0xEB, 0xFD])  # cli; hlt; jmp to the hlt
    entry = load + 32
    end = entry + len(code)
    return struct.pack("<8I", magic, flags, -(magic + flags) & 0xFFFFFFFF,
                       load, load, end, end, entry) + code


def pinned(name):
    """``name==version`` as requirements.txt pins it (the wheel cache may hold others)."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.split("==")[0].strip().lower() == name.lower():
            return line.strip()
    raise RuntimeError(f"{name} is not pinned in {REQUIREMENTS}")


def cache_dir():
    return pathlib.Path(os.environ.get("TRASHLAB_CACHE", "/var/cache/trashlab"))


def key():
    h = hashlib.sha256()
    h.update(pathlib.Path(__file__).read_bytes())
    h.update(REQUIREMENTS.read_bytes() if REQUIREMENTS.exists() else b"")
    h.update(" ".join(all_packages()).encode())
    return h.hexdigest()[:16]


def image_dir():
    return cache_dir() / "images" / key()


def ready():
    return (image_dir() / "manifest.json").exists()


class Builder:
    def __init__(self, log=print):
        self.cache = cache_dir()
        self.key = key()
        self.final = image_dir()
        self.work = self.cache / f"build-{self.key}"
        self.root = self.work / "root"
        self.logpath = self.cache / "logs" / f"build-{self.key}.log"
        self.say = log
        self.times = {}

    # -- helpers ---------------------------------------------------------------
    def run(self, cmd, **kw):
        with open(self.logpath, "a") as logf:
            logf.write(f"\n$ {cmd if isinstance(cmd, str) else ' '.join(map(str, cmd))}\n")
            logf.flush()
            r = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT,
                               shell=isinstance(cmd, str), **kw)
        if r.returncode:
            raise RuntimeError(f"image build failed (exit {r.returncode}) in: {cmd}\n"
                               f"see {self.logpath}")

    def chroot(self, script, binds=()):
        """Run a shell script in the image root, /proc /sys /dev mounted in a private
        mount namespace that disappears with the command."""
        r = str(self.root)
        mounts = [f"mount -t proc proc {r}/proc", f"mount -t sysfs sys {r}/sys",
                  f"mount --bind /dev {r}/dev", f"mount -t tmpfs tmpfs {r}/tmp"]
        for src, dst in binds:
            mounts.append(f"mkdir -p {r}{dst} && mount --bind {src} {r}{dst}")
        env = ("env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "
               "DEBIAN_FRONTEND=noninteractive")
        inner = " && ".join(mounts) + f" && {env} chroot {r} /bin/sh -ec {shquote(script)}"
        self.run(["unshare", "--mount", "--propagation", "private", "--fork",
                  "sh", "-ec", inner])

    def step(self, name, fn):
        t = time.monotonic()
        self.say(f"  image: {name} ...")
        fn()
        self.times[name] = round(time.monotonic() - t, 1)
        self.say(f"  image: {name} done in {self.times[name]} s")

    # -- the build -------------------------------------------------------------
    def build(self):
        if ready():
            return self.final
        self.logpath.parent.mkdir(parents=True, exist_ok=True)
        self.logpath.write_text("")
        for tool in ("debootstrap", "qemu-img", "mkfs.ext4", "cpio", "unshare"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} missing on the host (trashlab deps)")
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        t0 = time.monotonic()
        self.say(f"building the base image {self.key} (log: {self.logpath})")
        self.step("debootstrap", self.debootstrap)
        self.step("packages", self.packages)
        self.step("salt", self.salt)
        self.step("configure", self.configure)
        self.step("kernel+initramfs", self.kernel)
        self.step("disk image", self.disk)
        self.times["total"] = round(time.monotonic() - t0, 1)
        (self.work / "out" / "manifest.json").write_text(json.dumps(
            {"key": self.key, "packages": all_packages(), "salt": SALT,
             "salt_venv_extras": [pinned(n) for n in SALT_VENV_EXTRAS], "times": self.times,
             "kernel": self.kver}, indent=1))
        self.final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.final, ignore_errors=True)
        os.rename(self.work / "out", self.final)
        shutil.rmtree(self.work, ignore_errors=True)
        # images of older keys (a changed build or Salt pin) are of no further use
        for old in [*(self.cache / "images").iterdir(), *self.cache.glob("build-*")]:
            if old.name not in (self.key, self.logpath.name) and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        self.say(f"base image ready in {self.times['total']} s: {self.final}")
        return self.final

    def debootstrap(self):
        debs = self.cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        self.run(["nice", "-n", "10", "debootstrap", "--variant=minbase",
                  f"--cache-dir={debs}", "--include=systemd-sysv,ifupdown,apt-utils",
                  SUITE, str(self.root), MIRROR])

    def packages(self):
        r = self.root
        (r / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        os.chmod(r / "usr/sbin/policy-rc.d", 0o755)
        (r / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} {SUITE} main\n"
            f"deb {MIRROR} {SUITE}-updates main\n"
            f"deb {MIRROR.replace('/debian', '/debian-security')} {SUITE}-security main\n")
        (r / "etc/apt/apt.conf.d/90trashlab").write_text(
            'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n')
        shutil.copy("/etc/resolv.conf", r / "etc/resolv.conf")
        archives = self.cache / "debs"
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        self.chroot(
            # the lab boots its own kernel and initramfs: the image never builds one
            # (it would take minutes under TCG on every package trigger, too)
            "dpkg-divert --local --rename --add /usr/sbin/update-initramfs\n"
            "ln -sf /bin/true /usr/sbin/update-initramfs\n"
            "apt-get update -q\n"
            "nice -n 10 apt-get install -y -q -o Dpkg::Options::=--force-confold "
            + " ".join(all_packages()) + "\n",
            binds=[(archives, "/var/cache/apt/archives")])

    def salt(self):
        wheels = self.cache / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        py = REPO / ".venv/bin/python"
        py = str(py) if py.exists() else sys.executable
        cons = ["-c", str(REQUIREMENTS)] if REQUIREMENTS.exists() else []
        # libvirt-python has no wheel on PyPI: pip builds it here (gcc, pkg-config and
        # libvirt-dev on the host: bin/setup installs them) against Debian 12's libvirt,
        # which the image has too
        extras = [pinned(name) for name in SALT_VENV_EXTRAS]
        self.run(["nice", "-n", "10", py, "-m", "pip", "wheel", "-q",
                  "--disable-pip-version-check", "-w", str(wheels), *cons, SALT, *extras])
        self.chroot(
            f"python3 -m venv {SALT_VENV}\n"
            f"{SALT_VENV}/bin/pip install -q --disable-pip-version-check --no-index "
            f"--find-links /mnt/wheels {SALT} {' '.join(extras)}\n"
            f"{SALT_VENV}/bin/python -c 'import pyghmi.ipmi.command, libvirt'\n"
            "for b in salt salt-call salt-minion salt-master salt-key salt-run; do\n"
            f"  ln -sf {SALT_VENV}/bin/$b /usr/local/bin/$b\n"
            "done\n",
            binds=[(wheels, "/mnt/wheels")])

    def configure(self):
        r = self.root
        for path, text in GUEST_FILES.items():
            p = r / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            if "/sbin/" in path or "/bin/" in path:
                os.chmod(p, 0o755)
        self.chroot(
            "systemctl enable trashlab-hostname.service\n"
            "for u in " + " ".join(DISABLED_UNITS) + "; do systemctl disable $u 2>/dev/null || true; done\n"
            "systemctl mask systemd-firstboot.service\n"
            "rm -f /etc/hostname /etc/ssh/ssh_host_*\n"
            "apt-get clean\n"
            "rm -rf /var/lib/apt/lists/*\n")
        kernel = r / GUEST_KERNEL.lstrip("/")
        kernel.parent.mkdir(parents=True, exist_ok=True)
        kernel.write_bytes(halt_kernel())
        os.chmod(kernel, 0o644)
        # an empty machine-id: each machine makes its own at first boot (else identical MACs)
        (r / "etc/machine-id").write_text("")
        p = r / "var/lib/dbus/machine-id"
        if p.is_symlink() or p.exists():
            p.unlink()
        (r / "etc/resolv.conf").write_text("")
        (r / "usr/sbin/policy-rc.d").unlink()

    def kernel(self):
        out = self.work / "out"
        out.mkdir(exist_ok=True)
        kvers = sorted(p.name for p in (self.root / "lib/modules").iterdir())
        self.kver = kver = kvers[-1]
        shutil.copy(self.root / f"boot/vmlinuz-{kver}", out / "vmlinuz")
        moddir = self.root / f"lib/modules/{kver}"
        deps = {}
        for line in (moddir / "modules.dep").read_text().splitlines():
            mod, _, rest = line.partition(":")
            deps[pathlib.Path(mod).name.split(".ko")[0].replace("-", "_")] = (mod, rest.split())
        byrel = {v[0]: k for k, v in deps.items()}
        order = []

        def add(name):
            if name not in deps:  # built into the kernel
                return
            for dep in reversed(deps[name][1]):
                add(byrel[dep])
            if deps[name][0] not in order:
                order.append(deps[name][0])

        for m in INITRAMFS_MODULES:
            add(m)
        ird = self.work / "initramfs"
        for d in ("bin", "proc", "sys", "dev", "newroot", "lib/modules"):
            (ird / d).mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / "bin/busybox", ird / "bin/busybox")
        names = []
        for rel in order:
            src = moddir / rel
            dst = ird / "lib/modules" / pathlib.Path(rel).name
            if rel.endswith(".xz"):
                self.run(f"xz -dc {src} > {dst.with_suffix('')}")
                dst = dst.with_suffix("")
            elif rel.endswith(".zst"):
                self.run(f"zstd -qdc {src} > {dst.with_suffix('')}")
                dst = dst.with_suffix("")
            else:
                shutil.copy(src, dst)
            names.append(dst.name)
        (ird / "modules.list").write_text("\n".join(names) + "\n")
        (ird / "init").write_text(INITRAMFS_INIT)
        os.chmod(ird / "init", 0o755)
        self.run(f"cd {ird} && find . | cpio -o -H newc --quiet | gzip -1 > {out}/initrd.img")

    def disk(self):
        out = self.work / "out"
        raw = self.work / "root.raw"
        self.run(["truncate", "-s", ROOT_SIZE, str(raw)])
        self.run(["nice", "-n", "10", "mkfs.ext4", "-q", "-F", "-L", "trashroot",
                  "-E", "lazy_itable_init=1,lazy_journal_init=1",
                  "-d", str(self.root), str(raw)])
        self.run(["nice", "-n", "10", "qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                  str(raw), str(out / "base.qcow2")])
        raw.unlink()


def shquote(s):
    return "'" + s.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    Builder().build()
