"""The collaboration service: one savd's side of every agreement with the ASes it collaborates with.

The imperative shell around `agreement` and `replay`: it owns the AgreementBook, the replay state and
its own message counter, persisted in one JSON file (written atomically with os.replace, so a restart
keeps agreements and seqs and a crash never leaves half a file); it runs the mutual-TLS server; it hands
every accepted SavInfo to `on_info(peer, info)` and every agreement made, renewed, ended or expired to
`on_agreement(peer, agreement)`. Toward each peer with `initiate = true` it proposes at start, renews
at 2/3 of the chosen duration, and sends its own SavInfo every `send_every_s` and on `notify()`; when
that peer proposes to us meanwhile, it is up, so a backing-off initiator tries again at once. When both
sides initiate, each holds two agreements with the other, one per direction.
A peer's error or absence is logged with its code and retried with backoff; it never ends a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from appliance.collab import agreement as ag
from appliance.collab import replay
from appliance.collab.agreement import Accepted, AgreementBook, Policy
from appliance.collab.config import CollabConfig, CollabPeer
from appliance.collab.model import (
    INFO_SAV_PREFIXES,
    Agreement,
    AgreementRequest,
    CollabError,
    CollabRefused,
    Proposal,
    Refusal,
    SavInfo,
)
from appliance.collab.replay import ReplayState
from appliance.collab.transport import (
    CollabClient,
    CollabServer,
    CollabUnavailable,
    client_context,
    server_context,
)

log = logging.getLogger(__name__)

__all__ = ["STATE_FILE", "CollabService", "OwnInfo"]

STATE_FILE = "collab-state.json"
KEEP_EXPIRED_S = 86400.0  # how long an expired agreement (and its seqs) stays in the book
MIN_BACKOFF_S, MAX_BACKOFF_S = 1.0, 60.0

OwnInfo = Callable[[int], tuple[tuple[str, ...], tuple[str, ...]]]  # peer ASN -> (prefixes, arrives_from)


def _nothing(peer_asn: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (), ()


@dataclass(frozen=True)
class _State:
    """Everything persisted: the book, the replay state, our last seq, the duration of our agreements."""

    book: AgreementBook = field(default_factory=AgreementBook)
    replay: ReplayState = field(default_factory=ReplayState)
    seq: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    #: peers the operator revoked (`revoke`): no agreement with them until `allow`
    revoked: frozenset[str] = frozenset()


def _state_to_json(s: _State) -> dict[str, Any]:
    return {"version": 1, "book": ag.book_to_json(s.book), "replay": replay.state_to_json(s.replay),
            "seq": s.seq, "durations": s.durations, "revoked": sorted(s.revoked)}


def _state_from_json(data: Any) -> _State:
    if not isinstance(data, dict):
        raise CollabRefused(CollabError.MALFORMED, "state: must be an object")
    seq, durations = data.get("seq", 0), data.get("durations", {})
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise CollabRefused(CollabError.MALFORMED, "seq: must be a non-negative integer")
    if not isinstance(durations, dict) or not all(isinstance(v, int | float) for v in durations.values()):
        raise CollabRefused(CollabError.MALFORMED, "durations: must map ca_id to seconds")
    revoked = data.get("revoked", [])
    if not isinstance(revoked, list) or not all(isinstance(v, str) for v in revoked):
        raise CollabRefused(CollabError.MALFORMED, "revoked: must be a list of peer names")
    return _State(ag.book_from_json(data.get("book")), replay.state_from_json(data.get("replay", [])), seq,
                  {str(k): float(v) for k, v in durations.items()}, frozenset(revoked))


def load_state(path: Path) -> _State:
    """The persisted state; empty when absent; a damaged file is kept aside as .bad and logged."""
    try:
        return _state_from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return _State()
    except (OSError, ValueError, CollabRefused) as exc:  # JSONDecodeError is a ValueError
        log.error("event=collab-state-unreadable path=%s error=%r (starting empty)", path, str(exc)[:300])
        with contextlib.suppress(OSError):
            os.replace(path, path.with_suffix(".bad"))
        return _State()


def save_state(path: Path, state: _State) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_state_to_json(state), f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CollabService:
    """Runs the protocol for one savd; the consumer sees it only through the two callbacks."""

    def __init__(self, config: CollabConfig, on_info: Callable[[str, SavInfo], None],
                 on_agreement: Callable[[str, Agreement], None], clock: Callable[[], float] = time.time,
                 *, state_dir: Path, own_info: OwnInfo = _nothing, tick_s: float = 1.0) -> None:
        self.config = config
        self._on_info, self._on_agreement = on_info, on_agreement
        self._clock = clock
        self._own_info = own_info
        self._tick_s = tick_s
        self._path = Path(state_dir) / STATE_FILE
        self._state = load_state(self._path)
        self._policies = {p.name: Policy(p.modes, p.duration_s) for p in config.peers}
        self._server: CollabServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: dict[str, asyncio.Event] = {}
        self._pending: dict[str, bool] = {}
        self._next_send: dict[str, float] = {}
        self._hold_until: dict[str, float] = {}
        self._stopping = False

    # --- life cycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        c = self.config
        self._server = CollabServer(server_context(c.cert, c.key, c.ca), [p.name for p in c.peers], self)
        await self._server.start(c.listen_host, c.listen_port)
        self._tasks.append(asyncio.create_task(self._expiry_loop(), name="collab-expiry"))
        client_ctx = client_context(c.cert, c.key, c.ca)
        for peer in c.peers:
            if peer.initiate:
                self._wake[peer.name] = asyncio.Event()
                client = CollabClient(c.name, peer.name, peer.url, client_ctx, clock=self._clock)
                self._tasks.append(asyncio.create_task(self._initiate(peer, client),
                                                       name=f"collab-initiate-{peer.name}"))

    async def stop(self) -> None:
        """Cancel the tasks and close the listener; bounded (3.11's wait_for can swallow a cancel)."""
        self._stopping = True
        for event in self._wake.values():  # an initiator that missed its cancel wakes and sees the flag
            event.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=5)
            for task in stuck:
                log.warning("event=collab-task-not-stopped task=%s", task.get_name())
        self._tasks.clear()
        if self._server is not None:
            await self._server.close()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._server is not None
        return self._server.port

    @property
    def book(self) -> AgreementBook:
        return self._state.book

    @property
    def seq(self) -> int:
        return self._state.seq

    def notify(self) -> None:
        """Our SAV information changed: send it to every peer we initiate with, now."""
        for name, event in self._wake.items():
            self._pending[name] = True
            event.set()

    async def end_agreement(self, ca_id: str) -> Agreement | None:
        """END_AGREEMENT from our side: ended here at once, then the peer is told (a failure is logged)."""
        a = self._state.book.get(ca_id)
        if a is None:
            return None
        other = a.provider if a.initiator == self.config.name else a.initiator
        self._set(replace(self._state, book=ag.end(self._state.book, ca_id, other)[0]))
        ended = self._state.book.get(ca_id)
        assert ended is not None
        self._hold(other)
        self._report(other, ended)
        peer = self.config.peer(other)
        if peer is not None:
            c = self.config
            client = CollabClient(c.name, peer.name, peer.url, client_context(c.cert, c.key, c.ca))
            try:
                await client.end(ca_id)
            except (CollabRefused, CollabUnavailable) as exc:
                log.warning("event=collab-end-not-delivered peer=%s ca_id=%s error=%r", other, ca_id,
                            str(exc)[:300])
        return ended

    async def revoke(self, peer: str) -> Agreement | None:
        """The operator ends the collaboration with `peer`: its agreement in force is ended (the peer is
        told) and no new one is made, either way, until `allow(peer)`. The agreement ended, if any."""
        self._set(replace(self._state, revoked=self._state.revoked | {peer}))
        log.warning("event=collab-peer-revoked peer=%s", peer)
        now = self._clock()
        live = [a for a in self._state.book.agreements.values() if a.party(peer) and a.active(now)]
        ended = None
        for a in live:
            ended = await self.end_agreement(a.ca_id)
        return ended

    def allow(self, peer: str) -> bool:
        """Undo `revoke`: agreements with `peer` can be made again; whether it was revoked."""
        was = peer in self._state.revoked
        self._set(replace(self._state, revoked=self._state.revoked - {peer}))
        if was:
            log.info("event=collab-peer-allowed peer=%s", peer)
            self.notify()
        return was

    @property
    def revoked(self) -> frozenset[str]:
        return self._state.revoked

    # --- the server's side (Endpoint) ----------------------------------------------------------------

    def on_propose(self, peer: str, request: AgreementRequest) -> Accepted | Refusal:
        if peer in self._state.revoked:
            return Refusal(CollabError.ERROR_UNACCEPTABLE_INITIATOR, f"collaboration with {peer} is revoked")
        book, result = ag.propose(self._state.book, request, peer, self.config.name, self._policies,
                                  self._clock())
        if isinstance(result, Accepted):
            self._set(replace(self._state, book=book))
            log.info("event=collab-agreement-made peer=%s ca_id=%s role=provider mode=%s expires_at=%.0f",
                     peer, result.agreement.ca_id, result.agreement.mode, result.agreement.expires_at)
            self._report(peer, result.agreement)
            self._peer_is_up(peer)
        return result

    def _peer_is_up(self, peer: str) -> None:
        """The peer just made an agreement with us: if we initiate with it too and are backing off (it was
        unreachable), try now rather than after the backoff."""
        event = self._wake.get(peer)
        if event is not None:
            event.set()

    def on_renew(self, peer: str, ca_id: str, expires_at: float) -> Agreement | Refusal:
        if peer in self._state.revoked:
            return Refusal(CollabError.ERROR_UNACCEPTABLE_NEW_EXPIRATION_DATE,
                           f"collaboration with {peer} is revoked")
        policy = self._policies.get(peer)
        max_s = policy.max_duration_s if policy else 0.0
        book, result = ag.renew(self._state.book, ca_id, peer, expires_at, max_s, self._clock())
        if isinstance(result, Agreement):
            self._set(replace(self._state, book=book))
            log.info("event=collab-agreement-renewed peer=%s ca_id=%s expires_at=%.0f", peer, ca_id,
                     result.expires_at)
            self._report(peer, result)
        return result

    def on_end(self, peer: str, ca_id: str) -> Agreement | Refusal:
        before = self._state.book.get(ca_id)
        book, result = ag.end(self._state.book, ca_id, peer)
        if isinstance(result, Agreement) and not (before and before.ended):
            self._set(replace(self._state, book=book))
            log.info("event=collab-agreement-ended peer=%s ca_id=%s by=peer", peer, ca_id)
            if result.initiator == self.config.name:
                self._hold(peer)
            self._report(peer, result)
        return result

    def on_sav_info(self, peer: str, info: SavInfo) -> Refusal | None:
        cfg = self.config.peer(peer)
        state, refusal = replay.check(self._state.replay, self._state.book, peer, info, self._clock(),
                                      self.config.max_skew_s, cfg.asn if cfg else None)
        if refusal is not None:
            return refusal
        self._set(replace(self._state, replay=state))
        log.info("event=collab-info-accepted peer=%s ca_id=%s seq=%d prefixes=%d arrives_from=%d", peer,
                 info.ca_id, info.seq, len(info.prefixes), len(info.arrives_from))
        try:
            self._on_info(peer, info)
        except Exception:
            log.exception("event=collab-on-info-failed peer=%s seq=%d", peer, info.seq)
        return None

    # --- our side as initiator -----------------------------------------------------------------------

    def proposals(self, peer: CollabPeer) -> tuple[Proposal, ...]:
        return (Proposal(1, peer.modes, (INFO_SAV_PREFIXES,), (peer.duration_s,)),)

    async def _initiate(self, peer: CollabPeer, client: CollabClient) -> None:
        backoff = MIN_BACKOFF_S
        while not self._stopping:
            try:
                wait = await self._initiator_step(peer, client)
                backoff = MIN_BACKOFF_S
            except CollabRefused as exc:
                log.warning("event=collab-peer-error peer=%s code=%s message=%r", peer.name, exc.code.value,
                            exc.message[:300])
                self._after_refusal(peer.name, exc.code)
                wait, backoff = backoff, min(backoff * 2, MAX_BACKOFF_S)
            except CollabUnavailable as exc:
                log.warning("event=collab-peer-unreachable peer=%s error=%r", peer.name, str(exc)[:300])
                wait, backoff = backoff, min(backoff * 2, MAX_BACKOFF_S)
            except Exception:
                log.exception("event=collab-initiator-error peer=%s", peer.name)
                wait, backoff = backoff, min(backoff * 2, MAX_BACKOFF_S)
            event = self._wake[peer.name]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), max(wait, 0.01))
            event.clear()

    async def _initiator_step(self, peer: CollabPeer, client: CollabClient) -> float:
        """Propose, renew or send as due; the seconds until something is due next."""
        now = self._clock()
        current = self._state.book.current(self.config.name, peer.name, now)
        if peer.name in self._state.revoked:
            return MAX_BACKOFF_S  # `allow` wakes us
        if current is None:
            hold = self._hold_until.get(peer.name, 0.0)
            if now < hold:
                return hold - now
            current = await self._propose(peer, client)
        duration = self._state.durations.get(current.ca_id, peer.duration_s)
        if self._clock() >= current.expires_at - duration / 3:
            current = await self._renew(peer, client, current, duration)
        if self._pending.get(peer.name) or self._clock() >= self._next_send.get(peer.name, 0.0):
            await self._send(peer, client, current)
        renew_at = current.expires_at - duration / 3
        return min(self._next_send[peer.name], renew_at) - self._clock()

    async def _propose(self, peer: CollabPeer, client: CollabClient) -> Agreement:
        accepted = await client.negotiate(self.proposals(peer))
        a = accepted.agreement
        self._set(replace(self._state, book=self._state.book.put(a),
                          durations={**self._state.durations, a.ca_id: accepted.proposal.duration_s[0]}))
        log.info("event=collab-agreement-made peer=%s ca_id=%s role=initiator mode=%s expires_at=%.0f",
                 peer.name, a.ca_id, a.mode, a.expires_at)
        self._next_send[peer.name] = 0.0
        self._report(peer.name, a)
        return a

    async def _renew(self, peer: CollabPeer, client: CollabClient, current: Agreement,
                     duration: float) -> Agreement:
        renewed = await client.renew(current.ca_id, self._clock() + duration)
        if renewed.ca_id != current.ca_id or not renewed.party(self.config.name):
            raise CollabRefused(CollabError.ERROR_UNACCEPTABLE_PROVIDER, "renewal answered another agreement")
        self._set(replace(self._state, book=self._state.book.put(renewed)))
        log.info("event=collab-agreement-renewed peer=%s ca_id=%s expires_at=%.0f", peer.name,
                 renewed.ca_id, renewed.expires_at)
        self._report(peer.name, renewed)
        return renewed

    async def _send(self, peer: CollabPeer, client: CollabClient, current: Agreement) -> None:
        prefixes, arrives_from = self._own_info(peer.asn)
        seq = self._state.seq + 1
        self._set(replace(self._state, seq=seq))  # persisted first: a crash never reuses a seq
        info = SavInfo(current.ca_id, self.config.name, self.config.asn, seq, self._clock(),
                       tuple(prefixes), tuple(arrives_from))
        self._pending[peer.name] = False
        try:
            await client.send(info)
        except BaseException:
            self._pending[peer.name] = True
            raise
        self._next_send[peer.name] = self._clock() + peer.send_every_s
        log.info("event=collab-info-sent peer=%s ca_id=%s seq=%d prefixes=%d", peer.name, info.ca_id, seq,
                 len(info.prefixes))

    def _after_refusal(self, peer: str, code: CollabError) -> None:
        """The peer no longer has our agreement: end ours, so the next step proposes a new one."""
        if code not in (CollabError.NO_AGREEMENT, CollabError.AGREEMENT_EXPIRED):
            return
        current = self._state.book.current(self.config.name, peer, self._clock())
        if current is not None:
            self._set(replace(self._state, book=ag.end(self._state.book, current.ca_id, peer)[0]))
            ended = self._state.book.get(current.ca_id)
            assert ended is not None
            self._report(peer, ended)

    def _hold(self, peer: str) -> None:
        """After an END, wait one send interval before proposing again (the END is not undone at once)."""
        cfg = self.config.peer(peer)
        if cfg is not None:
            self._hold_until[peer] = self._clock() + cfg.send_every_s

    # --- expiry and persistence ----------------------------------------------------------------------

    async def _expiry_loop(self) -> None:
        while not self._stopping:
            try:
                self.check_expiry()
            except Exception:
                log.exception("event=collab-expiry-error")
            await asyncio.sleep(self._tick_s)

    def check_expiry(self) -> tuple[Agreement, ...]:
        """Mark agreements found expired (each reported once), forget long-expired ones."""
        now = self._clock()
        book, due = ag.expire(self._state.book, now)
        pruned = ag.prune(book, now, KEEP_EXPIRED_S)
        if pruned is not self._state.book:
            durations = {k: v for k, v in self._state.durations.items() if k in pruned.agreements}
            self._set(replace(self._state, book=pruned, replay=replay.forget(self._state.replay, pruned),
                              durations=durations))
        for a in due:
            other = a.provider if a.initiator == self.config.name else a.initiator
            log.info("event=collab-agreement-expired peer=%s ca_id=%s", other, a.ca_id)
            self._report(other, a)
        return due

    def _set(self, state: _State) -> None:
        self._state = state
        try:
            save_state(self._path, state)
        except OSError as exc:
            log.error("event=collab-state-not-saved path=%s error=%r", self._path, str(exc)[:300])

    def _report(self, peer: str, a: Agreement) -> None:
        try:
            self._on_agreement(peer, a)
        except Exception:
            log.exception("event=collab-on-agreement-failed peer=%s ca_id=%s", peer, a.ca_id)
