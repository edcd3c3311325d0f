"""IGP route tags -> SAV subnet IDs and prefix flags (report source "bgp-ls").

The routers' IGP (and so BGP-LS TLV 1153 / 1154, RFC 9552 §5.3.3) carries SAV information in tags an
operator sets on the prefixes of a subnet (e.g. `set tag` in the route-map that redistributes it).
The layout is savd's own, documented here and in the README, because no standard SAV TLV exists yet
(draft-cheng-lsr-adv-savnet-capbility defines no code points ExaBGP knows; unknown TLVs stay raw):

  IGP Route Tag (32 bits):          1010 | A S M 0 | subnet ID (24 bits, 1..16777215)
      top nibble 0xA marks a SAV tag; A = anycast (bit 27), S = special (bit 26), M = multi-homed (bit 25)
  IGP Extended Route Tag (64 bits): 0x5341 ("SA") | flags (8 bits: bit 0 anycast, 1 special, 2 multi-homed)
                                    | reserved (8 bits) | subnet ID (32 bits, >= 1)

A tag without the marker, or with subnet ID 0, says nothing about SAV and is ignored. A prefix with
several SAV tags yields one report per distinct (subnet, flags). The subnet ID is the decimal string.
Must not: decide anything beyond this mapping (conflicts are merge.py's).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.model import PrefixFlags, PrefixReport, Role
from appliance.sources.bgpls.graph import Topology
from appliance.sources.reports.records import RouterReport, Source

TAG_MARKER, TAG_MARKER_MASK = 0xA0000000, 0xF0000000
EXT_MARKER = 0x5341
NO_FLAGS = PrefixFlags()


@dataclass(frozen=True, slots=True)
class SavTag:
    subnet: str
    flags: PrefixFlags


def encode_tag(subnet_id: int, flags: PrefixFlags = NO_FLAGS) -> int:
    if not 1 <= subnet_id < 1 << 24:
        raise ValueError(f"subnet ID {subnet_id} does not fit a 24-bit route tag")
    return TAG_MARKER | flags.anycast << 27 | flags.special << 26 | flags.multihomed << 25 | subnet_id


def decode_tag(tag: int) -> SavTag | None:
    if tag & TAG_MARKER_MASK != TAG_MARKER or not tag & 0xFFFFFF:
        return None
    flags = PrefixFlags(bool(tag >> 27 & 1), bool(tag >> 26 & 1), bool(tag >> 25 & 1))
    return SavTag(str(tag & 0xFFFFFF), flags)


def encode_extended_tag(subnet_id: int, flags: PrefixFlags = NO_FLAGS) -> int:
    if not 1 <= subnet_id < 1 << 32:
        raise ValueError(f"subnet ID {subnet_id} does not fit 32 bits")
    bits = flags.anycast | flags.special << 1 | flags.multihomed << 2
    return EXT_MARKER << 48 | bits << 40 | subnet_id


def decode_extended_tag(tag: int) -> SavTag | None:
    if tag >> 48 != EXT_MARKER or not tag & 0xFFFFFFFF:
        return None
    bits = tag >> 40 & 0xFF
    return SavTag(str(tag & 0xFFFFFFFF), PrefixFlags(bool(bits & 1), bool(bits & 2), bool(bits & 4)))


def reports_from_topology(topology: Topology) -> list[PrefixReport]:
    """One report per SAV-tagged prefix; interface = the router's interface inside the prefix, else ""."""
    names = {p.node: topology.router_name(p.node) for p in topology.ls_prefixes()}
    out: set[PrefixReport] = set()
    for p in topology.ls_prefixes():
        tags = [t for t in map(decode_tag, p.route_tags) if t] + [
            t for t in map(decode_extended_tag, p.extended_tags) if t
        ]
        if not tags:
            continue
        router = names[p.node]
        served = [i.name for i in topology.interfaces_serving(p.prefix) if i.router == router]
        itfs = served or [""]
        for tag in tags:
            for itf in itfs:
                out.add(PrefixReport(router, itf, p.prefix, tag.subnet, tag.flags, str(Source.BGPLS)))
    return sorted(out, key=lambda r: (r.router, r.interface, r.prefix, r.subnet))


def roles_from_topology(topology: Topology) -> list[RouterReport]:
    """Source "bgp-ls" roles: a router with an AS-border link (RFC 9086 EPE link, or any link whose ends
    are in different ASes) is a border router. Nothing else is inferred: access/core and capability come
    from the file or the API (lowest precedence, so an operator's statement always wins)."""
    border = sorted({lk.local for lk in topology.border_links()})
    return [RouterReport(r, Role.BORDER, None, str(Source.BGPLS)) for r in border]
