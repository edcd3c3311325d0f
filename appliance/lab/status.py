"""Pure views over FRR's vtysh JSON: neighbour summaries for `savd lab status`, and the subset match used
to wait for convergence.

`json_subset(expected, actual)` follows FRR topotests' `json_cmp`: `expected` must be contained in
`actual`; dict keys must exist (a `null` value means "must be absent"), "*" matches any value, and a
list matches when every expected item matches a distinct actual item, in any order.
"""

from __future__ import annotations

from typing import Any


def json_subset(expected: Any, actual: Any) -> bool:
    """True when `actual` contains `expected` (topotests json_cmp semantics, unordered lists)."""
    if expected == "*":
        return True
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        for key, want in expected.items():
            if want is None:
                if key in actual:
                    return False
            elif key not in actual or not json_subset(want, actual[key]):
                return False
        return True
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        free = list(actual)
        for want in expected:
            match = next((i for i, got in enumerate(free) if json_subset(want, got)), None)
            if match is None:
                return False
            free.pop(match)
        return True
    return bool(expected == actual)


def ospf_neighbors(doc: Any) -> list[dict[str, str]]:
    """`show ip ospf neighbor json` (FRR 8.x: neighbors -> router-id -> [entries]) as flat rows."""
    rows: list[dict[str, str]] = []
    neighbors = doc.get("neighbors", {}) if isinstance(doc, dict) else {}
    for rid, entries in sorted(neighbors.items()):
        for entry in entries if isinstance(entries, list) else [entries]:
            state = str(entry.get("nbrState") or entry.get("state") or "?")
            iface = str(entry.get("ifaceName", "?")).split(":")[0]
            rows.append({"neighbor": rid, "interface": iface, "state": state.split("/")[0]})
    return rows


def ospf6_neighbors(doc: Any) -> list[dict[str, str]]:
    """`show ipv6 ospf6 neighbor json` (neighbors -> [ {neighborId, state, interfaceName} ])."""
    neighbors = doc.get("neighbors", []) if isinstance(doc, dict) else []
    return [
        {
            "neighbor": str(n.get("neighborId", "?")),
            "interface": str(n.get("interfaceName", "?")),
            "state": str(n.get("state", "?")),
        }
        for n in neighbors
        if isinstance(n, dict)
    ]


def bgp_neighbors(doc: Any) -> list[dict[str, str]]:
    """`show bgp neighbors json` (address -> {remoteAs, bgpState, ...}) as flat rows."""
    rows: list[dict[str, str]] = []
    if not isinstance(doc, dict):
        return rows
    for addr, info in sorted(doc.items()):
        if isinstance(info, dict) and "bgpState" in info:
            rows.append(
                {
                    "neighbor": addr,
                    "remote_as": str(info.get("remoteAs", "?")),
                    "state": str(info["bgpState"]),
                }
            )
    return rows
