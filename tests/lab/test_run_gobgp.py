"""Through `savd run` with GoBGP pushing the FlowSpec (`savd lab init --speaker gobgp`'s savd.toml, as
configs/demo-gobgp.toml) on sav-basic as the lab kit makes it: savd runs one
gobgpd per router in the controller's namespace, each peering with its router's FRR; savd-enforcer turns
what FRR receives into nftables, and real packets counted at the receiver give the verdicts.

One lab and one appliance for the module (a fresh random namespace prefix). savd's gobgpd processes
outlive a killed savd for SAVD_SPEAKER_HOLDOVER_S (8 s here, 120 s by default) under their holdover
guards: the restart test asserts that the next savd adopts them, so spoofed traffic stays dropped
throughout; the last test lets the holdover run out and asserts the routers' rules go (fail open).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.demo import Appliance, demo_flows, send_flow, wait_until
from appliance.lab import Lab
from appliance.lab.runner import new_prefix
from appliance.speakers.gobgp import GoBgpSpeaker
from appliance.speakers.holdover import processes_naming

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(240)]

SAV_BASIC = Path(__file__).resolve().parents[2] / "containerlab" / "sav-basic" / "sav-basic.clab.yml"
PREFIX = new_prefix()
ROUTERS = ("r1", "r2", "r3", "r4")
HOLDOVER_S = 8


@pytest.fixture(scope="module")
def app(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    lab = Lab.load(SAV_BASIC, prefix=PREFIX)
    appliance = Appliance(lab, tmp_path_factory.mktemp("savd-gobgp"), speaker="gobgp",
                          env={"SAVD_SPEAKER_HOLDOVER_S": str(HOLDOVER_S)})
    try:
        appliance.start_on_converged_lab(90)  # GoBGP: 5-10 s before its first connect
        yield appliance
    finally:
        appliance.stop()
        lab.down()


def gobgpd_pids(app: Appliance) -> dict[str, int]:
    """{router: pid} of the gobgpd processes savd runs (not their holdover guards)."""
    out = {}
    for router in ROUTERS:
        for pid in processes_naming(app.data_dir / "speakers" / "ctl-fs" / router):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "gobgpd":
                    out[router] = pid
    return out


def rib_size(app: Appliance, router: str) -> int:
    """IPv4 + IPv6 FlowSpec paths in the global RIB of `router`'s gobgpd, read over its gRPC socket."""
    sock = app.data_dir / "speakers" / "ctl-fs" / router / "api.sock"

    async def count() -> int:
        client = GoBgpSpeaker(app.workdir / "rib-reader", name=router, api_target=f"unix://{sock}")
        await client.start()
        try:
            return await client.count_paths(1) + await client.count_paths(2)
        finally:
            await client.stop()

    return asyncio.run(count())


def in_netns(pid: int, netns: str) -> bool:
    return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino


def test_one_gobgpd_per_router_holds_what_savd_pushed_and_verdicts_follow(app: Appliance) -> None:
    pids = gobgpd_pids(app)
    assert sorted(pids) == list(ROUTERS)
    assert all(in_netns(pid, app.lab.netns("ctl")) for pid in pids.values())
    pushed = app.pushed()
    assert {r: rib_size(app, r) for r in ROUTERS} == {r: pushed.get(r, 0) for r in ROUTERS}
    assert all(pushed[r] > 0 for r in ("r1", "r2", "r4"))
    for f in demo_flows(count=10):
        got = send_flow(app.lab, f)
        assert got == (0 if f.spoofed else f.count), f"{f.label} from {f.source}: {got}/{f.count} delivered"


def test_a_killed_gobgpd_is_restarted_with_an_alarm_and_its_router_resynced(app: Appliance) -> None:
    installed = app.rules_active()
    assert installed
    old = gobgpd_pids(app)["r1"]
    os.kill(old, signal.SIGKILL)

    def session_alarm() -> list[dict[str, object]]:
        alarms: list[dict[str, object]] = app.get("/api/v1/alarms?type=bgp.session-down")["alarms"]
        return [a for a in alarms if a["fields"].get("router") == "r1"]  # type: ignore[attr-defined]

    wait_until("a session-down alarm for r1", session_alarm, 20)
    wait_until("a new gobgpd for r1", lambda: gobgpd_pids(app).get("r1", old) != old, 30)
    wait_until("r1's rules active again", lambda: app.rules_active() == installed, 60, 0.5)
    wait_until("the alarm cleared", lambda: not session_alarm(), 20)
    assert rib_size(app, "r1") == installed["r1"]
    spoofed_at_r1 = [f for f in demo_flows(count=10) if f.spoofed and f.sender == "h1"]
    assert spoofed_at_r1 and all(send_flow(app.lab, f) == 0 for f in spoofed_at_r1)


def test_savd_restart_under_traffic_keeps_every_verdict_as_the_gobgpd_processes_are_adopted(
    app: Appliance,
) -> None:
    """kill -9 savd while legitimate and spoofed traffic flows: the gobgpd processes stay (holdover), keep
    their sessions and the routers their rules, and the restarted savd adopts them: no legitimate packet
    dropped and no spoofed packet delivered at any time."""
    installed = app.rules_active()
    assert installed
    before = gobgpd_pids(app)
    assert app.verdicts_across_restart() == []
    wait_until("rules active again", lambda: app.rules_active() == installed, 60, 0.5)
    assert gobgpd_pids(app) == before  # adopted, sessions and RIB kept
    restart = app.log_since_restart()
    assert restart.count("event=gobgp-adopted") == len(ROUTERS)
    resyncs = [line for line in restart.splitlines() if "event=flowspec-resync" in line]
    assert resyncs and all("withdraw=0" in line for line in resyncs), resyncs


def test_without_savd_the_holdover_runs_out_and_the_rules_go(app: Appliance) -> None:
    """Fail open: savd killed and not restarted; after the holdover its gobgpd processes stop, the routers
    drop savd's FlowSpec, the enforcers empty nftables, and spoofed traffic is no longer dropped."""
    assert app.rules_active()
    app.kill_savd(signal.SIGKILL)
    time.sleep(HOLDOVER_S / 2)
    assert sorted(gobgpd_pids(app)) == list(ROUTERS)  # still holding
    assert app.installed("r1") > 0
    wait_until("speakers and rules gone", app.rules_withdrawn, HOLDOVER_S + 30)
    for f in demo_flows(count=10):
        got = send_flow(app.lab, f)
        assert got == f.count, f"{f.label} from {f.source}: {got}/{f.count} delivered without savd"
