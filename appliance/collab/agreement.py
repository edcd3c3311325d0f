"""Collaboration agreements: the provider's choice among proposals, renewal, END_AGREEMENT, expiry.

Pure (the time is a parameter), so every rule of draft-mglt-i2nsf-ssf-collaboration sections 4-6 is a
unit test: the provider picks the first proposal whose every attribute has a value it accepts, and for
each attribute one value, its preferred; a ca_id already in the book is ERROR_UNACCEPTABLE_CA_ID; an
initiator without a policy is ERROR_UNACCEPTABLE_INITIATOR; a new expiry in the past or beyond the
party's maximum duration is ERROR_UNACCEPTABLE_NEW_EXPIRATION_DATE. Each transition returns the new
`AgreementBook` and the response or a `Refusal`; the book is never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.collab.model import (
    INFO_SAV_PREFIXES,
    Agreement,
    AgreementRequest,
    CollabError,
    CollabRefused,
    Proposal,
    Refusal,
    agreement_from_json,
    agreement_to_json,
)


@dataclass(frozen=True)
class Policy:
    """What this instance accepts from one peer: modes and info by preference, the longest duration."""

    modes: tuple[str, ...]
    max_duration_s: float
    info: tuple[str, ...] = (INFO_SAV_PREFIXES,)


@dataclass(frozen=True)
class Accepted:
    """The provider's response: the agreement and the chosen proposal (one value per attribute)."""

    agreement: Agreement
    proposal: Proposal


@dataclass(frozen=True)
class AgreementBook:
    """Agreements by ca_id (both roles), and which expiries were already reported."""

    agreements: Mapping[str, Agreement] = field(default_factory=dict)
    reported_expired: frozenset[str] = frozenset()

    def get(self, ca_id: str) -> Agreement | None:
        return self.agreements.get(ca_id)

    def put(self, agreement: Agreement) -> AgreementBook:
        return replace(self, agreements={**self.agreements, agreement.ca_id: agreement})

    def current(self, initiator: str, provider: str, now: float) -> Agreement | None:
        """The active agreement between these two, latest expiry first (None when there is none)."""
        found = [a for a in self.agreements.values()
                 if a.initiator == initiator and a.provider == provider and a.active(now)]
        return max(found, key=lambda a: a.expires_at, default=None)


def choose(proposals: tuple[Proposal, ...], policy: Policy) -> Proposal | None:
    """The first proposal the policy fully accepts, narrowed to the policy's preferred values."""
    for p in proposals:
        mode = next((m for m in policy.modes if m in p.modes), None)
        info = next((i for i in policy.info if i in p.info), None)
        duration = max((d for d in p.duration_s if 0 < d <= policy.max_duration_s), default=None)
        if mode is not None and info is not None and duration is not None:
            return Proposal(p.proposal_id, (mode,), (info,), (duration,))
    return None


def propose(book: AgreementBook, request: AgreementRequest, peer: str, provider: str,
            policies: Mapping[str, Policy], now: float) -> tuple[AgreementBook, Accepted | Refusal]:
    """The provider's side of a request from the authenticated `peer`."""
    if request.initiator != peer:
        return book, Refusal(CollabError.FORGED, f"initiator {request.initiator!r} is not the peer {peer!r}")
    policy = policies.get(peer)
    if policy is None:
        return book, Refusal(CollabError.ERROR_UNACCEPTABLE_INITIATOR, f"no collaboration with {peer!r}")
    if request.ca_id in book.agreements:
        return book, Refusal(CollabError.ERROR_UNACCEPTABLE_CA_ID, f"ca_id {request.ca_id!r} is in use")
    chosen = choose(request.proposals, policy)
    if chosen is None:
        return book, Refusal(CollabError.ERROR_UNACCEPTABLE_PROPOSALS,
                             f"none acceptable (modes {list(policy.modes)}, info {list(policy.info)}, "
                             f"duration at most {policy.max_duration_s:g}s)")
    agreement = Agreement(request.ca_id, peer, provider, chosen.modes[0], chosen.info[0],
                          now + chosen.duration_s[0])
    return book.put(agreement), Accepted(agreement, chosen)


def check_response(request: AgreementRequest, accepted: Accepted, peer: str, now: float) -> Refusal | None:
    """The initiator's check of the provider's answer: it is the peer, and chose what was proposed."""
    a, p = accepted.agreement, accepted.proposal
    if a.provider != peer:
        return Refusal(CollabError.ERROR_UNACCEPTABLE_PROVIDER, f"provider {a.provider!r} is not {peer!r}")
    offered = next((o for o in request.proposals if o.proposal_id == p.proposal_id), None)
    if (a.ca_id != request.ca_id or a.initiator != request.initiator or offered is None
            or a.mode not in offered.modes or a.info not in offered.info or a.ended
            or not now < a.expires_at <= now + max(offered.duration_s) + 60):
        return Refusal(CollabError.ERROR_UNACCEPTABLE_PROVIDER, "the answer is not one of our proposals")
    return None


def _party_agreement(book: AgreementBook, ca_id: str, peer: str) -> Agreement | Refusal:
    a = book.get(ca_id)
    if a is None or not a.party(peer):  # another peer's agreement is not revealed
        return Refusal(CollabError.NO_AGREEMENT, f"no agreement {ca_id!r} with {peer!r}")
    return a


def renew(book: AgreementBook, ca_id: str, peer: str, expires_at: float, max_duration_s: float,
          now: float) -> tuple[AgreementBook, Agreement | Refusal]:
    """UPDATE_EXPIRATION_DATE from either party: extend or advance, within (now, now + max]."""
    a = _party_agreement(book, ca_id, peer)
    if isinstance(a, Refusal):
        return book, a
    if a.ended:
        return book, Refusal(CollabError.NO_AGREEMENT, f"agreement {ca_id!r} was ended")
    if now >= a.expires_at:
        return book, Refusal(CollabError.AGREEMENT_EXPIRED, f"agreement {ca_id!r} expired")
    if not now < expires_at <= now + max_duration_s:
        return book, Refusal(CollabError.ERROR_UNACCEPTABLE_NEW_EXPIRATION_DATE,
                             f"expires_at must be after now and at most {max_duration_s:g}s ahead")
    renewed = replace(a, expires_at=expires_at)
    return book.put(renewed), renewed


def end(book: AgreementBook, ca_id: str, peer: str) -> tuple[AgreementBook, Agreement | Refusal]:
    """END_AGREEMENT from either party; ending an ended agreement answers it again (retries are safe)."""
    a = _party_agreement(book, ca_id, peer)
    if isinstance(a, Refusal):
        return book, a
    ended = replace(a, ended=True)
    return book.put(ended), ended


def expire(book: AgreementBook, now: float) -> tuple[AgreementBook, tuple[Agreement, ...]]:
    """Agreements past their expiry not yet reported (each is reported once)."""
    due = tuple(a for a in book.agreements.values()
                if not a.ended and now >= a.expires_at and a.ca_id not in book.reported_expired)
    if not due:
        return book, ()
    return replace(book, reported_expired=book.reported_expired | {a.ca_id for a in due}), due


def prune(book: AgreementBook, now: float, keep_s: float) -> AgreementBook:
    """Forget agreements whose expiry is more than `keep_s` ago (bounds the book and its file)."""
    gone = {a.ca_id for a in book.agreements.values() if a.expires_at + keep_s < now}
    if not gone:
        return book
    return AgreementBook({k: a for k, a in book.agreements.items() if k not in gone},
                         book.reported_expired - gone)


def book_to_json(book: AgreementBook) -> dict[str, Any]:
    return {"agreements": [agreement_to_json(a) for a in book.agreements.values()],
            "reported_expired": sorted(book.reported_expired)}


def book_from_json(data: Any) -> AgreementBook:
    """Raises CollabRefused(MALFORMED) naming the field on a damaged file."""
    if not isinstance(data, dict) or not isinstance(data.get("agreements"), list):
        raise CollabRefused(CollabError.MALFORMED, "agreements: must be a list")
    agreements = [agreement_from_json(a, f"agreements[{i}].") for i, a in enumerate(data["agreements"])]
    reported = data.get("reported_expired", [])
    if not isinstance(reported, list) or not all(isinstance(r, str) for r in reported):
        raise CollabRefused(CollabError.MALFORMED, "reported_expired: must be a list of strings")
    return AgreementBook({a.ca_id: a for a in agreements}, frozenset(reported))
