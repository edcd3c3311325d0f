"""What a rule set does to one source prefix or address, per interface, and why (`savd rules explain`).

Pure: takes a SavRuleSet, returns typed answers; the CLI (and later the daemon) prints them.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from appliance.engine.prefixset import PrefixSet
from appliance.model import InterfaceRules, ListKind, SavRuleSet

__all__ = ["Explanation", "Verdict", "explain"]


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class Explanation:
    router: str
    interface: str
    verdict: Verdict
    matched: tuple[str, ...]
    reasons: tuple[str, ...]
    kind: ListKind
    algorithm: str
    mode: str


def _normal(text: str) -> str:
    net = ipaddress.ip_network(text.strip(), strict=False)
    return str(net)


def explain(rules: SavRuleSet, source: str, router: str | None = None) -> list[Explanation]:
    """Every interface's verdict for sources in `source` (a prefix or an address)."""
    prefix = _normal(source)
    out = []
    for r in rules.rules:
        if router is not None and r.router != router:
            continue
        out.append(_one(r, prefix))
    return out


def _one(r: InterfaceRules, prefix: str) -> Explanation:
    members = PrefixSet(r.prefixes)
    covering = members.covering(prefix)
    inside = tuple(p for p in members.covered(prefix) if p != prefix)
    matched = covering[:1] if covering else inside
    reasons = tuple(x for m in matched for x in r.provenance.get(m, ()))
    if r.kind is ListKind.ALLOW:
        verdict = Verdict.ALLOW if covering else (Verdict.PARTIAL if inside else Verdict.BLOCK)
        if not matched:
            reasons = (f"not in the allowlist of {r.router}:{r.interface}",)
    else:
        verdict = Verdict.BLOCK if covering else (Verdict.PARTIAL if inside else Verdict.ALLOW)
        if not matched:
            reasons = ("not in the blocklist",)
    return Explanation(
        r.router, r.interface, verdict, matched, reasons, r.kind, r.algorithm, str(r.action.mode)
    )
