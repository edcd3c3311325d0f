"""The scenario format (appliance/engine/scenarios.py): unknown keys are errors naming the file and the key
path, `at:` is honoured, propagation with NO_EXPORT and `to:`, several validating ASes, and per-interface
traffic expectations that report their failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.engine.loader import load_scenario
from appliance.engine.scenarios import Scenario, ScenarioError, build, expect_mismatches, run_scenario

BASE: dict[str, Any] = {
    "id": "t",
    "validating": ["AS4", "AS2"],
    "rel": [["AS1", "AS2", "c2p"], ["AS1", "AS3", "c2p"], ["AS2", "AS4", "c2p"], ["AS3", "AS4", "c2p"]],
    "verdicts": [{"algorithm": "auto", "outcome": "works"}],
}


def _sc(**kw: Any) -> Scenario:
    return Scenario("t", {**BASE, **kw}, "t.yaml")


def _paths(sc: Scenario) -> set[tuple[str, str, str, tuple[int, ...]]]:
    return {(p.router, p.interface, p.prefix, p.as_path) for p in build(sc, "auto").paths}


def test_unknown_keys_are_errors_naming_file_and_path(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"t\.yaml: ann\[0\]\.community: unknown key"):
        _sc(ann=[{"at": "AS4", "from": "AS2", "pfx": "P1", "path": ["AS2"], "community": "NO_EXPORT"}])
    with pytest.raises(ScenarioError, match=r"t\.yaml: expect\.auto\.AS4\.AS2\.allow: unknown key"):
        _sc(expect={"auto": {"AS4": {"AS2": {"allow": ["P1"]}}}})
    with pytest.raises(ScenarioError, match=r"t\.yaml: legitimate: unknown key"):
        _sc(legitimate={})
    f = tmp_path / "bad.yaml"
    f.write_text("id: bad\nlocal_as: AS1\nneighbours: {AS2: customer}\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: neighbours: unknown key"):
        load_scenario(f)


def test_at_is_honoured() -> None:
    sc = _sc(ann=[{"at": "AS2", "from": "AS1", "pfx": "P1", "path": ["AS1"]}])
    assert _paths(sc) == {("AS2", "AS1", "198.18.1.0/24", (65001,))}
    with pytest.raises(ScenarioError, match=r"ann\[0\]\.at: AS3 does not validate"):
        build(_sc(ann=[{"at": "AS3", "from": "AS1", "pfx": "P1", "path": ["AS1"]}]), "auto")
    with pytest.raises(ScenarioError, match=r"ann\[0\]\.from: AS3 is not a neighbour of AS2"):
        build(_sc(ann=[{"at": "AS2", "from": "AS3", "pfx": "P1", "path": ["AS3"]}]), "auto")


def test_propagation_honours_no_export_and_to() -> None:
    sc = _sc(originate=[
        {"as": "AS1", "pfx": "P1"},
        {"as": "AS1", "pfx": "P2", "to": ["AS3"]},
        {"as": "AS1", "pfx": "P3", "no_export": ["AS2"], "prepend": {"AS3": 1}},
    ])
    p1, p2, p3 = "198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"
    assert _paths(sc) == {
        ("AS2", "AS1", p1, (65001,)),
        ("AS4", "AS2", p1, (65002, 65001)),
        ("AS4", "AS3", p1, (65003, 65001)),
        # AS4's best P1 route comes from AS2 (equal length, lower sender): not sent back to AS2
        ("AS4", "AS3", p2, (65003, 65001)),
        ("AS2", "AS4", p2, (65004, 65003, 65001)),
        ("AS2", "AS1", p3, (65001,)),  # NO_EXPORT: AS2 keeps it, AS4 hears P3 via AS3 only
        ("AS4", "AS3", p3, (65003, 65001, 65001)),
        ("AS2", "AS4", p3, (65004, 65003, 65001, 65001)),
    }


def test_rel_does_not_switch_on_rpki() -> None:
    snap = build(_sc(originate=[{"as": "AS1", "pfx": "P1"}]), "auto")
    assert snap.aspas == () and snap.rpki_ready is None and not snap.rpki().ready
    with_aspa = build(_sc(aspas_from_rel=["AS1", "AS4"]), "auto")
    assert {(a.customer, a.providers) for a in with_aspa.aspas} == {(65001, (65002, 65003)), (65004, (0,))}


def test_per_interface_expectations_report_failures() -> None:
    sc = _sc(
        originate=[{"as": "AS1", "pfx": "P1"}, {"as": "AS1", "pfx": "P2", "to": ["AS3"], "no_export": True}],
        expect={"efp-b": {"AS4": {"AS2": {"pass": ["P1", "P2"], "drop": ["P9"]}}},
                "auto-no-rpki": {"AS4": {"AS2": {"drop": ["P9"]}}}},
        universe_extra=["P9"],
    )
    got = expect_mismatches(sc, run_scenario(sc))
    assert got == [
        "t efp-b AS4/AS2: P2 is dropped, expected pass",  # hidden by NO_EXPORT: EFP-uRPF B never sees it
        "t auto-no-rpki AS4/AS2: P9 passes, expected drop",  # the default without RPKI is loose
    ]


def test_a_bare_interface_needs_one_validating_as() -> None:
    sc = _sc(legit={"AS2": ["P1"]})
    with pytest.raises(ScenarioError, match=r"legit\.AS2: name the router too"):
        run_scenario(sc)
