"""FlowRule -> the content of a GoBGP 3.10 `apipb.Path`, as plain typed values.

Pure: this module names the protobuf messages and their fields; appliance/speakers/gobgp.py builds
the messages from the generated stubs (the flowspec package may not import generated code).
- NLRI (FlowSpecNLRI rules): FlowSpecIPPrefix{type=2, prefix_len, prefix, offset=0}, and for the
  discriminator FlowSpecComponent{type=10, items=[{op=0x83 (end|gt|eq), value=N}]} ("packet-length >=N").
- Family: AFI 1 (IPv4) or 2 (IPv6), SAFI 133.
- Actions (RFC 8955 §7): discard = TrafficRateExtended{asn=0, rate=0}; rate = TrafficRateExtended
  {rate=N}; sample = TrafficActionExtended{sample=True}; redirect = Redirect{TwoOctetAs,FourOctetAs,
  IPv4Address}SpecificExtended; accept = no action community.
- Redirect to an IP next hop (REDIRECT_IP, steering; draft-ietf-idr-flowspec-redirect-ip): GoBGP 3.10's
  API has no such action (its Redirect*SpecificExtended are rt-redirect to a VRF), so `to_path` refuses
  the rule with UnsupportedAction naming it, never drops it silently: steer through an ExaBGP speaker.
- Interface set (draft-ietf-idr-flowspec-interfaceset; GoBGP 3.10 has no type for it): UnknownExtended
  {type=0x07, value = sub-type 0x02 | AS (4 octets) | I bit 0x4000 + group (2 octets)}, the same 8
  octets ExaBGP sends for `transitive:input:AS:GROUP`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from appliance.errors import InputError
from appliance.flowspec.rules import ActionKind, FlowRule

SAFI_FLOWSPEC = 133
OP_END_GT_EQ = 0x83
TYPE_SOURCE_PREFIX = 2
TYPE_PACKET_LENGTH = 10
INTERFACE_SET_TYPE = 0x07
INTERFACE_SET_SUBTYPE = 0x02
INPUT_BIT = 0x4000

Value = int | float | str | bool | bytes


@dataclass(frozen=True, slots=True)
class Message:
    """A protobuf message by name (in apipb) with its fields."""

    name: str
    fields: tuple[tuple[str, Value], ...]


@dataclass(frozen=True, slots=True)
class GoBgpFlowPath:
    afi: int
    source_prefix: str
    source_len: int
    components: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]   # (type, ((op, value), ...))
    communities: tuple[Message, ...]


class UnsupportedAction(InputError, ValueError):
    """A rule whose action GoBGP's API cannot carry (the configuration asks GoBGP for it: redirect-to-IP
    steering needs the ExaBGP speaker)."""


def interface_set_value(group: int, group_asn: int) -> bytes:
    """The 7 octets after the type octet: sub-type, AS, I bit + 14-bit group."""
    return struct.pack("!BIH", INTERFACE_SET_SUBTYPE, group_asn, INPUT_BIT | group)


def _action(rule: FlowRule) -> tuple[Message, ...]:
    action = rule.action
    if action.kind is ActionKind.REDIRECT_IP:
        raise UnsupportedAction(f"{rule}: GoBGP 3.10 has no redirect-to-IP-next-hop action "
                                "(draft-ietf-idr-flowspec-redirect-ip); push steering through ExaBGP")
    if action.kind is ActionKind.DISCARD:
        return (Message("TrafficRateExtended", (("asn", 0), ("rate", 0.0))),)
    if action.kind is ActionKind.RATE_LIMIT:
        return (Message("TrafficRateExtended", (("asn", 0), ("rate", float(action.rate_bps)))),)
    if action.kind is ActionKind.SAMPLE:
        return (Message("TrafficActionExtended", (("sample", True), ("terminal", False))),)
    if action.kind is ActionKind.REDIRECT:
        head, _, tail = action.redirect.rpartition(":")
        admin = ("local_admin", int(tail))
        if not head.isdigit():
            return (Message("RedirectIPv4AddressSpecificExtended", (("address", head), admin)),)
        size = "Two" if int(head) < 2**16 else "Four"
        return (Message(f"Redirect{size}OctetAsSpecificExtended", (("asn", int(head)), admin)),)
    return ()


def to_path(rule: FlowRule, group_asn: int = 0) -> GoBgpFlowPath:
    net = rule.match.network()
    comps: tuple[tuple[int, tuple[tuple[int, int], ...]], ...] = ()
    if rule.match.packet_length_min is not None:
        comps = ((TYPE_PACKET_LENGTH, ((OP_END_GT_EQ, rule.match.packet_length_min),)),)
    sets = tuple(Message("UnknownExtended", (("type", INTERFACE_SET_TYPE),
                                             ("value", interface_set_value(g, group_asn))))
                 for g in rule.groups)
    return GoBgpFlowPath(1 if net.version == 4 else 2, str(net.network_address), net.prefixlen, comps,
                         _action(rule) + sets)
