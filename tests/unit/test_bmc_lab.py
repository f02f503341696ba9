"""The lab's BMC (lab/tlab/bmc.py): cipher suite negotiation, the power-state mapping, and
credentials from the lab's pillar. The BMC itself runs for real in tests/offline/test_bmc.py."""

import sys

import pytest
import yaml

from modload import ROOT

sys.path.insert(0, str(ROOT / "lab"))
from tlab import bmc, lab  # noqa: E402


def open_session_request(auth, integrity, conf, lengths=(8, 8, 8)):
    """An RMCP+ Open Session Request payload as clients send it (IPMI 2.0 table 13-9)."""
    out = bytes([0x42, 0, 0, 0]) + b"\x01\x02\x03\x04"
    for kind, alg, length in ((0, auth, lengths[0]), (1, integrity, lengths[1]),
                              (2, conf, lengths[2])):
        out += bytes([kind, 0, 0, length, alg, 0, 0, 0])
    return out


def test_proposals_as_pyghmi_and_ipmitool_make_them():
    assert bmc.parse_proposal(open_session_request(3, 4, 1)) == (3, 4, 1)  # suite 17
    assert bmc.parse_proposal(open_session_request(1, 1, 1)) == (1, 1, 1)  # suite 3
    # a record of length 0 lets the BMC choose
    assert bmc.parse_proposal(open_session_request(0, 0, 0, (0, 0, 8))) == (None, None, 0)
    assert bmc.parse_proposal(b"\x00" * 20) is None
    bad = bytearray(open_session_request(1, 1, 1))
    bad[16] = 7  # not an integrity record
    assert bmc.parse_proposal(bad) is None


@pytest.mark.parametrize("proposal, suites, chosen", [
    ((3, 4, 1), (17, 3), 17),
    ((1, 1, 1), (17, 3), 3),
    ((3, 4, 1), (3,), None),         # pyghmi's first try against a suite-3 BMC: refused
    ((None, None, None), (17, 3), 17),
    ((None, 1, None), (17, 3), 3),
    ((0, 0, 0), (17, 3), None),       # suite 0, no authentication: never
    ((1, 1, 0), (17, 3), None),       # no confidentiality: not offered
    (None, (17, 3), None),
])
def test_choose_suite(proposal, suites, chosen):
    assert bmc.choose_suite(proposal, suites) == chosen


def test_cipher_suite_records():
    # by suite: 0xC0, id, auth (00b), integrity (01b), confidentiality (10b)
    assert bmc.cipher_suite_records((17, 3)) == bytes(
        [0xC0, 17, 0x03, 0x44, 0x81, 0xC0, 3, 0x01, 0x41, 0x81])
    # what pyghmi's stock BMC answers
    assert bmc.cipher_suite_records((3,)) == bytes.fromhex("c0030141 81".replace(" ", ""))
    assert bmc.cipher_suite_records((17, 3), by_suite=False) == bytes([1, 3, 0x41, 0x44, 0x81])


@pytest.mark.parametrize("status, state", [
    ("running", "on"), ("suspended", "on"), ("paused", "off"), ("prelaunch", "off"),
    ("shutdown", "off"), ("internal-error", "off"), (None, "off")])
def test_power_state_of_qemu_run_states(status, state):
    assert bmc.power_state_of(status) == state


def test_unknown_cipher_suite_is_refused_at_start():
    with pytest.raises(ValueError, match="only"):
        bmc.QemuBmc(None, "fence", "x", "127.0.0.1", 1, cipher_suites=(2,))


@pytest.mark.parametrize("node, peer", [("node1", "node2"), ("node2", "node1")])
def test_lab_credentials_come_from_the_lab_pillar_and_match_the_wiring(node, peer):
    address, port, username, password = bmc.lab_credentials(node)
    cluster = yaml.safe_load((ROOT / "lab/pillar/trash/cluster.sls").read_text())
    secrets = yaml.safe_load((ROOT / "lab/pillar/trash/secrets.sls").read_text())
    assert address == cluster["trash"]["nodes"][node]["bmc"]["address"]
    assert username == cluster["trash"]["nodes"][node]["bmc"]["username"]
    assert password == secrets["trash"]["nodes"][node]["bmc"]["password"]
    assert port == 623
    # node's BMC sits on the tap of the peer's eth4
    assert lab.BMC_ADDRESS[peer].split("/")[0] == address


def test_lab_credentials_refuse_a_pillar_that_disagrees_with_the_wiring(monkeypatch):
    monkeypatch.setitem(lab.BMC_ADDRESS, "node2", "10.10.4.9/30")
    with pytest.raises(lab.LabError, match="the lab wires it at 10.10.4.9"):
        bmc.lab_credentials("node1")


class _Qemu:
    """The QMP side of a machine as Machine sees it: a run state and the commands sent."""

    def __init__(self, machine, status="running"):
        self.state, self.sent = status, []
        machine._qmp = self.command

    def command(self, name, **args):
        if self.state is None:
            raise bmc.QmpUnavailable("gone")
        self.sent.append(name)
        return {"status": self.state} if name == "query-status" else {}


def test_lab_power_off_ends_qemu_and_power_on_starts_a_fresh_one():
    calls = []
    machine = bmc.Machine("/nonexistent.qmp",
                          start=lambda: (calls.append("start"), setattr(qemu, "state", "running")),
                          stop=lambda: (calls.append("stop"), setattr(qemu, "state", None)))
    qemu = _Qemu(machine)
    assert machine.power_off() == "off"
    # never QMP stop/system_reset: a reset keeps QEMU's UART state (the wedged serial cable)
    assert calls == ["stop"] and "system_reset" not in qemu.sent and "stop" not in qemu.sent
    assert machine.power_off() == "off" and calls == ["stop"]  # off already: nothing
    assert machine.power_on() == "on" and calls == ["stop", "start"]


def test_a_bmc_without_the_lab_stops_and_resets_through_qmp():
    machine = bmc.Machine("/nonexistent.qmp")
    qemu = _Qemu(machine)
    machine.power_off()
    assert [c for c in qemu.sent if c != "query-status"] == ["stop", "system_reset"]
