"""Compact VRP keys: the one in-memory form of a VRP inside rpki/.

A full RPKI set is ~600k VRPs; a frozen dataclass with a string prefix per VRP costs ~200 B and ~1 us to
build, which is most of a naive client's time and memory. Inside rpki/ a VRP is therefore the bytes an
RTR Prefix PDU already carries after its flags byte (RFC 8210 section 5.6/5.7), so the RTR fast path
keys a set with one slice and no decoding:

    IPv4 (11 bytes): prefix_len(1) max_len(1) zero(1) address(4) asn(4)
    IPv6 (23 bytes): prefix_len(1) max_len(1) zero(1) address(16) asn(4)

The length tells the family. Keys are decoded to `model.Vrp` only at the edges (snapshots, deltas,
CLI). A key never has host bits: `make_key` masks them (files), and the RTR ingest refuses a Prefix PDU
that has them (issue 12); the masking when decoded stays as a second guard.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from appliance.model import Vrp

V4_KEY_LEN = 11
V6_KEY_LEN = 23


def make_key(prefix: str, max_length: int, asn: int) -> bytes:
    """Key of a VRP given as text; ValueError on a bad prefix, length or ASN."""
    net = ipaddress.ip_network(prefix, strict=False)
    width = net.max_prefixlen
    if not net.prefixlen <= max_length <= width:
        raise ValueError(f"maxLength {max_length} outside {net.prefixlen}..{width} for {prefix}")
    if not 0 <= asn <= 0xFFFFFFFF:
        raise ValueError(f"ASN {asn} out of range")
    return (
        bytes((net.prefixlen, max_length, 0))
        + net.network_address.packed
        + asn.to_bytes(4, "big")
    )


def vrp_key(vrp: Vrp) -> bytes:
    return make_key(vrp.prefix, vrp.max_length, vrp.asn)


def key_family(key: bytes) -> int:
    return 4 if len(key) == V4_KEY_LEN else 6


def key_to_vrp(key: bytes) -> Vrp:
    """Decode a key; host bits beyond prefix_len are masked (none reach a key; a second guard)."""
    plen, max_len = key[0], key[1]
    addr = key[3:-4]
    net: ipaddress.IPv4Network | ipaddress.IPv6Network
    if len(addr) == 4:
        net = ipaddress.IPv4Network((addr, plen), strict=False)
    else:
        net = ipaddress.IPv6Network((addr, plen), strict=False)
    return Vrp(str(net), max_len, int.from_bytes(key[-4:], "big"))


def keys_to_vrps(keys: Iterable[bytes]) -> tuple[Vrp, ...]:
    """Decoded and sorted deterministically (IPv4 first, then address, length, maxLength, ASN)."""
    return tuple(key_to_vrp(k) for k in sorted(keys, key=_sort_key))


def _sort_key(key: bytes) -> tuple[int, bytes, int, int, bytes]:
    return (len(key), key[3:-4], key[0], key[1], key[-4:])

KeySet = set[bytes] | frozenset[bytes]
"""A set of VRP keys; by convention never mutated once handed to another module."""
