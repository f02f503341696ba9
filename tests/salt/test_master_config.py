"""etc/salt/master as deployed (checkout at /srv/trash): every path it names exists here."""

import pathlib

import yaml
from saltconf import DEPLOYED, paths

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_path_is_in_the_checkout():
    config = yaml.safe_load((ROOT / "etc/salt/master").read_text())
    found = list(paths(config))
    assert found and all(p.startswith(DEPLOYED + "/") for p in found), found
    for path in found:
        assert (ROOT / path[len(DEPLOYED) + 1:]).exists(), path


def test_trash_events_go_to_the_notify_reactor():
    config = yaml.safe_load((ROOT / "etc/salt/master").read_text())
    assert {"trash/*": [f"{DEPLOYED}/reactor/notify.sls"]} in config["reactor"]
    assert f"{DEPLOYED}/_runners" in config["runner_dirs"]


def test_the_fileserver_hands_out_the_custom_modules_through_symlinks():
    for kind in ("_modules", "_states", "_beacons", "_utils"):
        link = ROOT / "salt" / kind
        assert link.is_symlink() and link.resolve() == ROOT / kind, kind
