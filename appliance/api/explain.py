"""Explain a verdict: would a packet from `source` be allowed on this router's interface, and why?

Pure: an InterfaceRules (or None) and an address or prefix in, a typed Explanation out. The deciding
entry is the longest listed prefix covering the source (py-radix); an allowlist passes only covered
sources, a blocklist stops only covered sources; no rule means pass (savd fails open).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import radix

from appliance.model import InterfaceRules, ListKind


@dataclass(frozen=True, slots=True)
class Explanation:
    router: str
    interface: str
    source: str
    verdict: str            # "pass" or the action's mode ("drop", "rate-limit", "redirect", "monitor")
    reason: str
    matched_prefix: str = ""
    provenance: tuple[str, ...] = ()
    list_kind: str = ""
    algorithm: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "router": self.router,
            "interface": self.interface,
            "source": self.source,
            "verdict": self.verdict,
            "reason": self.reason,
            "matched_prefix": self.matched_prefix,
            "provenance": list(self.provenance),
            "list": self.list_kind,
            "algorithm": self.algorithm,
        }


def parse_source(text: str) -> str:
    """An address or a prefix, canonical; raises ValueError with a readable message."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(f"not an IP address or prefix: {text!r}") from None


def explain(router: str, interface: str, rules: InterfaceRules | None, source: str) -> Explanation:
    src = parse_source(source)
    if rules is None:
        return Explanation(router, interface, src, "pass", "no SAV rule on this interface (fail open)")
    tree = radix.Radix()
    for p in rules.prefixes:
        tree.add(p)
    node = tree.search_best(src)
    covered = node is not None and ipaddress.ip_network(node.prefix).prefixlen <= \
        ipaddress.ip_network(src).prefixlen
    matched = node.prefix if node is not None and covered else ""
    prov = tuple(rules.provenance.get(matched, ())) if matched else ()
    mode = str(rules.action.mode)
    kind, algorithm = str(rules.kind), rules.algorithm

    def verdict(outcome: str, reason: str) -> Explanation:
        return Explanation(router, interface, src, outcome, reason, matched, prov, kind, algorithm)

    if rules.kind is ListKind.ALLOW:
        return verdict("pass", f"allowed by {matched}") if matched else \
            verdict(mode, "not in the interface's allowlist")
    return verdict(mode, f"blocked by {matched}") if matched else \
        verdict("pass", "not in the interface's blocklist")
