"""The tree the lab pushes to /srv/trash (lab/tlab/converge.py): it must be a checkout as
etc/salt/master serves it, with the lab's pillar where the master looks for the pillar;
and the units the lab (and README "Deploying") install."""

import configparser
import sys

import yaml

from modload import ROOT
from saltconf import DEPLOYED, paths

sys.path.insert(0, str(ROOT / "lab"))
from tlab import converge  # noqa: E402


def test_the_pushed_tree_holds_every_path_the_master_configuration_names(tmp_path):
    tree = converge.stage(tmp_path / "srv-trash")
    config = yaml.safe_load((tree / "etc/salt/master").read_text())
    named = [p[len(DEPLOYED) + 1:] for p in paths(config) if p.startswith(DEPLOYED + "/")]
    assert {"salt", "pillar", "_runners", "reactor/notify.sls"} <= set(named), named
    for rel in named:
        assert (tree / rel).exists(), rel
    # the fileserver hands out the custom modules through salt/'s symlinks, inside the tree
    for kind in ("_modules", "_states", "_beacons", "_utils"):
        link = tree / "salt" / kind
        assert link.is_symlink() and link.resolve() == (tree / kind).resolve(), kind
    # pillar/ is the lab's, its secrets a file (the link into the checkout resolved)
    assert (tree / "pillar/top.sls").read_text() == (ROOT / "lab/pillar/top.sls").read_text()
    secrets = tree / "pillar/trash/secrets.sls"
    assert not secrets.is_symlink()
    assert secrets.read_text() == (ROOT / "pillar/trash/secrets.sls").read_text()
    for unit in converge.UNITS:
        assert (tree / "etc/systemd" / unit).is_file(), unit


def test_the_units_start_the_commands_step_1_links():
    for unit, command in (("salt-master.service", "salt-master"),
                          ("salt-minion.service", "salt-minion")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read(ROOT / "etc/systemd" / unit)
        service = parser["Service"]
        assert service["ExecStart"] == f"/usr/local/bin/{command}"
        # Salt tells systemd when it has started (salt.utils.process.notify_systemd)
        assert service["Type"] == "notify" and service["NotifyAccess"] == "all"
        assert "User" not in service  # root: the pillar's secrets, corosync's IPC
        assert parser["Install"]["WantedBy"] == "multi-user.target"
    minion = configparser.ConfigParser(strict=False, interpolation=None)
    minion.read(ROOT / "etc/systemd/salt-minion.service")
    # a restarted minion leaves the jobs it runs alive
    assert minion["Service"]["KillMode"] == "process"


def test_apply_output_gives_each_node_its_own_time_and_states():
    out = ("1000.0\n"
           '1201.5 {"node2": {"file_|-a_|-a_|-managed": {"__id__": "a", "result": true, '
           '"changes": {}, "comment": "ok", "__run_num__": 1}, "x": {"__id__": "b", '
           '"result": false, "changes": {"c": 1}, "comment": "bad", "__run_num__": 0}}}\n'
           '1300.0 {"node1": "Minion did not return. [No response]"}\n')
    res = converge.parse_apply(("node1", "node2"), out)
    assert res["node2"]["seconds"] == 201.5 and res["node2"]["error"] is None
    assert [s["id"] for s in res["node2"]["states"]] == ["b", "a"]
    assert converge.failed(res["node2"]) == ["b"]
    assert res["node1"]["states"] == [] and "did not return" in res["node1"]["error"]
    missing = converge.parse_apply(("node1",), "1000.0\n", "boom", 1)
    assert "no return from node1" in missing["node1"]["error"] and "boom" in missing["node1"]["error"]
