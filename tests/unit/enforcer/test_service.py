"""EnforcerService event handling and its fail-open path (nft replaced by a mock to inject refusals)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from appliance.enforcer.nft import ApplyResult, NftError
from appliance.enforcer.nftplan import Counters, Plan
from appliance.enforcer.recording import replay
from appliance.enforcer.service import EnforcerOptions, EnforcerService
from appliance.speakers.exabgp import SessionDown

CORPUS = Path(__file__).parent / "corpus" / "frr-8.4.4-via-exabgp-5.0.15.jsonl"


class MockNft:
    """Stands in for NftTable: records plans, refuses them while `refuse` is set."""

    def __init__(self) -> None:
        self.refuse = False
        self.applied: Plan | None = None
        self.deleted = 0

    def apply(self, plan: Plan) -> ApplyResult:
        if self.refuse:
            raise NftError("mock refusal")
        self.applied = plan
        return ApplyResult("full", 0.0, 0)

    def delete(self) -> None:
        self.deleted += 1
        self.applied = None

    def counters(self) -> tuple[dict[str, Counters], list[str]]:
        return {}, []


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
