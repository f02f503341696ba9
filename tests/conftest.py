"""Shared fixtures: paths, the defaults, the example pillar and its model."""

import copy
import os
import pathlib
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_utils"))
sys.path.insert(0, str(ROOT / "tests"))

from trashlib import model  # noqa: E402


def pytest_configure(config):
    # salt's temporary log handler otherwise prints tracebacks at interpreter exit
    import salt._logging.impl

    salt._logging.impl.shutdown_temp_handler()


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = pathlib.Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if tier in ("unit", "offline", "salt", "lab"):
            item.add_marker(getattr(pytest.mark, tier))


def pytest_sessionfinish(session, exitstatus):
    # CI installs everything and runs every tier: a skip there hides a missing piece
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; a skip in CI is a failure",
                            red=True)
        session.exitstatus = 1


def load_sls_yaml(path):
    return yaml.safe_load(pathlib.Path(path).read_text())


@pytest.fixture(scope="session")
def defaults():
    return load_sls_yaml(ROOT / "salt/trash/defaults.yaml")


@pytest.fixture(scope="session")
def _example_pillar():
    merged = {}
    for name in ("cluster", "secrets"):
        merged = model.merge(merged, load_sls_yaml(ROOT / f"pillar/trash/{name}.sls"))
    return merged


@pytest.fixture
def example_pillar(_example_pillar):
    """A fresh copy of the example pillar ({'trash': ...}) for a test to change."""
    return copy.deepcopy(_example_pillar)


@pytest.fixture
def cfg(example_pillar, defaults):
    return model.load(example_pillar, defaults)
