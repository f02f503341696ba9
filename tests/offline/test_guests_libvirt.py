"""/local guests defined through python-libvirt, on libvirt's test driver (in-process)."""

import copy

import libvirt
import pytest

from modload import load, trash_module
from trashlib import libvirt as domains

URI = "test:///default"


@pytest.fixture
def conn():
    """Holds the test driver's shared state open for the test; removes what it defined."""
    conn = libvirt.open(URI)
    before = {d.name() for d in conn.listAllDomains()}
    yield conn
    for dom in conn.listAllDomains():
        if dom.name() not in before:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    conn.close()


def guests_mod(pillar, node="node1"):
    trash = trash_module(pillar, "trash_for_guests", id=node)
    return load("_modules/trash_guests.py", "trash_guests_under_test", opts={"id": node},
                salt={"trash.config": trash.config})


def test_define_update_converge_and_never_remove(conn, example_pillar):
    mod = guests_mod(example_pillar)
    preview = mod.defined(test=True, uri=URI)
    assert preview["result"] is None and list(preview["changes"]) == ["ns1"]
    assert "ns1" not in [d.name() for d in conn.listAllDomains()]  # test mode defined nothing

    first = mod.defined(uri=URI)
    assert first["result"] is True and first["changes"]["ns1"]["new"]["memory"] == 512
    dom = conn.lookupByName("ns1")
    assert dom.autostart() == 1
    # defined for the first time: started at once (libvirt autostarts it from now on)
    assert dom.isActive() and first["changes"]["ns1"]["new"]["running"] is True
    dom.destroy()  # stopped on purpose: a later run leaves it stopped
    # libvirt's own XML, as it keeps it, says what the pillar says
    assert domains.summary(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))["owner"] == "trashnet"
    assert mod.defined(uri=URI)["changes"] == {}

    example_pillar["trash"]["guests"]["ns1"]["memory"] = 768
    example_pillar["trash"]["guests"]["ns1"]["networks"] = ["vbr0", "vbr1"]
    dom.create()  # running: the new definition waits for the next start
    changed = guests_mod(example_pillar).defined(uri=URI)
    assert changed["result"] is True
    assert changed["changes"]["ns1"]["memory"] == {"old": 512, "new": 768}
    assert [n[0] for n in changed["changes"]["ns1"]["networks"]["new"]] == ["vbr0", "vbr1"]
    assert "ns1 is running: it takes the new definition at its next start" in changed["comment"]
    assert domains.summary(conn.lookupByName("ns1").XMLDesc(
        libvirt.VIR_DOMAIN_XML_INACTIVE))["memory"] == 768
    assert guests_mod(example_pillar).defined(uri=URI)["changes"] == {}

    gone = copy.deepcopy(example_pillar)
    del gone["trash"]["guests"]["ns1"]
    left = guests_mod(gone).defined(uri=URI)
    assert left["result"] is True and left["changes"] == {}
    assert "ns1 is not in the pillar any more: left defined and untouched" in left["comment"]
    assert conn.lookupByName("ns1").isActive()


def test_a_foreign_domain_of_the_same_name_is_left_alone(conn, example_pillar):
    foreign = conn.defineXML("<domain type='test'><name>ns1</name><memory>131072</memory>"
                             "<os><type>hvm</type></os></domain>")
    result = guests_mod(example_pillar).defined(uri=URI)
    assert result["result"] is False and result["changes"] == {}
    assert "did not define" in result["comment"]
    assert domains.summary(foreign.XMLDesc(0))["memory"] == 128


def test_only_this_nodes_local_guests(conn, example_pillar):
    result = guests_mod(example_pillar, node="node2").defined(test=True, uri=URI)
    assert list(result["changes"]) == ["knox"]


def test_running_says_what_libvirt_runs(conn, example_pillar):
    mod = guests_mod(example_pillar)
    assert mod.running(uri=URI) == {"ns1": "not defined"}
    mod.defined(uri=URI)
    assert mod.running(uri=URI) == {"ns1": "running"}
    conn.lookupByName("ns1").destroy()
    assert mod.running(uri=URI) == {"ns1": "stopped"}
