"""The reference SAV scenario suite: one YAML file per scenario, shipped as package data.

`savd scenarios run` reads this folder by default, and tests/scenarios/test_scenarios.py runs each file as
a test, so the suite that ships is the suite that is tested. File names are scenario ids.
"""

from __future__ import annotations

from pathlib import Path

SCENARIO_DIR = Path(__file__).resolve().parent
