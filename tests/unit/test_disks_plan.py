"""The guests' disks: LVM's reports parsed from real captures (tests/data/lvm, lvm2 2.03.16),
and the plan: created when missing, never shrunk, only where the VG is active.

This machine has no device-mapper, so every captured LV's state is ``X`` (unknown); an active
LV (``a``, as on the node where Pacemaker activated the VG) is made from a capture by
``active()``, which changes that one character and nothing else."""

import dataclasses
import pathlib

import pytest

from trashlib import disks, model

DATA = pathlib.Path(__file__).resolve().parents[1] / "data/lvm"
M = 1 << 20
# node1's /local guest ns1 with its image present (16M, its disk_size in ``small``)
NS1 = {"/local/guests/ns1.img": disks.File("file", 16 * M)}


def lvs(name):
    return disks.parse_lvs((DATA / f"lvs-{name}.json").read_text())


def vgs(name):
    return disks.parse_vgs((DATA / f"vgs-{name}.json").read_text())


def active(lv_list, *names):
    """The LVs with the state of ``names`` (vg/lv) turned to ``a``, as on the active node."""
    out = []
    for lv in lv_list:
        if f"{lv.vg}/{lv.name}" in names:
            lv = dataclasses.replace(lv, attr=lv.attr[:4] + "a" + lv.attr[5:])
        out.append(lv)
    return out


@pytest.fixture
def small(example_pillar, defaults):
    """The example pillar with the captures' sizes: vg_node1 holds stinky (8M) and
    fileserver (4M); node1's /local guest ns1 wants 16M."""
    def make(**changes):
        guests = example_pillar["trash"]["guests"]
        guests["stinky"]["disk_size"] = "8M"
        guests["fileserver"]["disk_size"] = "4M"
        guests["shell2"]["disk_size"] = "8M"
        guests["ns1"]["disk_size"] = "16M"
        guests["knox"]["disk_size"] = "16M"
        for name, spec in changes.items():
            if spec is None:
                guests.pop(name)
            else:
                guests[name] = {**guests.get(name, {}), **spec}
        return model.load(example_pillar, defaults)
    return make


def test_parse_real_reports():
    got = {(lv.vg, lv.name): (lv.size, lv.attr, lv.mapped) for lv in lvs("shared")}
    assert got == {("vg_local", "ns1"): (4 * M, "-wi-XX----", False),
                   ("vg_node1", "fileserver"): (4 * M, "-wi-XX----", False),
                   ("vg_node1", "retired"): (4 * M, "-wi-XX----", False),
                   ("vg_node1", "stinky"): (8 * M, "-wi-XX----", False)}
    assert vgs("shared") == {
        "vg_local": disks.VG("vg_local", "", 4 * M, 56 * M, 1),
        "vg_node1": disks.VG("vg_node1", "dlm", 4 * M, 44 * M, 3)}
    assert vgs("empty") == {"vg_node1": disks.VG("vg_node1", "dlm", 4 * M, 60 * M, 0)}
    assert lvs("none") == [] and lvs("empty") == [] and vgs("none") == {}


@pytest.mark.parametrize("attr, mapped", [
    ("-wi-a-----", True), ("-wi-ao----", True), ("-wi-s-----", True), ("-wi-d-----", True),
    ("-wi-------", False), ("-wi-XX----", False), ("-wi-h-----", False)])
def test_mapped_is_the_state_character(attr, mapped):
    assert disks.LV("x", "vg", M, attr).mapped is mapped


def test_a_report_that_is_not_json_is_an_error():
    with pytest.raises(ValueError, match="the lvs report is not JSON"):
        disks.parse_lvs("  WARNING: something\n")


def test_wanted_every_cluster_guest_and_this_nodes_local_guests(small):
    cfg = small()
    assert [(d.guest, d.kind, d.path, d.size, d.vg) for d in disks.wanted(cfg, "node1")] == [
        ("fileserver", "lv", "/dev/vg_node1/fileserver", 4 * M, "vg_node1"),
        ("ns1", "image", "/local/guests/ns1.img", 16 * M, None),
        ("shell2", "lv", "/dev/vg_node2/shell2", 8 * M, "vg_node2"),
        ("stinky", "lv", "/dev/vg_node1/stinky", 8 * M, "vg_node1")]
    assert [d.guest for d in disks.wanted(cfg, "node2")] == ["fileserver", "knox", "shell2",
                                                              "stinky"]


def test_a_vg_not_active_here_is_left_to_its_node(small):
    # vg_node1 visible with its lockspace started, but no LV of it active on this node (and
    # vg_node2 not visible at all): nothing to create, the plan says where it happens
    cfg = small(newbox={"home": "node1", "disk_size": "8M"})
    plan = disks.plan(cfg, "node1", vgs("shared"), lvs("shared"), NS1, found_images=["ns1.img"])
    assert plan.create == () and plan.refusals == () and plan.problems == ()
    assert ("vg_node1 is not active on this node; its LVs are created where it is active "
            "(fileserver, newbox, stinky)") in plan.notes
    assert ("vg_node2 is not active on this node; its LVs are created where it is active "
            "(shell2)") in plan.notes


def test_on_the_active_node_missing_lvs_are_created_rounded_to_extents(small):
    cfg = small(newbox={"home": "node1", "disk_size": "10M"}, fileserver={"disk_size": "2M"})
    here = active(lvs("shared"), "vg_node1/stinky")
    plan = disks.plan(cfg, "node1", vgs("shared"), here, NS1, found_images=["ns1.img"])
    assert plan.refusals == () and plan.problems == ()
    # LVM gives whole 4 MiB extents: 10M becomes 12M
    assert [(d.guest, s) for d, s in plan.create] == [("newbox", 12 * M)]
    assert disks.describe(*plan.create[0]) == "/dev/vg_node1/newbox 12M (logical volume)"
    # larger than the pillar (fileserver 4M for 2M) is fine, equal too
    assert sorted((d.guest, s) for d, s in plan.present) == [
        ("fileserver", 4 * M), ("ns1", 16 * M), ("stinky", 8 * M)]
    # an LV of a guest that left the pillar is named and left alone
    assert any(n.startswith("vg_node1/retired is the disk of no guest") for n in plan.notes)


def test_a_smaller_lv_is_reported_with_how_to_grow_it_never_shrunk(small):
    cfg = small(fileserver={"disk_size": "40M"})
    plan = disks.plan(cfg, "node1", vgs("shared"), active(lvs("shared"), "vg_node1/stinky"),
                      NS1)
    assert plan.create == () and plan.refusals == ()
    [problem] = plan.problems
    assert problem.startswith("fileserver: /dev/vg_node1/fileserver is 4M, smaller than its "
                              "disk_size 40M; a disk is never resized by the formula")
    assert "where vg_node1 is active: lvextend --size 40M vg_node1/fileserver" in problem


def test_not_enough_room_in_the_vg_refuses_everything(small):
    cfg = small(newbox={"home": "node1", "disk_size": "40M"},
                other={"home": "node1", "disk_size": "8M"})
    plan = disks.plan(cfg, "node1", vgs("shared"), active(lvs("shared"), "vg_node1/stinky"),
                      NS1)
    assert plan.refusals == ("vg_node1 has 44M free, the missing logical volumes need 48M "
                             "(newbox 40M, other 8M): grow the volume group or lower their "
                             "disk_size",)


def test_an_empty_vg_tells_how_to_make_its_first_lv(small):
    # LVM-activate refuses to start a VG without LVs: the VG is never active anywhere
    cfg = small()
    plan = disks.plan(cfg, "node1", vgs("empty"), lvs("empty"), NS1)
    assert plan.create == () and plan.refusals == ()
    [problem] = plan.problems
    assert problem.startswith("vg_node1 is visible on this node but holds no logical volume")
    assert ("vgchange --lock-start vg_node1 && lvcreate --activate ey --name fileserver "
            "--size 4M vg_node1; then crm_resource --cleanup --resource vg-vg_node1") in problem


def test_a_vg_of_another_lock_type_is_refused(small, example_pillar, defaults):
    # node2's volume group named as the captured local VG (lock type none)
    vgroups = example_pillar["trash"]["volume_groups"]
    vgroups["vg_local"] = vgroups.pop("vg_node2")
    cfg = small()
    plan = disks.plan(cfg, "node1", vgs("shared"), active(lvs("shared"), "vg_local/ns1"),
                      {"/local/guests/ns1.img": disks.File("missing")})
    assert ("vg_local has lock type none, not dlm: the cluster's volume groups are lvmlockd "
            "shared VGs") in plan.refusals[0]
    assert "vgchange --lock-type dlm vg_local" in plan.refusals[0]
    # and ns1, a /local guest now, still has its data in vg_local: no empty image beside it
    assert plan.refusals[1].startswith(
        "ns1: the pillar puts its disk at /local/guests/ns1.img, but this node holds "
        "/dev/vg_local/ns1 (its home or storage changed?)")


def test_a_cluster_guest_whose_data_is_in_another_place_is_refused(small):
    cfg = small(newbox={"home": "node1", "disk_size": "4M"})
    here = active(lvs("shared"), "vg_node1/stinky")
    plan = disks.plan(cfg, "node1", vgs("shared"), here, NS1, found_images=["newbox.img"])
    assert plan.refusals == (
        "newbox: the pillar puts its disk at /dev/vg_node1/newbox, but this node holds "
        "/local/guests/newbox.img (its home or storage changed?); an empty disk is not created "
        "beside its data. Create /dev/vg_node1/newbox yourself and copy the data over (the "
        "old disk is left for you to remove)",)
    # moved from another VG of the pillar, visible on the same node
    elsewhere = here + [disks.LV("newbox", "vg_node2", 4 * M, "-wi-a-----")]
    both = {**vgs("shared"), "vg_node2": disks.VG("vg_node2", "dlm", 4 * M, 0, 1)}
    plan = disks.plan(cfg, "node1", both, elsewhere, NS1)
    assert "this node holds /dev/vg_node2/newbox" in plan.refusals[0]


@pytest.mark.parametrize("found, kind", [
    (disks.File("missing"), "create"), (disks.File("file", 16 * M), "present"),
    (disks.File("file", 32 * M), "present"), (disks.File("file", 4 * M), "problem"),
    (disks.File("other", what="a directory"), "refusal")])
def test_local_images(small, found, kind):
    cfg = small()
    plan = disks.plan(cfg, "node1", {}, [], {"/local/guests/ns1.img": found})
    got = {"create": plan.create, "present": plan.present, "problem": plan.problems,
           "refusal": plan.refusals}
    assert [k for k, v in got.items() if v] == [kind]
    if kind == "create":
        assert disks.describe(*plan.create[0]) == "/local/guests/ns1.img 16M (sparse raw image)"
    if kind == "problem":
        assert plan.problems[0].startswith("ns1: /local/guests/ns1.img is 4M, smaller than its "
                                           "disk_size 16M")
        assert "with the guest shut off: truncate --size '>16M' /local/guests/ns1.img" \
            in plan.problems[0]
    if kind == "refusal":
        assert plan.refusals == ("ns1: /local/guests/ns1.img is a directory, not an image "
                                 "file; it is left alone (move it away yourself)",)


def test_images_wait_for_local_and_strangers_are_named(small):
    cfg = small()
    plan = disks.plan(cfg, "node1", {}, [], {"/local/guests/ns1.img": disks.File("missing")},
                      local_ready=False, found_images=["ns1.xml", "gone.img", "knox.img"])
    assert plan.create == ()
    assert "/local/guests/ns1.img waits for /local to be mounted" in plan.notes
    # a guest that left the pillar, and one whose home is the other node
    for name in ("gone.img", "knox.img"):
        assert (f"/local/guests/{name} is the disk of no /local guest of node1 in the pillar: "
                "left as it is (remove it yourself if that is intended)") in plan.notes
    assert not any("ns1.xml" in n for n in plan.notes)


def test_without_lvm_no_vg_is_active(small):
    plan = disks.plan(small(), "node1", None, [], {"/local/guests/ns1.img": disks.File("missing")})
    assert plan.notes[0] == "LVM is not installed on this node: no volume group is active here"
    assert [d.guest for d, _ in plan.create] == ["ns1"]


def test_the_lvcreate_command_line():
    assert disks.lvcreate("vg_node1", "stinky", 8 * M) == [
        "lvcreate", "--activate", "ey", "--wipesignatures", "y", "--zero", "y", "--yes",
        "--name", "stinky", "--size", "8388608b", "vg_node1"]


@pytest.mark.parametrize("size, text", [(40 << 30, "40G"), (64 * M, "64M"), (12 * M, "12M"),
                                        (1 << 40, "1T"), (1536, "1536 bytes"), (0, "0 bytes")])
def test_human(size, text):
    assert disks.human(size) == text
