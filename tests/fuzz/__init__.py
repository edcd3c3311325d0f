"""Fuzz suites (hypothesis), kept as regression tests: each target runs SAVD_FUZZ_EXAMPLES cases (150 by
default, so `make test` stays in budget; set e.g. SAVD_FUZZ_EXAMPLES=5000 for a long run). Every input
that once crashed a target is kept under corpus/<target>/ and replayed by that target's test module."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("SAVD_FUZZ_EXAMPLES", "150"))
HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds"


def fuzz_settings() -> settings:
    return settings(max_examples=FUZZ_EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def corpus(target: str) -> list[Path]:
    """The kept crash inputs of one target, in name order (ids for parametrize)."""
    return sorted(p for p in (HERE / "corpus" / target).iterdir() if p.is_file() and p.name != "README")
