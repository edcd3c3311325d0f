"""FlowSpec routes -> one nftables table (pure): the plan, its `nft -f` text, and counter attribution.

Layout of table `inet savd_enforcer` (integration.md §3.7, §3.10):

    chain pre (hook prerouting, priority raw -300, policy accept: before conntrack, spoofed floods
               create no state)
        iifname vmap { "eth1" : goto c_i0, ... }   interfaces named by some route's interface group
        goto c_any                                  every other interface: only unscoped routes
    chain c_iN / c_any: the routes that apply to that interface, in RFC 8955 §5.1 order; first match
        wins because every route ends in a verdict (drop / accept), except T-bit ("terminal") routes,
        which count and fall through.

Consecutive routes with the same action and the same other components and pairwise disjoint source
prefixes form a *run*; a run of at least `set_min` routes becomes interval sets with per-element counters
(`set ... { flags interval; counter; }`), sharded into sets of at most `shard_size` elements by a stable
hash so that one changed route rewrites one small set, never a 100k-element one (nft fetches a whole
set before changing elements: §3.10). Sets are named by a hash of their chain and content, so an
unchanged set survives a transaction with its counters. Shorter runs are inline rules with named counter
objects (`counter name "c_<rid>_<chain>"`), which also survive chain flushes. Counters and sets are per
chain, so every count belongs to one (route, interface) pair (`counter_key`). Other match components come
before the set lookup in a rule, so element counters only count packets that match the whole route.

Fail open, never fail closed (DESIGN.md): a route this node cannot render exactly is degraded so that it
never drops more than the route asked for: an unsupported component on a discard route skips the route
(fewer drops); on any other route (rate-limit, mark, accept) it becomes an accept of the wider match
(fewer drops than the route itself or any later rule); redirect (no VRF here) becomes accept + count.
Packet length is the whole IP packet (`meta length`, RFC 8955 definition) for both families.
IPv6 neighbour discovery (ICMPv6 133-137, link-scoped, never forwarded) passes before any route: an
allowlist's `::/0` discard would otherwise drop the link-local NS/NA the link itself needs, and a
blocklisted source prefix would kill NS sourced from it (integration.md §3.7), breaking legitimate
traffic of other sources on that link.

Must not: run nft (nft.py does), read clocks or the environment.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.enforcer.route import ActionKind, NumericMatch, Route, RouteAction

__all__ = ["Counters", "Plan", "PlanOptions", "RouteStatus", "SetSpec", "build_plan", "counter_key",
           "counters_from_listing", "per_route",
           "render_full", "render_incremental", "verify_listing"]

PORT_PROTOCOLS = ((6, 6), (17, 17), (132, 132))   # tcp, udp, sctp: the protocols with ports
ND_RULE = ("icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, "
           "nd-redirect } accept")


@dataclass(frozen=True, slots=True)
class PlanOptions:
    table: str = "savd_enforcer"
    priority: int = -300
    set_min: int = 4
    shard_size: int = 1024
    exempt: tuple[str, ...] = ()   # interfaces never filtered (the enforcer's own BGP veth)
    allow_nd: bool = True          # IPv6 neighbour discovery passes before any route (see module doc)


@dataclass(frozen=True, slots=True)
class SetSpec:
    name: str
    family: int
    elements: tuple[str, ...]
    drops: bool

    def declaration(self) -> str:
        kind = "ipv4_addr" if self.family == 4 else "ipv6_addr"
        elems = ", ".join(self.elements)
        return f"{{ type {kind}; flags interval; counter; elements = {{ {elems} }}; }}"


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """How one route was rendered: installed, degraded (widened/forwarded), skipped, unmapped, ..."""

    rid: str
    nlri: str
    source: str                  # source prefix, "*" when the route has none
    state: str
    action: str
    reason: str = ""
    interfaces: tuple[str, ...] = ()
    groups: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    table: str
    priority: int
    sets: tuple[SetSpec, ...] = ()
    exempt: tuple[str, ...] = ()
    allow_nd: bool = True
    chains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    dispatch: tuple[tuple[str, str], ...] = ()
    default_chain: bool = False
    counters: tuple[str, ...] = ()
    counter_owner: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    element_owner: Mapping[tuple[str, str], str] = field(default_factory=dict)
    statuses: tuple[RouteStatus, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(rules for _, rules in self.chains)

    def set_names(self) -> set[str]:
        return {s.name for s in self.sets}

    def chain_names(self) -> set[str]:
        return {name for name, _ in self.chains}


@dataclass(frozen=True, slots=True)
class Counters:
    packets: int = 0
    bytes: int = 0
    dropped_packets: int = 0
    dropped_bytes: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(self.packets + other.packets, self.bytes + other.bytes,
                        self.dropped_packets + other.dropped_packets,
                        self.dropped_bytes + other.dropped_bytes)


# --- planning ---------------------------------------------------------------------------------------------


def _effective(route: Route) -> tuple[Route | None, str, str]:
    """The route as it will be rendered, its state and the reason (see module docstring)."""
    if route.output_only:
        return None, "skipped", "interface-set applies on output only"
    action = route.action
    notes = []
    if route.unsupported:
        what = ", ".join(route.unsupported)
        if action.drops_all:
            return None, "skipped", f"unsupported component ({what}): discard not installed (fail open)"
        route = replace(route, unsupported=())
        action = RouteAction(ActionKind.ACCEPT, sample=action.sample, terminal=action.terminal)
        notes.append(f"unsupported component ({what}): forwarded (fail open)")
    if action.redirect and not action.drops_all:
        action = replace(action, kind=ActionKind.ACCEPT, redirect="")
        notes.append("redirect has no target on this node: forwarded and counted")
    if notes:
        return replace(route, action=action), "degraded", "; ".join(notes)
    return route, "installed", ""


def _ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    items = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _intersect(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(max(x, y), min(p, q)) for x, p in a for y, q in b if max(x, y) <= min(p, q)]


def _other_match(route: Route) -> str | None:
    """nft expressions for every component except the source prefix; None if it can never match."""
    ip = "ip" if route.family == 4 else "ip6"
    parts: list[str] = []
    if route.destination:
        parts.append(f"{ip} daddr {route.destination.prefix}")
    nums: dict[int, NumericMatch] = {n.ctype: n for n in route.numeric}
    proto = list(nums[3].ranges) if 3 in nums else None
    if 5 in nums or 6 in nums:
        proto = _intersect(proto if proto is not None else [(0, 255)], PORT_PROTOCOLS)
        if not proto:
            return None
    if proto is not None:
        parts.append(f"meta l4proto {_ranges_text(proto)}")
    icmp = "icmp" if route.family == 4 else "icmpv6"
    names = {5: "th dport", 6: "th sport", 7: f"{icmp} type", 8: f"{icmp} code", 10: "meta length",
             11: f"{ip} dscp", 13: "ip6 flowlabel"}
    for ctype, expr in names.items():
        if ctype in nums:
            if ctype == 13 and route.family == 4:
                return None
            parts.append(f"{expr} {_ranges_text(nums[ctype].ranges)}")
    return " ".join(parts)


def _verdict(action: RouteAction, family: int) -> str:
    if action.drops_all:
        return "drop"
    mark = f"{'ip' if family == 4 else 'ip6'} dscp set {action.dscp} " if action.dscp is not None else ""
    return (mark + ("" if action.terminal else "accept")).strip()


def _settable(route: Route) -> bool:
    return route.source is not None and route.action.kind in (ActionKind.ACCEPT, ActionKind.DISCARD)


def _shape(route: Route, other: str) -> tuple[int, str, str]:
    return (route.family, other, _verdict(route.action, route.family))


@dataclass(slots=True)
class _Builder:
    options: PlanOptions
    sets: dict[str, SetSpec] = field(default_factory=dict)
    counters: set[str] = field(default_factory=set)
    counter_owner: dict[str, tuple[str, bool]] = field(default_factory=dict)
    element_owner: dict[tuple[str, str], str] = field(default_factory=dict)
    chain_name: str = ""
    iface: str = "*"

    def chain(self, name: str, iface: str, routes: Sequence[tuple[Route, str]]) -> tuple[str, ...]:
        """Rules for one interface chain from (route, other-match) pairs already in RFC order.

        Counters and sets are per chain, so counts are attributed to (route, interface)."""
        self.chain_name, self.iface = name, iface
        rules: list[str] = []
        run: list[tuple[Route, str]] = []
        run_last = -1
        run_shape: tuple[int, str, str] = (0, "", "")
        for route, other in routes:
            if run and _settable(route) and _shape(route, other) == run_shape:
                assert route.source is not None
                if route.source.first > run_last:
                    run.append((route, other))
                    run_last = max(run_last, route.source.last)
                    continue
            rules.extend(self._flush(run))
            run = [(route, other)] if _settable(route) else []
            if run:
                assert route.source is not None
                run_last = route.source.last
                run_shape = _shape(route, other)
            else:
                rules.extend(self._inline(route, other))
        rules.extend(self._flush(run))
        return tuple(rules)

    def _flush(self, run: list[tuple[Route, str]]) -> list[str]:
        if len(run) < self.options.set_min:
            return [line for route, other in run for line in self._inline(route, other)]
        first, other = run[0]
        family, _, verdict = _shape(first, other)
        shard_count = -(-len(run) // self.options.shard_size)
        shards: list[list[Route]] = [[] for _ in range(shard_count)]
        for route, _ in run:
            assert route.source is not None
            digest = hashlib.sha1(route.source.prefix.encode()).digest()
            shards[int.from_bytes(digest[:4], "big") % shard_count].append(route)
        ip = "ip" if family == 4 else "ip6"
        lines = []
        for shard in shards:
            if not shard:
                continue
            elements = tuple(r.source.prefix for r in shard)  # type: ignore[union-attr]
            ident = f"{self.chain_name}|{family}|{other}|{verdict}|" + ",".join(sorted(elements))
            name = "s_" + hashlib.sha1(ident.encode()).hexdigest()[:16]
            self.sets[name] = SetSpec(name, family, elements, first.action.drops_all)
            for route in shard:
                key = counter_key(route.rid, self.iface)
                self.element_owner[(name, route.source.prefix)] = key  # type: ignore[union-attr]
            lines.append(" ".join(p for p in (other, f"{ip} saddr @{name}", verdict) if p))
        return lines

    def _count(self, prefix: str, rid: str, drops: bool) -> str:
        name = f"{prefix}_{rid}_{self.chain_name.removeprefix('c_')}"
        self.counters.add(name)
        self.counter_owner[name] = (counter_key(rid, self.iface), drops)
        return f'counter name "{name}"'

    def _inline(self, route: Route, other: str) -> list[str]:
        ip = "ip" if route.family == 4 else "ip6"
        source = f"{ip} saddr {route.source.prefix}" if route.source else ""
        match = " ".join(p for p in (other, source) if p)
        if not match:
            match = "meta nfproto ipv4" if route.family == 4 else "meta nfproto ipv6"
        action = route.action
        if action.kind in (ActionKind.RATE_BYTES, ActionKind.RATE_PACKETS):
            rate = max(1, int(action.rate))
            unit = "bytes/second" if action.kind is ActionKind.RATE_BYTES else "/second"
            over = f"limit rate over {rate} {unit}" if unit != "/second" else f"limit rate over {rate}/second"
            forward = _verdict(replace(action, kind=ActionKind.ACCEPT), route.family)
            return [f"{match} {over} {self._count('d', route.rid, True)} drop",
                    f"{match} {self._count('c', route.rid, False)} {forward}".rstrip()]
        counter = self._count("c", route.rid, action.drops_all)
        return [f"{match} {counter} {_verdict(action, route.family)}".rstrip()]


def build_plan(routes: Iterable[Route], groups: Mapping[int, Sequence[str]],
               options: PlanOptions | None = None, hold: Mapping[str, str] | None = None) -> Plan:
    """The table for `routes` (already in RFC 8955 order) with interface groups mapped to ifnames.

    `hold`: route key -> reason for routes kept out of the kernel for now (allowlist.py: an allowlist's
    catch-all without its accepts); their state is "held"."""
    options = options or PlanOptions()
    hold = hold or {}
    rendered: list[tuple[Route, str]] = []
    statuses: list[RouteStatus] = []
    ifnames: set[str] = set()
    for route in routes:
        eff, state, reason = _effective(route)
        if route.key in hold:
            eff, state, reason = None, "held", hold[route.key]
        other = _other_match(eff) if eff else None
        if eff is not None and other is None:
            eff, state, reason = None, "skipped", "components can never match together"
        names = tuple(sorted({n for g in route.groups for n in groups.get(g, ())}))
        if eff is not None and route.groups and not names:
            eff, state = None, "unmapped"
            reason = f"interface group(s) {', '.join(map(str, route.groups))} not mapped on this node"
        source = route.source.prefix if route.source else "*"
        statuses.append(RouteStatus(route.rid, route.nlri, source, state, route.action.describe(), reason,
                                    names if route.groups else ("*",), route.groups))
        if eff is not None and other is not None:
            rendered.append((eff, other))
            ifnames.update(names)
    builder = _Builder(options)
    chains: list[tuple[str, tuple[str, ...]]] = []
    dispatch: list[tuple[str, str]] = []
    unscoped = [(r, o) for r, o in rendered if not r.groups]
    for index, ifname in enumerate(sorted(ifnames)):
        applicable = [(r, o) for r, o in rendered
                      if not r.groups or any(ifname in groups.get(g, ()) for g in r.groups)]
        chains.append((f"c_i{index}", builder.chain(f"c_i{index}", ifname, applicable)))
        dispatch.append((ifname, f"c_i{index}"))
    if unscoped:
        chains.append(("c_any", builder.chain("c_any", "*", unscoped)))
    return Plan(options.table, options.priority, tuple(sorted(builder.sets.values(), key=lambda s: s.name)),
                tuple(sorted(options.exempt)), options.allow_nd,
                tuple(chains), tuple(dispatch), bool(unscoped), tuple(sorted(builder.counters)),
                dict(builder.counter_owner), dict(builder.element_owner), tuple(statuses))


# --- rendering --------------------------------------------------------------------------------------------


def _quote(ifname: str) -> str:
    return '"' + ifname.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pre_rules(plan: Plan) -> list[str]:
    rules = []
    if plan.exempt:
        rules.append(f"iifname {{ {', '.join(_quote(i) for i in plan.exempt)} }} accept")
    if plan.allow_nd:
        rules.append(ND_RULE)
    if plan.dispatch:
        entries = ", ".join(f"{_quote(ifn)} : goto {chain}" for ifn, chain in plan.dispatch)
        rules.append(f"iifname vmap {{ {entries} }}")
    if plan.default_chain:
        rules.append("goto c_any")
    return rules


def _base_chain(plan: Plan) -> str:
    return f"{{ type filter hook prerouting priority {plan.priority}; policy accept; }}"


def render_full(plan: Plan) -> str:
    """Replace the whole table in one transaction (or delete it when the plan is empty)."""
    t = f"inet {plan.table}"
    lines = [f"table {t} {{}}", f"delete table {t}"]
    if plan.empty:
        return "\n".join(lines) + "\n"
    lines.append(f"table {t} {{")
    lines.extend(f"  counter {name} {{ }}" for name in plan.counters)
    lines.extend(f"  set {s.name} {s.declaration()}" for s in plan.sets)
    for name, rules in plan.chains:
        lines.append(f"  chain {name} {{")
        lines.extend(f"    {rule}" for rule in rules)
        lines.append("  }")
    lines.append("  chain pre {")
    lines.append(f"    type filter hook prerouting priority {plan.priority}; policy accept;")
    lines.extend(f"    {rule}" for rule in _pre_rules(plan))
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_incremental(old: Plan, new: Plan) -> str:
    """One transaction from `old` (known to be in the kernel) to `new`: unchanged sets and counters
    stay (with their counts); chains are flushed and refilled (a few rules per run, not per route)."""
    if new.empty:
        return render_full(new)
    t = f"inet {new.table}"
    lines = [f"add table {t}", f"add chain {t} pre {_base_chain(new)}", f"flush chain {t} pre"]
    old_chains, new_chains = old.chain_names(), new.chain_names()
    lines.extend(f"flush chain {t} {name}" for name in sorted(old_chains & new_chains))
    lines.extend(f"add chain {t} {name}" for name in sorted(new_chains - old_chains))
    lines.extend(f"add counter {t} {name}" for name in sorted(set(new.counters) - set(old.counters)))
    old_sets = old.set_names()
    lines.extend(f"add set {t} {s.name} {s.declaration()}" for s in new.sets if s.name not in old_sets)
    for name, rules in new.chains:
        lines.extend(f"add rule {t} {name} {rule}" for rule in rules)
    lines.extend(f"add rule {t} pre {rule}" for rule in _pre_rules(new))
    lines.extend(f"flush chain {t} {name}" for name in sorted(old_chains - new_chains))
    lines.extend(f"delete chain {t} {name}" for name in sorted(old_chains - new_chains))
    lines.extend(f"delete set {t} {name}" for name in sorted(old_sets - new.set_names()))
    lines.extend(f"delete counter {t} {name}" for name in sorted(set(old.counters) - set(new.counters)))
    return "\n".join(lines) + "\n"


# --- reading back -----------------------------------------------------------------------------------------


def _element_prefix(val: Any) -> str | None:
    if isinstance(val, str):
        return str(ipaddress.ip_network(val))
    if isinstance(val, dict) and "prefix" in val:
        p = val["prefix"]
        return str(ipaddress.ip_network(f"{p['addr']}/{p['len']}"))
    return None


def _objects(listing: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [item[kind] for item in listing.get("nftables", []) if isinstance(item, dict) and kind in item]


def counter_key(rid: str, iface: str) -> str:
    """Counters are kept per route and interface ("*" = every interface without a scoped chain)."""
    return f"{rid}@{iface}"


def per_route(counters: Mapping[str, Counters]) -> dict[str, Counters]:
    """Sum per-(route, interface) counters to per-route totals."""
    out: dict[str, Counters] = {}
    for key, value in counters.items():
        rid = key.split("@", 1)[0]
        out[rid] = out.get(rid, Counters()) + value
    return out


def counters_from_listing(plan: Plan, listing: Mapping[str, Any]) -> dict[str, Counters]:
    """Per `counter_key(route id, interface)`: packets/bytes matched and dropped, from `nft -j list`."""
    out: dict[str, Counters] = {}
    for obj in _objects(listing, "counter"):
        owner = plan.counter_owner.get(str(obj.get("name")))
        if owner is None:
            continue
        rid, drops = owner
        packets, nbytes = int(obj.get("packets", 0)), int(obj.get("bytes", 0))
        add = Counters(packets, nbytes, packets if drops else 0, nbytes if drops else 0)
        out[rid] = out.get(rid, Counters()) + add
    drops_by_set = {s.name: s.drops for s in plan.sets}
    for obj in _objects(listing, "set"):
        name = str(obj.get("name"))
        if name not in drops_by_set:
            continue
        for item in obj.get("elem", []) or []:
            elem = item.get("elem") if isinstance(item, dict) else None
            if not isinstance(elem, dict) or "counter" not in elem:
                continue
            prefix = _element_prefix(elem.get("val"))
            owner_rid = plan.element_owner.get((name, prefix or ""))
            if owner_rid is None:
                continue
            c = elem["counter"]
            packets, nbytes = int(c.get("packets", 0)), int(c.get("bytes", 0))
            drops = drops_by_set[name]
            add = Counters(packets, nbytes, packets if drops else 0, nbytes if drops else 0)
            out[owner_rid] = out.get(owner_rid, Counters()) + add
    return out


def verify_listing(plan: Plan, listing: Mapping[str, Any] | None) -> list[str]:
    """Differences between the plan and what the kernel holds (empty list = in sync)."""
    if listing is None:
        return [] if plan.empty else ["table missing"]
    if plan.empty:
        return ["table present but nothing to enforce"]
    problems = []
    sets = {str(s.get("name")): len(s.get("elem", []) or []) for s in _objects(listing, "set")}
    for spec in plan.sets:
        if sets.get(spec.name) != len(spec.elements):
            problems.append(f"set {spec.name}: {sets.get(spec.name)} elements, want {len(spec.elements)}")
    rules: dict[str, int] = {}
    for rule in _objects(listing, "rule"):
        chain = str(rule.get("chain"))
        rules[chain] = rules.get(chain, 0) + 1
    for name, want in plan.chains:
        if rules.get(name, 0) != len(want):
            problems.append(f"chain {name}: {rules.get(name, 0)} rules, want {len(want)}")
    if rules.get("pre", 0) != len(_pre_rules(plan)):
        problems.append(f"chain pre: {rules.get('pre', 0)} rules, want {len(_pre_rules(plan))}")
    return problems
