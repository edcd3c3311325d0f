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

import bisect
import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from appliance.model import Event, PrefixReport, Router, Severity, prefix_sort_key
from appliance.sources.reports.records import RouterReport, Source
from appliance.state.snapshot import changed_window

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


def _walk_key(r: PrefixReport) -> tuple[object, ...]:
    """A total order over every field: which of two equal-precedence reports wins never depends on the
    order they arrived in (and a group resolved alone walks its reports exactly as the whole set does)."""
    return (r.router, r.interface, prefix_sort_key(r.prefix), r.prefix, r.source, r.subnet,
            r.flags.anycast, r.flags.special, r.flags.multihomed)


def _pick(prefixes: Iterable[PrefixReport], now: float) -> tuple[list[PrefixReport], list[Event]]:
    """The winning report per (router, interface, prefix), in that order, and the overridden events."""
    events: list[Event] = []
    best: dict[tuple[str, str, str], PrefixReport] = {}
    for r in sorted(prefixes, key=_walk_key):
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
    return list(best.values()), events  # inserted in the sorted walk: in (router, interface, prefix) order


def resolve(
    prefixes: Iterable[PrefixReport], routers: Iterable[RouterReport] = (), *, now: float = 0.0
) -> Resolved:
    winners, events = _pick(prefixes, now)
    events.extend(_conflicts(tuple(winners), now))
    return Resolved(tuple(winners), _merge_routers(routers), tuple(events))


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


Net = ipaddress.IPv4Network | ipaddress.IPv6Network
NetKey = tuple[int, int, int]  # (version, network address, length): the conflict walk's order


def _net_key(net: Net) -> NetKey:
    return (net.version, int(net.network_address), net.prefixlen)


def _is_tagged(r: PrefixReport) -> bool:
    """Takes part in the conflict check: bound to a subnet and not anycast."""
    return bool(r.subnet) and not r.flags.anycast


def _conflicts(reports: tuple[PrefixReport, ...], now: float) -> list[Event]:
    """Pairs of different subnets claiming the same or nested prefixes (anycast exempt), deterministic."""
    out: list[Event] = []
    seen: set[tuple[str, str, str, str]] = set()
    tagged = [r for r in reports if _is_tagged(r)]
    nets = [(ipaddress.ip_network(r.prefix), r) for r in tagged]
    nets.sort(key=lambda nr: (nr[0].version, int(nr[0].network_address), nr[0].prefixlen, nr[1].subnet))
    for i, (na, a) in enumerate(nets):
        for nb, b in nets[i + 1 :]:
            if nb.version != na.version or int(nb.network_address) > int(na.broadcast_address):
                break
            if a.subnet == b.subnet or not nb.subnet_of(na):  # type: ignore[arg-type]
                continue
            key = (a.prefix, a.subnet, b.prefix, b.subnet)
            if key in seen:
                continue
            seen.add(key)
            out.append(_conflict(a, b, na == nb, now))
    return out


def _conflict(a: PrefixReport, b: PrefixReport, same: bool, now: float) -> Event:
    """The alarm for subnet b's prefix equal to (`same`) or inside subnet a's."""
    kind = "report-conflict" if same else "report-overlap"
    what = (
        f"prefix {a.prefix} bound to subnet {a.subnet} ({_where(a)}, {a.source}) and subnet "
        f"{b.subnet} ({_where(b)}, {b.source})"
        if same
        else f"prefix {b.prefix} of subnet {b.subnet} ({_where(b)}, {b.source}) lies inside "
        f"{a.prefix} of subnet {a.subnet} ({_where(a)}, {a.source})"
    )
    return Event(
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


@dataclass(slots=True)
class _Group:
    """The resolved reports of one (router, interface), kept per prefix: precedence compares only reports
    of one prefix, so a change re-picks its prefix alone, and the group's winners and overrides are the
    prefixes' in walk order (`order`: (prefix_sort_key, prefix), sorted)."""

    members: dict[str, Counter[PrefixReport]] = field(default_factory=dict)
    picked: dict[str, tuple[PrefixReport, tuple[Event, ...]]] = field(default_factory=dict)
    order: list[tuple[tuple[int, int, int], str]] = field(default_factory=list)
    noisy: set[str] = field(default_factory=set)  # prefixes whose pick raised override events
    winners: tuple[PrefixReport, ...] = ()
    events: tuple[Event, ...] = ()


class ReportResolver:
    """`resolve` kept between calls, so one report change costs its group and its prefix, not every report.

    Why it can be split: precedence compares only reports of one (router, interface, prefix), so each
    (router, interface) group resolves alone, and the full result is the groups' concatenation in key order.
    A conflict alarm names a pair of nested networks, so the alarms are kept per outer network ("block") and
    only the blocks of the networks covering a changed winner are redone. Each call diffs the new report
    tuple against the last one (the store keeps unchanged facts as the same objects, in the same order, so
    the common head and tail are skipped by identity). The result equals `resolve(prefixes, routers,
    now=now)` (tests/unit/sources/test_report_resolver.py drives random changes to check it). After an
    exception (a malformed prefix) it forgets everything and the next call starts from scratch.
    """

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._reset()

    def _reset(self) -> None:
        """Forget every report (the next call resolves from scratch)."""
        self._last: tuple[PrefixReport, ...] = ()
        self._groups: dict[tuple[str, str], _Group] = {}
        self._order: list[tuple[str, str]] = []  # the keys of _groups, sorted
        self._tagged: dict[NetKey, list[tuple[Net, PrefixReport]]] = {}  # winners in the conflict check
        self._nets: list[NetKey] = []  # the keys of _tagged, sorted: the conflict walk's order
        self._blocks: dict[NetKey, tuple[Event, ...]] = {}  # alarms per outer network, non-empty only

    def __call__(self, prefixes: Sequence[PrefixReport], routers: Iterable[RouterReport] = ()) -> Resolved:
        try:
            return self._resolve(tuple(prefixes), routers)
        except BaseException:
            self._reset()  # a half-applied change must not survive into the next call
            raise

    def _resolve(self, prefixes: tuple[PrefixReport, ...], routers: Iterable[RouterReport]) -> Resolved:
        gone, added = _window_delta(self._last, prefixes)
        self._last = prefixes
        touched: dict[tuple[str, str], set[str]] = {}
        for r, n in gone.items():
            key = (r.router, r.interface)
            members = self._groups[key].members[r.prefix]
            members.subtract({r: n})
            if members[r] <= 0:
                del members[r]
            touched.setdefault(key, set()).add(r.prefix)
        for r, n in added.items():
            key = (r.router, r.interface)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group()
                bisect.insort(self._order, key)
            group.members.setdefault(r.prefix, Counter())[r] += n
            touched.setdefault(key, set()).add(r.prefix)
        moved: set[NetKey] = set()
        for key in sorted(touched):
            moved |= self._regroup(key, touched[key])
        self._redo_blocks(moved)
        winners = tuple(r for k in self._order for r in self._groups[k].winners)
        events = [e for k in self._order for e in self._groups[k].events]
        events += [e for k in sorted(self._blocks) for e in self._blocks[k]]
        return Resolved(winners, _merge_routers(routers), tuple(events))

    def _regroup(self, key: tuple[str, str], prefixes: set[str]) -> set[NetKey]:
        """Re-pick the changed `prefixes` of one group; return the networks whose conflict-checked
        winners changed."""
        group = self._groups[key]
        before: set[PrefixReport] = set()
        after: set[PrefixReport] = set()
        for prefix in prefixes:
            old = group.picked.pop(prefix, None)
            if old is not None:
                before.add(old[0])
            members = group.members.get(prefix)
            if members:
                winners, events = _pick(members, self.now)
                group.picked[prefix] = (winners[0], tuple(events))
                after.add(winners[0])
                if events:
                    group.noisy.add(prefix)
                else:
                    group.noisy.discard(prefix)
                if old is None:
                    bisect.insort(group.order, (prefix_sort_key(prefix), prefix))
            else:
                group.members.pop(prefix, None)
                group.noisy.discard(prefix)
                if old is not None:
                    del group.order[bisect.bisect_left(group.order, (prefix_sort_key(prefix), prefix))]
        if group.picked:
            picked = group.picked
            group.winners = tuple(picked[p][0] for _, p in group.order)
            noisy = sorted((prefix_sort_key(p), p) for p in group.noisy)  # few: not the whole order
            group.events = tuple(e for _, p in noisy for e in picked[p][1])
        else:
            del self._groups[key]
            del self._order[bisect.bisect_left(self._order, key)]
        moved = {self._untag(r) for r in before - after if _is_tagged(r)}
        return moved | {self._tag(r) for r in after - before if _is_tagged(r)}

    def _tag(self, r: PrefixReport) -> NetKey:
        net = ipaddress.ip_network(r.prefix)
        key = _net_key(net)
        entries = self._tagged.get(key)
        if entries is None:
            entries = self._tagged[key] = []
            bisect.insort(self._nets, key)
        entries.append((net, r))
        entries.sort(key=lambda nr: (nr[1].subnet, *_walk_key(nr[1])[:4]))  # the full walk's tie order
        return key

    def _untag(self, r: PrefixReport) -> NetKey:
        key = _net_key(ipaddress.ip_network(r.prefix))
        entries = [nr for nr in self._tagged[key] if nr[1] != r]
        if entries:
            self._tagged[key] = entries
        else:
            del self._tagged[key]
            del self._nets[bisect.bisect_left(self._nets, key)]
        return key

    def _redo_blocks(self, moved: set[NetKey]) -> None:
        """Redo the alarms of every network equal to or covering a moved one (the only ones it can be in)."""
        outer: set[NetKey] = set()
        for version, address, length in moved:
            bits = 32 if version == 4 else 128
            for n in range(length + 1):
                outer.add((version, address >> (bits - n) << (bits - n) if n else 0, n))
        for key in outer:
            if key in self._tagged:
                block = self._block(key)
                if block:
                    self._blocks[key] = block
                    continue
            self._blocks.pop(key, None)

    def _block(self, key: NetKey) -> tuple[Event, ...]:
        """The alarms whose outer prefix is network `key`, as `_conflicts` walks them."""
        na = self._tagged[key][0][0]
        last = int(na.broadcast_address)
        run: list[tuple[Net, PrefixReport]] = []
        for k in self._nets[bisect.bisect_left(self._nets, key):]:
            if k[0] != key[0] or k[1] > last:
                break
            run += self._tagged[k]
        out: list[Event] = []
        seen: set[tuple[str, str, str, str]] = set()
        for i, (_, a) in enumerate(run[: len(self._tagged[key])]):
            for nb, b in run[i + 1 :]:
                if a.subnet == b.subnet or not nb.subnet_of(na):  # type: ignore[arg-type]
                    continue
                pair = (a.prefix, a.subnet, b.prefix, b.subnet)
                if pair not in seen:
                    seen.add(pair)
                    out.append(_conflict(a, b, na == nb, self.now))
        return tuple(out)


def _window_delta(
    old: tuple[PrefixReport, ...], new: tuple[PrefixReport, ...]
) -> tuple[Counter[PrefixReport], Counter[PrefixReport]]:
    """(gone, added) as multisets of the changed window (the identical head and tail skipped)."""
    window_old, window_new = changed_window(old, new)
    was, now = Counter(window_old), Counter(window_new)
    return was - now, now - was
