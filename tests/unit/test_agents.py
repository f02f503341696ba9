"""ocf:trash:VirtualDomain (trashlib.agents): Debian's VirtualDomain with a systemd_drop_in
that leaves a dependency systemd has loaded alone. Run against the host's real
resource-agents (bin/setup installs them) in an OCF root of this formula's files; systemctl
is a recorder, as this machine has no systemd: the lab tier shows the real manager."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "_utils"))

from trashlib import agents  # noqa: E402

DEBIAN_OCF = pathlib.Path("/usr/lib/ocf")


@pytest.fixture
def ocf_root(tmp_path):
    """An OCF root with the formula's files and the host's heartbeat agents and functions."""
    root = tmp_path / "ocf"
    for path, (text, mode) in agents.files().items():
        if not path.startswith("/usr/lib/ocf/"):
            continue
        dest = root / path[len("/usr/lib/ocf/"):]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        dest.chmod(int(mode, 8))
    for sub in ("resource.d/heartbeat", "lib/heartbeat"):
        (root / sub).symlink_to(DEBIAN_OCF / sub)
    return root


@pytest.fixture
def systemctl(tmp_path):
    """A systemctl that answers `show` with $LOADED and logs every call."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bindir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                      '[ "$1" = show ] && echo "$LOADED"\nexit 0\n')
    script.chmod(0o755)
    return bindir, log


def drop_in(ocf_root, systemctl, loaded, *args):
    """systemd_drop_in ``args`` in a private /run (the function writes into
    /run/systemd/system), systemd having ``loaded`` as the property's value; returns the
    systemctl calls and the drop-ins written."""
    bindir, log = systemctl
    script = (f'mount -t tmpfs none /run && . "$OCF_ROOT/lib/{agents.PROVIDER}/ocf-shellfuncs" '
              '&& systemd_drop_in "$@" && cat /run/systemd/system/'
              'resource-agents-deps.target.d/*.conf 2>/dev/null; true')
    env = dict(os.environ, OCF_ROOT=str(ocf_root), LOADED=loaded,
               PATH=f"{bindir}:{os.environ['PATH']}")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return calls, r.stdout


def test_a_dependency_systemd_has_loaded_is_neither_written_nor_reloaded(ocf_root, systemctl):
    calls, written = drop_in(ocf_root, systemctl, "libvirtd.service blk-availability.service",
                             "99-VirtualDomain-libvirt", "After", "libvirtd.service")
    assert calls == ["show resource-agents-deps.target --property=After --value"]
    assert written == ""


def test_a_missing_dependency_is_written_and_systemd_reloaded(ocf_root, systemctl):
    # a unit whose name only contains the wanted one is not it
    calls, written = drop_in(ocf_root, systemctl, "libvirtd.service.bak",
                             "99-VirtualDomain-libvirt", "After", "libvirtd.service")
    assert calls == ["show resource-agents-deps.target --property=After --value",
                     "daemon-reload"]
    assert written == "[Unit]\nAfter=libvirtd.service\n"


def test_the_agent_is_debians_virtualdomain(ocf_root):
    """meta-data and validate-all come from the heartbeat agent through the wrapper."""
    agent = ocf_root / "resource.d" / agents.PROVIDER / "VirtualDomain"
    env = dict(os.environ, OCF_ROOT=str(ocf_root))
    meta = subprocess.run([str(agent), "meta-data"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert meta.returncode == 0, meta.stderr
    assert '<resource-agent name="VirtualDomain"' in meta.stdout
    assert '<parameter name="force_stop"' in meta.stdout
    # no config parameter: the heartbeat agent's own validation refuses
    bad = subprocess.run([str(agent), "validate-all"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 6, (bad.returncode, bad.stderr)  # OCF_ERR_CONFIGURED


def test_the_cib_runs_guests_with_the_formulas_agent(cfg):
    import xml.etree.ElementTree as ET
    from trashlib import cib
    guests = [p for p in ET.fromstring(cib.render(cfg)).iter("primitive")
              if p.get("type") == "VirtualDomain"]
    assert guests and {(p.get("class"), p.get("provider")) for p in guests} == {("ocf", "trash")}
