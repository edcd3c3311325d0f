"""The containerlab topology reader: inheritance, link forms, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.errors import TopologyError
from appliance.lab.topology import Bind, Endpoint, load_topology, parse_topology

REPO = Path(__file__).resolve().parents[3]
SAV_BASIC = REPO / "containerlab" / "sav-basic" / "sav-basic.clab.yml"
HERE = Path("/labs/x/x.clab.yml")


def test_sav_basic_is_read_with_inherited_settings() -> None:
    topo = load_topology(SAV_BASIC)
    assert topo.name == "sav-basic"
    assert [n.name for n in topo.nodes] == ["r1", "r2", "r3", "r4", "ext", "h1", "h2", "ctl", "inet"]
    r1 = topo.node("r1")
    assert r1.is_frr and r1.kind == "linux" and r1.group == "routers"
    assert r1.image == "quay.io/frrouting/frr:10.5.1"
    assert r1.bind_for("/etc/frr/frr.conf") == SAV_BASIC.parent / "r1" / "frr.conf"
    assert ("net.ipv4.ip_forward", "1") in r1.sysctls
    assert r1.exec == () and r1.label("savd.role") == "access" and r1.label("savd.asn") == "65000"
    h1 = topo.node("h1")
    assert not h1.is_frr and h1.binds == ()
    assert ("net.ipv4.conf.all.rp_filter", "0") in h1.sysctls
    assert len(topo.links) == 9
    assert (topo.links[7].a, topo.links[7].b) == (Endpoint("r4", "eth2"), Endpoint("ext", "eth1"))
    assert (topo.links[0].a, topo.links[0].b) == (Endpoint("h1", "eth1"), Endpoint("r1", "eth1"))


def test_precedence_node_over_group_over_kind_over_defaults() -> None:
    doc = {
        "name": "p",
        "topology": {
            "defaults": {
                "kind": "linux",
                "image": "d",
                "env": {"A": "d", "B": "d"},
                "exec": ["one"],
                "binds": ["d.conf:/etc/x.conf"],
            },
            "kinds": {"linux": {"image": "k", "env": {"B": "k"}, "sysctls": {"net.ipv4.ip_forward": 1}}},
            "groups": {"g": {"image": "g", "exec": ["two"], "binds": ["g.conf:/etc/x.conf:ro"]}},
            "nodes": {"n": {"group": "g", "env": {"C": 3}, "exec": ["three"]}, "m": {}},
        },
    }
    topo = parse_topology(doc, HERE)
    n = topo.node("n")
    assert n.image == "g"
    assert dict(n.env) == {"A": "d", "B": "k", "C": "3"}
    assert n.exec == ("one", "two", "three")
    assert n.binds == (Bind(Path("/labs/x/g.conf"), "/etc/x.conf", read_only=True),)
    assert dict(n.sysctls) == {"net.ipv4.ip_forward": "1"}
    assert topo.node("m").image == "k"


def test_host_path_maps_files_and_folders() -> None:
    doc = {
        "name": "p",
        "topology": {
            "nodes": {
                "n": {
                    "kind": "linux",
                    "binds": ["/srv/cfg:/etc/app", "/srv/one.conf:/etc/app/special.conf", "files/a:/opt/a"],
                }
            }
        },
    }
    node = parse_topology(doc, HERE).node("n")
    assert node.host_path("/etc/app/x/y.conf") == Path("/srv/cfg/x/y.conf")
    assert node.host_path("/etc/app/special.conf") == Path("/srv/one.conf")
    assert node.host_path("/opt/a") == Path("/labs/x/files/a")
    assert node.host_path("/etc/other") is None
    assert node.host_path("/etc/application") is None


def _doc(**topology: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"nodes": {"r1": {"kind": "linux"}, "r2": {"kind": "linux"}}}
    base.update(topology)
    return {"name": "t", "topology": base}


BAD: list[tuple[str, Any, str]] = [
    ("no name", {"topology": {"nodes": {"a": {"kind": "linux"}}}}, "name"),
    ("bad name", {"name": "a b", "topology": {"nodes": {"a": {"kind": "linux"}}}}, "name"),
    ("no topology", {"name": "t"}, "topology"),
    ("unknown top field", {"name": "t", "topolgy": {}}, "topolgy"),
    ("no nodes", {"name": "t", "topology": {"nodes": {}}}, "topology.nodes"),
    ("unknown kind", _doc(nodes={"r1": {"kind": "nokia_srlinux"}}), "topology.nodes.r1.kind"),
    ("missing kind", _doc(nodes={"r1": {"image": "x"}}), "topology.nodes.r1.kind"),
    ("unknown group", _doc(nodes={"r1": {"kind": "linux", "group": "nope"}}), "topology.nodes.r1.group"),
    ("unknown node field", _doc(nodes={"r1": {"kind": "linux", "bindz": []}}), "topology.nodes.r1.bindz"),
    (
        "bind without colon",
        _doc(nodes={"r1": {"kind": "linux", "binds": ["x"]}}),
        "topology.nodes.r1.binds[0]",
    ),
    (
        "relative container path",
        _doc(nodes={"r1": {"kind": "linux", "binds": ["a:b"]}}),
        "topology.nodes.r1.binds[0]",
    ),
    ("exec not a list", _doc(nodes={"r1": {"kind": "linux", "exec": "ip a"}}), "topology.nodes.r1.exec"),
    (
        "exec not a string",
        _doc(nodes={"r1": {"kind": "linux", "exec": [False]}}),
        "topology.nodes.r1.exec[0]",
    ),
    (
        "bad group kind",
        _doc(groups={"g": {"kind": "bridge"}}, nodes={"r1": {"group": "g"}}),
        "topology.nodes.r1.kind",
    ),
    ("links not a list", _doc(links={"a": 1}), "topology.links"),
    (
        "unknown endpoint node",
        _doc(links=[{"endpoints": ["r1:eth1", "r9:eth1"]}]),
        "topology.links[0].endpoints[1]",
    ),
    (
        "endpoint without colon",
        _doc(links=[{"endpoints": ["r1", "r2:eth1"]}]),
        "topology.links[0].endpoints[0]",
    ),
    (
        "interface name too long",
        _doc(links=[{"endpoints": ["r1:eth1234567890123", "r2:eth1"]}]),
        "topology.links[0].endpoints[0]",
    ),
    (
        "host endpoint",
        _doc(links=[{"endpoints": ["host:veth9", "r2:eth1"]}]),
        "topology.links[0].endpoints[0]",
    ),
    (
        "three endpoints",
        _doc(links=[{"endpoints": ["r1:eth1", "r2:eth1", "r2:eth2"]}]),
        "topology.links[0].endpoints",
    ),
    ("self link", _doc(links=[{"endpoints": ["r1:eth1", "r1:eth2"]}]), "topology.links[0].endpoints"),
    ("unsupported link type", _doc(links=[{"type": "macvlan", "endpoints": []}]), "topology.links[0].type"),
    ("bad mtu", _doc(links=[{"endpoints": ["r1:eth1", "r2:eth1"], "mtu": "big"}]), "topology.links[0].mtu"),
    (
        "interface used twice",
        _doc(links=[{"endpoints": ["r1:eth1", "r2:eth1"]}, {"endpoints": ["r1:eth1", "r2:eth2"]}]),
        "topology.links[1].endpoints[0]",
    ),
    (
        "long form without interface",
        _doc(links=[{"type": "veth", "endpoints": [{"node": "r1"}, "r2:eth1"]}]),
        "topology.links[0].endpoints[0]",
    ),
]


@pytest.mark.parametrize(("doc", "field"), [(d, f) for _, d, f in BAD], ids=[c for c, _, _ in BAD])
def test_schema_errors_name_the_field(doc: Any, field: str) -> None:
    with pytest.raises(TopologyError) as err:
        parse_topology(doc, HERE)
    assert err.value.field == field
    assert f"{HERE}: {field}: " in str(err.value)


def test_long_form_link_with_mtu() -> None:
    doc = _doc(
        links=[
            {
                "type": "veth",
                "mtu": 9000,
                "endpoints": [{"node": "r1", "interface": "e1"}, {"node": "r2", "interface": "e2"}],
            }
        ]
    )
    link = parse_topology(doc, HERE).links[0]
    assert (str(link.a), str(link.b), link.mtu) == ("r1:e1", "r2:e2", 9000)


def test_invalid_yaml_and_missing_file_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.clab.yml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TopologyError, match="not valid YAML") as err:
        load_topology(bad)
    assert err.value.path == bad
    with pytest.raises(TopologyError, match="cannot read topology file"):
        load_topology(tmp_path / "absent.clab.yml")


def test_missing_bound_file_names_node_and_bind(tmp_path: Path) -> None:
    topo = tmp_path / "t.clab.yml"
    topo.write_text(
        yaml.safe_dump(
            _doc(
                nodes={
                    "r1": {"kind": "linux", "binds": ["r1/frr.conf:/etc/frr/frr.conf"]},
                    "r2": {"kind": "linux"},
                }
            )
        )
    )
    with pytest.raises(TopologyError) as err:
        load_topology(topo)
    assert err.value.node == "r1"
    assert err.value.field == "topology.nodes.r1.binds[0]"
    assert str(tmp_path / "r1" / "frr.conf") in str(err.value)
    assert load_topology(topo, check_files=False).node("r1").is_frr
