"""Pushing the CIB: preview of a pillar change on a settled cluster, apply, idempotence.

A CIB file stands in for the running cluster (``trash_cib_file``, which sets
``CIB_file`` for cibadmin); crm_verify and crm_simulate are the real tools.
"""

import copy
import hashlib
import pathlib
import xml.etree.ElementTree as ET

import crmsim
import pytest

from trashlib import cib, model

from modload import run_all, trash_module


@pytest.fixture
def live(tmp_path, example_pillar, defaults):
    """A settled two-node cluster as a CIB file: what cibadmin --query would return."""
    cfg = model.load(copy.deepcopy(example_pillar), defaults)
    text = cib.with_status(ET.tostring(cib.build(cfg), encoding="unicode"), ["node1", "node2"])
    cluster = crmsim.Cluster(text, tmp_path / "sim")
    cluster.settle()
    path = tmp_path / "live.xml"
    path.write_text(cluster.cib)
    return path


@pytest.fixture
def trash_mod(live, example_pillar):
    return trash_module(example_pillar, "trash_cib_apply", trash_cib_file=str(live))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_converged_cluster_needs_nothing(trash_mod):
    assert trash_mod.cib_apply(test=True) == {
        "result": True, "changes": {},
        "comment": "the Pacemaker configuration is in the rendered state"}


def test_new_guest_previews_exactly_its_start_then_applies_once(trash_mod, example_pillar, live):
    example_pillar["trash"]["guests"]["newbox"] = {"home": "node2", "failover": True,
                                                   "memory": 512, "networks": ["vbr1"]}
    before = digest(live)
    preview = trash_mod.cib_apply(test=True)
    assert preview["result"] is None
    assert preview["changes"]["pacemaker"]["sections"] == ["constraints", "resources"]
    assert preview["changes"]["pacemaker"]["transition"] == ["start guest-newbox node2"]
    assert digest(live) == before  # test mode changed nothing

    applied = trash_mod.cib_apply()
    assert applied["result"] is True and applied["changes"] == preview["changes"]
    query = run_all(["cibadmin", "--query", "--scope", "resources"],
                    env={"CIB_file": str(live)})["stdout"]
    assert 'id="guest-newbox"' in query
    # what Pacemaker keeps for itself survives the push
    assert 'name="dc-version"' not in ET.tostring(cib.build(trash_mod._load())).decode()
    assert trash_mod.cib_apply() == {
        "result": True, "changes": {},
        "comment": "the Pacemaker configuration is in the rendered state"}


def test_preview_names_what_moves(trash_mod, example_pillar):
    # a pinned guest given another home must show up as a move, not be hidden
    example_pillar["trash"]["guests"]["stinky"]["home"] = "node2"
    lines = trash_mod.cib_apply(test=True)["changes"]["pacemaker"]["transition"]
    assert "move guest-stinky node1 -> node2" in lines, lines


def test_no_bmc_password_reaches_the_cluster(trash_mod, example_pillar, live):
    example_pillar["trash"]["cluster"]["fence_delay"] = 20
    assert trash_mod.cib_apply()["result"] is True
    text = live.read_text()
    assert 'name="pcmk_delay_base" value="20s"' in text
    for node in ("node1", "node2"):
        assert example_pillar["trash"]["nodes"][node]["bmc"]["password"] not in text


def test_unreachable_cluster_is_a_clear_error(trash_mod, tmp_path):
    from salt.exceptions import CommandExecutionError

    trash_mod.__opts__["trash_cib_file"] = str(tmp_path / "missing.xml")
    with pytest.raises(CommandExecutionError, match="is the cluster running on this node"):
        trash_mod.cib_apply(test=True)


# as drbd-utils' crm-fence-peer.sh places it (captured in the lab: node2 guarding mirror2
# after the storage link's loss) and as `crm_resource --move` leaves one
FOREIGN = pathlib.Path(__file__).resolve().parents[1] / "data" / "pcmk"
FENCE_BY_HANDLER = (FOREIGN / "constraint-fence-by-handler.xml").read_text().strip()
MOVE = (FOREIGN / "constraint-cli-prefer.xml").read_text().strip()


def test_constraints_of_drbd_and_the_administrator_survive_a_push(trash_mod, example_pillar,
                                                                   live):
    env = {"CIB_file": str(live)}
    for xml in (FENCE_BY_HANDLER, MOVE):
        res = run_all(["cibadmin", "--create", "--scope", "constraints", "--xml-text", xml],
                      env=env)
        assert res["retcode"] == 0, res["stderr"]
    # not the formula's: no change to report
    assert trash_mod.cib_apply(test=True)["changes"] == {}
    example_pillar["trash"]["guests"]["newbox"] = {"home": "node2", "failover": True,
                                                   "memory": 512, "networks": ["vbr1"]}
    assert trash_mod.cib_apply()["result"] is True
    query = run_all(["cibadmin", "--query", "--scope", "constraints"], env=env)["stdout"]
    assert 'id="drbd-fence-by-handler-mirror2-drbd-mirror2-clone"' in query
    assert 'id="cli-prefer-guest-fileserver"' in query
    assert "location-guest-newbox-prefer-node2" in query
