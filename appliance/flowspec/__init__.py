"""SAV rule sets -> minimal, ordered FlowSpec rules; renderers for ExaBGP text and GoBGP; push diffs.

Pure (no I/O): imports only appliance.model, the standard library and py-radix.
"""

from appliance.flowspec import render_exabgp, render_gobgp
from appliance.flowspec.compiler import CompileOptions, TableCache, compile_ruleset, flow_action
from appliance.flowspec.diff import FlowDiff, diff
from appliance.flowspec.evaluate import evaluate, first_match
from appliance.flowspec.rules import (
    ACCEPT,
    ActionKind,
    FlowAction,
    FlowMatch,
    FlowRule,
    FlowSpecPlan,
    InterfaceGroup,
    RouterFlowSpec,
    RouterStats,
    sort_rules,
)

__all__ = [
    "ACCEPT",
    "ActionKind",
    "CompileOptions",
    "FlowAction",
    "FlowDiff",
    "FlowMatch",
    "FlowRule",
    "FlowSpecPlan",
    "InterfaceGroup",
    "RouterFlowSpec",
    "RouterStats",
    "TableCache",
    "compile_ruleset",
    "diff",
    "evaluate",
    "first_match",
    "flow_action",
    "render_exabgp",
    "render_gobgp",
    "sort_rules",
]
