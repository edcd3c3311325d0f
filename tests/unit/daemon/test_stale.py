"""Rules resting on RPKI data past its stale bound are flagged (appliance.monitor.stale) and stay in force;
the stale.rule alarm clears when the data is fresh again."""

from __future__ import annotations

from appliance.model import InterfaceRules, ListKind, SavRuleSet
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.freshness import FreshnessWatch
from appliance.monitor.stale import stale_findings

BORDER = InterfaceRules("r4", "eth2", ListKind.BLOCK, ("198.18.1.0/24",),
                        provenance={"198.18.1.0/24": ("algorithm:bar-sav", "roa:198.18.0.0/15-24 AS65000")})
ACCESS = InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",),
                        provenance={"198.18.1.0/24": ("report:1@r1:eth1",)})
RULES = SavRuleSet((BORDER, ACCESS))


def test_only_rules_resting_on_stale_rpki_are_flagged() -> None:
    assert stale_findings(RULES, []) == []
    (notice,) = stale_findings(RULES, ["rtr:stayrtr"])
    assert (notice.router, notice.interface, notice.inputs) == ("r4", "eth2", "RPKI rtr:stayrtr")
    assert notice.alarm_id == "stale.rule/r4/eth2" and notice.raises


def test_stale_alarm_follows_the_freshness_watch() -> None:
    monitor, watch = Monitor(ManualClock(0.0)), FreshnessWatch(stale_after_s=60, expire_after_s=600)
    watch.check({"rtr:stayrtr": 0.0}, 10.0)
    assert watch.stale_sources() == []
    watch.check({"rtr:stayrtr": 0.0}, 100.0)
    assert watch.stale_sources() == ["rtr:stayrtr"]
    monitor.reconcile_notices("stale-rules", stale_findings(RULES, watch.stale_sources()))
    (alarm,) = monitor.alarms.active("stale.rule")
    assert alarm.fields["router"] == "r4" and "rtr:stayrtr" in alarm.message
    watch.check({"rtr:stayrtr": 0.0}, 700.0)  # expired: its data (and rules) are withdrawn, not "stale"
    assert watch.stale_sources() == []
    monitor.reconcile_notices("stale-rules", stale_findings(RULES, watch.stale_sources()))
    assert monitor.alarms.active("stale.rule") == []
