"""Applies enforcer plans to the kernel with the nft CLI, and reads counters back (the imperative shell).

Owns: running `nft -f -` (one atomic transaction per change), choosing an incremental transaction when
the previous plan is known to be in the kernel and a whole-table replacement otherwise or when the
incremental one fails, sending a change of set elements only as one netlink batch instead (`nftnl.py`:
nft lists a whole interval set before it changes one element, ~40 ms at 10k), reading
`nft -j list table`, and keeping counters monotonic across replacements (counts of objects a
transaction destroys are added to a per-route base).

Counts on the hot path: an incremental transaction changes set elements in place, so every element it
keeps keeps its kernel counter. What it destroys (a withdrawn or moved element, a gone set or named
counter) is banked from the last reading (`counters()`, every reconcile tick) rather than read again
first: reading costs one `nft list` per set, which is what made a 10-route delta take seconds. The
price: packets counted on a destroyed object since the last reading are lost (a moved route's total
stays monotonic). A whole-table replacement (not the hot path) still reads exactly what it destroys.
Commands run in the current network namespace, or in `netns` via `ip netns exec` (tests, bench).

Reading without blocking changes: `read()` lists the table and attributes it to the applied plan without
changing anything here, so it may run while a transaction runs (a 10k-route table takes ~0.3-0.5 s to
list); `take()` then commits it only if no transaction ended since the reading began (`epoch`),
otherwise the reading is stale (its counts may be banked already) and is dropped.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.enforcer.nftnl import ElementChange, NetlinkError, Unencodable, apply_elements
from appliance.enforcer.nftplan import (
    Counters,
    Plan,
    PlanDiff,
    TopSource,
    counters_from_listing,
    elements_only,
    plan_diff,
    render_full,
    render_incremental,
    top_sources_from_listing,
    verify_listing,
)
from appliance.errors import ExternalError

log = logging.getLogger(__name__)

__all__ = ["ApplyResult", "NftError", "NftTable", "Reading"]


class NftError(ExternalError, RuntimeError):
    """nft refused a transaction or could not be run; `text` is the (truncated) input."""

    def __init__(self, message: str, *, text: str = "") -> None:
        super().__init__(message)
        self.text = text


@dataclass(frozen=True, slots=True)
class ApplyResult:
    mode: str          # "elements" (netlink), "incremental", "full", "delete", "unchanged"
    seconds: float
    bytes: int


@dataclass(frozen=True, slots=True)
class Reading:
    """One listing of the table attributed to the plan applied when it began (`NftTable.read`)."""

    epoch: int
    plan: Plan | None
    counters: dict[str, Counters]   # this listing's kernel counts per counter key (nothing banked)
    problems: list[str]             # differences between `plan` and the listing
    top: dict[str, tuple[TopSource, ...]] = field(default_factory=dict)   # catch-alls' top sources


@dataclass(slots=True)
class NftTable:
    """The enforcer's table in one network namespace."""

    table: str = "savd_enforcer"
    netns: str | None = None
    nft_bin: str = "nft"
    applied: Plan | None = None
    base: dict[str, Counters] = field(default_factory=dict)
    seen: dict[str, Counters] = field(default_factory=dict)   # last kernel reading per counter key
    timeout_s: float = 120.0
    epoch: int = 0      # transactions ended (applied or failed); a reading begun before one is stale
    top: dict[str, tuple[TopSource, ...]] = field(default_factory=dict)   # of the last reading taken
    netlink: bool = True   # element-only changes as one netlink batch (nftnl.py) rather than through nft

    def _argv(self, args: Sequence[str]) -> list[str]:
        argv = [self.nft_bin, *args]
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def _run(self, args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(self._argv(args), input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NftError(f"nft {' '.join(args)}: {exc}") from exc

    def load(self, text: str) -> None:
        proc = self._run(["-f", "-"], text)
        if proc.returncode != 0:
            raise NftError(f"nft -f failed (exit {proc.returncode}): {proc.stderr.strip()[:2000]}",
                           text=text[:4000])

    def listing(self) -> dict[str, Any] | None:
        """`nft -j list table inet TABLE` as JSON, or None when the table does not exist."""
        proc = self._run(["-j", "list", "table", "inet", self.table])
        if proc.returncode != 0:
            if "No such file or directory" in proc.stderr or "does not exist" in proc.stderr:
                return None
            raise NftError(f"nft list table failed: {proc.stderr.strip()[:500]}")
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise NftError(f"nft -j printed invalid JSON: {exc}") from exc
        return data if isinstance(data, dict) else None

    def apply(self, plan: Plan) -> ApplyResult:
        """Make the kernel hold `plan`; incremental when possible, else one whole-table transaction."""
        try:
            return self._apply(plan)
        finally:
            self.epoch += 1

    def _apply(self, plan: Plan) -> ApplyResult:
        if plan.table != self.table:
            raise NftError(f"plan renders table {plan.table!r} but this applier manages {self.table!r}")
        started = time.monotonic()
        old = self.applied
        if plan.empty:
            if old is None and self.listing() is None:
                self.applied = plan
                return ApplyResult("unchanged", time.monotonic() - started, 0)
            self._bank(old)
            text = render_full(plan)
            self.load(text)
            self.applied = plan
            return ApplyResult("delete", time.monotonic() - started, len(text))
        if old is not None and not old.empty:
            diff = elements_only(old, plan) if self.netlink else None
            if diff is not None and (sent := self._apply_elements(diff)) is not None:
                self._bank_seen(old, diff)
                self.applied = plan
                return ApplyResult("elements", time.monotonic() - started, sent)
            text = render_incremental(old, plan)
            try:
                self.load(text)
            except NftError as exc:
                log.warning("event=nft-incremental-failed table=%s error=%r", self.table, str(exc)[:300])
            else:
                self._bank_seen(old, diff if diff is not None else plan_diff(old, plan))
                self.applied = plan
                return ApplyResult("incremental", time.monotonic() - started, len(text))
        self._bank(old)
        text = render_full(plan)
        self.load(text)
        self.applied = plan
        return ApplyResult("full", time.monotonic() - started, len(text))

    def _apply_elements(self, diff: PlanDiff) -> int | None:
        """A change of set elements only (`elements_only`), straight to the kernel (bytes sent); None
        when the kernel refused it or the batch cannot carry it, and nft is to do it (the batch is atomic:
        a refused one left nothing behind)."""
        try:
            return apply_elements(self.table, [ElementChange(spec.name, removed, added)
                                               for spec, removed, added in diff.changed_sets], self.netns)
        except Unencodable:
            return None
        except NetlinkError as exc:
            log.warning("event=nft-netlink-failed table=%s error=%r", self.table, str(exc)[:300])
            return None

    def _bank_seen(self, old: Plan, diff: PlanDiff) -> None:
        """After an incremental transaction (`diff`, from `old`): bank the last reading of every counter key
        whose object it destroyed (no nft round trip; see the module docstring)."""
        old_sets = {s.name: s for s in old.sets}
        gone: set[str] = set()
        for spec in diff.gone_sets:
            gone.update(spec.owners)
        for spec, removed, _ in diff.changed_sets:
            if removed:
                owner_of = old_sets[spec.name].owner_of()
                gone.update(owner_of[e] for e in removed)
        gone.update(old.counter_owner[name][0] for name in diff.gone_counters if name in old.counter_owner)
        for key in gone:
            value = self.seen.pop(key, None)
            if value is not None:
                self.base[key] = self.base.get(key, Counters()) + value

    def _bank(self, old: Plan | None) -> None:
        """Before a whole-table replacement: read every set and named counter of `old` (one `nft list`
        per set, never the whole table: with 100k elements a full `nft -j list table` takes seconds) and
        add their counts to the per-route base."""
        self.seen = {}
        if old is None or old.empty:
            return
        gone_sets = old.set_names()
        gone_counters = set(old.counters)
        items: list[Any] = []
        try:
            for name in sorted(gone_sets):
                items.extend(self._list(["list", "set", "inet", self.table, name]))
            if gone_counters:
                items.extend(i for i in self._list(["list", "counters", "table", "inet", self.table])
                             if "counter" in i and i["counter"].get("name") in gone_counters)
        except NftError as exc:
            log.warning("event=nft-counter-read-failed table=%s error=%r", self.table, str(exc))
            return
        for rid, value in counters_from_listing(old, {"nftables": items}).items():
            self.base[rid] = self.base.get(rid, Counters()) + value

    def _list(self, args: Sequence[str]) -> list[Any]:
        proc = self._run(["-j", *args])
        if proc.returncode != 0:
            raise NftError(f"nft {' '.join(args)}: {proc.stderr.strip()[:300]}")
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise NftError(f"nft -j printed invalid JSON: {exc}") from exc
        return list(data.get("nftables", [])) if isinstance(data, dict) else []

    def counters(self) -> tuple[dict[str, Counters], list[str]]:
        """Monotonic per-route counters and the differences between the plan and the kernel."""
        for _ in range(3):
            taken = self.take(self.read())
            if taken is not None:
                return taken
        raise NftError(f"table {self.table} changed during every reading (transactions in another thread)")

    def read(self) -> Reading:
        """List the table and attribute it to the applied plan; changes nothing here, so it may run
        beside `apply` (in another thread); commit it with `take`."""
        epoch, plan = self.epoch, self.applied
        listing = self.listing()
        if plan is None:
            return Reading(epoch, None, {}, [] if listing is None else ["table present, nothing applied yet"])
        current = counters_from_listing(plan, listing) if listing else {}
        top = top_sources_from_listing(plan, listing) if listing else {}
        return Reading(epoch, plan, current, verify_listing(plan, listing), top)

    def take(self, reading: Reading) -> tuple[dict[str, Counters], list[str]] | None:
        """Commit a reading: monotonic per-route counters and its problems; None when a transaction ended
        since it began (its counts may be banked already, its problems outdated): read again."""
        if reading.epoch != self.epoch or reading.plan is not self.applied:
            return None
        self.top = dict(reading.top)
        if reading.plan is None:
            return dict(self.base), list(reading.problems)
        self.seen = dict(reading.counters)
        total = dict(self.base)
        for rid, value in reading.counters.items():
            total[rid] = total.get(rid, Counters()) + value
        return total, list(reading.problems)

    def repair(self, problems: Sequence[str]) -> None:
        """The kernel drifted from the applied plan (`problems` from a reading): re-apply it whole."""
        plan = self.applied
        if problems and plan is not None:
            log.warning("event=nft-drift table=%s problems=%r", self.table, list(problems)[:5])
            self.applied = None
            self.apply(plan)

    def reconcile(self) -> tuple[dict[str, Counters], list[str]]:
        """One read of the table: counters, and a whole-plan re-apply if the kernel drifted (table
        flushed, set or rule lost). Returns the counters and the problems found (before repair)."""
        total, problems = self.counters()
        self.repair(problems)
        return total, problems

    def delete(self) -> None:
        """Remove the table if present (shutdown; idempotent)."""
        try:
            if self.listing() is not None:
                self.load(f"delete table inet {self.table}\n")
            self.applied = None
        finally:
            self.epoch += 1
