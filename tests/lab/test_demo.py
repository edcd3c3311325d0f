"""`savd demo` end to end, as `make demo` runs it: exit code 0 only when every spoofed packet was dropped
and every legitimate one delivered, and nothing of it is left behind afterwards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.demo import _speaker_pids
from appliance.lab.netns import list_netns
from appliance.lab.runner import new_prefix

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(240)]

PREFIX = new_prefix()  # not the demo's own prefix: `make demo` (or another run of this test) may run
WORKDIR = Path(f"/tmp/savd-demo-test-{PREFIX}")


def test_savd_demo_drops_all_spoofed_and_no_legitimate_packet(
    require_root: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--prefix", PREFIX, "--workdir", str(WORKDIR)]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out
    assert "on `savd lab init`'s output for" in out and f"/{PREFIX}/kit" in out
    summary = re.search(r"spoofed: (\d+)/(\d+) dropped .*legitimate: (\d+)/(\d+) delivered, 0 dropped", out)
    assert summary and summary.group(1) == summary.group(2) and summary.group(3) == summary.group(4)
    assert int(summary.group(2)) >= 100 and "WRONG" not in out
    active = re.search(r"rules active ([\d.]+) s after savd started", out)
    assert active and float(active.group(1)) < 60
    for router in ("r1", "r2", "r4"):  # access allowlists and the border's blocklist reached nftables
        assert re.search(rf"{router}: [1-9]\d*", out.split("per router:")[1].splitlines()[1])
    assert not [n for n in list_netns() if n.startswith(PREFIX + "-")]
    assert not _speaker_pids(WORKDIR / "data")
