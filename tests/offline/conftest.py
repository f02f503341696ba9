"""Fixtures of the offline tier: renders made once per session and shared.

The CLI renders (``salt-call`` exactly as a user runs it) feed the CLI contract tests
and the real tools; where the CLI itself is not the subject, the trash module runs
in-process through ``salt.client.Caller`` with the options of etc/salt/minion.
"""

import pytest
import saltcli


@pytest.fixture(scope="session")
def cli_plans():
    """{node: trash.plan} of the example pillar, via salt-call."""
    plans = {}
    for node in saltcli.NODES:
        proc = saltcli.salt_call("trash.plan", "--out=json", node=node)
        assert proc.returncode == 0, proc.stderr
        plans[node] = saltcli.local(proc)
    return plans


@pytest.fixture(scope="session")
def cli_renders(tmp_path_factory):
    """{node: (CompletedProcess, outdir)} of ``trash.render`` into a fresh directory."""
    top = tmp_path_factory.mktemp("cli-render")
    renders = {}
    for node in saltcli.NODES:
        outdir = top / node
        renders[node] = (saltcli.salt_call("trash.render", outdir, "--out=json", node=node),
                         outdir)
    return renders


@pytest.fixture(scope="session")
def rendered(cli_renders):
    """{node: outdir} of the example pillar (DRBD 8.4, the default)."""
    for node, (proc, _) in cli_renders.items():
        assert proc.returncode == 0, f"{node}: {proc.stderr}"
    return {node: outdir for node, (_, outdir) in cli_renders.items()}


@pytest.fixture(scope="session")
def caller(tmp_path_factory):
    """caller(node, pillar_root=None) -> an in-process salt.client.Caller (cached)."""
    import salt.client
    import salt.config

    callers = {}

    def get(node, pillar_root=None):
        key = (node, str(pillar_root))
        if key not in callers:
            workdir = tmp_path_factory.mktemp(f"caller-{node}")
            extra = {"pillar_roots": {"base": [str(pillar_root)]}} if pillar_root else {}
            config_dir = saltcli.write_config(workdir / "config", workdir / "cache", **extra)
            opts = salt.config.minion_config(str(config_dir / "minion"))
            opts["id"] = node
            callers[key] = salt.client.Caller(mopts=opts)
        return callers[key]

    return get


@pytest.fixture(scope="session")
def pillar9(tmp_path_factory):
    """The example pillar for nodes that run DRBD 9."""
    def mutate(trash):
        trash["drbd"]["version"] = "9"
    return saltcli.pillar_dir(tmp_path_factory.mktemp("pillar9") / "pillar", mutate)


@pytest.fixture(scope="session")
def rendered9(caller, pillar9, tmp_path_factory):
    """{node: outdir} rendered in-process from the DRBD 9 pillar."""
    top = tmp_path_factory.mktemp("render9")
    for node in saltcli.NODES:
        caller(node, pillar9).cmd("trash.render", str(top / node))
    return {node: top / node for node in saltcli.NODES}


@pytest.fixture(scope="session")
def trees(rendered, rendered9):
    """{DRBD version: {node: outdir}}."""
    return {"8.4": rendered, "9": rendered9}
