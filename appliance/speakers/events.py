"""Speaker-neutral session events: what every BGP speaker (ExaBGP, GoBGP) reports to its consumers.

The speakers turn their own output into these; the sources (BGP-LS ingest) and the FlowSpec pusher read
only these, so neither knows which speaker runs. `UpdateReceived` carries an UPDATE as ExaBGP's JSON shape
(the one speaker that receives routes today); decoding its families is the sources' job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EndOfRib", "MalformedLine", "SessionDown", "SessionUp", "SpeakerEvent", "SpeakerRestarted",
           "UpdateReceived"]


@dataclass(frozen=True, slots=True)
class SessionUp:
    neighbor: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class SessionDown:
    neighbor: str
    name: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EndOfRib:
    neighbor: str
    name: str = ""
    family: str = ""


@dataclass(frozen=True, slots=True)
class UpdateReceived:
    """A parsed UPDATE as ExaBGP printed it: `announce[family][next_hop] = [nlri, ...]`,
    `withdraw[family] = [nlri, ...]`, `attribute` = path attributes (one dict)."""

    neighbor: str
    name: str = ""
    attribute: Mapping[str, Any] = field(default_factory=dict)
    announce: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)
    withdraw: Mapping[str, Sequence[Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpeakerRestarted:
    """ExaBGP died and was started again; every session was reset (a SessionDown preceded this)."""

    attempt: int
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class MalformedLine:
    line: str
    error: str


SpeakerEvent = SessionUp | SessionDown | EndOfRib | UpdateReceived | SpeakerRestarted | MalformedLine
