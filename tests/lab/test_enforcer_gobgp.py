"""The same proof with GoBGP as the speaker: a SavRuleSet compiled by appliance.flowspec, pushed by
appliance.speakers.gobgp (gobgpd in namespace g, eBGP to FRR), enforced by savd-enforcer in r.

Rule set: r-h1 (h1's side) allowlist 198.18.101.0/24 and 2001:db8:101::/64 (default discard below);
interface group 7 = r-h1 as in the testbed's enforcer mapping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.testbed import Testbed, wait_for

from appliance.flowspec.compiler import CompileOptions, compile_ruleset
from appliance.flowspec.rules import FlowRule
from appliance.model import InterfaceRules, ListKind, SavRuleSet

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PEER = "198.18.100.5"


@pytest.fixture(scope="module")
def tb(require_root: None) -> Iterator[Testbed]:
    bed = Testbed(gobgp=True)
    try:
        bed.up()
        yield bed
    finally:
        bed.down()


def compiled() -> tuple[FlowRule, ...]:
    ruleset = SavRuleSet.of(
        [InterfaceRules("r", "r-h1", ListKind.ALLOW, ("198.18.101.0/24", "2001:db8:101::/64"))]
    )
    return compile_ruleset(ruleset, CompileOptions(group_ids={("r", "r-h1"): 7})).rules()


def states(tb: Testbed) -> dict[str, str]:
    return {r["source"]: r["state"] for r in tb.enforcer_get("/counters")["rules"]}


def delivered(tb: Testbed, source: str, count: int) -> int:
    before = tb.rx_counter(source)
    (tb.send_v6 if ":" in source else tb.send_v4)(source, count)
    time.sleep(0.3)
    return tb.rx_counter(source) - before


def test_gobgp_pushed_allowlist_is_enforced_then_withdrawn(tb: Testbed) -> None:
    rules = compiled()
    assert {str(r.action) for r in rules} == {"accept", "discard"}
    tb.gobgp_call("announce", PEER, rules)
    want = {r.match.source: "installed" for r in rules}
    assert {"198.18.101.0/24", "0.0.0.0/0", "2001:db8:101::/64", "::/0"} <= set(want)

    def installed() -> dict[str, Any] | None:
        return {"ok": True} if states(tb) == want else None

    wait_for(f"enforcer holds {want}", installed, 30, 0.2)
    assert delivered(tb, "198.18.101.10", 20) == 20
    assert delivered(tb, "2001:db8:101::10", 10) == 10
    assert delivered(tb, "198.18.99.1", 20) == 0
    assert delivered(tb, "2001:db8:99::1", 10) == 0
    tb.gobgp_call("withdraw", PEER, rules)
    wait_for("enforcer table empty", lambda: {"ok": True} if states(tb) == {} else None, 30, 0.2)
    assert delivered(tb, "198.18.99.2", 20) == 20
    assert delivered(tb, "2001:db8:99::2", 10) == 10
