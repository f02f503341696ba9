"""The notify runner (_runners/trash.py): its pure helpers, and notify() with the pillar
and the senders replaced at their edge."""

import datetime
import email.policy
import importlib.util
import json
import pathlib
import types

import pytest

from trashlib import model

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_runner(cachedir=None):
    """A fresh instance of the runner module, as the master's loader would make one."""
    spec = importlib.util.spec_from_file_location("trash_runner_under_test",
                                                  ROOT / "_runners/trash.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = {"cachedir": str(cachedir or "/nonexistent")}
    return module


@pytest.fixture
def runner(tmp_path):
    return load_runner(tmp_path)


@pytest.fixture
def secrets(example_pillar):
    t = example_pillar["trash"]
    return [t["cluster"]["authkey"], t["drbd"]["shared_secret"],
            t["nodes"]["node1"]["bmc"]["password"], t["nodes"]["node2"]["bmc"]["password"]]


# --- membership -----------------------------------------------------------------


@pytest.mark.parametrize(("minion", "member"), [
    ("node1", True), ("node2", True), ("node3", False), ("", False), (None, False),
])
def test_members_are_the_keys_of_trash_nodes(runner, example_pillar, minion, member):
    assert runner._is_member(minion, example_pillar["trash"]) is member


@pytest.mark.parametrize("trash", [{}, None, {"nodes": None}, {"nodes": ["node1"]}, "node1"])
def test_without_a_nodes_mapping_nobody_is_a_member(runner, trash):
    assert runner._is_member("node1", trash) is False


# --- secrets --------------------------------------------------------------------


def test_secret_values_finds_every_secret_of_the_example_pillar(runner, example_pillar,
                                                                 secrets):
    found = runner._secret_values(example_pillar)
    assert set(found) == set(secrets)
    assert [len(s) for s in found] == sorted((len(s) for s in found), reverse=True)


def test_secret_values_looks_at_secret_keys_only_at_any_depth(runner):
    tree = {"a": {"api_key": "k1", "x": [{"Password": "p1"}], "passwords": ["p2", "p3"]},
            "token": "3000", "name": "public", "secret_flag": True, "secret_empty": ""}
    assert set(runner._secret_values(tree)) == {"k1", "p1", "p2", "p3"}


def test_sanitize_removes_secrets_wherever_they_are(runner, secrets):
    authkey, shared, bmc1, bmc2 = secrets
    data = {
        "resource": "mirror0",
        "password": "anything",
        "note": f"{shared} and again {shared}",
        "nested": {"list": [bmc1, ("t", bmc2)], "BMC_Passwd": "x"},
        f"key-{authkey}": 1,
        "raw": authkey.encode(),
        "_stamp": "2026-11-27T00:00:00", "__pub_fun": "event.send",
        "number": 7, "flag": True, "none": None, "obj": types.SimpleNamespace(v=bmc1),
    }
    out = runner._sanitize(data, runner._secret_values({"s": {"secret": secrets}}))
    text = json.dumps(out)
    assert all(secret not in text for secret in secrets)
    assert out["resource"] == "mirror0"
    assert out["password"] == "<secret>"
    assert out["note"] == "<secret> and again <secret>"
    assert out["nested"] == {"list": ["<secret>", ["t", "<secret>"]], "BMC_Passwd": "<secret>"}
    assert out["key-<secret>"] == 1
    assert out["raw"] == "<secret>"
    assert "_stamp" not in out and "__pub_fun" not in out
    assert (out["number"], out["flag"], out["none"]) == (7, True, None)
    assert "<secret>" in out["obj"]


def test_a_secret_that_contains_another_is_redacted_whole(runner):
    secrets = runner._secret_values({"password": "abc", "secret": "xxabcxx"})
    assert runner._redact_text("xxabcxx abc", secrets) == "<secret> <secret>"


# --- rate limit -----------------------------------------------------------------


@pytest.mark.parametrize(("last", "now", "limit", "expected"), [
    (None, 1000.0, 300, (True, 0)),
    (900.0, 1000.0, 300, (False, 200.0)),
    (700.0, 1000.0, 300, (True, 0)),     # exactly the limit later: allowed
    (999.0, 1000.0, 0, (True, 0)),       # 0: no limit
    (5000.0, 1000.0, 300, (True, 0)),    # the clock was set back: do not stay silent
])
def test_rate_limit_allows_one_per_window(runner, last, now, limit, expected):
    assert runner._rate_limit_allows(last, now, limit) == expected


@pytest.mark.parametrize(("cfg", "expected"), [
    ({"rate_limit": 60}, 60), ({"rate_limit": 0}, 0), ({}, 300), (None, 300),
    ({"rate_limit": "60"}, 300), ({"rate_limit": -1}, 300), ({"rate_limit": True}, 300),
])
def test_rate_limit_of_the_pillar(runner, cfg, expected):
    assert runner._rate_limit_of(cfg) == expected


def test_default_rate_limit_is_the_one_in_defaults_yaml(runner, defaults):
    assert runner.DEFAULT_RATE_LIMIT == defaults["trash"]["notify"]["rate_limit"]


def test_longest_rate_limit_is_the_one_the_validation_allows(runner, example_pillar, defaults):
    example_pillar["trash"]["notify"]["rate_limit"] = runner.MAX_RATE_LIMIT
    model.load(example_pillar, defaults)
    example_pillar["trash"]["notify"]["rate_limit"] = runner.MAX_RATE_LIMIT + 1
    with pytest.raises(model.PillarError):
        model.load(example_pillar, defaults)


def test_rate_keys_are_unambiguous(runner):
    assert runner._rate_key("trash/a|b", "c") != runner._rate_key("trash/a", "b|c")
    assert runner._rate_key("t", "n") == runner._rate_key("t", "n")


def test_prune_forgets_only_old_entries(runner):
    state = {"old": 0.0, "new": 90000.0, "junk": "x"}
    assert runner._prune(state, 100000.0) == {"new": 90000.0}


def test_targets_are_the_configured_ones(runner, example_pillar):
    notify = example_pillar["trash"]["notify"]
    assert set(runner._targets(notify)) == {"email", "webhook"}
    assert set(runner._targets(dict(notify, webhook=None))) == {"email"}
    assert runner._targets({"rate_limit": 5}) == {}
    assert runner._targets(None) == {}


# --- the message ----------------------------------------------------------------

NOW = 1795740000.0


def test_message_says_what_where_and_when(runner):
    msg = runner._build_message("trash/drbd/split-brain", "node1",
                               {"resource": "mirror0", "peer": "node2", "_stamp": "x"},
                               NOW, [], cluster="trashnet")
    assert msg["summary"] == "drbd/split-brain on node1 (resource mirror0)"
    assert (msg["tag"], msg["node"], msg["cluster"]) == ("trash/drbd/split-brain", "node1",
                                                         "trashnet")
    assert msg["data"] == {"resource": "mirror0", "peer": "node2"}
    stamp = datetime.datetime.fromisoformat(msg["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0) and stamp.timestamp() == NOW


def test_message_of_an_event_without_a_resource_or_a_mapping(runner):
    msg = runner._build_message("other/tag", "node2", "just text", NOW, [])
    assert msg["summary"] == "other/tag on node2"
    assert msg["data"] == {"value": "just text"}
    assert "cluster" not in msg


def test_no_secret_in_the_email_or_the_webhook_even_from_the_event(runner, secrets):
    authkey, shared, bmc1, bmc2 = secrets
    found = runner._secret_values({"trash": {"cluster": {"authkey": authkey},
                                            "drbd": {"shared_secret": shared},
                                            "nodes": {"a": {"bmc": {"password": bmc1}},
                                                      "b": {"bmc": {"password": bmc2}}}}})
    msg = runner._build_message(f"trash/drbd/{shared}", "node1",
                               {"resource": "mirror0", "note": f'quote"{bmc1}"', "k": authkey,
                                "list": [bmc2]}, NOW, found, cluster="trashnet")
    cfg = {"to": ["ops@trash.net", "oncall@trash.net"], "from": "cluster@trash.net"}
    mail = runner._email_message(msg, cfg, found)
    raw = mail.as_bytes(policy=email.policy.SMTP).decode()
    body = runner._webhook_body(msg, found).decode()
    for secret in secrets:
        assert secret not in raw and secret not in body
    assert mail["To"] == "ops@trash.net, oncall@trash.net"
    assert mail["From"] == "cluster@trash.net"
    assert mail["Subject"] == "[trashnet] drbd/<secret> on node1 (resource mirror0)"
    assert json.loads(body)["data"]["resource"] == "mirror0"
    assert "mirror0" in mail.get_content()


# --- notify() with the pillar and the senders replaced ----------------------------


class Senders(dict):
    """Stand-ins for SENDERS that record every call, and fail on demand."""

    def __init__(self, fail=()):
        super().__init__()
        self.calls = []
        for kind in ("email", "webhook"):
            self[kind] = self._sender(kind, kind in fail)

    def _sender(self, kind, fail):
        def send(message, cfg, secrets):
            self.calls.append((kind, message))
            if fail:
                raise ConnectionRefusedError(f"refused, and the key was {secrets[0]}")
        return send


@pytest.fixture
def wire(monkeypatch, example_pillar):
    """Point a runner instance at the example pillar, fake senders and a settable clock."""
    clock = types.SimpleNamespace(now=NOW)

    def apply(module, pillar=None, senders=None):
        pillar = example_pillar if pillar is None else pillar
        senders = Senders() if senders is None else senders
        monkeypatch.setattr(module, "_pillar", lambda minion: pillar)
        monkeypatch.setattr(module, "SENDERS", senders)
        monkeypatch.setattr(module, "time", types.SimpleNamespace(time=lambda: clock.now))
        return senders

    apply.clock = clock
    return apply


def test_notify_sends_to_both_targets(runner, wire):
    senders = wire(runner)
    ret = runner.notify("trash/drbd/split-brain", {"resource": "mirror0"}, "node1")
    assert ret == {"tag": "trash/drbd/split-brain", "node": "node1",
                   "sent": ["email", "webhook"], "failed": {}, "skipped": None}
    assert [kind for kind, _ in senders.calls] == ["email", "webhook"]
    assert senders.calls[0][1]["summary"] == "drbd/split-brain on node1 (resource mirror0)"


def test_notify_ignores_non_members_before_anything_else(runner, wire, tmp_path):
    senders = wire(runner, pillar={})
    ret = runner.notify("trash/drbd/split-brain", {}, "node3")
    assert ret["sent"] == [] and "not a member" in ret["skipped"]
    assert senders.calls == []
    assert not (tmp_path / "trash/notify.json").exists()


def test_notify_ignores_events_without_a_minion(runner, wire):
    senders = wire(runner)
    assert "not a member" in runner.notify("trash/x", {}, "")["skipped"]
    assert senders.calls == []


def test_notify_without_targets_says_so(runner, wire, example_pillar):
    example_pillar["trash"]["notify"] = {"email": None, "webhook": None}
    senders = wire(runner)
    assert runner.notify("trash/x", {}, "node1")["skipped"] == \
        "trash:notify has no email and no webhook"
    assert senders.calls == []


def test_notify_with_a_broken_pillar_sends_nothing(runner, wire):
    senders = wire(runner, pillar={"_errors": ["rendering failed"]})
    assert "errors" in runner.notify("trash/x", {}, "node1")["skipped"]
    assert senders.calls == []


def test_rate_limit_per_tag_and_node_survives_a_restart(runner, wire, tmp_path):
    senders = wire(runner)
    assert runner.notify("trash/drbd/split-brain", {}, "node1")["sent"]
    wire.clock.now += 299
    again = runner.notify("trash/drbd/split-brain", {}, "node1")
    assert again["sent"] == [] and again["skipped"].startswith("rate limited")
    # another tag, another node: each has its own window
    assert runner.notify("trash/drbd/fence-peer", {}, "node1")["sent"]
    assert runner.notify("trash/drbd/split-brain", {}, "node2")["sent"]
    # a new instance (a restarted master) reads the state from the cachedir
    restarted = load_runner(tmp_path)
    senders = wire(restarted, senders=senders)
    assert restarted.notify("trash/drbd/split-brain", {}, "node1")["skipped"]
    wire.clock.now += 1
    assert restarted.notify("trash/drbd/split-brain", {}, "node1")["sent"]
    assert len(senders.calls) == 8


def test_a_failed_delivery_is_reported_without_secrets_and_frees_the_slot(runner, wire,
                                                                           secrets):
    wire(runner, senders=Senders(fail=("email", "webhook")))
    ret = runner.notify("trash/drbd/split-brain", {}, "node1")
    assert ret["sent"] == [] and set(ret["failed"]) == {"email", "webhook"}
    assert all(s not in json.dumps(ret) for s in secrets)
    assert "ConnectionRefusedError" in ret["failed"]["email"]
    # nothing got out: the next event tries again rather than being rate-limited
    wire(runner, senders=Senders())
    assert runner.notify("trash/drbd/split-brain", {}, "node1")["sent"] == ["email", "webhook"]


def test_one_target_failing_still_counts_as_notified(runner, wire):
    wire(runner, senders=Senders(fail=("webhook",)))
    ret = runner.notify("trash/drbd/split-brain", {}, "node1")
    assert ret["sent"] == ["email"] and list(ret["failed"]) == ["webhook"]
    assert runner.notify("trash/drbd/split-brain", {}, "node1")["skipped"].startswith("rate")


def test_a_webhook_url_that_is_not_http_is_refused_before_any_io(runner):
    with pytest.raises(ValueError, match="not http"):
        runner._send_webhook({"summary": "x"}, {"url": "file:///etc/shadow"}, [])


def test_a_single_recipient_as_a_string_is_one_address(runner):
    msg = runner._build_message("trash/x", "node1", {}, NOW, [])
    mail = runner._email_message(msg, {"to": "ops@trash.net", "from": "c@trash.net"}, [])
    assert mail["To"] == "ops@trash.net"


# --- one acting master ----------------------------------------------------------


def test_the_first_master_that_is_a_member_and_answers_acts(runner, example_pillar):
    trash = example_pillar["trash"]  # salt:masters defaults to all nodes: node1, node2
    up = {"node1", "node2"}
    assert runner._acting(trash, "node1", up, lambda n: True) == (
        True, "node1's master is the first one up")
    acts, why = runner._acting(trash, "node2", up, lambda n: True)
    assert acts is False and why == "node1's master acts (node1 is a member and its master answers)"
    # node1 lost, or its master down: node2 acts
    assert runner._acting(trash, "node2", {"node2"}, lambda n: True)[0] is True
    assert runner._acting(trash, "node2", up, lambda n: False)[0] is True
    # corosync cannot say (split, or not running): act rather than stay silent
    assert runner._acting(trash, "node2", None, lambda n: True)[0] is True
    # a master outside the cluster acts alone
    assert runner._acting(trash, "mgmt", up, lambda n: True)[0] is True
    trash["salt"] = {"masters": ["node2"]}
    assert runner._acting(trash, "node2", up, lambda n: True)[0] is True
    assert runner._acting(trash, "node1", up, lambda n: True)[0] is True  # not a master


def test_a_standing_by_master_sends_nothing(tmp_path, example_pillar, monkeypatch):
    runner = load_runner(tmp_path)
    runner.__opts__["trash_node"] = "node2"
    monkeypatch.setattr(runner, "_pillar", lambda minion: example_pillar)
    monkeypatch.setattr(runner, "_members", lambda: {"node1", "node2"})
    monkeypatch.setattr(runner, "_master_answers", lambda trash, node: node == "node1")
    sent = []
    monkeypatch.setitem(runner.SENDERS, "webhook", lambda *a: sent.append(a))
    example_pillar["trash"]["notify"] = {"webhook": {"url": "http://127.0.0.1:9/"}}
    ret = runner.notify("trash/drbd/split-brain", {"resource": "mirror0"}, "node1")
    assert ret["skipped"] == ("standing by: node1's master acts (node1 is a member and its "
                              "master answers)") and sent == []
