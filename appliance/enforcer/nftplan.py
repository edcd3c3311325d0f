"""FlowSpec routes -> one nftables table (pure): the plan, its `nft -f` text, and counter attribution.

Layout of table `inet savd_enforcer`:

    chain pre (hook prerouting, priority raw -300, policy accept: before conntrack, spoofed floods
               create no state)
        iifname vmap { "eth1" : goto c_i0, ... }   interfaces named by some route's interface group
        goto c_any                                  every other interface: only unscoped routes
    chain c_iN / c_any: the routes that apply to that interface, in RFC 8955 §5.1 order; first match
        wins because every route ends in a verdict (drop / accept), except T-bit ("terminal") routes,
        which count and fall through.

Consecutive routes with the same action and the same other components and pairwise disjoint source
prefixes form a *run*; a run of at least `set_min` routes becomes interval sets with per-element counters
(`set ... { flags interval; counter; }`), sharded into sets of at most `shard_size` elements by a hash
trie on the route id (planner.py), so that adding a route changes one shard and no route count moves
routes between unrelated shards. Sets are named by chain, shape, run and trie node, not by content: a
changed shard keeps its name and an incremental transaction adds and deletes just the changed elements
(`render_incremental`), so the other elements keep their kernel counters and rules referencing the set
stay as they are. Shorter runs are inline rules with named counter
objects (`counter name "c_<rid>_<chain>"`), which also survive chain flushes. Counters and sets are per
chain, so every count belongs to one (route, interface) pair (`counter_key`). Other match components come
before the set lookup in a rule, so element counters only count packets that match the whole route.

Fail open, never fail closed (DESIGN.md): a route this node cannot render exactly is degraded so that it
never drops more than the route asked for: an unsupported component on a discard route skips the route
(fewer drops); on any other route (rate-limit, mark, accept) it becomes an accept of the wider match
(fewer drops than the route itself or any later rule); rt-redirect (no VRF here) becomes accept + count.
Rate-limit: a rule dropping what exceeds the rate (its own limiter, counted as dropped), then the route's
accept. Monitor (sample) with a log group: a rate-capped `log group N` rule first. Redirect-to-IP: `meta
mark set M accept` when steering.py routes mark M toward the target, else accept + count (degraded).
Packet length is the whole IP packet (`meta length`, RFC 8955 definition) for both families.
IPv6 neighbour discovery (ICMPv6 133-137, link-scoped, never forwarded) passes before any route: an
allowlist's `::/0` discard would otherwise drop the link-local NS/NA the link itself needs, and a
blocklisted source prefix would kill NS sourced from it, breaking legitimate
traffic of other sources on that link.

Must not: run nft (nft.py does), read clocks or the environment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.enforcer.planmodel import (
    ND_RULE,
    Counters,
    MeterSpec,
    Plan,
    PlanOptions,
    RouteStatus,
    SetSpec,
    TopSource,
    counter_key,
)
from appliance.enforcer.planner import Planner, build_plan

__all__ = [
    "Counters",
    "MeterSpec",
    "Plan",
    "PlanDiff",
    "PlanOptions",
    "Planner",
    "RouteStatus",
    "SetSpec",
    "TopSource",
    "build_plan",
    "counter_key",
    "counters_from_listing",
    "per_route",
    "plan_diff",
    "render_full",
    "render_incremental",
    "top_sources_from_listing",
    "verify_listing",
]


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
    lines.extend(f"  set {m.name} {m.declaration()}" for m in plan.meters)
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


SetChange = tuple[SetSpec, tuple[str, ...], tuple[str, ...]]   # (new spec, removed, added)


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """What a transaction from `old` to `new` creates and destroys (shared by the renderer and the
    counter banking in nft.py, so both see the same objects go)."""

    new_sets: tuple[SetSpec, ...]
    gone_sets: tuple[SetSpec, ...]
    changed_sets: tuple[SetChange, ...]
    new_counters: tuple[str, ...]
    gone_counters: tuple[str, ...]


def plan_diff(old: Plan, new: Plan) -> PlanDiff:
    """Sets and counters by name; a set in both whose elements differ is changed in place."""
    old_sets = {s.name: s for s in old.sets}
    new_sets = {s.name: s for s in new.sets}
    changed = []
    for name, spec in new_sets.items():
        before = old_sets.get(name)
        if before is None or before is spec or before == spec:
            continue
        kept = set(spec.elements)
        removed = tuple(e for e in before.elements if e not in kept)
        was = set(before.elements)
        changed.append((spec, removed, tuple(e for e in spec.elements if e not in was)))
    old_counters, new_counters = set(old.counters), set(new.counters)
    return PlanDiff(tuple(s for n, s in new_sets.items() if n not in old_sets),
                    tuple(s for n, s in old_sets.items() if n not in new_sets), tuple(changed),
                    tuple(sorted(new_counters - old_counters)), tuple(sorted(old_counters - new_counters)))


def elements_only(old: Plan, new: Plan) -> PlanDiff | None:
    """The diff of a change that moves only set elements (`changed_sets`), the enforcer's hot path (a
    prefix joins or leaves a list); None when anything else changes (a set, counter, meter, chain or the
    dispatch), which takes a transaction through nft."""
    if (new.empty or old.empty or old.priority != new.priority or old.chains != new.chains
            or old.meter_names() != new.meter_names()):
        return None
    diff = plan_diff(old, new)
    if diff.new_sets or diff.gone_sets or diff.new_counters or diff.gone_counters:
        return None
    return diff if _pre_rules(old) == _pre_rules(new) else None


def render_incremental(old: Plan, new: Plan) -> str:
    """One transaction from `old` (known to be in the kernel) to `new`, proportional to the change:
    new sets and counters are added, changed sets get just their removed and added elements (the
    others keep their counts), only chains whose rules changed are flushed and refilled, and what is
    gone is deleted last, once no rule refers to it."""
    if new.empty:
        return render_full(new)
    t = f"inet {new.table}"
    diff = plan_diff(old, new)
    lines = [f"add table {t}"]
    lines.extend(f"add counter {t} {name}" for name in diff.new_counters)
    lines.extend(f"add set {t} {s.name} {s.declaration()}" for s in diff.new_sets)
    old_meters, new_meters = old.meter_names(), new.meter_names()
    lines.extend(f"add set {t} {m.name} {m.declaration()}" for m in new.meters if m.name not in old_meters)
    for spec, removed, added in diff.changed_sets:
        if removed:
            lines.append(f"delete element {t} {spec.name} {{ {', '.join(removed)} }}")
        if added:
            lines.append(f"add element {t} {spec.name} {{ {', '.join(added)} }}")
    old_chains = dict(old.chains)
    for name, rules in new.chains:
        before = old_chains.get(name)
        if before is rules or before == rules:
            continue
        lines.append(f"flush chain {t} {name}" if before is not None else f"add chain {t} {name}")
        lines.extend(f"add rule {t} {name} {rule}" for rule in rules)
    pre = _pre_rules(new)
    if pre != _pre_rules(old):
        lines += [f"add chain {t} pre {_base_chain(new)}", f"flush chain {t} pre"]
        lines.extend(f"add rule {t} pre {rule}" for rule in pre)
    gone_chains = sorted(old.chain_names() - new.chain_names())
    lines.extend(f"flush chain {t} {name}" for name in gone_chains)
    lines.extend(f"delete chain {t} {name}" for name in gone_chains)
    lines.extend(f"delete set {t} {s.name}" for s in diff.gone_sets)
    lines.extend(f"delete set {t} {m.name}" for m in old.meters if m.name not in new_meters)
    lines.extend(f"delete counter {t} {name}" for name in diff.gone_counters)
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
    specs = {s.name: s for s in plan.sets}
    for obj in _objects(listing, "set"):
        spec = specs.get(str(obj.get("name")))
        if spec is None:
            continue
        owner_of = spec.owner_of()
        for item in obj.get("elem", []) or []:
            elem = item.get("elem") if isinstance(item, dict) else None
            if not isinstance(elem, dict) or "counter" not in elem:
                continue
            prefix = _element_prefix(elem.get("val"))
            owner_rid = owner_of.get(prefix or "")
            if owner_rid is None:
                continue
            c = elem["counter"]
            packets, nbytes = int(c.get("packets", 0)), int(c.get("bytes", 0))
            drops = spec.drops
            add = Counters(packets, nbytes, packets if drops else 0, nbytes if drops else 0)
            out[owner_rid] = out.get(owner_rid, Counters()) + add
    return out


def _meter_prefix(val: Any, meter: MeterSpec) -> str | None:
    try:
        return str(ipaddress.ip_network(f"{val}/{meter.length}", strict=False))
    except (TypeError, ValueError):
        return None


def top_sources_from_listing(plan: Plan, listing: Mapping[str, Any], top: int = 10
                             ) -> dict[str, tuple[TopSource, ...]]:
    """Per counter key of a catch-all discard: its `top` aggregated sources from the meters in `nft -j
    list`, most packets first. Counts are since each element last appeared (they expire when idle), so
    the consumer takes rises, as for any counter; only the top are kept whatever the meter holds."""
    meters = {m.name: m for m in plan.meters}
    out: dict[str, tuple[TopSource, ...]] = {}
    for obj in _objects(listing, "set"):
        meter = meters.get(str(obj.get("name")))
        if meter is None:
            continue
        found: list[TopSource] = []
        for item in obj.get("elem", []) or []:
            elem = item.get("elem") if isinstance(item, dict) else None
            if not isinstance(elem, dict) or not isinstance(elem.get("counter"), dict):
                continue
            prefix = _meter_prefix(elem.get("val"), meter)
            if prefix is not None:
                c = elem["counter"]
                found.append(TopSource(prefix, int(c.get("packets", 0)), int(c.get("bytes", 0))))
        found.sort(key=lambda t: (-t.packets, -t.bytes, t.prefix))
        if found:
            out[meter.owner] = tuple(found[:top])
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
    problems.extend(f"meter {m.name}: missing" for m in plan.meters if m.name not in sets)
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
