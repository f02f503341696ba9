"""
The trash.net two-node HA cluster: configuration model, rendering and file management.

Every configuration file the states manage is computed here from the pillar
(merged over ``salt://trash/defaults.yaml`` and validated first); the
``trash`` states only translate this module's answers.

Minion options:

``trash_root`` (default ``/``)
    Directory under which managed files are written: ``/`` on a real node; a
    scratch directory for image builds and tests.
"""

import copy
import difflib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as _et

import salt.utils.files
import salt.utils.yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

# A long-running minion keeps imported packages in sys.modules: drop trashlib so
# that a sync of _utils takes effect together with this module.
for _name in [n for n in sys.modules if n == "trashlib" or n.startswith("trashlib.")]:
    del sys.modules[_name]

try:
    from trashlib import cib as _cib
    from trashlib import corosync as _corosync
    from trashlib import drbd as _drbd
    from trashlib import durable as _durable
    from trashlib import files as _files
    from trashlib import model as _model
    from trashlib import network as _network
    from trashlib import pcmk as _pcmk
    from trashlib import raid as _raid
    from trashlib import status as _status

    HAS_LIB = True
except ImportError:  # pragma: no cover - reported by __virtual__
    HAS_LIB = False

log = logging.getLogger(__name__)

__virtualname__ = "trash"

DEFAULTS_URL = "salt://trash/defaults.yaml"
# DRBD 8.4 is driven by the 8.4 userland that drbd-utils ships beside its 9.x drbdadm
DRBDADM = {"8.4": "/usr/lib/drbd/drbdadm-84", "9": "drbdadm"}
# drbdadm 9.x re-executes drbdadm-84 when /proc/drbd or `modinfo drbd` reports an 8.4
# module (the stock Debian kernel ships one): pin the parser to the configured version
# (drbd-utils' own tests do the same); drbdadm-84 ignores it
DRBD_VERSION_OVERRIDE = {"8.4": "8.4.0", "9": "9.0.0"}


def __virtual__():
    if not HAS_LIB:
        return False, "trash: the trashlib package from _utils/ is not importable (sync utils)"
    return __virtualname__


def _defaults(cached=False):
    """The formula's defaults. ``cached``: from the minion's file cache, where the last job
    that read them left them, never through the file client: the beacons run in the
    salt-minion daemon's own event loop, which also carries the file client's requests to
    a master (Salt 3008 with several masters), so a fetch there blocks the whole minion
    until the file client times out (180 s: no job runs, no return reaches a master)."""
    if "trash.defaults" not in __context__:
        if cached:
            path = os.path.join(__opts__["cachedir"], "files", "base",
                                DEFAULTS_URL[len("salt://"):])
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                raise CommandExecutionError(
                    f"trash: {DEFAULTS_URL} is not in this minion's file cache yet; any job "
                    "of the formula caches it (salt-call trash.validate)") from None
        else:
            text = __salt__["cp.get_file_str"](DEFAULTS_URL)
        if not text:
            raise CommandExecutionError(f"trash: cannot read {DEFAULTS_URL} from the file server")
        __context__["trash.defaults"] = salt.utils.yaml.safe_load(text)
    return __context__["trash.defaults"]


class _InvalidPillar(CommandExecutionError):
    """The pillar is invalid; ``problems`` lists (key path, message) pairs."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(_model.PillarError(self.problems).text())


def _load(from_cache=False):
    """The validated configuration (with secrets); cached per pillar content.
    ``from_cache``: the defaults from the minion's file cache (see _defaults)."""
    if __pillar__.get("_errors"):
        # an SLS that failed to render leaves a partial pillar: say so, not "missing"
        raise _InvalidPillar([("pillar", f"did not render: {e}") for e in __pillar__["_errors"]])
    pillar = {"trash": __pillar__.get("trash")}
    key = hashlib.sha256(json.dumps(pillar, sort_keys=True, default=str).encode()).hexdigest()
    cached = __context__.get("trash.config")
    if cached and cached[0] == key:
        return cached[1]
    try:
        cfg = _model.load(pillar, _defaults(from_cache))
    except _model.PillarError as exc:
        raise _InvalidPillar(exc.problems) from None
    __context__["trash.config"] = (key, cfg)
    return cfg


def _node(cfg, node=None):
    node = node or __opts__["id"]
    if node not in cfg["nodes"]:
        raise CommandExecutionError(
            f"trash: {node!r} is not a cluster node (trash:nodes has {', '.join(cfg['nodes'])})"
        )
    return node


def _secrets(cfg):
    values = [cfg["cluster"]["authkey"], cfg["drbd"]["shared_secret"]]
    values += [n["bmc"]["password"] for n in cfg["nodes"].values()]
    return [v for v in values if v]


def _redact(text, secrets):
    for value in secrets:
        text = text.replace(value, _model.SECRET)
    return text


def validate():
    """
    Validate the trash pillar merged over the defaults and list every problem.

    Returns ``{"valid": True}`` or ``{"valid": False, "problems": ["key: message", ...]}``.

    CLI Example:

    .. code-block:: bash

        salt-call trash.validate
    """
    try:
        _load()
    except _InvalidPillar as exc:
        return {"valid": False, "problems": [f"{p}: {m}" for p, m in exc.problems]}
    return {"valid": True}


def config(cached=False):
    """
    The normalised configuration of the whole cluster, secrets replaced by ``<secret>``.
    ``cached=True`` (the beacons) reads the formula's defaults from the minion's file
    cache instead of the file server.

    CLI Example:

    .. code-block:: bash

        salt-call trash.config --out=yaml
    """
    return _model.redact(_load(cached))


def plan(node=None, concern=None):
    """
    The files the states manage on this node (or ``node``): path, concern, mode, check.

    CLI Example:

    .. code-block:: bash

        salt-call trash.plan concern=drbd
    """
    cfg = _load()
    return [
        {"path": f.path, "concern": f.concern, "mode": f.mode, "check": f.check}
        for f in _specs(cfg, _node(cfg, node), concern)
    ]


def _specs(cfg, node, concern=None):
    if concern is not None and concern not in _files.CONCERNS:
        raise SaltInvocationError(
            f"trash: unknown concern {concern!r} (known: {', '.join(_files.CONCERNS)})"
        )
    return [f for f in _files.plan(cfg, node) if concern in (None, f.concern)]


def render(outdir, node=None, concern=None):
    """
    Write every file the states manage on this node under ``outdir`` at its target path.

    Nothing else is touched; an invalid pillar writes nothing. Returns the paths written.

    CLI Example:

    .. code-block:: bash

        salt-call --local --config-dir=etc/salt --id=node1 trash.render /tmp/node1
    """
    cfg = _load()
    specs = _specs(cfg, _node(cfg, node), concern)
    outdir = os.path.abspath(outdir)
    written = []
    for spec in specs:
        target = outdir + spec.path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _write_atomic(target, spec.content, int(spec.mode, 8))
        written.append(target)
    return {"outdir": outdir, "node": node or __opts__["id"], "files": written}


def _write_atomic(target, content, mode, durable=False):
    """Replace ``target`` by ``content`` atomically; ``durable``: also on disk before this
    returns, so that a power cut (a fenced node is powered off) leaves the old file or the
    new one, never an empty or lost file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".trash-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        _durable.fsync_dir(os.path.dirname(target))


def _read(path):
    try:
        with salt.utils.files.fopen(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _diff(path, old, new, spec, secrets):
    if spec.secret:
        return "secret content changed (not shown)" if old is not None else "secret file created"
    try:
        old_text = "" if old is None else old.decode()
        new_text = new.decode()
    except UnicodeDecodeError:
        return "binary content changed"
    lines = difflib.unified_diff(old_text.splitlines(True), new_text.splitlines(True),
                                 path, path)
    return _redact("".join(lines), secrets)


# corosync -t insists that a nodelist entry is a local address: check in a private
# network namespace that has exactly this node's link addresses, whatever the host has.
_COROSYNC_CHECK = ('ip link set lo up; conf=$1; shift; '
                   'for a in "$@"; do ip addr add "$a" dev lo; done; exec corosync -t -c "$conf"')


def _check(cfg, node, check, stage):
    """Run the real tool's offline check over the staged files of one check.

    Returns None when the tool accepts them, else the tool's own message.
    """
    env = None
    if check == "corosync":
        conf = stage + "/etc/corosync/corosync.conf"
        with salt.utils.files.fopen(conf) as handle:
            text = handle.read()
        text = text.replace(f"keyfile: {_corosync.KEYFILE}", f"keyfile: {stage}{_corosync.KEYFILE}")
        # corosync -t opens the log file: keep it in the stage, not in this machine's /var/log
        text = re.sub(r"(?m)^(\s*logfile:\s*)(/\S+)$", lambda m: m.group(1) + stage + m.group(2),
                      text)
        for logfile in re.findall(r"(?m)^\s*logfile:\s*(\S+)$", text):
            os.makedirs(os.path.dirname(logfile), exist_ok=True)
        with salt.utils.files.fopen(conf, "w") as handle:
            handle.write(text)
        addrs = [f"{cfg['nodes'][node]['ip'][link]}/32" for link in cfg["cluster"]["links"]]
        cmd = ["unshare", "--net", "sh", "-ec", _COROSYNC_CHECK, "sh", conf, *addrs]
        tool = "corosync"
    elif check == "cib":
        path = stage + "/etc/trash/cib.xml"
        with salt.utils.files.fopen(path) as handle:
            text = _cib.with_status(handle.read(), cfg["cluster"]["nodes"])
        with salt.utils.files.fopen(path, "w") as handle:
            handle.write(text)
        cmd = ["crm_verify", "--xml-file", path]
    elif check == "drbd":
        main = os.path.join(stage, "etc/drbd.conf")
        with salt.utils.files.fopen(main, "w") as handle:
            handle.write(f'include "{stage}/etc/drbd.d/*.conf";\n'
                         f'include "{stage}/etc/drbd.d/*.res";\n')
        version = str(cfg["drbd"]["version"])
        cmd = [DRBDADM[version], "-c", main, "dump", "all"]
        env = {"DRBD_DRIVER_VERSION_OVERRIDE": DRBD_VERSION_OVERRIDE[version]}
    elif check == "nftables":
        # -c parses and evaluates against the kernel without committing; in a private
        # network namespace it cannot see (or touch) this machine's ruleset
        cmd = ["unshare", "--net", "nft", "-c", "-f", stage + "/etc/nftables.conf"]
        tool = "nft"
    elif check == "chrony":
        main = os.path.join(stage, "etc/chrony/chrony.conf")
        with salt.utils.files.fopen(main, "w") as handle:
            handle.write(f"confdir {stage}/etc/chrony/conf.d\n")
        # -p parses the configuration, prints it and exits; nothing is started
        cmd = ["chronyd", "-p", "-f", main]
    else:
        raise CommandExecutionError(f"trash: unknown check {check!r}")
    if check not in ("corosync", "nftables"):
        tool = cmd[0]
    if not shutil.which(tool):
        return f"cannot check: {tool} is not installed"
    res = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True,
                                  output_loglevel="quiet", env=env)
    if res["retcode"] != 0:
        return _redact((res["stderr"] or res["stdout"]).strip(), _secrets(cfg))
    return None


def check(node=None, concern=None):
    """
    Check this node's rendered files with the real tools (corosync -t, crm_verify,
    drbdadm of the configured DRBD version) without installing them.

    CLI Example:

    .. code-block:: bash

        salt-call trash.check
    """
    cfg = _load()
    node = _node(cfg, node)
    return _run_checks(cfg, node, _specs(cfg, node, concern))


def _run_checks(cfg, node, specs):
    checks = sorted({s.check for s in specs if s.check})
    problems = {}
    if not checks:
        return problems
    stage = tempfile.mkdtemp(prefix="trash-check-")
    try:
        for spec in specs:
            target = stage + spec.path
            os.makedirs(os.path.dirname(target), exist_ok=True)
            _write_atomic(target, spec.content, 0o600)
        for name in checks:
            message = _check(cfg, node, name, stage)
            if message:
                problems[name] = message.replace(stage, "")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return problems


def manage_files(concern, test=False, root=None):
    """
    Bring this node's files of ``concern`` to their rendered content, owner root, and mode.

    The real tools check the new files first; nothing is written when a check fails or
    in test mode. Returns ``{"result", "changes", "comment"}`` for the state.

    CLI Example:

    .. code-block:: bash

        salt-call trash.manage_files drbd test=True
    """
    cfg = _load()
    node = _node(cfg)
    specs = _specs(cfg, node, concern)
    root = root or __opts__.get("trash_root", "/")
    secrets = _secrets(cfg)
    changes, pending, waiting = {}, [], []
    for spec in specs:
        target = os.path.join(root, spec.path.lstrip("/"))
        if root == "/" and spec.needs_mount and not os.path.ismount(spec.needs_mount):
            waiting.append(f"{spec.path} (waits for {spec.needs_mount} to be mounted)")
            continue
        old = _read(target)
        item = {}
        if old != spec.content:
            item["diff"] = _diff(spec.path, old, spec.content, spec, secrets) if old is not None \
                else ("new secret file" if spec.secret else "new file")
        if old is not None:
            stat = os.stat(target)
            mode = oct(stat.st_mode & 0o7777)[2:].zfill(4)
            if mode != spec.mode:
                item["mode"] = {"old": mode, "new": spec.mode}
            if stat.st_uid != 0:
                item["owner"] = {"old": stat.st_uid, "new": 0}
        if item:
            changes[spec.path] = item
            pending.append((spec, target))
    stale = _stale(concern, specs, root)
    for path in stale:
        changes[path] = {"diff": "removed: no longer rendered"}
    problems = _run_checks(cfg, node, specs) if pending else {}
    if problems:
        text = "; ".join(f"{name} check failed: {msg}" for name, msg in sorted(problems.items()))
        return {"result": False, "changes": {}, "comment": f"nothing written: {text}"}
    notes = [f"not yet written: {', '.join(waiting)}"] if waiting else []
    if concern == "network" and (pending or stale):
        effect = _network.describe(_network_changes(specs, root))
        if effect:
            notes.append(f"{'would then' if test else 'to apply'}: {effect}")
    if not pending and not stale:
        return {"result": True, "changes": {},
                "comment": "; ".join([f"{len(specs) - len(waiting)} {concern} files are in the "
                                      "rendered state"] + notes)}
    if test:
        removing = f" and remove {len(stale)}" if stale else ""
        return {"result": None, "changes": changes,
                "comment": "; ".join([f"would update {len(pending)} {concern} files{removing}"]
                                     + notes)}
    for spec, target in pending:
        _durable.makedirs(os.path.dirname(target))
        # durable: a node fenced (powered off) right after an apply keeps its files
        _write_atomic(target, spec.content, int(spec.mode, 8), durable=True)
        os.chown(target, 0, 0)
    for target in stale.values():
        os.unlink(target)
    removed = f" and removed {len(stale)}" if stale else ""
    return {"result": True, "changes": changes,
            "comment": "; ".join([f"updated {len(pending)} {concern} files{removed}"] + notes)}


def _stale(concern, specs, root):
    """{path: target} of files ``concern`` owns by name on disk that its plan lacks."""
    if concern not in _files.OWNED:
        return {}
    directory, owned = _files.OWNED[concern]
    where = os.path.join(root, directory.lstrip("/"))
    planned = {s.path for s in specs}
    names = sorted(os.listdir(where)) if os.path.isdir(where) else []
    return {f"{directory}/{n}": os.path.join(where, n) for n in names
            if owned(f"{directory}/{n}") and f"{directory}/{n}" not in planned
            and os.path.isfile(os.path.join(where, n))}


def _network_changes(specs, root):
    new = {s.path: s.content for s in specs if s.concern == "network"}
    old = {}
    for path in set(new) | set(_stale("network", specs, root)):
        content = _read(os.path.join(root, path.lstrip("/")))
        if content is not None:
            old[path] = content
    return _network.changes(old, new)


def network_plan(node=None, root=None):
    """
    Which network links a change of the networkd files touches: the links
    ``networkctl reload`` would create, those ``networkctl reconfigure`` would
    re-apply (only those), those whose changed .netdev needs them recreated, and
    those no longer configured. Compares the files on disk (under ``root``, default
    the minion option ``trash_root``) with the rendered ones; changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-call trash.network_plan
    """
    cfg = _load()
    specs = _specs(cfg, _node(cfg, node), "network")
    change = _network_changes(specs, root or __opts__.get("trash_root", "/"))
    return dict(change, summary=_network.describe(change) or "no link is touched")


def ifupdown_release(test=False):
    """
    Take the links networkd configures away from ifupdown: their ``auto``/``allow-*``
    entries and ``iface`` stanzas leave /etc/network/interfaces (under ``trash_root``);
    everything else stays, and the first version is kept as
    /etc/network/interfaces.trash-orig. ifupdown's running configuration is left alone
    (``ifdown`` would take the links down): the change counts from the next boot, and
    until then networkd configures the links over what ifupdown set.

    CLI Example:

    .. code-block:: bash

        salt-call trash.ifupdown_release test=True
    """
    cfg = _load()
    node = _node(cfg)
    path = os.path.join(__opts__.get("trash_root", "/"), _network.IFUPDOWN.lstrip("/"))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {"result": True, "changes": {}, "comment": f"no {_network.IFUPDOWN}: no ifupdown"}
    new, released = _network.release_ifupdown(text, _network.managed_links(cfg, node))
    if not released:
        return {"result": True, "changes": {},
                "comment": "ifupdown configures none of the links networkd does"}
    diff = "".join(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                        _network.IFUPDOWN, _network.IFUPDOWN))
    changes = {_network.IFUPDOWN: {"released": released, "diff": diff}}
    if test:
        return {"result": None, "changes": changes,
                "comment": f"would take {', '.join(released)} away from ifupdown"}
    backup = path + ".trash-orig"
    if not os.path.exists(backup):
        _write_atomic(backup, text.encode(), 0o644, durable=True)
    _write_atomic(path, new.encode(), os.stat(path).st_mode & 0o7777, durable=True)
    return {"result": True, "changes": changes,
            "comment": f"ifupdown no longer configures {', '.join(released)} (from the next "
                       f"boot; the first version is {_network.IFUPDOWN}.trash-orig)"}


def _systemctl(root):
    return ["systemctl", f"--root={root}"] if root else ["systemctl"]


def _unit_file_state(unit, root=None):
    """``systemctl is-enabled`` (it reads the unit files on disk): enabled, disabled,
    masked, static, …, or not-found."""
    res = __salt__["cmd.run_all"]([*_systemctl(root), "is-enabled", unit], python_shell=False,
                                  ignore_retcode=True, output_loglevel="quiet")
    out = res["stdout"].strip().splitlines()
    return out[-1].strip() if out else "not-found"


def units_at_boot(enable=(), disable=(), test=False, root=None):
    """
    Enable the systemd units ``enable`` and disable the units ``disable`` at boot,
    those that are not so yet; what is running now is left alone.

    One ``systemctl --no-reload`` call each, without synchronising SysV init scripts
    (``SYSTEMCTL_SKIP_SYSV``): systemd ignores the init script of a unit that has a
    unit file, and each manager reload that ``systemctl enable`` and update-rc.d would
    make took 10-25 s on a loaded node (three per unit with an init script). The
    ``trash-systemd-reloaded`` state reloads once after any change, so that
    ``systemctl status`` shows the new boot state too. A masked or missing unit is
    not enabled: the comment says so (in test mode a missing one would be, as an
    earlier state may write its unit file). ``root``: the unit files of another root
    (``systemctl --root``) instead.

    CLI Example:

    .. code-block:: bash

        salt-call trash.units_at_boot enable='[corosync, pacemaker]' test=True
    """
    changes, problems, todo = {}, [], {"enable": [], "disable": []}
    for verb, units, done in (("enable", enable, {"enabled"}),
                              ("disable", disable, {"disabled", "masked", "static",
                                                    "not-found"})):
        for unit in units:
            state = _unit_file_state(unit, root)
            if state in done:
                continue
            # a dry run on a fresh node: the unit file may come from an earlier state
            # (trash-serial-link's), as Salt's service.running allows in test mode
            if verb == "enable" and (state in ("masked", "bad")
                                     or state == "not-found" and not test):
                problems.append(f"{unit}: no unit file, not enabled" if state == "not-found"
                                else f"{unit} is {state}: not enabled"
                                + (f" (systemctl unmask {unit}, if it should run)"
                                   if state == "masked" else ""))
                continue
            todo[verb].append(unit)
            changes[unit] = {"old": state, "new": f"{verb}d"}
    if problems:
        return {"result": False, "changes": {}, "comment": "\n".join(problems)}
    wanted = [f"{u} enabled" for u in enable] + [f"{u} disabled" for u in disable]
    if not changes:
        return {"result": True, "changes": {},
                "comment": f"already at boot: {', '.join(wanted)}"}
    if test:
        return {"result": None, "changes": changes,
                "comment": "would " + "; ".join(f"{verb} {', '.join(units)}"
                                                for verb, units in todo.items() if units)
                           + " at boot"}
    made = {}
    for verb, units in todo.items():
        if units:
            res = __salt__["cmd.run_all"]([*_systemctl(root), "--no-reload", verb, *units],
                                          python_shell=False, ignore_retcode=True,
                                          env={"SYSTEMCTL_SKIP_SYSV": "1"})
            if res["retcode"] != 0:
                return {"result": False, "changes": made,
                        "comment": f"systemctl {verb} {' '.join(units)}: "
                                   f"{(res['stderr'] or res['stdout']).strip()}"}
            made.update((u, changes[u]) for u in units)
    return {"result": True, "changes": changes,
            "comment": "at boot: " + ", ".join(wanted)}


# Sections of the Pacemaker configuration this formula owns. Everything else
# (node entries, the properties Pacemaker adds itself such as dc-version) stays.
_CIB_SECTIONS = ("resources", "constraints", "rsc_defaults")
_CIB_PROPERTY_SET = "cib-bootstrap-options"
# Of the constraints, only the formula's own (trashlib.cib's ids). Others stay: DRBD's
# fence-peer handler guards the newest copy of a mirror with drbd-fence-by-handler-*
# (removing it would let Pacemaker promote an outdated copy), and an administrator's
# crm_resource --move/--ban leaves cli-prefer-*/cli-ban-* until --clear.
_OWNED_CONSTRAINT_PREFIXES = ("order-", "colocation-", "location-")


def _foreign_constraints(cons):
    """The children of a <constraints> element (or None) that are not the formula's."""
    return [c for c in (cons if cons is not None else ())
            if not c.get("id", "").startswith(_OWNED_CONSTRAINT_PREFIXES)]


def _without_foreign(cons):
    """A copy of a <constraints> element with the formula's constraints only."""
    kept = copy.deepcopy(cons)
    for child in _foreign_constraints(kept):
        kept.remove(child)
    return kept


def _constraint_summary(elem):
    """A constraint as status reports it: its attributes, and for a rule-based location
    (DRBD's fence constraint) the node its expression names."""
    out = dict(elem.attrib, kind=elem.tag)
    expr = elem.find("rule/expression")
    if expr is not None:
        out["expression"] = dict(expr.attrib)
    return out


def _cib_env(cib_file):
    cib_file = cib_file or __opts__.get("trash_cib_file")
    return ({"CIB_file": cib_file} if cib_file else None), cib_file


def _owned(conf):
    """Canonical text of each owned part of a <configuration> element."""
    out = {}
    for name in _CIB_SECTIONS:
        elem = conf.find(name)
        if elem is not None and name == "constraints":
            elem = _without_foreign(elem)
        out[name] = "" if elem is None else _et.canonicalize(_et.tostring(elem), strip_text=True)
    props = conf.find(f"crm_config/cluster_property_set[@id='{_CIB_PROPERTY_SET}']")
    out["properties"] = {nv.get("name"): nv.get("value")
                         for nv in (props.iter("nvpair") if props is not None else ())}
    return out


def _merged_configuration(live_conf, desired_conf):
    """The live configuration with the owned parts taken from the desired one."""
    conf = copy.deepcopy(live_conf)
    for name in _CIB_SECTIONS:
        old = conf.find(name)
        new = copy.deepcopy(desired_conf.find(name))
        if name == "constraints":
            new.extend(copy.deepcopy(c) for c in _foreign_constraints(old))
        if old is not None:
            conf.insert(list(conf).index(old), new)
            conf.remove(old)
        else:
            conf.append(new)
    crm = conf.find("crm_config")
    if crm is None:
        crm = _et.SubElement(conf, "crm_config")
    props = crm.find(f"cluster_property_set[@id='{_CIB_PROPERTY_SET}']")
    if props is None:
        props = _et.SubElement(crm, "cluster_property_set", id=_CIB_PROPERTY_SET)
    wanted = desired_conf.find(f"crm_config/cluster_property_set[@id='{_CIB_PROPERTY_SET}']")
    for nv in wanted.iter("nvpair"):
        have = next((e for e in props.iter("nvpair") if e.get("name") == nv.get("name")), None)
        if have is None:
            props.append(copy.deepcopy(nv))
        else:
            have.set("value", nv.get("value"))
    return conf


def _tool(cmd, env=None, what=None):
    res = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True,
                                  output_loglevel="quiet", env=env)
    if res["retcode"] != 0:
        raise CommandExecutionError(
            f"{what or cmd[0]} failed: {(res['stderr'] or res['stdout']).strip()}")
    return res["stdout"]


def _has_fencing(conf):
    return conf is not None and conf.find("resources//primitive[@class='stonith']") is not None


def _wait_for_members(cfg, wait):
    """Wait until Pacemaker runs on every node and the CIB can be read; its text.

    The first configuration brings the fence devices: pushed while a node's Pacemaker
    is not up yet, the cluster would fence that node at once (startup fencing)."""
    deadline, said, missing = time.monotonic() + wait, 0.0, cfg["cluster"]["nodes"]
    while True:
        res = __salt__["cmd.run_all"](["crm_mon", "--one-shot", "--output-as", "xml"],
                                      python_shell=False, ignore_retcode=True,
                                      output_loglevel="quiet")
        if res["retcode"] == 0:
            try:
                online = _pcmk.parse_status(res["stdout"]).online
            except _pcmk.ParseError:
                online = frozenset()
            missing = [n for n in cfg["cluster"]["nodes"] if n not in online]
            if not missing:
                return
        now = time.monotonic()
        if now >= deadline:
            raise CommandExecutionError(
                f"Pacemaker is not online on {', '.join(missing)} after {wait} s. The first "
                "configuration brings the fence devices, and a node whose Pacemaker is not "
                "up then would be fenced at once: start Pacemaker on every node (apply the "
                "state there), then apply again; nothing was changed")
        if now - said >= 30:
            log.info("trash: waiting for Pacemaker on %s", ", ".join(missing))
            said = now
        time.sleep(3)


def cib_apply(test=False, cib_file=None, wait=0):
    """
    Bring the Pacemaker configuration to the rendered CIB: resources, constraints,
    resource defaults and the cluster properties this formula sets.

    The new configuration is checked by ``crm_verify`` against the live status first;
    the transition it would cause (resources started, stopped, moved, promoted,
    nodes fenced) is predicted by ``crm_simulate`` and reported, in test mode too.
    ``cib_file`` (or the minion option ``trash_cib_file``) works on a saved CIB instead
    of the running cluster, e.g. the output of ``cibadmin --query`` from production.

    CLI Example:

    .. code-block:: bash

        salt-call trash.cib_apply test=True
        salt-call trash.cib_apply test=True cib_file=/tmp/production-cib.xml

    ``wait``: while the live configuration has no fence device yet, wait up to that many
    seconds for Pacemaker to be online on every node before pushing (a node that is not
    would be fenced on sight); 0 refuses at once instead.
    """
    cfg = _load()
    env, cib_file = _cib_env(cib_file)

    def query():
        try:
            return _et.fromstring(_tool(["cibadmin", "--query"], env, "cibadmin --query"))
        except CommandExecutionError as exc:
            raise CommandExecutionError(
                f"cannot read the Pacemaker configuration; is the cluster running on this "
                f"node? ({exc})") from None

    if cib_file:
        live = query()
    elif test:
        try:
            live = query()
        except CommandExecutionError:
            # a dry run on a node whose Pacemaker the same apply would start
            return {"result": None,
                    "changes": {"pacemaker": {"old": None, "new": "/etc/trash/cib.xml"}},
                    "comment": "Pacemaker is not running here yet: the rendered configuration "
                               "is pushed once it runs on every node"}
    else:
        try:
            live = query()
        except CommandExecutionError:
            if not wait:
                raise
            live = None  # Pacemaker is starting: its CIB comes with the members
        if live is None or not _has_fencing(live.find("configuration")):
            _wait_for_members(cfg, wait)
            live = query()
    desired = _et.fromstring(_cib.render(cfg).split("\n", 1)[1])
    live_conf, desired_conf = live.find("configuration"), desired.find("configuration")
    merged = _merged_configuration(live_conf, desired_conf)
    before, after = _owned(live_conf), _owned(merged)
    changed = sorted(k for k in after if before[k] != after[k])
    if not changed:
        return {"result": True, "changes": {},
                "comment": "the Pacemaker configuration is in the rendered state"}
    candidate = copy.deepcopy(live)
    candidate.remove(candidate.find("configuration"))
    candidate.insert(0, merged)
    stage = tempfile.mkdtemp(prefix="trash-cib-")
    try:
        path = os.path.join(stage, "cib.xml")
        _write_atomic(path, _et.tostring(candidate), 0o600)
        try:
            _tool(["crm_verify", "--xml-file", path], what="crm_verify")
            sim = _pcmk.parse_simulation(_tool(
                ["crm_simulate", "--run", "--xml-file", path, "--output-as", "xml"],
                what="crm_simulate"))
        except CommandExecutionError as exc:
            return {"result": False, "changes": {}, "comment": f"nothing changed: {exc}"}
        transition = [f.describe() for f in sim.fencing] + [c.describe() for c in sim.changes]
        changes = {"pacemaker": {"sections": changed,
                                 "transition": transition or ["nothing starts, stops or moves"]}}
        if test:
            return {"result": None, "changes": changes,
                    "comment": f"would replace {', '.join(changed)} in the Pacemaker configuration"}
        conf_path = os.path.join(stage, "configuration.xml")
        _write_atomic(conf_path, _et.tostring(merged), 0o600)
        _tool(["cibadmin", "--replace", "--scope", "configuration", "--xml-file", conf_path],
              env, "cibadmin --replace")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {"result": True, "changes": changes,
            "comment": f"replaced {', '.join(changed)} in the Pacemaker configuration"}


def corosync_reload(test=False):
    """
    Make the running corosync take the rendered corosync.conf.

    Compares the running configuration (``corosync-cmapctl``) with the rendered one;
    on a difference, ``corosync-cfgtool -R`` reloads the file on every node. What
    corosync cannot change at runtime (the cluster name, the transport, ...) is
    named afterwards: it needs corosync restarted, one node at a time. One case is
    restarted here instead: a corosync that runs another cluster's configuration
    (another cluster name: Debian starts the package's example at once) while neither
    Pacemaker nor DLM runs on this node, so nothing uses it and nothing gets fenced.
    Nothing happens when corosync is not running: it reads the file when it starts.

    CLI Example:

    .. code-block:: bash

        salt-call trash.corosync_reload test=True
    """
    cfg = _load()
    probe = __salt__["cmd.run_all"](["corosync-cfgtool", "-s"], python_shell=False,
                                    ignore_retcode=True, output_loglevel="quiet")
    if probe["retcode"] != 0:
        return {"result": True, "changes": {},
                "comment": "corosync is not running here: it reads corosync.conf when it starts"}
    expected = _corosync.expected_cmap(cfg)

    def differences():
        running = _corosync.parse_cmap(_tool(["corosync-cmapctl"], what="corosync-cmapctl"))
        return {key: {"old": running.get(key), "new": value}
                for key, value in sorted(expected.items()) if running.get(key) != value}

    before = differences()
    if not before:
        return {"result": True, "changes": {},
                "comment": "the running corosync has the rendered configuration"}
    foreign = before.get("totem.cluster_name")
    what = foreign and f"another cluster's configuration (cluster_name {foreign['old']!r})"
    # pidof answers 1 when no such process runs; anything else counts as in use
    users = [(user, unit) for user, process, unit in
             (("Pacemaker", "pacemakerd", "pacemaker"), ("DLM", "dlm_controld", "dlm"))
             if _quiet(["pidof", process])["retcode"] != 1] if foreign else []
    if foreign and not users:
        if test:
            return {"result": None, "changes": {"corosync": before},
                    "comment": f"would restart corosync: it runs {what} and nothing uses it "
                               "(no Pacemaker, no DLM)"}
        why = f"{what} and nothing used it (no Pacemaker, no DLM)"
        try:
            if not __salt__["service.restart"]("corosync"):
                raise CommandExecutionError("service.restart answered False")
        except CommandExecutionError as exc:
            raise CommandExecutionError(
                f"restarting corosync (it ran {why}) failed: {exc}") from exc
        # systemd returns once corosync notified it is up; other init systems may not
        deadline = time.monotonic() + 120
        while _quiet(["corosync-cfgtool", "-s"])["retcode"] != 0:
            if time.monotonic() > deadline:
                return {"result": False, "changes": {},
                        "comment": f"restarted corosync (it ran {why}), but it has not "
                                   "answered for 120 s: see journalctl -u corosync"}
            time.sleep(1)
        after = differences()
        changes = {"corosync": {k: v for k, v in before.items() if k not in after}}
        if after:
            return {"result": False, "changes": changes if changes["corosync"] else {},
                    "comment": f"restarted corosync (it ran {why}), but it still differs "
                               f"from the rendered corosync.conf in {', '.join(after)}"}
        return {"result": True, "changes": changes,
                "comment": f"restarted corosync: it ran {why}"}
    # a restart under Pacemaker or DLM gets the node fenced: say what to stop, if anything
    kept = "" if not users else (
        f"; not restarted: it runs {what}, in use by {' and '.join(u for u, _ in users)} here. "
        "If that cluster is not in service (Debian starts its example with the packages): "
        f"systemctl stop {' '.join(unit for _, unit in users)}, and apply again")
    if test:
        return {"result": None, "changes": {"corosync": before},
                "comment": f"would reload corosync.conf on every node (corosync-cfgtool -R){kept}"}
    try:
        _tool(["corosync-cfgtool", "-R"], what="corosync-cfgtool -R")
    except CommandExecutionError as exc:
        raise CommandExecutionError(f"{exc}{kept}") from exc
    stuck = differences()
    changes = {"corosync": {k: v for k, v in before.items() if k not in stuck}}
    if stuck:
        return {"result": False, "changes": changes if changes["corosync"] else {},
                "comment": "reloaded corosync.conf, but corosync cannot change "
                           f"{', '.join(stuck)} at runtime: restart corosync, one node at a "
                           f"time, to apply them{kept}"}
    return {"result": True, "changes": changes,
            "comment": "reloaded corosync.conf on every node (corosync-cfgtool -R)"}


def _quiet(cmd, env=None):
    # a wedged daemon must not block the caller (the beacon runs in the minion's loop)
    return __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True,
                                   output_loglevel="quiet", env=env, timeout=10)


def _read_corosync():
    """(links, quorum) as corosync reports them; (None, None) when it is not running."""
    probe = _quiet(["corosync-cfgtool", "-s"])
    if probe["retcode"] != 0:
        return None, None
    answer = _quiet(["corosync-quorumtool", "-s"])
    # quorumtool exits non-zero when not quorate, and still says why
    quorum = (_corosync.parse_quorum(answer["stdout"])
              if "Quorum information" in answer["stdout"] else None)
    return _corosync.parse_links(probe["stdout"]), quorum


def corosync_snapshot(cached=False):
    """
    Membership, quorum and the state of each heartbeat link to the peer, by zone, as
    this node's corosync reports them (what the trash_corosync beacon watches; it passes
    ``cached=True``, see ``trash.config``).

    CLI Example:

    .. code-block:: bash

        salt-call trash.corosync_snapshot
    """
    cfg = _load(cached)
    return _corosync.snapshot(cfg, _node(cfg), *_read_corosync())


def corosync_events(old, new):
    """
    The changes between two corosync snapshots, one event each (for the beacon).

    CLI Example:

    .. code-block:: bash

        salt-call trash.corosync_events "$OLD_SNAPSHOT" "$NEW_SNAPSHOT"
    """
    return _corosync.events(old, new)


SHARED_PROBE_S = 10
# the transport the kernel's DLM runs with (0 TCP, 1 SCTP); there while DLM runs
DLM_PROTOCOL = "/sys/kernel/config/dlm/cluster/protocol"


def _reads_within(paths, seconds):
    """Whether reading ``paths`` ends within ``seconds``. The reader is a process of its
    own that is never waited for beyond that: a read stuck in GFS2 (a lock only the
    unreachable peer can grant) sleeps uninterruptibly, and would keep status, even
    salt-call's exit, from returning."""
    proc = subprocess.Popen(["cat", "--", *paths], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def status():
    """
    The truth about this node in one look: a verdict (ok, degraded, failed) and one
    line per finding, worst first — membership, quorum and each heartbeat link from
    corosync, nodes, failures and where every guest runs from Pacemaker, the mirrors,
    the BMCs, the software RAID from /proc/mdstat, and files that differ from the
    pillar. Secrets never appear.

    CLI Example:

    .. code-block:: bash

        salt-call trash.status
        salt '*' trash.status
    """
    node = __opts__["id"]
    try:
        cfg = _load()
        _node(cfg)
    except CommandExecutionError as exc:
        return {"node": node, "verdict": _status.FAILED, "findings": [f"failed: {exc}"]}
    links, quorum = _read_corosync()
    pacemaker = None
    env, _ = _cib_env(None)
    mon = _quiet(["crm_mon", "--output-as", "xml", "--one-shot"], env)
    try:
        pacemaker = _pcmk.parse_status(mon["stdout"]) if mon["stdout"].strip() else None
    except _pcmk.ParseError:
        pacemaker = None
    if pacemaker is not None and not pacemaker.nodes:
        pacemaker = None  # crm_mon answers with an error document when the cluster is down
    constraints = None
    if pacemaker is not None:
        cons = _quiet(["cibadmin", "--query", "--scope", "constraints"], env)
        try:
            if cons["retcode"] == 0:
                constraints = [_constraint_summary(c) for c in
                               _foreign_constraints(_et.fromstring(cons["stdout"]))]
        except _et.ParseError:
            constraints = None
    stalled = None
    shared = cfg["shared"]["mountpoint"]
    if os.path.ismount(shared):
        paths = [g["xml"] for g in cfg["guests"].values() if g["storage"] == "cluster"]
        if paths and not _reads_within(paths, SHARED_PROBE_S):
            stalled = (shared, SHARED_PROBE_S)
    drift = {}
    for concern in _files.CONCERNS:
        if stalled and concern == "guests":
            continue
        changes = manage_files(concern, test=True).get("changes", {})
        drift[concern] = sorted(changes)
    drbd = None
    try:
        # trash_proc_drbd: another node's /proc/drbd, as trash_cib_file stands in for its CIB
        with open(__opts__.get("trash_proc_drbd", "/proc/drbd"), encoding="utf-8") as f:
            drbd = _drbd.parse_proc_drbd(f.read())
    except OSError:
        drbd = {} if cfg["drbd"]["resources"] else None  # no module loaded: every mirror down
    bmcs = None
    if "trash_bmc.status" in __salt__:
        try:
            bmcs = __salt__["trash_bmc.status"](timeout=5)
        except CommandExecutionError:
            bmcs = None
    local = None
    if "trash_guests.running" in __salt__:
        try:
            local = __salt__["trash_guests.running"]()
        except CommandExecutionError:
            local = {n: "libvirtd unreachable" for n, g in cfg["guests"].items()
                     if g["storage"] == "local" and g["home"] == node}
    dlm = None  # not running: the kernel has no DLM cluster configured
    try:
        with open(__opts__.get("trash_dlm_protocol", DLM_PROTOCOL), encoding="utf-8") as f:
            dlm = {"0": "tcp", "1": "sctp"}.get(f.read().strip(), "unknown")
    except OSError:
        pass
    mdstat = None
    if cfg["nodes"][node].get("raid"):
        try:
            with open(__opts__.get("trash_proc_mdstat", "/proc/mdstat"), encoding="utf-8") as f:
                mdstat = _raid.parse_mdstat(f.read())
        except OSError:
            mdstat = {}  # no md driver: the array is not there
    result = _status.assess(cfg, node, links, quorum, pacemaker, drift, drbd, bmcs, local,
                            constraints, mdstat, stalled, dlm)
    result = {"node": node, **result}
    if drbd is not None:
        result["mirrors"] = {
            name: _drbd.describe(drbd.get(res["minor"]))
            for name, res in sorted(cfg["drbd"]["resources"].items())}
    if mdstat is not None:
        disk = cfg["nodes"][node]["disk"]
        md = mdstat.get(disk.rsplit("/", 1)[-1])
        if md is None or md["state"] != "active":
            result["raid"] = f"{disk} {'not assembled' if md is None else md['state']}"
        else:
            result["raid"] = f"{disk} {md['level']} [{md['status']}]" + (
                f", {md['sync']}" if md["sync"] else "")
    if bmcs is not None:
        result["fencing"] = {target: e["state"] for target, e in bmcs.items()}
    if local:
        result["local guests"] = local
    if pacemaker is not None:
        result["guests"] = {
            name: sorted(pacemaker.running_on(_cib.guest_id(name))) or "stopped"
            for name, g in sorted(cfg["guests"].items()) if g["storage"] == "cluster"}
    return result
