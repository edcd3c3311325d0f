"""One border router's inter-domain state, kept current path by path (the incremental half of inter.py).

`LiveRouter` holds the router's Adj-RIBs-In as counters and the pieces several interfaces share: EFP-uRPF B's
list Z (kept by counting customer origins, RFC 8704 section 3.4 steps 2-5), BAR-SAV's AS_PATH customer pairs,
each interface's cone D and list Q, the union cone and BAR-SAV-PI's set S, strict uRPF's best interface per
prefix, and the default's set U of prefixes whose origin ASPA does not place (inter.unproven: a routed prefix
is in it unless all its paths have attested origins, counted per prefix; the ROA part is the RPKI view's) with
the default's blocklist candidates (inter.proven_outside, rebuilt lazily once U or the known prefixes move;
such a move touches every `auto` customer interface, the one choosing between allow- and blocklist). A path
change touches only its prefix, its origin and its AS pairs; the expensive pieces (a cone, S) are rebuilt only
when a pair inside a cone appears or disappears (or, behind a route server, a client). EFP-uRPF A has no cheap
update, so a router with an efp-a interface is recomputed whole on each change. The decision table itself is
inter.RouterRun: `LiveRun` only says where the shared pieces come from, so the incremental and the full
computation cannot drift apart. Pure, no I/O.
"""

from __future__ import annotations

from collections import Counter, _count_elements  # type: ignore[attr-defined]
from collections.abc import Iterable
from itertools import pairwise
from typing import TypeVar

from appliance.engine.aspa import Authorization, PathVerdict, authorized, compress
from appliance.engine.inter import (
    Outcome,
    Proven,
    RouterRun,
    attested_roa_prefixes,
    compute_router,
    expand_cone,
    pi_member,
    proven_outside,
)
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.rib import LATERAL, RouterRib, Rov, RpkiView, neighbors_by_interface, path_verdict
from appliance.model import BgpPath, Neighbor, Relationship, Router

__all__ = ["LiveRouter", "PathKey", "Slot", "slot_paths"]

K = TypeVar("K")
PathKey = tuple[str, int]  # (interface, path_id) within one prefix
# A prefix's paths: the bare path when it has one (most prefixes of a full table: a dict each cost
# ~110 MiB and ~0.3 s at 1M paths); a tuple of paths with distinct PathKeys as the bulk load leaves
# several (a quarter of the size of a dict); a dict by PathKey once a path change has touched the prefix
Slot = BgpPath | tuple[BgpPath, ...] | dict[PathKey, BgpPath]


def slot_paths(slot: Slot | None) -> Iterable[BgpPath]:
    if slot is None:
        return ()
    if isinstance(slot, BgpPath):
        return (slot,)
    return slot if isinstance(slot, tuple) else slot.values()


def _slot_keys(slot: Slot | None) -> Iterable[PathKey]:
    if slot is None:
        return ()
    if isinstance(slot, BgpPath):
        return ((slot.interface, slot.path_id),)
    return ((p.interface, p.path_id) for p in slot) if isinstance(slot, tuple) else slot.keys()


def _slot_len(slot: Slot | None) -> int:
    if slot is None:
        return 0
    return 1 if isinstance(slot, BgpPath) else len(slot)


def _slot_add(slot: tuple[BgpPath, ...] | dict[PathKey, BgpPath], p: BgpPath) -> Slot:
    """`slot` with `p` added (the bulk load's third and later path of one prefix): a tuple while the keys
    stay distinct, else the dict form with `p` in place of the path it replaces."""
    key = (p.interface, p.path_id)
    if isinstance(slot, tuple):
        if all((q.interface, q.path_id) != key for q in slot):
            return (*slot, p)
        slot = {(q.interface, q.path_id): q for q in slot}
    slot[key] = p
    return slot


_PREF = {
    Relationship.CUSTOMER: 0,
    Relationship.PEER: 1,
    Relationship.ROUTE_SERVER: 1,
    Relationship.PROVIDER: 2,
    Relationship.INTERNAL: 3,
}


def _bump(counter: Counter[K], key: K, delta: int) -> bool:
    """Add `delta`; True when the key appeared or disappeared."""
    before = counter[key]
    after = before + delta
    if after:
        counter[key] = after
    else:
        del counter[key]
    return (before == 0) != (after == 0)


class LiveRouter:
    """Incremental inter-domain state of one router; `apply_path` returns the interfaces that changed."""

    def __init__(
        self, router: Router, neighbors: Iterable[Neighbor], rpki: RpkiView, policy: Policy
    ) -> None:
        self.router = router
        self.rpki = rpki
        self.policy = policy
        self.neighbors = neighbors_by_interface(neighbors)
        self.shell = RouterRib(router.name, router.asn, self.neighbors, ())
        self.algos = {i: policy.algorithm_for(router.name, i) for i in self.neighbors}
        self.customer = {i for i, n in self.neighbors.items() if n.relationship is Relationship.CUSTOMER}
        lateral_or_up = (*LATERAL, Relationship.PROVIDER)
        self.noncustomer = {i for i, n in self.neighbors.items() if n.relationship in lateral_or_up}
        self.rs_ifaces = {
            i for i, n in self.neighbors.items() if n.relationship is Relationship.ROUTE_SERVER
        }
        self.attested = rpki.attested_up(router.asn) if rpki.ready else frozenset()
        self.whole = any(a is Algorithm.EFP_A for a in self.algos.values())
        self.uses_strict = any(a is Algorithm.STRICT for a in self.algos.values())
        self.paths: dict[str, Slot] = {}
        self._reset_indexes()

    # --- building -------------------------------------------------------------------------------------

    def _reset_indexes(self) -> None:
        self.origin_prefixes: dict[int, Counter[str]] = {}
        self.cust_prefixes: Counter[str] = Counter()
        self.cust_origins: Counter[int] = Counter()
        self.q_count: Counter[str] = Counter()
        self.z: set[str] = set()
        self.pair_count: Counter[tuple[int, int]] = Counter()
        self.pairs: dict[int, set[int]] = {}
        self.strict_best: dict[str, str] = {}
        self.strict_sets: dict[str, set[str]] = {i: set() for i in self.neighbors}
        self.cones: dict[str, frozenset[int]] = {}
        self.q: dict[str, set[str]] = {}
        self.rs_first: dict[str, Counter[int]] = {i: Counter() for i in self.rs_ifaces}
        # paths per prefix whose origin is attested (inter.unproven's set U is every prefix with a path of
        # another origin: fewer than its slot's paths counted here); kept with RPKI data only
        self.a_count: Counter[str] = Counter()
        # origin -> prefix lists of the bulk load, turned into `origin_prefixes[origin]` on first use
        # (a cone or a path change of that origin asks): most origins of a full table are never asked for
        self._origin_lists: dict[int, list[list[str]]] = {}
        self._u_frozen: frozenset[str] | None = None
        self._proven: Proven | None = None
        self.spared: dict[str, bool] = {}  # per prefix: overlaps U (inter.RouterRun.spared_memo)
        self.as_to_ifaces: dict[int, set[str]] = {}
        self.qu: Counter[str] = Counter()
        self.du: set[int] = set()
        self.s: set[str] = set()
        self._whole: dict[str, Outcome] = {}
        self._outcomes: dict[str, Outcome] = {}  # LiveRun outcomes until the next path or RPKI change

    def load(self, paths: Iterable[BgpPath]) -> list[BgpPath]:
        """Replace every path and rebuild all state (the full computation, done once). Returns the paths
        left out: those on an interface without a neighbour."""
        self.paths = {}
        self._reset_indexes()
        table = self.paths
        get = table.get
        neighbors = self.neighbors
        left_out: list[BgpPath] = []
        # the counters depend on a path's interface, AS_PATH and AS_SET only: group its prefixes by those
        # while storing it, so `_bulk_index` works per group (~10x fewer than paths on a full table)
        groups: dict[tuple[str, tuple[int, ...], tuple[int, ...]], list[str]] = {}
        replaced = False
        for p in paths:
            iface = p.interface
            if iface not in neighbors:
                left_out.append(p)
                continue
            prefix = p.prefix
            slot = get(prefix)
            if slot is None:
                table[prefix] = p
            elif type(slot) is BgpPath:
                if slot.interface == iface and slot.path_id == p.path_id:
                    table[prefix] = p  # a later path replaces the one under the same key
                    replaced = True
                else:
                    table[prefix] = (slot, p)
            else:
                assert not isinstance(slot, BgpPath)
                new = table[prefix] = _slot_add(slot, p)
                replaced = replaced or type(new) is dict
            group_key = (iface, p.as_path, p.as_set)
            group = groups.get(group_key)
            if group is None:
                groups[group_key] = [prefix]
            else:
                group.append(prefix)
        if self.whole:
            self._recompute_whole()
            return left_out
        if replaced:  # a later path replaced an earlier one: regroup
            groups = {}
            for slot in table.values():
                for p in slot_paths(slot):
                    groups.setdefault((p.interface, p.as_path, p.as_set), []).append(p.prefix)
        self._bulk_index(groups)
        if self.uses_strict:
            for prefix in self.paths:
                self._restrict(prefix)
        self._rebuild_cones(set(self._cone_ifaces()), initial=True)
        return left_out

    def _cone_ifaces(self) -> list[str]:
        """Interfaces whose BAR-SAV cone is needed: every customer (BAR-SAV-PI, auto) and bar-sav peers."""
        if not self.rpki.ready:
            return []
        out = sorted(self.customer)
        out += sorted(
            i for i, a in self.algos.items()
            if a is Algorithm.BAR_SAV and self.neighbors[i].relationship in LATERAL
        )
        return out

    def _recompute_whole(self) -> None:
        rib = RouterRib(self.router.name, self.router.asn, self.neighbors, self.all_paths())
        self._whole = compute_router(rib, self.rpki, self.policy)

    def all_paths(self) -> list[BgpPath]:
        return [p for slot in self.paths.values() for p in slot_paths(slot)]

    def paths_at(self, prefix: str) -> Iterable[BgpPath]:
        """The paths the router holds for `prefix`."""
        return slot_paths(self.paths.get(prefix))

    # --- per-path index maintenance ---------------------------------------------------------------------

    def _bulk_index(self, groups: dict[tuple[str, tuple[int, ...], tuple[int, ...]], list[str]]) -> None:
        """The counters of `_index` for every loaded path at once, from the paths' prefixes grouped by
        (interface, AS_PATH, AS_SET): everything `_index` counts depends on those and the prefix only, so
        each group costs a few Counter updates in C (`_count_elements`: Counter.update's own C loop,
        without its isinstance(Mapping) check, ~1 us per call and ~100k calls on a full table). Only the
        few attested-origin paths are counted per prefix (`a_count`), and origin -> prefixes is kept as the
        groups' lists until an origin is asked for (`_origin_counter`). EFP-B's set A needs all customer
        paths before the peer/provider paths can be counted, hence two passes."""
        lateral_or_up: list[tuple[int, list[str]]] = []
        unique: dict[tuple[tuple[int, ...], tuple[int, ...], Relationship, int], int] = {}
        neighbor_key = {i: (n.relationship, n.asn) for i, n in self.neighbors.items()}
        cust_ifaces, noncustomer = self.customer, self.noncustomer
        track_a = self.rpki.ready
        attested = self.attested
        origin_lists = self._origin_lists
        rs_ifaces = self.rs_ifaces
        for (iface, as_path, as_set), prefixes in groups.items():
            origin = 0 if as_set else (as_path[-1] if as_path else 0)
            n = len(prefixes)
            if track_a and origin in attested:
                _count_elements(self.a_count, prefixes)
            if rs_ifaces and as_path and iface in rs_ifaces:
                self.rs_first[iface][as_path[0]] += n
            lists = origin_lists.get(origin)
            if lists is None:
                origin_lists[origin] = [prefixes]
            else:
                lists.append(prefixes)
            if iface in cust_ifaces:
                _count_elements(self.cust_prefixes, prefixes)
                self.cust_origins[origin] += n
            elif iface in noncustomer:
                lateral_or_up.append((origin, prefixes))
            key = (as_path, as_set, *neighbor_key[iface])
            unique[key] = unique.get(key, 0) + n
        if self.rpki.ready:  # _count_pairs in bulk: weighted counts first, the pair index once after
            pair_count = self.pair_count
            for (as_path, as_set, rel, asn), n in unique.items():
                for pair in self._trusted_pairs(as_path, rel, asn, as_set):
                    pair_count[pair] = pair_count.get(pair, 0) + n
            for provider, customer in pair_count:
                self.pairs.setdefault(provider, set()).add(customer)
        for origin, prefixes in lateral_or_up:
            if origin in self.cust_origins:
                _count_elements(self.q_count, prefixes)
        self.z = set(self.cust_prefixes) | set(self.q_count)

    def _origin_counter(self, origin: int) -> Counter[str] | None:
        """`origin_prefixes[origin]`, made from the bulk load's prefix lists when first asked for."""
        lists = self._origin_lists.pop(origin, None)
        if lists is not None:
            counter: Counter[str] = Counter()
            for prefixes in lists:
                _count_elements(counter, prefixes)
            self.origin_prefixes[origin] = counter
            return counter
        return self.origin_prefixes.get(origin)

    def prefixes_of(self, origin: int) -> Iterable[str]:
        """The prefixes the router holds a path for from `origin`."""
        return self._origin_counter(origin) or ()

    def _lateral_count(self, prefix: str, origin: int) -> int:
        """Peer/provider paths the router holds for `prefix` from `origin` (EFP-B's set Q)."""
        paths = self.paths_at(prefix)
        return sum(1 for p in paths if p.origin == origin and p.interface in self.noncustomer)

    def origins_of(self, prefix: str) -> set[int]:
        return {p.origin for p in self.paths_at(prefix)}

    def _index(self, p: BgpPath, d: int) -> tuple[set[str], list[tuple[int, int]]]:
        """Update the counters for one path already added to (or removed from) `paths`; return EFP-B's Z
        flips and the AS pairs that appeared or vanished."""
        x, o, iface = p.prefix, p.origin, p.interface
        op = self._origin_counter(o)
        if op is None:
            op = self.origin_prefixes[o] = Counter()
        if _bump(op, x, d) and not op:
            del self.origin_prefixes[o]
        z_flips: set[str] = set()
        if iface in self.customer:
            _bump(self.cust_prefixes, x, d)
            z_flips.add(x)
            before = self.cust_origins[o]
            self.cust_origins[o] += d
            if not self.cust_origins[o]:
                del self.cust_origins[o]
            if (before == 0) != (self.cust_origins[o] == 0):  # o joined or left set A
                for q in list(self.prefixes_of(o)):
                    n = self._lateral_count(q, o)
                    if n:
                        _bump(self.q_count, q, n if before == 0 else -n)
                        z_flips.add(q)
        elif iface in self.noncustomer and o in self.cust_origins:
            _bump(self.q_count, x, d)
            z_flips.add(x)
        flipped = {q for q in z_flips if (q in self.z) != (q in self.cust_prefixes or q in self.q_count)}
        for q in flipped:
            if q in self.z:
                self.z.discard(q)
            else:
                self.z.add(q)
        return flipped, self._index_pairs(p, d)

    def _index_pairs(self, p: BgpPath, d: int) -> list[tuple[int, int]]:
        nb = self.neighbors[p.interface]
        return self._count_pairs(p.as_path, nb.relationship, d, nb.asn, p.as_set)

    def _trusted_pairs(
        self, as_path: tuple[int, ...], rel: Relationship, neighbor_as: int, as_set: tuple[int, ...]
    ) -> list[tuple[int, int]]:
        """The (provider, customer) pairs one AS_PATH vouches for: none when ASPA verification finds the
        path Invalid, and only the hops not proven NOT_PROVIDER_PLUS. Depends on the path, its AS_SET, the
        neighbour's relationship and AS."""
        table = self.rpki.aspa_table
        path = compress(as_path)
        if table.keys().isdisjoint(path):
            # no AS on the path holds an ASPA: every hop is NoAttestation, so aspa.verify_* can only find
            # it Invalid by the checks before the ramps (empty, neighbour AS, AS_SET), and every pair counts
            check = neighbor_as if neighbor_as and rel is not Relationship.INTERNAL else None
            if not path or as_set or (
                check is not None and rel is not Relationship.ROUTE_SERVER and path[0] != check
            ):
                return []
            return list(pairwise(path))
        if path_verdict(table, as_path, rel, neighbor_as, as_set) is PathVerdict.INVALID:
            return []
        return [(path[k], path[k + 1]) for k in range(len(path) - 1)
                if authorized(table, path[k + 1], path[k]) is not Authorization.NOT_PROVIDER_PLUS]

    def _count_pairs(
        self,
        as_path: tuple[int, ...],
        rel: Relationship,
        d: int,
        neighbor_as: int = 0,
        as_set: tuple[int, ...] = (),
    ) -> list[tuple[int, int]]:
        """Count the trusted customer pairs of one AS_PATH `d` times; return the pairs that (dis)appeared."""
        if not self.rpki.ready:
            return []
        changed: list[tuple[int, int]] = []
        for pair in self._trusted_pairs(as_path, rel, neighbor_as, as_set):
            provider, customer = pair
            before = self.pair_count[pair]
            self.pair_count[pair] = before + d
            if not self.pair_count[pair]:
                del self.pair_count[pair]
                self.pairs[provider].discard(customer)
                if not self.pairs[provider]:
                    del self.pairs[provider]
                changed.append(pair)
            elif before == 0:
                self.pairs.setdefault(provider, set()).add(customer)
                changed.append(pair)
        return changed

    def _restrict(self, prefix: str) -> set[str]:
        """Re-elect strict uRPF's best interface for one prefix; return the interfaces that changed."""
        best: tuple[tuple[int, int, str, int], str] | None = None
        for p in self.paths_at(prefix):
            rel = self.neighbors[p.interface].relationship
            key = (_PREF[rel], len(compress(p.as_path)), p.interface, p.path_id)
            if best is None or key < best[0]:
                best = (key, p.interface)
        old = self.strict_best.get(prefix)
        new = best[1] if best else None
        if old == new:
            return set()
        if old is not None:
            self.strict_sets[old].discard(prefix)
            del self.strict_best[prefix]
        if new is not None:
            self.strict_sets[new].add(prefix)
            self.strict_best[prefix] = new
        return {i for i in (old, new) if i is not None}

    # --- cones, Q and S ----------------------------------------------------------------------------------

    def _q_member(self, iface: str, prefix: str) -> bool:
        cone = self.cones[iface]
        if prefix in self.policy.prefix_acl.get((self.router.name, iface), ()):
            return True
        if any(v_asn in cone and v_asn != 0 for v_asn in self._roa_asns(prefix)):
            return True
        return any(
            o in cone and (not self.rpki.vrps or self.rpki.rov(prefix, o) is not Rov.INVALID)
            for o in self.origins_of(prefix)
        )

    def _roa_asns(self, prefix: str) -> Iterable[int]:
        return self.rpki.roa_asns(prefix)

    def _set_q(self, iface: str, new: set[str]) -> set[str]:
        old = self.q.get(iface, set())
        flips = old ^ new
        if iface in self.customer:
            for x in old - new:
                _bump(self.qu, x, -1)
            for x in new - old:
                _bump(self.qu, x, +1)
        self.q[iface] = new
        return flips

    def _rebuild_cones(self, ifaces: set[str], initial: bool = False) -> set[str]:
        """Recompute D, Q and coverage for `ifaces`; rebuild S when the union cone moved. Returns changes."""
        changed: set[str] = set()
        q_flips: set[str] = set()
        for i in sorted(ifaces):
            old = self.cones.get(i)
            for asn in old or ():
                self.as_to_ifaces[asn].discard(i)
            acl = self.policy.asn_acl.get((self.router.name, i), ())
            cone = expand_cone(self.pairs, self.rpki, (*self._seeds(i), *acl))
            self.cones[i] = cone
            for asn in cone:
                self.as_to_ifaces.setdefault(asn, set()).add(i)
            flips = self._set_q(i, self._q_of(i, cone))
            if flips or old != cone:
                changed.add(i)
            if i in self.customer:
                q_flips |= flips
        du = {self.router.asn}
        for i in self.customer:
            du |= self.cones.get(i, frozenset())
        if du != self.du or initial:
            self.du = du
            new_s = {x for x in self.qu if self._s_member(x)}
            if new_s != self.s:
                self.s = new_s
                changed |= self._pi_ifaces()
        elif q_flips:
            changed |= self._recheck_s(q_flips)
        return changed

    def _seeds(self, iface: str) -> tuple[int, ...]:
        """RouterRib.cone_seeds from the counters: the neighbour AS, and behind a route server its clients."""
        asn = self.neighbors[iface].asn
        first = self.rs_first.get(iface)
        return (asn, *sorted(first)) if first is not None else (asn,)

    def _q_of(self, iface: str, cone: frozenset[int]) -> set[str]:
        """BAR-SAV's Q for one interface: its ACL, the cone's ROA prefixes and its routes not ROV-Invalid."""
        prefixes: set[str] = set(self.policy.prefix_acl.get((self.router.name, iface), ()))
        for asn in cone:
            prefixes |= self.rpki.roa_prefixes_by_asn.get(asn, frozenset())
            prefixes |= {
                x for x in self.prefixes_of(asn)
                if not self.rpki.vrps or self.rpki.rov(x, asn) is not Rov.INVALID
            }
        return prefixes

    def _s_member(self, prefix: str) -> bool:
        if prefix not in self.qu:
            return False
        paths = self.paths_at(prefix)
        return pi_member(self.shell, self.rpki, paths, self.customer, self.du, prefix)

    def _recheck_s(self, prefixes: Iterable[str]) -> set[str]:
        flipped = False
        for x in prefixes:
            member = self._s_member(x)
            if member != (x in self.s):
                flipped = True
                if member:
                    self.s.add(x)
                else:
                    self.s.discard(x)
        return self._pi_ifaces() if flipped else set()

    def _pi_ifaces(self) -> set[str]:
        return {
            i for i, a in self.algos.items()
            if a in (Algorithm.AUTO, Algorithm.BAR_SAV_PI)
            and self.neighbors[i].relationship is Relationship.PROVIDER
        }

    def _z_users(self) -> set[str]:
        return {i for i in self.customer if self.algos[i] is Algorithm.EFP_B}

    def _u_users(self) -> set[str]:
        """Interfaces whose list holds U: customers on `auto` with RPKI data."""
        if not self.rpki.ready:
            return set()
        return {i for i in self.customer if self.algos[i] is Algorithm.AUTO}

    def u_member(self, prefix: str) -> bool:
        return (
            self.rpki.ready and _slot_len(self.paths.get(prefix)) > self.a_count.get(prefix, 0)
        ) or prefix in self.rpki.unproven_roa_prefixes(self.router.asn)

    def u_members(self, prefixes: Iterable[str]) -> dict[str, bool]:
        """U membership of `prefixes` now (asked before the VRP index is patched, see refresh_rpki)."""
        if not self._u_users():
            return {}
        return {x: self.u_member(x) for x in prefixes}

    def unproven(self) -> frozenset[str]:
        if self._u_frozen is None:
            # a prefix is in U when a path of it has an origin not attested: every routed prefix without an
            # attested-origin path, and those with fewer attested-origin paths than paths
            a_count, paths = self.a_count, self.paths
            routed: set[str] = set()
            if self.rpki.ready:  # (paths are counted with RPKI data only)
                routed = paths.keys() - a_count.keys()
                routed.update(x for x, n in a_count.items() if _slot_len(paths.get(x)) > n)
            self._u_frozen = frozenset(routed | self.rpki.unproven_roa_prefixes(self.router.asn))
        return self._u_frozen

    def proven(self) -> Proven:
        """inter.proven_outside of the current state; kept until U or the known prefixes move."""
        if self._proven is None:
            candidates = attested_roa_prefixes(self.rpki, self.attested)
            for asn in self.attested:
                candidates.update(self.prefixes_of(asn))
            self._proven = proven_outside(candidates, self.unproven())
        return self._proven

    def refresh_rpki(self, rpki: RpkiView, u_before: dict[str, bool] | None = None) -> set[str]:
        """Take a view whose VRPs changed (ASPAs, readiness and VRP presence unchanged): the cones stand,
        every Q and S are recomputed from them. `u_before` is `u_members` of the changed VRP prefixes asked
        before the change (U's ROA part moves with them). Returns the interfaces whose list moved."""
        self.rpki = rpki
        self._u_frozen = None
        self._proven = None
        self.spared = {}
        self._outcomes = {}
        if self.whole:
            previous = self._whole
            self._recompute_whole()
            return {i for i in self.neighbors if previous.get(i) != self._whole.get(i)}
        changed: set[str] = set()
        for i in sorted(self.cones):
            if self._set_q(i, self._q_of(i, self.cones[i])):
                changed.add(i)
        new_s = {x for x in self.qu if self._s_member(x)}
        if new_s != self.s:
            self.s = new_s
            changed |= self._pi_ifaces()
        if u_before is None or u_before:  # a moved ROA prefix may be known, proven or unproven now
            changed |= self._u_users()
        return changed

    # --- events ---------------------------------------------------------------------------------------

    def apply_path(self, path: BgpPath, add: bool) -> set[str]:
        """Add (or withdraw) one path; a path with the same (interface, path_id) is replaced."""
        if path.interface not in self.neighbors:
            return set()
        self._outcomes = {}
        slot = self.paths.get(path.prefix)
        per = slot if isinstance(slot, dict) else dict(zip(_slot_keys(slot), slot_paths(slot), strict=True))
        self.paths[path.prefix] = per  # the dict form while _after reads it
        key = (path.interface, path.path_id)
        old = per.get(key)
        changed: set[str] = set()
        if old is not None:
            del per[key]
            changed |= self._after(old, -1)
        if add:
            per[key] = path
            changed |= self._after(path, +1)
        if not per:
            self.paths.pop(path.prefix, None)
        elif len(per) == 1:
            self.paths[path.prefix] = next(iter(per.values()))
        return changed

    def _after(self, p: BgpPath, d: int) -> set[str]:
        if self.whole:
            previous = self._whole
            self._recompute_whole()
            moved = {i for i in self.neighbors if previous.get(i) != self._whole.get(i)}
            return moved | {p.interface}
        changed: set[str] = {p.interface}  # its provenance lists the interface's own paths
        x = p.prefix
        on_iface = sum(1 for k in _slot_keys(self.paths.get(x)) if k[0] == p.interface)
        feasible_flip = on_iface == (1 if d > 0 else 0)
        z_flips, pair_flips = self._index(p, d)
        if self.rpki.ready:
            # U (inter.unproven) or the known prefixes moved: every auto customer list may move (the
            # allowlist holds U, the blocklist the known prefixes outside it)
            if p.origin in self.attested:
                _bump(self.a_count, x, d)
                u_flip = False
            else:  # paths of x whose origin is not attested, after the change: 1 = x joined U, 0 = it left
                others = _slot_len(self.paths.get(x)) - self.a_count.get(x, 0)
                u_flip = (
                    others == (1 if d > 0 else 0)
                    and x not in self.rpki.unproven_roa_prefixes(self.router.asn)  # else U holds x anyway
                )
            if u_flip:
                self._u_frozen = None
            known_flip = _slot_len(self.paths.get(x)) == (1 if d > 0 else 0)
            if u_flip or (known_flip and not self.u_member(x)):
                self._proven = None
                self.spared = {}
                changed |= self._u_users()
        first = self.rs_first.get(p.interface)
        rs_moved = first is not None and bool(p.as_path) and _bump(first, p.as_path[0], d)
        if feasible_flip and self.algos[p.interface] is Algorithm.FEASIBLE:
            changed.add(p.interface)
        if self.uses_strict:
            changed |= {i for i in self._restrict(x) if self.algos[i] is Algorithm.STRICT}
        if z_flips:
            changed |= self._z_users()
        if not self.cones:
            return changed
        affected: set[str] = {p.interface} if rs_moved and p.interface in self.cones else set()
        for provider, _ in pair_flips:
            affected |= self.as_to_ifaces.get(provider, set())
        if affected:
            changed |= self._rebuild_cones(affected)
        q_flips: set[str] = set()
        for i in sorted(self.as_to_ifaces.get(p.origin, set()) - affected):
            member = self._q_member(i, x)
            if member != (x in self.q[i]):
                new = set(self.q[i])
                if member:
                    new.add(x)
                else:
                    new.discard(x)
                self._set_q(i, new)
                changed.add(i)
                if i in self.customer:
                    q_flips.add(x)
        if x in self.qu or x in self.s:
            changed |= self._recheck_s({x})
        elif q_flips:
            changed |= self._recheck_s(q_flips)
        return changed

    # --- results ------------------------------------------------------------------------------------------

    def outcome(self, iface: str) -> Outcome:
        """The interface's inter-domain outcome, kept while paths and RPKI stand: a report change
        re-merges an external interface's rule with it, and its `spare` memo (the proven-block
        interfaces' per-prefix answers) then survives from one report to the next."""
        if self.whole:
            return self._whole[iface]
        out = self._outcomes.get(iface)
        if out is None:
            out = self._outcomes[iface] = LiveRun(self).outcome(iface)
        return out

    def outcomes(self) -> dict[str, Outcome]:
        if self.whole:
            return dict(self._whole)
        run = LiveRun(self)
        return {
            i: run.outcome(i)
            for i in sorted(self.neighbors)
            if self.neighbors[i].relationship is not Relationship.INTERNAL
        }


class LiveRun(RouterRun):
    """inter.RouterRun reading the shared pieces from a LiveRouter instead of recomputing them."""

    def __init__(self, live: LiveRouter) -> None:
        super().__init__(live.shell, live.rpki, live.policy)
        self.live = live
        self._z_frozen: frozenset[str] | None = None

    def z(self) -> frozenset[str]:
        if self._z_frozen is None:
            self._z_frozen = frozenset(self.live.z)
        return self._z_frozen

    def cone(self, iface: str) -> tuple[frozenset[int], frozenset[str]]:
        return self.live.cones[iface], frozenset(self.live.q[iface])

    def unproven(self) -> frozenset[str]:
        return self.live.unproven()

    def proven(self) -> Proven:
        return self.live.proven()

    def spared_memo(self) -> dict[str, bool]:
        return self.live.spared

    def pi(self) -> frozenset[str]:
        return frozenset(self.live.s)

    def strict_list(self, iface: str) -> frozenset[str]:
        return frozenset(self.live.strict_sets[iface])

    def feasible_list(self, iface: str) -> frozenset[str]:
        return frozenset(x for x, slot in self.live.paths.items()
                         if any(k[0] == iface for k in _slot_keys(slot)))
