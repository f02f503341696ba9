"""DRBD configuration in the syntax of the version the nodes run (8.4 or 9).

8.4 and 9 disagree on where options live: ``fencing`` is a ``disk`` option in
8.4 and a ``net`` option in 9; 9 needs ``node-id`` per host and names the
unfence handler ``unfence-peer``; the crm-fence-peer scripts differ by version.
"""

from trashlib import storage

HANDLER = "/usr/local/lib/trash/drbd-event"


def _disk_of(cfg, node, res):
    return storage.partition_device(cfg["nodes"][node]["disk"], res["partition"])


def global_common(cfg):
    dr = cfg["drbd"]
    return "\n".join([
        "# Managed by Salt (trash.drbd). Local changes are overwritten.",
        "global {",
        "    usage-count no;",
        "}",
        "common {",
        "    net {",
        f"        protocol {dr['protocol']};",
        "    }",
        "}",
        ""])


def resource(cfg, res):
    """Text of /etc/drbd.d/<name>.res; identical on both nodes."""
    dr = cfg["drbd"]
    v9 = str(dr["version"]) == "9"
    suffix = ".9" if v9 else ""
    disk_opts = [f"        resync-rate {dr['resync_rate']};"]
    net_opts = [
        f"        protocol {dr['protocol']};",
        "        cram-hmac-alg sha1;",
        f"        shared-secret \"{dr['shared_secret']}\";",
        f"        after-sb-0pri {dr['after_sb_0pri']};",
        f"        after-sb-1pri {dr['after_sb_1pri']};",
        f"        after-sb-2pri {dr['after_sb_2pri']};",
    ]
    if res["dual_primary"]:
        net_opts.append("        allow-two-primaries yes;")
    fencing = "        fencing resource-and-stonith;"
    (net_opts if v9 else disk_opts).append(fencing)
    unfence = "unfence-peer" if v9 else "after-resync-target"
    out = [
        "# Managed by Salt (trash.drbd). Local changes are overwritten.",
        f"resource {res['name']} {{",
        "    disk {", *disk_opts, "    }",
        "    net {", *net_opts, "    }",
        "    handlers {",
        f"        fence-peer \"/usr/lib/drbd/crm-fence-peer{suffix}.sh\";",
        f"        {unfence} \"/usr/lib/drbd/crm-unfence-peer{suffix}.sh\";",
        f"        split-brain \"{HANDLER} split-brain\";",
        "    }",
    ]
    for index, name in enumerate(cfg["cluster"]["nodes"]):
        node = cfg["nodes"][name]
        out.append(f"    on {name} {{")
        if v9:
            out.append(f"        node-id {index};")
        out += [f"        device /dev/drbd{res['minor']};",
                f"        disk {_disk_of(cfg, name, res)};",
                f"        address {node['ip']['storage']}:{res['port']};",
                "        meta-disk internal;",
                "    }"]
    out += ["}", ""]
    return "\n".join(out)


def event_handler():
    """The DRBD handler that reports to the Salt event bus (split brain and others)."""
    return "\n".join([
        "#!/bin/sh",
        "# Managed by Salt (trash.drbd). Called by DRBD as a handler: reports the",
        "# event to the Salt masters; never decides anything itself.",
        "kind=\"${1:?usage: drbd-event KIND}\"",
        "exec salt-call --retcode-passthrough event.send \"trash/drbd/$kind\" \\",
        "    resource=\"${DRBD_RESOURCE:-}\" minor=\"${DRBD_MINOR:-}\" \\",
        "    peer=\"${DRBD_PEER:-${DRBD_PEER_ADDRESS:-}}\" >/dev/null 2>&1",
        ""])
