"""FlowRule -> ExaBGP 5.0 text API commands.

    announce flow route { match { source 198.18.1.0/24; packet-length >=0; }
                          scope { interface-set [ transitive:input:0:7 ]; } then { discard; } }
    withdraw flow route { match { source 198.18.1.0/24; packet-length >=0; } }

The interface-set community is transitive, direction input (I bit), with `group_asn` as its AS field.
`scope { }` must precede `then { }`: inside `then` ExaBGP rejects it. A per-neighbour prefix
("neighbor 198.18.0.1 ") is added by the caller. Same syntax for IPv4 and IPv6 (the family follows
the prefix; IPv6 offset 0). A rule without groups (steering: every interface) has no `scope { }`.
REDIRECT_IP is `redirect-to-nexthop-ietf <ip>;` (draft-ietf-idr-flowspec-redirect-ip: ExaBGP 5.0 sends
the IPv4 or IPv6 "redirect to IP next hop" extended community; exabgp/configuration/flow/parser.py).
"""

from __future__ import annotations

from appliance.flowspec.rules import ActionKind, FlowAction, FlowMatch, FlowRule


def _match(match: FlowMatch) -> str:
    parts = [f"source {match.source};"]
    if match.packet_length_min is not None:
        parts.append(f"packet-length >={match.packet_length_min};")
    return "match { " + " ".join(parts) + " }"


def _then(action: FlowAction) -> str:
    body = {
        ActionKind.ACCEPT: "accept;",
        ActionKind.SAMPLE: "action sample;",
        ActionKind.DISCARD: "discard;",
        ActionKind.RATE_LIMIT: f"rate-limit {action.rate_bps};",
        ActionKind.REDIRECT: f"redirect {action.redirect};",
        ActionKind.REDIRECT_IP: f"redirect-to-nexthop-ietf {action.redirect_ip};",
    }[action.kind]
    return "then { " + body + " }"


def _scope(groups: tuple[int, ...], group_asn: int) -> str:
    sets = " ".join(f"transitive:input:{group_asn}:{g}" for g in groups)
    return "scope { interface-set [ " + sets + " ]; }"


def announce(rule: FlowRule, group_asn: int = 0) -> str:
    scope = f" {_scope(rule.groups, group_asn)}" if rule.groups else ""
    body = f"{_match(rule.match)}{scope} {_then(rule.action)}"
    return f"announce flow route {{ {body} }}"


def withdraw(rule: FlowRule) -> str:
    return f"withdraw flow route {{ {_match(rule.match)} }}"
