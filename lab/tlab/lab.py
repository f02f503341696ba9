"""The lab: two QEMU (TCG) machines wired like the trash.net servers, inside a network
namespace of their own. See lab/README.md for the wiring."""

import fcntl
import os
import pathlib
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

from . import image
from . import qmp as qmpclient
from .qga import Agent, AgentError

NETNS = os.environ.get("TRASHLAB_NS", "trashlab")
RUN = pathlib.Path(os.environ.get("TRASHLAB_RUN", "/run/trashlab"))  # sockets, pid files
MEMORY = os.environ.get("TRASHLAB_MEMORY", "1536")                 # MiB per machine
RAID_SIZE = "4G"
RAID_DISKS = ("raid", "raid2")  # /dev/vdb, /dev/vdc: the lab pillar's RAID 1 members

NODES = ("node1", "node2")
PEER = {"node1": "node2", "node2": "node1"}
INDEX = {"node1": 1, "node2": 2}

# Internet zone: one bridge, a tap per node's eth0 and eth5 (the lab pillar bonds the two,
# active-backup, as bond0); the bridge holds the pillar's gateway.
INET_BRIDGE = "br-inet"
INET_NICS = (0, 5)
# every NIC of a node: eth0-eth4 as the servers have them, eth5 the bond's second member
NICS = tuple(range(6))
INET_GATEWAY = "192.0.2.1/24"
# eth4 of each node is a point-to-point link to the PEER's BMC; the host side of the tap
# holds that BMC's address (example pillar: nodes.<peer>.bmc.address, on the node's /30).
BMC_ADDRESS = {"node1": "10.10.4.2/30", "node2": "10.10.4.6/30"}
# eth1 storage, eth2 back-channel, eth3 LAN trunk: direct cables, UDP on the netns loopback
CROSS_LINKS = {1: "storage", 2: "backchannel", 3: "lan"}
UDP_BASE = 40000


def udp_port(link, node):
    return UDP_BASE + 10 * link + INDEX[node]


def mac(node, iface):
    return f"52:54:00:00:{INDEX[node]:02x}:{iface:02x}"


def disks_dir():
    return image.cache_dir() / "run"


def logs_dir():
    return image.cache_dir() / "logs"


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def ip(*args, check=True):
    return sh(["ip", "-n", NETNS, *args], check=check)


class LabError(Exception):
    pass


# -- host tools -------------------------------------------------------------------------
HOST_TOOLS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
              "debootstrap": "debootstrap", "cpio": "cpio", "unshare": "util-linux",
              "ip": "iproute2", "mkfs.ext4": "e2fsprogs"}


def ensure_host_tools():
    if os.geteuid() != 0:
        raise LabError("the lab needs root")
    missing = {pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)}
    try:
        import yaml  # noqa: F401  (the image's package list is in salt/trash/defaults.yaml)
    except ImportError:
        missing.add("python3-yaml")
    missing = sorted(missing)
    if missing:
        say(f"trashlab: installing host packages: {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                       check=True, env=env)


# -- processes --------------------------------------------------------------------------
def marker(node):
    return f"trashlab-{node}"


def qemu_pid(node):
    """The pid of this lab's QEMU for node, or None. Found by its pid file and checked by
    its command line, so a recycled pid is never taken for ours."""
    try:
        pid = int((RUN / f"{node}.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    joined = b"\0".join(cmd)
    if f"process={marker(node)}".encode() in joined and str(RUN).encode() in joined:
        return pid
    return None


def netns_exists():
    return pathlib.Path(f"/run/netns/{NETNS}").exists()


# -- BMCs (tlab/bmc.py) -----------------------------------------------------------------
# One per machine, in the namespace, on the address the peer's eth4 reaches, port 623;
# credentials from lab/pillar. A BMC outlives its machine's power (stop/start); `down`
# stops it. It runs under the project's .venv (pyghmi), not the python running trashlab.
BMC_PORT = 623


def bmc_address(node):
    """Where node's BMC listens: the address on the tap of its PEER's eth4."""
    return BMC_ADDRESS[PEER[node]].split("/")[0]


def _venv_python():
    py = image.REPO / ".venv/bin/python"
    return str(py) if py.exists() else sys.executable


def bmc_pid(node):
    """The pid of this lab's BMC of node, or None (pid file, checked by command line)."""
    try:
        pid = int((RUN / f"{node}-bmc.pid").read_text())
        joined = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    want = b"\0".join([b"tlab.bmc", b"serve", b"--lab", node.encode(), b"--run",
                       str(RUN).encode(), b""])
    return pid if want in joined else None


def start_bmc(node, timeout=30):
    """Start node's BMC (if it is not running) and wait until it listens."""
    if bmc_pid(node):
        return
    log = logs_dir() / f"{node}-bmc.log"
    logs_dir().mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    argv = ["ip", "netns", "exec", NETNS, _venv_python(), "-m", "tlab.bmc", "serve",
            "--lab", node, "--run", str(RUN), "--log", str(log)]
    with open(log, "ab") as err:  # standard error too: a traceback would land there
        proc = subprocess.Popen(argv, cwd=image.HERE.parent, stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, start_new_session=True)
    (RUN / f"{node}-bmc.pid").write_text(str(proc.pid))  # `ip netns exec` execs: same pid
    ready, text = f"listening on {bmc_address(node)}:{BMC_PORT}", ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        if ready in text:
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop_bmc(node)
    raise LabError(f"{node}'s BMC did not start (log {log}):\n{text[-2000:]}")


def stop_bmc(node, timeout=10):
    """Stop node's BMC (by its pid, checked by its command line)."""
    pid = bmc_pid(node)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while bmc_pid(node) == pid and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if bmc_pid(node) == pid:
            os.kill(pid, signal.SIGKILL)
            while bmc_pid(node) == pid and time.monotonic() < deadline + 5:
                _reap(pid)
                time.sleep(0.1)
    (RUN / f"{node}-bmc.pid").unlink(missing_ok=True)


def _reap(pid):
    try:  # our child when this process started it (a zombie keeps its pid otherwise)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def bmc_client(node, action="status"):
    """Ask node's BMC from inside the namespace with the project's IPMI client
    (trashlib.bmc); prints its answer, returns the exit code."""
    return subprocess.run(["ip", "netns", "exec", NETNS, _venv_python(), "-m", "tlab.bmc",
                           "client", node, action], cwd=image.HERE.parent).returncode


# -- network ----------------------------------------------------------------------------
def make_network():
    if netns_exists():
        raise LabError(f"network namespace {NETNS} exists already: `trashlab down` first")
    sh(["ip", "netns", "add", NETNS])
    ip("link", "set", "lo", "up")
    ip("link", "add", INET_BRIDGE, "type", "bridge")
    ip("addr", "add", INET_GATEWAY, "dev", INET_BRIDGE)
    ip("link", "set", INET_BRIDGE, "up")
    for node in NODES:
        for iface in (*INET_NICS, 4):
            tap = f"{node}-eth{iface}"
            ip("tuntap", "add", "dev", tap, "mode", "tap")
            if iface in INET_NICS:
                ip("link", "set", tap, "master", INET_BRIDGE)
            else:
                ip("addr", "add", BMC_ADDRESS[node], "dev", tap)
            ip("link", "set", tap, "up")


def remove_network():
    if netns_exists():
        # the bridge and the taps live and die with the namespace
        sh(["ip", "netns", "del", NETNS], check=False)


# -- machines ---------------------------------------------------------------------------
def qemu_argv(node, img):
    run, disks = RUN, disks_dir()
    peer = PEER[node]
    append = (f"root=/dev/vda rw console=ttyS1,115200 net.ifnames=0 systemd.hostname={node} "
              "systemd.firstboot=off fsck.mode=skip quiet")
    a = ["nice", "-n", "10", "qemu-system-x86_64",
         "-name", f"{node},process={marker(node)}",
         "-machine", "pc,accel=tcg", "-cpu", "max", "-smp", "1", "-m", MEMORY,
         "-nodefaults", "-vga", "none", "-display", "none",
         "-daemonize", "-pidfile", str(run / f"{node}.pid"),
         "-kernel", str(img / "vmlinuz"), "-initrd", str(img / "initrd.img"),
         "-append", append,
         # /dev/vda: the system (an overlay on the cached base, discarded by `down`)
         "-drive", f"if=none,id=root,file={disks}/{node}-root.qcow2,format=qcow2,"
                   "cache=unsafe,discard=unmap",
         "-device", "virtio-blk-pci,drive=root,addr=0x4",
         # /dev/vdb and /dev/vdc: the two disks of the node's RAID 1 (empty, sparse)
         "-drive", f"if=none,id=raid,file={disks}/{node}-raid.qcow2,format=qcow2,discard=unmap",
         "-device", f"virtio-blk-pci,drive=raid,serial=raid-{node},addr=0x5",
         "-drive", f"if=none,id=raid2,file={disks}/{node}-raid2.qcow2,format=qcow2,discard=unmap",
         "-device", f"virtio-blk-pci,drive=raid2,serial=raid2-{node},addr=0x8",
         "-device", "virtio-rng-pci,addr=0x7"]
    # NICs in PCI slot order = eth0..eth5 (net.ifnames=0)
    for i in NICS:
        if i in (*INET_NICS, 4):
            a += ["-netdev", f"tap,id=net-eth{i},ifname={node}-eth{i},script=no,downscript=no"]
        else:
            a += ["-netdev", f"socket,id=net-eth{i},udp=127.0.0.1:{udp_port(i, peer)},"
                             f"localaddr=127.0.0.1:{udp_port(i, node)}"]
        # the NIC's id is the guest's name for it: set_link(node, "eth1", False) pulls a cable
        a += ["-device", f"virtio-net-pci,id=eth{i},netdev=net-eth{i},mac={mac(node, i)},"
                         f"addr=0x{0x10 + i:x}"]
    # ttyS0: the null-modem cable, node1 listens, node2 connects (and reconnects)
    cable = f"socket,id=cable,path={run}/serial-cable.sock"
    cable += ",server=on,wait=off" if node == "node1" else ",reconnect=1"
    a += ["-chardev", cable, "-serial", "chardev:cable"]
    # ttyS1: the console, a unix socket for `trashlab console`, logged to the cache
    a += ["-chardev", f"socket,id=con,path={run}/{node}.console,server=on,wait=off,"
                      f"logfile={logs_dir()}/{node}-console.log,logappend=on",
          "-serial", "chardev:con"]
    # the host->guest command channel: qemu-guest-agent on a virtio-serial port
    a += ["-chardev", f"socket,id=qga,path={run}/{node}.qga,server=on,wait=off",
          "-device", "virtio-serial-pci,addr=0x6",
          "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0"]
    # QEMU's monitors: power and cable events for the drills; QMP also for the BMCs
    a += ["-qmp", f"unix:{run}/{node}.qmp,server=on,wait=off",
          "-monitor", f"unix:{run}/{node}.monitor,server=on,wait=off"]
    return a


def create_disks(node, img):
    disks = disks_dir()
    for f in ("root", *RAID_DISKS):
        (disks / f"{node}-{f}.qcow2").unlink(missing_ok=True)
    sh(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
        str(img / "base.qcow2"), str(disks / f"{node}-root.qcow2")])
    for f in RAID_DISKS:
        sh(["qemu-img", "create", "-q", "-f", "qcow2", str(disks / f"{node}-{f}.qcow2"), RAID_SIZE])
    (logs_dir() / f"{node}-console.log").write_text("")


def start(node, img=None):
    """Power a node on (its disks persist between power cycles; `down` discards them).
    Returns at once: wait_ready([node]) waits for its boot."""
    if qemu_pid(node):
        return
    img = img or image.image_dir()
    sh(["ip", "netns", "exec", NETNS, *qemu_argv(node, img)])
    if not qemu_pid(node):
        raise LabError(f"{node}: QEMU did not start")


power_on = start


def set_link(node, iface, up):
    """Plug (up=True) or pull (False) the cable of a node's interface, e.g. "eth1"."""
    qmp(node, "set_link", name=iface, up=bool(up))


SERIAL_CHARDEV = "cable"


def serial_backend(node):
    """The serial cable's backend as QEMU has it now ("null" when pulled), from
    query-chardev's filename (e.g. "unix:/run/trashlab/serial-cable.sock,server=on")."""
    for dev in qmp(node, "query-chardev"):
        if dev["label"] == SERIAL_CHARDEV:
            return dev["filename"]
    return None


def set_serial(node, plugged):
    """Pull (False) or plug (True) the null-modem cable at node's end: QMP chardev-change
    swaps the ttyS0 chardev's backend to "null" (the UART stays, nothing reaches the other
    end: the socket is closed) and back to the cable's socket (node1 listens again on the
    same path, node2 connects again; the peer's QEMU reconnects by itself, reconnect=1)."""
    if not plugged:
        backend = {"type": "null", "data": {}}
    else:
        addr = {"type": "unix", "data": {"path": str(RUN / "serial-cable.sock")}}
        data = {"addr": addr}
        data.update({"server": True, "wait": False} if node == "node1" else
                    {"server": False, "reconnect": 1})
        backend = {"type": "socket", "data": data}
    qmp(node, "chardev-change", id=SERIAL_CHARDEV, backend=backend)


def bmc_request(node, action="status", timeout=60):
    """Like bmc_client, but returns (exit code, output) instead of printing."""
    r = subprocess.run(["ip", "netns", "exec", NETNS, _venv_python(), "-m", "tlab.bmc",
                        "client", node, action], cwd=image.HERE.parent, capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).strip()


def bmc_log(node):
    return logs_dir() / f"{node}-bmc.log"


def console_tail(node, n=25):
    try:
        lines = (logs_dir() / f"{node}-console.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def agent(node, timeout=10):
    path = RUN / f"{node}.qga"
    if not path.exists():
        # QEMU removes the socket when the machine is powered off (or never started)
        raise AgentError(f"{node} is off: its QEMU is not running")
    return Agent(path, timeout=timeout)


def ping(node, timeout=3):
    try:
        with agent(node, timeout=timeout) as a:
            a.call("guest-ping")
        return True
    except (OSError, AgentError, ValueError):
        return False


def wait_ready(nodes, timeout=600):
    """Until each node's agent answers and systemd has finished booting."""
    t0 = time.monotonic()
    pending = {n: "agent" for n in nodes}
    took = {}
    while pending:
        for node in list(pending):
            if not qemu_pid(node):
                raise LabError(f"{node}: QEMU exited during boot\n{console_tail(node)}")
            if pending[node] == "agent":
                if ping(node, timeout=2):
                    pending[node] = "systemd"
                continue
            try:
                r = run(node, "systemctl is-system-running", timeout=30)
            except AgentError:
                continue
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                took[node] = round(time.monotonic() - t0, 1)
                msg = f"{node}: up in {took[node]} s ({state})"
                if state == "degraded":
                    failed = run(node, "systemctl --failed --no-legend --plain | cut -d' ' -f1")
                    msg += ": failed units: " + " ".join(failed.stdout.split())
                say(msg)
                del pending[node]
        if pending:
            if time.monotonic() - t0 > timeout:
                raise LabError("not ready after %d s: %s\n%s" % (
                    timeout, pending, "\n".join(console_tail(n) for n in pending)))
            time.sleep(1)
    return took


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def __repr__(self):
        return f"Result(rc={self.returncode}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def run(node, command, timeout=300, input=None, check=False):
    """Run a shell command (a string, or an argv list that is quoted) in a guest as root.
    The guest kills it after `timeout` s (exit 124)."""
    if not isinstance(command, str):
        command = shlex.join(command)
    argv = ["/usr/bin/timeout", "-k", "10", str(int(timeout)), "/bin/sh", "-c", command]
    with agent(node, timeout=30) as a:
        code, out, err = a.exec(argv, timeout=timeout + 30,
                                input=input.encode() if isinstance(input, str) else input)
    r = Result(code, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and code:
        raise LabError(f"{node}: `{command}` exited {code}: {r.stderr.strip()}")
    return r


def push(node, src, dst):
    """Copy a host directory's contents into dst in the guest (a tar stream over the agent),
    e.g. the formula for `salt-call --local`."""
    data = subprocess.run(["tar", "-C", str(src), "-cf", "-", "."], check=True,
                          capture_output=True).stdout
    run(node, f"mkdir -p {shlex.quote(dst)} && tar -C {shlex.quote(dst)} -xf -",
        input=data, check=True)


def qmp(node, command, timeout=10, **arguments):
    """One command on the node's QMP monitor (set_link, chardev-change, quit…)."""
    try:
        return qmpclient.qmp(RUN / f"{node}.qmp", command, timeout=timeout, **arguments)
    except qmpclient.QmpError as exc:
        raise LabError(f"{node}: {exc}") from None


# -- the commands ----------------------------------------------------------------------------
def is_up():
    """The lab stands: its namespace, and for each node its QEMU or (a node powered off
    through its BMC has no QEMU) its BMC."""
    return netns_exists() and all(qemu_pid(n) or bmc_pid(n) for n in NODES)


class _Locked:
    """`up`, `down` and image builds, one at a time (a lock file in the cache)."""

    def __enter__(self):
        image.cache_dir().mkdir(parents=True, exist_ok=True)
        self.f = open(image.cache_dir() / ".lock", "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        self.f.close()


def up(timeout=600):
    if not (image.REPO / ".venv/bin/python").exists():
        # the BMCs need pyghmi, the image's wheels libvirt-dev: without them `up` fails
        # minutes later in a pip build
        raise LabError(f"no {image.REPO}/.venv: run ./bin/setup first (lab/README.md, "
                       "What it needs)")
    ensure_host_tools()
    with _Locked():
        return _up(timeout)


def _up(timeout):
    if is_up():
        say("trashlab: the lab is up already")
        for node in NODES:  # a lab started before the BMCs existed gets them now
            start_bmc(node)
        return
    if netns_exists() or any(qemu_pid(n) for n in NODES) or RUN.exists():
        say("trashlab: cleaning up a half-made lab first")
        _down()
    t0 = time.monotonic()
    img = image.Builder(log=say).build()
    t1 = time.monotonic()
    RUN.mkdir(parents=True, exist_ok=True)
    disks_dir().mkdir(parents=True, exist_ok=True)
    logs_dir().mkdir(parents=True, exist_ok=True)
    try:
        make_network()
        for node in NODES:
            create_disks(node, img)
            start(node, img)
        for node in NODES:
            start_bmc(node)
        took = wait_ready(NODES, timeout=timeout)
    except BaseException:
        say("trashlab: up failed, tearing down")
        _down()
        raise
    say(f"trashlab: up (image {round(t1 - t0, 1)} s, boot {max(took.values())} s)")
    return {"image_s": round(t1 - t0, 1), "boot_s": took}


def stop(node, timeout=20):
    """Power a node off hard (QEMU quits; its disks stay). Its BMC keeps running, as a
    real BMC does: IPMI power-on starts the machine again (lab.start)."""
    pid = qemu_pid(node)
    if not pid:
        return
    try:
        qmp(node, "quit", timeout=5)
    except LabError:
        pass
    deadline = time.monotonic() + timeout
    while qemu_pid(node) == pid and time.monotonic() < deadline:
        time.sleep(0.2)
    if qemu_pid(node) == pid:
        os.kill(pid, signal.SIGKILL)
        while qemu_pid(node) == pid and time.monotonic() < deadline + 10:
            time.sleep(0.2)


power_off = stop


def down():
    with _Locked():
        _down()


def _down():
    for node in NODES:
        stop_bmc(node)  # first: a BMC told to power on would start its QEMU again
    for node in NODES:
        stop(node)
    remove_network()
    shutil.rmtree(RUN, ignore_errors=True)
    shutil.rmtree(disks_dir(), ignore_errors=True)
    say("trashlab: down")


def status():
    rows = []
    for node in NODES:
        pid = qemu_pid(node)
        reach = ping(node, timeout=3) if pid else False
        rows.append((node, pid, reach))
        # no QEMU in a standing lab: powered off (through its BMC: `drill rejoin` or
        # `drill restore` powers it on)
        print(f"{node}: {'up' if pid else 'off' if bmc_pid(node) else 'down'}"
              f"{f' pid {pid}' if pid else ''}"
              f"{', agent reachable' if reach else (', agent NOT reachable' if pid else '')}")
    for node in NODES:
        bpid = bmc_pid(node)
        print(f"{node} BMC {bmc_address(node)}:{BMC_PORT}: "
              f"{f'running, pid {bpid}' if bpid else 'not running'}")
    print(f"namespace {NETNS}: {'present' if netns_exists() else 'absent'}")
    return rows


def console(node):
    path = RUN / f"{node}.console"
    if not qemu_pid(node):
        raise LabError(f"{node} is not running")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    tty = sys.stdin.isatty()
    if tty:
        import termios
        import tty as ttymod
        old = termios.tcgetattr(sys.stdin)
        ttymod.setraw(sys.stdin)
        say(f"trashlab: console of {node}; Ctrl-] leaves\r")
    try:
        s.sendall(b"\r")
        while True:
            r, _, _ = select.select([s, sys.stdin], [], [])
            if s in r:
                data = s.recv(4096)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if sys.stdin in r:
                data = os.read(sys.stdin.fileno(), 1024)
                if not data or (tty and b"\x1d" in data):
                    break
                s.sendall(data)
    finally:
        if tty:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, old)
        s.close()

