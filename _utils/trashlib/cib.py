"""The Pacemaker configuration as a CIB document, generated from the model.

Resource graph (R12): fencing -> dlm -> lvmlockd; DRBD mirror 0 promoted on both
nodes -> GFS2 on /shared; DRBD mirror N promoted on its home node -> its volume
group -> its guests. Stickiness above every home preference keeps resources
where they are when a node rejoins (R13). No secret is written here: fence
devices read the BMC password from a root-only file through ``password_script``.
"""

import xml.etree.ElementTree as ET

from trashlib import agents

SCHEMA = "pacemaker-3.9"
FENCE_SECRET_DIR = "/etc/trash/fence"


def fence_secret_path(target):
    return f"{FENCE_SECRET_DIR}/{target}.password"


def _nvset(parent, tag, owner, pairs, block_id=None):
    block_id = block_id or f"{owner}-{tag.split('_')[0]}"
    block = ET.SubElement(parent, tag, id=block_id)
    for name, value in pairs:
        ET.SubElement(block, "nvpair", id=f"{block_id}-{name}",
                      name=name, value=str(value))
    return block


def _ops(parent, owner, ops):
    block = ET.SubElement(parent, "operations")
    for name, interval, extra in ops:
        suffix = f"-{extra['role'].lower()}" if "role" in extra else ""
        ET.SubElement(block, "op", id=f"{owner}-{name}-{interval}{suffix}", name=name,
                      interval=interval, **extra)


def _timeouts(**seconds):
    """Operations with the timeouts the agents' metadata recommends: without them every
    start and stop gets Pacemaker's 20 s, which LVM-activate under load already misses."""
    return [(name, "0s", {"timeout": f"{value}s"}) for name, value in seconds.items()]


def _primitive(parent, rid, klass, agent, params=(), ops=(), meta=(), provider=None):
    attrs = {"id": rid, "class": klass, "type": agent}
    if provider:
        attrs["provider"] = provider
    prim = ET.SubElement(parent, "primitive", attrs)
    if params:
        _nvset(prim, "instance_attributes", rid, params)
    if meta:
        _nvset(prim, "meta_attributes", rid, meta)
    if ops:
        _ops(prim, rid, ops)
    return prim


def _clone(parent, cid, meta):
    clone = ET.SubElement(parent, "clone", id=cid)
    _nvset(clone, "meta_attributes", cid, meta)
    return clone


def _order(cons, first, then, first_action="start", then_action="start", kind=None):
    attrs = {"id": f"order-{first}-{first_action}-{then}-{then_action}", "first": first,
             "first-action": first_action, "then": then, "then-action": then_action}
    if kind:
        attrs["kind"] = kind
    ET.SubElement(cons, "rsc_order", attrs)


def _colocate(cons, rsc, with_rsc, with_role=None, influence=None):
    attrs = {"id": f"colocation-{rsc}-with-{with_rsc}", "rsc": rsc, "with-rsc": with_rsc,
             "score": "INFINITY"}
    if with_role:
        attrs["with-rsc-role"] = with_role
    if influence is not None:
        attrs["influence"] = influence
    ET.SubElement(cons, "rsc_colocation", attrs)


def _location(cons, rsc, node, score, role=None):
    name = "avoid" if score == "-INFINITY" else "prefer"
    attrs = {"id": f"location-{rsc}-{name}-{node}", "rsc": rsc, "node": node, "score": str(score)}
    if role:
        attrs["role"] = role
    ET.SubElement(cons, "rsc_location", attrs)


def drbd_primitive_id(res_name):
    return f"drbd-{res_name}"


def drbd_clone_id(res_name):
    return f"{drbd_primitive_id(res_name)}-clone"


def guest_id(name):
    return f"guest-{name}"


def vg_id(name):
    return f"vg-{name}"


def build(cfg):
    """The whole CIB as an ElementTree element (configuration plus an empty status)."""
    cl = cfg["cluster"]
    nodes = cl["nodes"]
    every = cl["monitor_interval"]
    cib = ET.Element("cib", {"validate-with": SCHEMA, "admin_epoch": "0", "epoch": "1",
                             "num_updates": "0"})
    conf = ET.SubElement(cib, "configuration")
    crm = ET.SubElement(conf, "crm_config")
    # Pacemaker's own tools keep cluster properties in the set with this id
    props = [
        ("stonith-enabled", "true"),
        ("stonith-action", cl["fence_action"]),
        ("no-quorum-policy", cl["no_quorum_policy"]),
        ("cluster-name", cl["name"]),
    ]
    # unset: Pacemaker's defaults (80 %, twice the cores)
    if cl.get("load_threshold") is not None:
        props.append(("load-threshold", f"{cl['load_threshold']}%"))
    if cl.get("node_action_limit") is not None:
        props.append(("node-action-limit", cl["node_action_limit"]))
    factor = cl["timeout_factor"]
    if factor != 1:
        props.append(("stonith-timeout", f"{60 * factor}s"))  # Pacemaker's 60 s, scaled
    _nvset(crm, "cluster_property_set", "cib-bootstrap-options", block_id="cib-bootstrap-options",
           pairs=props)
    xml_nodes = ET.SubElement(conf, "nodes")
    for name in nodes:
        ET.SubElement(xml_nodes, "node", id=str(cfg["nodes"][name]["nodeid"]), uname=name)
    rsc = ET.SubElement(conf, "resources")
    cons = ET.SubElement(conf, "constraints")

    for target in nodes:
        bmc = cfg["nodes"][target]["bmc"]
        rid = f"fence-{target}"
        params = [("ip", bmc["address"]), ("ipport", bmc["port"]), ("username", bmc["username"]),
                  ("password_script", f"cat {fence_secret_path(target)}"), ("lanplus", "1"),
                  ("pcmk_host_list", target),
                  # DLM asks for a reboot; a fenced node stays off all the same (R13): a
                  # reboot of a node that is off already would power it on
                  ("pcmk_reboot_action", "off")]
        if target == cl["priority_node"]:
            # the device that fences the priority node waits, so the priority node shoots first
            params.append(("pcmk_delay_base", f"{cl['fence_delay']}s"))
        # starting the device and its monitor log in to the BMC: Pacemaker's 20 s was missed
        # under load, and a lab node starting two guests took more than 90 s (30 s x 3)
        _primitive(rsc, rid, "stonith", "fence_ipmilan", params,
                   _timeouts(start=60) + [("monitor", f"{2 * every}s", {"timeout": "60s"})])
        # a node never runs the device that fences itself
        _location(cons, rid, target, "-INFINITY")

    interleave = [("interleave", "true")]
    dlm = _clone(rsc, "dlm-clone", interleave + [("ordered", "true")])
    _primitive(dlm, "dlm", "ocf", "controld", provider="pacemaker",
               ops=_timeouts(start=90, stop=100)
               + [("monitor", f"{every}s", {"timeout": "60s", "on-fail": "fence"})])
    lvm = _clone(rsc, "lvmlockd-clone", interleave)
    _primitive(lvm, "lvmlockd", "ocf", "lvmlockd", provider="heartbeat",
               ops=_timeouts(start=90, stop=90)
               + [("monitor", f"{every}s", {"timeout": "90s", "on-fail": "fence"})])
    _order(cons, "dlm-clone", "lvmlockd-clone")
    _colocate(cons, "lvmlockd-clone", "dlm-clone")

    resources = cfg["drbd"]["resources"]
    for name in sorted(resources):
        res = resources[name]
        cid = drbd_clone_id(name)
        clone = _clone(rsc, cid, interleave + [
            ("promotable", "true"), ("promoted-max", "2" if res["dual_primary"] else "1"),
            ("promoted-node-max", "1"), ("clone-max", "2"), ("clone-node-max", "1"),
            ("notify", "true")])
        _primitive(clone, drbd_primitive_id(name), "ocf", "drbd", provider="linbit",
                   params=[("drbd_resource", name)],
                   ops=_timeouts(start=240, stop=100, promote=90, demote=90, notify=90)
                   + [("monitor", f"{every - 1}s", {"role": "Promoted", "timeout": "60s"}),
                        ("monitor", f"{every + 1}s", {"role": "Unpromoted", "timeout": "60s"})])
        if res["home"]:
            _location(cons, cid, res["home"], cl["home_preference"], role="Promoted")

    sh = cfg["shared"]
    shared_res = resources[sh["drbd"]]
    fs = _clone(rsc, "shared-fs-clone", interleave)
    _primitive(fs, "shared-fs", "ocf", "Filesystem", provider="heartbeat",
               params=[("device", shared_res["device"]), ("directory", sh["mountpoint"]),
                       ("fstype", sh["fstype"]), ("options", sh["options"])],
               ops=_timeouts(start=60, stop=60)
               + [("monitor", f"{every * 2 // 3}s", {"timeout": "40s", "on-fail": "fence"})])
    shared_clone = drbd_clone_id(sh["drbd"])
    _order(cons, shared_clone, "shared-fs-clone", first_action="promote")
    _colocate(cons, "shared-fs-clone", shared_clone, with_role="Promoted")
    _order(cons, "dlm-clone", "shared-fs-clone")
    _colocate(cons, "shared-fs-clone", "dlm-clone")

    for name in sorted(cfg["volume_groups"]):
        vg = cfg["volume_groups"][name]
        rid = vg_id(name)
        _primitive(rsc, rid, "ocf", "LVM-activate", provider="heartbeat",
                   params=[("vgname", name), ("vg_access_mode", "lvmlockd"),
                           ("activation_mode", "exclusive")],
                   ops=_timeouts(start=90, stop=90) + [("monitor", f"{every}s", {"timeout": "90s"})])
        mirror = drbd_clone_id(vg["drbd"])
        _order(cons, mirror, rid, first_action="promote")
        _colocate(cons, rid, mirror, with_role="Promoted")
        _order(cons, "lvmlockd-clone", rid)
        _colocate(cons, rid, "lvmlockd-clone")

    for name in sorted(cfg["guests"]):
        g = cfg["guests"][name]
        if g["storage"] != "cluster":
            continue
        rid = guest_id(name)
        # Debian's VirtualDomain without a systemd reload on each start (trashlib.agents)
        prim = _primitive(rsc, rid, "ocf", "VirtualDomain", provider=agents.PROVIDER,
                          # the agent would write the utilization into the CIB itself, on
                          # every start: a configuration that never stays as rendered
                          params=[("config", g["xml"]), ("hypervisor", "qemu:///system"),
                                  ("autoset_utilization_cpu", "false"),
                                  ("autoset_utilization_hv_memory", "false"),
                                  ("autoset_utilization_host_memory", "false"),
                                  ("force_stop", "true" if g["stop"] == "destroy" else "false")],
                          meta=[("allow-migrate", "false")],
                          ops=[("start", "0s", {"timeout": "180s"}),
                               ("stop", "0s", {"timeout": "180s"}),
                               ("monitor", f"{every}s", {"timeout": "60s"})])
        _nvset(prim, "utilization", rid, [("cpu", g["vcpus"]), ("hv_memory", g["memory"])])
        _order(cons, vg_id(g["vg"]), rid)
        _order(cons, "shared-fs-clone", rid)
        _colocate(cons, rid, "shared-fs-clone")
        if g["failover"]:
            _colocate(cons, rid, vg_id(g["vg"]))
            _location(cons, rid, g["home"], cl["home_preference"])
        else:
            # pinned guests must not pull their volume group back when the home node rejoins
            _colocate(cons, rid, vg_id(g["vg"]), influence="false")
            for other in nodes:
                if other != g["home"]:
                    _location(cons, rid, other, "-INFINITY")

    rd = ET.SubElement(conf, "rsc_defaults")
    _nvset(rd, "meta_attributes", "rsc-options", [("resource-stickiness", cl["stickiness"])])
    for op in rsc.iter("op"):
        op.set("timeout", f"{int(op.get('timeout').rstrip('s')) * factor}s")
    ET.SubElement(cib, "status")
    return cib


def with_status(cib_text, online, quorum=True):
    """The CIB with a status section in which the ``online`` nodes are cluster members.

    crm_verify and crm_simulate need it: with an empty status every node is unclean.
    """
    root = ET.fromstring(cib_text)
    if quorum:
        root.set("have-quorum", "1")
    status = root.find("status")
    for node in root.find("configuration/nodes"):
        if node.get("uname") in online:
            ET.SubElement(status, "node_state", id=node.get("id"), uname=node.get("uname"),
                          in_ccm="true", crmd="online", join="member", expected="member")
    return ET.tostring(root, encoding="unicode")


def render(cfg):
    cib = build(cfg)
    ET.indent(cib)
    return "<!-- Managed by Salt (trash.cluster). Local changes are overwritten. -->\n" + \
        ET.tostring(cib, encoding="unicode") + "\n"
