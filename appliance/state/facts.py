"""The input facts the store keeps, by kind, and their JSON codec.

A fact is one model record that came from outside: topology (Router, Interface, Link, IgpPrefix), a
source-prefix report, a router role report, an eBGP neighbour, a BGP path, an RPKI VRP or ASPA, an
inspection function instance or a suspect source (steering, engine/steering.py), an allowance a
collaborating AS gave (engine/collab.py). The codec
uses pydantic's TypeAdapter (already a dependency through FastAPI) rather than a hand-written one: it
validates types on the way back in, so a damaged journal row is reported, not half-loaded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from appliance.model import (
    Aspa,
    BgpPath,
    CollabAllowance,
    IgpPrefix,
    Inspector,
    Interface,
    Link,
    Neighbor,
    PrefixReport,
    Router,
    RouterRole,
    Suspect,
    Vrp,
)

Fact = (Router | Interface | Link | IgpPrefix | PrefixReport | RouterRole | Neighbor | BgpPath | Vrp | Aspa
        | Inspector | Suspect | CollabAllowance)

FACT_KINDS: dict[str, type[Any]] = {
    "router": Router,
    "interface": Interface,
    "link": Link,
    "igp-prefix": IgpPrefix,
    "report": PrefixReport,
    "role": RouterRole,
    "neighbor": Neighbor,
    "path": BgpPath,
    "vrp": Vrp,
    "aspa": Aspa,
    "inspector": Inspector,
    "suspect": Suspect,
    "collab-allowance": CollabAllowance,
}
_KIND_OF_TYPE = {t: k for k, t in FACT_KINDS.items()}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {k: TypeAdapter(t) for k, t in FACT_KINDS.items()}
_LIST_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    k: TypeAdapter(list[t]) for k, t in FACT_KINDS.items()  # type: ignore[valid-type]
}


def kind_of(fact: Fact) -> str:
    try:
        return _KIND_OF_TYPE[type(fact)]
    except KeyError:
        raise TypeError(f"not a state fact: {type(fact).__name__}") from None


def encode_fact(fact: Fact) -> dict[str, Any]:
    kind = kind_of(fact)
    data: dict[str, Any] = _ADAPTERS[kind].dump_python(fact, mode="json")
    return data


def decode_fact(kind: str, data: Any) -> Fact:
    """Raise ValueError naming the kind and the bad field."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        raise ValueError(f"unknown fact kind {kind!r}")
    try:
        fact: Fact = adapter.validate_python(data, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"bad {kind}: {loc}: {first['msg']}") from exc
    return fact


def group_by_kind(facts: Iterable[Fact]) -> dict[str, list[Fact]]:
    out: dict[str, list[Fact]] = {}
    for fact in facts:
        out.setdefault(kind_of(fact), []).append(fact)
    return out


def encode_facts(kind: str, facts: list[Fact]) -> list[Any]:
    """Many facts of one kind at once (one pydantic call: much faster than one per fact)."""
    data: list[Any] = _LIST_ADAPTERS[kind].dump_python(facts, mode="json")
    return data


def decode_facts(kind: str, data: Any) -> list[Fact]:
    """Raise ValueError naming the kind, the item index and the bad field."""
    adapter = _LIST_ADAPTERS.get(kind)
    if adapter is None:
        raise ValueError(f"unknown fact kind {kind!r}")
    try:
        facts: list[Fact] = adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"bad {kind}: [{loc}]: {first['msg']}") from exc
    return facts
