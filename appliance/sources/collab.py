"""Collaboration between ASes (issue 16), the daemon's side: SAV-specific information in, allowances in the
state store out.

The collaboration protocol (appliance/collab/, mutual TLS) calls `on_agreement` when an agreement with a
peer is made, renewed, ended or found expired, and `on_info` for every SavInfo it accepted; it asks
`own_info(peer_asn)` for what we send. Each peer's allowances are the store source `collab:<peer>`,
replaced whole on each change (ReplaceSource): journalled, so they survive a restart, and recomputed like
every other input; engine/collab.py applies them to the rules. Fail safe throughout: a SavInfo with no
live agreement, or for another agreement, or older than the last one, is ignored; an `arrives_from`
address naming none of our eBGP links to the sender is logged (`event=collab-unmapped`) and skipped; an
ended or expired agreement retracts the peer's allowances and raises `collab.agreement-ended`, which a new
agreement clears. `expire()` (the daemon's tick, or this component's own loop) retracts an agreement that
lapsed without a word; the recompute ignores expired allowances anyway (engine/collab.py `live`).
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
    """Per peer: the last agreement and SavInfo it reported, and its allowances announced to the store."""

    name = "collab"

    def __init__(self, store: StateStore, monitor: Monitor, config: Callable[[], Config], clock: Clock,
                 *, interval_s: float = 30.0) -> None:
        self.store, self.monitor, self.config, self.clock = store, monitor, config, clock
        self.interval_s = interval_s
        self.agreements: dict[str, Agreement] = {}  # peer -> as last reported
        self.infos: dict[str, SavInfo] = {}  # peer -> last SavInfo accepted under its current agreement
        self.over: dict[str, str] = {}  # peer -> "ended" | "expired": allowances retracted, alarm raised
        self._task: Periodic | None = None

    @staticmethod
    def of(ctx: DaemonContext) -> CollabSource:
        """The daemon's: its store and monitor, the configuration in force (read at each call, so a reload
        applies to the next SavInfo), the monitor's clock."""
        return CollabSource(ctx.store, ctx.monitor, lambda: ctx.config, ctx.monitor.clock)

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
        self.agreements[peer] = agreement
        if agreement.ended or agreement.expires_at <= now:
            self._end(peer, agreement, "ended" if agreement.ended else "expired")
            return
        self.over.pop(peer, None)
        info = self.infos.get(peer)
        if info is not None and info.ca_id != agreement.ca_id:
            self.infos.pop(peer)  # another agreement's word does not carry over
            info = None
        self._announce(peer, info)
        if self.monitor.clear(collab_alarm_id(peer), source_name(peer),
                              f"collaboration agreement {agreement.ca_id} with {peer} in force") is not None:
            log.info("event=collab-agreement peer=%s ca_id=%s expires_at=%s", peer, agreement.ca_id,
                     agreement.expires_at)

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
        agreement = self.agreements.get(peer)
        if agreement is None:
            return "no-agreement"
        if agreement.ca_id != info.ca_id:
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
        agreement = self.agreements[peer]
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
        held = [a for a in self.store.snapshot().collab_allowances if a.peer == peer]
        self.infos.pop(peer, None)
        self.over[peer] = reason
        self.store.apply(ReplaceSource(source_name(peer), (KIND,), ()))
        log.warning("event=collab-agreement-over peer=%s ca_id=%s reason=%s withdrawn=%d", peer,
                    agreement.ca_id, reason, len(held))
        self.monitor.emit(CollabAgreementEnded(peer, agreement.ca_id, reason, len(held)))

    def expire(self) -> list[str]:
        """Retract the allowances of every agreement that lapsed without an `on_agreement`; the peers."""
        now = self.clock.now()
        lapsed = [p for p, a in self.agreements.items() if p not in self.over and a.expires_at <= now]
        for peer in lapsed:
            self.on_agreement(peer, self.agreements[peer])
        return lapsed

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
