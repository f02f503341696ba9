"""trash_disks.disks and the trash.guest_disks state with LVM scripted from real captures
(tests/data/lvm): the exact lvcreate command, sparse images under trash_root, test mode
changing nothing, refusals changing nothing, and LVM's own failure passed on."""

import json
import os
import pathlib
from unittest import mock

import pytest

from modload import load

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/lvm"
M = 1 << 20


class Tools:
    """cmd.run_all answering as LVM does on node1 holding the ``shared`` captures, with the
    LVs named in ``active`` active here (the one thing no capture of this machine holds);
    an lvcreate adds its LV, active, or fails as on a VG whose lockspace is stopped."""

    def __init__(self, vgs="shared", lvs="shared", active=("vg_node1/stinky",), fail=False):
        self.vgs = (DATA / f"vgs-{vgs}.json").read_text()
        self.lvs = json.loads((DATA / f"lvs-{lvs}.json").read_text())
        for row in self.lvs["report"][0]["lv"]:
            if f"{row['vg_name']}/{row['lv_name']}" in active:
                row["lv_attr"] = row["lv_attr"][:4] + "a" + row["lv_attr"][5:]
        self.fail = fail
        self.calls = []

    def __call__(self, cmd, python_shell=False, ignore_retcode=True, output_loglevel=None,
                 env=None):
        assert python_shell is False and isinstance(cmd, list)
        self.calls.append(cmd)
        if cmd[0] == "vgs":
            return {"retcode": 0, "stdout": self.vgs, "stderr": ""}
        if cmd[0] == "lvs":
            return {"retcode": 0, "stdout": json.dumps(self.lvs), "stderr": ""}
        if cmd[0] == "lvcreate":
            if self.fail:
                status, stderr = (DATA / "lvcreate-stopped.txt").read_text().split("\n", 1)
                return {"retcode": int(status.split()[-1]), "stdout": "", "stderr": stderr}
            self.lvs["report"][0]["lv"].append(
                {"lv_name": cmd[cmd.index("--name") + 1], "vg_name": cmd[-1],
                 "lv_size": cmd[cmd.index("--size") + 1].rstrip("b"), "lv_attr": "-wi-a-----"})
            return {"retcode": 0, "stdout": "", "stderr": ""}
        raise AssertionError(f"unexpected command {cmd}")

    def lvcreates(self):
        return [c for c in self.calls if c[0] == "lvcreate"]


@pytest.fixture
def disks_mod(trash_mod, example_pillar, tmp_path):
    """make(tools, **guests) -> trash_disks over the example pillar with the captures'
    sizes (plus ``newbox``, a new cluster guest of node1, 10M), root tmp_path/root."""
    guests = example_pillar["trash"]["guests"]
    sizes = {"stinky": "8M", "fileserver": "4M", "shell2": "8M", "ns1": "16M", "knox": "16M"}
    for name, size in sizes.items():
        guests[name]["disk_size"] = size
    guests["newbox"] = {"home": "node1", "disk_size": "10M"}

    def make(tools, root=None, **changes):
        for name, spec in changes.items():
            guests[name] = {**guests[name], **spec}
        mod = load("_modules/trash_disks.py", "trash_disks_unit",
                   salt={"trash.config": trash_mod.config, "cmd.run_all": tools},
                   opts={"id": "node1", "trash_root": root or str(tmp_path / "root")})
        mod.tools = tools
        return mod

    with mock.patch("shutil.which", return_value="/sbin/lvs"):
        yield make


def image(tmp_path):
    return tmp_path / "root/local/guests/ns1.img"


CHANGES = {"newbox": {"old": None, "new": "/dev/vg_node1/newbox 12M (logical volume)"},
           "ns1": {"old": None, "new": "/local/guests/ns1.img 16M (sparse raw image)"}}


def test_test_mode_shows_the_plan_and_changes_nothing(disks_mod, tmp_path):
    mod = disks_mod(Tools())
    result = mod.disks(test=True)
    assert result["result"] is None and result["changes"] == CHANGES
    assert result["comment"].splitlines()[0] == (
        "would create /dev/vg_node1/newbox 12M (logical volume), /local/guests/ns1.img 16M "
        "(sparse raw image)")
    assert mod.tools.lvcreates() == [] and not image(tmp_path).exists()


def test_creates_the_lv_active_here_and_a_sparse_image_then_converges(disks_mod, tmp_path):
    mod = disks_mod(Tools())
    result = mod.disks()
    assert result["result"] is True and result["changes"] == CHANGES
    assert mod.tools.lvcreates() == [[
        "lvcreate", "--activate", "ey", "--wipesignatures", "y", "--zero", "y", "--yes",
        "--name", "newbox", "--size", str(12 * M) + "b", "vg_node1"]]
    st = os.stat(image(tmp_path))
    assert st.st_size == 16 * M and st.st_blocks == 0 and st.st_mode & 0o777 == 0o600
    again = mod.disks()
    assert again["result"] is True and again["changes"] == {}
    assert again["comment"].splitlines()[0] == (
        "guest disks present: fileserver (4M), newbox (12M), stinky (8M), ns1 (16M)")
    assert len(mod.tools.lvcreates()) == 1


def test_elsewhere_the_vg_is_left_to_its_node(disks_mod, tmp_path):
    mod = disks_mod(Tools(active=()))
    result = mod.disks()
    assert result["result"] is True and list(result["changes"]) == ["ns1"]
    assert ("vg_node1 is not active on this node; its LVs are created where it is active "
            "(fileserver, newbox, stinky)") in result["comment"].splitlines()
    assert mod.tools.lvcreates() == []


def test_a_refusal_creates_nothing_at_all(disks_mod, tmp_path):
    image(tmp_path).mkdir(parents=True)  # a directory where ns1's image belongs
    mod = disks_mod(Tools())
    for test in (True, False):
        result = mod.disks(test=test)
        assert result["result"] is False and result["changes"] == {}
        assert result["comment"].splitlines()[:2] == [
            "refusing to create guest disks, nothing was changed:",
            "ns1: /local/guests/ns1.img is a directory, not an image file; it is left alone "
            "(move it away yourself)"]
    assert mod.tools.lvcreates() == []


def test_a_smaller_disk_fails_the_state_but_the_missing_ones_are_created(disks_mod, tmp_path):
    image(tmp_path).parent.mkdir(parents=True)
    image(tmp_path).write_bytes(b"guest data")
    mod = disks_mod(Tools(), fileserver={"disk_size": "40M"})
    preview = mod.disks(test=True)
    assert preview["result"] is False and list(preview["changes"]) == ["newbox"]
    result = mod.disks()
    assert result["result"] is False and list(result["changes"]) == ["newbox"]
    text = result["comment"]
    assert "lvextend --size 40M vg_node1/fileserver" in text
    assert "truncate --size '>16M' /local/guests/ns1.img" in text
    assert image(tmp_path).read_bytes() == b"guest data"  # never touched


def test_lvm_refusing_the_lv_is_reported(disks_mod, tmp_path):
    mod = disks_mod(Tools(fail=True))
    result = mod.disks()
    assert result["result"] is False and result["changes"] == {}
    assert result["comment"] == ("lvcreate of /dev/vg_node1/newbox failed: WARNING: Activation "
                                 "disabled. No device-mapper interaction will be attempted.\n"
                                 "  Cannot access VG vg_node1 due to failed lock.")
    # the LVs come first: the image waits for the next run
    assert not image(tmp_path).exists()


def test_on_a_live_node_images_wait_for_local(disks_mod):
    mod = disks_mod(Tools(active=()), root="/")
    with mock.patch("os.path.ismount", return_value=False):
        result = mod.disks()
    assert result["result"] is True and result["changes"] == {}
    assert "/local/guests/ns1.img waits for /local to be mounted" in result["comment"]


def test_lvs_failing_is_an_error(disks_mod):
    tools = Tools()
    mod = disks_mod(tools)
    mod.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 5, "stdout": "",
                                                     "stderr": "  Cannot process volume group\n"}
    with pytest.raises(Exception, match="trash_disks: vgs failed: Cannot process volume group"):
        mod.disks()


@pytest.mark.parametrize("test", [True, False])
def test_the_state_translates_both_modes(disks_mod, tmp_path, test):
    mod = disks_mod(Tools())
    state = load("_states/trash.py", "trash_state_for_disks")
    state.__salt__ = {"trash_disks.disks": mod.disks}
    state.__opts__ = {"test": test}
    ret = state.guest_disks("trash-guest-disks-created")
    assert ret["name"] == "trash-guest-disks-created"
    assert ret["result"] is (None if test else True) and ret["changes"] == CHANGES
    assert image(tmp_path).exists() is (not test)


def test_the_state_fails_cleanly_on_a_module_error(disks_mod):
    from salt.exceptions import CommandExecutionError

    def boom(test):
        raise CommandExecutionError("trash_disks: lvs failed: no")

    state = load("_states/trash.py", "trash_state_for_disks_error")
    state.__salt__ = {"trash_disks.disks": boom}
    state.__opts__ = {"test": False}
    assert state.guest_disks("x") == {"name": "x", "changes": {}, "result": False,
                                      "comment": "trash_disks: lvs failed: no"}
