"""Load the execution module and the state module with a mocked loader."""

from unittest import mock

import pytest
from modload import ROOT, file_cache, load


@pytest.fixture
def run_all():
    """cmd.run_all as the tools answer when they accept a file."""
    return mock.Mock(return_value={"retcode": 0, "stdout": "", "stderr": ""})


@pytest.fixture
def trash_mod(example_pillar, tmp_path, run_all):
    mod = load("_modules/trash.py", "trash_module_under_test")
    defaults_text = (ROOT / "salt/trash/defaults.yaml").read_text()
    mod.__salt__ = {"cp.get_file_str": lambda url: defaults_text, "cmd.run_all": run_all}
    mod.__opts__ = {"id": "node1", "trash_root": str(tmp_path / "root"), "test": False,
                    "cachedir": file_cache(tmp_path / "cache")}
    mod.__pillar__ = example_pillar
    mod.__context__ = {}
    # the tools are "installed" for the mocked checks
    with mock.patch.object(mod.shutil, "which", return_value="/usr/bin/tool"):
        yield mod
