"""A running corosync takes pillar changes without a restart; what it cannot take is named;
one that runs another cluster's configuration (Debian's example) and nothing uses is restarted.

corosync runs for real in a network namespace of this test that holds node1's link
addresses (corosync_pair.py, node2 not started); every command of the module runs inside
that namespace, except ``pidof``: a network namespace does not hide this machine's other
processes, so a stand-in answers which of Pacemaker and DLM run on the node.
"""

import copy
import os
import pathlib
import shutil
import subprocess
import uuid

import pytest
from salt.exceptions import CommandExecutionError

from corosync_pair import running_pair
from modload import run_all, trash_module
from trashlib import corosync, model

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
DATA = pathlib.Path(__file__).resolve().parents[1] / "data/corosync"
# Debian's /etc/corosync/corosync.conf (corosync 3.1.7-1+deb12u2), as installed
DEBIAN_EXAMPLE = DATA / "corosync.conf-debian-example"


@pytest.fixture
def running(tmp_path, example_pillar, defaults):
    """corosync of node1 alone in its namespace: (netns name, write(pillar) re-rendering its conf)."""
    cfg = model.load(copy.deepcopy(example_pillar), defaults)
    with running_pair(cfg, tmp_path, nodes=("node1",)) as pair:
        yield pair.ns["node1"], lambda pillar: pair.write_conf(
            model.load(copy.deepcopy(pillar), defaults), "node1")


def module_in(ns, pillar, processes=()):
    """The module on node1, on which the processes named in ``processes`` run."""
    def run(cmd, **kw):
        if cmd[0] == "pidof":
            return {"retcode": 0 if cmd[1] in processes else 1,
                    "stdout": "4242\n" if cmd[1] in processes else "", "stderr": ""}
        return run_all(["ip", "netns", "exec", ns, *cmd], **kw)
    mod = trash_module(pillar, "trash_corosync_reload")
    mod.__salt__["cmd.run_all"] = run
    return mod


def cmap(ns, key):
    out = run_all(["ip", "netns", "exec", ns, "corosync-cmapctl", key])["stdout"]
    return corosync.parse_cmap(out).get(key)


def test_reload_applies_what_corosync_can_change_at_runtime(running, example_pillar):
    ns, write = running
    mod = module_in(ns, example_pillar)
    assert mod.corosync_reload(test=True) == {
        "result": True, "changes": {},
        "comment": "the running corosync has the rendered configuration"}

    example_pillar["trash"]["cluster"]["totem"] = {"token": 5000}
    example_pillar["trash"]["cluster"]["crypto_cipher"] = "aes128"
    write(example_pillar)
    mod.__context__.clear()
    preview = mod.corosync_reload(test=True)
    assert preview["result"] is None
    assert preview["changes"] == {"corosync": {
        "totem.crypto_cipher": {"old": "aes256", "new": "aes128"},
        "totem.token": {"old": "3000", "new": "5000"}}}
    assert cmap(ns, "totem.token") == "3000"  # test mode reloaded nothing

    applied = mod.corosync_reload()
    assert applied["result"] is True and applied["changes"] == preview["changes"]
    assert cmap(ns, "runtime.config.totem.token") == "5000"
    assert mod.corosync_reload()["changes"] == {}


def test_what_needs_a_restart_is_named(running, example_pillar):
    ns, write = running
    example_pillar["trash"]["cluster"]["name"] = "renamed"
    write(example_pillar)
    # a cluster in service: Pacemaker uses corosync, which is never restarted under it
    result = module_in(ns, example_pillar, ("pacemakerd",)).corosync_reload()
    assert result["result"] is False
    assert "totem.cluster_name" in result["comment"] and "restart corosync" in result["comment"]
    assert cmap(ns, "totem.cluster_name") == "trashnet"


def test_nothing_to_reload_when_corosync_is_not_running(example_pillar):
    ns = f"trash-cs-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        result = module_in(ns, example_pillar).corosync_reload()
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    assert result == {"result": True, "changes": {},
                      "comment": "corosync is not running here: it reads corosync.conf when it starts"}


@pytest.fixture
def debian(tmp_path, example_pillar, defaults):
    """node1's corosync started with Debian's example configuration (as the package starts
    it), its file since overwritten with the rendered one (trash-cluster-files-managed):
    (pair, the stand-in for service.restart, which the module is given)."""
    cfg = model.load(copy.deepcopy(example_pillar), defaults)
    with running_pair(cfg, tmp_path, nodes=()) as pair:
        pair.conf("node1").write_text(
            DEBIAN_EXAMPLE.read_text()
            .replace("/var/log/corosync/corosync.log", f"{tmp_path}/corosync-node1.log")
            .replace("to_syslog: yes", "to_syslog: no"))
        pair.launch("node1")
        pair.answering("node1")
        pair.write_conf(cfg, "node1")
        restarts = []

        def restart(name):
            # as systemctl restart: stop, then start with the file; the module waits for it
            restarts.append(name)
            pair.stop("node1")
            pair.launch("node1")
            return True
        yield pair, restart, restarts


def test_another_clusters_corosync_nothing_uses_is_restarted(debian, example_pillar):
    pair, restart, restarts = debian
    ns = pair.ns["node1"]
    assert cmap(ns, "totem.cluster_name") == "debian"
    mod = module_in(ns, example_pillar)
    mod.__salt__["service.restart"] = restart
    preview = mod.corosync_reload(test=True)
    assert preview["result"] is None and restarts == []
    assert preview["comment"] == (
        "would restart corosync: it runs another cluster's configuration (cluster_name "
        "'debian') and nothing uses it (no Pacemaker, no DLM)")

    result = mod.corosync_reload()
    assert restarts == ["corosync"], result
    assert result["result"] is True, result
    assert result["comment"] == (
        "restarted corosync: it ran another cluster's configuration (cluster_name 'debian') "
        "and nothing used it (no Pacemaker, no DLM)")
    assert result["changes"] == preview["changes"]
    assert result["changes"]["corosync"]["totem.cluster_name"] == {"old": "debian",
                                                                  "new": "trashnet"}
    assert example_pillar["trash"]["cluster"]["authkey"] not in repr(result)
    # the running corosync is the rendered one, as corosync itself says
    assert cmap(ns, "totem.cluster_name") == "trashnet"
    assert cmap(ns, "totem.crypto_cipher") == "aes256"
    assert "Local node ID 1, transport knet" in pair.exec("node1", "corosync-cfgtool", "-s").stdout
    assert mod.corosync_reload() == {
        "result": True, "changes": {},
        "comment": "the running corosync has the rendered configuration"}


def test_another_clusters_corosync_under_pacemaker_is_not_restarted(debian, example_pillar):
    pair, restart, restarts = debian
    ns = pair.ns["node1"]
    mod = module_in(ns, example_pillar, ("pacemakerd",))
    mod.__salt__["service.restart"] = restart
    # corosync refuses the reload outright: the file moves its only link to another address
    with pytest.raises(CommandExecutionError) as exc:
        mod.corosync_reload()
    assert restarts == []
    assert str(exc.value) == (
        "corosync-cfgtool -R failed: Could not reload configuration. Error CS_ERR_INVALID_PARAM; "
        "not restarted: it runs another cluster's configuration (cluster_name 'debian'), in use "
        "by Pacemaker here. If that cluster is not in service (Debian starts its example with "
        "the packages): systemctl stop pacemaker, and apply again")
    assert cmap(ns, "totem.cluster_name") == "debian"


def test_pidof_answers_as_the_module_reads_it(tmp_path):
    """0 and the pid when a process of that name runs, 1 when none does."""
    name = f"tp{uuid.uuid4().hex[:10]}"
    program = tmp_path / name
    shutil.copy(shutil.which("sleep"), program)
    assert run_all(["pidof", name])["retcode"] == 1
    proc = subprocess.Popen([str(program), "60"])
    try:
        found = run_all(["pidof", name])
        assert found["retcode"] == 0 and found["stdout"].split() == [str(proc.pid)]
    finally:
        proc.kill()
        proc.wait()
