"""Record and replay the receiver's input (holo's event recorder, style.md §1.1).

The enforcer can append every session and UPDATE event it receives to a JSON-lines file (`run
--record`); `replay` turns such a file, or raw ExaBGP API output, back into the same typed events, so a
field problem becomes a unit test and `savd-enforcer plan --updates` shows the exact nft text a node
would have applied. One record per line: {"type": "update", "neighbor", "attribute", "announce",
"withdraw"} | {"type": "up"|"down", "neighbor"}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from appliance.speakers.events import SessionDown, SessionUp, SpeakerEvent, UpdateReceived
from appliance.speakers.exabgp import parse_api_line

__all__ = ["record_of", "replay"]


def record_of(event: SpeakerEvent) -> dict[str, Any] | None:
    """The JSON record of an event the enforcer consumes, or None for the others."""
    if isinstance(event, UpdateReceived):
        return {"type": "update", "neighbor": event.neighbor, "attribute": dict(event.attribute),
                "announce": {f: dict(nh) for f, nh in event.announce.items()},
                "withdraw": {f: list(n) for f, n in event.withdraw.items()}}
    if isinstance(event, SessionUp):
        return {"type": "up", "neighbor": event.neighbor}
    if isinstance(event, SessionDown):
        return {"type": "down", "neighbor": event.neighbor, "reason": event.reason}
    return None


def replay(lines: Iterable[str]) -> Iterator[tuple[int, SpeakerEvent | str]]:
    """(line number, event) per line; an undecodable line yields its error text instead of an event."""
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            yield lineno, f"invalid JSON: {exc}"
            continue
        if isinstance(doc, dict) and "exabgp" in doc:
            event = parse_api_line(text)
            if event is not None:
                yield lineno, event
            continue
        if not isinstance(doc, dict) or doc.get("type") not in ("update", "up", "down"):
            yield lineno, "neither an ExaBGP message nor an enforcer record"
            continue
        neighbor = str(doc.get("neighbor", ""))
        if doc["type"] == "up":
            yield lineno, SessionUp(neighbor)
        elif doc["type"] == "down":
            yield lineno, SessionDown(neighbor, reason=str(doc.get("reason", "")))
        else:
            yield lineno, UpdateReceived(neighbor, attribute=doc.get("attribute", {}),
                                         announce=doc.get("announce", {}), withdraw=doc.get("withdraw", {}))
