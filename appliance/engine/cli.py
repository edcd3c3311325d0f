"""`savd scenarios run` and `savd rules show|explain`: the engine from the command line.

The functions `scenario_table`, `rules_view` and `explain_view` build printable structures from engine
results, so the daemon can serve the same views over its live snapshot.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.engine.explain import explain
from appliance.engine.loader import SnapshotError, load_scenario, load_snapshot
from appliance.engine.scenarios import ScenarioError, problems, run_scenario
from appliance.engine.snapshot import compute, decide, materialize
from appliance.model import SavRuleSet
from appliance.scenarios import SCENARIO_DIR

__all__ = ["explain_view", "register", "rules_view", "scenario_table"]

DEFAULT_SCENARIOS = SCENARIO_DIR


def register(subparsers: Any) -> None:
    sc = subparsers.add_parser(
        "scenarios", help="reference SAV scenarios: improper block/permit"
    )
    sc_sub = sc.add_subparsers(dest="scenarios_command", metavar="ACTION", required=True)
    run = sc_sub.add_parser("run", help="run every scenario with every algorithm and print the table")
    run.add_argument("--dir", type=Path, default=DEFAULT_SCENARIOS, help="folder of scenario YAML files")
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.set_defaults(func=_cmd_scenarios)

    rules = subparsers.add_parser("rules", help="computed SAV rules of a snapshot")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    show = rules_sub.add_parser("show", help="allow/block lists per router and interface")
    show.add_argument("--snapshot", type=Path, required=True, help="snapshot YAML/JSON file")
    show.add_argument("--router", help="only this router")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_cmd_show)
    exp = rules_sub.add_parser("explain", help="what happens to a source prefix or address, and why")
    exp.add_argument("prefix", help="source prefix or address")
    exp.add_argument("--snapshot", type=Path, required=True)
    exp.add_argument("--router", help="only this router")
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(func=_cmd_explain)


# --- views (reusable) -------------------------------------------------------------------------------------


def scenario_table(folder: Path) -> list[dict[str, Any]]:
    """One row per scenario and algorithm: improper block / permit, and whether the documents' claims hold."""
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        sc = load_scenario(path)
        results = run_scenario(sc)
        found = problems(sc, results)
        claims: dict[str, str] = {}
        for v in sc.data.get("verdicts", []):
            for algo in v["algorithm"] if isinstance(v["algorithm"], list) else [v["algorithm"]]:
                claims[algo] = str(v["outcome"])
        for algo, (_, score) in results.items():
            mine = [p for p in found if p.startswith((f"{sc.id} {algo}:", f"{sc.id} {algo} "))]
            rows.append(
                {
                    "scenario": sc.id,
                    "algorithm": algo,
                    "improper_block": score.improper_block,
                    "improper_permit": score.improper_permit,
                    "blocked": list(score.blocked),
                    "source_says": claims.get(algo, ""),
                    "reproduced": not mine,
                }
            )
        if found:
            rows.append({"scenario": sc.id, "algorithm": "-", "problems": found})
    return rows


def rules_view(rules: SavRuleSet, router: str | None = None) -> dict[str, Any]:
    data = rules.to_dict()
    if router is not None:
        data["rules"] = [r for r in data["rules"] if r["router"] == router]
    return data


def explain_view(
    rules: SavRuleSet,
    prefix: str,
    router: str | None = None,
    notes: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
) -> list[dict[str, Any]]:
    """Per interface: verdict, matched entries, the per-prefix reasons and the interface's engine notes."""
    notes = notes or {}
    return [
        {
            "router": e.router,
            "interface": e.interface,
            "verdict": str(e.verdict),
            "list": str(e.kind),
            "matched": list(e.matched),
            "algorithm": e.algorithm,
            "mode": e.mode,
            "reasons": list(e.reasons),
            "notes": list(notes.get((e.router, e.interface), ())),
        }
        for e in explain(rules, prefix, router)
    ]


# --- commands ---------------------------------------------------------------------------------------------


def _cmd_scenarios(args: argparse.Namespace) -> int:
    try:
        rows = scenario_table(args.dir)
    except (SnapshotError, ScenarioError) as exc:
        print(f"savd scenarios: {exc}", file=sys.stderr)
        return 2
    failed = [r for r in rows if r.get("problems")]
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
        return 1 if failed else 0
    print(f"{'scenario':34} {'algorithm':12} {'block':>5} {'permit':>6}  {'source says':16} blocked")
    for r in rows:
        if r.get("problems"):
            continue
        claim = r["source_says"] + ("" if r["reproduced"] else " NOT REPRODUCED")
        print(
            f"{r['scenario']:34} {r['algorithm']:12} {r['improper_block']:>5} {r['improper_permit']:>6}"
            f"  {claim or '-':16} {', '.join(r['blocked'])}"
        )
    for r in failed:
        for p in r["problems"]:
            print(f"MISMATCH {p}")
    for algo in ("auto", "auto-no-rpki"):
        mine = [r for r in rows if r.get("algorithm") == algo]
        worst = max((r["improper_block"] for r in mine), default=0)
        permit = sum(r["improper_permit"] for r in mine)
        print(f"default policy ({algo}): {len(mine)} scenarios, max improper block {worst}, "
              f"improper permit {permit} in all")
    return 1 if failed else 0


def _load_rules(path: Path) -> SavRuleSet | None:
    try:
        return compute(load_snapshot(path))
    except SnapshotError as exc:
        print(f"savd rules: {exc}", file=sys.stderr)
        return None


def _cmd_show(args: argparse.Namespace) -> int:
    rules = _load_rules(args.snapshot)
    if rules is None:
        return 2
    view = rules_view(rules, args.router)
    if args.json:
        print(json.dumps(view, indent=1, sort_keys=True))
        return 0
    for r in view["rules"]:
        act = r["action"]["mode"]
        head = f"{r['router']}:{r['interface']}  {r['kind']}list  {r['algorithm']}"
        print(f"{head}  mode={act}  via {r['delivery']}")
        for p in r["prefixes"]:
            print(f"    {p:24} {'; '.join(r['provenance'].get(p, []))}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    try:
        snapshot = load_snapshot(args.snapshot)
    except SnapshotError as exc:
        print(f"savd rules: {exc}", file=sys.stderr)
        return 2
    decisions = decide(snapshot)
    rules = materialize(snapshot, decisions)
    notes = {k: d.notes for k, d in decisions.items()}
    try:
        view = explain_view(rules, args.prefix, args.router, notes)
    except ValueError as exc:
        print(f"savd rules explain: not a prefix or address: {args.prefix} ({exc})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(view, indent=1, sort_keys=True))
        return 0
    for e in view:
        matched = ", ".join(e["matched"]) or "-"
        print(
            f"{e['router']}:{e['interface']}  {e['verdict']:7} ({e['list']}list {e['algorithm']}, "
            f"mode={e['mode']}) matched {matched}"
        )
        for why in e["reasons"]:
            print(f"    {why}")
        for note in e["notes"]:
            print(f"    note: {note}")
    return 0
