"""A client for the QEMU guest agent (qemu-guest-agent in the guest, a virtio-serial port
that QEMU exposes as a unix socket on the host): the lab's host->guest command channel.
It needs no network in the guest, so it keeps working while tests and the formula
reconfigure, cut or firewall the guest's interfaces."""

import base64
import fcntl
import json
import os
import socket
import time


class AgentError(Exception):
    pass


class Agent:
    def __init__(self, path, timeout=10):
        self.path = str(path)
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.lockf = None

    def __enter__(self):
        # one client at a time on the chardev: serialise the processes that use it
        self.lockf = open(self.path + ".lock", "w")
        fcntl.flock(self.lockf, fcntl.LOCK_EX)
        try:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(self.path)
            self._sync()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.lockf:
            self.lockf.close()
            self.lockf = None

    def _sync(self):
        """Discard whatever an earlier client left in the pipe (guest-sync-delimited)."""
        sid = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
        self.sock.sendall(b"\xff" + json.dumps(
            {"execute": "guest-sync-delimited", "arguments": {"id": sid}}).encode() + b"\n")
        deadline = time.monotonic() + self.timeout
        while b"\xff" not in self.buf:
            self.buf = b""
            self._recv(deadline)
        self.buf = self.buf[self.buf.index(b"\xff") + 1:]
        while True:
            msg = self._read(deadline)
            if msg.get("return") == sid:
                return

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AgentError(f"{self.path}: no answer from the guest agent")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AgentError(f"{self.path}: no answer from the guest agent") from None
        if not data:
            raise AgentError(f"{self.path}: connection closed")
        self.buf += data

    def _read(self, deadline):
        while b"\n" not in self.buf:
            self._recv(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        line = line.strip(b"\xff \r")
        if not line:
            return self._read(deadline)
        return json.loads(line)

    def call(self, command, timeout=None, **arguments):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        reply = self._read(time.monotonic() + (timeout or self.timeout))
        if "error" in reply:
            raise AgentError(f"{command}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def exec(self, argv, timeout=300, input=None, env=None):
        """Run argv in the guest; return (exit code, stdout bytes, stderr bytes)."""
        args = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True,
                "env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"]}
        if input is not None:
            args["input-data"] = base64.b64encode(input).decode()
        pid = self.call("guest-exec", **args)["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            st = self.call("guest-exec-status", pid=pid)
            if st.get("exited"):
                out = base64.b64decode(st.get("out-data", ""))
                err = base64.b64decode(st.get("err-data", ""))
                code = st.get("exitcode")
                if code is None:  # killed by a signal
                    code = 128 + st.get("signal", 0)
                return code, out, err
            if time.monotonic() > deadline:
                raise AgentError(f"command still running after {timeout} s: {argv}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
