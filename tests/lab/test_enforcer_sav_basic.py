"""Proof in the sav-basic lab: engine rules -> FlowSpec compiler -> ExaBGP on ctl -> FRR r1..r4 ->
savd-enforcer on each router -> nftables, with real legitimate and spoofed packets (IPv4 and IPv6).

Rules come from the engine (appliance/engine compute) over the lab's reports: subnet s1 = P1 on r1:eth1 and
P2 on r2:eth1 (multi-homed, asymmetric), s2 = P3 on r2:eth2, r4:eth2 external. Expected (draft §5.1):
allowlists at the access routers (r1:eth1 allows P1 and P2), a blocklist of the AS's prefixes at the border
(r4:eth2). Receiver: h2 (198.18.3.10 / 2001:db8:0:3::10), counting per source with nft.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.testbed import ThreadedSpeaker, wait_for

from appliance.demo import Appliance, Flow, send_flow
from appliance.engine.snapshot import Snapshot, compute
from appliance.flowspec import render_exabgp
from appliance.flowspec.compiler import compile_ruleset
from appliance.flowspec.rules import FlowSpecPlan
from appliance.lab import Lab
from appliance.model import Interface, PrefixReport, Role, Router
from appliance.speakers.exabgp import ExaNeighbor

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SAV_BASIC = REPO / "containerlab" / "sav-basic" / "sav-basic.clab.yml"
ROUTERS = {"r1": "198.18.255.1", "r2": "198.18.255.2", "r3": "198.18.255.3", "r4": "198.18.255.4"}
H2_V4, H2_V6 = "198.18.3.10", "2001:db8:0:3::10"


def lab_plan() -> FlowSpecPlan:
    reports = [
        PrefixReport("r1", "eth1", "198.18.1.0/24", "s1"),
        PrefixReport("r1", "eth1", "2001:db8:0:1::/64", "s1"),
        PrefixReport("r2", "eth1", "198.18.2.0/24", "s1"),
        PrefixReport("r2", "eth1", "2001:db8:0:2::/64", "s1"),
        PrefixReport("r2", "eth2", "198.18.3.0/24", "s2"),
        PrefixReport("r2", "eth2", "2001:db8:0:3::/64", "s2"),
    ]
    snapshot = Snapshot(
        routers=(
            Router("r1", ROUTERS["r1"], 65000, Role.ACCESS),
            Router("r2", ROUTERS["r2"], 65000, Role.ACCESS),
            Router("r3", ROUTERS["r3"], 65000, Role.CORE),
            Router("r4", ROUTERS["r4"], 65000, Role.BORDER),
        ),
        interfaces=(Interface("r4", "eth2", ("198.18.30.1/30",), external=True),),
        reports=tuple(reports),
    )
    return compile_ruleset(compute(snapshot))


class Proof:
    """The lab, the engine's FlowSpec plan, the ctl ExaBGP speaker and the enforcers (run and stopped by
    appliance.demo.Appliance, as in `savd demo`, here without savd and StayRTR)."""

    def __init__(self, lab: Lab, plan: FlowSpecPlan, speaker: ThreadedSpeaker, workdir: Path) -> None:
        self.lab, self.plan, self.speaker = lab, plan, speaker
        self.app = Appliance(lab, workdir)

    def start_enforcers(self) -> None:
        groups_dir = self.app.data_dir / "enforcer-groups"  # read by Appliance.start_enforcers
        groups_dir.mkdir(parents=True, exist_ok=True)
        for router in ROUTERS:
            spec = self.plan.get(router)
            groups = [{"interface": g.interface, "group_id": g.group_id} for g in spec.groups] if spec else []
            (groups_dir / f"{router}.json").write_text(json.dumps(groups))
        self.app.start_enforcers(tuple(ROUTERS))

    def get(self, router: str, path: str = "/counters") -> dict[str, Any]:
        return self.app.enforcer(router, path)  # ValueError while not answering: wait_for retries

    def installed(self, router: str) -> int:
        return self.app.installed(router)

    def push(self, commands: list[str]) -> int:
        return self.speaker.send_many(commands)

    def stop(self) -> None:
        self.app.stop()


@pytest.fixture(scope="module")
def proof(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proof]:
    workdir = tmp_path_factory.mktemp("enforcer-sav-basic")
    os.chmod(workdir, 0o755)
    lab = Lab.load(SAV_BASIC)
    speaker: ThreadedSpeaker | None = None
    p: Proof | None = None
    try:
        lab.up()
        lab.wait_converged(timeout_s=90)
        neighbors = [
            ExaNeighbor(
                address=addr,
                local_address="198.18.20.10",
                local_as=65000,
                peer_as=65000,
                router_id="198.18.20.10",
                families=("ipv4 flow", "ipv6 flow"),
                name=name,
            )
            for name, addr in ROUTERS.items()
        ]
        speaker = ThreadedSpeaker(workdir / "ctl-speaker", lab.netns("ctl"), neighbors)
        speaker.call(speaker.speaker.start())
        p = Proof(lab, lab_plan(), speaker, workdir)
        p.start_enforcers()
        wait_for(
            "ctl speaker established with r1..r4",
            lambda: speaker.established(4) if speaker else None,
            90,
            0.5,
        )
        for router in ROUTERS:
            wait_for(
                f"{router} enforcer session with FRR",
                lambda r=router: p.get(r, "/status")["sessions"],
                60,
                0.5,
            )
        yield p
    finally:
        if p:
            p.stop()
        if speaker:
            speaker.stop()
        lab.down()


def delivered(proof: Proof, sender: str, source: str, count: int, spoofed: bool = False) -> int:
    """Packets from `sender` with `source` that reached h2 (appliance.demo.send_flow)."""
    dst = H2_V6 if ":" in source else H2_V4
    return send_flow(proof.lab, Flow(f"{sender} from {source}", sender, source, "h2", dst, count, spoofed))


def test_engine_rules_pushed_and_installed_on_every_router(proof: Proof) -> None:
    expected = {}
    for spec in proof.plan.routers:
        peer = ROUTERS[spec.router]
        assert proof.push([f"neighbor {peer} {render_exabgp.announce(rule)}" for rule in spec.rules]) == len(
            spec.rules
        )
        expected[spec.router] = len(spec.rules)
    assert set(expected) >= {"r1", "r2", "r4"} and expected["r1"] > 0 and expected["r4"] > 0
    for router, n in expected.items():
        wait_for(
            f"{router}: {n} rules installed", lambda r=router, k=n: proof.installed(r) == k or None, 30, 0.25
        )


def test_legitimate_traffic_passes_including_the_asymmetric_multihomed_prefix(proof: Proof) -> None:
    assert delivered(proof, "h1", "198.18.1.10", 20) == 20  # P1 via r1
    assert delivered(proof, "h1", "198.18.2.10", 20) == 20  # P2 via r1, which does not announce P2
    assert delivered(proof, "h1", "2001:db8:0:1::10", 10) == 10
    assert delivered(proof, "h1", "2001:db8:0:2::10", 10) == 10
    assert delivered(proof, "inet", "198.19.1.10", 20) == 20  # the Internet's own prefix at the border
    assert delivered(proof, "inet", "2001:db8:100:1::10", 10) == 10


def test_spoofed_traffic_is_dropped_and_counted(proof: Proof) -> None:
    before_r1 = {r["source"]: r for r in proof.get("r1")["rules"]}
    assert delivered(proof, "h1", "198.18.3.77", 20, spoofed=True) == 0  # h2's prefix from subnet 1 (access)
    assert delivered(proof, "h1", "198.19.7.7", 20, spoofed=True) == 0  # a foreign source from subnet 1
    assert delivered(proof, "h1", "2001:db8:0:3::77", 10, spoofed=True) == 0
    assert delivered(proof, "inet", "198.18.1.77", 20, spoofed=True) == 0  # internal source from outside
    assert delivered(proof, "inet", "2001:db8:0:1::77", 10, spoofed=True) == 0
    time.sleep(1.5)
    r1 = proof.get("r1")["rules"]
    dropped_r1 = sum(r["dropped_packets"] for r in r1) - sum(r["dropped_packets"] for r in before_r1.values())
    assert dropped_r1 >= 50  # 20 + 20 + 10 at r1's default discards
    r4 = proof.get("r4")["rules"]
    assert sum(r["dropped_packets"] for r in r4) >= 30  # 20 + 10 at r4's blocklist


def test_after_withdraw_spoofed_traffic_passes_again(proof: Proof) -> None:
    for spec in proof.plan.routers:
        peer = ROUTERS[spec.router]
        proof.push([f"neighbor {peer} {render_exabgp.withdraw(rule)}" for rule in spec.rules])
    for router in ROUTERS:
        wait_for(f"{router}: no rules", lambda r=router: proof.get(r)["rules"] == [] or None, 30, 0.25)
    assert delivered(proof, "h1", "198.18.3.78", 20, spoofed=True) == 20
    assert delivered(proof, "inet", "198.18.1.78", 20, spoofed=True) == 20
    assert delivered(proof, "h1", "2001:db8:0:3::78", 10, spoofed=True) == 10
    for router in ("r1", "r2", "r3", "r4"):
        assert proof.lab.exec(router, ["nft", "list", "table", "inet", "savd_enforcer"]).returncode != 0
