"""placeholder shape, replaced by the protocol branch"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SavInfo:
    """placeholder shape, replaced by the protocol branch"""

    ca_id: str
    sender: str
    sender_asn: int
    seq: int
    sent_at: float
    prefixes: tuple[str, ...]
    arrives_from: tuple[str, ...]


@dataclass(frozen=True)
class Agreement:
    """placeholder shape, replaced by the protocol branch"""

    ca_id: str
    initiator: str
    provider: str
    mode: str
    info: str
    expires_at: float
    ended: bool = False
