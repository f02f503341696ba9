"""reactor/notify.sls, rendered by Salt's Jinja, for both shapes of event it receives."""

import pathlib

import pytest
import salt.config
import salt.utils.templates
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def render(tag, data):
    opts = salt.config.master_config(None)
    text = salt.utils.templates.render_jinja_tmpl(
        (ROOT / "reactor/notify.sls").read_text(),
        {"opts": opts, "saltenv": "base", "tag": tag, "data": data, "salt": {}, "grains": {},
         "pillar": {}})
    args = yaml.safe_load(text)["trash-notify-runner"]["runner.trash.notify"][0]["args"]
    return {k: v for item in args for k, v in item.items()}


def test_event_send_shape():
    # what the master fires for `salt-call event.send trash/drbd/split-brain resource=mirror0`
    data = {"id": "node1", "tag": "trash/drbd/split-brain", "cmd": "_minion_event",
            "data": {"resource": "mirror0", "__pub_fun": "event.send"}, "_stamp": "2026"}
    assert render("trash/drbd/split-brain", data) == {
        "tag": "trash/drbd/split-brain", "minion": "node1",
        "data": {"resource": "mirror0", "__pub_fun": "event.send"}}


def test_beacon_shape():
    # a beacon's event: its payload is the data itself, with the minion's id
    data = {"id": "node1", "tag": "link/storage", "subject": "storage", "old": "connected",
            "new": "disconnected", "node": "node1", "timestamp": 1.5, "_stamp": "2026"}
    args = render("salt/beacon/node1/trash_corosync/link/storage", data)
    assert args["minion"] == "node1"
    assert args["data"] == {"tag": "link/storage", "subject": "storage", "old": "connected",
                            "new": "disconnected", "node": "node1", "timestamp": 1.5}


@pytest.mark.parametrize("pattern, tag, matches", [
    ("salt/beacon/*/trash_*", "salt/beacon/node1/trash_corosync/link/storage", True),
    ("salt/beacon/*/trash_*", "salt/beacon/node1/inotify//etc", False),
    ("trash/*", "trash/drbd/split-brain", True),
])
def test_master_maps_the_tags(pattern, tag, matches):
    import fnmatch

    config = yaml.safe_load((ROOT / "etc/salt/master").read_text())
    patterns = [next(iter(item)) for item in config["reactor"]]
    assert pattern in patterns
    assert fnmatch.fnmatch(tag, pattern) is matches
