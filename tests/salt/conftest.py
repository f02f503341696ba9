"""A real salt-master and the minions node1, node2 (and node3, not a member) on loopback,
serving this checkout.

The master runs the repository's own etc/salt/master with /srv/trash replaced by the
checkout; only ports, directories, key acceptance and the notification targets differ.
trash:notify points at an HTTP and an SMTP receiver on 127.0.0.1 that record what they
get. Each node's trash_root is a scratch directory standing for its /.
"""

import concurrent.futures
import contextlib
import email
import email.policy
import http.server
import pathlib
import socketserver
import threading

import pytest
import yaml
from polling import wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODES = ("node1", "node2")
# in trash:notify of the test pillar; the runner's default is the real one (300 s)
RATE_LIMIT = 300


def replace_prefix(tree, old, new):
    """``tree`` with every string that starts with ``old`` rebased onto ``new``."""
    if isinstance(tree, dict):
        return {k: replace_prefix(v, old, new) for k, v in tree.items()}
    if isinstance(tree, list):
        return [replace_prefix(v, old, new) for v in tree]
    if isinstance(tree, str) and (tree == old or tree.startswith(old + "/")):
        return new + tree[len(old):]
    return tree


# --- receivers ------------------------------------------------------------------


class _HookHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append({"path": self.path, "headers": dict(self.headers),
                                     "body": body})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_):
        pass


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def _reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self._reply("220 trash-test ESMTP")
        sender, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250 trash-test")
            elif verb == "MAIL":
                sender, rcpts = cmd.split(":", 1)[1].strip().strip("<>"), []
                self._reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 end data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    data = self.rfile.readline()
                    if not data or data.rstrip(b"\r\n") == b".":
                        break
                    lines.append(data[1:] if data.startswith(b"..") else data)
                raw = b"".join(lines)
                self.server.received.append({
                    "from": sender, "to": rcpts, "raw": raw,
                    "message": email.message_from_bytes(raw, policy=email.policy.default)})
                self._reply("250 queued")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            elif verb in ("RSET", "NOOP"):
                self._reply("250 OK")
            else:
                self._reply("502 not implemented")


class _ThreadingSMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Receiver:
    """A server on 127.0.0.1 (random port) in a thread, recording what it receives."""

    def __init__(self, server):
        self.server = server
        self.server.received = []
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def received(self):
        return list(self.server.received)

    def wait_for_count(self, count, timeout=30):
        return wait_for(lambda: len(self.server.received) >= count and self.received,
                        timeout, what=f"{count} message(s) at port {self.port}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    server.daemon_threads = True
    receiver = Receiver(server)
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def smtp():
    receiver = Receiver(_ThreadingSMTPServer(("127.0.0.1", 0), _SMTPHandler))
    yield receiver
    receiver.close()


# --- the pillar: the repository's, with trash:notify pointed at the receivers ---


@pytest.fixture(scope="session")
def notify_pillar(webhook, smtp):
    return {"trash": {"notify": {
        "email": {"to": ["ops@trash.net"], "from": "cluster@trash.net",
                  "smtp_host": "127.0.0.1", "smtp_port": smtp.port},
        "webhook": {"url": f"http://127.0.0.1:{webhook.port}/hooks/cluster"},
        "rate_limit": RATE_LIMIT,
    }}}


@pytest.fixture(scope="session")
def pillar_override_dir(tmp_path_factory, notify_pillar):
    """A pillar root placed before the repository's: its top.sls is the repository's
    plus ``test_notify`` for every target, so the override merges last.

    node3 gets the cluster description and the targets too (no secrets): a minion that
    sees the pillar but is not in trash:nodes, whose events only membership filters out.
    """
    path = tmp_path_factory.mktemp("pillar-override")
    top = yaml.safe_load((ROOT / "pillar/top.sls").read_text())
    for targets in top.values():
        for items in targets.values():
            items.append("test_notify")
    top["base"]["node3"] = ["trash.cluster", "test_notify"]
    (path / "top.sls").write_text(yaml.safe_dump(top))
    (path / "test_notify.sls").write_text(yaml.safe_dump(notify_pillar))
    return path


@pytest.fixture(scope="session")
def secrets():
    """Every secret of the example pillar (pillar/trash/secrets.sls), by pillar key."""
    out = {}

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}:{key}" if path else key)
        else:
            out[path] = str(node)

    walk(yaml.safe_load((ROOT / "pillar/trash/secrets.sls").read_text()), "")
    assert "trash:cluster:authkey" in out and "trash:drbd:shared_secret" in out
    return out


@pytest.fixture(scope="session")
def secret_values(secrets):
    return list(secrets.values())


# --- the daemons ----------------------------------------------------------------


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    # slow_stop=False: SIGKILL at teardown; a graceful stop costs ~4 s a daemon and checks nothing
    return {"root_dir": tmp_path_factory.mktemp("salt"), "slow_stop": False}


@pytest.fixture(scope="session")
def master_config(pillar_override_dir):
    """The repository's etc/salt/master, rebased from /srv/trash onto this checkout."""
    config = yaml.safe_load((ROOT / "etc/salt/master").read_text())
    config = replace_prefix(config, "/srv/trash", str(ROOT))
    config["pillar_roots"]["base"].insert(0, str(pillar_override_dir))
    return config


@contextlib.contextmanager
def running(factories):
    """Start the daemons side by side and stop them side by side (~5 s and ~2 s each)."""
    with concurrent.futures.ThreadPoolExecutor(len(factories)) as pool:
        started = [pool.submit(f.start) for f in factories]
    try:
        for future in started:
            future.result()
        yield
    finally:
        with concurrent.futures.ThreadPoolExecutor(len(factories)) as pool:
            list(pool.map(lambda f: f.terminate(), factories))


@pytest.fixture(scope="session")
def master(salt_factories, master_config):
    # auto_accept: the minions' keys are new in every run; accepting each with salt-key
    # would cost a subprocess and a retry per minion
    factory = salt_factories.salt_master_daemon("trash-master", defaults=master_config,
                                                overrides={"auto_accept": True})
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def trash_roots(tmp_path_factory):
    """The per-minion directory that stands for / (minion option trash_root); empty."""
    return {node: tmp_path_factory.mktemp(f"{node}-root") for node in NODES}


@pytest.fixture(scope="session")
def _minion_daemons(master, trash_roots):
    factories = {node: master.salt_minion_daemon(node, overrides={"trash_root": str(root)})
                 for node, root in trash_roots.items()}
    # node3 is not in trash:nodes: its events must be ignored
    factories["node3"] = master.salt_minion_daemon("node3")
    with running(list(factories.values())):
        yield factories


@pytest.fixture(scope="session")
def minions(_minion_daemons):
    """The cluster nodes' minions, by id."""
    return {node: _minion_daemons[node] for node in NODES}


@pytest.fixture(scope="session")
def outsider(_minion_daemons):
    """A minion that is not a cluster member."""
    return _minion_daemons["node3"]


@pytest.fixture(scope="session")
def salt_run(master):
    """``salt_run(minions, fun, *args, **kwargs)``: run on all of them at once, in-process."""
    import salt.client

    client = salt.client.get_local_client(mopts=master.config.copy())

    def run(targets, fun, *args, timeout=120, **kwargs):
        targets = [targets] if isinstance(targets, str) else list(targets)
        ret = client.cmd(targets, fun, list(args), tgt_type="list", timeout=timeout,
                         kwarg=kwargs)
        missing = set(targets) - set(ret)
        assert not missing, f"no reply from {sorted(missing)} to {fun}: {ret}"
        return ret

    yield run
    client.destroy()


@pytest.fixture(scope="session")
def synced(minions, salt_run):
    """The return of saltutil.sync_all on both nodes (modules arrive from the master)."""
    return salt_run(NODES, "saltutil.sync_all")


@pytest.fixture(scope="session")
def poll():
    """``poll(condition, timeout, what=...)``: wait_for for the test modules."""
    return wait_for
