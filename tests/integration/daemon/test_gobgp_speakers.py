"""savd's gobgp speakers with real gobgpd processes (no lab, no BGP session: the peers never answer and
GoBGP waits 5-10 s before its first connect): one managed gobgpd per router, started together, and no
gobgpd left behind when one of them cannot start."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.config import parse_config
from appliance.demo import _speaker_pids
from appliance.monitor import Monitor
from appliance.state import StateStore
from appliance.wiring import SpeakerSet

pytestmark = pytest.mark.timeout(60)


def config_text(data_dir: Path) -> str:
    return textwrap.dedent(f"""\
        [appliance]
        asn = 65000
        router_id = "198.18.20.10"
        data_dir = "{data_dir}"

        [[speaker]]
        name = "fs"
        type = "gobgp"
        """) + "".join(textwrap.dedent(f"""
          [[speaker.peers]]
          address = "127.0.0.{i + 1}"
          asn = 65000
          router = "r{i}"
          families = ["ipv4-flowspec", "ipv6-flowspec"]
        """) for i in (1, 2))


class Rules:
    def current(self) -> None:
        return None


def context() -> SimpleNamespace:
    return SimpleNamespace(store=StateStore(), monitor=Monitor(), rules=Rules(),
                           on_rules=lambda listener: None)


def test_one_gobgpd_per_router_and_none_left_when_one_cannot_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    try:
        check_start_and_failed_start(tmp_path, data_dir)
    finally:  # a failing check leaves no gobgpd behind either
        for pid in _speaker_pids(data_dir):
            os.kill(pid, signal.SIGKILL)


def check_start_and_failed_start(tmp_path: Path, data_dir: Path) -> None:
    config = parse_config(config_text(data_dir), tmp_path / "savd.toml")

    async def start_and_stop() -> list[int]:
        speakers = SpeakerSet(config)
        await speakers.start(context())
        running = _speaker_pids(data_dir)
        assert sorted(speakers.speakers) == ["fs/r1", "fs/r2"]
        await speakers.stop()
        return running

    running = asyncio.run(start_and_stop())
    assert len(running) == 2, running  # one gobgpd per router, each naming its own work directory
    assert _speaker_pids(data_dir) == []

    blocked = data_dir / "speakers" / "fs" / "r2"  # r2's work directory cannot be created
    blocked.parent.mkdir(parents=True, exist_ok=True)
    for stale in blocked.iterdir() if blocked.is_dir() else ():
        stale.unlink()
    if blocked.is_dir():
        blocked.rmdir()
    blocked.write_text("not a directory")
    with pytest.raises(OSError):
        asyncio.run(SpeakerSet(config).start(context()))
    assert _speaker_pids(data_dir) == []  # r1's gobgpd, which did start, was stopped again
