"""libvirt domain XML of a guest: one source for Pacemaker and for libvirt."""

import hashlib
import uuid
import xml.etree.ElementTree as ET

_NAMESPACE = uuid.UUID("5d6c3f1e-2b7a-4c1e-9a51-7a1e0c3b9d42")
# domains this formula defines carry <metadata><trash:guest cluster=...> so that it
# can tell them from domains somebody else made
METADATA_NS = "urn:trash-formula:guest:1"


def mac(cluster, guest, index):
    """A stable locally administered MAC in QEMU's 52:54:00 range."""
    digest = hashlib.sha256(f"{cluster}/{guest}/{index}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def domain(cfg, g):
    cluster = cfg["cluster"]["name"]
    dom = ET.Element("domain", type=g["domain_type"])
    ET.SubElement(dom, "name").text = g["name"]
    ET.SubElement(dom, "uuid").text = str(uuid.uuid5(_NAMESPACE, f"{cluster}/{g['name']}"))
    if g["description"]:
        ET.SubElement(dom, "description").text = g["description"]
    meta = ET.SubElement(dom, "metadata")
    ET.SubElement(meta, f"{{{METADATA_NS}}}guest", cluster=cluster)
    ET.SubElement(dom, "memory", unit="MiB").text = str(g["memory"])
    ET.SubElement(dom, "vcpu").text = str(g["vcpus"])
    os_ = ET.SubElement(dom, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="pc").text = "hvm"
    if g["kernel"]:
        ET.SubElement(os_, "kernel").text = g["kernel"]
    else:
        ET.SubElement(os_, "boot", dev="hd")
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if g["domain_type"] == "kvm":
        # the same CPU model on both nodes, so a failover guest boots on either
        ET.SubElement(dom, "cpu", mode="host-model")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    dev = ET.SubElement(dom, "devices")
    if g["storage"] == "cluster":
        disk = ET.SubElement(dev, "disk", type="block", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="raw", cache="none", io="native")
        ET.SubElement(disk, "source", dev=g["disk"])
    else:
        disk = ET.SubElement(dev, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="raw")
        ET.SubElement(disk, "source", file=g["disk"])
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    for index, bridge in enumerate(g["networks"]):
        nic = ET.SubElement(dev, "interface", type="bridge")
        ET.SubElement(nic, "mac", address=mac(cluster, g["name"], index))
        ET.SubElement(nic, "source", bridge=bridge)
        ET.SubElement(nic, "model", type="virtio")
    serial = ET.SubElement(dev, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(dev, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    return dom


def render(cfg, g):
    ET.register_namespace("trash", METADATA_NS)
    dom = domain(cfg, g)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def summary(xml_text):
    """What the formula manages of a domain, from its XML (ours or libvirt's XMLDesc)."""
    dom = ET.fromstring(xml_text)
    memory = dom.find("memory")
    factor = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(memory.get("unit", "KiB"), 1 / 1024)
    disk = dom.find("devices/disk/source")
    owner = dom.find(f"metadata/{{{METADATA_NS}}}guest")
    return {
        "name": dom.findtext("name"),
        "type": dom.get("type"),
        "memory": int(int(memory.text) * factor),
        "vcpus": int(dom.findtext("vcpu")),
        "disk": None if disk is None else (disk.get("dev") or disk.get("file")),
        "networks": [[nic.find("source").get("bridge"), nic.find("mac").get("address")]
                     for nic in dom.findall("devices/interface")],
        "description": dom.findtext("description") or "",
        "kernel": dom.findtext("os/kernel"),
        "owner": None if owner is None else owner.get("cluster"),
    }
