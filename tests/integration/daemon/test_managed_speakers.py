"""The speakers savd manages, as real gobgpd and ExaBGP processes (no lab, no BGP session: the peers never
answer, GoBGP waits 5-10 s before its first connect, the ExaBGP peer is passive): one gobgpd per router,
started together, none left behind when one cannot start, and the holdover of a killed savd's speakers
(adopted by the next savd, relay and all, or gone once the grace time is over)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.config import parse_config
from appliance.demo import _speaker_pids
from appliance.monitor import Monitor
from appliance.speakers.exabgp import ExaBgpSpeaker
from appliance.speakers.gobgp import GoBgpSpeaker
from appliance.speakers.sessions import SpeakerSet
from appliance.state import StateStore

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(60)


def config_text(data_dir: Path, exabgp: bool = False) -> str:
    """Two routers' gobgpd; with `exabgp`, also a FlowSpec ExaBGP speaker (passive: it connects nowhere)."""
    extra = textwrap.dedent("""
        [[speaker]]
        name = "xfs"
        type = "exabgp"
          [[speaker.peers]]
          address = "127.0.0.9"
          asn = 65000
          router = "r9"
          families = ["ipv4-flowspec", "ipv6-flowspec"]
          passive = true
        """) if exabgp else ""
    return extra + textwrap.dedent(f"""\
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


def gobgpd_pids(data_dir: Path) -> list[int]:
    """gobgpd processes under `data_dir` (without their holdover guards)."""
    pids = _speaker_pids(data_dir)
    return sorted(p for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == "gobgpd")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    try:
        yield data
    finally:  # a failing check leaves no gobgpd behind either
        for pid in _speaker_pids(data):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_one_gobgpd_per_router_and_none_left_when_one_cannot_start(tmp_path: Path, data_dir: Path) -> None:
    check_start_and_failed_start(tmp_path, data_dir)


def check_start_and_failed_start(tmp_path: Path, data_dir: Path) -> None:
    config = parse_config(config_text(data_dir), tmp_path / "savd.toml")

    async def start_and_stop() -> list[int]:
        speakers = SpeakerSet(config)
        await speakers.start(context())
        running = gobgpd_pids(data_dir)
        assert sorted(speakers.speakers) == ["fs/r1", "fs/r2"]
        await speakers.stop()
        return running

    running = asyncio.run(start_and_stop())
    assert len(running) == 2, running  # one gobgpd per router (each under its guard), in its own directory
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


SAVD_STANDIN = """
import asyncio, sys
from pathlib import Path
from types import SimpleNamespace
from appliance.config import load_config
from appliance.monitor import Monitor
from appliance.speakers.exabgp import ExaBgpSpeaker
from appliance.speakers.gobgp import GoBgpSpeaker
from appliance.state import StateStore
from appliance.speakers.sessions import SpeakerSet

class Rules:
    def current(self):
        return None

async def main():
    ctx = SimpleNamespace(store=StateStore(), monitor=Monitor(), rules=Rules(), on_rules=lambda f: None)
    await SpeakerSet(load_config(Path(sys.argv[1])), holdover_s=float(sys.argv[2])).start(ctx)
    print("started", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def killed_savd(tmp_path: Path, data_dir: Path, holdover_s: float) -> list[int]:
    """Start the speakers (gobgpd and ExaBGP) in a stand-in savd process, SIGKILL it; every process of its
    speakers it left (guards, gobgpd, ExaBGP, its API relay)."""
    conf = tmp_path / "savd.toml"
    conf.write_text(config_text(data_dir, exabgp=True))
    proc = subprocess.Popen([sys.executable, "-c", SAVD_STANDIN, str(conf), str(holdover_s)],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        left = sorted(_speaker_pids(data_dir))
        assert len(gobgpd_pids(data_dir)) == 2
    finally:
        proc.kill()
        proc.wait()
    return left


def test_a_killed_savds_speakers_are_adopted_by_the_next_savd(tmp_path: Path, data_dir: Path) -> None:
    left = killed_savd(tmp_path, data_dir, holdover_s=30)
    time.sleep(1.5)  # the guards noticed their owner is gone, and hold on; ExaBGP's relay waits
    assert sorted(_speaker_pids(data_dir)) == left
    config = parse_config(config_text(data_dir, exabgp=True), tmp_path / "savd.toml")

    async def restart() -> tuple[list[int], bool]:
        speakers = SpeakerSet(config, holdover_s=30)
        await speakers.start(context())
        try:
            exabgp = speakers.speakers["xfs"]
            assert isinstance(exabgp, ExaBgpSpeaker)
            answers = await exabgp.send("show neighbor json")  # the relay carries savd's commands again
            return sorted(_speaker_pids(data_dir)), answers
        finally:
            await speakers.stop()

    assert asyncio.run(restart()) == (left, True)  # adopted, not restarted: the same processes
    assert _speaker_pids(data_dir) == []  # a clean stop ends guards and speakers alike


def test_a_killed_savds_speakers_go_once_the_holdover_is_over(tmp_path: Path, data_dir: Path) -> None:
    killed_savd(tmp_path, data_dir, holdover_s=1)
    deadline = time.monotonic() + 15
    while _speaker_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _speaker_pids(data_dir) == []  # fail open: nobody drives it, so its rules go with it


def test_an_external_gobgpd_named_by_api_is_driven_but_never_started_or_stopped(tmp_path: Path) -> None:
    sock = tmp_path / "ext.sock"
    conf = tmp_path / "gobgpd.toml"
    conf.write_text('[global.config]\n  as = 65000\n  router-id = "198.18.20.10"\n  port = -1\n')
    with (tmp_path / "gobgpd.log").open("wb") as log:
        external = subprocess.Popen(["gobgpd", "-f", str(conf), "--api-hosts", f"unix://{sock}", "-p",
                                     "--pprof-disable", "--log-plain"], stdout=log, stderr=log)
    config = parse_config(textwrap.dedent(f"""\
        [appliance]
        asn = 65000
        router_id = "198.18.20.10"
        data_dir = "{tmp_path / 'data'}"

        [[speaker]]
        name = "ext"
        type = "gobgp"
        api = "unix://{sock}"
          [[speaker.peers]]
          address = "127.0.0.5"
          asn = 65000
          router = "r1"
        """), tmp_path / "savd.toml")

    async def run() -> tuple[int | None, set[str]]:
        speakers = SpeakerSet(config)
        await speakers.start(context())
        try:
            ext = speakers.speakers["ext/r1"]
            assert isinstance(ext, GoBgpSpeaker)
            return ext.pid, await ext.established()
        finally:
            await speakers.stop()

    try:
        assert asyncio.run(run()) == (None, set())  # reached over gRPC, not a child of savd
        assert external.poll() is None  # savd's stop leaves the operator's gobgpd running
    finally:
        external.kill()
        external.wait()
