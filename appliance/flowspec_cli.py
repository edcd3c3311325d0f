"""`savd flowspec compile FILE`: compile a SavRuleSet (the JSON of `savd rules show --json`) into the
FlowSpec rules each router would receive, with the interface-group mapping and rules emitted vs the
exact CIDR cover. Output as text, ExaBGP API lines or JSON. Exit 1 on unreadable input, 3 when a
guardrail refused a router."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.flowspec import CompileOptions, FlowSpecPlan, compile_ruleset, render_exabgp
from appliance.model import SavRuleSet


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("flowspec", help="compile SAV rule sets into FlowSpec rules")
    sub = parser.add_subparsers(dest="flowspec_command", metavar="ACTION", required=True)
    comp = sub.add_parser("compile", help="print the FlowSpec rules of a SavRuleSet JSON file")
    comp.add_argument("file", help="SavRuleSet JSON (savd rules show --json)")
    comp.add_argument("--router", help="only this router")
    comp.add_argument("--format", choices=["text", "exabgp", "json"], default="text")
    comp.add_argument("--max-rules", type=int, default=CompileOptions().max_rules_per_router,
                      help="refuse a router above this many rules")
    comp.add_argument("--force", action="store_true", help="override the learned-route guardrail")
    comp.add_argument("--group-asn", type=int, default=0, help="AS field of the interface-set community")
    comp.set_defaults(func=run_compile)


def load_ruleset(path: str) -> SavRuleSet:
    """Read a SavRuleSet JSON file; ValueError naming the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
        return SavRuleSet.from_dict(data)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a SavRuleSet ({type(exc).__name__}: {exc})") from exc


def plan_view(plan: FlowSpecPlan) -> dict[str, Any]:
    return {
        "routers": [{
            "router": r.router, "refused": r.refused,
            "emitted": r.stats.emitted, "exact_cover": r.stats.exact_cover,
            "groups": [{"interface": g.interface, "group_id": g.group_id} for g in r.groups],
            "rules": [{"source": x.match.source, "packet_length_min": x.match.packet_length_min,
                       "action": str(x.action.kind), "rate_bps": x.action.rate_bps,
                       "redirect": x.action.redirect, "groups": list(x.groups)} for x in r.rules],
        } for r in plan.routers],
        "events": [e.to_dict() for e in plan.events],
    }


def _print_text(plan: FlowSpecPlan, group_asn: int, exabgp: bool) -> None:
    for r in plan.routers:
        groups = " ".join(f"{g.interface}={g.group_id}" for g in r.groups)
        state = "REFUSED" if r.refused else f"{r.stats.emitted} rules (exact cover {r.stats.exact_cover})"
        print(f"# {r.router}: {state}; groups {groups}")
        for rule in r.rules:
            print(render_exabgp.announce(rule, group_asn) if exabgp else f"  {rule.match} -> {rule.action} "
                  f"groups {','.join(str(g) for g in rule.groups)}")
    for e in plan.events:
        print(f"# {e.severity} {e.type}: {e.message}", file=sys.stderr)


def run_compile(args: argparse.Namespace) -> int:
    try:
        ruleset = load_ruleset(args.file)
    except ValueError as exc:
        print(f"savd flowspec: {exc}", file=sys.stderr)
        return 1
    if args.router:
        ruleset = SavRuleSet(ruleset.for_router(args.router))
    plan = compile_ruleset(ruleset, CompileOptions(max_rules_per_router=args.max_rules, force=args.force))
    if args.format == "json":
        print(json.dumps(plan_view(plan), indent=1, sort_keys=True))
    else:
        _print_text(plan, args.group_asn, args.format == "exabgp")
    return 3 if any(r.refused for r in plan.routers) else 0
