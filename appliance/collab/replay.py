"""Which SavInfo messages are accepted: under a live agreement, from the authenticated peer, fresh.

Pure, so the order of the checks is a unit test. TLS authenticates the connection, not the message;
these checks bind the message to it: the agreement must exist with that peer and be live, `sender`
must be the certificate's peer (else FORGED), `seq` must exceed the last one accepted for
(peer, ca_id), and `sent_at` must be within `max_skew_s` of our clock (else REPLAYED; the seq alone
would accept an old message captured before a restart that lost nothing, but the window also bounds
how long a captured message stays useful). The state is a value: accepted seqs by (peer, ca_id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.collab.agreement import AgreementBook
from appliance.collab.model import CollabError, CollabRefused, Refusal, SavInfo

DEFAULT_MAX_SKEW_S = 300.0


@dataclass(frozen=True)
class ReplayState:
    """The last accepted seq per (peer, ca_id)."""

    last_seq: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def last(self, peer: str, ca_id: str) -> int:
        return self.last_seq.get((peer, ca_id), 0)


def check(state: ReplayState, book: AgreementBook, peer: str, info: SavInfo, now: float,
          max_skew_s: float = DEFAULT_MAX_SKEW_S, peer_asn: int | None = None
          ) -> tuple[ReplayState, Refusal | None]:
    """The new state and None when `info` is accepted; the unchanged state and the refusal otherwise."""
    refusal = _verdict(state, book, peer, info, now, max_skew_s, peer_asn)
    if refusal is not None:
        return state, refusal
    return ReplayState({**state.last_seq, (peer, info.ca_id): info.seq}), None


def _verdict(state: ReplayState, book: AgreementBook, peer: str, info: SavInfo, now: float,
             max_skew_s: float, peer_asn: int | None) -> Refusal | None:
    agreement = book.get(info.ca_id)
    if agreement is None or not agreement.party(peer) or agreement.ended:
        return Refusal(CollabError.NO_AGREEMENT, f"no live agreement {info.ca_id!r} with {peer!r}")
    if now >= agreement.expires_at:
        return Refusal(CollabError.AGREEMENT_EXPIRED, f"agreement {info.ca_id!r} expired")
    if info.sender != peer:
        return Refusal(CollabError.FORGED, f"sender {info.sender!r} is not the certificate's {peer!r}")
    if peer_asn is not None and info.sender_asn != peer_asn:
        return Refusal(CollabError.FORGED, f"sender_asn {info.sender_asn} is not {peer!r}'s AS{peer_asn}")
    last = state.last(peer, info.ca_id)
    if info.seq <= last:
        return Refusal(CollabError.REPLAYED, f"seq {info.seq} is not above the last accepted {last}")
    if abs(now - info.sent_at) > max_skew_s:
        return Refusal(CollabError.REPLAYED, f"sent_at is {now - info.sent_at:.0f}s from our clock "
                                             f"(at most {max_skew_s:g}s)")
    return None


def forget(state: ReplayState, book: AgreementBook) -> ReplayState:
    """Drop the seqs of agreements no longer in the book (after `agreement.prune`)."""
    return ReplayState({k: v for k, v in state.last_seq.items() if k[1] in book.agreements})


def state_to_json(state: ReplayState) -> list[dict[str, Any]]:
    return [{"peer": p, "ca_id": c, "seq": s} for (p, c), s in sorted(state.last_seq.items())]


def state_from_json(data: Any) -> ReplayState:
    """Raises CollabRefused(MALFORMED) naming the entry on a damaged file."""
    if not isinstance(data, list):
        raise CollabRefused(CollabError.MALFORMED, "replay: must be a list")
    out: dict[tuple[str, str], int] = {}
    for i, e in enumerate(data):
        if not (isinstance(e, dict) and isinstance(e.get("peer"), str) and isinstance(e.get("ca_id"), str)
                and isinstance(e.get("seq"), int) and not isinstance(e.get("seq"), bool)):
            raise CollabRefused(CollabError.MALFORMED, f"replay[{i}]: needs peer, ca_id (strings) and seq")
        out[(e["peer"], e["ca_id"])] = e["seq"]
    return ReplayState(out)
