"""The journal form of pushed FlowSpec rules: what each peer holds, keyed by NLRI, as typed JSON.

The store records pushes as opaque key -> text pairs (journal.py); this module fixes that text for
FlowRule so a restarted pusher gets its rules back as FlowRule values, diffs them against the rules it
wants and sends only the difference (no withdraw-all, no re-announce-all). Key: the rule's NLRI as
ExaBGP-like text ("source 198.18.1.0/24"); value: the FlowRule as JSON (pydantic TypeAdapter).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Protocol

from pydantic import TypeAdapter, ValidationError

from appliance.flowspec.diff import FlowDiff
from appliance.flowspec.rules import FlowRule
from appliance.state.errors import StateError

_RULE = TypeAdapter(FlowRule)


class PushRecord(Protocol):
    def record_push(self, peer: str, announced: dict[str, str], withdrawn: Iterable[str]) -> None: ...

    def pushed(self, peer: str) -> dict[str, str]: ...


def rule_key(rule: FlowRule) -> str:
    return str(rule.match)


def encode_rule(rule: FlowRule) -> str:
    return json.dumps(_RULE.dump_python(rule, mode="json"), sort_keys=True, separators=(",", ":"))


def decode_rule(text: str) -> FlowRule:
    try:
        rule: FlowRule = _RULE.validate_json(text)
    except ValidationError as exc:
        raise ValueError(f"not a FlowRule: {exc.errors()[0]['msg']}") from exc
    return rule


def record_diff(record: PushRecord, peer: str, change: FlowDiff) -> None:
    """Call after `change` reached `peer`: announced rules are held, withdrawn ones are not."""
    announced = {rule_key(r): encode_rule(r) for r in change.announce}
    withdrawn = [rule_key(r) for r in change.withdraw if rule_key(r) not in announced]
    record.record_push(peer, announced, withdrawn)


def held_rules(record: PushRecord, peer: str) -> tuple[FlowRule, ...]:
    """The rules `peer` held when savd last recorded a push (raises StateError on a damaged record)."""
    return tuple(decode_held(peer, key, text) for key, text in sorted(record.pushed(peer).items()))


def decode_held(peer: str, key: str, text: str) -> FlowRule:
    """One recorded rule of `peer` (StateError naming it when it does not decode)."""
    try:
        return decode_rule(text)
    except ValueError as exc:
        raise StateError(f"pushed rule {key!r} of peer {peer} does not decode: {exc}") from exc
