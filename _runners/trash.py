"""
Master side of the trash.net cluster: notification of cluster events.

The reactor (``reactor/notify.sls``) hands every ``trash/*`` event to
:py:func:`notify`. The pure helpers below (membership, secret redaction, message
building, the rate-limit decision) do no I/O and are unit-tested on their own;
``notify`` only compiles the pillar, keeps the rate-limit state and sends.

Pillar (``trash:notify``, compiled on the master for the minion that fired the event):

``email``
    ``{to: [addr, ...], from: addr, smtp_host: host, smtp_port: 25}``
``webhook``
    ``{url: http(s)://...}``: the message is POSTed as JSON.
``rate_limit``
    At most one notification per (event tag, node) within this many seconds
    (0: no limit). The state lives in ``<cachedir>/trash/notify.json`` and so
    survives a master restart.
"""

import contextlib
import copy
import datetime
import email.message
import fcntl
import json
import logging
import os
import re
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import salt.pillar
import salt.utils.minions

log = logging.getLogger(__name__)

__virtualname__ = "trash"

SECRET = "<secret>"
# Same default as trash:notify:rate_limit in salt/trash/defaults.yaml (a unit test holds them equal)
DEFAULT_RATE_LIMIT = 300
# The longest rate limit the pillar validation allows: older state entries can never matter
MAX_RATE_LIMIT = 86400
# Pillar and event keys whose values are secrets, wherever they appear: this catches
# trash:cluster:authkey, trash:drbd:shared_secret, trash:nodes:*:bmc:password and
# whatever secret a later pillar key or event adds under a telling name.
SECRET_KEY = re.compile(r"password|passwd|passphrase|secret|authkey|credential|api_?key",
                        re.IGNORECASE)
SEND_TIMEOUT = 10
# the request-server port of a salt-master: open when the master runs
MASTER_PORT = 4506


def __virtual__():
    return __virtualname__


# --- pure helpers ---------------------------------------------------------------


def _acting(trash, me, members, answers):
    """(acts, why): whether the master on node ``me`` acts on an event.

    Every node runs a master and every event reaches both (DESIGN.md §3): the first of
    ``trash:salt:masters`` that is a cluster member seen from here (``members``: names,
    or None when this node's corosync cannot say) and whose master ``answers(node)``
    acts; the others stand by. A master outside the cluster acts alone, and a node that
    cannot see its peer acts too: in a split both notify, never neither."""
    nodes = trash.get("nodes") if isinstance(trash.get("nodes"), dict) else {}
    masters = (trash.get("salt") or {}).get("masters", "all")
    masters = sorted(nodes) if masters == "all" else list(masters or [])
    if me not in masters:
        return True, f"the master on {me or 'this host'} is not one of trash:salt:masters"
    if members is None:
        return True, f"corosync on {me} cannot say who is a member"
    for node in masters:
        if node == me:
            return True, f"{me}'s master is the first one up"
        if node in members and answers(node):
            return False, f"{node}'s master acts ({node} is a member and its master answers)"
    return True, f"{me}'s master is the first one up"


def _is_member(minion, trash):
    """True when ``minion`` is a key of ``trash:nodes`` (``trash`` is the pillar's trash dict)."""
    nodes = trash.get("nodes") if isinstance(trash, dict) else None
    return isinstance(minion, str) and isinstance(nodes, dict) and minion in nodes


def _secret_values(tree):
    """Every non-empty string under a secret-looking key of ``tree``, longest first."""
    found = set()

    def walk(node, secret):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, secret or bool(SECRET_KEY.search(str(key))))
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value, secret)
        elif secret and node is not None and not isinstance(node, bool) and str(node):
            found.add(str(node))

    walk(tree, False)
    return sorted(found, key=lambda s: (-len(s), s))


def _redact_text(text, secrets):
    """``text`` with every occurrence of every secret replaced by ``<secret>``."""
    for value in secrets:
        text = text.replace(value, SECRET)
    return text


def _sanitize(obj, secrets):
    """A JSON-safe copy of event data without any secret.

    Values under secret-looking keys are replaced whole; every string (keys too)
    has the known secret values replaced; Salt's private keys (``_stamp``,
    ``__pub_*``) are dropped.
    """
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            key = str(key)
            if key.startswith("_"):
                continue
            secret = SECRET_KEY.search(key)
            out[_redact_text(key, secrets)] = SECRET if secret else _sanitize(value, secrets)
        return out
    if isinstance(obj, (list, tuple, set)):
        return [_sanitize(value, secrets) for value in obj]
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, bytes):
        obj = obj.decode("utf-8", "replace")
    return _redact_text(str(obj), secrets)


def _rate_key(tag, node):
    """The rate-limit key of one (tag, node) pair; unambiguous whatever the strings hold."""
    return json.dumps([tag, node])


def _rate_limit_allows(last, now, limit):
    """Return ``(allowed, seconds_left)`` for a notification last sent at ``last``.

    A ``last`` in the future (the clock was set back) does not suppress anything.
    """
    if last is None or limit <= 0 or last > now or now - last >= limit:
        return True, 0
    return False, limit - (now - last)


def _rate_limit_of(notify_cfg):
    """Seconds between two notifications of one (tag, node); the default when unset or bad."""
    value = notify_cfg.get("rate_limit") if isinstance(notify_cfg, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return DEFAULT_RATE_LIMIT
    return value


def _prune(state, now, keep=MAX_RATE_LIMIT):
    """The rate-limit state without entries older than ``keep`` seconds."""
    return {k: v for k, v in state.items() if isinstance(v, (int, float)) and now - v < keep}


def _targets(notify_cfg):
    """The configured targets as ``{"email": {...}, "webhook": {...}}`` (absent ones left out)."""
    notify_cfg = notify_cfg if isinstance(notify_cfg, dict) else {}
    return {kind: notify_cfg[kind] for kind in ("email", "webhook")
            if isinstance(notify_cfg.get(kind), dict)}


def _build_message(tag, node, data, now, secrets, cluster=None):
    """The notification as a dict: what happened, where, when, and the event data.

    No secret can be in it: ``data``, ``tag`` and ``node`` pass through :func:`sanitize`.
    """
    data = _sanitize(data if isinstance(data, dict) else {"value": data}, secrets)
    tag = _sanitize(str(tag), secrets)
    node = _sanitize(str(node), secrets)
    what = tag[len("trash/"):] if tag.startswith("trash/") else tag
    summary = f"{what} on {node}"
    if data.get("resource"):
        summary += f" (resource {data['resource']})"
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    message = {
        "summary": summary,
        "tag": tag,
        "node": node,
        "timestamp": stamp.isoformat(timespec="seconds"),
        "data": data,
    }
    if cluster:
        message["cluster"] = _sanitize(str(cluster), secrets)
    return message


def _email_message(message, email_cfg, secrets):
    """The :class:`email.message.EmailMessage` of a notification."""
    mail = email.message.EmailMessage()
    prefix = f"[{message['cluster']}] " if message.get("cluster") else ""
    mail["Subject"] = _redact_text(f"{prefix}{message['summary']}", secrets)
    mail["From"] = email_cfg["from"]
    to = email_cfg["to"]
    mail["To"] = ", ".join([to] if isinstance(to, str) else to)
    body = "\n".join([
        message["summary"],
        "",
        f"event:  {message['tag']}",
        f"node:   {message['node']}",
        f"time:   {message['timestamp']}",
        "",
        "event data:",
        json.dumps(message["data"], indent=2, sort_keys=True, default=str),
        "",
    ])
    # a last pass over the exact text sent, in case escaping formed a secret again
    mail.set_content(_redact_text(body, secrets))
    return mail


def _webhook_body(message, secrets):
    """The JSON bytes POSTed to the webhook."""
    return _redact_text(json.dumps(message, sort_keys=True, default=str), secrets).encode()


# --- I/O ------------------------------------------------------------------------


def _pillar(minion):
    """The minion's pillar compiled now on the master (as ``pillar.show_pillar`` does)."""
    _, grains, _ = salt.utils.minions.get_minion_data(minion, __opts__)
    pillar = salt.pillar.Pillar(__opts__, grains or {"id": minion}, minion, "base",
                                pillarenv=__opts__.get("pillarenv"))
    return pillar.compile_pillar()


def _state_path():
    return os.path.join(__opts__["cachedir"], "trash", "notify.json")


@contextlib.contextmanager
def _locked_state():
    """Yield the rate-limit state (a dict) under an exclusive lock; saved on exit.

    The reactor runs runners in a thread pool: the lock keeps two deliveries of the
    same event from both passing the rate limit.
    """
    path = _state_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as handle:
                state = json.load(handle)
            if not isinstance(state, dict):
                state = {}
        except (OSError, ValueError):
            state = {}
        before = copy.deepcopy(state)
        yield state
        if state != before:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".notify-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle)
            os.replace(tmp, path)


def _this_node():
    """The cluster node this master runs on: master option ``trash_node``, else the
    short host name."""
    return __opts__.get("trash_node") or socket.gethostname().split(".")[0]


def _members():
    """Names of the cluster members seen by this node's corosync, or None."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_utils"))
    try:
        from trashlib import corosync  # pylint: disable=import-outside-toplevel
        out = subprocess.run(["corosync-quorumtool", "-s"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
        members = {name for _, name in corosync.parse_quorum(out)["members"]}
    except (ImportError, OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None
    finally:
        sys.path.pop(0)
    return members or None


def _master_answers(trash, node):
    """Whether the salt-master on ``node`` accepts a connection on its back-channel address."""
    try:
        address = str(trash["nodes"][node]["addresses"]["backchannel"]).split("/")[0]
        with socket.create_connection((address, MASTER_PORT), timeout=2):
            return True
    except (OSError, KeyError, TypeError):
        return False


def _send_email(message, cfg, secrets):
    mail = _email_message(message, cfg, secrets)
    with smtplib.SMTP(cfg["smtp_host"], int(cfg.get("smtp_port") or 25),
                      timeout=SEND_TIMEOUT) as smtp:
        smtp.send_message(mail)


def _send_webhook(message, cfg, secrets):
    # urllib also opens file:// and ftp:// URLs: a webhook is HTTP(S) or nothing
    if not re.match(r"^https?://", str(cfg["url"]), re.IGNORECASE):
        raise ValueError(f"the webhook URL {cfg['url']!r} is not http(s)")
    request = urllib.request.Request(
        cfg["url"], data=_webhook_body(message, secrets), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "trash-notify"})
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as response:
        response.read()


SENDERS = {"email": _send_email, "webhook": _send_webhook}


def notify(tag, data=None, minion=None):
    """
    Notify the targets of ``trash:notify`` of an event from a cluster node.

    Events from minions that are not in ``trash:nodes`` are ignored; at most one
    notification per (tag, node) goes out within ``trash:notify:rate_limit``
    seconds; no secret of the pillar is ever in a message. Returns what was sent
    (``sent``, ``failed``) or why nothing was (``skipped``).

    CLI Example:

    .. code-block:: bash

        salt-run trash.notify trash/drbd/split-brain '{resource: mirror0}' node1
    """
    ret = {"tag": tag, "node": minion, "sent": [], "failed": {}, "skipped": None}
    pillar = _pillar(minion) if isinstance(minion, str) and minion else {}
    if pillar.get("_errors"):
        # without the pillar there is no target and no list of secrets
        log.error("trash.notify: the pillar of %s has errors, not notifying %s", minion, tag)
        ret["skipped"] = f"the pillar of {minion} has errors"
        return ret
    trash = pillar.get("trash") or {}
    if not _is_member(minion, trash):
        ret["skipped"] = f"{minion!r} is not a member of trash:nodes"
        return ret
    acts, why = _acting(trash, _this_node(), _members(), lambda n: _master_answers(trash, n))
    if not acts:
        ret["skipped"] = f"standing by: {why}"
        return ret
    notify_cfg = trash.get("notify") or {}
    wanted = _targets(notify_cfg)
    if not wanted:
        ret["skipped"] = "trash:notify has no email and no webhook"
        return ret

    secrets = _secret_values(pillar)
    ret["tag"] = _redact_text(str(tag), secrets)
    now = time.time()
    limit = _rate_limit_of(notify_cfg)
    key = _rate_key(tag, minion)
    with _locked_state() as state:
        previous = state.get(key)
        allowed, left = _rate_limit_allows(previous, now, limit)
        if not allowed:
            ret["skipped"] = f"rate limited: one notification per {limit} s, {left:.0f} s left"
            return ret
        # reserve the slot before sending, so a concurrent duplicate is refused
        fresh = _prune(state, now, max(limit, MAX_RATE_LIMIT))
        fresh[key] = now
        state.clear()
        state.update(fresh)

    message = _build_message(tag, minion, data, now, secrets,
                            cluster=(trash.get("cluster") or {}).get("name"))
    for kind, cfg in wanted.items():
        try:
            SENDERS[kind](message, cfg, secrets)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # smtplib's and urllib's errors are OSErrors; the others mean a bad target
            ret["failed"][kind] = _redact_text(f"{type(exc).__name__}: {exc}", secrets)
            log.error("trash.notify: %s of %s failed: %s", kind, ret["tag"], ret["failed"][kind])
        else:
            ret["sent"].append(kind)
    if not ret["sent"]:
        # nothing got out: give the slot back so that the next event tries again
        with _locked_state() as state:
            if state.get(key) == now:
                if previous is None:
                    state.pop(key)
                else:
                    state[key] = previous
    return ret
