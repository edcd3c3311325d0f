"""A rule savd pushed that the router did not install raises an alarm (appliance.monitor.installed, wired in
DaemonContext.report_rules, fed by the enforcer poller); it clears once the router has it."""

from __future__ import annotations

from pathlib import Path

from appliance.config import parse_config
from appliance.daemon import DaemonContext
from appliance.flowspec.diff import FlowDiff
from appliance.flowspec.rules import ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.installed import install_findings
from appliance.state import StateStore
from appliance.state.pushed import record_diff

DROP = FlowAction(ActionKind.DISCARD)
P1 = FlowRule("r1", FlowMatch("198.18.1.0/24"), DROP, (1,))
P1_ETH2 = FlowRule("r1", FlowMatch("198.18.1.0/24"), DROP, (2,))
P2 = FlowRule("r1", FlowMatch("2001:db8:0:2::/64"), DROP, (1,))


def entry(rule: FlowRule, state: str = "installed", reason: str = "") -> dict[str, object]:
    return {"source": rule.match.source, "groups": list(rule.groups), "state": state, "reason": reason,
            "nlri": f"source {rule.match.source}"}


def test_missing_twice_running_or_not_installed_is_a_finding() -> None:
    pushed = [P1, P1_ETH2, P2]
    notices, missing = install_findings("r1", pushed, [entry(P1), entry(P2, "skipped", "tcp-flags")],
                                        frozenset())
    assert [(n.rule, n.reason) for n in notices] == [
        ("source 2001:db8:0:2::/64 groups [1]", "skipped: tcp-flags")]
    assert missing == {("198.18.1.0/24", (2,))}  # P1 for eth2: absent once, maybe not there yet
    notices, missing = install_findings("r1", pushed, [entry(P1), entry(P2)], missing)
    found = [(n.router, n.rule, n.installed) for n in notices]
    assert found == [("r1", "source 198.18.1.0/24 groups [2]", False)]
    assert "not in the router's FlowSpec table" in notices[0].reason
    notices, missing = install_findings("r1", pushed, [entry(P1), entry(P1_ETH2), entry(P2), {"bad": 1}],
                                        missing)
    assert notices == [] and missing == frozenset()


def test_an_unmapped_rule_is_held_one_poll_as_at_start_before_the_enforcer_read_the_group_file() -> None:
    for absent in (True, False):  # with or without the drift check: a listed rule is this check's
        notices, missing = install_findings("r1", [P1, P2], [entry(P1), entry(P2, "unmapped", "group 1")],
                                            frozenset(), absent=absent)
        assert notices == [] and missing == {("2001:db8:0:2::/64", (1,))}
        mapped, after = install_findings("r1", [P1, P2], [entry(P1), entry(P2)], missing, absent=absent)
        assert mapped == [] and after == frozenset()  # mapped by the next poll: never an alarm
        notices, _ = install_findings("r1", [P1, P2], [entry(P1), entry(P2, "unmapped", "group 1")],
                                      missing, absent=absent)
        assert [n.reason for n in notices] == ["unmapped: group 1"]  # still unmapped a poll later


def test_absent_rules_are_left_to_the_drift_check_when_it_runs() -> None:
    """With the drift check on (drift.py), a rule the router does not list is its alarm, not this one."""
    _, missing = install_findings("r1", [P1, P2], [entry(P1)], frozenset(), absent=False)
    notices, _ = install_findings("r1", [P1, P2], [entry(P1)], missing, absent=False)
    assert notices == []
    notices, _ = install_findings("r1", [P1, P2], [entry(P1), entry(P2, "skipped", "tcp-flags")], missing,
                                  absent=False)
    assert [n.reason for n in notices] == ["skipped: tcp-flags"]


def test_report_rules_raises_and_clears_alarms_for_the_routers_flowspec_peers(tmp_path: Path) -> None:
    config = parse_config(f"""
[timers]
drift_check_s = 0
[appliance]
asn = 65000
router_id = "198.18.20.10"
data_dir = "{tmp_path}"
[[speaker]]
name = "fs"
type = "exabgp"
  [[speaker.peers]]
  address = "198.18.255.1"
  asn = 65000
  router = "r1"
  families = ["ipv4-flowspec", "ipv6-flowspec"]
  [[speaker.peers]]
  address = "198.18.255.9"
  asn = 65000
  router = "r1"
  families = ["bgp-ls"]
""", tmp_path / "savd.toml")
    store, monitor = StateStore(), Monitor(ManualClock(1000.0))
    ctx = DaemonContext(config, store, monitor, CounterBoard(), None, None, None)  # type: ignore[arg-type]
    record_diff(store, "198.18.255.1", FlowDiff(announce=(P1, P2), withdraw=()))
    for _ in range(2):
        ctx.report_rules("r1", [entry(P1)])
    (alarm,) = monitor.alarms.active("rule-not-installed")
    assert alarm.fields["router"] == "r1" and "2001:db8:0:2::/64" in alarm.message
    ctx.report_rules("r1", [entry(P1), entry(P2)])
    assert monitor.alarms.active("rule-not-installed") == []
    ctx.report_rules("r2", [])  # no FlowSpec peer for r2: nothing pushed, nothing to miss
    assert monitor.alarms.active() == []
