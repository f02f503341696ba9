"""trash.corosync_reload decides between reload and restart on corosync's real answers.

The running configuration is real captured ``corosync-cmapctl`` output: Debian's example
configuration (what the package starts at once; run in a network namespace with its log
moved off /var/log, so logging.* differs) and this cluster's (tests/data/corosync).
"""

import pathlib
from unittest import mock

import pytest
from salt.exceptions import CommandExecutionError

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/corosync"
DEBIAN = (DATA / "cmapctl-debian-example.txt").read_text()
# taken after token 5000 and aes128 were reloaded into this cluster's corosync
THIS_CLUSTER = (DATA / "cmapctl.txt").read_text()
WHY = "another cluster's configuration (cluster_name 'debian')"


class Node:
    """cmd.run_all and service.restart of a node: corosync answers with ``cmap``; a restart
    makes it read the rendered file (``restarted_cmap``) and stay silent ``slow`` probes."""

    def __init__(self, cmap, processes=(), restarted_cmap=THIS_CLUSTER, slow=0):
        self.cmap, self.processes, self.restarted_cmap = cmap, set(processes), restarted_cmap
        self.slow_after_restart, self.slow, self.calls = slow, 0, []

    def run_all(self, cmd, **kwargs):
        self.calls.append(cmd)
        if cmd[0] == "pidof":
            running = cmd[1] in self.processes
            return {"retcode": 0 if running else 1, "stdout": "4242\n" if running else "",
                    "stderr": ""}
        if cmd == ["corosync-cfgtool", "-s"] and self.slow:
            self.slow -= 1
            return {"retcode": 1, "stdout": "", "stderr": "Could not initialize corosync "
                    "configuration API error 2"}
        return {"retcode": 0, "stdout": self.cmap if cmd == ["corosync-cmapctl"] else "",
                "stderr": ""}

    def restart(self, name):
        self.calls.append(["service.restart", name])
        self.cmap, self.slow = self.restarted_cmap, self.slow_after_restart
        return True

    def ran(self, *cmd):
        return list(cmd) in self.calls


@pytest.fixture
def node(trash_mod):
    def make(*args, **kwargs):
        n = Node(*args, **kwargs)
        trash_mod.__salt__.update({"cmd.run_all": n.run_all, "service.restart": n.restart})
        return n
    return make


def as_captured(pillar):
    """The pillar whose rendered corosync.conf the THIS_CLUSTER capture runs."""
    pillar["trash"]["cluster"]["totem"] = {"token": 5000}
    pillar["trash"]["cluster"]["crypto_cipher"] = "aes128"
    return pillar


def test_another_clusters_corosync_nothing_uses_is_restarted(trash_mod, node, example_pillar):
    as_captured(example_pillar)
    n = node(DEBIAN, slow=2)
    with mock.patch.object(trash_mod.time, "sleep") as sleep:
        result = trash_mod.corosync_reload()
    assert n.ran("service.restart", "corosync") and not n.ran("corosync-cfgtool", "-R")
    assert n.ran("pidof", "pacemakerd") and n.ran("pidof", "dlm_controld")
    assert sleep.call_count == 2  # waited until the restarted corosync answered
    assert result["result"] is True
    assert result["comment"] == (f"restarted corosync: it ran {WHY} and nothing used it "
                                 "(no Pacemaker, no DLM)")
    changes = result["changes"]["corosync"]
    assert changes["totem.cluster_name"] == {"old": "debian", "new": "trashnet"}
    assert changes["totem.transport"] == {"old": None, "new": "knet"}
    assert changes["nodelist.node.0.ring0_addr"]["old"] == "127.0.0.1"
    assert changes["nodelist.node.1.name"] == {"old": None, "new": "node2"}
    assert example_pillar["trash"]["cluster"]["authkey"] not in repr(result)
    # verified: a second run finds the rendered configuration running
    assert trash_mod.corosync_reload()["comment"] == \
        "the running corosync has the rendered configuration"


def test_a_restart_that_does_not_bring_the_rendered_configuration_fails(trash_mod, node):
    # the example pillar has token 3000 and aes256; the restarted corosync runs 5000, aes128
    node(DEBIAN)
    result = trash_mod.corosync_reload()
    assert result["result"] is False
    assert result["comment"] == (
        f"restarted corosync (it ran {WHY} and nothing used it (no Pacemaker, no DLM)), but it "
        "still differs from the rendered corosync.conf in totem.crypto_cipher, totem.token")
    assert "totem.token" not in result["changes"]["corosync"]
    assert result["changes"]["corosync"]["totem.cluster_name"]["new"] == "trashnet"


def test_a_failed_restart_says_what_was_restarted_and_why(trash_mod, node, example_pillar):
    as_captured(example_pillar)
    node(DEBIAN)
    trash_mod.__salt__["service.restart"] = mock.Mock(side_effect=CommandExecutionError(
        "Job for corosync.service failed because the control process exited with error code."))
    with pytest.raises(CommandExecutionError) as exc:
        trash_mod.corosync_reload()
    assert str(exc.value) == (
        f"restarting corosync (it ran {WHY} and nothing used it (no Pacemaker, no DLM)) failed: "
        "Job for corosync.service failed because the control process exited with error code.")


@pytest.mark.parametrize("processes, users, units", [
    (["pacemakerd"], "Pacemaker", "pacemaker"),
    (["dlm_controld"], "DLM", "dlm"),
    (["pacemakerd", "dlm_controld"], "Pacemaker and DLM", "pacemaker dlm"),
])
def test_another_clusters_corosync_in_use_is_never_restarted(trash_mod, node, example_pillar,
                                                             processes, users, units):
    as_captured(example_pillar)
    n = node(DEBIAN, processes)
    kept = (f"; not restarted: it runs {WHY}, in use by {users} here. If that cluster is not "
            "in service (Debian starts its example with the packages): "
            f"systemctl stop {units}, and apply again")
    preview = trash_mod.corosync_reload(test=True)
    assert preview["result"] is None and preview["comment"] == \
        f"would reload corosync.conf on every node (corosync-cfgtool -R){kept}"
    result = trash_mod.corosync_reload()
    assert not n.ran("service.restart", "corosync") and n.ran("corosync-cfgtool", "-R")
    assert result["result"] is False
    assert result["comment"].startswith("reloaded corosync.conf, but corosync cannot change ")
    assert "totem.cluster_name" in result["comment"]
    assert result["comment"].endswith(
        f"at runtime: restart corosync, one node at a time, to apply them{kept}")


def test_this_clusters_corosync_with_stuck_keys_is_not_restarted(trash_mod, node):
    n = node(THIS_CLUSTER)  # the example pillar: token 3000, aes256; the reload changes nothing
    result = trash_mod.corosync_reload()
    assert not n.ran("service.restart", "corosync") and n.ran("corosync-cfgtool", "-R")
    assert not any(cmd[0] == "pidof" for cmd in n.calls)
    assert result == {"result": False, "changes": {}, "comment": (
        "reloaded corosync.conf, but corosync cannot change totem.crypto_cipher, totem.token "
        "at runtime: restart corosync, one node at a time, to apply them")}


def test_test_mode_says_it_would_restart_and_restarts_nothing(trash_mod, node, example_pillar):
    as_captured(example_pillar)
    n = node(DEBIAN)
    result = trash_mod.corosync_reload(test=True)
    assert not n.ran("service.restart", "corosync") and not n.ran("corosync-cfgtool", "-R")
    assert result["result"] is None
    assert result["comment"] == (f"would restart corosync: it runs {WHY} and nothing uses it "
                                 "(no Pacemaker, no DLM)")
    assert result["changes"]["corosync"]["totem.cluster_name"] == {"old": "debian",
                                                                  "new": "trashnet"}
    assert trash_mod.corosync_reload()["changes"] == result["changes"]
