"""trash.status against a real two-node corosync and Pacemaker's view of a CIB file."""

import copy
import os
import pathlib
import xml.etree.ElementTree as ET

import crmsim
import pytest

from corosync_pair import running_pair, wait
from modload import run_all, trash_module
from trashlib import cib, model

PCMK_DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "pcmk"

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
# node1's mirrors as the lab's node1 had them under Pacemaker (a real capture)
PROC_DRBD = DATA / "drbd/proc-node1-running.txt"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture
def node1(tmp_path, example_pillar, defaults):
    """(pair, trash module of node1 inside node1's namespace)."""
    cfg = model.load(copy.deepcopy(example_pillar), defaults)
    cluster = crmsim.Cluster(cib.with_status(ET.tostring(cib.build(cfg), encoding="unicode"),
                                             ["node1", "node2"]), tmp_path / "sim")
    cluster.settle()
    (tmp_path / "cib.xml").write_text(cluster.cib)
    with running_pair(cfg, tmp_path) as pair:
        mod = trash_module(example_pillar, "trash_status", trash_cib_file=str(tmp_path / "cib.xml"),
                           trash_root=str(tmp_path / "root"), trash_proc_drbd=str(PROC_DRBD))
        mod.__salt__["cmd.run_all"] = lambda cmd, **kw: run_all(
            ["ip", "netns", "exec", pair.ns["node1"], *cmd], **kw)
        for concern in mod._files.CONCERNS:
            mod.manage_files(concern)
        yield pair, mod


def test_healthy_cluster_is_ok(node1):
    _, mod = node1
    result = mod.status()
    assert result["verdict"] == "ok", result["findings"]
    assert result["guests"] == {"fileserver": ["node1"], "shell2": ["node2"], "stinky": ["node1"]}
    assert result["mirrors"] == {"mirror0": "Connected Primary/Primary UpToDate/UpToDate",
                                 "mirror1": "Connected Primary/Secondary UpToDate/UpToDate",
                                 "mirror2": "Connected Secondary/Primary UpToDate/UpToDate"}


def test_the_software_raid_is_read_from_mdstat(node1, tmp_path):
    _, mod = node1
    mod.__pillar__["trash"]["nodes"]["node1"].update(
        disk="/dev/md9", raid={"level": 1, "members": ["/dev/loop0", "/dev/loop1"]})
    mod.__context__.clear()
    mod.__opts__["trash_proc_mdstat"] = str(DATA / "raid/mdstat-degraded.txt")
    result = mod.status()
    assert result["raid"] == "/dev/md9 raid1 [U_]"
    assert result["verdict"] == "degraded" and any(
        f.startswith("degraded: the RAID array /dev/md9 is degraded [U_]")
        for f in result["findings"]), result["findings"]
    mod.__opts__["trash_proc_mdstat"] = str(DATA / "raid/mdstat-resync.txt")
    assert mod.status()["raid"] == "/dev/md9 raid1 [UU], resync 1.7%"
    mod.__opts__["trash_proc_mdstat"] = str(DATA / "raid/mdstat-none.txt")
    result = mod.status()
    assert result["raid"] == "/dev/md9 not assembled" and result["verdict"] == "failed"


def test_the_dlm_transport_is_read_from_configfs(node1):
    """/sys/kernel/config/dlm/cluster/protocol as the lab's kernel shows it (1: SCTP);
    0 (TCP) is a degraded node; no file (DLM not running) says nothing."""
    _, mod = node1
    mod.__opts__["trash_dlm_protocol"] = str(DATA / "dlm/protocol-tcp")
    result = mod.status()
    assert result["verdict"] == "degraded" and any(
        f.startswith("degraded: DLM runs over TCP") for f in result["findings"]), result
    for name in ("protocol-sctp", "no-such-file"):
        mod.__opts__["trash_dlm_protocol"] = str(DATA / "dlm" / name)
        result = mod.status()
        assert result["verdict"] == "ok", result["findings"]


def test_a_cut_link_a_lost_peer_and_drift_are_reported(node1, tmp_path):
    pair, mod = node1
    pair.link("backchannel", "node1", up=False)
    wait(lambda: "heartbeat" in " ".join(mod.status()["findings"]), 60, "the cut link")
    result = mod.status()
    assert result["verdict"] == "degraded"
    assert ("degraded: heartbeat link(s) to node2 down: backchannel; up: storage, serial"
            in result["findings"])

    (tmp_path / "root/etc/drbd.d/mirror1.res").write_text("changed by hand\n")
    pair.stop("node2")
    wait(lambda: any("not a cluster member" in f for f in mod.status()["findings"]), 60,
         "node2 leaving the membership")
    findings = mod.status()["findings"]
    assert "degraded: node2 is not a cluster member: lost, fenced or not started" in findings
    assert any(f.startswith("degraded: drbd files differ from the pillar: /etc/drbd.d/mirror1.res")
               for f in findings)


def test_constraints_the_formula_leaves_alone_are_explained(node1, tmp_path):
    _, mod = node1
    for name in ("constraint-fence-by-handler.xml", "constraint-cli-prefer.xml"):
        xml = (PCMK_DATA / name).read_text().strip()
        res = run_all(["cibadmin", "--create", "--scope", "constraints", "--xml-text", xml],
                      env={"CIB_file": str(tmp_path / "cib.xml")})
        assert res["retcode"] == 0, res["stderr"]
    result = mod.status()
    assert result["verdict"] == "degraded", result["findings"]
    found = "\n".join(result["findings"])
    assert ("drbd-mirror2-clone may be promoted only on node2: DRBD's fence-peer handler "
            "found the other copy outdated") in found, found
    assert ("guest-fileserver is kept on node2 by an administrator's crm_resource "
            "(constraint cli-prefer-guest-fileserver); once it may move again: "
            "crm_resource --clear --resource guest-fileserver") in found, found
