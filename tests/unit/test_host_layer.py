"""The host layer: networkd files, what a change of them touches, the firewall ruleset,
/etc/hosts, chrony and the minion's masters; their pillar keys; the module's network note."""

import copy
import pathlib
import re

import pytest
import yaml
from trashlib import basics, files, firewall, model, network

D = network.DIR + "/trash-"


def ini(text):
    """{section: {key: [values]}}: networkd repeats keys (VLAN=, Address=)."""
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current.setdefault(key, []).append(value)
    return sections


# -- networkd files ----------------------------------------------------------------------

def test_network_files_per_zone(cfg):
    f = network.files(cfg, "node1")
    assert all(p.startswith(D) for p in f)
    # eth0 is a port of the Internet bridge, which carries the address and the gateway
    assert ini(f[D + "eth0.network"])["Network"]["Bridge"] == ["vbr0"]
    assert "Address" not in ini(f[D + "eth0.network"])["Network"]
    vbr0 = ini(f[D + "vbr0.network"])["Network"]
    assert vbr0["Address"] == ["192.0.2.11/24"] and vbr0["Gateway"] == ["192.0.2.1"]
    assert ini(f[D + "vbr0.netdev"])["NetDev"] == {"Name": ["vbr0"], "Kind": ["bridge"]}
    # cross-links and the IPMI link carry their addresses, and keep them without carrier
    for iface, addr in (("eth1", "10.10.1.1/24"), ("eth2", "10.10.2.1/24"),
                        ("eth4", "10.10.4.1/30")):
        net = ini(f[D + f"{iface}.network"])
        assert net["Match"]["Name"] == [iface] and net["Network"]["Address"] == [addr]
        assert net["Network"]["ConfigureWithoutCarrier"] == ["yes"]
        assert net["Network"]["LinkLocalAddressing"] == ["no"]
    assert ini(network.files(cfg, "node2")[D + "eth2.network"])["Network"]["Address"] == [
        "10.10.2.2/24"]


def test_lan_trunk_has_one_vlan_and_one_bridge_per_id(cfg):
    f = network.files(cfg, "node1")
    assert ini(f[D + "eth3.network"])["Network"]["VLAN"] == ["eth3.1", "eth3.101"]
    assert "Address" not in ini(f[D + "eth3.network"])["Network"]
    for vid, vbr in ((1, "vbr1"), (101, "vbr101")):
        assert ini(f[D + f"eth3.{vid}.netdev"]) == {
            "NetDev": {"Name": [f"eth3.{vid}"], "Kind": ["vlan"]}, "VLAN": {"Id": [str(vid)]}}
        assert ini(f[D + f"eth3.{vid}.network"])["Network"]["Bridge"] == [vbr]
        assert ini(f[D + f"{vbr}.netdev"])["NetDev"]["Kind"] == ["bridge"]
        assert "Address" not in ini(f[D + f"{vbr}.network"])["Network"]


def test_a_zone_on_a_bond(example_pillar, defaults):
    example_pillar["trash"]["network"]["zones"] = {"internet": "bond0"}
    example_pillar["trash"]["network"]["bonds"] = {
        "bond0": {"members": ["eth0", "eth5"], "mode": "active-backup"}}
    cfg = model.load(example_pillar, defaults)
    f = network.files(cfg, "node1")
    assert ini(f[D + "bond0.netdev"])["Bond"] == {"Mode": ["active-backup"],
                                                  "MIIMonitorSec": ["100ms"]}
    for member in ("eth0", "eth5"):
        assert ini(f[D + f"{member}.network"])["Network"]["Bond"] == ["bond0"]
    assert ini(f[D + "bond0.network"])["Network"]["Bridge"] == ["vbr0"]


def test_network_files_are_a_concern_of_their_own(cfg):
    plan = [s for s in files.plan(cfg, "node1") if s.concern == "network"]
    assert {s.path: s.content.decode() for s in plan} == network.files(cfg, "node1")
    assert all(network.owned(s.path) for s in plan)
    assert not network.owned("/etc/systemd/network/10-admin.network")


# -- what a change touches ---------------------------------------------------------------

def _files_with(example_pillar, defaults, change):
    change(example_pillar["trash"])
    return network.files(model.load(example_pillar, defaults), "node1")


@pytest.fixture
def before(cfg):
    return network.files(cfg, "node1")


def test_no_change_touches_nothing(before):
    assert network.changes(before, dict(before)) == {
        "created": [], "reconfigure": [], "recreate": [], "removed": []}
    assert network.describe(network.changes(before, before)) is None


def test_a_new_vlan_touches_the_trunk_only(before, example_pillar, defaults):
    after = _files_with(example_pillar, defaults, lambda t: t["network"]["vlans"].update(
        {202: {"bridge": "vbr202"}}))
    change = network.changes(before, after)
    assert change == {"created": ["eth3.202", "vbr202"], "reconfigure": ["eth3"],
                      "recreate": [], "removed": []}
    # no cross-link, no Internet link
    text = network.describe(change)
    assert "networkctl reconfigure eth3" in text and "eth1" not in text and "eth2" not in text


def test_a_storage_address_change_touches_eth1_only(before, example_pillar, defaults):
    after = _files_with(example_pillar, defaults, lambda t: t["nodes"]["node1"]["addresses"]
                        .update(storage="10.10.1.11/24"))
    assert network.changes(before, after)["reconfigure"] == ["eth1"]


def _drop_vlan_101(trash):
    trash["network"]["vlans"].pop(101)
    trash["guests"]["fileserver"]["networks"] = ["vbr1"]


def test_a_removed_vlan_is_named(before, example_pillar, defaults):
    after = _files_with(example_pillar, defaults, _drop_vlan_101)
    change = network.changes(before, after)
    assert change["removed"] == ["eth3.101", "vbr101"] and change["reconfigure"] == ["eth3"]


def test_a_changed_netdev_needs_the_link_recreated(example_pillar, defaults):
    def bond(mode):
        def change(t):
            t["network"]["zones"] = {"internet": "bond0"}
            t["network"]["bonds"] = {"bond0": {"members": ["eth0", "eth5"], "mode": mode}}
        return change
    old = _files_with(copy.deepcopy(example_pillar), defaults, bond("active-backup"))
    new = _files_with(example_pillar, defaults, bond("balance-rr"))
    change = network.changes(old, new)
    assert change == {"created": [], "reconfigure": [], "recreate": ["bond0"], "removed": []}
    assert "bond0 must be deleted and recreated" in network.describe(change)


def test_changes_accept_bytes(before):
    as_bytes = {p: t.encode() for p, t in before.items()}
    assert network.changes(as_bytes, before)["reconfigure"] == []
    first = network.changes({}, as_bytes)
    assert "vbr0" in first["created"] and "eth0" in first["reconfigure"]


# -- the firewall ------------------------------------------------------------------------

RULE = re.compile(r'iifname "(?P<ifname>[^"]+)" fib daddr \. iif type local (?P<family>ip6?) saddr (?P<saddr>\S+(?: [^}]+ \})?)'
                  r' (?P<proto>tcp|udp|sctp) (?P<dir>[ds])port (?P<ports>\{ [^}]+ \}|\S+) accept')


def accepted(text, sport=False):
    """[(ifname, saddr, proto, port)] of every accept rule by destination port, sets and
    ranges expanded (``sport=True``: of every rule by source port instead)."""
    out = []
    for m in RULE.finditer(text):
        if (m["dir"] == "s") != sport:
            continue
        sources = m["saddr"].strip("{} ").split(", ")
        for part in m["ports"].strip("{} ").split(", "):
            low, _, high = part.partition("-")
            for port in range(int(low), int(high or low) + 1):
                out += [(m["ifname"], s, m["proto"], port) for s in sources]
    return out


def test_cluster_services_only_on_their_cross_link_from_the_peer(cfg):
    rules = accepted(firewall.ruleset(cfg, "node1"))
    peer = {"eth1": "10.10.1.2", "eth2": "10.10.2.2", "ppp*": "10.10.5.2"}
    expected = {("eth2", "udp", 5405), ("eth1", "udp", 5406), ("ppp*", "udp", 5407),
                ("eth1", "tcp", 7788), ("eth1", "tcp", 7789), ("eth1", "tcp", 7790),
                ("eth2", "sctp", 21064), ("eth1", "sctp", 21064), ("ppp*", "sctp", 21064),
                ("eth2", "tcp", 4505), ("eth2", "tcp", 4506),
                ("eth2", "tcp", 22), ("eth2", "udp", 123), ("eth2", "tcp", 49152),
                ("eth2", "tcp", 49215)}
    cross = {(i, p, port) for i, s, p, port in rules if i != "vbr0"}
    assert expected <= cross
    assert all(s == peer[i] for i, s, _, _ in rules if i != "vbr0")
    # nothing of the cluster on the Internet zone, in any form
    assert {(i, s, p, port) for i, s, p, port in rules if i in ("vbr0", "eth0")} == {
        ("vbr0", "198.51.100.0/24", "tcp", 22), ("vbr0", "2001:db8:1::/48", "tcp", 22)}
    assert ("eth2", "tcp", 16514) not in cross
    # DLM over SCTP, on every corosync link, never over TCP (SCTP's association spans the
    # links: replies from the service's port are accepted too, from the peer only)
    assert not {r for r in cross if r[2] == "tcp" and r[3] == 21064}
    assert set(accepted(firewall.ruleset(cfg, "node1"), sport=True)) == {
        ("eth2", "10.10.2.2", "sctp", 21064), ("eth1", "10.10.1.2", "sctp", 21064),
        ("ppp*", "10.10.5.2", "sctp", 21064)}


def test_firewall_basics(cfg):
    text = firewall.ruleset(cfg, "node1")
    assert "policy drop;" in text and 'iif "lo" accept' in text
    assert "ct state established,related accept" in text
    # replaces only its own table, atomically; never flushes other software's tables
    assert "flush ruleset" not in text
    assert text.index("table inet trash\ndelete table inet trash") < text.index("chain input")
    # no forward hook: bridged guest traffic is never filtered here (br_netfilter or not)
    assert "hook forward" not in text and "hook prerouting" not in text
    # interface names are matched by name: the ruleset loads before the links exist
    assert not re.search(r'\biif "(?!lo")', text) and " iif eth" not in text


def test_firewall_from_pillar(example_pillar, defaults):
    fw = example_pillar["trash"]["firewall"]
    fw.update(ssh_sources=["203.0.113.7"], ssh_port=2222, libvirt_tls=True,
              internet_allow={"https": {"port": 443, "protocol": "tcp",
                                        "sources": ["0.0.0.0/0"]}})
    example_pillar["trash"]["salt"] = {"masters": ["node1"]}
    cfg = model.load(example_pillar, defaults)
    one = accepted(firewall.ruleset(cfg, "node1"))
    two = accepted(firewall.ruleset(cfg, "node2"))
    assert ("vbr0", "203.0.113.7", "tcp", 2222) in one
    assert ("vbr0", "0.0.0.0/0", "tcp", 443) in one
    assert ("eth2", "10.10.2.2", "tcp", 2222) in one
    assert ("eth2", "10.10.2.2", "tcp", 16514) in one
    # only the node that runs a master accepts the minions
    assert ("eth2", "10.10.2.2", "tcp", 4505) in one
    assert not [r for r in two if r[3] in (4505, 4506)]


def test_no_ssh_from_the_internet_by_default(example_pillar, defaults):
    del example_pillar["trash"]["firewall"]
    cfg = model.load(example_pillar, defaults)
    text = firewall.ruleset(cfg, "node1")
    assert not [r for r in accepted(text) if r[0] == "vbr0"]
    assert "nothing: trash:firewall names no source" in text


@pytest.mark.parametrize("change, key, words", [
    (lambda f: f.update(ssh_sources=["10.0.0.1/8"]), "trash:firewall:ssh_sources:0",
     "is not an address or network"),
    (lambda f: f.update(ssh_sources="10.0.0.0/8"), "trash:firewall:ssh_sources",
     "must be a list"),
    (lambda f: f.update(ssh_port=0), "trash:firewall:ssh_port", "outside 1-65535"),
    (lambda f: f.update(libvirt_tls="yes"), "trash:firewall:libvirt_tls", "true or false"),
    (lambda f: f.update(ssh=["10.0.0.0/8"]), "trash:firewall:ssh", "unknown key"),
    (lambda f: f.update(internet_allow={"web": {"port": 80, "protocol": "sctp",
                                                "sources": ["0.0.0.0/0"]}}),
     "trash:firewall:internet_allow:web:protocol", "must be tcp or udp"),
    (lambda f: f.update(internet_allow={"web": {"port": 80, "protocol": "tcp", "sources": []}}),
     "trash:firewall:internet_allow:web:sources", "is empty"),
    (lambda f: f.update(internet_allow={"web": {"port": 80, "protocol": "tcp"}}),
     "trash:firewall:internet_allow:web:sources", "missing"),
])
def test_firewall_pillar_errors_name_the_key(change, key, words, example_pillar, defaults):
    change(example_pillar["trash"]["firewall"])
    with pytest.raises(model.PillarError) as err:
        model.load(example_pillar, defaults)
    assert any(path == key and words in message for path, message in err.value.problems), \
        err.value.problems


def test_ntp_and_vlan_pillar_errors(example_pillar, defaults):
    example_pillar["trash"]["ntp"] = {"servers": ["ntp one"], "pools": []}
    example_pillar["trash"]["network"]["zones"] = {"lan": "enp129s0f1np1"}
    with pytest.raises(model.PillarError) as err:
        model.load(example_pillar, defaults)
    paths = dict(err.value.problems)
    assert "trash:ntp:servers:0" in paths and "trash:ntp:pools" in paths
    assert "longer than 15 characters" in paths["trash:network:vlans:101"]


# -- basics ------------------------------------------------------------------------------

def test_hosts_resolves_both_nodes_to_the_back_channel(cfg):
    lines = [line.split() for line in basics.hosts(cfg).splitlines()
             if line and not line.startswith("#")]
    assert ["127.0.0.1", "localhost"] in lines
    assert ["::1", "localhost", "ip6-localhost", "ip6-loopback"] in lines
    assert ["10.10.2.1", "node1.trash.net", "node1"] in lines
    assert ["10.10.2.2", "node2.trash.net", "node2"] in lines
    # no 127.0.1.1 <hostname>: a node's name must not resolve to loopback
    assert not [line for line in lines if line[0].startswith("127.") and "node1" in line]


def test_hosts_without_a_domain(cfg):
    cfg["cluster"]["domain"] = ""
    for node in cfg["nodes"].values():
        node["fqdn"] = node["name"]
    assert "10.10.2.1\tnode1\n" in basics.hosts(cfg)


def test_chrony_servers_and_the_peer(cfg):
    cfg["ntp"]["servers"] = ["ntp1.trash.net", "192.0.2.123"]
    text = basics.chrony(cfg, "node1")
    assert "server ntp1.trash.net iburst" in text and "server 192.0.2.123 iburst" in text
    assert "peer 10.10.2.2 iburst" in text and "local stratum 10 orphan" in text
    assert "peer 10.10.2.1 iburst" in basics.chrony(cfg, "node2")


def test_minion_talks_to_every_master_on_the_back_channel(cfg):
    assert yaml.safe_load(basics.minion(cfg, "node2")) == {
        "id": "node2", "master": ["10.10.2.1", "10.10.2.2"],
        "beacons": {"trash_corosync": [{"interval": 5}], "trash_drbd": [{"interval": 5}]}}
    cfg["salt"]["masters"] = ["node2"]
    assert yaml.safe_load(basics.minion(cfg, "node1"))["master"] == ["10.10.2.2"]


def test_basics_and_firewall_in_the_plan(cfg):
    plan = {s.path: s for s in files.plan(cfg, "node1")}
    assert plan["/etc/hosts"].concern == "basics"
    assert plan["/etc/chrony/conf.d/trash.conf"].check == "chrony"
    assert plan["/etc/salt/minion.d/trash.conf"].concern == "basics"
    assert plan["/etc/nftables.conf"].check == "nftables"
    assert plan["/etc/nftables.conf"].mode == "0755"


# -- the module --------------------------------------------------------------------------

def test_network_test_mode_names_the_links_it_would_touch(trash_mod, example_pillar, tmp_path):
    first = trash_mod.manage_files("network", test=True)
    assert first["result"] is None
    assert "networkctl reload creates" in first["comment"] and "vbr101" in first["comment"]
    trash_mod.manage_files("network")
    assert trash_mod.network_plan()["summary"] == "no link is touched"
    example_pillar["trash"]["network"]["vlans"][202] = {"bridge": "vbr202"}
    trash_mod.__context__.clear()
    result = trash_mod.manage_files("network", test=True)
    assert set(result["changes"]) == {D + "eth3.network", D + "eth3.202.netdev",
                                      D + "eth3.202.network", D + "vbr202.netdev",
                                      D + "vbr202.network"}
    assert result["comment"] == ("would update 5 network files; would then: networkctl reload "
                                 "creates eth3.202, vbr202; networkctl reconfigure eth3")
    plan = trash_mod.network_plan()
    assert plan["created"] == ["eth3.202", "vbr202"] and plan["reconfigure"] == ["eth3"]


def test_network_files_no_longer_rendered_are_removed(trash_mod, example_pillar, tmp_path):
    trash_mod.manage_files("network")
    netdir = tmp_path / "root/etc/systemd/network"
    (netdir / "10-admin.network").write_text("[Match]\nName=eth9\n")
    _drop_vlan_101(example_pillar["trash"])
    trash_mod.__context__.clear()
    preview = trash_mod.manage_files("network", test=True)
    assert preview["changes"][D + "vbr101.netdev"] == {"diff": "removed: no longer rendered"}
    assert "would update 1 network files and remove 4" in preview["comment"]
    assert "eth3.101, vbr101 no longer configured" in preview["comment"]
    assert (netdir / "trash-vbr101.netdev").exists()
    done = trash_mod.manage_files("network")
    assert done["result"] is True and "and removed 4" in done["comment"]
    assert not list(netdir.glob("trash-*101*"))
    # a file the formula does not own stays
    assert (netdir / "10-admin.network").exists()
    assert trash_mod.manage_files("network")["changes"] == {}


def test_firewall_and_chrony_are_checked_by_their_tools(trash_mod, run_all):
    trash_mod.manage_files("firewall")
    cmd = run_all.call_args.args[0]
    assert cmd[:5] == ["unshare", "--net", "nft", "-c", "-f"]
    assert cmd[5].endswith("/etc/nftables.conf")
    trash_mod.manage_files("basics")
    assert run_all.call_args.args[0][:3] == ["chronyd", "-p", "-f"]


IFUPDOWN = pathlib.Path(__file__).resolve().parents[1] / "data/ifupdown/interfaces"


def test_ifupdown_keeps_only_what_networkd_does_not_configure(cfg):
    managed = network.managed_links(cfg, "node1")
    assert {"eth0", "eth1", "eth2", "eth3", "eth4", "vbr0", "eth3.1", "vbr1"} <= set(managed)
    new, released = network.release_ifupdown(IFUPDOWN.read_text(), managed)
    assert released == ["eth0", "eth1", "eth1:0"]
    assert new == (
        "# This file describes the network interfaces available on your system\n"
        "# and how to activate them. For more information, see interfaces(5).\n\n"
        "source /etc/network/interfaces.d/*\n\n"
        "# The loopback network interface\nauto lo\niface lo inet loopback\n\n"
        "# The primary network interface\n\n"
        "auto eth5\n\n"
        "# a management port the formula does not configure\niface eth5 inet dhcp\n")
    # released once, nothing left to release
    assert network.release_ifupdown(new, managed) == (new, [])
