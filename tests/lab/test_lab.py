"""The lab's wiring, checked from inside the guests: what the formula will rely on."""

import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

NODES = ("node1", "node2")
# test addresses: the example pillar's (pillar/trash/cluster.sls) where it has them
ADDR = {
    "node1": {"eth0": "192.0.2.11/24", "eth1": "10.10.1.1/24", "eth2": "10.10.2.1/24",
              "eth3.101": "10.10.101.1/24", "eth4": "10.10.4.1/30"},
    "node2": {"eth0": "192.0.2.12/24", "eth1": "10.10.1.2/24", "eth2": "10.10.2.2/24",
              "eth3.101": "10.10.101.2/24", "eth4": "10.10.4.5/30"},
}


# back to how the lab boots: eth0..eth4 down and without addresses, no VLAN
CLEAN = ("ip link del eth3.101; "
         "for i in 0 1 2 3 4; do ip addr flush dev eth$i; ip link set eth$i down; done")


def ok(lab, node, cmd, timeout=120):
    r = lab.run(node, cmd, timeout=timeout)
    assert r.returncode == 0, f"{node}: {cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def peer_ip(node, iface):
    other = "node2" if node == "node1" else "node1"
    return ADDR[other][iface].split("/")[0]


@pytest.fixture(scope="module")
def addressed(lab):
    """Test addresses on eth0..eth4 and a VLAN 101 on eth3; removed afterwards."""
    for node in NODES:
        cmds = [CLEAN + " 2>/dev/null; ip link add link eth3 name eth3.101 type vlan id 101"]
        for iface, addr in ADDR[node].items():
            cmds += [f"ip link set {iface.split('.')[0]} up", f"ip link set {iface} up",
                     f"ip addr add {addr} dev {iface}"]
        ok(lab, node, " && ".join(cmds))
    yield lab
    for node in NODES:
        lab.run(node, CLEAN)


def test_lab_addresses_match_the_example_pillar(lab, example_pillar):
    nodes = example_pillar["trash"]["nodes"]
    for node in NODES:
        peer = "node2" if node == "node1" else "node1"
        # the tap on a node's eth4 holds the PEER's BMC address, on the node's ipmi /30
        bmc = lab.BMC_ADDRESS[node]
        assert bmc.split("/")[0] == nodes[peer]["bmc"]["address"]
        assert bmc.split("/")[1] == nodes[node]["addresses"]["ipmi"].split("/")[1]
        assert lab.INET_GATEWAY.split("/")[0] == nodes[node]["gateway"]
        for iface, key in (("eth0", "internet"), ("eth1", "storage"), ("eth2", "backchannel"),
                           ("eth4", "ipmi")):
            assert ADDR[node][iface] == nodes[node]["addresses"][key]


@pytest.mark.parametrize("node", NODES)
def test_node_has_its_name_interfaces_and_raid_disks(lab, node):
    out = ok(lab, node, "hostname; ip -o link; lsblk -bdno NAME,SIZE,SERIAL /dev/vdb /dev/vdc")
    lines = out.splitlines()
    assert lines[0] == node
    macs = dict(re.findall(r"^\d+: (eth\d)[:@].*link/ether (\S+)", out, re.M))
    assert macs == {f"eth{i}": lab.mac(node, i) for i in lab.NICS}, out
    assert [line.split() for line in lines[-2:]] == [
        ["vdb", str(4 << 30), f"raid-{node}"], ["vdc", str(4 << 30), f"raid2-{node}"]]


@pytest.mark.parametrize("iface", ["eth1", "eth2", "eth3.101", "eth0", "eth4"])
def test_ping_over(addressed, iface):
    """eth1 storage, eth2 back-channel, VLAN 101 on the eth3 trunk: cables to the peer;
    eth0: the Internet bridge (the peer and the gateway); eth4: the peer's BMC's address."""
    if iface == "eth4":  # each node: the tap that stands for its peer's BMC
        targets = {node: addressed.BMC_ADDRESS[node] for node in NODES}
    elif iface == "eth0":  # the peer across the bridge; the bridge's gateway address
        targets = {"node1": ADDR["node2"]["eth0"], "node2": addressed.INET_GATEWAY}
    else:
        targets = {"node1": ADDR["node2"][iface]}
    for node, target in targets.items():
        target = target.split("/")[0]
        ok(addressed, node, f"ping -n -c 2 -i 0.5 -w 60 -I {iface} {target}")


def test_pulled_cable_cuts_the_link_and_plugging_it_back_restores_it(addressed):
    """The drills' hook: QEMU's set_link is a cable pull the guest sees as lost carrier."""
    lab = addressed
    target = peer_ip("node1", "eth1")
    lab.set_link("node1", "eth1", False)
    try:
        assert ok(lab, "node1", "cat /sys/class/net/eth1/carrier").strip() == "0"
        assert lab.run("node1", f"ping -n -c 1 -W 2 -I eth1 {target}").returncode != 0
    finally:
        lab.set_link("node1", "eth1", True)
    ok(lab, "node1", f"ping -n -c 2 -i 0.5 -w 60 -I eth1 {target}")


def test_serial_cable_carries_bytes_both_ways(lab):
    raw = "stty -F /dev/ttyS0 115200 raw -echo -ixon -ixoff -crtscts clocal"
    for src, dst in (("node1", "node2"), ("node2", "node1")):
        word = f"cable-{src}-{secrets.token_hex(4)}"
        ok(lab, src, raw)
        ok(lab, dst, f"{raw}; rm -f /tmp/serial.in; "
                     f"setsid sh -c 'timeout 90 grep -a -m1 -o {word} /dev/ttyS0 > /tmp/serial.in' "
                     "</dev/null >/dev/null 2>&1 &")
        deadline = time.monotonic() + 90
        got = ""
        while time.monotonic() < deadline:
            ok(lab, src, f"printf '%s\\n' {word} > /dev/ttyS0")
            got = lab.run(dst, "cat /tmp/serial.in 2>/dev/null").stdout.strip()
            if got:
                break
            time.sleep(1)
        assert got == word


@pytest.mark.parametrize("node", NODES)
def test_cluster_kernel_modules_load(lab, node):
    # drbd-utils loads drbd at boot (modules-load.d): unload it first, so modprobe loads it
    # sctp: DLM's transport (corosync.dlm_conf)
    out = ok(lab, node, "(rmmod drbd || true) && modprobe drbd && modprobe gfs2 && modprobe dlm "
                        "&& modprobe 8021q && modprobe sctp "
                        "&& cat /proc/drbd && cut -d' ' -f1 /proc/modules")
    assert re.search(r"^version: 8\.4\.\d+", out, re.M), out
    loaded = set(out.split())
    assert {"drbd", "gfs2", "dlm", "8021q", "sctp"} <= loaded


def test_salt_call_answers(lab):
    """Salt 3008.4 in its venv (/opt/saltstack/venv, every command README "Deploying"
    step 1 links into /usr/local/bin); both nodes at once: a salt-call costs ~10-20 s of
    TCG. `lab/trashlab converge --masters` sets the masters and minions up."""
    cmd = ("cat /opt/saltstack/venv/lib/python3*/site-packages/salt-*.dist-info/METADATA "
           "| grep ^Version: && for c in salt salt-call salt-minion salt-master salt-key "
           "salt-run; do command -v $c || exit 1; done && salt-call --local test.ping --out=json")
    with ThreadPoolExecutor(len(NODES)) as pool:
        outs = dict(zip(NODES, pool.map(lambda n: ok(lab, n, cmd, timeout=300), NODES)))
    for node, out in outs.items():
        assert "Version: 3008.4" in out, out
        for command in ("salt", "salt-call", "salt-minion", "salt-master", "salt-key", "salt-run"):
            assert f"/usr/local/bin/{command}\n" in out, out
        assert '"local": true' in out, out


def test_push_copies_a_directory_into_a_guest(lab, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "file.sls").write_text("x: 1\n" * 1000)
    lab.push("node2", tmp_path, "/tmp/pushed")
    out = ok(lab, "node2", "md5sum /tmp/pushed/sub/file.sls && rm -r /tmp/pushed")
    import hashlib
    assert out.split()[0] == hashlib.md5(("x: 1\n" * 1000).encode()).hexdigest()
