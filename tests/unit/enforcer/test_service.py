"""EnforcerService event handling and its fail-open path (nft replaced by a mock to inject refusals)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

from appliance.enforcer.main import _handler
from appliance.enforcer.nft import ApplyResult, NftError, NftTable, Reading
from appliance.enforcer.nftplan import Counters, Plan, TopSource
from appliance.enforcer.recording import replay
from appliance.enforcer.service import EnforcerOptions, EnforcerService
from appliance.speakers.exabgp import SessionDown, SessionUp

CORPUS = Path(__file__).parent / "corpus" / "frr-8.4.4-via-exabgp-5.0.15.jsonl"


class MockNft:
    """Stands in for NftTable: records plans, refuses them while `refuse` is set."""

    def __init__(self) -> None:
        self.refuse = False
        self.applied: Plan | None = None
        self.deleted = 0
        self.top: dict[str, tuple[TopSource, ...]] = {}

        self.epoch = 0

    def apply(self, plan: Plan) -> ApplyResult:
        self.epoch += 1
        if self.refuse:
            raise NftError("mock refusal")
        self.applied = plan
        return ApplyResult("full", 0.0, 0)

    def delete(self) -> None:
        self.epoch += 1
        self.deleted += 1
        self.applied = None

    def read(self) -> Reading:
        return Reading(self.epoch, self.applied, {}, [])

    def take(self, reading: Reading) -> tuple[dict[str, Counters], list[str]] | None:
        return ({}, []) if reading.epoch == self.epoch else None

    def repair(self, problems: list[str]) -> None:
        pass


def service(tmp_path: Path) -> tuple[EnforcerService, MockNft]:
    svc = EnforcerService(
        EnforcerOptions(
            node="r1",
            asn=65000,
            frr_address="198.18.254.1",
            exa_address="198.18.254.2",
            workdir=tmp_path,
            groups={7: ("eth1",)},
            record=tmp_path / "rec.jsonl",
        )
    )
    mock = MockNft()
    svc.nft = mock  # type: ignore[assignment]
    return svc, mock


def feed(svc: EnforcerService) -> None:
    for _, event in replay(CORPUS.read_text().splitlines()):
        assert not isinstance(event, str)
        svc.handle(event)


def test_mock_nft_events_apply_record_and_session_loss_empties(tmp_path: Path) -> None:
    svc, mock = service(tmp_path)
    feed(svc)
    asyncio.run(svc.apply_now())
    assert mock.applied is not None and not mock.applied.empty and svc.error == ""
    recorded = [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()]
    assert [r["type"] for r in recorded] == [
        json.loads(line)["type"] for line in CORPUS.read_text().splitlines()
    ]
    assert svc.handle(SessionDown("198.18.254.1", reason="test"))
    asyncio.run(svc.apply_now())
    assert mock.applied is not None and mock.applied.empty


def test_mock_nft_refusal_removes_the_table_and_reports(tmp_path: Path) -> None:
    svc, mock = service(tmp_path)
    feed(svc)
    asyncio.run(svc.apply_now())
    mock.refuse = True
    svc.handle(SessionDown("198.18.254.1"))
    asyncio.run(svc.apply_now())
    assert mock.deleted == 1 and "mock refusal" in svc.error
    doc: dict[str, Any] = asyncio.run(svc.read_snapshot())
    assert doc["in_sync"] is False and any("mock refusal" in p for p in doc["problems"])
    mock.refuse = False
    asyncio.run(svc.apply_now())
    assert svc.error == ""


def test_snapshot_attributes_counts_to_the_interface_they_arrived_on() -> None:
    from appliance.enforcer.nftplan import build_plan, counter_key
    from appliance.enforcer.route import decode_route
    from appliance.enforcer.service import snapshot

    two_groups = {
        "extended-community": [
            {"value": 0x8006000000000000},
            {"value": (0x0702 << 48) | (1 << 16) | 0x4000 | 7},
            {"value": (0x0702 << 48) | (1 << 16) | 0x4000 | 8},
        ]
    }
    route = decode_route("ipv4 flow", {"source-ipv4": ["0.0.0.0/0"]}, two_groups)
    plan = build_plan([route], {7: ("eth1",), 8: ("eth2",)})
    assert len(plan.counters) == 2  # one counter per interface chain
    counters = {
        counter_key(route.rid, "eth1"): Counters(5, 500, 5, 500),
        counter_key(route.rid, "eth2"): Counters(1, 100, 1, 100),
    }
    doc = snapshot("r2", plan, counters, generation=1, sessions=[], problems=[], now=0.0)
    (rule,) = doc["rules"]
    assert rule["packets"] == 6 and rule["per_interface"]["eth1"]["dropped_packets"] == 5
    assert [(s["interface"], s["packets"], s["spoofed"]) for s in doc["samples"]] == [
        ("eth1", 5, True),
        ("eth2", 1, True),
    ]


def test_mock_nft_new_group_file_re_plans_routes_already_received(tmp_path: Path) -> None:
    """Routes may arrive before the group mapping that names their interface (savd writes the file,
    FRR relays the rules): a changed group file alone must re-apply, not wait for the next route."""
    gfile = tmp_path / "groups.json"
    gfile.write_text("[]")
    svc = EnforcerService(EnforcerOptions(node="r1", asn=65000, frr_address="198.18.254.1",
                                          exa_address="198.18.254.2", workdir=tmp_path, group_file=gfile))
    mock = MockNft()
    svc.nft = mock  # type: ignore[assignment]

    def installed() -> int:
        plan = mock.applied
        return sum(1 for s in plan.statuses if s.state == "installed") if plan else 0

    async def scenario() -> tuple[int, int]:
        svc._reload_groups()
        feed(svc)
        await svc.apply_now()
        before = installed()
        gfile.write_text(json.dumps([{"interface": "eth1", "group_id": 7}]))
        applier = asyncio.create_task(svc._applier())
        assert svc._reload_groups()
        svc._dirty.set()
        await asyncio.sleep(0.2)
        applier.cancel()
        return before, installed()

    before, after = asyncio.run(scenario())
    assert after > before


class SlowListing(NftTable):
    """A real NftTable (plans, incremental texts, epochs, counter banking) whose kernel is faked: `load`
    records the text, `listing` blocks while `gate` is closed, as `nft -j list table` of a 10k-route
    table takes ~0.3-0.5 s, and answers an empty table."""

    def __init__(self) -> None:
        super().__init__(table="savd_enforcer")
        self.loaded: list[str] = []
        self.listings = 0
        self.listing_started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def load(self, text: str) -> None:
        self.loaded.append(text)

    def listing(self) -> dict[str, Any] | None:
        self.listings += 1
        self.listing_started.set()
        assert self.gate.wait(10)
        return {"nftables": []}


def test_route_change_is_applied_while_the_counters_are_being_read(tmp_path: Path) -> None:
    """A counters read (savd's poller, the reconcile tick) must not hold back a route change: the new
    route's transaction runs while the listing is still under way, and the overtaken reading is dropped
    and taken again against the new plan (its counts could be banked already)."""
    svc, _ = service(tmp_path)
    slow = SlowListing()
    svc.nft = slow
    events = [e for _, e in replay(CORPUS.read_text().splitlines()) if not isinstance(e, str)]
    first, rest = events[:-3], events[-3:]

    async def scenario() -> tuple[float, bool, dict[str, Any]]:
        for e in first:
            svc.handle(e)
        await svc.apply_now()
        slow.gate.clear()
        slow.listing_started.clear()
        reader = asyncio.create_task(svc.read_snapshot())
        assert await asyncio.to_thread(slow.listing_started.wait, 5)
        assert any(svc.handle(e) for e in rest)  # a route change arrives during the listing
        t0 = time.monotonic()
        await asyncio.wait_for(svc.apply_now(), 3)
        took = time.monotonic() - t0
        reading_pending = not reader.done()
        slow.gate.set()
        return took, reading_pending, await reader

    loaded_before = len(slow.loaded)
    took, reading_pending, doc = asyncio.run(scenario())
    assert reading_pending and took < 1.0, took
    assert len(slow.loaded) > loaded_before and svc.applied_generation == svc.table.generation
    assert slow.listings == 2  # the overtaken reading was dropped, the second one taken
    assert doc["generation"] == svc.table.generation
    assert {r["id"] for r in doc["rules"]} == {s.rid for s in svc.nft.applied.statuses}  # type: ignore[union-attr]


def test_a_reading_overtaken_by_a_transaction_is_not_taken(tmp_path: Path) -> None:
    svc, _ = service(tmp_path)
    slow = SlowListing()
    svc.nft = slow
    events = [e for _, e in replay(CORPUS.read_text().splitlines()) if not isinstance(e, str)]
    for e in events[:-3]:
        svc.handle(e)
    asyncio.run(svc.apply_now())
    assert slow.take(slow.read()) is not None
    stale = slow.read()
    assert any(svc.handle(e) for e in events[-3:])
    asyncio.run(svc.apply_now())
    assert slow.loaded[-1].strip()  # an incremental transaction ran after the stale reading began
    assert slow.take(stale) is None
    assert slow.take(slow.read()) is not None


def test_the_session_with_frr_is_reported_in_counters_and_status(tmp_path: Path) -> None:
    """savd alarms on a session that stays down; without this it only saw rules missing."""
    started = time.time()
    svc, _ = service(tmp_path)

    async def documents() -> tuple[dict[str, Any], dict[str, Any]]:
        handle = _handler(svc)
        (_, counters), (_, status) = await handle("/counters", {}), await handle("/status", {})
        return counters, status

    counters, status = asyncio.run(documents())
    assert counters["session"] == status["session"]
    first = counters["session"]
    assert (first["peer"], first["established"], first["last_reason"], first["diagnosis"]) == (
        "198.18.254.1", False, "", "")
    assert started <= first["down_since"] <= time.time()     # never established: down since the start
    svc.handle(SessionUp("198.18.254.1"))
    assert asyncio.run(documents())[0]["session"] == {"peer": "198.18.254.1", "established": True,
                                                      "down_since": None, "last_reason": "",
                                                      "diagnosis": ""}
    svc.handle(SessionDown("198.18.254.1", reason="notification received (5,0)"))
    svc.session.diagnosis = "zebra-down"
    down = asyncio.run(documents())[0]["session"]
    svc.handle(SessionDown("198.18.254.1", reason="connection refused"))
    again = asyncio.run(documents())[0]["session"]
    assert again["down_since"] == down["down_since"] >= first["down_since"]   # since the first one
    assert (again["established"], again["last_reason"], again["diagnosis"]) == (
        False, "connection refused", "zebra-down")


def test_mock_nft_a_reading_young_enough_is_served_again_and_a_fresh_one_otherwise(tmp_path: Path) -> None:
    """savd's poller accepts a reading one poll old (the reconcile tick just listed the table): no second
    `nft list` per poll; a client asking for nothing older gets a fresh listing."""
    svc, _ = service(tmp_path)
    reads: list[int] = []
    real = svc.nft.read

    def counted() -> Any:
        reads.append(1)
        return real()

    svc.nft.read = counted  # type: ignore[method-assign]

    async def documents() -> list[tuple[int, Any]]:
        handle = _handler(svc)
        return [await handle("/counters", {}), await handle("/counters", {"max_age": ["60"]}),
                await handle("/counters", {"max_age": ["0"]}), await handle("/counters", {"max_age": ["x"]})]

    fresh, again, zero, bad = asyncio.run(documents())
    assert fresh[0] == again[0] == zero[0] == 200 and again[1] is fresh[1]
    assert len(reads) == 2               # the first and the max_age=0 request listed the table
    assert bad[0] == 400 and "max_age" in bad[1]["error"]
