"""Facade properties: byte-identical output for equal input, independent of input order."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.engine.scenarios import Scenario, build
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import SavRuleSet
from appliance.scenarios import SCENARIO_DIR

SCENARIOS = SCENARIO_DIR


def _snap(name: str, algorithm: str = "auto") -> Snapshot:
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    return build(Scenario(data["id"], data), algorithm)


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from(["wu08-fig6-7-sib", "barsav-slides-cc-example"]))
def test_permuted_input_gives_identical_json(rnd: object, name: str) -> None:
    snap = _snap(name)
    want = compute(snap).to_json()
    shuffled = {}
    for field in ("neighbors", "paths", "vrps", "aspas", "interfaces"):
        items = list(getattr(snap, field))
        rnd.shuffle(items)  # type: ignore[attr-defined]
        shuffled[field] = tuple(items)
    assert compute(snap.replace(**shuffled)).to_json() == want


def test_intra_permutation() -> None:
    snap = _snap("tong-fig3-anycast")
    want = compute(snap).to_json()
    assert compute(snap.replace(reports=snap.reports[::-1], routers=snap.routers[::-1])).to_json() == want
    assert '"kind":"block"' in want and '"kind":"allow"' in want


def test_assemble_equals_model_normalisation() -> None:
    for path in sorted(SCENARIOS.glob("*.yaml")):
        rules = compute(_snap(path.stem))
        assert rules.to_json() == SavRuleSet.of(rules.rules).to_json(), path.stem
        assert rules.rules, path.stem
