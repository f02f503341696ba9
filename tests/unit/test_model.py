"""The pillar model: every kind of bad pillar is named by its key, all at once."""

import pytest

from trashlib import model


def problems(pillar, defaults):
    with pytest.raises(model.PillarError) as info:
        model.load(pillar, defaults)
    found = {}
    for path, message in info.value.problems:
        found[path] = f"{found[path]}; {message}" if path in found else message
    return found


def test_example_pillar_is_valid_and_normalised(cfg):
    assert cfg["cluster"]["nodes"] == ["node1", "node2"]
    assert cfg["nodes"]["node1"]["peer"] == "node2"
    assert cfg["nodes"]["node2"]["ip"]["storage"] == "10.10.1.2"
    assert cfg["drbd"]["resources"]["mirror1"]["device"] == "/dev/drbd1"
    fileserver = cfg["guests"]["fileserver"]
    assert fileserver["vg"] == "vg_node1" and fileserver["disk"] == "/dev/vg_node1/fileserver"
    assert fileserver["xml"] == "/shared/guests/fileserver.xml"
    assert cfg["guests"]["knox"]["disk"] == "/local/guests/knox.img"
    # guest defaults fill what the pillar leaves out
    assert cfg["guests"]["knox"]["vcpus"] == 1 and cfg["guests"]["knox"]["failover"] is False


def test_missing_trash_pillar(defaults):
    assert "trash" in problems({}, defaults)


@pytest.mark.parametrize("change, key, words", [
    (lambda t: t["guests"]["stinky"].update(home="node3"),
     "trash:guests:stinky:home", "not a member"),
    (lambda t: t["nodes"]["node2"]["addresses"].update(storage="10.10.1.1/24"),
     "trash:nodes:node2:addresses:storage", "also used"),
    (lambda t: t["drbd"]["resources"]["mirror2"].update(minor=1),
     "trash:drbd:resources:mirror2:minor", "also used by mirror1"),
    (lambda t: t["drbd"]["resources"]["mirror2"].update(port=7788),
     "trash:drbd:resources:mirror2:port", "also used by mirror0"),
    (lambda t: t["network"]["vlans"].update({4095: {"bridge": "vbr4095"}}),
     "trash:network:vlans:4095", "outside 1-4094"),
    (lambda t: t["network"]["vlans"].update({0: {"bridge": "vbr9"}}),
     "trash:network:vlans:0", "outside 1-4094"),
    (lambda t: t["network"]["vlans"][101].update(bridge="vbr1"),
     "trash:network:vlans:101:bridge", "already defined"),
    (lambda t: t["storage"]["partitions"].pop(8),
     "trash:drbd:resources:mirror2:partition", "missing"),
    (lambda t: t["drbd"]["resources"]["mirror2"].update(partition=7),
     "trash:drbd:resources:mirror2:partition", "also the backing device"),
    (lambda t: t["guests"]["knox"].update(failover=True),
     "trash:guests:knox:failover", "cannot fail over"),
    (lambda t: t["cluster"].update(priority_node="node9"),
     "trash:cluster:priority_node", "not a member"),
    (lambda t: t["nodes"]["node2"].pop("bmc"),
     "trash:nodes:node2:bmc", "BMC"),
    (lambda t: t["nodes"].update(node3=dict(t["nodes"]["node2"], nodeid=3)),
     "trash:nodes", "exactly two nodes"),
    (lambda t: t["guests"]["stinky"].update(memory="lots"),
     "trash:guests:stinky:memory", "must be an integer"),
    (lambda t: t["guests"]["stinky"].update(networks=["vbr7"]),
     "trash:guests:stinky:networks:0", "not a bridge"),
    (lambda t: t["nodes"]["node1"]["bmc"].update(address="10.10.9.9"),
     "trash:nodes:node1:bmc:address", "ipmi subnet"),
    (lambda t: t["cluster"].update(authkey="c2hvcnQ="),
     "trash:cluster:authkey", "128-4096"),
    (lambda t: t["drbd"].pop("shared_secret"),
     "trash:drbd:shared_secret", "missing"),
    (lambda t: t["cluster"].update(stickiness=10),
     "trash:cluster:stickiness", "move back"),
    (lambda t: t["cluster"].update(load_threshold=0),
     "trash:cluster:load_threshold", "outside 1-100000"),
    (lambda t: t["cluster"].update(node_action_limit="many"),
     "trash:cluster:node_action_limit", "must be an integer"),
    (lambda t: t["guests"]["stinky"].update(kernel="halt.bin"),
     "trash:guests:stinky:kernel", "must be an absolute path"),
    (lambda t: t["cluster"].update(timeout_factor=0),
     "trash:cluster:timeout_factor", "outside 1-10"),
    (lambda t: t["cluster"].update(monitor_interval=5),
     "trash:cluster:monitor_interval", "outside 10-3600"),
    (lambda t: t["cluster"].update(clustername="x"),
     "trash:cluster:clustername", "unknown key"),
    (lambda t: t["shared"].update(drbd="mirror1"),
     "trash:shared:drbd", "dual_primary"),
    (lambda t: t["storage"]["partitions"][6].update(filesystem="ext4"),
     "trash:storage:partitions:6", "both a filesystem and a DRBD"),
    (lambda t: t["drbd"].update(version="8.3"),
     "trash:drbd:version", "8.4"),
    (lambda t: t["nodes"]["node1"].update(raid={"level": 1, "members": ["/dev/sda", "/dev/sdb"]}),
     "trash:nodes:node1:disk", "/dev/md<N>"),
    (lambda t: t["nodes"]["node1"].update(disk="/dev/md0", raid={"level": 4, "members": ["/dev/sda", "/dev/sdb"]}),
     "trash:nodes:node1:raid:level", "one of 1, 5, 6, 10"),
    (lambda t: t["nodes"]["node1"].update(disk="/dev/md0", raid={"level": 5, "members": ["/dev/sda", "/dev/sdb"]}),
     "trash:nodes:node1:raid:members", "at least 3"),
    (lambda t: t["nodes"]["node1"].update(disk="/dev/md0", raid={"level": 1, "members": ["/dev/sda", "/dev/sda"]}),
     "trash:nodes:node1:raid:members", "named twice"),
    (lambda t: t["nodes"]["node1"].update(disk="/dev/md0", raid={"level": 1, "members": ["sda", "/dev/sdb"]}),
     "trash:nodes:node1:raid:members", "not a device path"),
    (lambda t: t["nodes"]["node1"].update(disk="/dev/md0", raid={"level": 1, "disks": ["/dev/sda"]}),
     "trash:nodes:node1:raid:disks", "unknown key"),
])
def test_each_bad_pillar_is_named_by_its_key(example_pillar, defaults, change, key, words):
    change(example_pillar["trash"])
    found = problems(example_pillar, defaults)
    assert key in found, found
    assert words in found[key]


def test_a_software_raid_node_is_valid_and_others_have_none(example_pillar, defaults):
    example_pillar["trash"]["nodes"]["node1"].update(
        disk="/dev/md0", raid={"level": 1, "members": ["/dev/sda", "/dev/sdb"]})
    cfg = model.load(example_pillar, defaults)
    assert cfg["nodes"]["node1"]["raid"] == {"level": 1, "members": ["/dev/sda", "/dev/sdb"]}
    assert cfg["nodes"]["node2"]["raid"] is None


def test_every_problem_is_reported_at_once(example_pillar, defaults):
    t = example_pillar["trash"]
    t["guests"]["stinky"]["home"] = "node3"
    t["drbd"]["resources"]["mirror2"]["port"] = 7788
    t["network"]["vlans"][5000] = {"bridge": "vbr5000"}
    t["nodes"]["node1"].pop("bmc")
    with pytest.raises(model.PillarError) as info:
        model.load(example_pillar, defaults)
    keys = {path for path, _ in info.value.problems}
    assert {"trash:guests:stinky:home", "trash:drbd:resources:mirror2:port",
            "trash:network:vlans:5000", "trash:nodes:node1:bmc"} <= keys
    text = info.value.text()
    assert text.startswith(f"invalid trash pillar, {len(info.value.problems)} problem(s)")
    assert "nothing was changed" in text


def test_wrong_type_for_a_whole_section(example_pillar, defaults):
    example_pillar["trash"]["guests"] = ["stinky"]
    assert "trash:guests" in problems(example_pillar, defaults)


def test_problem_text_never_contains_a_secret(example_pillar, defaults):
    secret = example_pillar["trash"]["nodes"]["node1"]["bmc"]["password"]
    example_pillar["trash"]["nodes"]["node1"]["bmc"]["password"] = 12345
    example_pillar["trash"]["guests"]["stinky"]["home"] = "node3"
    with pytest.raises(model.PillarError) as info:
        model.load(example_pillar, defaults)
    assert secret not in info.value.text()


def test_redact_replaces_every_secret(cfg, example_pillar):
    out = repr(model.redact(cfg))
    t = example_pillar["trash"]
    for secret in (t["cluster"]["authkey"], t["drbd"]["shared_secret"],
                   t["nodes"]["node1"]["bmc"]["password"], t["nodes"]["node2"]["bmc"]["password"]):
        assert secret not in out
    assert cfg["drbd"]["shared_secret"] == t["drbd"]["shared_secret"]  # the original is intact


@pytest.mark.parametrize("text, size", [("20G", 20 << 30), ("512M", 512 << 20), ("7", 7),
                                        ("1t", 1 << 40), ("20 GB", None), ("-1G", None)])
def test_parse_size(text, size):
    assert model.parse_size(text) == size


def test_merge_recurses_into_dicts_and_replaces_lists():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert model.merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}
    assert base["a"]["c"] == [1, 2]


@pytest.mark.parametrize("change, key", [
    ({"baud": 12345}, "trash:serial:baud"),
    ({"device": "/dev/ttyS0"}, "trash:serial:device"),
    ({"parity": "none"}, "trash:serial:parity"),
])
def test_serial_link_settings(example_pillar, defaults, change, key):
    example_pillar["trash"]["serial"] = change
    assert key in problems(example_pillar, defaults)


def test_packages_must_be_a_list_of_debian_package_names(example_pillar, defaults):
    example_pillar["trash"]["packages"] = ["corosync", "Bad Name", 3]
    with pytest.raises(model.PillarError) as err:
        model.load(example_pillar, defaults)
    keys = [k for k, _ in err.value.problems]
    assert keys == ["trash:packages:1", "trash:packages:2"]
