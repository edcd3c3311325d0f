"""Reference scenarios (reference/sav-algorithms.md section 2) as data: build, run, score, check verdicts.

A scenario names ASes (`AS3`) and prefixes (`P1`) symbolically, like the documents; `Resolver` maps ASn to
the private ASN 65000+n and each P-name to its own 198.18.k.0/24 (literal CIDRs stay literal), so the
scenarios run with lab-safe numbers. Every validating AS is one border router named after it (`AS4`), with
one interface per neighbour named after that neighbour (`AS4/AS2`); intra-domain scenarios list routers,
interfaces and reports. Unknown keys anywhere are errors (ScenarioError naming the file and the key path).

Inter-domain keys (`kind: inter`, the default):

    validating: [AS4, AS2]      # the ASes that deploy SAV (one router each); or `local_as: AS4` for one
    neighbors: {AS3: customer}  # the single validating AS's neighbours: customer|peer|provider|route-server
    rel:                        # relationships of the whole scenario (they make no ASPA, no RPKI readiness)
      - [AS1, AS2, c2p]         #   AS1 is a customer of AS2
      - [AS2, AS3, p2p]         #   lateral peers
      - [AS4, AS9, rs]          #   AS4 is a client of route server AS9 (which does not prepend its AS)
    originate:                  # announcements spread along `rel`, Gao-Rexford style: customer routes go to
      - as: AS1                 #   everyone, peer/provider routes to customers only; best = customer > peer
        pfx: [P1]               #   > provider, then the shorter path, then the lower sender
        to: [AS3]               # only to these neighbours of the origin (default: all)
        no_export: [AS3]        # NO_EXPORT towards them (true: all): the receiver does not pass it on
        prepend: {AS2: 2}       # extra copies of the origin AS towards a neighbour
        as_set: [AS7, AS8]      # an aggregate's AS_SET (ASPA verification: Invalid)
    ann:                        # routes as received, on top of what `originate` produces; `at` (default: the
      - {at: AS4, from: AS2, pfx: P1, path: [AS2, AS1], as_set: []}   # only validating AS) must validate
    roas: [[P1, AS1]]           # ROAs (max length = prefix length)
    aspas: {AS1: [AS2, AS3]}    # ASPAs; `aspas_from_rel: [AS1, ..]` derives them from `rel` (AS0 at the top)
    rpki_ready: true            # RPKI data present even without ROAs/ASPAs
    universe_extra: [P9]        # spoofable sources besides the named prefixes
    legit: {AS4/AS2: [P1]}      # legitimate sources per interface (`AS2` alone with one validating AS)
    expected: {efp-b: {AS2: [P1], AS3: {block: []}}}   # exact lists per algorithm (+ `delivery`)
    expect:                     # traffic per algorithm, router, interface: sources that pass / are dropped
      auto: {AS4: {AS2: {pass: [P1], drop: [P6]}}}
    verdicts: [{algorithm: [efp-b, auto], outcome: works-best, quote: "..."}]
    expected_cone: {AS3: [AS1, AS3]}   # BAR-SAV's AS-set D per interface
    algorithms: [..]; prefixes: {P1: 192.0.2.0/24}; id; src; description

Intra-domain keys (`kind: intra`): routers {name: {role, capability}}, external [router/iface], reports
[{at: router/iface, pfx, subnet, anycast, special}], and universe_extra, legit, expected, expect, verdicts.

Algorithms: the policy names, and `auto-no-rpki` (the default with every ROA and ASPA removed and no RPKI
data): the default must never block improperly with or without RPKI data. `score` counts, for each interface
with a stated legitimate set, improper blocks (legitimate prefixes the rule drops) and improper permits (the
scenario's other prefixes the rule lets in). `check_verdicts` turns the documents' verdicts into assertions:
`improper-block` (> 0 blocks), `works` (0 blocks), `works-best` (0 blocks and the fewest permits among the
algorithms that work), `improper-permit` (0 blocks, > 0 permits). Pure: the caller reads the files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.engine.inter import customer_cone
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.prefixset import PrefixSet, subtract_space
from appliance.engine.rib import RouterRib
from appliance.engine.snapshot import Snapshot, compute
from appliance.errors import InputError
from appliance.model import (
    Aspa,
    BgpPath,
    Capability,
    Interface,
    InterfaceRules,
    ListKind,
    Neighbor,
    PrefixFlags,
    PrefixReport,
    Relationship,
    Role,
    Router,
    SavRuleSet,
    Vrp,
    canonical_prefix,
    prefix_family,
)

__all__ = [
    "Scenario",
    "ScenarioError",
    "Score",
    "check_verdicts",
    "expect_mismatches",
    "problems",
    "run_scenario",
    "score",
    "validate",
]

NO_RPKI = "auto-no-rpki"
INTER_ALGORITHMS = ("strict", "feasible", "loose", "efp-a", "efp-b", "bar-sav", "bar-sav-pi", "auto", NO_RPKI)
INTRA_ALGORITHMS = ("strict", "loose", "auto")
DEFAULTS = ("auto", NO_RPKI)


class ScenarioError(InputError, ValueError):
    """A scenario file that cannot be understood; the message names the scenario and the field."""


@dataclass(frozen=True, slots=True)
class Score:
    algorithm: str
    improper_block: int
    improper_permit: int
    blocked: tuple[str, ...]
    permitted: tuple[str, ...]


# --- the format: every key a scenario may hold ---------------------------------------------------------

_ANY = None
_LIST_OR_MAP = ("either", {"allow": _ANY, "block": _ANY, "delivery": _ANY})
_SCHEMA: dict[str, Any] = {
    "id": _ANY, "src": _ANY, "description": _ANY, "kind": _ANY, "algorithms": _ANY, "prefixes": ("map", _ANY),
    "local_as": _ANY, "validating": _ANY, "neighbors": ("map", _ANY), "rel": ("list", _ANY),
    "originate": ("list", {
        "as": _ANY, "pfx": _ANY, "to": _ANY, "no_export": _ANY, "prepend": ("map", _ANY), "as_set": _ANY,
        "note": _ANY,
    }),
    "ann": ("list", {"at": _ANY, "from": _ANY, "pfx": _ANY, "path": _ANY, "as_set": _ANY, "note": _ANY}),
    "roas": ("list", _ANY), "aspas": ("map", _ANY), "aspas_from_rel": _ANY, "rpki_ready": _ANY,
    "routers": ("map", {"role": _ANY, "capability": _ANY}), "external": _ANY,
    "reports": ("list", {"at": _ANY, "pfx": _ANY, "subnet": _ANY, "anycast": _ANY, "special": _ANY}),
    "universe_extra": _ANY, "legit": ("map", _ANY),
    "expected": ("map", ("map", _LIST_OR_MAP)),
    "expect": ("map", ("map", ("map", {"pass": _ANY, "drop": _ANY}))),
    "verdicts": ("list", {"algorithm": _ANY, "outcome": _ANY, "quote": _ANY}),
    "expected_cone": ("map", _ANY),
}


def _walk(where: str, value: Any, spec: Any, fail: Any) -> None:
    if spec is None:
        return
    if isinstance(spec, tuple) and spec[0] == "either":
        if isinstance(value, Mapping):
            _walk(where, value, spec[1], fail)
        return
    if isinstance(spec, tuple) and spec[0] == "map":
        if not isinstance(value, Mapping):
            raise fail(where, "must be a mapping")
        for k, v in value.items():
            _walk(f"{where}.{k}", v, spec[1], fail)
        return
    if isinstance(spec, tuple) and spec[0] == "list":
        if not isinstance(value, list):
            raise fail(where, "must be a list")
        for k, v in enumerate(value):
            _walk(f"{where}[{k}]", v, spec[1], fail)
        return
    if not isinstance(value, Mapping):
        raise fail(where, "must be a mapping")
    for k, v in value.items():
        if k not in spec:
            raise fail(f"{where}.{k}" if where else str(k), f"unknown key (known: {', '.join(sorted(spec))})")
        _walk(f"{where}.{k}" if where else str(k), v, spec[k], fail)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario; `source` (the file) names it in errors. The data is validated on construction."""

    id: str
    data: Mapping[str, Any]
    source: str = ""

    def __post_init__(self) -> None:
        validate(self)

    def fail(self, where: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.source or self.id}: {where}: {message}")

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "inter"))

    @property
    def algorithms(self) -> tuple[str, ...]:
        if self.kind == "intra":
            return tuple(self.data.get("algorithms", INTRA_ALGORITHMS))
        listed = tuple(self.data.get("algorithms", INTER_ALGORITHMS))
        return listed + tuple(a for a in DEFAULTS if a not in listed)

    @property
    def validating(self) -> tuple[str, ...]:
        """The validating ASes of an inter-domain scenario (`validating`, or `local_as`)."""
        v = self.data.get("validating", self.data.get("local_as"))
        names = [v] if isinstance(v, str | int) else list(v or [])
        return tuple(str(n) for n in names)


def validate(sc: Scenario) -> None:
    """Raise ScenarioError on an unknown key anywhere, a wrong kind, or a missing validating AS."""
    if not isinstance(sc.data, Mapping):
        raise sc.fail("(top)", "must be a mapping")
    _walk("", sc.data, _SCHEMA, sc.fail)
    if sc.kind not in ("inter", "intra"):
        raise sc.fail("kind", f"must be inter or intra, not {sc.kind!r}")
    if sc.kind == "inter":
        if "local_as" in sc.data and "validating" in sc.data:
            raise sc.fail("validating", "give local_as or validating, not both")
        if not sc.validating:
            raise sc.fail("validating", "an inter-domain scenario needs validating (or local_as)")
        if "neighbors" in sc.data and len(sc.validating) != 1:
            raise sc.fail("neighbors", "only with one validating AS; describe several with rel")
    for algo in sc.data.get("algorithms", ()):
        if algo != NO_RPKI:
            try:
                Algorithm(algo)
            except ValueError as exc:
                raise sc.fail("algorithms", f"unknown algorithm {algo!r}") from exc


_AS = re.compile(r"^AS(\d+)$")


def asn(sym: object) -> int:
    """AS3 -> 65003; plain integers are taken as they are."""
    if isinstance(sym, int):
        return sym
    m = _AS.match(str(sym))
    if not m:
        raise ScenarioError(f"not an AS name: {sym!r}")
    return 65000 + int(m.group(1))


def as_name(number: int) -> str:
    return f"AS{number - 65000}" if 65000 <= number < 66000 else str(number)


def _prefix_symbols(data: Any) -> list[str]:
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, str) and re.fullmatch(r"[PQ]\d+[a-z]?", x):
            found.add(x)
        elif isinstance(x, Mapping):
            for k, v in x.items():
                walk(k)
                walk(v)
        elif isinstance(x, list | tuple):
            for v in x:
                walk(v)

    walk(data)
    return sorted(found, key=lambda s: (s[0], int(re.sub(r"\D", "", s)), s))


class Resolver:
    """Symbol -> concrete prefix for one scenario (stable: sorted symbols, 198.18.k.0/24)."""

    def __init__(self, sc: Scenario) -> None:
        explicit = dict(sc.data.get("prefixes", {}))
        symbols = _prefix_symbols(sc.data)
        self.table = {s: explicit.get(s, f"198.18.{k + 1}.0/24") for k, s in enumerate(symbols)}
        self.back = {v: k for k, v in self.table.items()}

    def prefix(self, sym: str) -> str:
        try:
            return canonical_prefix(self.table.get(sym, sym))
        except ValueError as exc:
            raise ScenarioError(f"not a prefix or P-name: {sym!r}") from exc

    def name(self, prefix: str) -> str:
        return self.back.get(prefix, prefix)

    def many(self, syms: Any) -> list[str]:
        if isinstance(syms, str):
            syms = [syms]
        return [self.prefix(s) for s in syms]


def _iface_key(sc: Scenario, text: str, where: str = "legit") -> tuple[str, str]:
    """`AS4/AS2` or `Router1/cust`; `AS2` alone means the interface to AS2 of the only validating AS."""
    if "/" in text:
        router, iface = text.split("/", 1)
        return router, iface
    if sc.kind == "inter" and len(sc.validating) == 1:
        return sc.validating[0], text
    raise sc.fail(f"{where}.{text}", "name the router too (router/interface)")


def build(sc: Scenario, algorithm: str) -> Snapshot:
    """The scenario's snapshot with every interface on `algorithm` (`auto` = the default policy;
    `auto-no-rpki` = the default with no RPKI data at all)."""
    res = Resolver(sc)
    no_rpki = algorithm == NO_RPKI
    policy = Policy(default_algorithm=Algorithm("auto" if no_rpki else algorithm))
    if sc.kind == "intra":
        return _build_intra(sc, res, policy)
    snap = _build_inter(sc, res, policy)
    return snap.replace(vrps=(), aspas=(), rpki_ready=False) if no_rpki else snap


# --- inter-domain: relationships and propagation -----------------------------------------------------------

_RS_CLIENT = "rs-client"  # the route server's view of its client (not a model relationship)
_REL_KINDS = ("c2p", "p2p", "rs")


def _relations(sc: Scenario) -> dict[str, dict[str, str]]:
    """AS -> neighbour -> relationship seen from the AS (customer|peer|provider|route-server|rs-client)."""
    out: dict[str, dict[str, str]] = {}
    for k, item in enumerate(sc.data.get("rel", [])):
        if not isinstance(item, list) or len(item) != 3 or item[2] not in _REL_KINDS:
            raise sc.fail(f"rel[{k}]", f"must be [ASa, ASb, {'|'.join(_REL_KINDS)}], got {item!r}")
        a, b, kind = str(item[0]), str(item[1]), str(item[2])
        asn(a), asn(b)
        views = {"c2p": ("provider", "customer"), "p2p": ("peer", "peer"), "rs": ("route-server", _RS_CLIENT)}
        out.setdefault(a, {})[b], out.setdefault(b, {})[a] = views[kind]
    return out


def _neighbors_of(sc: Scenario, rels: Mapping[str, Mapping[str, str]], v: str) -> dict[str, Relationship]:
    out: dict[str, Relationship] = {}
    for n, rel in rels.get(v, {}).items():
        if rel == _RS_CLIENT:
            raise sc.fail("rel", f"{v} validates but is a route server; only RS clients can validate here")
        out[n] = Relationship(rel)
    if len(sc.validating) == 1:
        for n, rel in sc.data.get("neighbors", {}).items():
            try:
                out[str(n)] = Relationship(str(rel))
            except ValueError as exc:
                raise sc.fail(f"neighbors.{n}", f"unknown relationship {rel!r}") from exc
    return out


@dataclass(frozen=True, slots=True)
class _Route:
    path: tuple[str, ...]  # wire order as received (neighbour first); () at the origin
    as_set: tuple[str, ...]
    no_export: bool
    sender: str  # "" at the origin


_CLASS = {"": 0, "customer": 1, _RS_CLIENT: 1, "peer": 2, "route-server": 2, "provider": 3}


def _propagate(sc: Scenario, rels: Mapping[str, Mapping[str, str]]) -> dict[tuple[str, str, str], _Route]:
    """Adj-RIBs-In (receiver, sender, prefix symbol) after `originate` spreads along `rel` (Gao-Rexford)."""
    origins: dict[tuple[str, str], Mapping[str, Any]] = {}
    for k, o in enumerate(sc.data.get("originate", [])):
        where = f"originate[{k}]"
        if "as" not in o or "pfx" not in o:
            raise sc.fail(where, "needs as and pfx")
        origin = str(o["as"])
        if origin not in rels:
            raise sc.fail(f"{where}.as", f"{origin} has no relationship in rel")
        for name in [*_names(o.get("to", [])), *_names(o.get("prepend", {}))]:
            if name not in rels[origin]:
                raise sc.fail(where, f"{name} is not a neighbour of {origin}")
        for sym in _names(o["pfx"]):
            origins[(origin, sym)] = o
    ribs: dict[tuple[str, str, str], _Route] = {}
    for _ in range(64):  # rounds of "everyone exports its best route" until nothing moves
        new: dict[tuple[str, str, str], _Route] = {}
        for (origin, sym), o in sorted(origins.items()):
            _spread(rels, new, origin, sym, o)
        for (x, sym), route in sorted(_best_routes(rels, ribs).items()):
            if (x, sym) not in origins:
                _export(rels, new, x, sym, route)
        if new == ribs:
            return ribs
        ribs = new
    raise sc.fail("originate", "route propagation does not converge")


def _names(x: Any) -> list[str]:
    if isinstance(x, Mapping):
        return [str(k) for k in x]
    if isinstance(x, str | int):
        return [str(x)]
    return [str(v) for v in x]


def _spread(
    rels: Mapping[str, Mapping[str, str]],
    ribs: dict[tuple[str, str, str], _Route],
    origin: str,
    sym: str,
    o: Mapping[str, Any],
) -> None:
    to = set(_names(o["to"])) if "to" in o else set(rels[origin])
    ne = o.get("no_export", False)
    no_export = set(rels[origin]) if ne is True else set(_names(ne)) if ne else set()
    prepend = {str(k): int(v) for k, v in (o.get("prepend") or {}).items()}
    as_set = tuple(_names(o.get("as_set", [])))
    for n in sorted(to):
        ribs[(n, origin, sym)] = _Route((origin,) * (1 + prepend.get(n, 0)), as_set, n in no_export, origin)


def _best_routes(
    rels: Mapping[str, Mapping[str, str]], ribs: Mapping[tuple[str, str, str], _Route]
) -> dict[tuple[str, str], _Route]:
    """Each AS's best route per prefix: customer > lateral > provider, then the shorter path, the sender."""
    best: dict[tuple[str, str], tuple[tuple[int, int, str], _Route]] = {}
    for (x, sender, sym), route in ribs.items():
        if x in route.path:
            continue  # loop
        key = (_CLASS[rels[x][sender]], len(route.path), sender)
        cur = best.get((x, sym))
        if cur is None or key < cur[0]:
            best[(x, sym)] = (key, route)
    return {k: r for k, (_, r) in best.items()}


def _export(
    rels: Mapping[str, Mapping[str, str]],
    ribs: dict[tuple[str, str, str], _Route],
    x: str,
    sym: str,
    route: _Route,
) -> None:
    """x passes its best route on: customer routes to everyone, others to customers only; NO_EXPORT to
    no one; a route server to its other clients without adding its AS."""
    if route.no_export:
        return
    learned = rels[x][route.sender]
    for n, rel in sorted(rels[x].items()):
        if n == route.sender or n in route.path:
            continue
        if learned == _RS_CLIENT:
            if rel == _RS_CLIENT:
                ribs[(n, x, sym)] = _Route(route.path, route.as_set, False, x)
        elif learned == "customer" or rel == "customer":
            ribs[(n, x, sym)] = _Route((x, *route.path), route.as_set, False, x)


def _build_inter(sc: Scenario, res: Resolver, policy: Policy) -> Snapshot:
    d = sc.data
    rels = _relations(sc)
    routers: list[Router] = []
    neighbors: list[Neighbor] = []
    for v in sc.validating:
        routers.append(Router(v, asn=asn(v), role=Role.BORDER))
        neighbors.extend(Neighbor(v, n, asn(n), rel) for n, rel in sorted(_neighbors_of(sc, rels, v).items()))
    known = {(n.router, n.interface) for n in neighbors}
    paths: list[BgpPath] = []
    for (at, frm, sym), route in sorted(_propagate(sc, rels).items()):
        if at in sc.validating:
            as_path = tuple(asn(a) for a in route.path)
            as_set = tuple(asn(a) for a in route.as_set)
            paths.extend(BgpPath(at, frm, p, as_path, as_set=as_set) for p in res.many(sym))
    for k, ann in enumerate(d.get("ann", [])):
        if "from" not in ann:
            if set(ann) - {"note"}:
                raise sc.fail(f"ann[{k}]", "needs from (the neighbour the route came from)")
            continue
        where = f"ann[{k}]"
        at = str(ann.get("at", sc.validating[0] if len(sc.validating) == 1 else ""))
        if at not in sc.validating:
            raise sc.fail(f"{where}.at", f"{at or '(missing)'} does not validate: list it in validating, or "
                          "describe the announcement with originate")
        frm = str(ann["from"])
        if (at, frm) not in known:
            raise sc.fail(f"{where}.from", f"{frm} is not a neighbour of {at}")
        as_path = tuple(asn(a) for a in ann["path"])
        as_set = tuple(asn(a) for a in ann.get("as_set", []))
        paths.extend(BgpPath(at, frm, p, as_path, as_set=as_set) for p in res.many(ann["pfx"]))
    vrps = tuple(
        Vrp(p, int(p.rsplit("/", 1)[1]), asn(a)) for pfx, a in d.get("roas", []) for p in res.many(pfx)
    )
    aspas = [Aspa(asn(c), tuple(asn(p) for p in provs)) for c, provs in d.get("aspas", {}).items()]
    for c in _names(d.get("aspas_from_rel", [])):
        provs = sorted(asn(n) for n, rel in rels.get(c, {}).items() if rel == "provider")
        aspas.append(Aspa(asn(c), tuple(provs) or (0,)))
    return Snapshot(
        routers=tuple(routers),
        interfaces=tuple(Interface(n.router, n.interface, external=True) for n in neighbors),
        neighbors=tuple(neighbors),
        paths=tuple(paths),
        vrps=vrps,
        aspas=tuple(aspas),
        policy=policy,
        rpki_ready=d.get("rpki_ready"),
    )


def _build_intra(sc: Scenario, res: Resolver, policy: Policy) -> Snapshot:
    d = sc.data
    routers = tuple(
        Router(
            name,
            role=Role(str(v.get("role", "core"))),
            capability=Capability(str(v.get("capability", "savnet"))),
        )
        for name, v in d.get("routers", {}).items()
    )
    interfaces = tuple(
        Interface(r, i, external=True)
        for r, i in (_iface_key(sc, str(x), "external") for x in d.get("external", []))
    )
    reports: list[PrefixReport] = []
    for k, rep in enumerate(d.get("reports", [])):
        flags = PrefixFlags(anycast=bool(rep.get("anycast", False)), special=bool(rep.get("special", False)))
        r, i = _iface_key(sc, str(rep["at"]), f"reports[{k}].at")
        reports.extend(
            PrefixReport(r, i, p, str(rep.get("subnet", "")), flags) for p in res.many(rep["pfx"])
        )
    return Snapshot(routers=routers, interfaces=interfaces, reports=tuple(reports), policy=policy)


def cones(sc: Scenario) -> dict[str, list[str]]:
    """BAR-SAV's AS-set D per non-provider interface, as AS names (`iface`, or `router/iface` when several
    ASes validate)."""
    snap = build(sc, "bar-sav")
    rpki = snap.rpki()
    out: dict[str, list[str]] = {}
    for router in snap.routers:
        mine = {n.interface: n for n in snap.neighbors if n.router == router.name}
        rib = RouterRib(router.name, router.asn, mine, (p for p in snap.paths if p.router == router.name))
        for n in mine.values():
            if n.relationship is Relationship.PROVIDER:
                continue
            key = n.interface if len(snap.routers) == 1 else f"{router.name}/{n.interface}"
            out[key] = sorted(as_name(a) for a in customer_cone(rib, rpki, rib.cone_seeds(n.interface)))
    return out


def permits(rule: InterfaceRules | None, prefix: str) -> bool:
    """Would sources in the whole of `prefix` pass this rule? (No rule: everything passes.) An allowlist
    passes a prefix one entry covers, or that its more-specific entries fill (an aggregate's parts)."""
    if rule is None:
        return True
    members = PrefixSet(rule.prefixes)
    if rule.kind is ListKind.ALLOW:
        return members.covers(prefix) or not subtract_space([prefix], members.covered(prefix))
    return not members.overlaps(prefix)


def universe(sc: Scenario, res: Resolver) -> list[str]:
    """Every prefix the scenario names, plus `universe_extra` (spoofable sources)."""
    names = [res.prefix(s) for s in res.table] + res.many(sc.data.get("universe_extra", []))
    return sorted(set(names), key=lambda p: (prefix_family(p), p))


def score(sc: Scenario, algorithm: str, rules: SavRuleSet) -> Score:
    res = Resolver(sc)
    every = universe(sc, res)
    blocked: list[str] = []
    permitted: list[str] = []
    for key_text, legit_syms in sorted(sc.data.get("legit", {}).items()):
        key = _iface_key(sc, str(key_text))
        legit = set(res.many(legit_syms))
        rule = rules.get(*key)
        blocked += [f"{key_text}:{res.name(p)}" for p in sorted(legit) if not permits(rule, p)]
        permitted += [f"{key_text}:{res.name(p)}" for p in every if p not in legit and permits(rule, p)]
    return Score(algorithm, len(blocked), len(permitted), tuple(blocked), tuple(permitted))


def run_scenario(sc: Scenario) -> dict[str, tuple[SavRuleSet, Score]]:
    """Every algorithm of the scenario: its rule set and its score."""
    out: dict[str, tuple[SavRuleSet, Score]] = {}
    for algo in sc.algorithms:
        rules = compute(build(sc, algo))
        out[algo] = (rules, score(sc, algo, rules))
    return out


def expected_mismatches(sc: Scenario, results: Mapping[str, tuple[SavRuleSet, Score]]) -> list[str]:
    """Differences between the stated expected lists and the computed rules (empty when all match)."""
    res = Resolver(sc)
    problems: list[str] = []
    for algo, per_iface in sc.data.get("expected", {}).items():
        if algo not in results:
            problems.append(f"{sc.id}: expected[{algo}] names an algorithm the scenario does not run")
            continue
        rules = results[algo][0]
        for key_text, want in per_iface.items():
            spec = dict(want) if isinstance(want, Mapping) else {"allow": want}
            delivery = spec.pop("delivery", None)
            if len(spec) != 1:
                raise sc.fail(f"expected.{algo}.{key_text}", "give exactly one of allow, block")
            kind = ListKind(next(iter(spec)))
            rule = rules.get(*_iface_key(sc, str(key_text), f"expected.{algo}"))
            got = sorted(res.name(p) for p in rule.prefixes) if rule else None
            want_names = sorted(res.name(p) for p in res.many(spec[str(kind)]))
            if rule is None or rule.kind is not kind or got != want_names:
                have = f"{rule.kind}:{got}" if rule else "no rule"
                problems.append(f"{sc.id} {algo} {key_text}: want {kind}:{want_names}, got {have}")
            elif delivery is not None and str(rule.delivery) != delivery:
                problems.append(f"{sc.id} {algo} {key_text}: want delivery {delivery}, got {rule.delivery}")
    return problems


def expect_mismatches(sc: Scenario, results: Mapping[str, tuple[SavRuleSet, Score]]) -> list[str]:
    """Per-prefix traffic expectations (`expect: {algo: {router: {iface: {pass, drop}}}}`) that fail."""
    res = Resolver(sc)
    problems: list[str] = []
    for algo, per_router in sc.data.get("expect", {}).items():
        if algo not in results:
            problems.append(f"{sc.id}: expect.{algo} names an algorithm the scenario does not run")
            continue
        rules = results[algo][0]
        for router, per_iface in per_router.items():
            for iface, want in per_iface.items():
                rule = rules.get(str(router), str(iface))
                for verdict, should_pass in (("pass", True), ("drop", False)):
                    for sym in _names(want.get(verdict, [])):
                        if permits(rule, res.prefix(sym)) != should_pass:
                            got = "passes" if should_pass is False else "is dropped"
                            problems.append(
                                f"{sc.id} {algo} {router}/{iface}: {sym} {got}, expected {verdict}"
                            )
    return problems


def check_verdicts(sc: Scenario, scores: Mapping[str, Score]) -> list[str]:
    """The documents' verdicts that the computed scores contradict (empty when all hold)."""
    working = [s.improper_permit for s in scores.values() if s.improper_block == 0]
    best = min(working) if working else 0
    problems: list[str] = []
    for v in sc.data.get("verdicts", []):
        algos: Sequence[str] = v["algorithm"] if isinstance(v["algorithm"], list) else [v["algorithm"]]
        for algo in algos:
            if algo not in scores:
                problems.append(f"{sc.id}: verdict names {algo!r}, which the scenario does not run")
                continue
            s = scores[algo]
            outcome = v["outcome"]
            ok = {
                "improper-block": s.improper_block > 0,
                "works": s.improper_block == 0,
                "works-best": s.improper_block == 0 and s.improper_permit == best,
                "improper-permit": s.improper_block == 0 and s.improper_permit > 0,
            }.get(outcome)
            if ok is None:
                problems.append(f"{sc.id}: unknown verdict outcome {outcome!r}")
            elif not ok:
                problems.append(
                    f"{sc.id} {algo}: source says {outcome} ({v.get('quote', '')}); "
                    f"got block={s.improper_block} permit={s.improper_permit}"
                )
    return problems


def problems(sc: Scenario, results: Mapping[str, tuple[SavRuleSet, Score]]) -> list[str]:
    """Everything a scenario asserts that the results contradict: exact lists, traffic expectations, the
    documents' verdicts, the cones, and the default (with and without RPKI data) never blocking improperly."""
    out = expected_mismatches(sc, results) + expect_mismatches(sc, results)
    out += check_verdicts(sc, {a: s for a, (_, s) in results.items()})
    for algo in DEFAULTS:
        if algo in results and results[algo][1].improper_block:
            blocked = list(results[algo][1].blocked)
            out.append(f"{sc.id} {algo}: the default policy improperly blocks {blocked}")
    if "expected_cone" in sc.data:
        got = cones(sc)
        for iface, want in sc.data["expected_cone"].items():
            if got.get(str(iface)) != sorted(want):
                out.append(f"{sc.id}: cone of {iface}: want {sorted(want)}, got {got.get(str(iface))}")
    return out
