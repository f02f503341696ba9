"""The host layer of the converged lab seen from outside (issue #5): the firewall's zones
from the Internet zone (the lab's bridge in its namespace) and from the peer over each
cross-link — a TCP connection to a port the ruleset accepts reaches the node (accepted, or
refused by its kernel when nothing listens), a dropped one never gets an answer —, the VLAN
bridges carrying tagged frames between the nodes, and the Internet zone's bond losing a member.
Runs after test_converge.py."""

import json
import pathlib
import re
import subprocess
import sys

import pytest

from polling import wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))

from tlab import lab as tlab  # noqa: E402

# connect to each (address, port[, "sctp"]) once, over TCP unless it says SCTP; "reached"
# (accepted or refused: the packet got to the node's stack) or "dropped" (no answer
# within the timeout); SCTP ones are named "address:port/sctp"
PROBE = r"""
import json, socket, sys
out = {}
for addr, port, *proto in json.loads(sys.argv[1]):
    sctp = proto == ["sctp"]
    key = f"{addr}:{port}" + ("/sctp" if sctp else "")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP if sctp else 0)
    s.settimeout(4)
    try:
        s.connect((addr, port))
        out[key] = "reached"
    except ConnectionRefusedError:
        out[key] = "reached"
    except OSError:
        out[key] = "dropped"
    finally:
        s.close()
print(json.dumps(out))
"""


def probe_from_node(lab, node, targets):
    arg = json.dumps(targets)
    r = lab.run(node, f"python3 -c '{PROBE}' '{arg}'", timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def probe_from_internet(targets):
    r = subprocess.run(["ip", "netns", "exec", tlab.NETNS, sys.executable, "-c", PROBE,
                        json.dumps(targets)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def converged(lab):
    r = lab.run("node1", "nft list table inet trash", timeout=60)
    if r.returncode != 0:
        pytest.fail("the lab is not converged: no firewall on node1 (run test_converge.py first)")
    return lab


def test_the_internet_zone_reaches_ssh_only(converged):
    seen = probe_from_internet([["192.0.2.11", 22], ["192.0.2.11", 4505], ["192.0.2.11", 7788],
                                ["192.0.2.11", 21064], ["192.0.2.11", 49152]])
    assert seen == {"192.0.2.11:22": "reached", "192.0.2.11:4505": "dropped",
                    "192.0.2.11:7788": "dropped", "192.0.2.11:21064": "dropped",
                    "192.0.2.11:49152": "dropped"}


def bonding(lab, node):
    """/proc/net/bonding/bond0 of ``node``: (active member, {member: MII status})."""
    text = lab.run(node, "cat /proc/net/bonding/bond0", timeout=60).stdout
    active = re.search(r"^Currently Active Slave: (\S+)", text, re.M)
    members = dict(re.findall(r"^Slave Interface: (\S+)\nMII Status: (\S+)", text, re.M))
    return (active.group(1) if active else None), members


def test_the_internet_zone_rides_a_bond_that_survives_a_member(converged):
    """The lab pillar bonds eth0 and eth5 (active-backup) under vbr0: with the active
    member's cable pulled the other takes over and ssh still answers from the Internet
    zone; plugged again, both members are up."""
    active, members = bonding(converged, "node1")
    assert members == {"eth0": "up", "eth5": "up"}, members
    assert active in members, active
    other = next(m for m in members if m != active)
    tlab.set_link("node1", active, False)
    try:
        wait_for(lambda: bonding(converged, "node1")[0] == other, timeout=120, interval=2,
                 what=f"{other} active on node1's bond0")
        wait_for(lambda: probe_from_internet([["192.0.2.11", 22]])
                 == {"192.0.2.11:22": "reached"}, timeout=120, interval=2,
                 what="ssh on node1 reached from the Internet zone over the bond's other member")
    finally:
        tlab.set_link("node1", active, True)
    wait_for(lambda: bonding(converged, "node1")[1] == {"eth0": "up", "eth5": "up"},
             timeout=120, interval=2, what="both members of node1's bond0 up again")


def test_each_cluster_service_only_on_its_cross_link(converged):
    seen = probe_from_node(converged, "node2", [
        # back-channel: salt-master, DLM (SCTP), libvirt migration; not DRBD, not DLM over TCP
        ["10.10.2.1", 4505], ["10.10.2.1", 21064, "sctp"], ["10.10.2.1", 49152],
        ["10.10.2.1", 7788], ["10.10.2.1", 21064],
        # storage: DRBD and DLM (SCTP: DLM's association spans every corosync link)
        ["10.10.1.1", 7789], ["10.10.1.1", 21064, "sctp"], ["10.10.1.1", 4505],
        ["10.10.1.1", 21064],
        # node1's Internet address from node2: the Internet zone's rules (ssh only)
        ["192.0.2.11", 4505], ["192.0.2.11", 21064, "sctp"]])
    assert seen == {"10.10.2.1:4505": "reached", "10.10.2.1:21064/sctp": "reached",
                    "10.10.2.1:49152": "reached", "10.10.2.1:7788": "dropped",
                    "10.10.2.1:21064": "dropped",
                    "10.10.1.1:7789": "reached", "10.10.1.1:21064/sctp": "reached",
                    "10.10.1.1:4505": "dropped", "10.10.1.1:21064": "dropped",
                    "192.0.2.11:4505": "dropped", "192.0.2.11:21064/sctp": "dropped"}


@pytest.mark.parametrize("vlan", sorted(
    __import__("yaml").safe_load((ROOT / "lab/pillar/trash/cluster.sls").read_text())
    ["trash"]["network"]["vlans"]))
def test_each_vlan_bridge_carries_its_vlan_between_the_nodes(converged, vlan):
    """eth3.<vlan> is an 802.1q interface of the LAN trunk, enslaved to vbr<vlan>; frames
    on one node's bridge reach the other's over the cable tagged with that VLAN (test
    addresses, removed afterwards: the bridges are the guests', the hosts have none)."""
    bridge = f"vbr{vlan}"
    for node in ("node1", "node2"):
        link = json.loads(converged.run(node, f"ip -j -d link show eth3.{vlan}",
                                        timeout=60).stdout)[0]
        info = link["linkinfo"]
        assert info["info_kind"] == "vlan" and info["info_data"]["id"] == vlan, link
        assert info["info_data"]["protocol"] == "802.1Q" and link["master"] == bridge, link
    addresses = {"node1": f"198.18.{vlan}.1/24", "node2": f"198.18.{vlan}.2/24"}
    try:
        for node, addr in addresses.items():
            r = converged.run(node, f"ip addr add {addr} dev {bridge}", timeout=60)
            assert r.returncode == 0, r.stderr
        r = converged.run("node1", f"ping -c 3 -W 5 198.18.{vlan}.2", timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        # and tagged on the wire: node2's trunk sees the VLAN id in the frames
        r = converged.run("node2", f"timeout 60 tcpdump -l -c 1 -nn -e -i eth3 vlan {vlan} "
                                   f"and icmp > /tmp/vlan{vlan}.txt 2>/dev/null & p=$!; "
                                   "while kill -0 $p 2>/dev/null; do "
                                   f"ping -c 1 -W 1 198.18.{vlan}.1 >/dev/null; done; "
                                   f"cat /tmp/vlan{vlan}.txt", timeout=120)
        assert f"vlan {vlan}" in r.stdout, r.stdout + r.stderr
    finally:
        for node, addr in addresses.items():
            converged.run(node, f"ip addr del {addr} dev {bridge}", timeout=60)
