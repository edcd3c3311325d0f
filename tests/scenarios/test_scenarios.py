"""Every reference scenario of sav-algorithms.md section 2: expected lists, the documents' verdicts, and the
default policy's zero improper block. One test per scenario file; file names are the ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appliance.engine.scenarios import Scenario, check_verdicts, cones, expected_mismatches, run_scenario

HERE = Path(__file__).parent
FILES = sorted(HERE.glob("*.yaml"))


def _load(path: Path) -> Scenario:
    data = yaml.safe_load(path.read_text())
    assert data["id"] == path.stem, "scenario id must match its file name"
    return Scenario(data["id"], data)


def test_every_reference_scenario_is_present() -> None:
    ids = {p.stem for p in FILES}
    wanted = {
        "rfc8704-fig1", "rfc8704-fig2", "rfc8704-fig3", "rfc8704-fig4", "wu08-fig6-7-sib",
        "barsav-v09-fig1-cdn-dsr", "barsav-slides-cc-example", "barsav-slides-refined-alg-a",
        "barsav-slides-leak-cleanup", "intra-ps24-fig2-asymmetric", "intra-arch00-uc1", "intra-arch00-uc2",
        "intra-ps06-hidden-dsr",
    }
    assert wanted <= ids


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path) -> None:
    sc = _load(path)
    assert sc.data.get("expected"), "a scenario without expectations cannot fail"
    assert sc.data.get("verdicts"), "a scenario without verdicts cannot fail"
    results = run_scenario(sc)
    problems = expected_mismatches(sc, results)
    problems += check_verdicts(sc, {a: s for a, (_, s) in results.items()})
    auto = results["auto"][1]
    if auto.improper_block:
        problems.append(f"default policy improperly blocks {auto.blocked}")
    if "expected_cone" in sc.data:
        got = cones(sc)
        for iface, want in sc.data["expected_cone"].items():
            if got.get(iface) != sorted(want):
                problems.append(f"cone of {iface}: want {sorted(want)}, got {got.get(iface)}")
    assert not problems, "\n".join(problems)


def test_results_are_deterministic() -> None:
    sc = _load(HERE / "wu08-fig6-7-sib.yaml")
    first = {a: r.to_json() for a, (r, _) in run_scenario(sc).items()}
    second = {a: r.to_json() for a, (r, _) in run_scenario(sc).items()}
    assert first == second
