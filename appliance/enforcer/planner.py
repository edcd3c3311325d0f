"""Plans the enforcer's table from routes, and keeps that plan current as routes change (pure).

The plan is a function of (routes, group mapping, options, held routes) alone, whichever way it was
reached: `Planner.load` builds it from scratch, `Planner.update` folds a delta into the previous one
touching only what the delta reaches, and tests/unit/enforcer/test_planner_property.py checks the two
agree after random add/remove sequences.

Structure (see nftplan.py for the table it renders to):
- each chain keeps its routes in RFC 8955 order (`order`) cut into segments: a *run* is a maximal
  chain of `planmodel.linked` routes (same shape, disjoint sources), every other route stands alone.
  Links are pairwise, so adding or removing a route changes at most the segments of its two
  neighbours (a split or merge), never a scan of the chain;
- a run of at least `set_min` routes becomes interval sets. Its routes are placed by a hash trie on
  the route id: a shard is the shallowest trie node holding at most `shard_size` of the run's routes.
  Adding a route changes the one shard its hash falls in (or splits it in two when it overflows), so
  the count of routes never moves routes between unrelated shards (the old `hash mod ceil(n/size)`
  rehashed every set when n crossed a multiple of the shard size);
- a set is named by its chain, shape, the run's ordinal among runs of that shape in the chain, and its
  trie node, so it keeps its name while its elements change: nft.py adds and deletes elements in
  place and the kernel keeps the counters of the others.

Must not: render `nft` text beyond the rules themselves, run nft, read clocks or the environment.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.enforcer.planmodel import (
    MeterSpec,
    Plan,
    PlanOptions,
    RouteStatus,
    SetSpec,
    counter_key,
    effective,
    linked,
    other_match,
    settable,
    shape,
    verdict,
)
from appliance.enforcer.route import ActionKind, Route, precedence_key

__all__ = ["Planner", "build_plan", "chain_name"]

SortKey = tuple[Any, ...]
Hashed = tuple[int, SortKey]
ANY_CHAIN = "c_any"
HASH_BITS = 32


def chain_name(index: int) -> str:
    return f"c_i{index}"


@dataclass(slots=True)
class _Entry:
    """One route as this node renders it."""

    route: Route
    eff: Route | None          # None: not in the kernel (skipped, held, unmapped, output-only)
    other: str
    status: RouteStatus
    skey: SortKey              # RFC 8955 order; its last item is the route key
    names: tuple[str, ...]     # interfaces of a scoped route; () when unscoped
    bucket: int                # trie hash


@dataclass(slots=True)
class _Segment:
    start: SortKey
    end: SortKey
    count: int
    run: bool                                  # settable routes linked to each other
    hashes: list[Hashed] = field(default_factory=list)   # (bucket, skey), sorted
    touched: set[int] = field(default_factory=set)       # buckets changed since the last render
    added: set[SortKey] = field(default_factory=set)     # members since the last render
    removed: set[SortKey] = field(default_factory=set)
    shard_keys: dict[tuple[int, int], list[SortKey]] = field(default_factory=dict)   # members in order
    rebuild: bool = True                       # drop every rendered shard (new, split, merged)
    label: str = ""                            # set-name stem; "" when rendered inline
    shards: dict[tuple[int, int], SetSpec] = field(default_factory=dict)
    rules: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()
    alive: bool = True
    dirty: bool = False


@dataclass(slots=True)
class _Chain:
    name: str
    iface: str
    order: list[SortKey] = field(default_factory=list)
    starts: list[SortKey] = field(default_factory=list)
    segs: dict[SortKey, _Segment] = field(default_factory=dict)
    dirty: list[_Segment] = field(default_factory=list)
    structural: bool = True
    changed: bool = True                       # the rule list must be reassembled
    rules: tuple[str, ...] = ()


def _bucket(route: Route) -> int:
    rid = route.rid or hashlib.sha1(route.key.encode()).hexdigest()
    return int(rid[:8], 16)


def _partition(hashes: Sequence[Hashed], size: int) -> list[tuple[int, int, int, int]]:
    """Shards of a run as (depth, bits, lo, hi) slices of `hashes`: the shallowest trie nodes with at
    most `size` members (a node at full depth keeps whatever shares all its bits)."""
    out: list[tuple[int, int, int, int]] = []

    def walk(depth: int, bits: int, lo: int, hi: int) -> None:
        if hi - lo <= size or depth == HASH_BITS:
            if hi > lo:
                out.append((depth, bits, lo, hi))
            return
        right = ((bits << 1) | 1) << (HASH_BITS - 1 - depth)
        mid = bisect.bisect_left(hashes, (right,), lo, hi)
        walk(depth + 1, bits << 1, lo, mid)
        walk(depth + 1, (bits << 1) | 1, mid, hi)

    walk(0, 0, 0, len(hashes))
    return out


def _chain_order(chain: _Chain) -> tuple[bool, int]:
    """Interface chains by index, then the chain for every other interface."""
    if chain.name == ANY_CHAIN:
        return (True, 0)
    return (False, int(chain.name.removeprefix("c_i")))


def _in_node(bucket: int, depth: int, bits: int) -> bool:
    return depth == 0 or bucket >> (HASH_BITS - depth) == bits


class Planner:
    """The plan for one group mapping and options; `load` then any number of `update`s."""

    def __init__(self, groups: Mapping[int, Sequence[str]], options: PlanOptions | None = None,
                 marks: Mapping[str, int] | None = None) -> None:
        self.options = options or PlanOptions()
        self.marks = dict(marks or {})   # redirect-to-IP target -> packet mark (steering.py)
        self.groups = {g: tuple(names) for g, names in groups.items()}
        mapped = sorted({n for names in self.groups.values() for n in names})
        self._chain_of_iface = {ifname: chain_name(i) for i, ifname in enumerate(mapped)}
        self._reset()

    def _reset(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.hold: dict[str, str] = {}
        self.chains: dict[str, _Chain] = {}
        self.iface_users: dict[str, int] = {}
        self.sets: dict[str, SetSpec] = {}
        self.counter_owner: dict[str, tuple[str, bool]] = {}
        self.meters: dict[str, MeterSpec] = {}     # by the name of the catch-all counter it goes with
        self.statuses: dict[str, RouteStatus] = {}

    # --- entry points -----------------------------------------------------------------------------------

    def load(self, routes: Iterable[Route], hold: Mapping[str, str] | None = None) -> Plan:
        """Plan `routes` from scratch (the reference the incremental path must equal)."""
        self._reset()
        self.hold = dict(hold or {})
        for route in {r.key: r for r in routes}.values():   # the same NLRI twice: the last one
            entry = self._analyse(route)
            self.entries[route.key] = entry
            self.statuses[route.key] = entry.status
            for ifname in entry.names if entry.eff is not None else ():
                self.iface_users[ifname] = self.iface_users.get(ifname, 0) + 1
        rendered = sorted((e for e in self.entries.values() if e.eff is not None), key=lambda e: e.skey)
        unscoped = [e.skey for e in rendered if not e.names]
        if unscoped:
            self._bulk(self._new_chain(ANY_CHAIN, "*"), unscoped)
        for ifname in sorted(self.iface_users):
            keys = [e.skey for e in rendered if not e.names or ifname in e.names]
            self._bulk(self._new_chain(self._chain_of_iface[ifname], ifname), keys)
        return self.plan()

    def update(self, changed: Mapping[str, Route | None], hold: Mapping[str, str] | None = None) -> Plan:
        """Fold in `changed` (route key -> new route, None = withdrawn) and the new held set."""
        hold = dict(hold or {})
        keys = set(changed) | {k for k in self.hold.keys() | hold.keys() if self.hold.get(k) != hold.get(k)}
        self.hold = hold
        new: list[Route] = []
        for key in sorted(keys):
            old = self.entries.get(key)
            route = changed[key] if key in changed else (old.route if old else None)
            if old is not None:
                self._withdraw(old)
                del self.entries[key]
                del self.statuses[key]
            if route is not None:
                new.append(route)
        for route in new:
            self._announce(route)
        for ifname in [i for i, n in self.iface_users.items() if n == 0]:
            del self.iface_users[ifname]
            self._drop_chain(self._chain_of_iface[ifname])
        any_chain = self.chains.get(ANY_CHAIN)
        if any_chain is not None and not any_chain.order:
            self._drop_chain(ANY_CHAIN)
        return self.plan()

    def plan(self) -> Plan:
        for chain in self.chains.values():
            self._render_chain(chain)
        ordered = sorted(self.chains.values(), key=_chain_order)
        dispatch = tuple((c.iface, c.name) for c in ordered if c.name != ANY_CHAIN)
        opts = self.options
        return Plan(opts.table, opts.priority, tuple(sorted(self.sets.values(), key=lambda s: s.name)),
                    tuple(sorted(opts.exempt)), opts.allow_nd, tuple((c.name, c.rules) for c in ordered),
                    dispatch, ANY_CHAIN in self.chains, tuple(sorted(self.counter_owner)),
                    dict(self.counter_owner), tuple(self.statuses.values()),
                    tuple(sorted(self.meters.values(), key=lambda m: m.name)))

    # --- routes -----------------------------------------------------------------------------------------

    def _analyse(self, route: Route) -> _Entry:
        eff, state, reason = effective(route, self.marks)
        if route.key in self.hold:
            eff, state, reason = None, "held", self.hold[route.key]
        other = other_match(eff) if eff else None
        if eff is not None and other is None:
            eff, state, reason = None, "skipped", "components can never match together"
        names = tuple(sorted({n for g in route.groups for n in self.groups.get(g, ())}))
        if eff is not None and route.groups and not names:
            eff, state = None, "unmapped"
            reason = f"interface group(s) {', '.join(map(str, route.groups))} not mapped on this node"
        source = route.source.prefix if route.source else "*"
        status = RouteStatus(route.rid, route.nlri, source, state, route.action.describe(), reason,
                             names if route.groups else ("*",), route.groups)
        return _Entry(route, eff, other or "", status, (route.family, *precedence_key(route)),
                      names if route.groups else (), _bucket(route))

    def _chains_of(self, entry: _Entry) -> list[_Chain]:
        if entry.names:
            return [self.chains[self._chain_of_iface[n]] for n in entry.names]
        return list(self.chains.values())

    def _withdraw(self, entry: _Entry) -> None:
        if entry.eff is None:
            return
        for chain in self._chains_of(entry):
            self._remove(chain, entry.skey)
        for ifname in entry.names:
            self.iface_users[ifname] -= 1

    def _announce(self, route: Route) -> None:
        entry = self._analyse(route)
        self.entries[route.key] = entry
        self.statuses[route.key] = entry.status
        if entry.eff is None:
            return
        if not entry.names and ANY_CHAIN not in self.chains:
            self._new_chain(ANY_CHAIN, "*")
        for ifname in entry.names:
            self.iface_users[ifname] = self.iface_users.get(ifname, 0) + 1
            name = self._chain_of_iface[ifname]
            if name not in self.chains:
                unscoped = self.chains.get(ANY_CHAIN)
                self._bulk(self._new_chain(name, ifname), list(unscoped.order) if unscoped else [])
        for chain in self._chains_of(entry):
            self._insert(chain, entry.skey)

    # --- segments ---------------------------------------------------------------------------------------

    def _entry(self, skey: SortKey) -> _Entry:
        return self.entries[skey[-1]]

    def _logs(self, route: Route) -> bool:
        """A sampled route with a log group: it needs its own log rule, so it never joins a set."""
        return route.action.sample and self.options.sample_group is not None

    def _settable(self, route: Route) -> bool:
        return settable(route) and not self._logs(route)

    def _link(self, a: SortKey, b: SortKey) -> bool:
        ea, eb = self._entry(a), self._entry(b)
        assert ea.eff is not None and eb.eff is not None
        return (linked(ea.eff, ea.other, eb.eff, eb.other)
                and not self._logs(ea.eff) and not self._logs(eb.eff))

    def _new_chain(self, name: str, iface: str) -> _Chain:
        chain = _Chain(name, iface)
        self.chains[name] = chain
        return chain

    def _drop_chain(self, name: str) -> None:
        chain = self.chains.pop(name)
        for seg in chain.segs.values():
            self._drop_outputs(seg)

    def _bulk(self, chain: _Chain, skeys: list[SortKey]) -> None:
        """Cut an ordered key list into segments in one pass (load, and a new interface chain)."""
        chain.order = list(skeys)
        prev: SortKey | None = None
        seg: _Segment | None = None
        for skey in chain.order:
            if seg is not None and prev is not None and self._link(prev, skey):
                seg.end, seg.count = skey, seg.count + 1
                seg.hashes.append((self._entry(skey).bucket, skey))
            else:
                seg = self._segment(chain, skey, insert=False)
                chain.starts.append(skey)
            prev = skey
        for s in chain.segs.values():
            s.hashes.sort()

    def _segment(self, chain: _Chain, skey: SortKey, *, insert: bool = True) -> _Segment:
        entry = self._entry(skey)
        assert entry.eff is not None
        seg = _Segment(skey, skey, 1, self._settable(entry.eff), [(entry.bucket, skey)])
        chain.segs[skey] = seg
        if insert:
            bisect.insort(chain.starts, skey)
        self._mark(chain, seg, structural=True)
        return seg

    def _mark(self, chain: _Chain, seg: _Segment, *, structural: bool = False) -> None:
        if not seg.dirty:
            seg.dirty = True
            chain.dirty.append(seg)
        chain.structural |= structural
        chain.changed = True

    def _seg_of(self, chain: _Chain, skey: SortKey) -> _Segment:
        return chain.segs[chain.starts[bisect.bisect_right(chain.starts, skey) - 1]]

    def _rekey(self, chain: _Chain, seg: _Segment, start: SortKey) -> None:
        del chain.segs[seg.start]
        del chain.starts[bisect.bisect_left(chain.starts, seg.start)]
        seg.start = start
        chain.segs[start] = seg
        bisect.insort(chain.starts, start)

    def _grow(self, chain: _Chain, seg: _Segment, skey: SortKey) -> None:
        bucket = self._entry(skey).bucket
        bisect.insort(seg.hashes, (bucket, skey))
        seg.touched.add(bucket)
        seg.added.add(skey)
        seg.count += 1
        self._mark(chain, seg, structural=seg.count == self.options.set_min)

    def _shrink(self, chain: _Chain, seg: _Segment, skey: SortKey) -> None:
        bucket = self._entry(skey).bucket
        del seg.hashes[bisect.bisect_left(seg.hashes, (bucket, skey))]
        seg.touched.add(bucket)
        seg.added.discard(skey)
        seg.removed.add(skey)
        seg.count -= 1
        self._mark(chain, seg, structural=seg.count == self.options.set_min - 1)

    def _kill(self, chain: _Chain, seg: _Segment) -> None:
        del chain.segs[seg.start]
        del chain.starts[bisect.bisect_left(chain.starts, seg.start)]
        seg.alive = False
        chain.structural = chain.changed = True
        self._drop_outputs(seg)

    def _merge(self, chain: _Chain, left: _Segment, right: _Segment) -> None:
        """`right` directly follows `left` and their boundary routes now link."""
        self._kill(chain, right)
        left.end, left.count = right.end, left.count + right.count
        left.hashes = sorted(left.hashes + right.hashes)
        left.rebuild = True
        self._mark(chain, left, structural=True)

    def _split(self, chain: _Chain, seg: _Segment, a: SortKey, b: SortKey) -> tuple[_Segment, _Segment]:
        """Cut `seg` between `a` and `b` (a new route sits between them in `order` already)."""
        order = chain.order
        right_count = bisect.bisect_left(order, seg.end) - bisect.bisect_left(order, b) + 1
        right = _Segment(b, seg.end, right_count, seg.run, [h for h in seg.hashes if h[1] >= b])
        seg.hashes = [h for h in seg.hashes if h[1] <= a]
        seg.end, seg.count, seg.rebuild = a, seg.count - right_count, True
        chain.segs[b] = right
        bisect.insort(chain.starts, b)
        self._mark(chain, seg, structural=True)
        self._mark(chain, right, structural=True)
        return seg, right

    def _insert(self, chain: _Chain, skey: SortKey) -> None:
        order = chain.order
        pos = bisect.bisect_left(order, skey)
        a = order[pos - 1] if pos > 0 else None
        b = order[pos] if pos < len(order) else None
        order.insert(pos, skey)
        la = a is not None and self._link(a, skey)
        lb = b is not None and self._link(skey, b)
        sa = self._seg_of(chain, a) if a is not None else None
        sb = self._seg_of(chain, b) if b is not None else None
        if sa is not None and sa is sb:
            assert a is not None and b is not None
            if la and lb:
                self._grow(chain, sa, skey)
                return
            sa, sb = self._split(chain, sa, a, b)
        if la and sa is not None:
            sa.end = skey
            self._grow(chain, sa, skey)
            if lb and sb is not None:
                self._merge(chain, sa, sb)
        elif lb and sb is not None:
            self._rekey(chain, sb, skey)
            self._grow(chain, sb, skey)
        else:
            self._segment(chain, skey)

    def _remove(self, chain: _Chain, skey: SortKey) -> None:
        order = chain.order
        pos = bisect.bisect_left(order, skey)
        a = order[pos - 1] if pos > 0 else None
        b = order[pos + 1] if pos + 1 < len(order) else None
        seg = self._seg_of(chain, skey)
        del order[pos]
        if seg.count == 1:
            self._kill(chain, seg)
            if a is not None and b is not None and self._link(a, b):
                self._merge(chain, self._seg_of(chain, a), self._seg_of(chain, b))
            return
        if seg.start == skey:
            assert b is not None
            self._shrink(chain, seg, skey)
            self._rekey(chain, seg, b)
            if a is not None and self._link(a, b):
                self._merge(chain, self._seg_of(chain, a), seg)
        elif seg.end == skey:
            assert a is not None
            seg.end = a
            self._shrink(chain, seg, skey)
            if b is not None and self._link(a, b):
                self._merge(chain, seg, self._seg_of(chain, b))
        else:
            self._shrink(chain, seg, skey)   # interior: its neighbours link to each other

    # --- rendering --------------------------------------------------------------------------------------

    def _is_set(self, seg: _Segment) -> bool:
        return seg.run and seg.count >= self.options.set_min

    def _relabel(self, chain: _Chain) -> None:
        """Set-name stems: chain, shape and the run's ordinal among runs of that shape in the chain."""
        seen: dict[tuple[int, str, str], int] = {}
        for start in chain.starts:
            seg = chain.segs[start]
            label = ""
            if self._is_set(seg):
                entry = self._entry(start)
                assert entry.eff is not None
                key = shape(entry.eff, entry.other)
                ordinal = seen[key] = seen.get(key, -1) + 1
                ident = f"{chain.name}|{key[0]}|{key[1]}|{key[2]}|{ordinal}"
                label = hashlib.sha1(ident.encode()).hexdigest()[:12]
            if label != seg.label:
                seg.label, seg.rebuild = label, True
                self._mark(chain, seg)
        chain.structural = False

    def _render_chain(self, chain: _Chain) -> None:
        if chain.structural:
            self._relabel(chain)
        if not chain.changed:
            return
        # drop first, render second: a segment may take over the label (set names) or an inline counter
        # another one held until this pass
        for seg in chain.dirty:
            if seg.alive and (seg.rebuild or not self._is_set(seg)):
                self._drop_outputs(seg)
        for seg in chain.dirty:
            if seg.alive:
                self._render_segment(chain, seg)
            seg.dirty = False
        chain.dirty, chain.changed = [], False
        chain.rules = tuple(rule for start in chain.starts for rule in chain.segs[start].rules)

    def _drop_outputs(self, seg: _Segment) -> None:
        for spec in seg.shards.values():
            self.sets.pop(spec.name, None)
        for name in seg.counters:
            self.counter_owner.pop(name, None)
            self.meters.pop(name, None)
        seg.shards, seg.counters, seg.rules, seg.shard_keys = {}, (), (), {}

    def _render_segment(self, chain: _Chain, seg: _Segment) -> None:
        if not self._is_set(seg):
            lo = bisect.bisect_left(chain.order, seg.start)
            hi = bisect.bisect_right(chain.order, seg.end)
            rules: list[str] = []
            counters: list[str] = []
            for skey in chain.order[lo:hi]:
                rules.extend(self._inline(chain, self._entry(skey), counters))
            seg.rules, seg.counters = tuple(rules), tuple(counters)
        else:
            self._render_shards(chain, seg)
        seg.touched.clear()
        seg.added.clear()
        seg.removed.clear()
        seg.rebuild = False

    def _render_shards(self, chain: _Chain, seg: _Segment) -> None:
        first = self._entry(seg.start)
        assert first.eff is not None
        family, other, verdict_text = shape(first.eff, first.other)
        ip = "ip" if family == 4 else "ip6"
        shards: dict[tuple[int, int], SetSpec] = {}
        keys: dict[tuple[int, int], list[SortKey]] = {}
        rules: list[str] = []
        for depth, bits, lo, hi in _partition(seg.hashes, self.options.shard_size):
            node = (depth, bits)
            spec, members = seg.shards.get(node), seg.shard_keys.get(node)
            if spec is None or members is None:
                members = sorted(skey for _, skey in seg.hashes[lo:hi])
                spec = self._shard(chain, seg, node, members)
            elif any(_in_node(b, depth, bits) for b in seg.touched):
                members = self._patch(seg, node, members)
                spec = self._shard(chain, seg, node, members)
            shards[node], keys[node] = spec, members
            rules.append(" ".join(p for p in (other, f"{ip} saddr @{spec.name}", verdict_text) if p))
        for node, old in seg.shards.items():
            if shards.get(node) is not old:
                self.sets.pop(old.name, None)
        for spec in shards.values():
            self.sets[spec.name] = spec
        seg.shards, seg.shard_keys, seg.rules = shards, keys, tuple(rules)

    def _patch(self, seg: _Segment, node: tuple[int, int], members: list[SortKey]) -> list[SortKey]:
        """A shard's members after the routes added to and removed from its run since the last render
        (no re-sort of the shard: the delta is applied to the ordered list)."""
        depth, bits = node
        out = [k for k in members if k not in seg.removed] if seg.removed else list(members)
        for skey in seg.added:
            if _in_node(self._entry(skey).bucket, depth, bits):
                bisect.insort(out, skey)
        return out

    def _shard(self, chain: _Chain, seg: _Segment, node: tuple[int, int], members: list[SortKey]) -> SetSpec:
        entries = [self._entry(skey) for skey in members]
        first = entries[0]
        assert first.eff is not None
        depth, bits = node
        return SetSpec(f"s_{seg.label}_{depth}_{bits:x}", first.eff.family,
                       tuple(e.eff.source.prefix for e in entries),  # type: ignore[union-attr]
                       first.eff.action.drops_all,
                       tuple(counter_key(e.route.rid, chain.iface) for e in entries))

    def _count(self, chain: _Chain, prefix: str, rid: str, drops: bool, names: list[str]) -> str:
        name = f"{prefix}_{rid}_{chain.name.removeprefix('c_')}"
        self.counter_owner[name] = (counter_key(rid, chain.iface), drops)
        names.append(name)
        return f'counter name "{name}"'

    def _inline(self, chain: _Chain, entry: _Entry, counters: list[str]) -> list[str]:
        route = entry.eff
        assert route is not None
        ip = "ip" if route.family == 4 else "ip6"
        source = f"{ip} saddr {route.source.prefix}" if route.source else ""
        match = " ".join(p for p in (entry.other, source) if p)
        if not match:
            match = "meta nfproto ipv4" if route.family == 4 else "meta nfproto ipv6"
        action = route.action
        log = [self._log_rule(match, route)] if self._logs(route) else []
        if action.kind in (ActionKind.RATE_BYTES, ActionKind.RATE_PACKETS):
            # RFC 8955 §7.1: what exceeds the rate is dropped by the first rule (its own limiter: an
            # inline `limit` is per rule, so per route and chain, never shared); the rest goes on as
            # the route's accept (with its marks), so the route stays the first match for both parts
            rate = max(1, int(action.rate))
            over = (f"limit rate over {rate} bytes/second" if action.kind is ActionKind.RATE_BYTES
                    else f"limit rate over {rate}/second")
            forward = verdict(replace(action, kind=ActionKind.ACCEPT), route.family)
            return [*log, f"{match} {over} {self._count(chain, 'd', route.rid, True, counters)} drop",
                    f"{match} {self._count(chain, 'c', route.rid, False, counters)} {forward}".rstrip()]
        counter = self._count(chain, "c", route.rid, action.drops_all, counters)
        rule = f"{match} {counter} {verdict(action, route.family)}".rstrip()
        meter = self._meter(chain, route, counters[-1])
        return [*log, rule] if meter is None else [*log, f"{match} {meter.update()}", rule]

    def _log_rule(self, match: str, route: Route) -> str:
        """Monitor: a copy of matched packets to NFLOG, rate-capped; no verdict, so the route's own rule
        still counts and decides (a packet over the cap is just not logged)."""
        opts = self.options
        return (f'{match} limit rate {max(1, opts.sample_rate)}/second '
                f'log prefix "savd {route.rid} " group {opts.sample_group}')

    def _meter(self, chain: _Chain, route: Route, counter: str) -> MeterSpec | None:
        """A catch-all discard (no source, or /0) names only 0.0.0.0/0 or ::/0: count its actual sources
        in a meter, in a rule of its own before the discard (see MeterSpec: a full meter must not stop
        the drop)."""
        opts = self.options
        if opts.top_size <= 0 or not route.action.drops_all or (route.source and route.source.length):
            return None
        length = opts.top_v4_len if route.family == 4 else opts.top_v6_len
        meter = MeterSpec("t" + counter.removeprefix("c"), route.family, counter_key(route.rid, chain.iface),
                          length, opts.top_size, opts.top_timeout_s)
        self.meters[counter] = meter
        return meter


def build_plan(routes: Iterable[Route], groups: Mapping[int, Sequence[str]],
               options: PlanOptions | None = None, hold: Mapping[str, str] | None = None,
               marks: Mapping[str, int] | None = None) -> Plan:
    """The table for `routes` with interface groups mapped to ifnames (any order: sorted here).

    `hold`: route key -> reason for routes kept out of the kernel for now (allowlist.py: an allowlist's
    catch-all without its accepts); their state is "held". `marks`: redirect-to-IP steering (effective)."""
    return Planner(groups, options, marks).load(routes, hold)
