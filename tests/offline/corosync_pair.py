"""A real two-node corosync cluster on this machine: one network namespace per node.

Each heartbeat link of the pillar is a veth pair between the namespaces carrying
the nodes' addresses of that zone; node2 also gets its own /run (corosync keeps a
lock file there). Only the namespaces made here carry traffic.
"""

import contextlib
import os
import subprocess
import time
import uuid

from trashlib import corosync


def _run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s")
        time.sleep(0.2)


class Pair:
    def __init__(self, cfg, workdir):
        self.cfg, self.workdir = cfg, workdir
        tag = uuid.uuid4().hex[:6]
        self.ns = {name: f"trash-{tag}-{i}" for i, name in enumerate(cfg["cluster"]["nodes"])}
        self.veth = {}
        self.procs = {}

    def exec(self, node, *cmd):
        return subprocess.run(["ip", "netns", "exec", self.ns[node], *cmd],
                              capture_output=True, text=True, check=False)

    def start(self, nodes=None):
        """Start corosync on ``nodes`` (default both, then wait for a quorate membership;
        ``()``: the namespaces and links only)."""
        for ns in self.ns.values():
            _run("ip", "netns", "add", ns)
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        (n1, n2) = self.cfg["cluster"]["nodes"]
        for number, zone in enumerate(self.cfg["cluster"]["links"]):
            a, b = f"tz{number}{self.ns[n1][-8:-2]}a", f"tz{number}{self.ns[n1][-8:-2]}b"
            _run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            self.veth[zone] = {n1: a, n2: b}
            for node, dev in ((n1, a), (n2, b)):
                _run("ip", "link", "set", dev, "netns", self.ns[node])
                _run("ip", "netns", "exec", self.ns[node], "ip", "addr", "add",
                     self.cfg["nodes"][node]["addresses"][zone], "dev", dev)
                _run("ip", "netns", "exec", self.ns[node], "ip", "link", "set", dev, "up")
        for node in (n1, n2) if nodes is None else nodes:
            self.write_conf(self.cfg, node)
            self.launch(node)
        if nodes is None:
            wait(lambda: "Quorate:          Yes" in
                 self.exec(n1, "corosync-quorumtool", "-s").stdout,
                 120, "a quorate two-node membership")
        for node in nodes or ():
            self.answering(node)
        return self

    def launch(self, node, conf=None):
        """Start corosync on ``node`` with ``conf`` (default: its rendered file); no wait."""
        # a private /run per node: corosync refuses to start beside another's lock file
        self.procs[node] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[node], "unshare", "--mount", "sh", "-ec",
             'mount -t tmpfs tmpfs /run && exec corosync -f -c "$0"', str(conf or self.conf(node))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answering(self, node):
        """Wait until corosync on ``node`` answers; fail with its log if it exited."""
        wait(lambda: self.exec(node, "corosync-cfgtool", "-s").returncode == 0
             or self.procs[node].poll() is not None, 120, f"corosync on {node}")
        assert self.procs[node].poll() is None, self.log(node)

    def conf(self, node):
        return self.workdir / f"corosync-{node}.conf"

    def log(self, node):
        path = self.workdir / f"corosync-{node}.log"
        return path.read_text() if path.exists() else ""

    def write_conf(self, cfg, node):
        """corosync.conf as rendered from ``cfg``, with key and log in the work directory."""
        key = self.workdir / "authkey"
        if not key.exists():
            key.write_bytes(corosync.authkey(cfg))
            os.chmod(key, 0o400)
        self.conf(node).write_text(
            corosync.conf(cfg)
            .replace(f"keyfile: {corosync.KEYFILE}", f"keyfile: {key}")
            .replace("logfile: /var/log/corosync/corosync.log",
                     f"logfile: {self.workdir}/corosync-{node}.log")
            .replace("to_syslog: yes", "to_syslog: no"))

    def link(self, zone, node, up):
        self.exec(node, "ip", "link", "set", self.veth[zone][node], "up" if up else "down")

    def stop(self, node):
        proc = self.procs.pop(node)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self):
        for node in list(self.procs):
            self.stop(node)
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "delete", ns], check=False)


@contextlib.contextmanager
def running_pair(cfg, workdir, nodes=None):
    pair = Pair(cfg, workdir)
    try:
        yield pair.start(nodes)
    finally:
        pair.close()
