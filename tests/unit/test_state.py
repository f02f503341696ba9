"""The trash state only translates the module's answer, in test and in real mode."""

import pytest
from salt.exceptions import CommandExecutionError

from modload import load


@pytest.fixture
def state(trash_mod):
    mod = load("_states/trash.py", "trash_state_under_test")
    mod.__salt__ = {"trash.manage_files": trash_mod.manage_files}
    mod.__opts__ = {"test": False}
    return mod


@pytest.mark.parametrize("test", [True, False])
def test_files_managed_both_modes(state, test, tmp_path):
    state.__opts__["test"] = test
    ret = state.files_managed("trash-drbd-files-managed", "drbd")
    assert ret["name"] == "trash-drbd-files-managed"
    assert ret["result"] is (None if test else True)
    assert "/etc/drbd.d/mirror0.res" in ret["changes"]
    assert (tmp_path / "root/etc/drbd.d/mirror0.res").exists() is (not test)


def test_files_managed_second_run_is_quiet(state):
    state.files_managed("x", "guests")
    ret = state.files_managed("x", "guests")
    assert ret["result"] is True and ret["changes"] == {}


def test_files_managed_invalid_pillar_fails_cleanly(state, example_pillar, tmp_path):
    example_pillar["trash"]["cluster"]["priority_node"] = "node5"
    ret = state.files_managed("x", "cluster")
    assert ret["result"] is False and ret["changes"] == {}
    assert "trash:cluster:priority_node" in ret["comment"]
    assert not (tmp_path / "root").exists()


def test_files_managed_module_error(state):
    def boom(concern, test):
        raise CommandExecutionError("corosync check failed")

    state.__salt__["trash.manage_files"] = boom
    ret = state.files_managed("x", "cluster")
    assert ret == {"name": "x", "changes": {}, "result": False, "comment": "corosync check failed"}


def test_pillar_valid(state, trash_mod, example_pillar):
    state.__salt__["trash.validate"] = trash_mod.validate
    assert state.pillar_valid("v")["result"] is True
    example_pillar["trash"]["network"]["vlans"][5000] = {"bridge": "vbr5000"}
    ret = state.pillar_valid("v")
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith("invalid trash pillar, 1 problem(s)")
    assert "trash:network:vlans:5000: VLAN id 5000 is outside 1-4094" in ret["comment"]


def test_pillar_valid_reports_render_time_problems(state):
    ret = state.pillar_valid("v", problems=["trash:nodes: must name the cluster nodes"])
    assert ret["result"] is False and "trash:nodes: must name" in ret["comment"]


@pytest.mark.parametrize("state_fn, function", [
    ("pacemaker_configured", "trash.cib_apply"),
    ("drbd_metadata", "trash_drbd.metadata"),
    ("drbd_initial_sync", "trash_drbd.initial_sync"),
])
@pytest.mark.parametrize("test", [True, False])
def test_live_states_pass_test_mode_and_translate(state, state_fn, function, test):
    calls = []

    def answer(test, **_options):
        calls.append(test)
        return {"result": None if test else True, "changes": {"x": {"old": 1, "new": 2}},
                "comment": "planned" if test else "done"}

    state.__salt__[function] = answer
    state.__opts__["test"] = test
    ret = getattr(state, state_fn)("n")
    assert calls == [test]
    assert ret == {"name": "n", "result": None if test else True,
                   "changes": {"x": {"old": 1, "new": 2}}, "comment": "planned" if test else "done"}
