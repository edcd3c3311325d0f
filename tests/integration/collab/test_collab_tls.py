"""Two real CollabService instances on 127.0.0.1 over mutual TLS with openssl-made certificates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from support.collab_pki import Pki

from appliance.collab.config import CollabConfig, CollabPeer
from appliance.collab.model import MODES, Agreement, CollabError, CollabRefused, Proposal, SavInfo
from appliance.collab.service import CollabService
from appliance.collab.transport import CollabClient, CollabUnavailable, client_context
from rpki.localcache import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PREFIXES = ("192.0.2.0/24", "2001:db8:1::/48")
ARRIVES = ("203.0.113.1",)
PROPOSAL = (Proposal(1, MODES, ("sav-prefixes",), (3600.0,)),)


@dataclass
class Seen:
    infos: list[tuple[str, SavInfo]] = field(default_factory=list)
    agreements: list[tuple[str, Agreement]] = field(default_factory=list)

    def on_info(self, peer: str, info: SavInfo) -> None:
        self.infos.append((peer, info))

    def on_agreement(self, peer: str, agreement: Agreement) -> None:
        self.agreements.append((peer, agreement))


@dataclass
class Pair:
    """as1 (initiator) and as2 (provider, accepts best-effort only) with their ports and state dirs."""

    pki: Pki
    tmp: Path
    port1: int = field(default_factory=free_port)
    port2: int = field(default_factory=free_port)
    as2_initiates: bool = False  # both ways: as2 proposes its own agreement to as1 too

    def config(self, name: str, initiate: bool = True, duration_s: float = 3600.0) -> CollabConfig:
        cert, key = self.pki.cert(name)
        if name == "as1":
            peer = CollabPeer("as2", 65002, f"https://127.0.0.1:{self.port2}", initiate, MODES, duration_s,
                              3600.0)
            return CollabConfig("127.0.0.1", self.port1, cert, key, self.pki.ca, 65001, "as1", 300.0, (peer,))
        peer = CollabPeer("as1", 65001, f"https://127.0.0.1:{self.port1}", self.as2_initiates,
                          ("best-effort",), duration_s, 3600.0)
        return CollabConfig("127.0.0.1", self.port2, cert, key, self.pki.ca, 65002, "as2", 300.0, (peer,))

    def service(self, name: str, seen: Seen, clock: Callable[[], float] = time.time,
                initiate: bool = True, duration_s: float = 3600.0) -> CollabService:
        d = self.tmp / name
        d.mkdir(exist_ok=True)
        return CollabService(self.config(name, initiate, duration_s), seen.on_info, seen.on_agreement, clock,
                             state_dir=d, own_info=lambda asn: (PREFIXES, ARRIVES), tick_s=0.05)

    def client(self, name: str = "as1", ca: Path | None = None, cert_of: str = "") -> CollabClient:
        cert, key = self.pki.cert(cert_of or name)
        return CollabClient(name, "as2", f"https://127.0.0.1:{self.port2}",
                            client_context(cert, key, ca or self.pki.ca))


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(*services: CollabService) -> AsyncIterator[None]:
    """Start `services` in order; stop them in reverse, also when the test fails."""
    async with contextlib.AsyncExitStack() as stack:
        for service in services:
            await service.start()
            stack.push_async_callback(service.stop)
        yield


async def _refused(call: Awaitable[object]) -> CollabError:
    with pytest.raises(CollabRefused) as exc:
        await call
    return exc.value.code


def test_agreement_info_replay_forged_and_end(pki: Pki, tmp_path: Path) -> None:
    pair, seen1, seen2 = Pair(pki, tmp_path), Seen(), Seen()

    async def main() -> None:
        as2, as1 = pair.service("as2", seen2), pair.service("as1", seen1)
        async with running(as2, as1):
            await _until(lambda: bool(seen2.infos))
            (peer, agreement), = seen2.agreements
            assert peer == "as1" and agreement.mode == "best-effort"  # the provider's only acceptable mode
            assert agreement.initiator == "as1" and agreement.provider == "as2"
            assert seen1.agreements == [("as2", agreement)]
            peer, info = seen2.infos[0]
            assert (peer, info.sender, info.sender_asn, info.prefixes, info.arrives_from) == \
                ("as1", "as1", 65001, PREFIXES, ARRIVES)

            client = pair.client()
            assert await _refused(client.send(info)) is CollabError.REPLAYED
            forged = replace(info, sender="as3", seq=info.seq + 100)
            assert await _refused(client.send(forged)) is CollabError.FORGED

            as1.notify()
            await _until(lambda: len(seen2.infos) == 2)
            assert seen2.infos[1][1].seq > info.seq

            await as1.end_agreement(agreement.ca_id)
            await _until(lambda: any(a.ended for _, a in seen2.agreements))
            assert seen2.agreements[-1] == ("as1", replace(agreement, ended=True))
            late = replace(info, seq=info.seq + 1000, sent_at=time.time())
            assert await _refused(client.send(late)) is CollabError.NO_AGREEMENT
            assert await _refused(client.renew(agreement.ca_id, time.time() + 60)) is CollabError.NO_AGREEMENT

    asyncio.run(main())


def test_provider_refusals_over_the_wire(pki: Pki, tmp_path: Path) -> None:
    pair, seen2 = Pair(pki, tmp_path), Seen()

    async def main() -> None:
        as2 = pair.service("as2", seen2)
        async with running(as2):
            client = pair.client()
            resilient_only = (Proposal(1, ("resilient",), ("sav-prefixes",), (60.0,)),)
            assert await _refused(client.propose(resilient_only)) is CollabError.ERROR_UNACCEPTABLE_PROPOSALS
            accepted = await client.negotiate(PROPOSAL, ca_id="fixed")
            assert accepted.proposal == Proposal(1, ("best-effort",), ("sav-prefixes",), (3600.0,))
            assert await _refused(client.negotiate(PROPOSAL, ca_id="fixed")) \
                is CollabError.ERROR_UNACCEPTABLE_CA_ID
            too_far = time.time() + 7200
            assert await _refused(client.renew("fixed", too_far)) \
                is CollabError.ERROR_UNACCEPTABLE_NEW_EXPIRATION_DATE
            renewed = await client.renew("fixed", time.time() + 1800)
            assert renewed.expires_at < accepted.agreement.expires_at  # advanced: the draft allows both
            assert await _refused(client._post("/collab/v1/sav-info", {"seq": "x"})) is CollabError.MALFORMED

    asyncio.run(main())


def test_expiry_is_reported_once_and_refuses_info(pki: Pki, tmp_path: Path) -> None:
    pair, seen2 = Pair(pki, tmp_path), Seen()
    offset = [0.0]

    async def main() -> None:
        as2 = pair.service("as2", seen2, clock=lambda: time.time() + offset[0])
        async with running(as2):
            client = pair.client()
            agreement = await client.propose(PROPOSAL)
            offset[0] = 3601.0
            await _until(lambda: len(seen2.agreements) == 2)
            assert seen2.agreements[1] == ("as1", agreement)  # reported as found, not marked ended
            await asyncio.sleep(0.2)
            assert len(seen2.agreements) == 2  # once
            info = SavInfo(agreement.ca_id, "as1", 65001, 1, time.time() + 3601.0, PREFIXES, ARRIVES)
            assert await _refused(client.send(info)) is CollabError.AGREEMENT_EXPIRED

    asyncio.run(main())


def _bare_context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    return ctx


def test_clients_without_the_right_certificate_get_nothing(pki: Pki, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    pair, seen2 = Pair(pki, tmp_path), Seen()
    caplog.set_level(logging.INFO, logger="appliance.collab")

    async def main() -> None:
        as2 = pair.service("as2", seen2)
        async with running(as2):
            no_cert = CollabClient("as1", "as2", f"https://127.0.0.1:{pair.port2}", _bare_context(pki.ca))
            with pytest.raises(CollabUnavailable):
                await no_cert.propose(PROPOSAL)
            for cert_of in ("as1-other-ca", "as1-expired"):
                with pytest.raises(CollabUnavailable):
                    await pair.client(cert_of=cert_of).propose(PROPOSAL)
            unknown = pair.client("as3")
            assert await _refused(unknown.propose(PROPOSAL)) is CollabError.ERROR_UNACCEPTABLE_INITIATOR
            # and a client that trusts another CA does not accept as2's certificate either
            with pytest.raises(CollabUnavailable):
                await pair.client(ca=pki.other_ca, cert_of="as1-other-ca").propose(PROPOSAL)
            await asyncio.sleep(0.1)
        assert seen2.agreements == []

    asyncio.run(main())
    refused = [r.getMessage() for r in caplog.records if "event=collab-refused" in r.getMessage()]
    assert len(refused) >= 4, refused
    assert any("reason=unknown-name" in m and "names=as3" in m for m in refused)
    assert sum("reason='tls:" in m for m in refused) >= 3


def test_restart_keeps_agreement_and_seq(pki: Pki, tmp_path: Path) -> None:
    pair = Pair(pki, tmp_path)
    seen1, seen2 = Seen(), Seen()

    async def first() -> SavInfo:
        as2, as1 = pair.service("as2", seen2), pair.service("as1", seen1)
        async with running(as2, as1):
            await _until(lambda: bool(seen2.infos))
            return seen2.infos[0][1]

    info = asyncio.run(first())
    again1, again2 = Seen(), Seen()

    async def second() -> None:
        as2, as1 = pair.service("as2", again2), pair.service("as1", again1)
        assert as2.book.get(info.ca_id) is not None and as1.seq >= info.seq
        async with running(as2, as1):
            await _until(lambda: bool(again2.infos))
            later = again2.infos[0][1]
            assert later.ca_id == info.ca_id and later.seq > info.seq
            assert again1.agreements == [] and again2.agreements == []  # no new agreement
            assert await _refused(pair.client().send(info)) is CollabError.REPLAYED

    asyncio.run(second())


def test_initiator_logs_and_retries_until_the_peer_answers(pki: Pki, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    pair, seen1, seen2 = Pair(pki, tmp_path), Seen(), Seen()
    caplog.set_level(logging.INFO, logger="appliance.collab")

    async def main() -> None:
        as1 = pair.service("as1", seen1)
        await as1.start()  # as2 is not up yet
        try:
            await _until(lambda: "event=collab-peer-unreachable" in caplog.text)
            as2 = pair.service("as2", seen2)
            await as2.start()
            try:
                await _until(lambda: bool(seen2.infos), timeout=15)
            finally:
                await as2.stop()
        finally:
            await as1.stop()

    asyncio.run(main())
    assert seen1.agreements and seen1.agreements[0][1].provider == "as2"


def test_both_ways_the_backing_off_initiator_tries_again_when_the_peer_proposes(
        pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Both initiate: two agreements, one per direction, each side gets the other's SavInfo. as1 started
    first and backs off (8 s by then); as2's proposal tells it as2 is up, so its own follows at once."""
    pair, seen1, seen2 = Pair(pki, tmp_path, as2_initiates=True), Seen(), Seen()
    caplog.set_level(logging.INFO, logger="appliance.collab")

    async def main() -> float:
        as1 = pair.service("as1", seen1)
        await as1.start()
        try:
            await _until(lambda: caplog.text.count("event=collab-peer-unreachable") >= 4, timeout=20)
            as2 = pair.service("as2", seen2)
            began = time.monotonic()
            async with running(as2):
                await _until(lambda: bool(seen1.infos) and bool(seen2.infos), timeout=15)
                return time.monotonic() - began
        finally:
            await as1.stop()

    took = asyncio.run(main())
    assert took < 4.0, f"as1 waited out its backoff ({took:.1f} s)"
    (_, got1), (_, got2) = seen1.infos[0], seen2.infos[0]
    made1 = {a.ca_id: a for _, a in seen1.agreements}
    assert (got1.sender, made1[got1.ca_id].initiator) == ("as2", "as2")  # each under its sender's agreement
    assert (got2.sender, made1[got2.ca_id].initiator) == ("as1", "as1")
    assert got1.ca_id != got2.ca_id


def test_initiator_renews_at_two_thirds_and_ca_ids_with_odd_characters(pki: Pki, tmp_path: Path) -> None:
    pair, seen1, seen2 = Pair(pki, tmp_path), Seen(), Seen()

    async def main() -> None:
        as2 = pair.service("as2", seen2, duration_s=3.0)
        as1 = pair.service("as1", seen1, duration_s=3.0)
        async with running(as2, as1):
            await _until(lambda: len(seen2.agreements) >= 2)
            made, renewed = seen2.agreements[0][1], seen2.agreements[1][1]
            assert renewed.ca_id == made.ca_id and renewed.expires_at > made.expires_at
            short = (Proposal(1, MODES, ("sav-prefixes",), (3.0,)),)
            odd = await pair.client().negotiate(short, ca_id="a/b c%")
            ended = await pair.client().end(odd.agreement.ca_id)
            assert ended.ca_id == "a/b c%" and ended.ended

    asyncio.run(main())


def test_the_provider_revokes_and_allows_again(pki: Pki, tmp_path: Path) -> None:
    """The operator of as2 (provider) revokes as1: the agreement ends on both sides, as1's proposals are
    refused (ERROR_UNACCEPTABLE_INITIATOR) while revoked, also after a restart; after `allow` a proposal
    makes an agreement again."""
    pair, seen1, seen2 = Pair(pki, tmp_path), Seen(), Seen()

    async def main() -> None:
        as2 = pair.service("as2", seen2)
        await as2.start()
        as1 = pair.service("as1", seen1)
        await as1.start()
        try:
            await _until(lambda: bool(seen2.infos))
            (_, agreement), = seen2.agreements
            ended = await as2.revoke("as1")
            assert ended is not None and ended.ca_id == agreement.ca_id and ended.ended
            await _until(lambda: any(a.ended for _, a in seen1.agreements))
            proposal = pair.client().negotiate(as1.proposals(pair.config("as1", True).peers[0]))
            assert await _refused(proposal) is CollabError.ERROR_UNACCEPTABLE_INITIATOR
            await as2.stop()
            as2 = pair.service("as2", seen2)  # the revocation is kept across a restart
            await as2.start()
            assert "as1" in as2.revoked
            assert await _refused(pair.client().negotiate(as1.proposals(pair.config("as1", True).peers[0]))) \
                is CollabError.ERROR_UNACCEPTABLE_INITIATOR
            assert as2.allow("as1") and not as2.revoked
            again = await pair.client().negotiate(as1.proposals(pair.config("as1", True).peers[0]))
            assert again.agreement.provider == "as2" and not again.agreement.ended
        finally:
            await as1.stop()
            await as2.stop()

    asyncio.run(main())
