"""A client for QEMU's QMP monitor (a unix socket per machine): the BMCs' power
commands and the drills' cables (set_link, chardev-change) go through it."""

import json
import socket


class QmpError(Exception):
    """QEMU is there but the command failed or did not answer in time."""


class QmpUnavailable(QmpError):
    """Nobody listens on the QMP socket: the machine's QEMU is not running."""


def qmp(path, command, timeout=5.0, **arguments):
    """One QMP command on a fresh connection (QEMU serves one client at a time: connect,
    greeting, qmp_capabilities, the command, close). ``quit`` returns None when QEMU closes
    the socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise QmpUnavailable(f"{path}: {exc.strerror}") from None
        f = s.makefile("rwb")
        try:
            if not f.readline():
                raise QmpError(f"{path}: closed before its greeting")
            reply = None
            for msg in ({"execute": "qmp_capabilities"},
                        {"execute": command, **({"arguments": arguments} if arguments else {})}):
                f.write(json.dumps(msg).encode() + b"\n")
                f.flush()
                while True:
                    line = f.readline()
                    if not line:
                        if command == "quit" and reply is not None:
                            return None
                        raise QmpError(f"{path}: closed during {command}")
                    reply = json.loads(line)
                    if "event" not in reply:
                        break
                if "error" in reply:
                    raise QmpError(f"{command}: {reply['error'].get('desc')}")
            return reply.get("return")
        finally:
            f.close()
    except (socket.timeout, TimeoutError):
        raise QmpError(f"{path}: no answer to {command} within {timeout} s") from None
    except (OSError, ValueError) as exc:
        raise QmpError(f"{path}: {command}: {exc}") from None
    finally:
        s.close()
