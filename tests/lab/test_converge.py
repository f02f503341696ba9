"""The lab converged by Salt (lab/trashlab converge): the formula and lab/pillar pushed into
both guests, `salt-call --local state.apply` on both at once. Storage, DRBD metadata, the
managed files and the services (networkd, nftables, chrony, pppd, corosync) are checked
from inside the guests; then a cable drill. Runs after test_lab.py (tests/lab/conftest.py
orders it last): those tests configure the interfaces by hand."""

import json
import pathlib
import re
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "_utils"))

from tlab import converge, drill  # noqa: E402
from trashlib import corosync  # noqa: E402

NODES = ("node1", "node2")
PILLAR = yaml.safe_load((ROOT / "lab/pillar/trash/cluster.sls").read_text())["trash"]
LINKS = ("backchannel", "storage", "serial")  # knet link 0, 1, 2 (the default order)
NODEID = {"node1": 1, "node2": 2}


def ok(lab, node, cmd, timeout=120):
    r = lab.run(node, cmd, timeout=timeout)
    assert r.returncode == 0, f"{node}: {cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def wait_for(what, probe, timeout=240, every=2):
    """Poll probe() until its answer's first item is true, as the drills poll (no closer
    than a poll takes); fail with its last answer."""
    try:
        return drill.wait(what, lambda: (lambda a: (bool(a and a[0]), a))(probe()),
                          timeout, every)
    except drill.DrillError as e:
        pytest.fail(str(e))


def links_seen(lab, node):
    """{zone: state} of the links to the peer as corosync on ``node`` reports them."""
    r = lab.run(node, "corosync-cfgtool -s", timeout=60)
    if r.returncode != 0:
        return None, r.stdout + r.stderr
    peer = NODEID["node2" if node == "node1" else "node1"]
    parsed = corosync.parse_links(r.stdout)
    return {LINKS[n]: link["peers"].get(peer) for n, link in parsed["links"].items()}, r.stdout


def say(*a):
    print(*a, file=sys.stderr, flush=True)


# Debian enables lvmlockd.service and lvmlocks.service (the lab's image leaves them so) and
# dlm.service (the image disables it: it would start corosync at boot); an administrator
# may have enabled drbd.service. The first converge disables them all.
OWNED_UNITS = ("drbd", "dlm", "lvmlockd", "lvmlocks")
ENABLED_BY_HAND = {"node2": ("drbd", "dlm")}


@pytest.fixture(scope="module")
def first(lab):
    for node, units in ENABLED_BY_HAND.items():
        ok(lab, node, f"systemctl enable {' '.join(units)}")
    results = converge.converge(NODES)
    say("\n" + "\n".join(converge.summary(results)))
    return results


@pytest.fixture(scope="module")
def second(first):
    results = converge.converge(NODES)
    say("\n" + "\n".join(converge.summary(results)))
    return results


def test_a_dry_run_on_the_blank_disks_shows_the_array_and_changes_nothing(lab):
    """state.sls trash.storage test=True before the first converge: the RAID state names
    the mdadm command it would run, the partition, filesystem and mount states wait for the
    array, and both disks are still blank afterwards."""
    converge.push(NODES)
    for node in NODES:
        ret = converge.call(node, "state.sls", "trash.storage", "test=True")
        states = {s["__id__"]: s for s in ret.values()}
        md = states["trash-storage-raid"]
        assert md["result"] is None, md
        assert ("would run: mdadm --create /dev/md0 --run --metadata=1.2 --level=1 "
                "--raid-devices=2 /dev/vdb /dev/vdc") in md["comment"], md["comment"]
        for sid in ("trash-storage-partitions-created", "trash-storage-filesystems-created",
                    "trash-storage-mounted"):
            assert states[sid]["result"] is None, states[sid]
        assert "does not exist yet" in states["trash-storage-partitions-created"]["comment"]
        assert ok(lab, node, "test -e /dev/md0 || echo absent; blkid -p /dev/vdb /dev/vdc "
                             "| wc -l").split() == ["absent", "0"]


def test_first_converge_has_no_failed_state(first):
    for node, res in first.items():
        assert not res["error"], f"{node}: {res['error']}"
        assert not converge.failed(res), "\n".join(converge.summary({node: res}))
        ids = {s["id"] for s in res["states"]}
        # every concern ran, the cluster's included
        assert {"trash-storage-mounted", "trash-drbd-metadata-created",
                "trash-drbd-initial-sync", "trash-corosync-running",
                "trash-serial-link-running", "trash-networkd-running", "trash-firewall-loaded",
                "trash-chrony-running", "trash-pacemaker-running", "trash-pacemaker-configured",
                "trash-pacemaker-owns-lock-and-mirror-daemons",
                "trash-libvirtd-running", "trash-guest-disks-created",
                "trash-guests-defined"} <= ids


def crm_mon(lab, node="node1"):
    from trashlib import pcmk
    r = lab.run(node, "crm_mon --one-shot --output-as xml", timeout=120)
    try:
        return pcmk.parse_status(r.stdout)
    except pcmk.ParseError:
        return None


def placement(st):
    """Where every guest and volume group runs, which mirrors are promoted where."""
    if st is None:
        return None
    def started(rid):  # not "Starting": a guest being started is not running yet
        return sorted(n for n, role in st.roles(rid).items() if role == "Started")
    out = {}
    for name in PILLAR["guests"]:
        out[f"guest-{name}"] = started(f"guest-{name}")
    for name in PILLAR["volume_groups"]:
        out[f"vg-{name}"] = started(f"vg-{name}")
    out["shared-fs"] = started("shared-fs")
    return out


# where the lab pillar puts everything: cluster guests on their homes, /local guests aside
SETTLED = {"guest-stinky": ["node1"], "guest-fileserver": ["node1"], "guest-shell2": ["node2"],
           "guest-ns1": [], "guest-knox": [], "vg-vg_node1": ["node1"],
           "vg-vg_node2": ["node2"], "shared-fs": ["node1", "node2"]}


@pytest.fixture(scope="module")
def settled(lab, first):
    """The cluster after the first converge, once Pacemaker has started everything."""
    def probe():
        st = crm_mon(lab)
        where = placement(st)
        return (where == SETTLED and not st.failed(), where,
                [i.resource for i in st.failed()] if st else None)
    wait_for("Pacemaker runs every resource where the pillar says", probe, timeout=900, every=10)
    return crm_mon(lab)


def test_pacemaker_runs_the_storage_stack_and_guests_with_real_fencing(lab, settled):
    assert settled.online == {"node1", "node2"}
    assert not settled.failed()
    # the fence devices run (their monitor logs in to the peer's BMC with fence_ipmilan)
    assert sorted(settled.running_on("fence-node1")) == ["node2"]
    assert sorted(settled.running_on("fence-node2")) == ["node1"]
    for node, local, cluster in (("node1", "ns1", {"stinky", "fileserver"}),
                                 ("node2", "knox", {"shell2"})):
        running = set(ok(lab, node, "virsh list --name --state-running").split())
        assert running == cluster | {local}, f"{node}: {running}"


@pytest.mark.parametrize("node,guest", [("node1", "stinky"), ("node2", "shell2"),
                                        ("node1", "ns1")])
def test_guests_boot_the_pillars_kernel_which_halts_their_cpu(lab, settled, node, guest):
    """guest_defaults:kernel reaches libvirt (cluster and /local guests alike), and QEMU
    runs it: the vCPU sits halted on the kernel's hlt instead of running SeaBIOS."""
    kernel = PILLAR["guest_defaults"]["kernel"]
    assert f"<kernel>{kernel}</kernel>" in ok(lab, node, f"virsh dumpxml {guest}")
    regs = ok(lab, node, f"virsh qemu-monitor-command {guest} --hmp 'info registers'")
    assert "HLT=1" in regs and "EIP=00100022" in regs, regs


@pytest.mark.parametrize("node", NODES)
def test_resource_agents_started_everything_without_a_systemd_reload(lab, settled, node):
    """The agents' dependencies of resource-agents-deps.target were loaded before Pacemaker
    started anything (trashlib.agents), so neither LVM-activate nor ocf:trash:VirtualDomain
    wrote a runtime drop-in and reloaded systemd for it; Debian's VirtualDomain wrote two on
    every guest start, each reload taking 20-30 s of a lab node."""
    agents = {i.resource: i.agent for i in settled.instances
              if i.resource.startswith("guest-")}
    assert agents and set(agents.values()) == {"ocf:trash:VirtualDomain"}, agents
    loaded = ok(lab, node, "systemctl show resource-agents-deps.target -p After -p Wants")
    for unit in ("libvirtd.service", "blk-availability.service", "virt-guest-shutdown.target"):
        assert unit in loaded, loaded
    assert ok(lab, node, "ls /run/systemd/system/resource-agents-deps.target.d "
                         "2>/dev/null | wc -l").strip() == "0"


@pytest.mark.parametrize("node", NODES)
def test_mirrors_are_synced_and_gfs2_is_shared(lab, settled, node):
    from trashlib import drbd
    proc = drbd.parse_proc_drbd(ok(lab, node, "cat /proc/drbd"))
    for name, res in PILLAR["drbd"]["resources"].items():
        assert proc[res["minor"]]["cs"] == "Connected", (name, proc)
        assert proc[res["minor"]]["ds"] == ("UpToDate", "UpToDate"), (name, proc)
    assert ok(lab, node, "findmnt -no FSTYPE /shared").strip() == "gfs2"
    # a file written on one node is read on the other (DLM keeps GFS2 coherent)
    other = "node2" if node == "node1" else "node1"
    ok(lab, node, f"echo written-on-{node} > /shared/probe-{node}")
    assert ok(lab, other, f"cat /shared/probe-{node}").strip() == f"written-on-{node}"
    # no resource's mark of an unfinished initial sync is left
    assert ok(lab, node, "ls /var/lib/trash/initial-sync 2>/dev/null | wc -l").strip() == "0"


def test_second_converge_changes_nothing(second):
    for node, res in second.items():
        assert not res["error"], f"{node}: {res['error']}"
        changed = [s for s in res["states"] if s["changes"] or s["result"] is not True]
        assert not changed, "\n".join(converge.summary({node: res}))


def test_units_pacemaker_replaces_are_disabled_at_boot(lab, first):
    """Pacemaker runs DLM, lvmlockd and the mirrors: their own units are disabled, each
    where it was enabled (see ENABLED_BY_HAND) and reported as a change."""
    sid = "trash-pacemaker-owns-lock-and-mirror-daemons"
    for node in NODES:
        r = lab.run(node, f"systemctl is-enabled {' '.join(OWNED_UNITS)}", timeout=60)
        assert r.stdout.split() == ["disabled"] * len(OWNED_UNITS), (node, r.stdout)
        disabled = {unit for s in first[node]["states"] if s["id"] == sid
                    for unit in s["changes"]}
        assert disabled == {"lvmlockd", "lvmlocks"} | set(ENABLED_BY_HAND.get(node, ())), node


# what the formula starts and enables at boot (trash.units_at_boot, without a reload each)
STARTED_UNITS = ("chrony", "systemd-networkd", "nftables", "trash-serial-link", "corosync",
                 "libvirtd", "pacemaker")


def test_started_units_are_enabled_at_boot_and_systemd_has_reloaded(lab, first):
    """Enabled on disk (is-enabled), and in systemd's own view (UnitFileState, which only
    a manager reload updates: trash-systemd-reloaded ran)."""
    units = " ".join(STARTED_UNITS)
    for node in NODES:
        r = lab.run(node, f"systemctl is-enabled {units}; "
                          f"systemctl show --property=UnitFileState --value {units}", timeout=60)
        assert r.stdout.split() == ["enabled"] * 2 * len(STARTED_UNITS), (node, r.stdout)


@pytest.mark.parametrize("node", NODES)
def test_the_raid_array_was_created_and_is_named_in_mdadm_conf(lab, first, node):
    """The formula made /dev/md0 a RAID 1 of the two empty disks and named it in
    mdadm.conf, so that a boot assembles it under that name (the power-off drills boot
    the nodes again and need it there)."""
    from trashlib import raid
    detail = raid.parse_export(ok(lab, node, "mdadm --detail --export /dev/md0"))
    assert detail["MD_LEVEL"] == "raid1" and detail["MD_DEVICES"] == "2", detail
    assert raid.detail_members(detail) == ("/dev/vdb", "/dev/vdc"), detail
    conf = raid.parse_conf(ok(lab, node, f"cat {raid.CONF}"))
    assert [(d, raid.norm_uuid(k["uuid"])) for d, k in conf] == \
        [("/dev/md0", raid.norm_uuid(detail["MD_UUID"]))], conf


@pytest.mark.parametrize("node", NODES)
def test_raid_disk_has_the_pillar_partitions_and_local_is_mounted(lab, first, node):
    table = json.loads(ok(lab, node, "sfdisk --json /dev/md0"))["partitiontable"]
    assert table["label"] == "gpt"
    sizes = {int(p["node"].removeprefix("/dev/md0p")): p["size"] * table.get("sectorsize", 512)
             for p in table["partitions"]}
    want = {n: int(spec["size"][:-1]) << 20 for n, spec in PILLAR["storage"]["partitions"].items()}
    assert sizes == want
    mount = ok(lab, node, "findmnt -no SOURCE,FSTYPE /local && awk '$2 == \"/local\"' /etc/fstab | wc -l")
    assert mount.split() == ["/dev/md0p5", "ext4", "1"]


@pytest.mark.parametrize("node", NODES)
def test_drbd_metadata_on_the_mirror_partitions(lab, first, node):
    """Each mirror is attached to its partition (DRBD holds it open: drbdmeta cannot read
    it now) and its metadata has held data since the initial sync."""
    from trashlib import drbd
    for name, res in sorted(PILLAR["drbd"]["resources"].items()):
        shown = ok(lab, node, f"/usr/lib/drbd/drbdsetup-84 show {res['minor']}")
        assert re.search(rf'^\s*disk\s+"/dev/md0p{res["partition"]}";$', shown, re.M), shown
        assert re.search(r"^\s*meta-disk\s+internal;$", shown, re.M), shown
        gi = drbd.parse_gi(ok(lab, node, f"drbdadm get-gi {name}"))
        assert not drbd.never_synced(gi), f"{name}: {gi}"


def test_corosync_quorate_over_all_three_links(lab, first):
    wait_for("node1 sees node2 connected on the back-channel, storage and serial links",
             lambda: (lambda s: (s[0] == dict.fromkeys(LINKS, "connected"), s))(
                 links_seen(lab, "node1")))
    for node in NODES:
        out = ok(lab, node, "corosync-quorumtool -s")
        quorum = corosync.parse_quorum(out)
        assert quorum["quorate"], out
        assert sorted(name for _, name in quorum["members"]) == list(NODES), out
    # link 2 is pppd over the null-modem cable
    assert "10.10.5.1" in ok(lab, "node1", "ip -4 -o addr show dev ppp0")


@pytest.mark.parametrize("node", NODES)
def test_firewall_is_loaded(lab, first, node):
    out = ok(lab, node, "nft list table inet trash")
    assert "policy drop" in out


def _status(node):
    return converge.call(node, "trash.status")


def test_status_says_ok_on_a_converged_cluster(lab, settled):
    wait_for("all links connected", lambda: (lambda s: (
        s[0] == dict.fromkeys(LINKS, "connected"), s))(links_seen(lab, "node1")))
    for node in NODES:
        st = _status(node)
        assert st["verdict"] == "ok", st
        assert set(st["mirrors"].values()) <= {
            f"Connected {roles} UpToDate/UpToDate" for roles in
            ("Primary/Primary", "Primary/Secondary", "Secondary/Primary")}, st
        assert st["fencing"] == {"node2" if node == "node1" else "node1": "on"}, st
        assert st["raid"] == "/dev/md0 raid1 [UU]", st


@pytest.mark.parametrize("node", NODES)
def test_dlm_speaks_sctp_and_may_bind_the_serial_address_before_pppd_has_it(lab, settled, node):
    """SCTP in dlm.conf and in the running kernel; non-local binds on, now and at boot: DLM
    binds the node's address on every link when it starts, and the serial link's exists
    only while pppd holds the link (without them DLM failed with EADDRNOTAVAIL and GFS2
    did not mount on a node whose serial link was down)."""
    assert "protocol=sctp" in ok(lab, node, "cat /etc/dlm/dlm.conf").split()
    assert ok(lab, node, "cat /sys/kernel/config/dlm/cluster/protocol").strip() == "1"
    assert ok(lab, node, "sysctl -n net.ipv4.ip_nonlocal_bind").strip() == "1"
    assert "net.ipv4.ip_nonlocal_bind = 1" in ok(lab, node, "cat /etc/sysctl.d/60-trash-dlm.conf")


def test_pulled_backchannel_keeps_membership_and_dlm_over_storage_and_serial(lab, settled):
    """The back-channel is corosync's first link and was DLM's only path while DLM spoke
    TCP: GFS2 requests that needed the peer's locks then waited for the link (CI caught
    trash.status hanging on /shared; provoked, node2 fenced node1). DLM speaks SCTP over
    every link now: with node1's back-channel pulled, node1 reads a file whose lock node2
    holds (node2 just wrote it), node2 reads what node1 writes, status names the link and
    /shared answers."""
    probe = "/shared/.backchannel-probe"
    ok(lab, "node2", f"echo before > {probe} && sync")
    lab.set_link("node1", "eth2", False)
    try:
        wait_for("node1's corosync sees the back-channel down and the other links up",
                 lambda: (lambda s: (s[0] == {"backchannel": "disconnected",
                                              "storage": "connected",
                                              "serial": "connected"}, s))(
                     links_seen(lab, "node1")), timeout=180)
        quorum = corosync.parse_quorum(ok(lab, "node1", "corosync-quorumtool -s"))
        assert quorum["quorate"] and len(quorum["members"]) == 2, quorum
        assert ok(lab, "node1", f"cat {probe}", timeout=180).strip() == "before"
        ok(lab, "node1", f"echo during > {probe} && sync", timeout=180)
        assert ok(lab, "node2", f"cat {probe}", timeout=180).strip() == "during"
        st = _status("node1")
        assert any("heartbeat link(s) to node2 down: backchannel; up: storage, serial" in f
                   for f in st["findings"]), st
        assert not any("did not answer" in f for f in st["findings"]), st
    finally:
        lab.set_link("node1", "eth2", True)
    wait_for("node1's corosync sees every link connected again",
             lambda: (lambda s: (s[0] == dict.fromkeys(LINKS, "connected"), s))(
                 links_seen(lab, "node1")), timeout=180)
    ok(lab, "node1", f"rm -f {probe}")


# A converged node power-cycled is the power-off and rejoin drills' business
# (tests/lab/test_drills.py).
