"""`savd rules show|explain` and `savd scenarios run` through the real entry point; loader error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.engine.loader import SnapshotError, load_as_rel, load_snapshot, parse_snapshot
from appliance.model import Relationship

DATA = Path(__file__).parent / "data"
SNAP = DATA / "example-snapshot.yaml"


def test_rules_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "--snapshot", str(SNAP), "--json"]) == 0
    rules = {(r["router"], r["interface"]): r for r in json.loads(capsys.readouterr().out)["rules"]}
    cust = rules[("b1", "cust0")]
    # ASPAs cover 65001 and 65002 (BAR-SAV's list); AS65200 has none, so ASPA cannot rule out that it is a
    # hidden customer of AS65001: its prefix stays permitted (the default narrows only on proof). Every known
    # prefix is allowed, so the default's blocklist form is shorter than that 4-prefix allowlist: it lists
    # only the internal prefixes of the border-block (intra), none of which overlaps an allowed prefix
    assert cust["kind"] == "block" and cust["algorithm"] == "auto:bar-sav-proven-block+intra:border-block"
    assert cust["prefixes"] == ["198.18.0.0/24", "198.18.1.0/24"]
    up = rules[("b1", "up0")]
    assert up["kind"] == "block" and up["action"]["mode"] == "rate-limit"
    assert "198.18.9.0/24" not in up["prefixes"] and "198.18.0.0/24" in up["prefixes"]
    assert rules[("r2", "eth1")]["delivery"] == "acl" and rules[("r2", "eth1")]["action"]["mode"] == "monitor"


def test_rules_show_router_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "--snapshot", str(SNAP), "--router", "r1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("r1:eth1  allowlist  intra:subnet-allow")
    assert "b1:" not in out


def test_rules_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "explain", "198.18.1.7", "--snapshot", str(SNAP), "--json"]) == 0
    view = {(e["router"], e["interface"]): e for e in json.loads(capsys.readouterr().out)}
    assert view[("r1", "eth1")]["verdict"] == "allow"
    assert "report:s1@r2:eth1 via file" in view[("r1", "eth1")]["reasons"]
    assert view[("b1", "up0")]["verdict"] == "block"
    assert view[("b1", "cust0")]["verdict"] == "block"
    notes = view[("b1", "cust0")]["notes"]
    assert notes[0].startswith("allowlist would list 4 prefixes, blocklist 0")


def test_scenarios_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "run", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    auto = [r for r in rows if r["algorithm"] == "auto"]
    assert len(auto) >= 13 and all(r["improper_block"] == 0 for r in auto)
    no_rpki = [r for r in rows if r["algorithm"] == "auto-no-rpki"]
    assert len(no_rpki) >= 10 and all(r["improper_block"] == 0 for r in no_rpki)
    assert all(r["reproduced"] for r in rows)
    fig4 = {r["algorithm"]: r for r in rows if r["scenario"] == "rfc8704-fig4"}
    assert fig4["efp-a"]["improper_block"] == 2 and fig4["efp-b"]["improper_block"] == 0


def test_bad_snapshot_names_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("paths:\n  - {router: b1, interface: x, prefix: 198.18.0.1/24, as_path: [1]}\n")
    assert main(["rules", "show", "--snapshot", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: paths[0].prefix: not a canonical prefix" in err
    with pytest.raises(SnapshotError, match=r"neighbors\[0\].relationship: missing"):
        parse_snapshot({"neighbors": [{"router": "b", "interface": "i", "asn": 1}]}, "inline")
    with pytest.raises(SnapshotError, match=r"routers\[0\]: missing field 'name'"):
        parse_snapshot({"routers": [{"asn": 1}]}, "inline")
    with pytest.raises(SnapshotError, match="policy"):
        parse_snapshot({"policy": {"default_algorithm": "nonsense"}}, "inline")


def test_loader_fills_relationship_from_as_rel() -> None:
    snap = load_snapshot(SNAP)
    up = next(n for n in snap.neighbors if n.interface == "up0")
    assert up.relationship is Relationship.PROVIDER


def test_caida_serial1_file(shared_data: Path) -> None:
    rels = load_as_rel(shared_data / "as-relationships/caida-serial-1/20230101.as-rel.txt.bz2")
    p2c = sum(len(c) for c in rels.customers.values())
    p2p = sum(len(p) for p in rels.peers.values()) // 2
    assert (p2c, p2p) == (149459, 231078)  # the counts the data README states
    provider, customers = next(iter(rels.customers.items()))
    assert rels.relationship(provider, next(iter(customers))) is Relationship.CUSTOMER
