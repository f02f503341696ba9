"""DRBD metadata on real block devices (loop devices): created only where nothing is."""

import hashlib
import os
import pathlib
import shutil
import subprocess
import uuid

import pytest

from modload import load, run_all, trash_module


def digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def has_md(device, fmt="v08"):
    return run_all(["drbdmeta", "0", fmt, device, "internal", "dump-md"])["retcode"] == 0


@pytest.fixture
def disk(tmp_path):
    """/dev/trashtest-*/sda6..8 on loop devices: 6 empty, 7 ext4 with data, 8 with metadata."""
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    devdir = pathlib.Path(f"/dev/trashtest-{uuid.uuid4().hex[:8]}")
    devdir.mkdir()
    loops = []
    try:
        for number in (6, 7, 8):
            image = tmp_path / f"part{number}.img"
            with open(image, "wb") as handle:
                handle.truncate(64 << 20)
            loop = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                                  capture_output=True, text=True).stdout.strip()
            loops.append(loop)
            os.symlink(loop, devdir / f"sda{number}")
        subprocess.run(["mkfs.ext4", "-q", "-F", str(devdir / "sda7")], check=True)
        subprocess.run(["debugfs", "-w", "-R", "mkdir customer-data", str(devdir / "sda7")],
                       check=True, capture_output=True)
        subprocess.run(["drbdmeta", "--force", "2", "v08", str(devdir / "sda8"), "internal",
                        "create-md"], check=True, capture_output=True)
        yield devdir
    finally:
        for loop in loops:
            subprocess.run(["losetup", "--detach", loop], check=False)
        shutil.rmtree(devdir, ignore_errors=True)


@pytest.fixture
def drbd_mod(disk, example_pillar, tmp_path):
    example_pillar["trash"]["nodes"]["node1"]["disk"] = str(disk / "sda")
    trash = trash_module(example_pillar, "trash_for_drbd_test")
    storage = load("_modules/trash_storage.py", "trash_storage_for_drbd_test",
                   opts={"id": "node1"}, salt={"cmd.run_all": run_all})
    return load("_modules/trash_drbd.py", "trash_drbd_under_test", opts={"id": "node1"},
                salt={"trash.config": trash.config, "cmd.run_all": run_all,
                      "trash_storage.signature": storage.signature})


def test_refuses_a_device_with_data_and_changes_nothing(drbd_mod, disk):
    before = {n: digest(disk / f"sda{n}") for n in (6, 7, 8)}
    result = drbd_mod.metadata()
    assert result["result"] is False and result["changes"] == {}
    assert "mirror1:" in result["comment"] and "TYPE=ext4" in result["comment"]
    assert f"wipefs --all {disk}/sda7" in result["comment"]
    # all or nothing: the empty device did not get metadata either
    assert {n: digest(disk / f"sda{n}") for n in (6, 7, 8)} == before
    assert not has_md(str(disk / "sda6"))


def test_creates_only_where_nothing_is_then_converges(drbd_mod, disk):
    subprocess.run(["wipefs", "--all", "--quiet", str(disk / "sda7")], check=True)
    keep = digest(disk / "sda8")
    preview = drbd_mod.metadata(test=True)
    assert preview["result"] is None and sorted(preview["changes"]) == ["mirror0", "mirror1"]
    assert not has_md(str(disk / "sda6"))  # test mode touched nothing
    applied = drbd_mod.metadata()
    assert applied["result"] is True and sorted(applied["changes"]) == ["mirror0", "mirror1"]
    assert has_md(str(disk / "sda6")) and has_md(str(disk / "sda7"))
    assert digest(disk / "sda8") == keep  # existing metadata untouched
    again = drbd_mod.metadata()
    assert again["result"] is True and again["changes"] == {}


def test_metadata_of_another_version_is_refused(drbd_mod, disk, example_pillar):
    subprocess.run(["wipefs", "--all", "--quiet", str(disk / "sda7")], check=True)
    example_pillar["trash"]["drbd"]["version"] = "9"
    result = drbd_mod.metadata()
    # sda8 holds v08 metadata, which a DRBD 9 node must not silently replace
    assert result["result"] is False and "mirror2:" in result["comment"]
    assert "TYPE=drbd" in result["comment"]
