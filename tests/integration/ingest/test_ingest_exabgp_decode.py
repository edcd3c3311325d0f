"""Re-decode the ExaBGP qa BGP-LS hex with the pinned ExaBGP 5.0.15 (`exabgp decode`) and check that
savd reads the same topology facts as from the recorded JSON, including TLVs printed as repeated keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.sources.bgpls.decode import LsLink, decode_update
from appliance.speakers.exabgp import UpdateReceived, parse_api_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
EXABGP = str(Path(sys.executable).parent / "exabgp")


def live_decode(shared_data: Path, name: str) -> tuple[str, str]:
    lines = (shared_data / "bgp-ls" / "exabgp-qa-decoding" / name).read_text().splitlines()
    out = subprocess.run(
        [EXABGP, "decode", "-f", "bgp-ls bgp-ls", "--update", lines[1].replace(" ", "")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    json_line = next(line for line in out.splitlines() if line.startswith("{"))
    return json_line, lines[2]


@pytest.mark.parametrize("name", [f"bgp-ls-{i}" for i in (2, 4, 5, 6, 7, 8, 9, 10)])
def test_live_decode_gives_same_items_as_recorded(shared_data: Path, name: str) -> None:
    live, recorded = live_decode(shared_data, name)
    evs = []
    for text in (live, recorded):
        ev = parse_api_line(text)
        assert isinstance(ev, UpdateReceived), text[:200]
        events, errors = decode_update(ev, "x")
        assert errors == []
        evs.append([e.item.key() for e in events])
    assert evs[0] == evs[1] and evs[0]


def test_repeated_remote_te_router_id_keys_are_all_kept(shared_data: Path) -> None:
    live, _ = live_decode(shared_data, "bgp-ls-6")
    assert live.count('"remote-te-router-id"') == 2
    ev = parse_api_line(live)
    assert isinstance(ev, UpdateReceived)
    (event,), _ = decode_update(ev, "x")
    assert isinstance(event.item, LsLink)
    assert event.item.remote_te_router_ids == ("10.0.2.1", "fc00:1000:2::1")
