"""saltutil.sync_all hands the custom modules and the trashlib package to the minions."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODES = ("node1", "node2")


@pytest.mark.parametrize("node", NODES)
def test_sync_all_delivers_modules_states_and_utils(synced, minions, node):
    ret = synced[node]
    # exactly what the checkout has, through the salt/_<kind> symlinks
    for kind in ("modules", "states", "beacons"):
        assert sorted(ret[kind]) == sorted(f"{kind}.{p.stem}"
                                           for p in (ROOT / f"_{kind}").glob("*.py"))
    assert "modules.trash" in ret["modules"] and "states.trash" in ret["states"]
    lib = sorted(p.stem for p in (ROOT / "_utils/trashlib").glob("*.py"))
    assert sorted(ret["utils"]) == sorted(f"utils.trashlib.{name}" for name in lib)
    # the files landed in the minion's extension modules, the package kept whole
    extmods = pathlib.Path(minions[node].config["extension_modules"])
    for name in lib:
        synced_file = extmods / "utils" / "trashlib" / f"{name}.py"
        assert synced_file.read_bytes() == (ROOT / "_utils/trashlib" / f"{name}.py").read_bytes()
    assert (extmods / "modules/trash.py").read_bytes() == (ROOT / "_modules/trash.py").read_bytes()


def test_trash_module_loads_with_trashlib_and_validates(synced, salt_run):
    # trash.validate only exists when `from trashlib import ...` worked on the minion
    ret = salt_run(NODES, "trash.validate")
    assert ret == {node: {"valid": True} for node in NODES}


def test_trash_plan_differs_per_node(synced, salt_run):
    ret = salt_run(NODES, "trash.plan")
    paths = {node: {f["path"] for f in ret[node]} for node in NODES}
    # each node holds its peer's BMC password and only its own /local guests
    assert "/etc/trash/fence/node2.password" in paths["node1"]
    assert "/etc/trash/fence/node1.password" in paths["node2"]
    assert "/local/guests/ns1.xml" in paths["node1"] - paths["node2"]
    assert "/local/guests/knox.xml" in paths["node2"] - paths["node1"]
