"""trash_bmc.status with the IPMI client patched at its edge (trashlib.bmc.probe); the
client against a real BMC is in tests/offline/test_bmc.py."""

from unittest import mock

import pytest

from modload import load
from trashlib import bmc as ipmi
from trashlib import cib, model

PASSWORD = "qXLbrFDlEeS20t9n"  # node2's in the example secrets


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


def module(cfg, node, root):
    redacted = model.redact(cfg)
    return load("_modules/trash_bmc.py", "trash_bmc_unit",
                salt={"trash.config": lambda: redacted},
                opts={"id": node, "trash_root": str(root)})


def write_secret(root, target, text):
    path = root / cib.fence_secret_path(target).lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o400)
    return path


@pytest.mark.parametrize("node, peer, address", [("node1", "node2", "10.10.4.2"),
                                                  ("node2", "node1", "10.10.4.6")])
def test_each_node_reports_its_peers_bmc(cfg, root, node, peer, address):
    assert cfg["nodes"][peer]["bmc"]["address"] == address
    write_secret(root, peer, cfg["nodes"][peer]["bmc"]["password"] + "\n")
    mod = module(cfg, node, root)
    with mock.patch.object(mod._bmc, "probe", autospec=True,
                           return_value={"state": "on"}) as probe:
        result = mod.status(timeout=3)
    # the password as fence_ipmilan reads it from `cat <file>`: without the newline
    probe.assert_called_once_with(address, 623, "fence", cfg["nodes"][peer]["bmc"]["password"],
                                  timeout=3.0)
    assert result == {peer: {"address": address, "port": 623, "username": "fence",
                             "password_file": f"/etc/trash/fence/{peer}.password",
                             "state": "on"}}


def test_no_password_file_is_reported_and_nothing_is_asked(cfg, root):
    mod = module(cfg, "node1", root)
    with mock.patch.object(mod._bmc, "probe", autospec=True) as probe:
        result = mod.status()
    probe.assert_not_called()
    assert result["node2"]["state"] == "unreachable"
    assert result["node2"]["reason"].startswith("no password file ")


def test_an_empty_password_file_is_reported(cfg, root):
    write_secret(root, "node2", "\n")
    mod = module(cfg, "node1", root)
    with mock.patch.object(mod._bmc, "probe", autospec=True) as probe:
        result = mod.status()
    probe.assert_not_called()
    assert "is empty" in result["node2"]["reason"]


def test_the_password_never_comes_back(cfg, root, caplog):
    write_secret(root, "node2", PASSWORD + "\n")
    mod = module(cfg, "node1", root)
    answer = {"state": "unreachable", "reason": "10.10.4.2:623: login refused: wrong password"}
    with mock.patch.object(mod._bmc, "probe", autospec=True, return_value=answer):
        result = mod.status()
    assert result["node2"]["state"] == "unreachable"
    assert PASSWORD not in repr(result) and PASSWORD not in caplog.text
    assert "login refused: wrong password" in caplog.text


def test_a_node_outside_the_cluster_is_refused(cfg, root):
    from salt.exceptions import CommandExecutionError

    with pytest.raises(CommandExecutionError, match="not a cluster node"):
        module(cfg, "node3", root).status()


@pytest.mark.parametrize("message, reason", [
    (None, "no answer (wrong address or port, BMC down, or a firewall)"),
    ("Incorrect password provided", "login refused: wrong password"),
    ("Unauthorized name in RAKP2", "login refused: unknown user name"),
    (f"odd answer mentioning {PASSWORD}", "odd answer mentioning <secret>"),
])
def test_client_error_reasons(message, reason):
    assert ipmi._describe(Exception(message), PASSWORD) == reason


def test_client_refuses_unknown_actions():
    with pytest.raises(ValueError, match="unknown power action"):
        ipmi.set_power("192.0.2.1", 623, "fence", "x", "explode")
