"""AS business relationships: the CAIDA as-rel formats, parsed into lookup tables.

Serial-1 lines are `provider|customer|-1` or `peer|peer|0`; serial-2 adds a fourth column (the inference
source), which is ignored; `#` lines are comments. The engine uses relationships to classify eBGP neighbours
when the configuration does not, and the benchmark uses them to build a realistic transit AS and to derive
ASPAs (an ASPA lists exactly the customer's providers). Pure: the caller opens the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from appliance.errors import InputError
from appliance.model import Aspa, Relationship

__all__ = ["AsRelError", "AsRelationships", "aspas_from", "parse_as_rel"]


class AsRelError(InputError, ValueError):
    """A malformed as-rel line; the message names the source and the line number."""


@dataclass(frozen=True, slots=True)
class AsRelationships:
    customers: Mapping[int, frozenset[int]]
    providers: Mapping[int, frozenset[int]]
    peers: Mapping[int, frozenset[int]]

    def relationship(self, local: int, neighbor: int) -> Relationship | None:
        """What `neighbor` is to `local`, or None when the data set has no link between them."""
        if neighbor in self.customers.get(local, ()):
            return Relationship.CUSTOMER
        if neighbor in self.providers.get(local, ()):
            return Relationship.PROVIDER
        if neighbor in self.peers.get(local, ()):
            return Relationship.PEER
        return None

    def customer_cone(self, asn: int) -> frozenset[int]:
        """`asn` and every AS reachable by provider-to-customer links from it."""
        cone = {asn}
        stack = [asn]
        while stack:
            for c in self.customers.get(stack.pop(), ()):
                if c not in cone:
                    cone.add(c)
                    stack.append(c)
        return frozenset(cone)


def parse_as_rel(lines: Iterable[str], source: str = "as-rel") -> AsRelationships:
    customers: dict[int, set[int]] = {}
    providers: dict[int, set[int]] = {}
    peers: dict[int, set[int]] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("|")
        try:
            a, b, kind = int(parts[0]), int(parts[1]), int(parts[2])
        except (IndexError, ValueError) as exc:
            raise AsRelError(f"{source}:{number}: expected 'as1|as2|-1 or 0', got {line!r}") from exc
        if kind == -1:
            customers.setdefault(a, set()).add(b)
            providers.setdefault(b, set()).add(a)
        elif kind == 0:
            peers.setdefault(a, set()).add(b)
            peers.setdefault(b, set()).add(a)
        else:
            raise AsRelError(f"{source}:{number}: relationship must be -1 or 0, got {kind}")

    def freeze(d: dict[int, set[int]]) -> dict[int, frozenset[int]]:
        return {k: frozenset(v) for k, v in d.items()}

    return AsRelationships(freeze(customers), freeze(providers), freeze(peers))


def aspas_from(rels: AsRelationships, customers: Iterable[int]) -> list[Aspa]:
    """ASPAs for `customers` as their holders would sign them: all providers, or AS0 for a top AS."""
    out = []
    for c in sorted(set(customers)):
        provs = tuple(sorted(rels.providers.get(c, ())))
        out.append(Aspa(c, provs or (0,)))
    return out
