"""Collaboration between ASes (issue 16), the daemon's side: SAV-specific information in, allowances in the
state store out.

The collaboration protocol (appliance/collab/, mutual TLS) calls `on_agreement` when an agreement with a
peer is made, renewed, ended or found expired, and `on_info` for every SavInfo it accepted; it asks
`own_info(peer_asn)` for what we send. Each peer's allowances are the store source `collab:<peer>`,
replaced whole on each change (ReplaceSource): journalled, so they survive a restart, and recomputed like
every other input; engine/collab.py applies them to the rules. Fail safe throughout: a SavInfo with no
live agreement, or for another agreement, or older than the last one, is ignored; an `arrives_from`
address naming none of our eBGP links to the sender is logged (`event=collab-unmapped`) and skipped; an
ended or expired agreement retracts the allowances its SavInfo gave and raises `collab.agreement-ended`,
which a new agreement in the same direction clears. `expire()` (the daemon's tick, or this component's own
loop) retracts an agreement that lapsed without a word; the recompute ignores expired allowances anyway
(engine/collab.py `live`).

Two savd instances that both initiate hold two agreements with each other, one per direction (each
carries its initiator's SavInfo): agreements are therefore kept by ca_id, and the renewal, end or expiry
of one never touches what the other carried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from appliance.collab.model import Agreement, SavInfo
from appliance.config import Config
from appliance.context import DaemonContext
from appliance.engine.collab import map_allowances
from appliance.model import CollabAllowance, Neighbor, canonical_prefix
from appliance.monitor import Monitor
from appliance.monitor.clock import Clock
from appliance.monitor.events import CollabAgreementEnded, collab_alarm_id
from appliance.periodic import Periodic
from appliance.state import ReplaceSource, StateStore

log = logging.getLogger("savd.collab")

KIND = "collab-allowance"
SOURCE_PREFIX = "collab:"


def source_name(peer: str) -> str:
    return f"{SOURCE_PREFIX}{peer}"


def own_info(config: Config, peer_asn: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What we tell the peer AS `peer_asn`: ([collaboration] prefixes, our `local_address` on each
    [[engine.neighbor]] link toward it), both deduplicated in configuration order."""
    addresses = (n.local_address for n in config.engine.neighbors if n.asn == peer_asn and n.local_address)
    return config.collaboration.prefixes, tuple(dict.fromkeys(addresses))


def _prefixes(peer: str, texts: Iterable[str]) -> tuple[str, ...]:
    out = []
    for text in texts:
        try:
            out.append(canonical_prefix(text))
        except ValueError as exc:
            log.warning("event=collab-bad-prefix peer=%s prefix=%r error=%r", peer, str(text)[:64], str(exc))
    return tuple(dict.fromkeys(out))


class CollabSource:
    """Per peer: its agreements (by ca_id, both directions), the last SavInfo it sent, and its allowances
    announced to the store."""

    name = "collab"

    def __init__(self, store: StateStore, monitor: Monitor, config: Callable[[], Config], clock: Clock,
                 *, interval_s: float = 30.0) -> None:
        self.store, self.monitor, self.config, self.clock = store, monitor, config, clock
        self.interval_s = interval_s
        self.held: dict[str, dict[str, Agreement]] = {}  # peer -> ca_id -> agreement as last reported
        self.infos: dict[str, SavInfo] = {}  # peer -> last SavInfo accepted under a live agreement
        self.over: dict[str, str] = {}  # ca_id -> "ended" | "expired": its allowances retracted, alarm raised
        #: peer -> initiators of its agreements that ended and were not followed by a new one (the alarm)
        self.down: dict[str, set[str]] = {}
        self._last: dict[str, str] = {}  # peer -> ca_id last reported
        self._task: Periodic | None = None

    @staticmethod
    def of(ctx: DaemonContext) -> CollabSource:
        """The daemon's: its store and monitor, the configuration in force (read at each call, so a reload
        applies to the next SavInfo), the monitor's clock."""
        return CollabSource(ctx.store, ctx.monitor, lambda: ctx.config, ctx.monitor.clock)

    @property
    def agreements(self) -> dict[str, Agreement]:
        """Peer -> the agreement to show for it: the one its SavInfo came under, else the last reported."""
        out = {}
        for peer, held in self.held.items():
            info = self.infos.get(peer)
            ca_id = info.ca_id if info is not None and info.ca_id in held else self._last[peer]
            out[peer] = held[ca_id]
        return out

    # --- the protocol's calls -------------------------------------------------------------------------

    def own_info(self, peer_asn: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return own_info(self.config(), peer_asn)

    def on_agreement(self, peer_name: str, agreement: Agreement) -> None:
        """An agreement made, renewed (new expiry: the allowances follow), ended or found expired."""
        try:
            self._agreement(peer_name, agreement)
        except Exception:  # the protocol's session must not die of our store or monitor
            log.exception("event=collab-agreement-failed peer=%s ca_id=%s", peer_name, agreement.ca_id)

    def on_info(self, peer_name: str, info: SavInfo) -> None:
        """SavInfo accepted by the protocol: the peer's allowances become what it says now."""
        try:
            self._info(peer_name, info)
        except Exception:
            log.exception("event=collab-info-failed peer=%s ca_id=%s", peer_name, info.ca_id)

    # --- the work -------------------------------------------------------------------------------------

    def _agreement(self, peer: str, agreement: Agreement) -> None:
        now = self.clock.now()
        held = self.held.setdefault(peer, {})
        for ca_id in [c for c in held if c in self.over and c != agreement.ca_id]:
            del held[ca_id]  # an agreement over is kept until the next report: bounded, per direction
            self.over.pop(ca_id)
        held[agreement.ca_id] = agreement
        self._last[peer] = agreement.ca_id
        if agreement.ended or agreement.expires_at <= now:
            if agreement.ca_id not in self.over:
                self._end(peer, agreement, "ended" if agreement.ended else "expired")
            return
        self.over.pop(agreement.ca_id, None)
        info = self.infos.get(peer)
        if info is not None and not self._live(peer, info.ca_id, now):
            self.infos.pop(peer)  # an agreement no longer in force: its word does not carry over
            info = None
        if info is None or info.ca_id == agreement.ca_id:  # another agreement's renewal changes nothing
            self._announce(peer, info)
        down = self.down.get(peer, set())
        down.discard(agreement.initiator)
        if down:  # the other direction is still down: the alarm stays
            return
        self.down.pop(peer, None)
        if self.monitor.clear(collab_alarm_id(peer), source_name(peer),
                              f"collaboration agreement {agreement.ca_id} with {peer} in force") is not None:
            log.info("event=collab-agreement peer=%s ca_id=%s expires_at=%s", peer, agreement.ca_id,
                     agreement.expires_at)

    def _live(self, peer: str, ca_id: str, now: float) -> bool:
        a = self.held.get(peer, {}).get(ca_id)
        return a is not None and not a.ended and a.expires_at > now

    def _info(self, peer: str, info: SavInfo) -> None:
        why = self._refusal(peer, info)
        if why:
            log.warning("event=collab-info-ignored peer=%s ca_id=%s seq=%d reason=%s", peer, info.ca_id,
                        info.seq, why)
            return
        self.infos[peer] = info
        self._announce(peer, info)

    def _refusal(self, peer: str, info: SavInfo) -> str:
        """Why `info` must not count ("" when it may)."""
        held = self.held.get(peer)
        if not held:
            return "no-agreement"
        agreement = held.get(info.ca_id)
        if agreement is None:
            return "other-agreement"
        if agreement.ended or agreement.expires_at <= self.clock.now():
            return "agreement-over"
        last = self.infos.get(peer)
        if last is not None and last.ca_id == info.ca_id and info.seq < last.seq:
            return "stale-seq"
        return ""

    def allowances(self, peer: str, info: SavInfo) -> tuple[CollabAllowance, ...]:
        """`info` mapped through the neighbour table (state and [[engine.neighbor]]), unmapped addresses
        logged."""
        agreement = self.held[peer][info.ca_id]
        found, unmapped = map_allowances(
            self._neighbors(), peer=peer, peer_asn=info.sender_asn, ca_id=info.ca_id,
            prefixes=_prefixes(peer, info.prefixes), arrives_from=info.arrives_from,
            expires_at=agreement.expires_at)
        for u in unmapped:
            log.warning("event=collab-unmapped peer=%s address=%r asn=%d reason=%s", peer, u.address[:64],
                        info.sender_asn, u.reason)
        return found

    def _neighbors(self) -> tuple[Neighbor, ...]:
        return tuple(dict.fromkeys((*self.store.snapshot().neighbors, *self.config().engine.neighbors)))

    def _announce(self, peer: str, info: SavInfo | None) -> None:
        facts = self.allowances(peer, info) if info is not None else ()
        applied = self.store.apply(ReplaceSource(source_name(peer), (KIND,), facts))
        log.info("event=collab-allowances peer=%s allowances=%d changed=%s version=%d", peer, len(facts),
                 applied.changed, applied.version)

    def _end(self, peer: str, agreement: Agreement, reason: str) -> None:
        """`agreement` is over: the allowances its SavInfo gave go (another live agreement's stay)."""
        self.over[agreement.ca_id] = reason
        self.down.setdefault(peer, set()).add(agreement.initiator)
        info = self.infos.get(peer)
        withdrawn = 0
        if info is not None and info.ca_id == agreement.ca_id:
            withdrawn = sum(1 for a in self.store.snapshot().collab_allowances if a.peer == peer)
            self.infos.pop(peer)
            self.store.apply(ReplaceSource(source_name(peer), (KIND,), ()))
        log.warning("event=collab-agreement-over peer=%s ca_id=%s reason=%s withdrawn=%d", peer,
                    agreement.ca_id, reason, withdrawn)
        self.monitor.emit(CollabAgreementEnded(peer, agreement.ca_id, reason, withdrawn))

    def expire(self) -> list[str]:
        """Retract the allowances of every agreement that lapsed without an `on_agreement`; the peers."""
        now = self.clock.now()
        lapsed = [(p, a) for p, held in self.held.items() for a in held.values()
                  if a.ca_id not in self.over and a.expires_at <= now]
        for peer, a in lapsed:
            self.on_agreement(peer, a)
        return list(dict.fromkeys(p for p, _ in lapsed))

    # --- component ------------------------------------------------------------------------------------

    async def start(self, ctx: DaemonContext) -> None:
        """Check for lapsed agreements every `interval_s`."""

        async def round_() -> None:
            try:
                self.expire()
            except Exception:
                log.exception("event=collab-expire-failed")

        self._task = Periodic(self.name, self.interval_s, round_)
        self._task.start()

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()


__all__ = ["KIND", "CollabSource", "own_info", "source_name"]
