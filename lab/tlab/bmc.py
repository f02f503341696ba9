"""The lab's BMCs: one IPMI BMC per machine, built on pyghmi, that powers its machine
through QEMU's QMP monitor, the way OpenStack's VirtualBMC powers a domain through libvirt.

`trashlab up` starts one per machine inside the lab's namespace (lab.start_bmc), bound only
to the address the peer reaches it on (lab.BMC_ADDRESS), port 623, with the user name and
password of the lab's pillar (lab/pillar: trash:nodes:<node>:bmc); the password is never
logged and never on a command line. Outside the lab (the offline tests) everything is given:

    python -m tlab.bmc serve --qmp PATH --address 127.0.0.1 --port 16230 \\
        --username fence --password-file FILE [--log FILE] [--cipher-suites 17,3]
    python -m tlab.bmc serve --lab node1 --run /run/trashlab     # as `trashlab up` runs it
    python -m tlab.bmc client node1 status|on|off|reset|boot|shutdown  # in the namespace

Power, as the BMC maps it onto QEMU:

    state   on  = QMP query-status says running (or suspended: the guest can wake itself)
            off = anything else (paused, prelaunch...), or no QEMU listening on the socket
    off     in the lab (--lab) QEMU quits (lab.stop; the taps and disks persist), so that
            power-on starts fresh hardware: a system_reset leaves QEMU's UART state as it
            was, and the serial cable's transmitter stayed wedged after a reset in the
            middle of a transfer (pppd hung in tcsetattr, the serial link never came
            back). A BMC started with --qmp: QMP stop, then system_reset
    on      a machine whose QEMU is gone (lab power off, a guest poweroff) is started
            again by lab.start (lab only); otherwise system_reset + cont
    reset, cycle   system_reset of a machine that is on; refused (0xD5) when it is off
    soft    system_powerdown (ACPI: the guest shuts down, QEMU exits, the machine is off)
    diag    inject-nmi

Cipher suites. pyghmi's server answers every RMCP+ Open Session Request with cipher suite
3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128), whatever the client proposed. ipmitool
asks for the channel's cipher suites first and proposes 3, so it works; pyghmi's own
client proposes suite 17 (SHA-256) and falls back to 3 only when the BMC refuses, so it
takes the BMC's SHA-1 answer for SHA-256 and fails ("pack expected 32 items", DESIGN.md
section 6). This BMC negotiates as the IPMI 2.0 specification says: it accepts suites 17
and 3 (both, by default, 17 preferred), answers with the algorithms the client proposed,
refuses any other proposal with RMCP+ status 0x11 (pyghmi's client then retries with
suite 3), and lists exactly its suites in Get Channel Cipher Suites (ipmitool then picks
17). It also refuses an unknown user in RAKP2 (status 0x0D) and a wrong password in RAKP4
(0x0F) instead of leaving the client to time out, and it forgets closed and idle sessions.
"""

import argparse
import hashlib
import hmac
import logging
import os
import pathlib
import signal
import struct
import sys
import threading
import time

from .qmp import QmpError, QmpUnavailable, qmp

import pyghmi.ipmi.bmc as _bmc
import pyghmi.ipmi.private.constants as _constants
import pyghmi.ipmi.private.serversession as _serversession
import pyghmi.ipmi.private.session as _ipmisession

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]

IPMI_PORT = 623

# IPMI completion codes (IPMI 2.0, table 5-2)
CC_OK = 0x00
CC_NOT_IN_PRESENT_STATE = 0xD5  # "command not supported in present state"
CC_UNSPECIFIED = 0xFF

# RMCP+ status codes (IPMI 2.0, table 13-15)
RMCP_UNAUTHORIZED_NAME = 0x0D
RMCP_INVALID_INTEGRITY_CHECK = 0x0F
RMCP_NO_CIPHER_SUITE_MATCH = 0x11

# cipher suite id -> (authentication, integrity, confidentiality) algorithm numbers
# (IPMI 2.0 tables 13-17..13-19, 22-20), the hash of the first two and the length to
# which integrity codes are truncated (HMAC-SHA1-96: 12 bytes; HMAC-SHA256-128: 16)
SUITES = {
    3: ((1, 1, 1), hashlib.sha1, 12),     # RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128
    17: ((3, 4, 1), hashlib.sha256, 16),  # RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128
}
DEFAULT_SUITES = (17, 3)
SESSION_IDLE = 120  # seconds after which a session that said nothing is forgotten

# QEMU run states in which the guest runs, or may run again by itself
ON_STATES = {"running", "suspended"}

log = logging.getLogger("bmc")


# -- pure helpers (unit-tested) ------------------------------------------------------------
def parse_proposal(request):
    """The (authentication, integrity, confidentiality) algorithms an RMCP+ Open Session
    Request proposes (its payload, IPMI 2.0 table 13-9); None for a record of length 0,
    which lets the BMC choose. Returns None for a malformed request."""
    request = bytes(request)
    if len(request) < 32:
        return None
    out = []
    for offset, kind in ((8, 0), (16, 1), (24, 2)):
        record = request[offset:offset + 8]
        if record[0] != kind:
            return None
        out.append(record[4] & 0x3F if record[3] else None)
    return tuple(out)


def choose_suite(proposal, suites=DEFAULT_SUITES):
    """The first of ``suites`` whose algorithms the proposal matches, or None."""
    if proposal is None:
        return None
    for suite in suites:
        algorithms = SUITES[suite][0]
        if all(p is None or p == a for p, a in zip(proposal, algorithms)):
            return suite
    return None


def cipher_suite_records(suites, by_suite=True):
    """The record data of Get Channel Cipher Suites (IPMI 2.0 22.15, table 22-19): per
    suite 0xC0, its id and its three algorithms tagged 00b/01b/10b; or, listing supported
    algorithms, each algorithm once."""
    if by_suite:
        out = bytearray()
        for suite in suites:
            auth, integrity, conf = SUITES[suite][0]
            out += bytes([0xC0, suite, auth, 0x40 | integrity, 0x80 | conf])
        return bytes(out)
    auths = sorted({SUITES[s][0][0] for s in suites})
    integrities = sorted({SUITES[s][0][1] for s in suites})
    confs = sorted({SUITES[s][0][2] for s in suites})
    return bytes(auths + [0x40 | i for i in integrities] + [0x80 | c for c in confs])


def power_state_of(status):
    """'on' or 'off' for a QMP query-status ``status`` (None: no QEMU)."""
    return "on" if status in ON_STATES else "off"


class NotInPresentState(Exception):
    """The request makes no sense in the machine's power state (IPMI 0xD5)."""


class Machine:
    """A QEMU machine's power, through its QMP socket. ``start`` (optional) starts the
    machine's QEMU when it is not running (the lab's lab.start), ``stop`` (optional)
    powers it off by ending its QEMU (lab.stop)."""

    def __init__(self, qmp_path, start=None, stop=None, timeout=5.0):
        self.qmp_path = pathlib.Path(qmp_path)
        self.start = start
        self.stop = stop
        self.timeout = timeout
        self._starting = threading.Lock()

    def _qmp(self, command, **arguments):
        return qmp(self.qmp_path, command, timeout=self.timeout, **arguments)

    def status(self):
        """QEMU's run state ('running', 'paused', 'prelaunch'...), or None without QEMU."""
        try:
            return self._qmp("query-status")["status"]
        except QmpUnavailable:
            return None

    def power_state(self):
        return power_state_of(self.status())

    def power_off(self):
        if self.status() is None:
            return "off"
        if self.stop is not None:
            self.stop()
            return self.power_state()
        self._qmp("stop")
        self._qmp("system_reset")
        return self.power_state()

    def power_on(self):
        status = self.status()
        if status in ON_STATES:
            return "on"
        if status is None:
            if self.start is None:
                raise NotInPresentState(f"no QEMU listens on {self.qmp_path} and this BMC "
                                        "cannot start one")
            with self._starting:
                if self.status() is None:
                    self.start()
            return self.power_state()
        self._qmp("system_reset")
        self._qmp("cont")
        return self.power_state()

    def reset(self):
        if self.power_state() != "on":
            raise NotInPresentState("the machine is off")
        self._qmp("system_reset")
        return self.power_state()

    def soft_off(self):
        if self.power_state() == "on":
            self._qmp("system_powerdown")
        return self.power_state()

    def nmi(self):
        if self.power_state() != "on":
            raise NotInPresentState("the machine is off")
        self._qmp("inject-nmi")
        return "on"


# -- the BMC ----------------------------------------------------------------------------------
def _peer(session):
    addr = getattr(session, "sockaddr", None)
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0][7:] if str(addr[0]).startswith("::ffff:") else addr[0]
        return f"{host}:{addr[1]}"
    return str(addr)


def _user(session):
    name = getattr(session, "username", b"")
    return name.decode("utf-8", "replace") if isinstance(name, (bytes, bytearray)) else str(name)


class _Session(_serversession.ServerSession):
    """pyghmi's server session with honest cipher suite negotiation (suites 3 and 17),
    RMCP+ refusals instead of silence, and an end (closed or idle sessions are dropped)."""

    suite = None
    seen = 0.0

    def _handle_ipmi2_packet(self, data):
        self.seen = time.monotonic()
        return super()._handle_ipmi2_packet(data)

    def create_open_session_response(self, request):
        self.seen = time.monotonic()
        clienttag = request[0]
        self.clientsessionid = request[4:8]
        self.managedsessionid = os.urandom(4)
        proposal = parse_proposal(request)
        self.suite = choose_suite(proposal, self.bmc.cipher_suites)
        if self.suite is None:
            self.bmc.log.warning("%s: no cipher suite of %s matches the proposal %s: refused",
                                 _peer(self), list(self.bmc.cipher_suites), proposal)
            return bytearray([clienttag, RMCP_NO_CIPHER_SUITE_MATCH, 0, 0]) \
                + self.clientsessionid
        (auth, integrity, conf), self.currhashlib, self.currhashlen = SUITES[self.suite]
        self.privlevel = 4
        return (bytearray([clienttag, 0, self.privlevel, 0])
                + self.clientsessionid + self.managedsessionid
                + bytearray([0, 0, 0, 8, auth, 0, 0, 0,
                             1, 0, 0, 8, integrity, 0, 0, 0,
                             2, 0, 0, 8, conf, 0, 0, 0]))

    def _rmcp_error(self, payload_type, clienttag, status):
        self.send_payload(bytearray([clienttag, status, 0, 0]) + self.clientsessionid,
                          _constants.payload_types[payload_type], retry=False)

    def _got_rakp1(self, data):
        if self.suite is None:
            return
        clienttag = data[0]
        self.Rm = data[8:24]
        self.rolem = data[24]
        # role 0 asks for the highest level there is; this BMC's one user is administrator
        self.maxpriv = (self.rolem & 0b1111) or 4
        self.clientpriv = min(self.maxpriv, 4)
        namelen = data[27]
        self.username = bytes(data[28:28 + namelen])
        password = self.authdata.get(_user(self)) if namelen else None
        if password is None:
            self.bmc.log.warning("%s: login refused: unknown user %r", _peer(self), _user(self))
            self._rmcp_error("rakp2", clienttag, RMCP_UNAUTHORIZED_NAME)
            return
        self.kuid = password.encode("utf-8")
        if self.kg is None:
            self.kg = self.kuid
        self.uuiddata = self.uuid.bytes
        self.Rc = os.urandom(16)
        hmacdata = (self.clientsessionid + self.managedsessionid + self.Rm + self.Rc
                    + self.uuiddata + bytearray([self.rolem, len(self.username)])
                    + self.username)
        authcode = hmac.new(self.kuid, bytes(hmacdata), self.currhashlib).digest()
        # a client with another password finds this code wrong and stops here: this line
        # without a "session opened" after it is a failed login
        self.bmc.log.info("%s: login of user %r (cipher suite %d)", _peer(self), _user(self),
                          self.suite)
        self.send_payload(bytearray([clienttag, 0, 0, 0]) + self.clientsessionid + self.Rc
                          + self.uuiddata + authcode,
                          _constants.payload_types["rakp2"], retry=False)

    def _got_rakp3(self, data):
        if self.suite is None or getattr(self, "Rc", None) is None:
            return
        clienttag = data[0]
        if data[1] != 0:
            # the client found this BMC's RAKP2 code wrong: its password is not ours
            self.bmc.log.warning("%s: login of user %r failed: the client rejected the BMC's "
                                 "RAKP2 (status 0x%02x: a wrong password on its side?)",
                                 _peer(self), _user(self), data[1])
            return
        role = struct.pack("2B", self.rolem, len(self.username))
        expected = hmac.new(self.kuid, bytes(self.Rc + self.clientsessionid + role
                                             + self.username), self.currhashlib).digest()
        if not hmac.compare_digest(expected, bytes(data[8:8 + len(expected)])):
            self.bmc.log.warning("%s: login refused: wrong password for user %r",
                                 _peer(self), _user(self))
            self._rmcp_error("rakp4", clienttag, RMCP_INVALID_INTEGRITY_CHECK)
            return
        self.sik = hmac.new(self.kg, bytes(self.Rm + self.Rc) + role + self.username,
                            self.currhashlib).digest()
        self.k1 = hmac.new(self.sik, b"\x01" * 20, self.currhashlib).digest()
        self.k2 = hmac.new(self.sik, b"\x02" * 20, self.currhashlib).digest()
        self.aeskey = self.k2[0:16]
        self.localsid = struct.unpack("<I", self.managedsessionid)[0]
        self.ipmicallback = self.handle_client_request
        self._send_rakp4(clienttag, 0)
        self.bmc.log.info("%s: session opened for user %r (cipher suite %d)",
                          _peer(self), _user(self), self.suite)

    def _send_rakp4(self, tagvalue, statuscode):
        hmacdata = bytes(self.Rm + self.managedsessionid + self.uuiddata)
        icv = hmac.new(self.sik, hmacdata, self.currhashlib).digest()[:self.currhashlen]
        self.send_payload(bytearray([tagvalue, statuscode, 0, 0]) + self.clientsessionid + icv,
                          _constants.payload_types["rakp4"], retry=False)
        self.confalgo = "aes"
        self.integrityalgo = self.suite  # truthy: packets carry an integrity code
        self.sequencenumber = 1
        self.sessionid = struct.unpack("<I", bytes(self.clientsessionid))[0]

    def sessionless_data(self, data, sockaddr):
        # a packet queued for this session after it was closed and forgotten (pyghmi hands
        # such a packet to the session's sessionless_data): it opens a new one, say
        return self.bmc.sessionless_data(data, sockaddr)

    def close_server_session(self):
        self.bmc.forget(self)
        self.bmc.log.info("%s: session of user %r closed", _peer(self), _user(self))


class QemuBmc(_bmc.Bmc):
    """An IPMI BMC (RMCP+, cipher suites 17 and 3) whose chassis is a QEMU machine."""

    def __init__(self, machine, username, password, address, port=IPMI_PORT, name="bmc",
                 cipher_suites=DEFAULT_SUITES, logger=None):
        unknown = [s for s in cipher_suites if s not in SUITES]
        if unknown or not cipher_suites:
            raise ValueError(f"cipher suites {list(cipher_suites)}: only {sorted(SUITES)} exist")
        super().__init__({username: password}, port=port, address=address)
        self.machine = machine
        self.name = name
        self.address = address
        self.cipher_suites = tuple(cipher_suites)
        self.log = logger or log

    # sessions
    def sessionless_data(self, data, sockaddr):
        data = bytearray(data)
        if (len(data) >= 22 and data[0] == 6 and data[2:4] == b"\xff\x07"
                and data[4] == 6 and data[5] == _constants.payload_types["rmcpplusopenreq"]):
            self._prune()
            _Session(self.authdata, self.kg, sockaddr, self.serversocket, data[16:],
                     self.uuid, bmc=self)
            return
        return super().sessionless_data(data, sockaddr)

    def _sessions(self):
        for addr, handlers in list(_ipmisession.Session.bmc_handlers.items()):
            if isinstance(handlers, dict) and isinstance(handlers.get(self.port), _Session):
                yield addr, handlers[self.port]

    def forget(self, session):
        handlers = _ipmisession.Session.bmc_handlers.get(session.sockaddr)
        if isinstance(handlers, dict) and handlers.get(self.port) is session:
            del handlers[self.port]
            if not handlers:
                del _ipmisession.Session.bmc_handlers[session.sockaddr]

    def _prune(self):
        now = time.monotonic()
        for _, session in self._sessions():
            if now - session.seen > SESSION_IDLE:
                self.forget(session)

    def send_cipher_suites(self, myaddr, mylun, clientaddr, clientlun, clientseq, data,
                           sockaddr):
        # request data (after the IPMI header): channel, payload type, list index
        index = data[22] & 0x3F if len(data) > 22 else 0
        by_suite = bool(data[22] & 0x80) if len(data) > 22 else True
        records = cipher_suite_records(self.cipher_suites, by_suite)[16 * index:16 * index + 16]
        ipmihdr = bytearray([clientaddr, clientlun | (7 << 2)])
        ipmihdr.append(_ipmisession._checksum(*ipmihdr))
        body = bytearray([myaddr, mylun | clientseq << 2, 0x54, CC_OK, 1]) + records
        body.append(_ipmisession._checksum(*body))
        message = ipmihdr + body
        header = bytearray(b"\x06\x00\xff\x07\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00")
        header += struct.pack("<H", len(message))
        _ipmisession._io_sendto(self.serversocket, header + message, sockaddr)

    # the chassis
    def get_chassis_status(self, session):
        try:
            state = self.machine.power_state()
        except QmpError as exc:
            self.log.error("%s: chassis status: %s", _peer(session), exc)
            return session.send_ipmi_response(code=CC_UNSPECIFIED)
        self.log.info("%s: user %r: chassis status: %s", _peer(session), _user(session), state)
        session.send_ipmi_response(data=[1 if state == "on" else 0, 0, 0])

    def _control(self, what, action, session=None):
        who = f"{_peer(session)}: user {_user(session)!r}" if session else "?"
        try:
            state = action()
        except NotInPresentState as exc:
            self.log.warning("%s: %s refused: %s", who, what, exc)
            return CC_NOT_IN_PRESENT_STATE
        except Exception as exc:  # QMP, or lab.start: the BMC answers and stays up
            self.log.error("%s: %s failed: %s", who, what, exc)
            return CC_UNSPECIFIED
        self.log.info("%s: %s: the machine is %s", who, what, state)
        return CC_OK

    def control_chassis(self, request, session):
        actions = {0: ("power off", self.machine.power_off),
                   1: ("power on", self.machine.power_on),
                   2: ("power cycle", self.machine.reset),
                   3: ("hard reset", self.machine.reset),
                   4: ("diagnostic interrupt", self.machine.nmi),
                   5: ("soft off", self.machine.soft_off)}
        directive = request["data"][0] if request["data"] else None
        if directive not in actions:
            return session.send_ipmi_response(code=0xCC)  # invalid data field
        session.send_ipmi_response(code=self._control(*actions[directive], session=session))

    def get_system_guid(self):
        return self.uuid

    def cold_reset(self):
        return CC_NOT_IN_PRESENT_STATE

    def listen(self, timeout=30):
        self.log.info("%s: listening on %s:%d (IPMI 2.0 lanplus, cipher suites %s), machine "
                      "at %s", self.name, self.address, self.port,
                      ",".join(map(str, self.cipher_suites)), self.machine.qmp_path)
        while True:
            try:
                _ipmisession.Session.wait_for_rsp(timeout)
            except Exception:  # one bad packet must not take the BMC down
                self.log.exception("%s: error while handling a packet", self.name)


# -- the lab ---------------------------------------------------------------------------------
def lab_credentials(node):
    """(address, port, username, password) of ``node``'s BMC from the lab's pillar (the
    same files `trashlab converge` gives Salt), checked against the lab's wiring."""
    sys.path.insert(0, str(REPO / "_utils"))
    import yaml
    from trashlib import model

    from . import lab

    pillar = {}
    for name in ("cluster", "secrets"):
        path = REPO / "lab/pillar/trash" / f"{name}.sls"
        pillar = model.merge(pillar, yaml.safe_load(path.read_text()) or {})
    defaults = yaml.safe_load((REPO / "salt/trash/defaults.yaml").read_text())
    bmc = model.load(pillar, defaults)["nodes"][node]["bmc"]
    wired = lab.BMC_ADDRESS[lab.PEER[node]].split("/")[0]
    if bmc["address"] != wired:
        raise lab.LabError(f"lab/pillar says {node}'s BMC is {bmc['address']}, the lab wires "
                           f"it at {wired} (lab.BMC_ADDRESS)")
    return bmc["address"], bmc["port"], bmc["username"], bmc["password"]


def _logger(name, path=None):
    logger = logging.getLogger(f"bmc.{name}")
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s {name}-bmc[%(process)d] %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def serve(args):
    if args.lab:
        from . import lab

        if args.run:
            lab.RUN = pathlib.Path(args.run)
        node = args.lab
        address, port, username, password = lab_credentials(node)
        machine = Machine(lab.RUN / f"{node}.qmp", start=lambda: lab.start(node),
                          stop=lambda: lab.stop(node))
        name = node
    else:
        if not (args.qmp and args.address and args.username and args.password_file):
            raise SystemExit("serve: --lab NODE, or --qmp, --address, --username and "
                             "--password-file")
        address, port, username = args.address, args.port, args.username
        password = pathlib.Path(args.password_file).read_text().rstrip("\r\n")
        machine = Machine(args.qmp)
        name = args.name
    logger = _logger(name, args.log)
    suites = tuple(int(s) for s in args.cipher_suites.split(","))
    bmc = QemuBmc(machine, username, password, address, port, name=name,
                  cipher_suites=suites, logger=logger)
    del password

    def stop(signum, frame):
        logger.info("%s: stopped (signal %d)", name, signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bmc.listen()


def ipmi_actions():
    return ("on", "off", "reset", "boot", "shutdown")  # trashlib.bmc.ACTIONS but diag


def client(args):
    """One request to a lab node's BMC with the project's own client (trashlib.bmc)."""
    sys.path.insert(0, str(REPO / "_utils"))
    from trashlib import bmc as ipmi

    address, port, username, password = lab_credentials(args.node)
    try:
        if args.action == "status":
            state = ipmi.power_state(address, port, username, password)
        else:
            state = ipmi.set_power(address, port, username, password, args.action,
                                   wait=args.action in ("on", "off"))
    except ipmi.BmcError as exc:
        print(f"{args.node} BMC {address}:{port}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.node} BMC {address}:{port}: {state}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tlab.bmc", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run a BMC")
    s.add_argument("--lab", metavar="NODE", help="the lab's BMC of NODE (all from the lab)")
    s.add_argument("--run", help="the lab's run directory (lab.RUN)")
    s.add_argument("--qmp", help="the machine's QMP socket")
    s.add_argument("--address", help="the address to bind")
    s.add_argument("--port", type=int, default=IPMI_PORT)
    s.add_argument("--username")
    s.add_argument("--password-file", help="a file holding the password (one line)")
    s.add_argument("--name", default="bmc", help="the name the log lines carry")
    s.add_argument("--log", help="log file (default: standard error)")
    s.add_argument("--cipher-suites", default=",".join(map(str, DEFAULT_SUITES)))
    c = sub.add_parser("client", help="ask a lab node's BMC (inside the lab's namespace)")
    c.add_argument("node")
    c.add_argument("action", choices=["status", *ipmi_actions()])
    args = p.parse_args(argv)
    if args.cmd == "serve":
        return serve(args)
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
