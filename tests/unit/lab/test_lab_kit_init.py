"""`savd lab init`: on sav-basic's labelled topology it reproduces the committed savd config (configs/
demo.toml peers, roles, neighbours, enforcers), the routers' FlowSpec stanzas and iBGP lines, the reports
file and converged.json's adjacencies; bad labels are refused naming node and label."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.config import load_config
from appliance.lab.kit.labels import LabelError, read_plan
from appliance.lab.kit.render import KitOptions, bgp_stanza, flowspec_stanza, normalized, write_kit
from appliance.lab.status import json_subset
from appliance.lab.topology import load_topology, parse_topology

REPO = Path(__file__).resolve().parents[3]
SAV_BASIC = REPO / "containerlab" / "sav-basic"
ROUTERS = ("r1", "r2", "r3", "r4")


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit")
    write_kit(read_plan(load_topology(SAV_BASIC / "sav-basic.clab.yml")), out, KitOptions(prefix="svdemo"))
    return out


def _peers(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((s["name"], s.get("netns"), s.get("listen"), p["address"], p["asn"], p["router"],
                   tuple(p["families"]), p["local_address"], p.get("passive", False))
                  for s in doc["speaker"] for p in s["peers"])


def test_savd_toml_reproduces_the_demo_config(kit: Path) -> None:
    got = tomllib.loads((kit / "savd.toml").read_text())
    want = tomllib.loads((REPO / "configs" / "demo.toml").read_text())
    assert _peers(got) == _peers(want)
    assert len(_peers(got)) == 8  # 4 routers x (FlowSpec, BGP-LS)
    for key in ("engine", "enforcer", "flowspec"):
        assert got[key] == want[key], key
    assert got["appliance"]["asn"] == 65000 and got["appliance"]["router_id"] == "198.18.20.10"
    assert got["rpki"]["cache"][0]["port"] == want["rpki"]["cache"][0]["port"]
    config = load_config(kit / "savd.toml")  # savd itself accepts it
    assert [e.router for e in config.enforcers] == list(ROUTERS)


@pytest.mark.parametrize("router", ROUTERS)
def test_flowspec_stanza_equals_the_committed_one(kit: Path, router: str) -> None:
    committed = (SAV_BASIC / router / "flowspec.conf").read_text().splitlines()
    assert normalized((kit / router / "flowspec.conf").read_text().splitlines()) == normalized(committed)


@pytest.mark.parametrize("router", ROUTERS)
def test_ibgp_stanza_is_in_the_committed_frr_conf(router: str) -> None:
    plan = read_plan(load_topology(SAV_BASIC / "sav-basic.clab.yml"))
    committed = normalized((SAV_BASIC / router / "frr.conf").read_text().splitlines())
    stanza = normalized(bgp_stanza(plan, plan.router(router)))
    assert stanza - {"exit", "exit-address-family"} <= committed
    assert "neighbor 198.18.20.10 update-source lo" in stanza
    assert normalized(flowspec_stanza(plan, plan.router(router))) <= normalized(
        (SAV_BASIC / router / "flowspec.conf").read_text().splitlines())


def test_reports_match_the_demo_reports_but_for_ids(kit: Path) -> None:
    def key(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted((tuple(sorted(s["prefixes"])),
                       tuple((a["router"], a["interface"]) for a in s["attachments"]),
                       tuple(s.get("flags", ()))) for s in doc["subnets"])

    got = yaml.safe_load((kit / "reports.yaml").read_text())
    assert key(got) == key(yaml.safe_load((REPO / "configs" / "demo-reports.yaml").read_text()))


def test_converged_holds_the_committed_adjacencies_and_sessions(kit: Path) -> None:
    got = json.loads((kit / "converged.json").read_text())
    want = json.loads((SAV_BASIC / "converged.json").read_text())
    checked = 0
    for node, cmds in want.items():
        for cmd, doc in cmds.items():
            if "neighbor" in cmd:
                assert json_subset(got[node][cmd], doc) and json_subset(doc, got[node][cmd]), (node, cmd)
                checked += 1
    assert checked == 10
    assert got["r1"]["show ip route 198.19.0.0/16 json"] == {"198.19.0.0/16": [{"installed": True}]}


def test_generated_topology_binds_the_kit_files_and_runs_init_again(kit: Path) -> None:
    topo = load_topology(kit / "sav-basic.clab.yml")
    r1 = topo.node("r1")
    assert r1.bind_for("/etc/frr/frr.conf") == kit / "r1" / "frr.conf"
    assert r1.bind_for("/etc/frr/daemons") == SAV_BASIC / "r1" / "daemons"
    exporter = r1.bind_for("/usr/local/lib/savd/bgpls_exporter.py")
    assert exporter is not None and exporter.name == "bgpls_exporter.py" and exporter.exists()
    assert r1.exec[0] == "vtysh -f /etc/frr/flowspec.conf" and len(r1.exec) == 2
    assert "--local-address 198.18.255.1 --name r1" in r1.exec[1]
    # the output is itself a labelled topology: init on it gives the same savd.toml
    again = kit.parent / "again"
    write_kit(read_plan(topo), again, KitOptions(prefix="svdemo"))
    assert tomllib.loads((again / "savd.toml").read_text()) == tomllib.loads((kit / "savd.toml").read_text())


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
