"""Load Salt module files outside Salt's loader, with the dunders a test gives them."""

import importlib.util
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(path, name, **dunders):
    """Import ``path`` (relative to the repository) as ``name``; set ``__salt__`` etc."""
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, value in dunders.items():
        setattr(module, f"__{key}__", value)
    return module


def run_all(cmd, python_shell=False, ignore_retcode=True, output_loglevel=None, env=None,
            timeout=None):
    """``cmd.run_all`` for real: the command runs, its answer is returned as Salt does."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env=dict(os.environ, **(env or {})), timeout=timeout)
    return {"retcode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def file_cache(cachedir):
    """A minion cache directory holding the formula's defaults as a job leaves them
    (what the beacons read: trash.config(cached=True)); returns it as a string."""
    path = pathlib.Path(cachedir) / "files/base/trash/defaults.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((ROOT / "salt/trash/defaults.yaml").read_text())
    return str(cachedir)


def trash_module(pillar, name="trash_under_test", **opts):
    """The trash execution module over ``pillar`` with real commands."""
    defaults = (ROOT / "salt/trash/defaults.yaml").read_text()
    return load("_modules/trash.py", name,
                salt={"cp.get_file_str": lambda url: defaults, "cmd.run_all": run_all},
                opts={"id": "node1", **opts}, pillar=pillar, context={})
