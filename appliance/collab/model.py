"""The collaboration protocol's values and their JSON form: error codes, proposals, agreements, SAV info.

Hand-written because no library implements draft-mglt-i2nsf-ssf-collaboration: the draft gives objects
(ca_id, initiator, provider, proposals with attribute values, collaboration type, expiry) and five error
codes, not a wire format. savd's JSON keeps the draft's names and adds the SAV payload of Scenario 2 of
draft-tong-savnet-sav-enhanced-by-controller (the prefixes an AS originates and the eBGP links their
traffic arrives over). Parsing is strict: any bad field raises `CollabRefused(MALFORMED)` naming it,
because a peer in another administrative domain is untrusted input.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.errors import PeerDataError

MODES = ("resilient", "best-effort")
INFO_SAV_PREFIXES = "sav-prefixes"
MAX_ITEMS = 100_000  # prefixes / addresses in one SavInfo: bounds a peer's memory use on us


class CollabError(enum.Enum):
    """The draft's five error codes, then savd's own (message-level checks the draft leaves open)."""

    ERROR_UNACCEPTABLE_CA_ID = "ERROR_UNACCEPTABLE_CA_ID"
    ERROR_UNACCEPTABLE_PROVIDER = "ERROR_UNACCEPTABLE_PROVIDER"
    ERROR_UNACCEPTABLE_INITIATOR = "ERROR_UNACCEPTABLE_INITIATOR"
    ERROR_UNACCEPTABLE_PROPOSALS = "ERROR_UNACCEPTABLE_PROPOSALS"
    ERROR_UNACCEPTABLE_NEW_EXPIRATION_DATE = "ERROR_UNACCEPTABLE_NEW_EXPIRATION_DATE"
    NO_AGREEMENT = "NO_AGREEMENT"
    AGREEMENT_EXPIRED = "AGREEMENT_EXPIRED"
    REPLAYED = "REPLAYED"
    FORGED = "FORGED"  # the message names another peer than the TLS certificate does
    MALFORMED = "MALFORMED"


@dataclass(frozen=True)
class Refusal:
    """A refused request as a value (what the pure transitions return)."""

    code: CollabError
    message: str


class CollabRefused(PeerDataError):
    """A refusal raised: by the parsers (MALFORMED) and by the client when the peer answers an error."""

    def __init__(self, code: CollabError, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    @property
    def refusal(self) -> Refusal:
        return Refusal(self.code, self.message)


@dataclass(frozen=True)
class Proposal:
    """One proposal of the initiator: every attribute lists the values it accepts, preferred first."""

    proposal_id: int
    modes: tuple[str, ...]
    info: tuple[str, ...]
    duration_s: tuple[float, ...]


@dataclass(frozen=True)
class Agreement:
    """A collaboration agreement (CA) as both parties record it."""

    ca_id: str
    initiator: str
    provider: str
    mode: str
    info: str
    expires_at: float
    ended: bool = False

    def party(self, name: str) -> bool:
        return name in (self.initiator, self.provider)

    def active(self, now: float) -> bool:
        return not self.ended and now < self.expires_at


@dataclass(frozen=True)
class AgreementRequest:
    """The draft's collaboration agreement protocol request: ca_id, initiator, proposals."""

    ca_id: str
    initiator: str
    proposals: tuple[Proposal, ...]


@dataclass(frozen=True)
class SavInfo:
    """SAV-specific information one AS gives its neighbour: what it originates, and where it enters.

    `prefixes`: the sender's AS originates them (CIDR, canonical). `arrives_from`: the sender-side
    addresses of the eBGP links over which that traffic enters the receiver's AS; the receiver maps
    them to its routers and interfaces with its [[engine.neighbor]] `address`.
    """

    ca_id: str
    sender: str
    sender_asn: int
    seq: int
    sent_at: float
    prefixes: tuple[str, ...]
    arrives_from: tuple[str, ...]


# --- JSON --------------------------------------------------------------------------------------------------


def _bad(field: str, message: str) -> CollabRefused:
    return CollabRefused(CollabError.MALFORMED, f"{field}: {message}")


def _obj(data: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise _bad(field, f"must be an object, got {type(data).__name__}")
    return data


def _str(d: Mapping[str, Any], key: str, at: str = "") -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value or len(value) > 255 or not value.isprintable():
        raise _bad(at + key, "must be a non-empty printable string of at most 255 characters")
    return value


def _int(d: Mapping[str, Any], key: str, at: str = "", lo: int = 0, hi: int = 2**63 - 1) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _bad(at + key, f"must be an integer between {lo} and {hi}")
    return value


def _float(d: Mapping[str, Any], key: str, at: str = "") -> float:
    value = d.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise _bad(at + key, "must be a finite non-negative number")
    return float(value)


def _bool(d: Mapping[str, Any], key: str, at: str = "") -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise _bad(at + key, "must be true or false")
    return value


def _list(d: Mapping[str, Any], key: str, at: str = "", non_empty: bool = True) -> list[Any]:
    value = d.get(key)
    if not isinstance(value, list) or (non_empty and not value) or len(value) > MAX_ITEMS:
        what = "non-empty list" if non_empty else "list"
        raise _bad(at + key, f"must be a {what} of at most {MAX_ITEMS} items")
    return value


def _strs(d: Mapping[str, Any], key: str, at: str = "") -> tuple[str, ...]:
    items = _list(d, key, at)
    if not all(isinstance(v, str) and v for v in items):
        raise _bad(at + key, "must list non-empty strings")
    return tuple(items)


def proposal_to_json(p: Proposal) -> dict[str, Any]:
    return {"proposal_id": p.proposal_id, "modes": list(p.modes), "info": list(p.info),
            "duration_s": list(p.duration_s)}


def proposal_from_json(data: Any, at: str = "") -> Proposal:
    d = _obj(data, at.rstrip(".") or "proposal")
    durations = _list(d, "duration_s", at)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
               for v in durations):
        raise _bad(at + "duration_s", "must list positive finite numbers")
    return Proposal(_int(d, "proposal_id", at), _strs(d, "modes", at), _strs(d, "info", at),
                    tuple(float(v) for v in durations))


def request_to_json(r: AgreementRequest) -> dict[str, Any]:
    return {"ca_id": r.ca_id, "initiator": r.initiator,
            "proposals": [proposal_to_json(p) for p in r.proposals]}


def request_from_json(data: Any) -> AgreementRequest:
    d = _obj(data, "request")
    proposals = _list(d, "proposals")
    return AgreementRequest(_str(d, "ca_id"), _str(d, "initiator"),
                            tuple(proposal_from_json(p, f"proposals[{i}].") for i, p in enumerate(proposals)))


def agreement_to_json(a: Agreement) -> dict[str, Any]:
    return {"ca_id": a.ca_id, "initiator": a.initiator, "provider": a.provider, "mode": a.mode,
            "info": a.info, "expires_at": a.expires_at, "ended": a.ended}


def agreement_from_json(data: Any, at: str = "") -> Agreement:
    d = _obj(data, at.rstrip(".") or "agreement")
    mode = _str(d, "mode", at)
    if mode not in MODES:
        raise _bad(at + "mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    return Agreement(_str(d, "ca_id", at), _str(d, "initiator", at), _str(d, "provider", at), mode,
                     _str(d, "info", at), _float(d, "expires_at", at), _bool(d, "ended", at))


def sav_info_to_json(i: SavInfo) -> dict[str, Any]:
    return {"ca_id": i.ca_id, "sender": i.sender, "sender_asn": i.sender_asn, "seq": i.seq,
            "sent_at": i.sent_at, "prefixes": list(i.prefixes), "arrives_from": list(i.arrives_from)}


def _canonical(d: Mapping[str, Any], key: str, parse: Callable[[str], object], what: str) -> tuple[str, ...]:
    """The list at `key`, each item a string `parse` accepts and prints back unchanged (canonical)."""
    out = []
    for n, v in enumerate(_list(d, key, non_empty=False)):
        try:
            parsed = parse(v) if isinstance(v, str) else None
        except ValueError:
            parsed = None
        if parsed is None or str(parsed) != v:
            raise _bad(f"{key}[{n}]", f"must be a canonical {what}, got {v!r}")
        out.append(v)
    return tuple(out)


def _prefixes(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return _canonical(d, key, ipaddress.ip_network, "CIDR prefix")


def _addresses(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return _canonical(d, key, ipaddress.ip_address, "IP address")


def sav_info_from_json(data: Any) -> SavInfo:
    d = _obj(data, "sav-info")
    return SavInfo(_str(d, "ca_id"), _str(d, "sender"), _int(d, "sender_asn", lo=1, hi=2**32 - 1),
                   _int(d, "seq", lo=1), _float(d, "sent_at"), _prefixes(d, "prefixes"),
                   _addresses(d, "arrives_from"))


def error_to_json(r: Refusal) -> dict[str, Any]:
    return {"error": r.code.value, "message": r.message}


def error_from_json(data: Any) -> Refusal:
    """A peer's error body; an unknown code is itself a malformed answer."""
    d = _obj(data, "error")
    try:
        code = CollabError(d.get("error"))
    except ValueError:
        raise _bad("error", f"unknown error code {d.get('error')!r}") from None
    message = d.get("message", "")
    return Refusal(code, message if isinstance(message, str) else "")
