"""The project's IPMI client: a BMC's power state, and power control, over pyghmi.

Unlike the rest of trashlib this module talks to something: IPMI 2.0 (RMCP+, "lanplus") over
UDP to a BMC, through pyghmi, which is imported on first use (the rest of trashlib does
not need it). It runs no command and reads no file: the caller hands it the password (the
``trash_bmc`` execution module reads it from the root-only fence secret file), and nothing
here logs it, returns it or lets it into an error message.

pyghmi's client proposes cipher suite 17 (SHA-256) and falls back to suite 3 (SHA-1) when
the BMC refuses it; the lab's BMC (lab/tlab/bmc.py) speaks both.
"""

import threading
import time

ON, OFF, UNREACHABLE = "on", "off", "unreachable"
# pyghmi's names for the chassis control requests: off (hard), on, reset (hard), boot (on
# if off, else reset), shutdown (ACPI soft off), diag (NMI)
ACTIONS = ("on", "off", "reset", "boot", "shutdown", "diag")


class BmcError(Exception):
    """The BMC could not be asked or refused: the message says why (never the password)."""


def _describe(exc, password):
    text = str(exc) if exc.args and exc.args[0] is not None else ""
    if password and password in text:
        text = text.replace(password, "<secret>")
    if not text or text == "None":
        text = "no answer (wrong address or port, BMC down, or a firewall)"
    elif "Incorrect password" in text:
        text = "login refused: wrong password"
    elif "Unauthorized name" in text:
        text = "login refused: unknown user name"
    return text


def _settled(exc, session):
    """The error a failed login really had.

    pyghmi (1.6.19) runs every session's packets in whichever thread waits for a response.
    When another thread (a call that timed out here and still waits) handles the BMC's
    refusal, it marks the session broken before it files the reason: the waiting
    constructor then raises AttributeError on ``errormsg``. The reason follows at once."""
    if not (isinstance(exc, AttributeError) and "errormsg" in str(exc) and session):
        return exc
    deadline = time.monotonic() + 2
    while not hasattr(session, "errormsg") and time.monotonic() < deadline:
        time.sleep(0.01)
    return Exception(getattr(session, "errormsg", None))


def _call(address, port, username, password, timeout, what):
    """Open a session, run ``what(command)``, close the session; BmcError on failure or
    when nothing came back within ``timeout`` seconds."""
    try:
        from pyghmi.ipmi import command as _command
        from pyghmi.ipmi.private import session as _session
    except ImportError:
        raise BmcError("pyghmi is not installed") from None
    result = {}
    # pyghmi (1.6.19) files a session being set up under (bmc, userid, password, port, kg)
    # as given, but removes it under the encoded userid and password, that is never: the
    # next Command with the same credentials in this process picks up the finished (or
    # failed) session and fails. Each call here opens its own session and drops the entry.
    key = (address, username, password, int(port), None)

    def work():
        cmd = None
        _session.Session.initting_sessions.pop(key, None)
        try:
            cmd = _command.Command(bmc=address, userid=username, password=password,
                                   port=int(port))
            result["value"] = what(cmd)
        except Exception as exc:  # pyghmi raises several kinds; all mean "not answered"
            result["error"] = _settled(exc, _session.Session.initting_sessions.get(key))
        finally:
            if cmd is not None:
                try:
                    cmd.ipmi_session.logout()
                except Exception:
                    pass
            _session.Session.initting_sessions.pop(key, None)

    worker = threading.Thread(target=work, name=f"ipmi {address}:{port}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise BmcError(f"{address}:{port}: no answer within {timeout} s")
    if "error" in result:
        raise BmcError(f"{address}:{port}: {_describe(result['error'], password)}")
    return result["value"]


def power_state(address, port, username, password, timeout=10):
    """'on' or 'off', as the BMC at address:port reports its chassis; BmcError else."""
    answer = _call(address, port, username, password, timeout, lambda c: c.get_power())
    state = answer.get("powerstate")
    if state not in (ON, OFF):
        raise BmcError(f"{address}:{port}: unexpected answer {answer!r}")
    return state


def set_power(address, port, username, password, action, wait=False, timeout=30):
    """Ask the BMC to power its machine ``action`` (one of ACTIONS). With ``wait``, until
    the machine is in that state (for on and off); returns the state the BMC reports."""
    if action not in ACTIONS:
        raise ValueError(f"unknown power action {action!r} (one of {', '.join(ACTIONS)})")
    answer = _call(address, port, username, password, timeout,
                   lambda c: c.set_power(action, wait=max(1, int(timeout) - 5) if wait else False))
    return answer.get("powerstate") or answer.get("pendingpowerstate")


def probe(address, port, username, password, timeout=10):
    """Never raises: {'state': 'on'|'off'} or {'state': 'unreachable', 'reason': ...}."""
    try:
        return {"state": power_state(address, port, username, password, timeout)}
    except BmcError as exc:
        return {"state": UNREACHABLE, "reason": str(exc)}
