"""Reference scenarios (reference/sav-algorithms.md section 2) as data: build, run, score, check verdicts.

A scenario names ASes (`AS3`) and prefixes (`P1`) symbolically, like the documents; `Resolver` maps ASn to
the private ASN 65000+n and each P-name to its own 198.18.k.0/24 (literal CIDRs stay literal), so the
scenarios run with lab-safe numbers. Inter-domain scenarios have one validating router named after the
local AS, with one interface per neighbour named after that neighbour; intra-domain ones list routers,
interfaces and reports.

`score` counts, for each interface with a stated legitimate set, improper blocks (legitimate prefixes the rule
drops) and improper permits (the scenario's other prefixes the rule lets in). `check_verdicts` turns the
documents' verdicts into assertions: `improper-block` (> 0 blocks), `works` (0 blocks), `works-best` (0 blocks
and the fewest permits among the algorithms that work), `improper-permit` (0 blocks, > 0 permits).
Pure: the caller reads the files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.engine.inter import customer_cone
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.prefixset import PrefixSet
from appliance.engine.rib import RouterRib
from appliance.engine.snapshot import Snapshot, compute
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

__all__ = ["Scenario", "ScenarioError", "Score", "check_verdicts", "run_scenario", "score"]

INTER_ALGORITHMS = ("strict", "feasible", "loose", "efp-a", "efp-b", "bar-sav", "bar-sav-pi", "auto")
INTRA_ALGORITHMS = ("strict", "loose", "auto")


class ScenarioError(ValueError):
    """A scenario file that cannot be understood; the message names the scenario and the field."""


@dataclass(frozen=True, slots=True)
class Score:
    algorithm: str
    improper_block: int
    improper_permit: int
    blocked: tuple[str, ...]
    permitted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    data: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "inter"))

    @property
    def algorithms(self) -> tuple[str, ...]:
        default = INTRA_ALGORITHMS if self.kind == "intra" else INTER_ALGORITHMS
        return tuple(self.data.get("algorithms", default))


_AS = re.compile(r"^AS(\d+)$")


def asn(sym: object) -> int:
    """AS3 -> 65003; plain integers are taken as they are."""
    if isinstance(sym, int):
        return sym
    m = _AS.match(str(sym))
    if not m:
        raise ScenarioError(f"not an AS name: {sym!r}")
    return 65000 + int(m.group(1))


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


def _iface_key(sc: Scenario, text: str) -> tuple[str, str]:
    """`AS2` (the neighbour interface of the validating AS) or `Router1/cust`."""
    if "/" in text and not _AS.match(text):
        router, iface = text.split("/", 1)
        return router, iface
    return str(sc.data["local_as"]), text


def build(sc: Scenario, algorithm: str) -> Snapshot:
    """The scenario's snapshot with every interface on `algorithm` (`auto` = the default policy)."""
    res = Resolver(sc)
    policy = Policy(default_algorithm=Algorithm(algorithm))
    if sc.kind == "intra":
        return _build_intra(sc, res, policy)
    return _build_inter(sc, res, policy)


def _build_inter(sc: Scenario, res: Resolver, policy: Policy) -> Snapshot:
    d = sc.data
    local = str(d["local_as"])
    router = Router(local, asn=asn(local), role=Role.BORDER)
    neighbors = tuple(
        Neighbor(local, str(n), asn(n), Relationship(str(rel))) for n, rel in d.get("neighbors", {}).items()
    )
    known = {n.interface for n in neighbors}
    paths: list[BgpPath] = []
    for k, ann in enumerate(d.get("ann", [])):
        if "from" not in ann:
            continue
        frm = str(ann["from"])
        if frm not in known:
            raise ScenarioError(f"{sc.id}: ann[{k}] from {frm} is not a neighbour")
        as_path = tuple(asn(a) for a in ann["path"])
        paths.extend(BgpPath(local, frm, p, as_path) for p in res.many(ann["pfx"]))
    vrps = tuple(
        Vrp(p, int(p.rsplit("/", 1)[1]), asn(a)) for pfx, a in d.get("roas", []) for p in res.many(pfx)
    )
    aspas = tuple(Aspa(asn(c), tuple(asn(p) for p in provs)) for c, provs in d.get("aspas", {}).items())
    return Snapshot(
        routers=(router,),
        interfaces=tuple(Interface(local, n.interface, external=True) for n in neighbors),
        neighbors=neighbors,
        paths=tuple(paths),
        vrps=vrps,
        aspas=aspas,
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
        Interface(r, i, external=True) for r, i in (_iface_key(sc, str(x)) for x in d.get("external", []))
    )
    reports: list[PrefixReport] = []
    for rep in d.get("reports", []):
        flags = PrefixFlags(anycast=bool(rep.get("anycast", False)), special=bool(rep.get("special", False)))
        r, i = _iface_key(sc, str(rep["at"]))
        reports.extend(
            PrefixReport(r, i, p, str(rep.get("subnet", "")), flags) for p in res.many(rep["pfx"])
        )
    return Snapshot(routers=routers, interfaces=interfaces, reports=tuple(reports), policy=policy)


def cones(sc: Scenario) -> dict[str, list[str]]:
    """BAR-SAV's AS-set D per customer/peer interface of an inter-domain scenario, as AS names."""
    snap = build(sc, "bar-sav")
    router = snap.routers[0]
    rib = RouterRib(router.name, router.asn, {n.interface: n for n in snap.neighbors}, snap.paths)
    rpki = snap.rpki()
    return {
        n.interface: sorted(f"AS{a - 65000}" for a in customer_cone(rib, rpki, n.asn))
        for n in snap.neighbors
        if n.relationship is not Relationship.PROVIDER
    }


def permits(rule: InterfaceRules | None, prefix: str) -> bool:
    """Would sources in the whole of `prefix` pass this rule? (No rule: everything passes.)"""
    if rule is None:
        return True
    members = PrefixSet(rule.prefixes)
    if rule.kind is ListKind.ALLOW:
        return members.covers(prefix)
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
            kind = ListKind(next(iter(spec)))
            rule = rules.get(*_iface_key(sc, str(key_text)))
            got = sorted(res.name(p) for p in rule.prefixes) if rule else None
            want_names = sorted(res.name(p) for p in res.many(spec[str(kind)]))
            if rule is None or rule.kind is not kind or got != want_names:
                have = f"{rule.kind}:{got}" if rule else "no rule"
                problems.append(f"{sc.id} {algo} {key_text}: want {kind}:{want_names}, got {have}")
            elif delivery is not None and str(rule.delivery) != delivery:
                problems.append(f"{sc.id} {algo} {key_text}: want delivery {delivery}, got {rule.delivery}")
    return problems


def check_verdicts(sc: Scenario, scores: Mapping[str, Score]) -> list[str]:
    """The documents' verdicts that the computed scores contradict (empty when all hold)."""
    working = [s.improper_permit for s in scores.values() if s.improper_block == 0]
    best = min(working) if working else 0
    problems: list[str] = []
    for v in sc.data.get("verdicts", []):
        algos: Sequence[str] = v["algorithm"] if isinstance(v["algorithm"], list) else [v["algorithm"]]
        for algo in algos:
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
