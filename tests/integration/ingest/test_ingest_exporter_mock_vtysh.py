"""The exporter's BGP session against a real ExaBGP on loopback, fed by a mock vtysh (recorded FRR 8.4.4
JSON, edited to simulate LSDB changes): OPEN/KEEPALIVE/End-of-RIB, diffs (withdraw a link, add it
back), reconnect and full re-send after ExaBGP is killed. The real-FRR path is tests/lab/test_ingest_*."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from support import waiting

from appliance.sources.bgpls.ingest import TopologyIngest
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor, SpeakerError
from rpki.localcache import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
HERE = Path(__file__).parent
DATA = HERE.parents[1] / "unit" / "ingest" / "data" / "frr-8.4.4-sav-basic-ospf.json"
REPO = HERE.parents[2]


until = partial(waiting.until, timeout_s=30.0, interval_s=0.1)  # this module's wait per step


def test_exporter_session_diffs_and_reconnect_mock_vtysh(tmp_path: Path) -> None:
    fixture = tmp_path / "lsdb.json"
    docs = json.loads(DATA.read_text())
    fixture.write_text(json.dumps(docs))
    port = free_port()

    async def scenario() -> None:
        speaker = ExaBgpSpeaker(
            tmp_path / "exa",
            [
                ExaNeighbor(
                    "127.0.0.3",
                    "127.0.0.1",
                    65000,
                    65000,
                    "127.0.0.1",
                    ("bgp-ls bgp-ls",),
                    passive=True,
                    name="r3",
                )
            ],
            listen=("127.0.0.1", port),
        )
        ingest = TopologyIngest()
        topo = ingest.topology
        await speaker.start()

        async def consume() -> None:
            async for ev in speaker.events():
                ingest.handle(ev)

        consumer = asyncio.create_task(consume())
        exporter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appliance.lab.bgpls_exporter",
                "--vtysh",
                f"{sys.executable} {HERE / 'fake_vtysh.py'} {fixture} r3",
                "--peer",
                "127.0.0.1",
                "--peer-port",
                str(port),
                "--local-as",
                "65000",
                "--local-address",
                "127.0.0.3",
                "--name",
                "r3",
                "--poll",
                "0.3",
                "--max-poll",
                "0.3",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await until(
                lambda: ingest.eor_seen == {"127.0.0.3"} or ingest.eor_seen, "End-of-RIB from the exporter"
            )
            assert topo.neighbours("r3") == ("198.18.255.1", "198.18.255.2", "198.18.255.4")
            assert len(topo.igp_prefixes()) == 5
            size = len(topo)

            # r3 loses its adjacency to r4: the router-LSA no longer lists it
            lsas = docs["r3"]["show ip ospf database router json"]["routerLinkStates"]["areas"]["0.0.0.0"]
            mine = next(lsa for lsa in lsas if lsa["advertisingRouter"] == "198.18.255.3")
            saved = dict(mine["routerLinks"])
            mine["routerLinks"] = {
                k: v for k, v in saved.items() if v.get("neighborRouterId") != "198.18.255.4"
            }
            fixture.write_text(json.dumps(docs))
            await until(
                lambda: "198.18.255.4" not in topo.neighbours("r3") or topo.neighbours("r3"), "link gone"
            )
            mine["routerLinks"] = saved
            fixture.write_text(json.dumps(docs))
            await until(lambda: len(topo) == size or len(topo), "link back")

            # ExaBGP dies: restarted by the speaker, the exporter reconnects and re-sends, nothing duplicated
            pid = speaker.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await until(lambda: speaker.restarts == 1 or "not yet", "ExaBGP restarted")
            await until(
                lambda: ingest.eor_seen == {"127.0.0.3"} or ingest.eor_seen, "End-of-RIB after reconnect"
            )
            assert len(topo) == size and topo.neighbours("r3") == (
                "198.18.255.1",
                "198.18.255.2",
                "198.18.255.4",
            )
            assert exporter.poll() is None  # it survived the peer going away
        finally:
            exporter.terminate()
            exporter.wait(10)
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await speaker.stop()

    asyncio.run(scenario())


def test_broken_exabgp_config_is_a_clear_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        sp = ExaBgpSpeaker(
            tmp_path, [ExaNeighbor("127.0.0.2", "127.0.0.1", 65000, 65000, "127.0.0.1", ("no-such family",))]
        )
        with pytest.raises(SpeakerError, match="exited") as exc:
            await sp.start()
        assert str(tmp_path) in str(exc.value) and sp.pid is None
        assert (
            await sp.send("announce route 198.18.0.0/24 next-hop self") is False
        )  # no relay: refused, no hang

    asyncio.run(scenario())
