"""Merge the three report sources, apply precedence, and detect conflicts (pure; `now` is an input).

Precedence, for the same (router, interface, prefix): api > file > bgp-ls. An operator's explicit
command beats the declarative file, which beats what is inferred from IGP tags. The losing report is
dropped and an info event says which one was overridden. Router roles/capabilities merge per field
with the same precedence; a router nobody reports on keeps the model defaults.

Conflicts (the controller draft §3, "prefixes reused": checked on the winning reports, across routers):
- `report-conflict`: the same prefix bound to two subnet IDs;
- `report-overlap`: a prefix of one subnet inside a prefix of another subnet.
Anycast prefixes are meant to be claimed by several subnets and never conflict. A conflict raises an
alarm naming both subnets and where they were reported; both reports are kept (the engine widens
allowlists with both, never narrowing on a guess: fail open).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from appliance.model import Event, PrefixReport, Router, Severity, prefix_sort_key
from appliance.sources.reports.records import RouterReport, Source

EVENT_SOURCE = "reports"


@dataclass(frozen=True, slots=True)
class Resolved:
    prefixes: tuple[PrefixReport, ...]
    routers: Mapping[str, RouterReport]
    events: tuple[Event, ...]

    def conflicts(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.alarm)


def _precedence(source: str) -> int:
    try:
        return Source(source).precedence
    except ValueError:
        return 0


def _where(r: PrefixReport) -> str:
    return f"{r.router}:{r.interface}" if r.interface else r.router


def resolve(
    prefixes: Iterable[PrefixReport], routers: Iterable[RouterReport] = (), *, now: float = 0.0
) -> Resolved:
    events: list[Event] = []
    best: dict[tuple[str, str, str], PrefixReport] = {}
    for r in sorted(
        prefixes, key=lambda r: (r.router, r.interface, prefix_sort_key(r.prefix), r.source, r.subnet)
    ):
        key = (r.router, r.interface, r.prefix)
        cur = best.get(key)
        if cur is None or _precedence(r.source) > _precedence(cur.source):
            if cur is not None and (cur.subnet, cur.flags) != (r.subnet, r.flags):
                events.append(_overridden(now, cur, r))
            best[key] = r
        elif (cur.subnet, cur.flags) != (r.subnet, r.flags) and _precedence(r.source) < _precedence(
            cur.source
        ):
            events.append(_overridden(now, r, cur))
    winners = tuple(best.values())  # inserted in the sorted walk: in (router, interface, prefix) order
    events.extend(_conflicts(winners, now))
    return Resolved(winners, _merge_routers(routers), tuple(events))


def _overridden(now: float, loser: PrefixReport, winner: PrefixReport) -> Event:
    return Event(
        now,
        EVENT_SOURCE,
        "report-overridden",
        Severity.INFO,
        f"{loser.prefix} at {_where(loser)}: {loser.source} report (subnet {loser.subnet or '-'}) "
        f"overridden by {winner.source} (subnet {winner.subnet or '-'})",
        {
            "prefix": loser.prefix,
            "router": loser.router,
            "interface": loser.interface,
            "loser": loser.source,
            "winner": winner.source,
        },
    )


def _conflicts(reports: tuple[PrefixReport, ...], now: float) -> list[Event]:
    """Pairs of different subnets claiming the same or nested prefixes (anycast exempt), deterministic."""
    out: list[Event] = []
    seen: set[tuple[str, str, str, str]] = set()
    tagged = [r for r in reports if r.subnet and not r.flags.anycast]
    nets = [(ipaddress.ip_network(r.prefix), r) for r in tagged]
    nets.sort(key=lambda nr: (nr[0].version, int(nr[0].network_address), nr[0].prefixlen, nr[1].subnet))
    for i, (na, a) in enumerate(nets):
        for nb, b in nets[i + 1 :]:
            if nb.version != na.version or int(nb.network_address) > int(na.broadcast_address):
                break
            if a.subnet == b.subnet or not nb.subnet_of(na):  # type: ignore[arg-type]
                continue
            kind = "report-conflict" if na == nb else "report-overlap"
            key = (a.prefix, a.subnet, b.prefix, b.subnet)
            if key in seen:
                continue
            seen.add(key)
            what = (
                f"prefix {a.prefix} bound to subnet {a.subnet} ({_where(a)}, {a.source}) and subnet "
                f"{b.subnet} ({_where(b)}, {b.source})"
                if na == nb
                else f"prefix {b.prefix} of subnet {b.subnet} ({_where(b)}, {b.source}) lies inside "
                f"{a.prefix} of subnet {a.subnet} ({_where(a)}, {a.source})"
            )
            out.append(
                Event(
                    now,
                    EVENT_SOURCE,
                    kind,
                    Severity.WARNING,
                    what,
                    {
                        "prefix": a.prefix,
                        "subnet_a": a.subnet,
                        "where_a": _where(a),
                        "other_prefix": b.prefix,
                        "subnet_b": b.subnet,
                        "where_b": _where(b),
                    },
                    alarm=True,
                )
            )
    return out


def _merge_routers(reports: Iterable[RouterReport]) -> dict[str, RouterReport]:
    out: dict[str, RouterReport] = {}
    for r in sorted(reports, key=lambda r: (r.router, _precedence(r.source))):
        cur = out.get(r.router, RouterReport(r.router, None, None, r.source))
        out[r.router] = RouterReport(
            r.router,
            r.role if r.role is not None else cur.role,
            r.capability if r.capability is not None else cur.capability,
            r.source,
        )
    return out


def apply_roles(routers: Iterable[Router], reports: Mapping[str, RouterReport]) -> tuple[Router, ...]:
    """The topology's routers with reported role/capability (model defaults where nobody says)."""
    out = []
    for r in routers:
        rep = reports.get(r.name)
        role = rep.role if rep and rep.role is not None else r.role
        cap = rep.capability if rep and rep.capability is not None else r.capability
        out.append(Router(r.name, r.router_id, r.asn, role, cap))
    return tuple(out)
