"""Inter-domain SAV lists per eBGP interface: the uRPF family, EFP-uRPF A and B, BAR-SAV, BAR-SAV-PI.

Implements RFC 3704 sections 2.2-2.4 (strict, feasible-path, loose), RFC 8704 sections 3.1 and 3.4 (EFP-uRPF
algorithms A and B), draft-ietf-sidrops-bar-sav v09 section 3 (Procedure X), section 4 (BAR-SAV on
customer and lateral-peer interfaces) and section 7 (BAR-SAV-PI on provider interfaces), as condensed in
reference/sav-algorithms.md section 1. Customer-interface algorithms yield allowlists. Loose uRPF and
BAR-SAV-PI yield blocklists: loose lists nothing (the router's own FIB check does the rest), BAR-SAV-PI lists
the prefixes that can only arrive from the customer cone (the complement of its allowlist G within the routed
space, so the router need not carry a full-table allowlist).

A route server (Relationship.ROUTE_SERVER) is a lateral peer throughout: loose uRPF by default, in EFP-uRPF
B's set Q with the peers, BAR-SAV's lateral-peer procedure when chosen, with the RS-clients behind it (the
first AS of its paths; the RS does not prepend its own AS) as the seeds of the cone.

Fail open (BAR-SAV section 6.5.1): with no RPKI data at all, BAR-SAV and BAR-SAV-PI fall back to loose uRPF
on that interface and say so in the interface notes; so does the default, `auto` (policy.py). Pure: no I/O,
no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from appliance.engine.aspa import PathVerdict, compress
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.prefixset import PrefixSet, supernets
from appliance.engine.rib import LATERAL, RouterRib, Rov, RpkiView, is_special_asn
from appliance.model import BgpPath, ListKind, Relationship

__all__ = [
    "PROVEN_BLOCK",
    "Outcome",
    "Proven",
    "RouterRun",
    "bar_sav",
    "bar_sav_pi_blocklist",
    "compute_router",
    "customer_cone",
    "efp_a",
    "efp_b",
    "expand_cone",
    "feasible",
    "pi_member",
    "procedure_x",
    "proven_block",
    "proven_outside",
    "split_known",
    "strict",
    "unproven",
]

PROVEN_BLOCK = "auto:bar-sav-proven-block"
"""The default's blocklist on a customer interface (RouterRun.auto); snapshot.merge keys on it."""

_REL_PREFERENCE = {
    Relationship.CUSTOMER: 0,
    Relationship.PEER: 1,
    Relationship.ROUTE_SERVER: 1,
    Relationship.PROVIDER: 2,
    Relationship.INTERNAL: 3,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One interface's computed list before modes and delivery are attached."""

    kind: ListKind
    prefixes: frozenset[str]
    algorithm: str
    notes: tuple[str, ...] = ()
    spare: Callable[[frozenset[str]], frozenset[str]] | None = field(default=None, compare=False, repr=False)
    """For a blocklist standing for an allowlist (PROVEN_BLOCK): the given prefixes (an intra-domain
    blocklist) that overlap none of the allowed ones, so that adding them blocks nothing the allowlist
    passes (snapshot.merge)."""


def _allow(prefixes: Iterable[str], algorithm: str, *notes: str) -> Outcome:
    return Outcome(ListKind.ALLOW, frozenset(prefixes), algorithm, notes)


def _loose(*notes: str) -> Outcome:
    return Outcome(ListKind.BLOCK, frozenset(), str(Algorithm.LOOSE), notes)


# --- RFC 3704 --------------------------------------------------------------------------------------------


def strict(rib: RouterRib) -> dict[str, frozenset[str]]:
    """Strict uRPF: a prefix is allowed only on the interface of its best path.

    Best path: customer over peer over provider (local preference by relationship), then the shorter
    compressed AS_PATH, then the lower interface name and path id, so the choice is deterministic.
    """
    best: dict[str, tuple[tuple[int, int, str, int], str]] = {}
    for iface, paths in rib.by_iface.items():
        pref = _REL_PREFERENCE[rib.relationship(iface)]
        for p in paths:
            key = (pref, len(compress(p.as_path)), iface, p.path_id)
            cur = best.get(p.prefix)
            if cur is None or key < cur[0]:
                best[p.prefix] = (key, iface)
    out: dict[str, set[str]] = {i: set() for i in rib.by_iface}
    for prefix, (_, iface) in best.items():
        out[iface].add(prefix)
    return {i: frozenset(s) for i, s in out.items()}


def feasible(rib: RouterRib, interface: str) -> frozenset[str]:
    """Feasible-path uRPF: every prefix received on the interface, best or not."""
    return rib.iface_prefixes(interface)


# --- RFC 8704 --------------------------------------------------------------------------------------------


def efp_a(rib: RouterRib) -> dict[str, frozenset[str]]:
    """EFP-uRPF algorithm A (RFC 8704 section 3.1) for every customer interface."""
    customer = rib.customer_ifaces
    set_a = {p.origin for i in customer for p in rib.by_iface[i]}
    out: dict[str, frozenset[str]] = {}
    for iface in customer:
        received = rib.iface_prefixes(iface)
        origins = {o for pfx in received for o in rib.prefix_origins.get(pfx, ()) if o in set_a}
        allowed: set[str] = set()
        for o in origins:
            allowed |= rib.origin_prefixes[o]
        out[iface] = frozenset(allowed)
    return out


def efp_b(rib: RouterRib) -> frozenset[str]:
    """EFP-uRPF algorithm B (RFC 8704 section 3.4): one list Z for every customer interface."""
    set_p: set[str] = set()
    set_a: set[int] = set()
    for iface in rib.customer_ifaces:
        for p in rib.by_iface[iface]:
            set_p.add(p.prefix)
            set_a.add(p.origin)
    set_q = {
        p.prefix
        for iface in rib.ifaces(*LATERAL, Relationship.PROVIDER)
        for p in rib.by_iface[iface]
        if p.origin in set_a
    }
    return frozenset(set_p | set_q)


# --- BAR-SAV -------------------------------------------------------------------------------------------


def procedure_x(rpki: RpkiView, neighbor_asn: int) -> tuple[frozenset[int], frozenset[str]]:
    """Procedure X (BAR-SAV v09 section 3): the cone by ASPA alone, and the prefixes of its ROAs."""
    cone = {neighbor_asn}
    frontier = {neighbor_asn}
    while frontier:
        nxt: set[int] = set()
        for asn in frontier:
            nxt |= rpki.aspa_customers_of.get(asn, frozenset())
        frontier = nxt - cone
        cone |= frontier
    prefixes: set[str] = set()
    for asn in cone:
        prefixes |= rpki.roa_prefixes_by_asn.get(asn, frozenset())
    return frozenset(cone), frozenset(prefixes)


def expand_cone(pairs: Mapping[int, Iterable[int]], rpki: RpkiView, seeds: Iterable[int]) -> frozenset[int]:
    """Grow a cone from `seeds` by ASPA customers (step 5, minus special ASNs) and AS_PATH pairs (step 7)."""
    cone = set(seeds)
    frontier = set(cone)
    while frontier:
        nxt: set[int] = set()
        for asn in frontier:
            nxt |= {c for c in rpki.aspa_customers_of.get(asn, frozenset()) if not is_special_asn(c)}
            nxt |= set(pairs.get(asn, ()))
        frontier = nxt - cone
        cone |= frontier
    return frozenset(cone)


def customer_cone(
    rib: RouterRib, rpki: RpkiView, neighbor_asn: int | Iterable[int], asn_acl: Iterable[int] = ()
) -> frozenset[int]:
    """AS-set D of BAR-SAV steps 1-10: expand by ASPA (step 5) and AS_PATH pairs (step 7) together.

    `neighbor_asn` is AS-k, or several seeds (behind a route server: RouterRib.cone_seeds)."""
    seeds = (neighbor_asn,) if isinstance(neighbor_asn, int) else tuple(neighbor_asn)
    return expand_cone(rib.customer_pairs(rpki), rpki, (*seeds, *asn_acl))


def cone_prefixes(rib: RouterRib, rpki: RpkiView, cone: frozenset[int]) -> frozenset[str]:
    """Q1 | Q2 of BAR-SAV steps 11-12: ROA prefixes of the cone and its routes that are not ROV-Invalid."""
    out: set[str] = set()
    for asn in cone:
        out |= rpki.roa_prefixes_by_asn.get(asn, frozenset())
        out |= rib.rov_ok_prefixes(rpki, asn)
    return frozenset(out)


def bar_sav(
    rib: RouterRib, rpki: RpkiView, interface: str, policy: Policy
) -> tuple[frozenset[int], frozenset[str]]:
    """BAR-SAV (v09 section 4) on one customer or lateral-peer interface: (AS-set D, Pfx-set Q)."""
    key = (rib.router, interface)
    cone = customer_cone(rib, rpki, rib.cone_seeds(interface), policy.asn_acl.get(key, ()))
    prefixes = cone_prefixes(rib, rpki, cone) | frozenset(policy.prefix_acl.get(key, ()))
    return cone, prefixes


def bar_sav_pi_blocklist(
    rib: RouterRib, rpki: RpkiView, cones: dict[str, tuple[frozenset[int], frozenset[str]]]
) -> frozenset[str]:
    """Pfx-set S of BAR-SAV-PI (v09 section 7, steps 1-5): prefixes that may only come from the cone.

    Conservative reading (S is blocked on provider interfaces, so doubt keeps a prefix out of S): a prefix
    needs at least one route on a customer interface, every such route ROV-Valid and ASPA-Valid, every ROA
    origin inside the union cone Du, and every AS on every route to it holding an ASPA whose providers are all
    in Du or the local AS.
    """
    union_cone: set[int] = {rib.local_asn}
    union_prefixes: set[str] = set()
    for cone, prefixes in cones.values():
        union_cone |= cone
        union_prefixes |= prefixes
    customer = set(rib.customer_ifaces)
    paths = rib.prefix_paths(union_prefixes)
    return frozenset(p for p in union_prefixes if pi_member(rib, rpki, paths[p], customer, union_cone, p))


def pi_member(
    rib: RouterRib,
    rpki: RpkiView,
    paths: Iterable[BgpPath],
    customer: set[str],
    union_cone: set[int],
    prefix: str,
) -> bool:
    """Steps 3-5 of BAR-SAV-PI for one prefix of Qu, over every path the router holds for it."""
    paths = list(paths)
    cust_paths = [p for p in paths if p.interface in customer]
    if not cust_paths:
        return False
    if any(rpki.rov(prefix, p.origin) is not Rov.VALID for p in cust_paths):
        return False
    if any(rib.verdict(rpki, p) is not PathVerdict.VALID for p in cust_paths):
        return False
    if not rpki.authorized_origins(prefix) <= union_cone:
        return False
    table = rpki.aspa_table
    return all(_providers_inside(table, p.as_path, union_cone) for p in paths)


def _providers_inside(table: dict[int, frozenset[int]], as_path: tuple[int, ...], cone: set[int]) -> bool:
    for asn in as_path:
        providers = table.get(asn)
        if providers is None or not providers <= cone:
            return False
    return True


def unproven(rib: RouterRib, rpki: RpkiView) -> frozenset[str]:
    """Prefixes ASPA cannot place outside any customer cone: those with an origin (of a route the router
    holds, or of a ROA) that is not `RpkiView.attested_up`. Such an origin may be a hidden customer of any
    cone (NO_EXPORT, announcements to some neighbours only), so the default keeps its prefixes permitted on
    every customer interface; ROV is not applied here (an Invalid route only widens the set: fail open)."""
    return split_known(rib, rpki)[0]


def split_known(rib: RouterRib, rpki: RpkiView) -> tuple[frozenset[str], set[str]]:
    """(`unproven`, candidates of `proven_outside`): one pass over the router's paths. The candidates are the
    known prefixes (routed here, or in a ROA) with at least one attested origin; some may be unproven too."""
    attested = rpki.attested_up(rib.local_asn)
    out = set(rpki.unproven_roa_prefixes(rib.local_asn))
    seen: set[str] = set()
    for paths in rib.by_iface.values():
        for p in paths:
            if p.origin in attested:
                seen.add(p.prefix)
            else:
                out.add(p.prefix)
    return frozenset(out), seen | attested_roa_prefixes(rpki, attested)


def attested_roa_prefixes(rpki: RpkiView, attested: Iterable[int]) -> set[str]:
    """ROA prefixes of the attested ASes (candidates of `proven_outside` from the RPKI side)."""
    out: set[str] = set()
    by_asn = rpki.roa_prefixes_by_asn
    for asn in attested:
        out.update(by_asn.get(asn, ()))
    return out


@dataclass(frozen=True, slots=True)
class Proven:
    """The router-wide half of the default's customer blocklist (`RouterRun.auto`).

    P = the known prefixes (routed at the router on any interface, or in a ROA) that are not `unproven`: every
    origin of theirs is attested, so ASPA proves which customer cones they belong to. `blockable` = P minus
    every prefix that contains, equals or lies inside an unproven prefix (blocking it would drop sources that
    every customer allowlist passes: fail open). `overlaps` maps a blockable prefix to the other members of P
    that contain it or lie inside it: an interface whose BAR-SAV list holds one of those must not block it.
    """

    blockable: frozenset[str]
    overlaps: Mapping[str, tuple[str, ...]]


def proven_outside(
    candidates: Iterable[str], unproven_set: frozenset[str], scan_unproven: bool | None = None
) -> Proven:
    """`Proven` from the candidates (known prefixes with an attested origin) and the unproven set U.

    The overlap with U is found from the smaller side, with py-radix (prefixset.py): a tree of P scanned
    with every member of U plus the supernets of each member of P when P is small (partial ASPA deployment,
    the usual case), a tree of U asked about each member of P otherwise. `scan_unproven` forces one side
    (tests check that both agree)."""
    members = PrefixSet(x for x in candidates if x not in unproven_set)
    if not members:
        return Proven(frozenset(), {})
    if scan_unproven is None:
        scan_unproven = len(members) * 16 < len(unproven_set)
    hit: set[str] = set()
    if scan_unproven:
        for x in members:
            if any(s in unproven_set for s in supernets(x)):
                hit.add(x)
        tree = members.tree()
        best, covering = tree.search_best, tree.search_covering
        for u in unproven_set:
            if best(u) is not None:
                hit.update(n.prefix for n in covering(u))
    else:
        u_set = PrefixSet(unproven_set)
        hit = {x for x in members if u_set.overlaps(x)}
    overlaps: dict[str, tuple[str, ...]] = {}
    blockable = frozenset(members.members - hit)
    for x in blockable:
        others = tuple(o for o in members.overlapping(x) if o != x)
        if others:
            overlaps[x] = others
    return Proven(blockable, overlaps)


def overlapping_unproven(prefixes: frozenset[str], unproven_set: frozenset[str],
                         unproven_tree: Callable[[], PrefixSet] | None = None) -> frozenset[str]:
    """The members of `prefixes` that contain, equal or lie inside a member of U: one scan of U, or, for a
    few prefixes against a large U, a lookup of each in a tree of U (`unproven_tree`, built by the caller
    once for many calls: a blocklist one report longer than the last asks about one prefix)."""
    if not prefixes:
        return frozenset()
    if unproven_tree is not None and 8 * len(prefixes) < len(unproven_set):
        tree_u = unproven_tree()
        return frozenset(x for x in prefixes if tree_u.overlaps(x))
    members = PrefixSet(prefixes)
    hit = {x for x in prefixes if x in unproven_set or any(s in unproven_set for s in supernets(x))}
    tree = members.tree()
    best, covering = tree.search_best, tree.search_covering
    for u in unproven_set:
        if best(u) is not None:
            hit.update(n.prefix for n in covering(u))
    return frozenset(hit)


def proven_block(
    proven: Proven, allowed: frozenset[str], acl: Iterable[str], limit: int
) -> frozenset[str] | None:
    """The blocklist of one customer interface whose BAR-SAV list is `allowed` (ACL included): the blockable
    prefixes not in it and overlapping none of its members; None when it has `limit` prefixes or more."""
    overlaps, acl_set = proven.overlaps, PrefixSet(acl)

    def blocked(x: str) -> bool:
        if x in allowed or (x in overlaps and any(o in allowed for o in overlaps[x])):
            return False
        return not (acl_set and acl_set.overlaps(x))

    if len(proven.blockable) > 2 * limit + len(allowed):  # likely too long: stop counting at `limit`
        found: list[str] = []
        for x in proven.blockable:
            if blocked(x):
                found.append(x)
                if len(found) >= limit:
                    return None
        return frozenset(found)
    out = proven.blockable - allowed
    drop = {x for x in out if x in overlaps and any(o in allowed for o in overlaps[x])}
    if acl_set:
        drop.update(x for x in out if acl_set.overlaps(x))
    if len(out) - len(drop) >= limit:
        return None
    return out - drop if drop else out


# --- per-router driver ----------------------------------------------------------------------------------


def compute_router(rib: RouterRib, rpki: RpkiView, policy: Policy) -> dict[str, Outcome]:
    """Every eBGP interface of one router, each with the algorithm the policy picks for it."""
    run = RouterRun(rib, rpki, policy)
    return {
        iface: run.outcome(iface)
        for iface in sorted(rib.neighbors)
        if rib.relationship(iface) is not Relationship.INTERNAL
    }


class RouterRun:
    """One router's computation, caching what several interfaces share (Z of EFP-B, cones, S of PI).

    `outcome` is the one place that maps (relationship, algorithm, RPKI state) to a list; the incremental
    engine subclasses this and overrides only where the shared pieces come from.
    """

    def __init__(self, rib: RouterRib, rpki: RpkiView, policy: Policy) -> None:
        self.rib, self.rpki, self.policy = rib, rpki, policy
        self._strict: dict[str, frozenset[str]] | None = None
        self._efp_a: dict[str, frozenset[str]] | None = None
        self._efp_b: frozenset[str] | None = None
        self._pi: frozenset[str] | None = None
        self._unproven: frozenset[str] | None = None
        self._candidates: set[str] = set()
        self._proven: Proven | None = None
        self._spared: dict[str, bool] = {}
        self._cones: dict[str, tuple[frozenset[int], frozenset[str]]] = {}
        self._d: dict[str, frozenset[int]] | None = None

    def cone(self, iface: str) -> tuple[frozenset[int], frozenset[str]]:
        """BAR-SAV's (D, Q) of one interface; the first call computes every D the router will need, so the
        origin index is built for those ASes only."""
        if iface not in self._cones:
            if self._d is None:
                wanted = [
                    i for i, n in self.rib.neighbors.items()
                    if n.relationship is Relationship.CUSTOMER or (
                        n.relationship in LATERAL
                        and self.policy.algorithm_for(self.rib.router, i) is Algorithm.BAR_SAV
                    )
                ]
                self._d = {i: self._d_of(i) for i in sorted({*wanted, iface})}
                self.rib.prefetch_origins(set().union(*self._d.values()))
            d = self._d[iface] if iface in self._d else self._d_of(iface)
            acl = self.policy.prefix_acl.get((self.rib.router, iface), ())
            self._cones[iface] = (d, cone_prefixes(self.rib, self.rpki, d) | frozenset(acl))
        return self._cones[iface]

    def _d_of(self, iface: str) -> frozenset[int]:
        acl = self.policy.asn_acl.get((self.rib.router, iface), ())
        return customer_cone(self.rib, self.rpki, self.rib.cone_seeds(iface), acl)

    def strict_list(self, iface: str) -> frozenset[str]:
        if self._strict is None:
            self._strict = strict(self.rib)
        return self._strict[iface]

    def feasible_list(self, iface: str) -> frozenset[str]:
        return feasible(self.rib, iface)

    def z(self) -> frozenset[str]:
        if self._efp_b is None:
            self._efp_b = efp_b(self.rib)
        return self._efp_b

    def unproven(self) -> frozenset[str]:
        if self._unproven is None:
            self._unproven, self._candidates = split_known(self.rib, self.rpki)
        return self._unproven

    def spared_memo(self) -> dict[str, bool]:
        """Per prefix, whether it overlaps this U (overlapping_unproven is element-wise: a blocklist that
        changed by one prefix costs one new answer, and every interface shares them)."""
        return self._spared

    def proven(self) -> Proven:
        if self._proven is None:
            u = self.unproven()
            self._proven = proven_outside(self._candidates, u)
            self._candidates = set()
        return self._proven

    def pi(self) -> frozenset[str]:
        if self._pi is None:
            cones = {i: self.cone(i) for i in self.rib.customer_ifaces}
            self._pi = bar_sav_pi_blocklist(self.rib, self.rpki, cones)
        return self._pi

    def outcome(self, iface: str) -> Outcome:
        rib, rpki = self.rib, self.rpki
        rel = rib.relationship(iface)
        algo = self.policy.algorithm_for(rib.router, iface)
        customer = rel is Relationship.CUSTOMER
        if algo is Algorithm.AUTO:
            return self.auto(iface, rel)
        if algo is Algorithm.LOOSE:
            return _loose()
        if algo is Algorithm.STRICT:
            return _allow(self.strict_list(iface), str(algo))
        if algo is Algorithm.FEASIBLE:
            return _allow(self.feasible_list(iface), str(algo))
        if algo in (Algorithm.EFP_A, Algorithm.EFP_B) and not customer:
            return _loose(f"{algo} applies to customer interfaces; loose uRPF here (RFC 8704)")
        if algo is Algorithm.EFP_A:
            if self._efp_a is None:
                self._efp_a = efp_a(rib)
            return _allow(self._efp_a[iface], str(algo))
        if algo is Algorithm.EFP_B:
            return _allow(self.z(), str(algo))
        if not rpki.ready:
            return _loose("fail-open:no-rpki-data (BAR-SAV 6.5.1)")
        if algo is Algorithm.BAR_SAV:
            if rel is Relationship.PROVIDER:
                return _loose("bar-sav applies to customer and lateral-peer interfaces; loose uRPF here")
            return _allow(self.cone(iface)[1], str(algo))
        if rel is not Relationship.PROVIDER:
            return _loose("bar-sav-pi applies to provider interfaces; loose uRPF here")
        return Outcome(ListKind.BLOCK, self.pi(), str(algo))

    def auto(self, iface: str, rel: Relationship) -> Outcome:
        """The default (policy.py): narrow a customer's list only where RPKI proves it, else fail open.

        Without RPKI data every interface is on loose uRPF: RFC 8704's EFP-uRPF B would drop a customer's
        prefix it never sees (NO_EXPORT, limited propagation) and a DSR server's anycast source. With RPKI
        data a customer interface gets the smaller (fewer prefixes; a tie keeps the allowlist) of two rules
        with one intent: the allowlist of BAR-SAV's list Q plus every prefix ASPA cannot place outside the
        cone (`unproven`, U), or the blocklist of the known prefixes (routed here on any interface, or in a
        ROA) outside that allowlist, i.e. those whose origins ASPA all places outside the cone, minus every
        one that contains, equals or lies inside an allowed prefix (`proven_outside`, `proven_block`), so the
        blocklist drops no source the allowlist would pass. The blocklist is strict for the proven-outside
        space and loose-like for the rest: unrouted, unknown source space passes it (the allowlist dropped
        it). With partial ASPA deployment U is most of the table and the blocklist is the short one. Lateral
        peers (and route servers) stay loose; providers get BAR-SAV-PI's blocklist.
        """
        rpki = self.rpki
        if not rpki.ready:
            return Outcome(ListKind.BLOCK, frozenset(), "auto:loose", ("fail-open:no-rpki-data",))
        if rel is Relationship.PROVIDER:
            return Outcome(ListKind.BLOCK, self.pi(), "auto:bar-sav-pi")
        if rel is not Relationship.CUSTOMER:
            return Outcome(ListKind.BLOCK, frozenset(), "auto:loose")
        q = self.cone(iface)[1]
        u = self.unproven()
        q_only = [x for x in q if x not in u]
        n_allow = len(u) + len(q_only)
        acl = self.policy.prefix_acl.get((self.rib.router, iface), ())
        block = proven_block(self.proven(), q, acl, n_allow)
        if block is not None:
            return Outcome(
                ListKind.BLOCK, block, PROVEN_BLOCK,
                (f"allowlist would list {n_allow} prefixes, blocklist {len(block)}: ASPA places the blocked "
                 "origins outside the cone; unknown source space passes",),
                self._spare(u, q, acl),
            )
        if n_allow == len(q):
            return _allow(q, "auto:bar-sav", "ASPA places every other prefix outside the cone")
        both = u if not q_only else u | q  # share U when BAR-SAV adds nothing (memory at 1,000 interfaces)
        return _allow(both, "auto:bar-sav+unproven", "BAR-SAV | prefixes of origins ASPA does not cover")

    def _spare(
        self, u: frozenset[str], q: frozenset[str], acl: Iterable[str]
    ) -> Callable[[frozenset[str]], frozenset[str]]:
        memo = self.spared_memo()
        allowed = PrefixSet(q.union(acl))

        free: dict[str, bool] = {}  # per prefix: overlaps nothing allowed here
        last: list[tuple[frozenset[str], frozenset[str]]] = []   # the previous call: (prefixes, kept)
        u_tree: list[PrefixSet] = []

        def unproven_tree() -> PrefixSet:
            if not u_tree:
                u_tree.append(PrefixSet(u))
            return u_tree[0]

        def judge(prefixes: frozenset[str]) -> frozenset[str]:
            missing = frozenset(x for x in prefixes if x not in memo)
            if missing:
                hit = overlapping_unproven(missing, u, unproven_tree)
                memo.update((x, x in hit) for x in missing)
            for x in prefixes:
                if x not in free:
                    free[x] = not allowed.overlaps(x)
            return frozenset(x for x in prefixes if not memo[x] and free[x])

        def keep(prefixes: frozenset[str]) -> frozenset[str]:
            """Element-wise, so a blocklist one report away from the last one is judged by its difference
            (set operations in C) rather than prefix by prefix."""
            kept = judge(prefixes - last[0][0]) | (last[0][1] & prefixes) if last else judge(prefixes)
            last[:] = [(prefixes, kept)]
            return kept

        return keep
