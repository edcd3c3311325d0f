"""Steering of suspicious sources through inspection functions: which inspector takes which suspect.

I2NSF NSF-triggered steering (seeds/001, draft-hyun-i2nsf-nsf-triggered-steering sections 4.1 and 5):
a source that an inspection function or the operator flags as suspicious (not proven spoofed) is
steered through an inspector; the inspectors report their load, and the controller balances over them
and asks for instances to be added or removed.

Pure and deterministic: inputs in, decisions and events out (time 0.0 for the caller to stamp); no I/O.
- Suspects are spread over the inspectors of their address family in proportion to each one's headroom
  (capacity - load), by weighted rendezvous hashing (Thaler & Ravishankar; weight / -ln(hash)): the
  spread is deterministic and stable, so a new instance takes only the suspects it wins, a removed one
  gives up only its own, and a load report moves suspects only toward the instances with more room (a
  steered flow that changes inspector mid-session is what an inspector least likes). An inspector at or
  above its capacity is not chosen. Loads are reported measurements, so the choice does not add to them:
  the next load report moves suspects on.
- No inspector available: the policy's fallback (accept: fail open, the SAV rules apply as before; drop)
  and the alarm `steering.no-inspector` naming the suspect.
- Scale requests (alarms while they hold, cleared when they stop): `steering.scale-out` when the mean
  load/capacity of the inspectors is >= `scale_out_at`, `steering.scale-in` when it is <= `scale_in_at`
  with more than one inspector.
- A suspect with a router applies there only; one without applies on every router in `routers`. A
  router-specific suspect of a prefix overrides the all-routers one on its router.
- IPv6 redirects go by rt-redirect to a route target "ASN:NN" per inspector address (`route_targets`)
  by default: FRR 8.4.4 does not re-advertise the IPv6 extended communities that carry an IPv6
  redirect-to-IP, while the route target rides in the plain extended communities; the router (the
  enforcer's node file, written by savd) maps the target to the inspector. `ipv6_redirect = "ip"` keeps
  redirect-to-IP for routers that carry it. IPv4 always goes by redirect-to-IP.
- Beside the flagged suspects (API, inspection functions), `rov_suspects` draws suspects from the paths'
  route origin validation: `rpki_invalid` (an RPKI-invalid origin: the space may be hijacked) and
  `sav_unknown` (no ROA covers the origin: SAV has no evidence either way, only path heuristics let the
  traffic in). Trust levels, from the most trusted: valid (SAV verdict alone), unknown and invalid
  origins (inspected), proven spoofed (dropped by the SAV rules, which win over steering).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from appliance.engine.rib import Rov
from appliance.model import (
    BgpPath,
    Event,
    Inspector,
    RedirectForm,
    Severity,
    Steered,
    SteeringFallback,
    Suspect,
    prefix_family,
    prefix_sort_key,
)

SOURCE = "steering"
NO_INSPECTOR = "steering.no-inspector"
SCALE_OUT = "steering.scale-out"
SCALE_IN = "steering.scale-in"


@dataclass(frozen=True, slots=True)
class SteeringPolicy:
    """[steering] of the configuration: the fallback and the scale thresholds (mean load/capacity)."""

    fallback: SteeringFallback = SteeringFallback.ACCEPT
    scale_out_at: float = 0.8
    scale_in_at: float = 0.2
    #: the prefixes of BGP paths whose origin is RPKI-invalid (RFC 6811) are suspects too: their space
    #: may be hijacked, so traffic from it is inspected rather than trusted or dropped on a guess
    rpki_invalid: bool = False
    #: SAV-unknown: the prefixes of BGP paths whose origin no ROA covers (RFC 6811 NotFound, while savd
    #: holds VRPs) are suspects too: neither RPKI nor the origin-based SAV lists (BAR-SAV's ROA space)
    #: can vouch for them, only path heuristics let their traffic in, so it is inspected
    sav_unknown: bool = False
    #: how an IPv6 suspect's redirect is carried (model.RedirectForm); a route target needs `asn`
    ipv6_redirect: RedirectForm = RedirectForm.ROUTE_TARGET
    #: the administrator of the route targets: the appliance's AS ([appliance] asn)
    asn: int = 0


@dataclass(frozen=True, slots=True)
class SteeringDecision:
    steered: tuple[Steered, ...] = ()
    events: tuple[Event, ...] = ()


def _family(address: str) -> int:
    return 6 if ":" in address else 4


def _score(prefix: str, inspector: Inspector) -> float:
    """The rendezvous score of `inspector` for `prefix`: headroom / -ln(u), u uniform in (0, 1) from a
    hash of both names; the highest score wins, each inspector with odds proportional to its headroom."""
    digest = hashlib.blake2b(f"{prefix}|{inspector.name}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 0.5) / 2**64
    return (inspector.capacity - inspector.load) / -math.log(u)


def _usable(inspectors: Iterable[Inspector], family: int) -> list[Inspector]:
    """The inspectors of `family` below their capacity: the ones a suspect of that family can go to."""
    return [i for i in inspectors if _family(i.address) == family and i.load < i.capacity]


def choose(inspectors: Iterable[Inspector], prefix: str) -> Inspector | None:
    """The inspector for suspect `prefix`: of its address family, below capacity, by weighted rendezvous
    over the headroom (module docstring); None when none can take it."""
    usable = _usable(inspectors, prefix_family(prefix))
    return max(usable, key=lambda i: (_score(prefix, i), i.name), default=None)


def _effective(suspects: Iterable[Suspect], routers: Iterable[str]) -> list[tuple[str, Suspect]]:
    """(router, suspect) pairs, one per (router, prefix): a router's own suspect beats an all-routers one."""
    chosen: dict[tuple[str, str], Suspect] = {}
    for s in sorted(suspects, key=lambda s: (s.router != "", s.router, s.reason)):
        for router in ((s.router,) if s.router else routers):
            chosen[(router, s.prefix)] = s
    keys = {p: prefix_sort_key(p) for p in {p for _, p in chosen}}   # one key per prefix, not per pair
    return sorted(((r, s) for (r, _), s in chosen.items()), key=lambda rs: (rs[0], keys[rs[1].prefix]))


def _alarm(kind: str, severity: Severity, message: str, **fields: str) -> Event:
    return Event(0.0, SOURCE, kind, severity, message, dict(sorted(fields.items())), True)


def scale_events(inspectors: Sequence[Inspector], policy: SteeringPolicy) -> list[Event]:
    """Scale-out / scale-in requests from the mean load/capacity over every inspector."""
    if not inspectors:
        return []
    mean = sum(i.ratio for i in inspectors) / len(inspectors)
    fields = {"mean": f"{mean:.3f}", "inspectors": str(len(inspectors))}
    if mean >= policy.scale_out_at:
        return [_alarm(SCALE_OUT, Severity.WARNING, f"inspectors at {mean:.0%} of capacity on average "
                       f"(>= {policy.scale_out_at:.0%}): add an instance", **fields)]
    if mean <= policy.scale_in_at and len(inspectors) > 1:
        return [_alarm(SCALE_IN, Severity.INFO, f"inspectors at {mean:.0%} of capacity on average "
                       f"(<= {policy.scale_in_at:.0%}): an instance can go", **fields)]
    return []


def route_targets(asn: int, addresses: Iterable[str]) -> dict[str, str]:
    """address -> route target "ASN:NN" (NN 1..65535: fits the 2- and 4-octet AS forms), NN from a hash
    of the address, so an inspector keeps its target while others come and go (a collision takes the
    next free NN, in address order); deterministic."""
    used: set[int] = set()
    out: dict[str, str] = {}
    for address in sorted(set(addresses)):
        digest = hashlib.blake2b(address.encode(), digest_size=4).digest()
        nn = int.from_bytes(digest, "big") % 65535 + 1
        while nn in used:
            nn = nn % 65535 + 1
        used.add(nn)
        out[address] = f"{asn}:{nn}"
    return out


def decide(inspectors: Iterable[Inspector], suspects: Iterable[Suspect], routers: Iterable[str],
           policy: SteeringPolicy) -> SteeringDecision:
    """The steering of every suspect on its routers, and the alarms (see the module docstring). Each
    prefix is placed once, whatever the number of routers (the daemon decides on every recompute)."""
    pool = sorted(inspectors, key=lambda i: i.name)
    suspects = tuple(suspects)
    by_target = policy.ipv6_redirect is RedirectForm.ROUTE_TARGET and policy.asn > 0
    targets = route_targets(policy.asn, (i.address for i in pool if _family(i.address) == 6)) \
        if by_target else {}
    placed: dict[str, Inspector | None] = {}

    def place(prefix: str) -> Inspector | None:
        if prefix not in placed:
            placed[prefix] = choose(pool, prefix)
        return placed[prefix]

    steered: list[Steered] = []
    for router, s in _effective(suspects, sorted(set(routers))):
        best = place(s.prefix)
        if best is None:
            steered.append(Steered(router, s.prefix, s.reason, fallback=policy.fallback))
        else:
            steered.append(Steered(router, s.prefix, s.reason, best.name, best.address,
                                   target=targets.get(best.address, "")))
    events = scale_events(pool, policy)
    families = {f for f in (4, 6) if _usable(pool, f)}   # choose() finds an inspector for these
    unplaced = [s for s in suspects if prefix_family(s.prefix) not in families]
    for s in sorted(unplaced, key=lambda s: (prefix_sort_key(s.prefix), s.router)):
        events.append(_alarm(NO_INSPECTOR, Severity.WARNING,
                             f"no inspector can take suspect {s.prefix}"
                             f"{' on ' + s.router if s.router else ''}: fallback {policy.fallback}",
                             prefix=s.prefix, router=s.router, fallback=str(policy.fallback)))
    return SteeringDecision(tuple(steered), tuple(events))


def rov_suspects(paths: Iterable[BgpPath], rov: Callable[[str, int], Rov], policy: SteeringPolicy
                 ) -> tuple[Suspect, ...]:
    """The suspects `policy` draws from the paths' route origin validation (RFC 6811, `rov(prefix,
    origin)`): with `rpki_invalid` the prefixes some path originates Invalid, with `sav_unknown` those it
    originates NotFound; one suspect per prefix, naming the first such origin; deterministic (sorted).
    Paths without a single origin (AS_SET) are left alone."""
    reasons = {}
    if policy.rpki_invalid:
        reasons[Rov.INVALID] = "rpki-invalid origin AS{}"
    if policy.sav_unknown:
        reasons[Rov.NOT_FOUND] = "sav-unknown: no ROA covers origin AS{}"
    if not reasons:
        return ()
    found: dict[str, str] = {}
    for path in paths:
        origin = path.origin
        if origin and path.prefix not in found:
            reason = reasons.get(rov(path.prefix, origin))
            if reason:
                found[path.prefix] = reason.format(origin)
    return tuple(Suspect(prefix, reason) for prefix, reason in sorted(found.items()))
