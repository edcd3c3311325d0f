"""The one vocabulary of savd's events and alarms: every type a producer emits, its category, and when it
is raised and cleared.

Producers build events in many places (typed notices in events.py, speakers, sources, the FlowSpec
compiler, the RPKI service); this table is what they must agree with. `metadata.category_of` reads the
categories from it; the events table of docs/operator-guide.md is rendered from it by
scripts/build_man.py; tests/unit/daemon/test_vocabulary.py fails when that table is stale, when a typed
notice's type is not here, or when a producer hands an event constructor a type literal the table does
not hold.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Category(enum.StrEnum):
    """The classes of seeds/002 section 7 that savd emits."""

    SYSTEM_ALARM = "system-alarm"    # savd or one of its links (sessions, caches, journal, enforcers) fails
    SYSTEM_EVENT = "system-event"    # lifecycle and configuration changes (7.2.2): started, reports, rules
    SYSTEM_LOG = "system-log"        # plain log lines of the daemon's modules
    NSF_EVENT = "nsf-event"          # the SAV function: spoofing seen, a policy refused or not installed
    NSF_COUNTER = "nsf-counter"      # policy-hit counters of the enforcers (7.7.2)


@dataclass(frozen=True, slots=True)
class Kind:
    """One event type. `alarm`: it raises (or refreshes) an alarm; `cleared` says what clears it."""

    type: str
    category: Category
    alarm: bool
    raised: str
    cleared: str = ""


_A, _E, _N = Category.SYSTEM_ALARM, Category.SYSTEM_EVENT, Category.NSF_EVENT

VOCABULARY: tuple[Kind, ...] = (
    # sessions and feeds
    Kind("bgp.session-down", _A, True, "a speaker's BGP session goes down, or a managed gobgpd dies (alarm "
         "`bgp-session/<speaker>/<peer>`)", "`bgp.session-up` for the same peer"),
    Kind("bgp.session-up", _A, False, "a speaker's BGP session comes up (clears `bgp.session-down`)"),
    Kind("bgpls.peer-expired", _A, True, "a BGP-LS peer stayed down past its hold: its topology is withdrawn",
         "the peer is back"),
    Kind("speaker.event-failed", _A, True, "handling a speaker's event raised an error (logged with it)"),
    Kind("bmp.peer-down", _A, True, "a router's BGP peer goes down in its BMP feed (its paths withdrawn)"),
    Kind("bmp.router-down", _A, True, "a router's BMP session ends (its paths withdrawn after the hold)",
         "the router reconnects"),
    Kind("bmp.restored-expired", _A, False, "paths restored from the journal expired before the router's "
         "BMP feed came back"),
    Kind("bmp.malformed", _A, True, "a BMP message does not decode (router and detail named; the session "
         "keeps serving)"),
    Kind("bmp.neighbor-mismatch", _A, True, "a BMP peer's address matches no configured eBGP neighbour"),
    Kind("bmp.unknown-peer", _A, True, "a BMP feed names a router savd does not know"),
    Kind("bmp.event-failed", _A, True, "handling a BMP event raised an error (logged with it)"),
    Kind("rtr-session", _A, True, "an RTR session to a cache goes down (alarm `rtr-session/<cache>`; "
         "`rtr-task-died/<cache>` when its task died)", "it is in sync again"),
    Kind("rpki-stale", _A, True, "a source's data is older than `stale_after_s` (alarm "
         "`rpki-stale/<source>`)", "it is refreshed"),
    Kind("rpki-expired", _A, True, "a source's data is older than `expire_after_s`: the rules it supported "
         "are withdrawn", "it is refreshed"),
    Kind("rpki.file.invalid", _A, True, "an RPKI file turns bad (last good data kept)", "the file is good "
         "again"),
    Kind("rpki.file.missing", _A, True, "an RPKI file disappears (its data withdrawn)", "the file is back"),
    Kind("reports.file-error", _A, True, "the reports file does not load (file and field named; last good "
         "facts kept)", "the file loads"),
    Kind("enforcer-unreachable", _A, True, "an `[[enforcer]]` does not answer its poll", "it answers"),
    Kind("enforcer.session-down", _A, True, "an enforcer reports its BGP session with the router's FRR "
         "down for 15 s or more (reason and the enforcer's diagnosis, e.g. zebra not running; alarm "
         "`enforcer.session-down/<router>`)", "the enforcer reports the session established"),
    Kind("journal-failed", _A, True, "a journal write fails (critical: the input is refused, `/health` "
         "degraded)", "a write works again"),
    # delivery
    Kind("flowspec.push-failed", _A, True, "a FlowSpec push to a peer fails (the peer keeps what it had)"),
    Kind("flowspec.refused", _N, True, "a router's rule set is refused by a guardrail (a drop of a prefix "
         "the router learns on that interface); the router keeps what it had", "it passes"),
    Kind("flowspec.too-many-rules", _N, True, "a router's rule set is over `max_rules_per_router`; the "
         "router keeps what it had", "it passes"),
    Kind("flowspec.too-many-actions", _N, True, "a prefix needs more distinct (action, interface) rules "
         "than FlowSpec can order; the router keeps what it had", "it passes"),
    Kind("steering.no-inspector", _N, True, "no inspector (of the suspect's address family, below its "
         "capacity) can take a suspect: `[steering] fallback` applies (accept: fail open; drop)", "an "
         "inspector can take it, or the suspect is removed"),
    Kind("steering.too-many-rules", _N, True, "a router's SAV rules plus its steered rules are over "
         "`max_rules_per_router`: it gets its SAV rules without steering (the suspects keep their SAV "
         "verdict: fail open)", "the total fits again"),
    Kind("steering.scale-out", _N, True, "the inspectors' mean load/capacity is at or above `scale_out_at`: "
         "add an inspection instance", "the mean falls below"),
    Kind("steering.scale-in", _N, True, "the inspectors' mean load/capacity is at or below `scale_in_at` "
         "with more than one inspector: an instance can go", "the mean rises above, or one inspector is "
         "left"),
    Kind("collab.agreement-ended", _N, True, "a collaboration agreement with a peer AS ended or expired "
         "(warning; peer, ca_id, reason): the allowances of its SAV-specific information are withdrawn and "
         "the interfaces facing it fall back to the path-based rules (alarm `collab.agreement-ended/<peer>`)",
         "a new or renewed agreement with that peer"),
    Kind("flowspec.forced", _N, True, "a router's rule set blocks learned routes but `force` is set "
         "(warning)"),
    Kind("flowspec.bad-action", _N, True, "an interface's action cannot be encoded: the interface is left "
         "unfiltered"),
    Kind("flowspec.bad-prefix", _N, True, "an interface's list holds an unusable prefix: the interface is "
         "left unfiltered"),
    Kind("flowspec.bad-groups", _N, True, "a router's interfaces cannot be given interface-set group IDs: "
         "its rule set is refused"),
    Kind("flowspec.duplicate-interface", _N, True, "an interface is listed twice; the later list is ignored"),
    Kind("flowspec.empty-allowlist", _N, False, "an interface's allowlist is empty and is ignored (fail "
         "open)"),
    Kind("rule-not-installed", _N, True, "a rule savd pushed is not installed in the router's data plane: "
         "the enforcer lists it as skipped/degraded (reason given), as unmapped (no local interface for its "
         "group) in two polls running, or not at all in two polls running when the drift check is off",
         "it is installed"),
    Kind("drift.rule", _N, True, "a router holds a rule otherwise than savd intends, in two listings "
         "running (`kind` missing, extra or changed; `repairs`); savd re-pushes it (alarm "
         "`drift.rule/<router>/<rule>`)", "the router holds what savd intends"),
    Kind("stale.rule", _N, True, "a rule in force rests on RPKI data past `stale_after_s` (it stays in "
         "force; alarm `stale.rule/<router>/<interface>`)", "the data is fresh, or expired and withdrawn"),
    # the SAV function and its inputs
    Kind("spoofing-seen", _N, True, "an enforcer's drop counter rises: router, interface, source prefix, "
         "packets, bytes; for an allowlist's catch-all (0.0.0.0/0, ::/0) also `top_sources` "
         "(`198.18.7.0/24:15,198.18.9.0/24:3`: the actual sources, aggregated to /24 or /48, packets of this "
         "rise, most first; bytes in `top_source_bytes`), also in the message", "quiet for 60 s"),
    Kind("report-conflict", _N, True, "the same prefix is bound to two subnets", "resolved"),
    Kind("report-overlap", _N, True, "a reported prefix lies inside another subnet's prefix", "resolved"),
    Kind("report-overridden", _E, False, "a report of a lower-precedence source is overridden (api > file > "
         "bgp-ls)"),
    Kind("report-changed", _E, False, "a report is added, changed or removed"),
    Kind("rules-changed", _E, False, "a recompute changed rules (added, removed, changed counts), or failed"),
    Kind("state-restored", _E, False, "savd started from its journal (state and rules versions)"),
    Kind("daemon", _E, False, "savd started, stopped, reloaded, or an operator acted on an alarm"),
)

BY_TYPE: dict[str, Kind] = {k.type: k for k in VOCABULARY}


def kind_of(type_: str) -> Kind | None:
    return BY_TYPE.get(type_)


def markdown_table() -> str:
    """The events table of docs/operator-guide.md."""
    rows = ["| Type | Category | Raised when | Cleared when |", "|---|---|---|---|"]
    for k in VOCABULARY:
        what = k.raised if k.alarm else f"(event) {k.raised}"
        rows.append(f"| `{k.type}` | {k.category} | {what} | {k.cleared} |")
    return "\n".join(rows) + "\n"
