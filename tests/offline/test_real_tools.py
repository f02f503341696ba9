"""Both nodes' rendered files checked by the real tools: corosync -t, crm_verify and
drbdadm of each DRBD version (8.4 through drbd-utils' drbdadm-84, 9 through drbdadm)."""

import ipaddress
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest
import saltcli
from trashlib import cib

NODES = saltcli.NODES
VERSIONS = ("8.4", "9")
PILLAR = saltcli.example_pillar()["trash"]
RESOURCES = PILLAR["drbd"]["resources"]


def _ip(node, zone):
    return str(ipaddress.ip_interface(PILLAR["nodes"][node]["addresses"][zone]).ip)


def _peer(node):
    return next(n for n in NODES if n != node)


# -- corosync ---------------------------------------------------------------------------

@pytest.fixture
def corosync_conf(rendered):
    return (rendered["node1"] / "etc/corosync/corosync.conf").read_text()


@pytest.mark.parametrize("node", NODES)
def test_corosync_accepts_each_nodes_config(node, rendered, tmp_path):
    tree = rendered[node]
    text = (tree / "etc/corosync/corosync.conf").read_text()
    addresses = saltcli.corosync_node_addresses(text, node)
    assert addresses == [_ip(node, link) for link in ("backchannel", "storage", "serial")]
    conf = saltcli.corosync_stage(text, tree / "etc/corosync/authkey", tmp_path)
    proc = saltcli.corosync_t(conf, addresses)
    assert proc.returncode == 0, proc.stderr
    assert "exiting normally" in proc.stderr
    assert " error " not in proc.stderr
    # corosync -t opens the log file of the config: the staged copy keeps it here
    assert "exiting normally" in (tmp_path / "corosync.log").read_text()


@pytest.mark.parametrize("breakage, message", [
    (lambda t: t.replace("    link_mode: passive\n", "    link_mode: passive\n}\n", 1),
     "parser error"),
    (lambda t: t.replace("crypto_cipher: aes256", "crypto_cipher: aes1024"), "Invalid cipher type"),
    (lambda t: t.replace("crypto_hash: sha256", "crypto_hash: none"),
     "crypto_cipher requires crypto_hash"),
    (lambda t: t.replace("nodeid: 2", "nodeid: 1"), "Nodeid 1 appears twice"),
    (lambda t: t.replace("token: 3000", "token: soon"), "expected to be integer"),
], ids=["unbalanced-brace", "cipher", "cipher-without-hash", "duplicate-nodeid", "token-type"])
def test_corosync_rejects_a_broken_config(breakage, message, corosync_conf, rendered, tmp_path):
    broken = breakage(corosync_conf)
    assert broken != corosync_conf
    conf = saltcli.corosync_stage(broken, rendered["node1"] / "etc/corosync/authkey", tmp_path)
    proc = saltcli.corosync_t(conf, saltcli.corosync_node_addresses(corosync_conf, "node1"))
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_corosync_needs_a_local_address_of_the_nodelist(corosync_conf, rendered, tmp_path):
    conf = saltcli.corosync_stage(corosync_conf, rendered["node1"] / "etc/corosync/authkey",
                                  tmp_path)
    # an empty namespace: no address of the nodelist is local, so -t cannot check
    proc = saltcli.corosync_t(conf, [])
    assert proc.returncode != 0
    assert "No valid name found for local host" in proc.stderr


def test_corosync_reads_the_authkey(corosync_conf, rendered, tmp_path):
    addresses = saltcli.corosync_node_addresses(corosync_conf, "node1")
    missing = saltcli.corosync_stage(corosync_conf, tmp_path / "no-such-key", tmp_path)
    proc = saltcli.corosync_t(missing, addresses)
    assert proc.returncode != 0 and "Could not open" in proc.stderr
    short = tmp_path / "short-key"
    short.write_bytes((rendered["node1"] / "etc/corosync/authkey").read_bytes()[:64])
    proc = saltcli.corosync_t(saltcli.corosync_stage(corosync_conf, short, tmp_path), addresses)
    assert proc.returncode != 0 and "minimum 1024 bits" in proc.stderr


def test_corosync_ignores_unknown_keys(corosync_conf, rendered, tmp_path):
    """A limit of the check, pinned so nobody relies on it: a misspelt option passes."""
    text = corosync_conf.replace("token: 3000", "tokne: 3000")
    conf = saltcli.corosync_stage(text, rendered["node1"] / "etc/corosync/authkey", tmp_path)
    proc = saltcli.corosync_t(conf, saltcli.corosync_node_addresses(corosync_conf, "node1"))
    assert proc.returncode == 0, proc.stderr


# -- crm_verify -------------------------------------------------------------------------

def _crm_verify(text, tmp_path):
    path = tmp_path / "cib.xml"
    path.write_text(text)
    return subprocess.run(["crm_verify", "--xml-file", str(path), "-V"],
                                  capture_output=True, text=True, timeout=saltcli.TIMEOUT)


@pytest.mark.parametrize("node", NODES)
def test_crm_verify_accepts_the_cib_with_both_nodes_online(node, rendered, tmp_path):
    text = cib.with_status((rendered[node] / "etc/trash/cib.xml").read_text(), list(NODES))
    proc = _crm_verify(text, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == ""  # not even a warning under -V


def test_crm_verify_warns_without_a_status_section(rendered, tmp_path):
    """Why the check adds one: with an empty status every node is unclean."""
    proc = _crm_verify((rendered["node1"] / "etc/trash/cib.xml").read_text(), tmp_path)
    assert proc.returncode != 0
    assert "Warnings found" in proc.stderr


def test_crm_verify_rejects_an_order_on_a_missing_resource(rendered, tmp_path):
    root = ET.fromstring(cib.with_status((rendered["node1"] / "etc/trash/cib.xml").read_text(),
                                         list(NODES)))
    ET.SubElement(root.find("configuration/constraints"), "rsc_order",
                  {"id": "order-broken", "first": "dlm-clone", "then": "no-such-resource"})
    proc = _crm_verify(ET.tostring(root, encoding="unicode"), tmp_path)
    assert proc.returncode != 0
    assert "no-such-resource" in proc.stderr
    assert "config not valid" in proc.stderr


# -- DRBD -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("node", NODES)
def test_drbdadm_dump_accepts_each_nodes_files(version, node, trees, tmp_path):
    conf = saltcli.drbd_main(trees[version][node], tmp_path)
    proc = saltcli.drbdadm(version, conf, "dump", "all")
    assert proc.returncode == 0, proc.stderr
    for name in RESOURCES:
        assert f"resource {name} {{" in proc.stdout


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("node", NODES)
def test_drbdadm_up_plans_every_resource(version, node, trees, tmp_path):
    conf = saltcli.drbd_main(trees[version][node], tmp_path)
    proc = saltcli.drbdadm(version, conf, "-d", "up", "all", hostname=node)
    assert proc.returncode == 0, proc.stderr
    plan = proc.stdout
    disk = PILLAR["nodes"][node]["disk"]
    own, peer = _ip(node, "storage"), _ip(_peer(node), "storage")
    for name, res in RESOURCES.items():
        device = f"{disk}{res['partition']}"
        assert re.search(rf"^\S*drbdsetup\S* attach {res['minor']} {device} {device} internal",
                         plan, re.M), (name, plan)
        paths = f"ipv4:{own}:{res['port']} ipv4:{peer}:{res['port']}"
        verb = "connect" if version == "8.4" else "new-path"
        net = [line for line in plan.splitlines()
               if re.search(rf"\b{verb} {name}\b", line) and paths in line]
        assert len(net) == 1, (name, plan)
        # only mirror 0 (GFS2 on both nodes) may be primary on both
        net_options = "connect" if version == "8.4" else "new-peer"
        options = [line for line in plan.splitlines()
                   if re.search(rf"\b{net_options} {name}\b", line)]
        two = ["--allow-two-primaries=yes" in line for line in options]
        assert two == [res.get("dual_primary", False)], (name, options)
    if version == "9":
        assert f"--_name={_peer(node)}" in plan


@pytest.mark.parametrize("version", VERSIONS)
def test_drbd_node_variable_plans_like_the_hostname(version, trees, tmp_path):
    """drbdadm also honours __DRBD_NODE__ (drbd-utils' tests use it instead of a hostname)."""
    conf = saltcli.drbd_main(trees[version]["node2"], tmp_path)
    by_host = saltcli.drbdadm(version, conf, "-d", "up", "all", hostname="node2")
    by_env = saltcli.drbdadm(version, conf, "-d", "up", "all", env={"__DRBD_NODE__": "node2"})
    assert by_env.returncode == 0 and by_env.stdout == by_host.stdout
    assert "PRETENDING that I am >>node2<<" in by_env.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_fencing_sits_where_the_version_wants_it(version, trees, tmp_path):
    tree = trees[version]["node1"]
    section = "disk" if version == "8.4" else "net"
    other = "net" if version == "8.4" else "disk"
    for name in RESOURCES:
        sections = saltcli.drbd_sections((tree / f"etc/drbd.d/{name}.res").read_text())
        assert "fencing resource-and-stonith;" in sections[section], name
        assert "fencing" not in sections[other], name
    # and the tool agrees: 8.4 sets it on attach (a disk option), 9 on the peer (net)
    plan = saltcli.drbdadm(version, saltcli.drbd_main(tree, tmp_path), "-d", "up", "all",
                           hostname="node1").stdout
    verb = "attach" if version == "8.4" else "new-peer"
    fenced = [line for line in plan.splitlines() if "--fencing=resource-and-stonith" in line]
    assert len(fenced) == len(RESOURCES)
    assert all(re.search(rf"\b{verb}\b", line) for line in fenced), fenced


def _move_fencing(text, to):
    line = "        fencing resource-and-stonith;\n"
    assert text.count(line) == 1
    text = text.replace(line, "")
    return text.replace(f"    {to} {{\n", f"    {to} {{\n{line}", 1)


@pytest.mark.parametrize("version", VERSIONS)
def test_each_drbdadm_rejects_fencing_in_the_other_versions_place(version, trees, tmp_path):
    tree = trees[version]["node1"]
    wrong = "net" if version == "8.4" else "disk"
    (tmp_path / "etc/drbd.d").mkdir(parents=True)
    for path in (tree / "etc/drbd.d").iterdir():
        text = path.read_text()
        if path.name == "mirror1.res":
            text = _move_fencing(text, wrong)
            assert "fencing" in saltcli.drbd_sections(text)[wrong]
        (tmp_path / "etc/drbd.d" / path.name).write_text(text)
    proc = saltcli.drbdadm(version, saltcli.drbd_main(tmp_path, tmp_path), "dump", "all")
    assert proc.returncode != 0
    assert re.search(r"mirror1\.res:\d+: Parse error: .*\n?.*but got 'fencing'", proc.stderr), \
        proc.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_each_drbdadm_rejects_the_other_versions_files(version, trees, tmp_path):
    other = "9" if version == "8.4" else "8.4"
    proc = saltcli.drbdadm(version, saltcli.drbd_main(trees[other]["node1"], tmp_path),
                           "dump", "all")
    assert proc.returncode != 0
    assert "but got 'fencing'" in proc.stderr


def test_drbdadm_9_turns_into_drbdadm_84_when_the_module_is_84(trees, tmp_path):
    """Without a module, drbdadm 9 asks `modinfo drbd`; the stock Debian kernel's module is
    8.4, and then drbdadm re-executes drbdadm-84, which refuses DRBD 9 files. Pinning the
    version (DRBD_DRIVER_VERSION_OVERRIDE) keeps the 9 parser, module or not."""
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "modinfo").write_text("#!/bin/sh\necho 8.4.11\n")
    (fakebin / "modinfo").chmod(0o755)
    conf = saltcli.drbd_main(trees["9"]["node1"], tmp_path)
    path = f"{fakebin}:{os.environ['PATH']}"
    unpinned = subprocess.run(
        ["drbdadm", "-c", str(conf), "dump", "all"], capture_output=True, text=True,
        env={k: v for k, v in {**os.environ, "PATH": path}.items()
             if k != "DRBD_DRIVER_VERSION_OVERRIDE"})
    assert unpinned.returncode != 0 and "but got 'fencing'" in unpinned.stderr
    pinned = saltcli.drbdadm("9", conf, "dump", "all", env={"PATH": path})
    assert pinned.returncode == 0, pinned.stderr
