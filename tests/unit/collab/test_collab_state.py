"""The service's state file: round trip, atomic replacement, a damaged file set aside."""

from __future__ import annotations

from pathlib import Path

from appliance.collab.agreement import AgreementBook
from appliance.collab.model import Agreement
from appliance.collab.replay import ReplayState
from appliance.collab.service import STATE_FILE, _State, load_state, save_state


def test_round_trip_and_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    assert load_state(path) == _State()
    state = _State(AgreementBook({"c": Agreement("c", "a", "b", "resilient", "sav-prefixes", 9.0)}),
                   ReplayState({("a", "c"): 4}), 17, {"c": 3600.0})
    save_state(path, state)
    assert load_state(path) == state
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # the temporary file was renamed
    path.write_text('{"book": {"agreements": [{"ca_id": 1}]}}')
    assert load_state(path) == _State()
    assert path.with_suffix(".bad").exists()
