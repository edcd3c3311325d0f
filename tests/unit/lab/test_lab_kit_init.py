"""`savd lab init`: sav-basic is a kit lab like any user's (its routers' frr.conf hold interfaces, OSPF and
eBGP only); init on it writes the appliance parts (iBGP, table range, FlowSpec, exporter exec lines) and
exactly the committed reference configs (configs/demo.toml, demo-gobgp.toml, demo-reports.yaml), running
again on its own output gives the same files, and bad labels are refused naming node and label."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.config import load_config
from appliance.lab.kit.labels import LabelError, read_plan
from appliance.lab.kit.render import KitOptions, is_kit_source, normalized, vrps, write_kit
from appliance.lab.topology import load_topology, parse_topology
from appliance.model import Vrp

REPO = Path(__file__).resolve().parents[3]
SAV_BASIC = REPO / "containerlab" / "sav-basic"
ROUTERS = ("r1", "r2", "r3", "r4")
CTL = ("198.18.20.10", "2001:db8:0:20::10")


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit")
    write_kit(read_plan(load_topology(SAV_BASIC / "sav-basic.clab.yml")), out, KitOptions(prefix="svdemo"))
    return out


@pytest.mark.parametrize("router", ROUTERS)
def test_sav_basic_routers_hold_only_what_the_operator_writes(router: str) -> None:
    text = (SAV_BASIC / router / "frr.conf").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("!")]
    assert not [line for line in lines if any(a in line for a in CTL) or "table range" in line
                or "flowspec" in line], router
    assert not (SAV_BASIC / router / "flowspec.conf").exists()
    assert not (SAV_BASIC / "converged.json").exists()  # init writes it
    node = load_topology(SAV_BASIC / "sav-basic.clab.yml").node(router)
    assert node.exec == () and [b.container for b in node.binds] == ["/etc/frr/daemons", "/etc/frr/frr.conf"]


def test_sav_basic_is_a_kit_source_and_init_output_is_not(kit: Path) -> None:
    assert is_kit_source(load_topology(SAV_BASIC / "sav-basic.clab.yml"))
    assert not is_kit_source(load_topology(kit / "sav-basic.clab.yml"))


def _without_run_paths(doc: dict[str, Any]) -> dict[str, Any]:
    doc["appliance"].pop("data_dir")
    doc["reports"].pop("file")
    return doc


@pytest.mark.parametrize(("speaker", "committed"), [("exabgp", "demo.toml"), ("gobgp", "demo-gobgp.toml")])
def test_init_writes_the_committed_demo_config(tmp_path: Path, kit: Path, speaker: str,
                                               committed: str) -> None:
    out = kit if speaker == "exabgp" else tmp_path
    if speaker != "exabgp":
        write_kit(read_plan(load_topology(SAV_BASIC / "sav-basic.clab.yml")), out,
                  KitOptions(prefix="svdemo", speaker=speaker))
    got = tomllib.loads((out / "savd.toml").read_text())
    want = tomllib.loads((REPO / "configs" / committed).read_text())
    assert got["appliance"]["data_dir"] == "data" and got["reports"]["file"] == "reports.yaml"
    assert _without_run_paths(got) == _without_run_paths(want)
    assert [s["type"] for s in got["speaker"]] == [speaker, "exabgp"]
    config = load_config(out / "savd.toml")  # savd itself accepts it
    assert [e.router for e in config.enforcers] == list(ROUTERS)


def test_reports_are_the_committed_demo_reports(kit: Path) -> None:
    got = yaml.safe_load((kit / "reports.yaml").read_text())
    assert got == yaml.safe_load((REPO / "configs" / "demo-reports.yaml").read_text())


def test_rpki_file_holds_the_demo_roas(kit: Path) -> None:
    roas = json.loads((kit / "rpki.json").read_text())["roas"]
    got = {Vrp(r["prefix"], r["maxLength"], r["asn"]) for r in roas}
    assert got == set(vrps(read_plan(load_topology(SAV_BASIC / "sav-basic.clab.yml"))))
    assert {Vrp("198.18.0.0/16", 24, 65000), Vrp("2001:db8::/48", 64, 65000), Vrp("198.19.0.0/16", 24, 65100),
            Vrp("2001:db8:100::/48", 64, 65100), Vrp("198.18.2.0/24", 24, 65000)} <= got


@pytest.mark.parametrize("router", ROUTERS)
def test_generated_frr_files_are_the_own_lines_plus_the_appliance_parts(kit: Path, router: str) -> None:
    own = normalized((SAV_BASIC / router / "frr.conf").read_text().splitlines())
    got = normalized((kit / router / "frr.conf").read_text().splitlines())
    assert own <= got
    n = router[1]
    assert got - own == {
        "ip table range 100000 150000", "router bgp 65000", *(
            () if router == "r4" else (f"bgp router-id 198.18.255.{n}", "no bgp ebgp-requires-policy",
                                       "no bgp default ipv4-unicast")),
        *(f"neighbor {a} {rest}" for a in CTL for rest in ("remote-as 65000", "update-source lo",
                                                            "timers connect 5")),
        "address-family ipv4 unicast", "address-family ipv6 unicast", "exit-address-family", "exit", "end",
        *(f"neighbor {a} {rest}" for a in CTL for rest in ("activate", "addpath-tx-all-paths"))} - own
    fs = normalized((kit / router / "flowspec.conf").read_text().splitlines())
    assert fs == {"router bgp 65000", "address-family ipv4 flowspec", "address-family ipv6 flowspec",
                  *(f"neighbor {a} activate" for a in CTL), "exit-address-family", "exit", "end"}


def test_converged_expects_the_adjacencies_sessions_and_routes(kit: Path) -> None:
    got = json.loads((kit / "converged.json").read_text())
    ospf = {r: sorted(got[r]["show ip ospf neighbor json"]["neighbors"]) for r in ROUTERS}
    assert ospf == {"r1": ["198.18.255.3"], "r2": ["198.18.255.3"], "r4": ["198.18.255.3"],
                    "r3": ["198.18.255.1", "198.18.255.2", "198.18.255.4"]}
    assert [n["neighborId"] for n in got["r3"]["show ipv6 ospf6 neighbor json"]["neighbors"]] == [
        "198.18.255.1", "198.18.255.2", "198.18.255.4"]
    assert got["r4"]["show bgp neighbors json"] == {a: {"bgpState": "Established"}
                                                    for a in ("198.18.30.2", "2001:db8:0:30::2")}
    assert got["ext"]["show bgp neighbors json"] == {a: {"bgpState": "Established"}
                                                     for a in ("198.18.30.1", "2001:db8:0:30::1")}
    for router in ROUTERS:  # AS 65100's space reaches every router (r4 over eBGP, the others over OSPF)
        assert got[router]["show ip route 198.19.0.0/16 json"] == {"198.19.0.0/16": [{"installed": True}]}
        assert "show ipv6 route 2001:db8:100::/48 json" in got[router]
    assert got["r1"]["show ip route 198.18.2.0/24 json"] == {"198.18.2.0/24": [{"installed": True}]}
    # the external neighbour learns AS 65000's aggregates (r4's savd.prefixes)
    assert got["ext"]["show ip route 198.18.0.0/16 json"] == {"198.18.0.0/16": [{"installed": True}]}
    assert "show ipv6 route 2001:db8::/48 json" in got["ext"]


def test_generated_topology_binds_the_kit_files_and_runs_init_again(kit: Path) -> None:
    topo = load_topology(kit / "sav-basic.clab.yml")
    r1 = topo.node("r1")
    assert r1.bind_for("/etc/frr/frr.conf") == kit / "r1" / "frr.conf"
    assert r1.bind_for("/etc/frr/daemons") == SAV_BASIC / "r1" / "daemons"
    exporter = r1.bind_for("/usr/local/lib/savd/bgpls_exporter.py")
    assert exporter is not None and exporter.name == "bgpls_exporter.py" and exporter.exists()
    assert r1.exec[0] == "vtysh -f /etc/frr/flowspec.conf" and len(r1.exec) == 2
    assert "--local-address 198.18.255.1 --name r1" in r1.exec[1]
    # the output is itself a labelled topology: init on it gives the same files
    again = kit.parent / "again"
    write_kit(read_plan(topo), again, KitOptions(prefix="svdemo"))
    files = sorted(p.relative_to(kit) for p in kit.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix == ".yml":  # its header names the folder it was written to
            assert yaml.safe_load((again / rel).read_text()) == yaml.safe_load((kit / rel).read_text())
        elif rel.name == "rpki.json":  # stamped with its build time
            roas = [json.loads((d / rel).read_text())["roas"] for d in (again, kit)]
            assert roas[0] == roas[1]
        else:
            assert (again / rel).read_text() == (kit / rel).read_text(), rel


def test_out_must_not_be_the_topology_folder() -> None:
    from appliance.lab.errors import LabError

    with pytest.raises(LabError, match="own folder"):
        write_kit(read_plan(load_topology(SAV_BASIC / "sav-basic.clab.yml")), SAV_BASIC,
                  KitOptions(prefix="x"))


def _doc(tmp_path: Path, **labels: dict[str, str]) -> Path:
    (tmp_path / "r1").mkdir(exist_ok=True)
    (tmp_path / "r1" / "frr.conf").write_text(
        "interface lo\n ip address 198.18.255.1/32\nexit\ninterface eth1\n ip address 198.18.1.1/24\n"
        " ip ospf area 0\nexit\ninterface eth2\n ip address 198.18.30.1/30\nexit\nrouter ospf\nexit\n"
        "router bgp 65000\n neighbor 198.18.30.2 remote-as 65100\nexit\n")
    nodes: dict[str, Any] = {
        "r1": {"binds": ["r1/frr.conf:/etc/frr/frr.conf"], "labels": {"savd.role": "access"}},
        "h1": {"labels": {"savd.subnets": "198.18.1.0/24"}},
        "ctl": {"labels": {"savd.role": "appliance"}, "exec": ["ip addr add 198.18.20.10/24 dev eth1"]},
    }
    for node, extra in labels.items():
        nodes[node]["labels"].update(extra)
    doc = {"name": "t", "topology": {"defaults": {"kind": "linux"}, "nodes": nodes,
                                     "links": [{"endpoints": ["h1:eth1", "r1:eth1"]},
                                               {"endpoints": ["ctl:eth1", "r1:eth3"]}]}}
    path = tmp_path / "t.clab.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


REFUSALS = [  # (labels to change, node, label, words in the message)
    ({"r1": {"savd.role": "edge"}}, "r1", "savd.role", "'edge' is not one of"),
    ({"ctl": {"savd.role": "host"}}, "ctl", "savd.role", "exactly one node needs savd.role: appliance"),
    ({"r1": {"savd.asn": "65001"}}, "r1", "savd.asn", "65001 but frr.conf has router bgp 65000"),
    ({"r1": {"savd.asn": "AS1"}}, "r1", "savd.asn", "not an AS number"),
    ({"h1": {"savd.subnets": "198.18.9.0/24"}}, "h1", "savd.subnets", "lies on no linked savd router"),
    ({"h1": {"savd.subnets": "198.18.1.1/24"}}, "h1", "savd.subnets", "is not a prefix"),
    ({"r1": {"savd.role": "border"}}, "r1", "savd.neighbors", "the border has eBGP neighbours (198.18.30.2)"),
    ({"r1": {"savd.role": "border", "savd.neighbors": "eth2=65100:friend"}}, "r1", "savd.neighbors",
     "'friend' is not one of"),
    ({"r1": {"savd.role": "border", "savd.neighbors": "eth2=65200:peer"}}, "r1", "savd.neighbors",
     "no eBGP neighbour of AS 65200"),
    ({"ctl": {"savd.address": "2001:db8::10"}}, "ctl", "savd.address", "no IPv4 address"),
    ({"r1": {"savd.colour": "red"}}, "r1", "savd.colour", "unknown savd label"),
]


@pytest.mark.parametrize(("labels", "node", "label", "words"), REFUSALS,
                         ids=[f"{r[2]}:{r[3][:20]}" for r in REFUSALS])
def test_bad_labels_are_refused_naming_node_and_label(tmp_path: Path, labels: dict[str, dict[str, str]],
                                                      node: str, label: str, words: str) -> None:
    with pytest.raises(LabelError) as err:
        read_plan(load_topology(_doc(tmp_path, **labels)))
    assert err.value.node == node and err.value.label == label
    assert words in str(err.value) and f"node {node}: {label}:" in str(err.value)


def test_a_good_small_topology_is_planned(tmp_path: Path) -> None:
    plan = read_plan(load_topology(_doc(tmp_path, r1={"savd.role": "border",
                                                       "savd.neighbors": "eth2=65100:provider"})))
    assert plan.asn == 65000 and str(plan.appliance4) == "198.18.20.10" and plan.appliance6 is None
    assert [(a.router, a.interface) for s in plan.subnets for a in s.attachments] == [("r1", "eth1")]
    assert plan.router("r1").neighbors[0].address == "198.18.30.2"


def test_labels_merge_from_groups() -> None:
    doc = {"name": "g", "topology": {"groups": {"rt": {"kind": "linux", "labels": {"savd.role": "core",
                                                                                  "savd.asn": 65000}}},
                                     "nodes": {"a": {"group": "rt", "labels": {"savd.role": "access"}}}}}
    node = parse_topology(doc, Path("/x/g.clab.yml")).node("a")
    assert node.label("savd.role") == "access" and node.label("savd.asn") == "65000"


def test_an_inspector_node_is_one_steering_instance_per_address_family(tmp_path: Path) -> None:
    """tests/lab/fixtures/steer: insp has an IPv4 and an IPv6 address; a redirect's next hop is of the
    suspect's family, so savd gets `insp` (IPv4) and `insp-v6` (IPv6), and accepts the file."""
    steer = REPO / "tests" / "lab" / "fixtures" / "steer" / "steer.clab.yml"
    write_kit(read_plan(load_topology(steer)), tmp_path, KitOptions(prefix="svs"))
    config = load_config(tmp_path / "savd.toml")
    assert [(i.name, i.address) for i in config.steering.inspectors] == [
        ("insp", "198.18.80.2"), ("insp-v6", "2001:db8:0:80::2")]
