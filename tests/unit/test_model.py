from appliance.model import (
    Action,
    InterfaceRules,
    ListKind,
    Mode,
    SavRuleSet,
    canonical_prefix,
)


def test_canonical_prefix_normalises_ipv6_and_rejects_host_bits() -> None:
    assert canonical_prefix("2001:DB8:0::/32") == "2001:db8::/32"
    try:
        canonical_prefix("198.18.0.1/24")
    except ValueError:
        pass
    else:
        raise AssertionError("host bits accepted")


def test_ruleset_is_canonical_and_round_trips() -> None:
    a = InterfaceRules("r2", "eth1", ListKind.ALLOW, ("2001:db8::/32", "198.18.1.0/24", "198.18.0.0/24"))
    b = InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.0.0/16",), Action(Mode.MONITOR))
    rs = SavRuleSet.of([a, b])
    assert [r.router for r in rs.rules] == ["r1", "r2"]
    assert rs.rules[1].prefixes == ("198.18.0.0/24", "198.18.1.0/24", "2001:db8::/32")
    again = SavRuleSet.from_dict(rs.to_dict())
    assert again.to_json() == rs.to_json()
    assert SavRuleSet.of([b, a]).to_json() == rs.to_json()


def test_diff_reports_added_removed_changed() -> None:
    a = InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.0.0/24",))
    a2 = InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.0.0/23",))
    b = InterfaceRules("r2", "eth1", ListKind.BLOCK, ("198.18.0.0/16",))
    d = SavRuleSet.of([a, b]).diff(SavRuleSet.of([a2]))
    assert [r.router for r in d.removed] == ["r2"]
    assert d.changed[0][1].prefixes == ("198.18.0.0/23",)
    assert not d.added
    assert SavRuleSet.of([a]).diff(SavRuleSet.of([a])).empty()
