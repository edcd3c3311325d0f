"""Every reference scenario of sav-algorithms.md section 2 and the project's own: expected lists, traffic
expectations, the documents' verdicts, and the default policy's zero improper block with and without RPKI data
(scenarios.problems). One test per scenario file; file names are the ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.engine.loader import load_scenario
from appliance.engine.scenarios import Scenario, problems, run_scenario
from appliance.scenarios import SCENARIO_DIR

FILES = sorted(SCENARIO_DIR.glob("*.yaml"))  # package data: the suite `savd scenarios run` ships


def _load(path: Path) -> Scenario:
    sc = load_scenario(path)
    assert sc.id == path.stem, "scenario id must match its file name"
    return sc


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
    assert sc.data.get("verdicts"), "a scenario without verdicts cannot fail"
    assert sc.data.get("expected") or sc.data.get("expect"), "a scenario without expectations cannot fail"
    results = run_scenario(sc)
    found = problems(sc, results)
    assert not found, "\n".join(found)


def test_results_are_deterministic() -> None:
    sc = _load(SCENARIO_DIR / "wu08-fig6-7-sib.yaml")
    first = {a: r.to_json() for a, (r, _) in run_scenario(sc).items()}
    second = {a: r.to_json() for a, (r, _) in run_scenario(sc).items()}
    assert first == second
