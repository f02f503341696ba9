"""
Guests on /local storage: defined in libvirt from the same domain XML that
trash.render writes, and autostarted by libvirt (R15: they never fail over, and
Pacemaker does not manage them). Cluster guests belong to Pacemaker and are not
defined here.

A domain is never destroyed or undefined: a guest that left the pillar is reported,
and a domain of the same name that this formula did not define is left alone.

Minion option ``trash_libvirt_uri`` (default ``qemu:///system``).
"""

import sys

from salt.exceptions import CommandExecutionError

# Every module that imports trashlib drops it first (see _modules/trash.py).
for _name in [n for n in sys.modules if n == "trashlib" or n.startswith("trashlib.")]:
    del sys.modules[_name]

try:
    import libvirt

    HAS_LIBVIRT = True
except ImportError:
    HAS_LIBVIRT = False

from trashlib import libvirt as _domains  # noqa: E402

__virtualname__ = "trash_guests"

# what the formula decides about a domain; libvirt adds the rest itself
COMPARED = ("type", "memory", "vcpus", "disk", "networks", "description")


def __virtual__():
    if not HAS_LIBVIRT:
        return False, "trash_guests: python-libvirt is not installed"
    if "trash.config" not in __salt__:
        return False, "trash_guests: the trash execution module is not loaded"
    return __virtualname__


def _open(uri):
    uri = uri or __opts__.get("trash_libvirt_uri", "qemu:///system")
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise CommandExecutionError(f"trash_guests: cannot connect to libvirt at {uri}: {exc}")


def defined(test=False, uri=None):
    """
    Define this node's /local guests in libvirt, update a definition that differs from
    the pillar (memory, vCPUs, disk, networks, ...; a running guest takes it at its next
    start), and set autostart. A guest defined here for the first time is started at
    once (libvirt autostarts it at every later boot); one that exists is never started
    or stopped: a stopped guest may be stopped on purpose. Guests that left the pillar
    are reported, never removed.

    CLI Example:

    .. code-block:: bash

        salt-call trash_guests.defined test=True
    """
    cfg = __salt__["trash.config"]()
    node = __opts__["id"]
    cluster = cfg["cluster"]["name"]
    wanted = {name: g for name, g in cfg["guests"].items()
              if g["storage"] == "local" and g["home"] == node}
    conn = _open(uri)
    try:
        domains = {dom.name(): dom for dom in conn.listAllDomains()}
        changes, actions, refusals, notes = {}, [], [], []
        for name, g in sorted(wanted.items()):
            xml = _domains.render(cfg, g)
            want = _domains.summary(xml)
            dom = domains.get(name)
            if dom is None:
                changes[name] = {"old": None,
                                 "new": {k: want[k] for k in COMPARED} | {"autostart": True}}
                actions.append((name, xml, True))
                continue
            have = _domains.summary(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if have["owner"] != cluster:
                refusals.append(f"{name}: libvirt already has a domain of that name that this "
                                "formula did not define; it is left alone (rename the guest in "
                                "the pillar, or undefine that domain yourself)")
                continue
            diff = {k: {"old": have[k], "new": want[k]} for k in COMPARED if have[k] != want[k]}
            if not dom.autostart():
                diff["autostart"] = {"old": False, "new": True}
            if diff:
                changes[name] = diff
                actions.append((name, xml if set(diff) - {"autostart"} else None, True))
                if dom.isActive() and set(diff) - {"autostart"}:
                    notes.append(f"{name} is running: it takes the new definition at its next start")
        for name, dom in sorted(domains.items()):
            if name in cfg["guests"]:
                if name not in wanted and cfg["guests"][name]["storage"] == "local":
                    owner = _domains.summary(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))["owner"]
                    if owner == cluster and dom.isPersistent():
                        notes.append(f"{name} now belongs to {cfg['guests'][name]['home']}: its "
                                     "definition here is left as it is")
                continue
            owner = _domains.summary(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))["owner"]
            if owner == cluster:
                notes.append(f"{name} is not in the pillar any more: left defined and untouched, "
                             "its disk too (undefine it yourself if that is intended)")
        if refusals:
            return {"result": False, "changes": {},
                    "comment": "\n".join(["nothing changed:"] + refusals + notes)}
        if not changes:
            return {"result": True, "changes": {},
                    "comment": "\n".join([f"{len(wanted)} /local guests defined as the pillar "
                                          "says"] + notes)}
        if test:
            return {"result": None, "changes": changes,
                    "comment": "\n".join([f"would define or update {', '.join(changes)}"] + notes)}
        for name, xml, autostart in actions:
            try:
                dom = conn.defineXML(xml) if xml else conn.lookupByName(name)
                if autostart and not dom.autostart():
                    dom.setAutostart(1)
                if changes[name].get("old", ()) is None and not dom.isActive():
                    dom.create()
                    changes[name]["new"]["running"] = True
            except libvirt.libvirtError as exc:
                return {"result": False, "changes": {n: changes[n] for n, _, _ in actions
                                                      if n < name},
                        "comment": f"libvirt refused {name}: {exc}"}
        return {"result": True, "changes": changes,
                "comment": "\n".join([f"defined or updated {', '.join(changes)}"] + notes)}
    finally:
        conn.close()


def running(uri=None):
    """
    This node's /local guests and whether libvirt runs them: ``{name: "running" |
    "stopped" | "not defined"}``.

    CLI Example:

    .. code-block:: bash

        salt-call trash_guests.running
    """
    cfg = __salt__["trash.config"]()
    node = __opts__["id"]
    wanted = sorted(n for n, g in cfg["guests"].items()
                    if g["storage"] == "local" and g["home"] == node)
    conn = _open(uri)
    try:
        domains = {dom.name(): dom for dom in conn.listAllDomains()}
        return {name: ("not defined" if name not in domains else
                       "running" if domains[name].isActive() else "stopped")
                for name in wanted}
    finally:
        conn.close()
