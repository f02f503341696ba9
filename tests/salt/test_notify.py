"""Cluster events through the master's reactor to real local HTTP and SMTP receivers.

The events are fired the way DRBD fires them: the rendered handler
(/usr/local/lib/trash/drbd-event) hands ``trash/drbd/<kind>`` to the node's running minion
(``salt-call --local event.fire ... fire_master``), which forwards it to the master; a
``salt-call`` wrapper on PATH points it at that minion's configuration.
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
from trashlib import drbd

RUNNER = "runner.trash.notify"


@pytest.fixture(scope="module")
def fire(tmp_path_factory, minions, outsider):
    """``fire(node, kind, **drbd_env)``: run the DRBD handler on ``node``."""
    handler = tmp_path_factory.mktemp("handler") / "drbd-event"
    handler.write_text(drbd.event_handler())
    handler.chmod(0o755)
    daemons = {**minions, outsider.id: outsider}
    bins = {}
    for node, minion in daemons.items():
        bins[node] = tmp_path_factory.mktemp(f"{node}-bin")
        real = pathlib.Path(sys.executable).parent / "salt-call"
        wrapper = bins[node] / "salt-call"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{real}" '
                           f'--config-dir="{minion.config_dir}" "$@"\n')
        wrapper.chmod(0o755)

    def run(node, kind, **env):
        full = dict(os.environ, PATH=f"{bins[node]}:{os.environ['PATH']}",
                    **{f"DRBD_{k.upper()}": str(v) for k, v in env.items()})
        res = subprocess.run([str(handler), kind], env=full, timeout=120, check=False)
        assert res.returncode == 0, f"drbd-event {kind} on {node} failed ({res.returncode})"

    return run


@pytest.fixture(scope="module")
def runner_return(event_listener, master, poll):
    """``runner_return(node, after)``: the return of the notify runner for ``node``'s event."""

    def wait(node, after, timeout=60):
        def found():
            for event in event_listener.get_events([(master.id, "salt/run/*/ret")],
                                                   after_time=after):
                ret = event.data.get("return")
                if event.data.get("fun") == RUNNER and isinstance(ret, dict) \
                        and ret.get("node") == node:
                    return ret
            return None

        return poll(found, timeout, what=f"the {RUNNER} return for an event of {node}")

    return wait


@pytest.fixture(scope="module")
def first(fire, runner_return, webhook, smtp):
    """node1 reports a split brain of mirror0; what the runner and the receivers got."""
    assert webhook.received == [] and smtp.received == []
    start = time.time()
    fire("node1", "split-brain", resource="mirror0", minor=0, peer="node2")
    ret = runner_return("node1", start)
    return {"return": ret, "hooks": webhook.wait_for_count(1), "mails": smtp.wait_for_count(1)}


def test_split_brain_is_notified_once_by_webhook_and_email(first, notify_pillar, master):
    assert first["return"]["sent"] == ["email", "webhook"], first["return"]
    assert len(first["hooks"]) == 1 and len(first["mails"]) == 1

    hook = first["hooks"][0]
    assert hook["path"] == "/hooks/cluster"
    assert hook["headers"]["Content-Type"] == "application/json"
    body = json.loads(hook["body"])
    assert body["tag"] == "trash/drbd/split-brain"
    assert body["node"] == "node1"
    assert body["data"]["resource"] == "mirror0"
    assert body["data"]["peer"] == "node2"
    assert "mirror0" in body["summary"] and "node1" in body["summary"]
    sent_at = datetime.datetime.fromisoformat(body["timestamp"])
    assert abs(time.time() - sent_at.timestamp()) < 120

    mail = first["mails"][0]
    cfg = notify_pillar["trash"]["notify"]["email"]
    assert mail["from"] == cfg["from"] and mail["to"] == cfg["to"]
    message = mail["message"]
    assert "split-brain on node1 (resource mirror0)" in message["Subject"]
    text = message.get_content()
    assert "node1" in text and "mirror0" in text and "trash/drbd/split-brain" in text

    # the rate-limit state is on disk in the master's cachedir, so a restart keeps it
    state = json.loads((pathlib.Path(master.config["cachedir"]) / "trash/notify.json").read_text())
    assert json.dumps(["trash/drbd/split-brain", "node1"]) in state


def test_same_event_within_the_rate_limit_sends_nothing(first, fire, runner_return, webhook,
                                                        smtp):
    start = time.time()
    fire("node1", "split-brain", resource="mirror0", minor=0, peer="node2")
    ret = runner_return("node1", start)
    assert ret["sent"] == [] and ret["skipped"].startswith("rate limited"), ret
    # the runner has returned: anything it sent has arrived
    assert len(webhook.received) == 1 and len(smtp.received) == 1


def test_event_from_a_minion_outside_the_cluster_is_ignored(first, fire, runner_return,
                                                            webhook, smtp, salt_run):
    # node3 sees the cluster pillar and its targets: only the membership check stops it
    assert salt_run("node3", "pillar.get", "trash:notify:webhook:url")["node3"]
    hooks, mails = len(webhook.received), len(smtp.received)
    start = time.time()
    fire("node3", "split-brain", resource="mirror0", minor=0, peer="node2")
    ret = runner_return("node3", start)
    assert ret["sent"] == [] and "not a member" in ret["skipped"], ret
    assert (len(webhook.received), len(smtp.received)) == (hooks, mails)


def test_secret_carried_by_an_event_reaches_no_message(first, salt_run, runner_return, webhook,
                                                       smtp, secrets, secret_values):
    hooks, mails = len(webhook.received), len(smtp.received)
    start = time.time()
    salt_run("node2", "event.send", "trash/drbd/fence-peer", resource="mirror1",
             password=secrets["trash:nodes:node1:bmc:password"],
             note=f"key {secrets['trash:cluster:authkey']} and "
                  f"{secrets['trash:drbd:shared_secret']}",
             details={"list": [secrets["trash:nodes:node2:bmc:password"]]})
    ret = runner_return("node2", start)
    # another tag: not rate-limited by the split brain above
    assert ret["sent"] == ["email", "webhook"], ret
    hook = webhook.wait_for_count(hooks + 1)[-1]
    mail = smtp.wait_for_count(mails + 1)[-1]
    assert len(webhook.received) == hooks + 1 and len(smtp.received) == mails + 1
    delivered = [hook["body"].decode(), mail["raw"].decode(), json.dumps(ret)]
    for secret in secret_values:
        assert all(secret not in text for text in delivered)
    body = json.loads(hook["body"])
    assert body["data"]["password"] == "<secret>"
    assert body["data"]["note"] == "key <secret> and <secret>"
    assert body["data"]["details"] == {"list": ["<secret>"]}
    assert body["data"]["resource"] == "mirror1"
