"""trash.units_at_boot against the real systemctl, on the unit files of a tree of its own
(systemctl --root): what is enabled and disabled, that nothing changes twice or in test
mode, and what it refuses."""

import os
import subprocess

import pytest

UNIT = "[Unit]\nDescription={0}\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"


def run_all(cmd, env=None, **kwargs):
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return {"retcode": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


@pytest.fixture
def root(tmp_path, trash_mod):
    trash_mod.__salt__["cmd.run_all"] = run_all
    units = tmp_path / "lib/systemd/system"
    units.mkdir(parents=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    for name in ("corosync", "pacemaker", "lvmlockd"):
        (units / f"{name}.service").write_text(UNIT.format(name))
    # corosync has an init script too, as Debian's has
    (tmp_path / "etc/init.d").mkdir()
    (tmp_path / "etc/init.d/corosync").write_text("#!/bin/sh\n")
    subprocess.run(["systemctl", f"--root={tmp_path}", "enable", "lvmlockd"],
                   check=True, capture_output=True, env={**os.environ, "SYSTEMCTL_SKIP_SYSV": "1"})
    return tmp_path


def state(root, unit):
    return run_all(["systemctl", f"--root={root}", "is-enabled", unit])["stdout"].strip()


def wants(root):
    return sorted(p.name for p in (root / "etc/systemd/system/multi-user.target.wants").iterdir())


def test_enables_and_disables_once_and_leaves_init_scripts_alone(trash_mod, root):
    ret = trash_mod.units_at_boot(enable=["corosync", "pacemaker"], disable=["lvmlockd", "drbd"],
                                  root=str(root))
    assert ret["result"] is True, ret
    assert ret["changes"] == {"corosync": {"old": "disabled", "new": "enabled"},
                              "pacemaker": {"old": "disabled", "new": "enabled"},
                              "lvmlockd": {"old": "enabled", "new": "disabled"}}
    assert [state(root, u) for u in ("corosync", "pacemaker", "lvmlockd")] == \
        ["enabled", "enabled", "disabled"]
    assert wants(root) == ["corosync.service", "pacemaker.service"]
    # no update-rc.d: the init script's links are not touched
    assert not list(root.glob("etc/rc?.d"))
    again = trash_mod.units_at_boot(enable=["corosync", "pacemaker"],
                                    disable=["lvmlockd", "drbd"], root=str(root))
    assert again["result"] is True and again["changes"] == {}, again
    assert "already at boot" in again["comment"]


def test_test_mode_shows_the_plan_and_changes_nothing(trash_mod, root):
    ret = trash_mod.units_at_boot(enable=["pacemaker"], disable=["lvmlockd"], test=True,
                                  root=str(root))
    assert ret["result"] is None
    assert ret["comment"] == "would enable pacemaker; disable lvmlockd at boot"
    assert list(ret["changes"]) == ["pacemaker", "lvmlockd"]
    assert state(root, "pacemaker") == "disabled" and state(root, "lvmlockd") == "enabled"


def test_a_masked_or_missing_unit_is_not_enabled(trash_mod, root):
    subprocess.run(["systemctl", f"--root={root}", "mask", "pacemaker"], check=True,
                   capture_output=True)
    ret = trash_mod.units_at_boot(enable=["corosync", "pacemaker", "nosuch"], root=str(root))
    assert ret["result"] is False and ret["changes"] == {}, ret
    assert ret["comment"].splitlines() == [
        "pacemaker is masked: not enabled (systemctl unmask pacemaker, if it should run)",
        "nosuch: no unit file, not enabled"]
    assert state(root, "corosync") == "disabled"


def test_a_dry_run_plans_a_unit_an_earlier_state_writes(trash_mod, root):
    ret = trash_mod.units_at_boot(enable=["trash-serial-link"], test=True, root=str(root))
    assert ret["result"] is None, ret
    assert ret["changes"] == {"trash-serial-link": {"old": "not-found", "new": "enabled"}}
