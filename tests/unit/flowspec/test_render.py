"""Renderers: ExaBGP API text (golden lines) and GoBGP path content, cross-checked on the
interface-set community bytes ExaBGP 5.0.15 was measured to send."""

from __future__ import annotations

import pytest

from appliance.flowspec import ACCEPT, ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.flowspec import render_exabgp as exa
from appliance.flowspec import render_gobgp as gob

DISCARD = FlowAction(ActionKind.DISCARD)


@pytest.mark.parametrize(
    ("rule", "line"),
    [
        (FlowRule("r1", FlowMatch("198.18.1.0/24"), DISCARD, (7,)),
         "announce flow route { match { source 198.18.1.0/24; } "
         "scope { interface-set [ transitive:input:0:7 ]; } then { discard; } }"),
        (FlowRule("r1", FlowMatch("2001:db8:1::/48", 0), ACCEPT, (7, 9)),
         "announce flow route { match { source 2001:db8:1::/48; packet-length >=0; } "
         "scope { interface-set [ transitive:input:0:7 transitive:input:0:9 ]; } then { accept; } }"),
        (FlowRule("r1", FlowMatch("0.0.0.0/0"), FlowAction(ActionKind.SAMPLE), (1,)),
         "announce flow route { match { source 0.0.0.0/0; } "
         "scope { interface-set [ transitive:input:0:1 ]; } then { action sample; } }"),
        (FlowRule("r1", FlowMatch("198.18.0.0/15", 3), FlowAction(ActionKind.RATE_LIMIT, rate_bps=12500),
                  (2,)),
         "announce flow route { match { source 198.18.0.0/15; packet-length >=3; } "
         "scope { interface-set [ transitive:input:0:2 ]; } then { rate-limit 12500; } }"),
        (FlowRule("r1", FlowMatch("198.18.2.0/24"), FlowAction(ActionKind.REDIRECT, redirect="65001:100"),
                  (2,)),
         "announce flow route { match { source 198.18.2.0/24; } "
         "scope { interface-set [ transitive:input:0:2 ]; } then { redirect 65001:100; } }"),
    ],
)
def test_exabgp_announce(rule: FlowRule, line: str) -> None:
    assert exa.announce(rule) == line


def test_exabgp_withdraw_carries_only_the_match() -> None:
    rule = FlowRule("r1", FlowMatch("198.18.1.0/24", 1), DISCARD, (7,))
    assert exa.withdraw(rule) == "withdraw flow route { match { source 198.18.1.0/24; packet-length >=1; } }"


def test_interface_set_bytes_match_exabgp() -> None:
    # ExaBGP 5.0.15 sent `transitive:input:1:7` as 504966108218998791
    raw = bytes([gob.INTERFACE_SET_TYPE]) + gob.interface_set_value(7, 1)
    assert int.from_bytes(raw, "big") == 504966108218998791


@pytest.mark.parametrize(
    ("action", "messages"),
    [
        (DISCARD, [("TrafficRateExtended", (("asn", 0), ("rate", 0.0)))]),
        (ACCEPT, []),
        (FlowAction(ActionKind.SAMPLE), [("TrafficActionExtended", (("sample", True), ("terminal", False)))]),
        (FlowAction(ActionKind.RATE_LIMIT, rate_bps=9600),
         [("TrafficRateExtended", (("asn", 0), ("rate", 9600.0)))]),
        (FlowAction(ActionKind.REDIRECT, redirect="65001:100"),
         [("RedirectTwoOctetAsSpecificExtended", (("asn", 65001), ("local_admin", 100)))]),
        (FlowAction(ActionKind.REDIRECT, redirect="4200000001:5"),
         [("RedirectFourOctetAsSpecificExtended", (("asn", 4200000001), ("local_admin", 5)))]),
        (FlowAction(ActionKind.REDIRECT, redirect="198.18.0.1:5"),
         [("RedirectIPv4AddressSpecificExtended", (("address", "198.18.0.1"), ("local_admin", 5)))]),
    ],
)
def test_gobgp_path(action: FlowAction, messages: list[tuple[str, object]]) -> None:
    path = gob.to_path(FlowRule("r1", FlowMatch("2001:db8::/32", 2), action, (5,)), group_asn=65000)
    assert (path.afi, path.source_prefix, path.source_len) == (2, "2001:db8::", 32)
    assert path.components == ((10, ((0x83, 2),)),)
    got = [(m.name, m.fields) for m in path.communities]
    assert got[: len(messages)] == messages
    iset = gob.interface_set_value(5, 65000)
    assert got[len(messages):] == [("UnknownExtended", (("type", 7), ("value", iset)))]


def test_interface_set_bytes_match_exabgp_qa_corpus(shared_data: object) -> None:
    """ExaBGP's qa/api/api-flow-merge.ci decodes `interface-set:input:3405770241:1` (non-transitive,
    0x47); the 7 octets after the type must equal ours for that AS and group."""
    import json
    from pathlib import Path

    text = (Path(str(shared_data)) / "flowspec" / "exabgp-qa-api" / "api-flow-merge.ci").read_text()
    values = {}
    for line in text.splitlines():
        if ":json:" in line:
            doc = json.loads(line.split(":json:", 1)[1])
            for comm in doc["neighbor"]["message"]["update"]["attribute"].get("extended-community", []):
                values[comm["string"]] = comm["value"]
    raw = values["interface-set:input:3405770241:1"].to_bytes(8, "big")
    assert raw[0] == 0x47 and raw[1:] == gob.interface_set_value(1, 3405770241)
