"""The highstate on both nodes through the master: dry run, apply, idempotence, no secret.

Each minion's trash_root is a scratch directory, so every planned file (the guests'
XML under /shared and /local included: the mount check only applies when trash_root
is /) is written there and nowhere else.
"""

import json
import time
import types

import pytest

NODES = ("node1", "node2")


def files_under(root):
    """{"/etc/...": path} of every file under ``root``."""
    return {"/" + str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def run(synced, salt_run, trash_roots, tmp_path_factory):
    """Dry run, apply and apply again on both nodes at once; what each left behind."""
    assert all(not any(root.iterdir()) for root in trash_roots.values())
    out = types.SimpleNamespace(start=time.time())
    out.plan = salt_run(NODES, "trash.plan")
    out.dry = salt_run(NODES, "state.apply", test=True)
    out.after_dry = {n: sorted(trash_roots[n].rglob("*")) for n in NODES}
    out.first = salt_run(NODES, "state.apply")
    out.after_first = {n: files_under(trash_roots[n]) for n in NODES}
    out.second = salt_run(NODES, "state.apply")
    out.rendered = {}
    for node in NODES:
        outdir = tmp_path_factory.mktemp(f"{node}-render")
        salt_run(node, "trash.render", str(outdir))
        out.rendered[node] = {path: f.read_bytes() for path, f in files_under(outdir).items()}
    out.end = time.time()
    return out


def states(ret):
    """The state results of one minion's state.apply return (a render error fails here)."""
    assert isinstance(ret, dict) and ret, f"state.apply did not run: {ret}"
    return list(ret.values())


def file_changes(ret):
    """The paths that the trash.files_managed states changed (or would change)."""
    return set().union(*(r["changes"] for key, r in ret.items()
                         if key.startswith("trash_|-") and key.endswith("_|-files_managed")))


@pytest.mark.parametrize("node", NODES)
def test_dry_run_predicts_every_file_and_writes_nothing(run, node):
    results = states(run.dry[node])
    # test mode: None where something would change, True where nothing would
    assert all(r["result"] is (None if r["changes"] else True) for r in results), results
    assert file_changes(run.dry[node]) == {f["path"] for f in run.plan[node]}
    assert run.after_dry[node] == []  # not a file, not even a directory


@pytest.mark.parametrize("node", NODES)
def test_apply_writes_exactly_the_planned_files(run, node):
    results = states(run.first[node])
    assert all(r["result"] is True for r in results), results
    planned = {f["path"]: f["mode"] for f in run.plan[node]}
    assert file_changes(run.first[node]) == set(planned)
    written = run.after_first[node]
    assert set(written) == set(planned)
    for path, file in written.items():
        st = file.stat()
        assert (oct(st.st_mode & 0o7777)[2:].zfill(4), st.st_uid, st.st_gid) == \
            (planned[path], 0, 0), path
        assert file.read_bytes() == run.rendered[node][path], path
    # the guests are there too: trash_root is not /, so no mount is waited for
    assert any(p.startswith("/shared/guests/") for p in written)


@pytest.mark.parametrize("node", NODES)
def test_second_apply_changes_nothing(run, node):
    results = states(run.second[node])
    assert all(r["result"] is True and r["changes"] == {} for r in results), results


def test_no_secret_in_any_state_output_or_event(run, secret_values, event_listener, master,
                                                minions):
    text = json.dumps([run.dry, run.first, run.second], default=str)
    for secret in secret_values:
        assert secret not in text
    # the diffs of the secret files say so instead of showing them
    changes = {p: c for r in states(run.dry["node1"]) for p, c in r["changes"].items()}
    assert changes["/etc/corosync/authkey"]["diff"] == "new secret file"
    # nor did any of it cross an event bus (the job returns travel as events)
    daemons = [master.id, *minions]
    events = [e for e in event_listener.get_events([(d, "*") for d in daemons],
                                                    after_time=run.start)
              if e.stamp.timestamp() <= run.end]
    assert any(e.tag.startswith("salt/job/") and e.tag.endswith("/ret/node1") for e in events)
    bus = json.dumps([e.full_data for e in events], default=str)
    for secret in secret_values:
        assert secret not in bus
