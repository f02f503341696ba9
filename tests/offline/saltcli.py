"""Helpers of the offline tier: salt-call as a user runs it, pillar copies, the real tools.

Nothing here touches the machine outside temporary directories: corosync runs in a
private network namespace, drbdadm only prints what it would do (``-d``), and every
salt-call writes below a directory the test owns.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SALT_CALL = ".venv/bin/salt-call"  # relative: run from the repo root, as the README says
NODES = ("node1", "node2")
TIMEOUT = 120

DRBDADM = {"8.4": "/usr/lib/drbd/drbdadm-84", "9": "drbdadm"}
# drbdadm 9.x asks /proc/drbd or `modinfo drbd` which kernel module it drives and
# re-executes drbdadm-84 for an 8.4 one; drbd-utils' own tests pin it like this
DRBD_ENV = {"8.4": {}, "9": {"DRBD_DRIVER_VERSION_OVERRIDE": "9.0.0"}}


# -- salt-call -------------------------------------------------------------------------

def salt_call(*args, node="node1", config_dir="etc/salt", pillar_root=None, cachedir=None,
              env=None):
    """Run ``salt-call --local`` from the repo root; returns the CompletedProcess."""
    cmd = [SALT_CALL, "--local", f"--config-dir={config_dir}", f"--id={node}"]
    if pillar_root is not None:
        cmd.append(f"--pillar-root={pillar_root}")
    if cachedir is not None:
        cmd.append(f"--cachedir={cachedir}")
    cmd += [str(a) for a in args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
                          env=None if env is None else {**os.environ, **env})


def local(proc):
    """The ``local`` answer of a ``--out=json`` salt-call."""
    assert proc.stdout.strip(), f"no output; stderr:\n{proc.stderr}"
    return json.loads(proc.stdout)["local"]


def has_traceback(proc):
    return "Traceback (most recent call last)" in proc.stdout + proc.stderr


def write_config(config_dir, cachedir, **extra):
    """A config dir for salt-call: etc/salt/minion with its paths made absolute, plus extra."""
    opts = yaml.safe_load((ROOT / "etc/salt/minion").read_text())
    for key in ("file_roots", "pillar_roots"):
        opts[key] = {env: [str(ROOT / p) for p in paths] for env, paths in opts[key].items()}
    opts["module_dirs"] = [str(ROOT / p) for p in opts.get("module_dirs", [])]
    opts["cachedir"] = str(cachedir)
    opts.update({k: str(v) if isinstance(v, pathlib.Path) else v for k, v in extra.items()})
    config_dir = pathlib.Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "minion").write_text(yaml.safe_dump(opts))
    return config_dir


# -- pillar copies ----------------------------------------------------------------------

def example_pillar():
    """The example pillar as salt merges it: every pillar/trash/*.sls in one dict."""
    merged = {}
    for path in sorted((ROOT / "pillar/trash").glob("*.sls")):
        merged = _merge(merged, yaml.safe_load(path.read_text()) or {})
    return merged


def _merge(base, over):
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def pillar_dir(dest, mutate=None):
    """Copy pillar/ to ``dest``; with ``mutate``, change the merged ``trash`` dict first.

    The changed pillar goes into trash/cluster.sls and the other SLS files of the copy
    become empty, so the layout (top.sls and its SLS names) stays the same.
    """
    dest = pathlib.Path(dest)
    shutil.copytree(ROOT / "pillar", dest)
    if mutate is not None:
        data = example_pillar()
        mutate(data["trash"])
        for path in (dest / "trash").glob("*.sls"):
            path.write_text("# merged into cluster.sls by the test\n{}\n")
        (dest / "trash/cluster.sls").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


# -- rendered trees ---------------------------------------------------------------------

def walk(top):
    """Every non-directory entry below ``top`` as '/relative/path', and every directory."""
    files, dirs = set(), set()
    for dirpath, dirnames, filenames in os.walk(top):
        rel = "/" + os.path.relpath(dirpath, top) if dirpath != str(top) else ""
        dirs.update(f"{rel}/{d}" for d in dirnames)
        files.update(f"{rel}/{f}" for f in filenames)
    return files, dirs


def mode(path):
    return oct(os.lstat(path).st_mode & 0o7777)[2:].zfill(4)


# -- corosync ---------------------------------------------------------------------------

# corosync -t insists that one nodelist entry is a local address: give it exactly this
# node's link addresses in a private network namespace, whatever the host has
COROSYNC_CHECK = ('ip link set lo up; conf=$1; shift; '
                  'for a in "$@"; do ip addr add "$a" dev lo; done; exec corosync -t -c "$conf"')


def corosync_node_addresses(conf_text, node):
    """The ringN_addr values of ``node`` in a corosync.conf nodelist, in link order."""
    for block in re.findall(r"node\s*\{([^{}]*)\}", conf_text):
        if re.search(rf"^\s*name:\s*{re.escape(node)}\s*$", block, re.M):
            rings = re.findall(r"^\s*ring(\d+)_addr:\s*(\S+)\s*$", block, re.M)
            return [addr for _, addr in sorted(rings, key=lambda r: int(r[0]))]
    raise AssertionError(f"{node} is not in the nodelist")


def corosync_stage(conf_text, keyfile, workdir):
    """A copy of corosync.conf whose keyfile and log file are below ``workdir``."""
    workdir = pathlib.Path(workdir)
    text = conf_text.replace("keyfile: /etc/corosync/authkey", f"keyfile: {keyfile}")
    text = re.sub(r"(?m)^(\s*logfile:\s*)\S+$", rf"\g<1>{workdir}/corosync.log", text)
    path = workdir / "corosync.conf"
    path.write_text(text)
    return path


def corosync_t(conf_path, addresses):
    """``corosync -t -c conf`` in a private network namespace with ``addresses`` on lo."""
    cmd = ["unshare", "--net", "sh", "-ec", COROSYNC_CHECK, "sh", str(conf_path),
           *[f"{a}/32" for a in addresses]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)


# -- DRBD -------------------------------------------------------------------------------

def drbd_main(tree, workdir):
    """A drbd.conf in ``workdir`` that includes the rendered /etc/drbd.d of ``tree``."""
    path = pathlib.Path(workdir) / "drbd.conf"
    path.write_text(f'include "{tree}/etc/drbd.d/*.conf";\ninclude "{tree}/etc/drbd.d/*.res";\n')
    return path


def drbdadm(version, conf, *args, hostname=None, env=None):
    """drbdadm of ``version`` on ``conf``; with ``hostname``, inside ``unshare --uts``."""
    cmd = [DRBDADM[version], "-c", str(conf), *args]
    if hostname is not None:
        cmd = ["unshare", "--uts", "sh", "-ec", 'hostname "$1"; shift; exec "$@"', "sh",
               hostname, *cmd]
    full_env = {**os.environ, **DRBD_ENV[version], **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=full_env)


def drbd_sections(res_text):
    """{section name: body} of the top-level sections of one DRBD resource file."""
    body = res_text[res_text.index("{") + 1:res_text.rindex("}")]
    return {m.group(1): m.group(2)
            for m in re.finditer(r"^\s{4}(\w[\w-]*(?: \S+)?) \{\n(.*?)^\s{4}\}", body, re.M | re.S)}
