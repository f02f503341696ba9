"""The dual-primary mirror's fence-peer handler (trashlib/fencepeer.py) on real captures:
/proc/drbd of the lab's nodes and crm_mon's XML of the lab's cluster."""

import pathlib
import subprocess

import pytest

from trashlib import drbd, fencepeer

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
HOME = DATA / "drbd/proc-node1-running.txt"        # node1 Primary of mirror1, as at home
AWAY = DATA / "drbd/proc-node1-away.txt"           # node1 Primary of no single-primary mirror
STALE = DATA / "drbd/proc-node2-synctarget.txt"    # mirror1 Inconsistent here
AWAY_MON = (DATA / "pcmk/crm_mon-rejoined.xml").read_text()  # node2 promoted mirror1, mirror2
PEER_GONE_MON = (DATA / "pcmk/crm_mon-node2-lost.xml").read_text()  # node2 off, node1 alone
ARGS = ["--priority", "node1", "--fence-delay", "60", "--settle", "14",
        "drbd-mirror1:1", "drbd-mirror2:2"]
ENV = {"DRBD_RESOURCE": "mirror0", "DRBD_MINOR": "0", "DRBD_PEERS": "node2"}


class Cluster:
    """crm_mon and stonith_admin as the handler runs them: answers from captures, every
    call and every sleep recorded."""

    def __init__(self, *views, stonith_rc=0):
        self.views, self.stonith_rc = list(views), stonith_rc
        self.calls, self.slept = [], []

    def run(self, cmd, timeout=None):
        self.calls.append(cmd)
        if cmd[0] == "crm_mon":
            view = self.views.pop(0)
            if isinstance(view, Exception):
                raise view
            return subprocess.CompletedProcess(cmd, 0, view, "")
        return subprocess.CompletedProcess(cmd, self.stonith_rc, "", "")

    def sleep(self, seconds):
        self.slept.append(seconds)

    @property
    def fence(self):
        return [c for c in self.calls if c[0] == "stonith_admin"]


def handle(cluster, proc=HOME, me="node1", args=ARGS, env=ENV):
    return fencepeer.main(args, env=env, runner=cluster.run, sleep=cluster.sleep,
                          proc_path=str(proc), nodename=me)


def test_cluster_view_of_a_failover_guest_away_from_home():
    members, held = fencepeer.cluster_view(AWAY_MON, {"drbd-mirror1": 1, "drbd-mirror2": 2})
    assert members == {"node1": True, "node2": True}
    assert held == {"node2": ["drbd-mirror1", "drbd-mirror2"]}


def test_cluster_view_of_a_lost_peer():
    members, held = fencepeer.cluster_view(PEER_GONE_MON, {"drbd-mirror1": 1})
    assert members == {"node1": True, "node2": False}
    assert held == {"node1": ["drbd-mirror1"]}


def test_cluster_view_of_the_survivor_holding_both_mirrors():
    members, held = fencepeer.cluster_view(
        (DATA / "pcmk/crm_mon-node1-lost.xml").read_text(),
        {"drbd-mirror1": 1, "drbd-mirror2": 2})
    assert members == {"node1": False, "node2": True}
    assert held == {"node2": ["drbd-mirror1", "drbd-mirror2"]}


def test_priority_node_at_home_fences_at_once_without_asking_the_cluster():
    cluster = Cluster()
    assert handle(cluster) == 7
    assert cluster.fence == [["stonith_admin", "--tolerance", "5s", "--tag", "drbd",
                              "--fence", "node2"]]
    assert not cluster.slept and len(cluster.calls) == 1


def test_priority_node_yields_to_a_peer_holding_more_while_it_is_a_member():
    cluster = Cluster(AWAY_MON, AWAY_MON)
    assert handle(cluster, proc=AWAY) == 7
    assert cluster.slept == [14]  # asked again once the membership had time to settle
    assert cluster.fence[0][-4:] == ["--delay", "120", "--timeout", "240"]


def test_priority_node_does_not_yield_to_a_peer_that_is_gone():
    cluster = Cluster(AWAY_MON, PEER_GONE_MON)
    assert handle(cluster, proc=AWAY) == 7
    assert cluster.slept == [14]
    assert "--delay" not in cluster.fence[0]


def test_no_cluster_view_leaves_the_priority_rule():
    cluster = Cluster(subprocess.TimeoutExpired("crm_mon", 20))
    assert handle(cluster, proc=AWAY) == 7
    assert not cluster.slept and "--delay" not in cluster.fence[0]


def test_the_other_node_never_adds_delay():
    cluster = Cluster()
    assert handle(cluster, proc=AWAY, me="node2", env={**ENV, "DRBD_PEERS": "node1"}) == 7
    assert cluster.fence == [["stonith_admin", "--tolerance", "5s", "--tag", "drbd",
                              "--fence", "node1"]]


def test_a_side_without_current_data_does_not_fence():
    cluster = Cluster()
    assert handle(cluster, proc=STALE, env={**ENV, "DRBD_MINOR": "1"}) == 1
    assert cluster.calls == []


def test_a_failed_fencing_keeps_io_frozen():
    cluster = Cluster(stonith_rc=194)
    assert handle(cluster) == 1


@pytest.mark.parametrize("missing", ["DRBD_PEERS", "DRBD_MINOR"])
def test_without_drbds_environment_nothing_is_fenced(missing):
    cluster = Cluster()
    assert handle(cluster, env={k: v for k, v in ENV.items() if k != missing}) == 1
    assert cluster.calls == []


def test_the_installed_handler_is_this_module_with_the_clusters_facts(cfg, tmp_path):
    res = cfg["drbd"]["resources"]
    line = drbd.resource(cfg, res["mirror0"]).split('fence-peer "')[1].split('"')[0]
    # example pillar: token 3000 ms, consensus 1.2 x token: twice that, rounded up
    assert line == (f"{drbd.FENCE_PEER} --priority {cfg['cluster']['priority_node']} "
                    f"--fence-delay {cfg['cluster']['fence_delay']} --settle 14 "
                    "drbd-mirror1:1 drbd-mirror2:2")
    script = tmp_path / "drbd-fence-peer"
    script.write_text(drbd.fence_peer_handler())
    script.chmod(0o755)
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "PRIMITIVE:MINOR" in out.stdout
    # the same arguments DRBD passes, through the real argument parser: nothing to fence
    # without DRBD's environment
    r = subprocess.run(line.replace(drbd.FENCE_PEER, str(script)).split(), env={},
                       capture_output=True, text=True)
    assert r.returncode == 1 and "DRBD_PEERS or DRBD_MINOR unset" in r.stderr
