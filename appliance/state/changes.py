"""Changes to the store: the typed, serialisable inputs the journal records and replays.

Every fact belongs to a source ("api", "file:reports.toml", "bgp-ls:exa1/198.18.0.2", "rtr:stayrtr"),
so a session that goes down withdraws exactly what it said (rtrlib's src_remove):
- Announce(source, facts): the source now states these facts.
- Withdraw(source, facts): it no longer does.
- ReplaceSource(source, kinds, facts): a full resync of those kinds from that source (RTR cache reset,
  file reload): facts of those kinds it no longer states are withdrawn.
- WithdrawSource(source): everything that source said is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.state.facts import Fact, decode_facts, encode_facts, group_by_kind


@dataclass(frozen=True, slots=True)
class Announce:
    source: str
    facts: tuple[Fact, ...]


@dataclass(frozen=True, slots=True)
class Withdraw:
    source: str
    facts: tuple[Fact, ...]


@dataclass(frozen=True, slots=True)
class ReplaceSource:
    source: str
    kinds: tuple[str, ...]
    facts: tuple[Fact, ...]


@dataclass(frozen=True, slots=True)
class WithdrawSource:
    source: str


Change = Announce | Withdraw | ReplaceSource | WithdrawSource


def _facts_json(facts: tuple[Fact, ...]) -> dict[str, list[Any]]:
    """Facts grouped by kind (order within a change does not matter: facts are a set)."""
    return {kind: encode_facts(kind, group) for kind, group in sorted(group_by_kind(facts).items())}


def encode_change(change: Change) -> str:
    """One compact JSON line."""
    data: dict[str, Any] = {"op": type(change).__name__, "source": change.source}
    if isinstance(change, Announce | Withdraw | ReplaceSource):
        data["facts"] = _facts_json(change.facts)
    if isinstance(change, ReplaceSource):
        data["kinds"] = list(change.kinds)
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def decode_change(text: str) -> Change:
    """Raise ValueError saying what is wrong with the line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("source"), str):
        raise ValueError("not a change object with a string 'source'")
    op, source = data.get("op"), data["source"]
    if op == "WithdrawSource":
        return WithdrawSource(source)
    raw = data.get("facts")
    if not isinstance(raw, dict):
        raise ValueError(f"{op}: 'facts' must be an object of kind -> list")
    facts: list[Fact] = []
    for kind, items in raw.items():
        facts.extend(decode_facts(kind, items))
    if op == "Announce":
        return Announce(source, tuple(facts))
    if op == "Withdraw":
        return Withdraw(source, tuple(facts))
    if op == "ReplaceSource":
        kinds = data.get("kinds")
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ValueError("ReplaceSource: 'kinds' must be a list of strings")
        return ReplaceSource(source, tuple(kinds), tuple(facts))
    raise ValueError(f"unknown op {op!r}")
