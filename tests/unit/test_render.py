"""What the renderers write, from the example pillar."""

import pathlib
import xml.etree.ElementTree as ET

from trashlib import cib, corosync, drbd, files, libvirt, model


def _res(cfg, name):
    return cfg["drbd"]["resources"][name]


def test_corosync_links_in_priority_order_with_two_node_quorum(cfg):
    text = corosync.conf(cfg)
    assert "link_mode: passive" in text and "two_node: 1" in text
    assert "crypto_cipher: aes256" in text and "keyfile: /etc/corosync/authkey" in text
    # back-channel first, storage second, the serial link last and with the lowest priority
    node1 = text.split("name: node1")[1].split("}")[0]
    assert "ring0_addr: 10.10.2.1" in node1 and "ring1_addr: 10.10.1.1" in node1
    assert "ring2_addr: 10.10.5.1" in node1
    assert text.index("knet_link_priority: 3") < text.index("knet_link_priority: 1")


def test_corosync_without_two_node_quorum(cfg):
    cfg["cluster"]["two_node"] = False
    assert "two_node" not in corosync.conf(cfg)


def test_authkey_is_the_decoded_pillar_value(cfg):
    assert len(corosync.authkey(cfg)) == 128


def test_drbd_84_puts_fencing_in_disk_and_uses_84_handlers(cfg):
    text = drbd.resource(cfg, _res(cfg, "mirror0"))
    disk = text.split("disk {")[1].split("}")[0]
    net = text.split("net {")[1].split("}")[0]
    assert "fencing resource-and-stonith;" in disk and "fencing" not in net
    assert "allow-two-primaries yes;" in net
    # the dual-primary mirror fences its peer through Pacemaker (trashlib/fencepeer.py)
    assert 'fence-peer "/usr/local/lib/trash/drbd-fence-peer --priority node1' in text
    assert 'after-resync-target "/usr/lib/drbd/crm-unfence-peer.sh"' in text
    assert "node-id" not in text
    assert "address 10.10.1.1:7788;" in text and "address 10.10.1.2:7788;" in text
    assert "disk /dev/sda6;" in text


def test_drbd_84_single_primary_outdates_its_peer_through_a_constraint(cfg):
    text = drbd.resource(cfg, _res(cfg, "mirror1"))
    assert 'fence-peer "/usr/lib/drbd/crm-fence-peer.sh"' in text
    assert "allow-two-primaries" not in text


def test_drbd_9_puts_fencing_in_net_with_node_ids(cfg):
    cfg["drbd"]["version"] = "9"
    text = drbd.resource(cfg, _res(cfg, "mirror1"))
    net = text.split("net {")[1].split("}")[0]
    assert "fencing resource-and-stonith;" in net
    assert "allow-two-primaries" not in net
    assert 'unfence-peer "/usr/lib/drbd/crm-unfence-peer.9.sh"' in text
    assert "node-id 0;" in text and "node-id 1;" in text


def test_drbd_partition_names_follow_the_disk(cfg):
    cfg["nodes"]["node2"]["disk"] = "/dev/nvme0n1"
    text = drbd.resource(cfg, _res(cfg, "mirror2"))
    assert "disk /dev/nvme0n1p8;" in text and "disk /dev/sda8;" in text


def _cib(cfg):
    return cib.build(cfg)


def _ids(root, tag):
    return {e.get("id"): e for e in root.iter(tag)}


def test_cib_fencing_priority_and_bans(cfg):
    root = _cib(cfg)
    prims = _ids(root, "primitive")
    params = {p: {nv.get("name"): nv.get("value") for nv in prims[p].iter("nvpair")}
              for p in ("fence-node1", "fence-node2")}
    # node1 has priority: the device that fences node1 waits, the other does not
    assert params["fence-node1"]["pcmk_delay_base"] == "15s"
    assert "pcmk_delay_base" not in params["fence-node2"]
    assert params["fence-node2"]["ip"] == "10.10.4.2"
    assert params["fence-node2"]["password_script"] == "cat /etc/trash/fence/node2.password"
    assert not any("password" == k for p in params.values() for k in p)
    bans = {(e.get("rsc"), e.get("node")) for e in root.iter("rsc_location")
            if e.get("score") == "-INFINITY"}
    assert ("fence-node1", "node1") in bans and ("fence-node2", "node2") in bans
    crm = {nv.get("name"): nv.get("value") for nv in root.find("configuration/crm_config").iter("nvpair")}
    assert crm["stonith-enabled"] == "true" and crm["stonith-action"] == "off"
    # throttling stays Pacemaker's unless the pillar sets it
    assert "load-threshold" not in crm and "node-action-limit" not in crm


def test_cib_throttling_from_the_pillar(example_pillar, defaults):
    example_pillar["trash"]["cluster"].update(load_threshold=2000, node_action_limit=8)
    root = cib.build(model.load(example_pillar, defaults))
    crm = {nv.get("name"): nv.get("value") for nv in root.find("configuration/crm_config").iter("nvpair")}
    assert crm["load-threshold"] == "2000%" and crm["node-action-limit"] == "8"


def _monitors(root):
    return {op.get("id"): op.get("interval") for op in root.iter("op")
            if op.get("name") == "monitor"}


def test_cib_monitor_intervals_follow_the_pillar(example_pillar, defaults):
    """One key sets every monitor; the DRBD roles keep distinct intervals (Pacemaker
    refuses two monitors of one resource with the same interval)."""
    default = _monitors(cib.build(model.load(example_pillar, defaults)))
    assert default["drbd-mirror0-monitor-29s-promoted"] == "29s"
    assert default["fence-node1-monitor-60s"] == "60s"
    example_pillar["trash"]["cluster"]["monitor_interval"] = 120
    slow = _monitors(cib.build(model.load(example_pillar, defaults)))
    assert len(slow) == len(default)
    assert slow["fence-node1-monitor-240s"] == "240s"
    assert slow["dlm-monitor-120s"] == "120s" and slow["shared-fs-monitor-80s"] == "80s"
    assert slow["drbd-mirror1-monitor-119s-promoted"] == "119s"
    assert slow["drbd-mirror1-monitor-121s-unpromoted"] == "121s"
    assert slow["guest-fileserver-monitor-120s"] == "120s"


def test_cib_timeouts_scale_with_the_pillar(example_pillar, defaults):
    def timeouts(root):
        return {op.get("id"): op.get("timeout") for op in root.iter("op")}

    root = cib.build(model.load(example_pillar, defaults))
    plain = timeouts(root)
    assert plain["fence-node1-start-0s"] == "60s" and plain["drbd-mirror0-start-0s"] == "240s"
    assert plain["fence-node1-monitor-60s"] == "60s"
    crm = {nv.get("name"): nv.get("value") for nv in root.iter("nvpair")}
    assert "stonith-timeout" not in crm
    example_pillar["trash"]["cluster"]["timeout_factor"] = 3
    root = cib.build(model.load(example_pillar, defaults))
    assert {k: int(v[:-1]) for k, v in timeouts(root).items()} == \
        {k: 3 * int(v[:-1]) for k, v in plain.items()}
    crm = {nv.get("name"): nv.get("value") for nv in root.iter("nvpair")}
    assert crm["stonith-timeout"] == "180s"


def test_cib_guests_local_ones_are_not_managed(cfg):
    prims = _ids(_cib(cfg), "primitive")
    assert {"guest-stinky", "guest-shell2", "guest-fileserver"} <= set(prims)
    assert "guest-knox" not in prims and "guest-ns1" not in prims


def test_cib_pinned_guest_does_not_drag_its_volume_group(cfg):
    root = _cib(cfg)
    colo = _ids(root, "rsc_colocation")
    assert colo["colocation-guest-stinky-with-vg-vg_node1"].get("influence") == "false"
    assert colo["colocation-guest-fileserver-with-vg-vg_node1"].get("influence") is None
    bans = {(e.get("rsc"), e.get("node")) for e in root.iter("rsc_location")
            if e.get("score") == "-INFINITY"}
    assert ("guest-stinky", "node2") in bans and ("guest-fileserver", "node2") not in bans


def test_cib_stickiness_beats_home_preference(cfg):
    root = _cib(cfg)
    sticky = next(nv for nv in root.find("configuration/rsc_defaults").iter("nvpair")
                  if nv.get("name") == "resource-stickiness")
    prefs = [int(e.get("score")) for e in root.iter("rsc_location")
             if e.get("score").lstrip("-").isdigit()]
    assert int(sticky.get("value")) > max(prefs)


def test_cib_promotable_clones(cfg):
    clones = _ids(_cib(cfg), "clone")
    meta = {c: {nv.get("name"): nv.get("value") for nv in clones[c].iter("nvpair")
                if nv.get("id").startswith(c)} for c in clones}
    assert meta["drbd-mirror0-clone"]["promoted-max"] == "2"
    assert meta["drbd-mirror1-clone"]["promoted-max"] == "1"


def test_cib_ids_are_unique(cfg):
    ids = [e.get("id") for e in _cib(cfg).iter() if e.get("id")]
    assert len(ids) == len(set(ids))


def test_with_status_marks_online_nodes(cfg):
    root = ET.fromstring(cib.with_status(cib.render(cfg).split("\n", 1)[1], ["node1"]))
    states = root.findall("status/node_state")
    assert [s.get("uname") for s in states] == ["node1"] and root.get("have-quorum") == "1"


def test_domain_xml(cfg):
    dom = libvirt.domain(cfg, cfg["guests"]["fileserver"])
    assert dom.get("type") == "kvm" and dom.findtext("memory") == "4096"
    assert dom.find("devices/disk/source").get("dev") == "/dev/vg_node1/fileserver"
    assert [s.get("bridge") for s in dom.iter("source") if s.get("bridge")] == ["vbr1", "vbr101"]
    macs = [m.get("address") for m in dom.iter("mac")]
    assert len(set(macs)) == 2 and all(m.startswith("52:54:00:") for m in macs)
    assert dom.find("devices/console").get("type") == "pty"
    # stable across renders: the same guest keeps its UUID and MACs
    again = libvirt.domain(cfg, cfg["guests"]["fileserver"])
    assert again.findtext("uuid") == dom.findtext("uuid")


def test_local_guest_uses_its_image(cfg):
    dom = libvirt.domain(cfg, cfg["guests"]["knox"])
    assert dom.find("devices/disk/source").get("file") == "/local/guests/knox.img"


def test_plan_per_node(cfg):
    node1 = {f.path: f for f in files.plan(cfg, "node1")}
    node2 = {f.path: f for f in files.plan(cfg, "node2")}
    # each node holds only its peer's BMC password
    assert "/etc/trash/fence/node2.password" in node1 and "/etc/trash/fence/node1.password" not in node1
    assert "/etc/trash/fence/node1.password" in node2
    # /local guests only on their home node; cluster guests on both
    assert "/local/guests/ns1.xml" in node1 and "/local/guests/ns1.xml" not in node2
    assert "/local/guests/knox.xml" in node2
    assert "/shared/guests/shell2.xml" in node1 and "/shared/guests/shell2.xml" in node2
    for plan in (node1, node2):
        assert plan["/etc/corosync/authkey"].mode == "0400" and plan["/etc/corosync/authkey"].secret
        assert plan["/etc/drbd.d/mirror0.res"].mode == "0600"
        assert plan["/shared/guests/stinky.xml"].needs_mount == "/shared"
    assert node1["/etc/corosync/corosync.conf"].content == node2["/etc/corosync/corosync.conf"].content
    # DLM over SCTP on both, with non-local binds for the serial link's address
    for plan in (node1, node2):
        assert b"\nprotocol=sctp\n" in plan["/etc/dlm/dlm.conf"].content
        assert b"\nnet.ipv4.ip_nonlocal_bind = 1\n" in plan["/etc/sysctl.d/60-trash-dlm.conf"].content


def test_serial_link_peers_point_at_each_other(cfg):
    from trashlib import serial

    one, two = serial.peer_options(cfg, "node1"), serial.peer_options(cfg, "node2")
    assert "10.10.5.1:10.10.5.2" in one.splitlines() and "10.10.5.2:10.10.5.1" in two.splitlines()
    assert "/dev/ttyS0" in one and "\n115200\n" in one and "netmask 255.255.255.252" in one
    # a heartbeat path never gives up
    assert "persist" in one and "maxfail 0" in one
    assert "ExecStart=/usr/sbin/pppd call trash-serial" in serial.unit(cfg)


def test_parse_cmap_on_real_output(cfg):
    text = (pathlib.Path(__file__).parents[1] / "data/corosync/cmapctl.txt").read_text()
    running = corosync.parse_cmap(text)
    assert running["nodelist.node.1.ring2_addr"] == "10.10.5.2"
    assert running["quorum.two_node"] == "1" and running["totem.token"] == "5000"
    # the capture was taken after token 5000 and aes128 were reloaded, and a rename refused
    expected = corosync.expected_cmap(cfg)
    differ = sorted(k for k, v in expected.items() if running.get(k) != v)
    assert differ == ["totem.crypto_cipher", "totem.token"]


def test_domain_summary_equals_libvirts_own_xml(cfg):
    # libvirt adds currentMemory, clock, placement, KiB units, ...: the summary compares
    # only what the formula decides (captured: XMLDesc of the rendered domain, test driver)
    text = (pathlib.Path(__file__).parents[1] / "data/libvirt/fileserver-xmldesc-inactive.xml").read_text()
    assert "currentMemory" in text and "unit='KiB'" in text
    assert libvirt.summary(text) == libvirt.summary(libvirt.render(cfg, cfg["guests"]["fileserver"]))
    assert libvirt.summary(text)["owner"] == "trashnet"


def test_a_guest_kernel_boots_instead_of_the_disk_and_counts_as_a_change(example_pillar, defaults):
    example_pillar["trash"]["guests"]["fileserver"]["kernel"] = "/usr/lib/trashlab/halt.bin"
    cfg = model.load(example_pillar, defaults)
    dom = ET.fromstring(libvirt.render(cfg, cfg["guests"]["fileserver"]))
    assert dom.findtext("os/kernel") == "/usr/lib/trashlab/halt.bin"
    assert dom.find("os/boot") is None
    plain = libvirt.render(cfg, cfg["guests"]["stinky"])
    assert ET.fromstring(plain).find("os/boot").get("dev") == "hd"
    assert libvirt.summary(plain)["kernel"] is None
    # a domain defined before the key was set differs from the rendered one: redefined
    text = (pathlib.Path(__file__).parents[1] / "data/libvirt/fileserver-xmldesc-inactive.xml").read_text()
    assert libvirt.summary(text)["kernel"] is None
    assert libvirt.summary(libvirt.render(cfg, cfg["guests"]["fileserver"]))["kernel"] == \
        "/usr/lib/trashlab/halt.bin"


def test_corosync_waits_for_the_serial_links_address(cfg):
    from trashlib import serial

    text = serial.corosync_dropin(cfg, "node2")
    assert "After=trash-serial-link.service" in text
    start = next(line for line in text.splitlines() if line.startswith("ExecStartPre="))
    assert "grep -q 'inet 10.10.5.2[ /]'" in start and "seq 30" in start
