"""A running corosync takes pillar changes without a restart; what it cannot take is named.

corosync runs for real in a network namespace of this test that holds node1's link
addresses (corosync_pair.py, node2 not started); every command of the module runs inside
that namespace.
"""

import copy
import os
import subprocess
import uuid

import pytest

from corosync_pair import running_pair
from modload import run_all, trash_module
from trashlib import corosync, model

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture
def running(tmp_path, example_pillar, defaults):
    """corosync of node1 alone in its namespace: (netns name, write(pillar) re-rendering its conf)."""
    cfg = model.load(copy.deepcopy(example_pillar), defaults)
    with running_pair(cfg, tmp_path, nodes=("node1",)) as pair:
        yield pair.ns["node1"], lambda pillar: pair.write_conf(
            model.load(copy.deepcopy(pillar), defaults), "node1")


def module_in(ns, pillar):
    mod = trash_module(pillar, "trash_corosync_reload")
    mod.__salt__["cmd.run_all"] = lambda cmd, **kw: run_all(["ip", "netns", "exec", ns, *cmd], **kw)
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
    result = module_in(ns, example_pillar).corosync_reload()
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
