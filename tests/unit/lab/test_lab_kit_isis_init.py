"""`savd lab init` on an IS-IS topology (tests/lab/fixtures/kitisis, issue 14): the daemons file enables
isisd (and no OSPF daemon), converged.json expects an Up IS-IS adjacency per non-passive link end as
`show isis neighbor json` prints it (FRR 8.4.4, checked against its real output), with the peer's
hostname only when its frr.conf sets one; the routers' subnet routes are expected like OSPF's."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from appliance.lab.kit.frrconf import parse_frr_conf
from appliance.lab.kit.labels import read_plan
from appliance.lab.kit.render import KitOptions, converged_doc, write_kit
from appliance.lab.status import json_subset
from appliance.lab.topology import load_topology

REPO = Path(__file__).resolve().parents[3]
KITISIS = REPO / "tests" / "lab" / "fixtures" / "kitisis" / "kitisis.clab.yml"
# FRR 8.4.4's `show isis neighbor json` on a1 of kitisis (captured; the empty circuits are passive ones)
A1_NEIGHBORS: dict[str, Any] = {"areas": [{"area": "1", "circuits": [
    {"circuit": 0},
    {"circuit": 0, "adj": "c1", "interface": "eth2", "level": 2, "state": "Up", "expires-in": "2s",
     "snpa": "2020.2020.2020"},
    {"circuit": 0, "adj": "c2", "interface": "eth3", "level": 2, "state": "Up", "expires-in": "2s",
     "snpa": "2020.2020.2020"},
    {"circuit": 0}]}]}


def test_isis_topology_gets_isisd_and_isis_adjacencies(tmp_path: Path) -> None:
    write_kit(read_plan(load_topology(KITISIS)), tmp_path, KitOptions(prefix="svtest"))
    for r in ("a1", "a2", "c1", "c2"):
        daemons = (tmp_path / r / "daemons").read_text()
        assert "isisd=yes" in daemons and "ospfd" not in daemons
    doc = json.loads((tmp_path / "converged.json").read_text())
    circuits = {r: sorted((c["interface"], c.get("adj"))
                          for c in doc[r]["show isis neighbor json"]["areas"][0]["circuits"])
                for r in ("a1", "a2", "c1", "c2")}
    assert circuits == {"a1": [("eth2", "c1"), ("eth3", "c2")], "a2": [("eth2", "c1"), ("eth3", "c2")],
                        "c1": [("eth1", "a1"), ("eth2", "a2")], "c2": [("eth1", "a1"), ("eth2", "a2")]}
    assert json_subset(doc["a1"]["show isis neighbor json"], A1_NEIGHBORS)
    down = copy.deepcopy(A1_NEIGHBORS)
    down["areas"][0]["circuits"][2]["state"] = "Initializing"
    assert not json_subset(doc["a1"]["show isis neighbor json"], down)  # c2 not Up yet: not converged
    assert doc["a1"]["show ip route 198.18.72.0/24 json"] == {"198.18.72.0/24": [{"installed": True}]}
    assert not any("ospf" in cmd for node in doc.values() for cmd in node)


def test_adjacency_without_peer_hostname_expects_interface_and_state_only(tmp_path: Path) -> None:
    plan = read_plan(load_topology(KITISIS))
    confs = {r.name: r.frr for r in plan.routers}
    c1 = confs["c1"]
    text = "\n".join(line for line in c1.lines if not line.startswith("hostname"))
    confs["c1"] = parse_frr_conf(text, c1.path)
    doc = converged_doc(plan, confs)
    a1 = doc["a1"]["show isis neighbor json"]["areas"][0]["circuits"]
    assert {"interface": "eth2", "state": "Up"} in a1  # c1 advertises the machine's name: not expected
    assert {"interface": "eth3", "state": "Up", "adj": "c2"} in a1
