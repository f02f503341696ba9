"""The lab tier: two QEMU machines (lab/trashlab). The session brings the lab up, unless it
is up already (then it is left up); TRASHLAB_KEEP=1 leaves a lab this session started up."""

import os
import pathlib
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))

from tlab import lab as tlab  # noqa: E402


def _why_not():
    if os.geteuid() != 0:
        return "the lab needs root"
    if not pathlib.Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    if not shutil.which("ip"):
        return "no iproute2"
    return None


@pytest.fixture(scope="session")
def lab():
    why = _why_not()
    if why:
        pytest.skip(why)
    started = False
    if not tlab.is_up():
        tlab.up()
        started = True
    yield tlab
    if started and not os.environ.get("TRASHLAB_KEEP"):
        tlab.down()


def pytest_collection_modifyitems(config, items):
    # the lab after every other tier (its machines would take CPU from them), and the
    # converged lab last: test_lab.py configures the interfaces by hand, which networkd
    # and the firewall of a converged lab would fight; the storage states' refusals need
    # no cluster and run fastest on idle nodes; the drills need the converged lab
    # (stable sort: each file keeps its own order)
    rank = {"test_lab.py": 1, "test_storage_refusals.py": 2, "test_converge.py": 3,
            "test_host.py": 4, "test_drills.py": 5}
    items.sort(key=lambda item: rank.get(item.fspath.basename, 0))
    # the whole drill chain takes longer than CI may on a 2-core TCG host (test_drills.py)
    later = [item for item in items if item.get_closest_marker("full_chain")]
    if later and os.environ.get("TRASHLAB_CHAIN") != "full":
        config.hook.pytest_deselected(items=later)
        items[:] = [item for item in items if item not in later]
