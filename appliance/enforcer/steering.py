"""Redirect-to-IP on the node: policy routing toward each redirect target (pure plan, `ip` shell).

The nft table marks the packets of a redirect-to-IP route in prerouting, before the routing decision
(`meta mark set M accept`, planmodel.verdict); here each target IP in use gets, in the router's namespace:

    ip [-6] rule add fwmark M lookup T priority 9000
    ip [-6] route replace default via GW dev D table T

with M = 0x5a0000 | i and T = 5900 + i for the target's index i (1..255, kept while the target is in use,
so a route change never re-marks another target's packets). GW/D come from `ip route get TARGET` (main
table) when the target is synced: a connected target is the gateway itself, a farther one is reached
through the main table's gateway toward it (re-resolved every sync, so a routing change follows).

Fail open: a target with no route (or a local, blackhole, unreachable one) gets no mark, and its routes
are forwarded as usual and counted (planmodel.effective gives the reason); a table whose route the
kernel dropped (interface down) matches nothing and the lookup falls through to the main table; when
no route uses a target any more, or the enforcer stops, its rule and table go.
Must not: render or run nft (nftplan.py, nft.py), decide what a route does (planmodel.py).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

__all__ = ["MARK_BASE", "MAX_TARGETS", "RULE_PRIORITY", "TABLE_BASE", "Hop", "SteerSpec", "Steering",
           "allocate", "commands", "hop_from_route_get"]

MARK_BASE = 0x5A0000
TABLE_BASE = 5900
RULE_PRIORITY = 9000
MAX_TARGETS = 255
UNUSABLE_TYPES = frozenset({"local", "blackhole", "unreachable", "prohibit", "throw", "broadcast",
                            "multicast", "anycast"})

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True, slots=True)
class Hop:
    """Where the main table sends a target: via `gateway` out of `dev`."""

    gateway: str
    dev: str


@dataclass(frozen=True, slots=True)
class SteerSpec:
    """One target's policy routing."""

    target: str
    index: int
    hop: Hop

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.target).version

    @property
    def mark(self) -> int:
        return MARK_BASE | self.index

    @property
    def table(self) -> int:
        return TABLE_BASE + self.index

    def route_add(self) -> list[str]:
        return ["ip", f"-{self.family}", "route", "replace", "default", "via", self.hop.gateway,
                "dev", self.hop.dev, "table", str(self.table)]

    def rule(self, verb: str) -> list[str]:
        return ["ip", f"-{self.family}", "rule", verb, "fwmark", f"{self.mark:#x}", "lookup",
                str(self.table), "priority", str(RULE_PRIORITY)]

    def route_flush(self) -> list[str]:
        return ["ip", f"-{self.family}", "route", "flush", "table", str(self.table)]


# --- pure planning ----------------------------------------------------------------------------------------


def allocate(targets: Iterable[str], previous: Mapping[str, int]) -> dict[str, int]:
    """An index per target: a target keeps its previous one, a new one takes the lowest free; targets
    beyond MAX_TARGETS get none (their routes degrade to forwarding)."""
    wanted = sorted(set(targets))
    out = {t: previous[t] for t in wanted if t in previous}
    free = (i for i in range(1, MAX_TARGETS + 1) if i not in set(out.values()))
    for target in wanted:
        if target not in out:
            index = next(free, None)
            if index is None:
                log.warning("event=steering-targets-exhausted target=%s max=%d", target, MAX_TARGETS)
                continue
            out[target] = index
    return out


def hop_from_route_get(target: str, listing: object) -> Hop | None:
    """The hop of `ip -j route get TARGET` output, None when the target is not usable (no route, local)."""
    if not isinstance(listing, list) or not listing or not isinstance(listing[0], dict):
        return None
    entry = listing[0]
    if str(entry.get("type", "unicast")) in UNUSABLE_TYPES or not entry.get("dev"):
        return None
    return Hop(str(entry.get("gateway") or target), str(entry["dev"]))


def commands(old: Mapping[str, SteerSpec], new: Mapping[str, SteerSpec]) -> list[list[str]]:
    """`ip` commands from `old` (installed) to `new`: routes before rules when adding (a rule never
    points at an empty table), rules before routes when removing."""
    out: list[list[str]] = []
    for target, spec in sorted(new.items()):
        before = old.get(target)
        if before == spec:
            continue
        out.append(spec.route_add())
        if before is None or before.index != spec.index:
            out.append(spec.rule("add"))
    for target, spec in sorted(old.items()):
        after = new.get(target)
        if after is None or after.index != spec.index:
            out.extend([spec.rule("del"), spec.route_flush()])
    return out


# --- applying ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Steering:
    """The policy routing of one node (`netns`: run `ip` there instead of here)."""

    netns: str | None = None
    timeout_s: float = 10.0
    installed: dict[str, SteerSpec] = field(default_factory=dict)
    runner: Runner | None = None     # stands in for subprocess (tests)

    def _run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if self.runner is not None:
            return self.runner(argv)
        full = ["ip", "-n", self.netns, *argv[1:]] if self.netns else list(argv)
        try:
            return subprocess.run(full, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess(full, 255, "", str(exc))

    def resolve(self, target: str) -> Hop | None:
        proc = self._run(["ip", "-j", "route", "get", target])
        if proc.returncode != 0:
            return None
        try:
            return hop_from_route_get(target, json.loads(proc.stdout))
        except ValueError:
            return None

    def sync(self, targets: Iterable[str]) -> dict[str, int]:
        """Install policy routing for the usable `targets`, remove it for the rest; target -> mark of
        those installed (what the nft plan may mark)."""
        hops = {t: self.resolve(t) for t in sorted(set(targets)) if _is_address(t)}
        usable = {t: h for t, h in hops.items() if h is not None}
        for target in sorted(set(hops) - set(usable)):
            log.warning("event=steering-target-unreachable target=%s action=forwarded", target)
        indices = allocate(usable, {t: s.index for t, s in self.installed.items()})
        new = {t: SteerSpec(t, i, usable[t]) for t, i in indices.items()}
        failed = self._execute(commands(self.installed, new))
        for spec in (s for s in new.values() if s.table in failed):   # half-installed: take it out again
            self._execute([spec.rule("del"), spec.route_flush()])
        self.installed = {t: s for t, s in new.items() if s.table not in failed}
        if new or failed:
            log.info("event=steering-synced targets=%d installed=%d failed=%d", len(hops),
                     len(self.installed), len(failed))
        return {t: s.mark for t, s in self.installed.items()}

    def _execute(self, argvs: Sequence[Sequence[str]]) -> set[int]:
        """Run the commands; the tables of those that failed (a failed `del` is fine: already gone)."""
        failed: set[int] = set()
        for argv in argvs:
            proc = self._run(argv)
            if proc.returncode != 0 and argv[3] not in ("del", "flush"):
                log.error("event=steering-command-failed argv=%r error=%r", " ".join(argv),
                          proc.stderr.strip()[:300])
                failed.add(int(argv[argv.index("table" if "table" in argv else "lookup") + 1]))
        return failed

    def clear_stale(self) -> int:
        """Remove rules an earlier run left at RULE_PRIORITY (crash, kill -9); how many were removed."""
        removed = 0
        for family in ("-4", "-6"):
            for _ in range(MAX_TARGETS + 1):
                if self._run(["ip", family, "rule", "del", "priority", str(RULE_PRIORITY)]).returncode:
                    break
                removed += 1
        if removed:
            log.warning("event=steering-stale-rules-removed count=%d", removed)
        return removed

    def close(self) -> None:
        """Remove everything (the enforcer stops: packets follow normal routing)."""
        self.sync(())


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
