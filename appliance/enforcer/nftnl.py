"""Set-element transactions sent to nf_tables over netlink, without the nft CLI (the imperative shell).

Why our own: the enforcer's hot path is "these prefixes leave these interval sets, those join them", and
`nft` 1.0.6 lists every element of an interval set before it changes one (overlap checks in user space),
so one added /32 costs ~40 ms on a 10k-element set and ~0.7 s on 100k. The kernel needs none of that:
the same change is one netlink batch of NEWSETELEM/DELSETELEM messages, applied atomically (nf_tables
commits a batch whole or aborts it whole). No Python binding for nf_tables element batches ships in
Debian (python3-nftables drives libnftables, the same code as the CLI), so the few messages are built here.

What is sent is what `nft --debug=netlink add element` sends for a prefix: a start element keyed by the
network address and an end element (flag INTERVAL_END) keyed by the first address after it. Elements get
the set's own `counter` from the kernel (it clones a set's expressions into each new element). A prefix
whose interval ends at the top of the address space has no end key; `encode` refuses it and the caller
uses the CLI for that change.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from appliance.errors import ExternalError
from appliance.netns import run_in

__all__ = ["ElementChange", "NetlinkError", "Unencodable", "apply_elements", "interval_keys"]

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 12, 14
NFPROTO_INET = 1
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_FLAGS = 1, 3
NFTA_DATA_VALUE = 1
NFT_SET_ELEM_INTERVAL_END = 1
SOL_NETLINK, NETLINK_CAP_ACK = 270, 10
MAX_BATCH_BYTES = 200_000      # one sendmsg, one skb: under the default net.core.wmem_max (212,992)
PREFIXES_PER_MESSAGE = 400     # a nested attribute's length is 16 bits: 400 IPv6 intervals stay under it
ACK_TIMEOUT_S = 10.0


class NetlinkError(ExternalError, RuntimeError):
    """The kernel refused the batch (nothing of it was applied) or could not be reached."""


class Unencodable(NetlinkError):
    """A change the batch cannot carry (a prefix ending at the top of the address space, not a prefix,
    too large for one message): nothing was sent, nft is to make it."""


@dataclass(frozen=True, slots=True)
class ElementChange:
    """Prefixes leaving and joining one interval set of the table."""

    set_name: str
    removed: Sequence[str]
    added: Sequence[str]


def interval_keys(prefix: str) -> tuple[bytes, bytes]:
    """(start key, end key) of a prefix or address as the kernel stores it in an interval set."""
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError as exc:
        raise Unencodable(f"set element {prefix!r}: {exc}") from exc
    end = int(net.broadcast_address) + 1
    width = 4 if net.version == 4 else 16
    if end >> (8 * width):
        raise Unencodable(f"{prefix} ends at the top of the address space")
    return net.network_address.packed, end.to_bytes(width, "big")


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _element(key: bytes, flags: int) -> bytes:
    body = _attr(NFTA_SET_ELEM_KEY | NLA_F_NESTED, _attr(NFTA_DATA_VALUE, key))
    if flags:
        body += _attr(NFTA_SET_ELEM_FLAGS, struct.pack(">I", flags))
    return _attr(NFTA_LIST_ELEM | NLA_F_NESTED, body)


def _message(kind: int, flags: int, seq: int, family: int, res_id: int, payload: bytes) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def _element_messages(table: str, change: ElementChange, kind: int, prefixes: Sequence[str],
                      seq: int) -> list[bytes]:
    out: list[bytes] = []
    head = (_attr(NFTA_SET_ELEM_LIST_TABLE, table.encode() + b"\0")
            + _attr(NFTA_SET_ELEM_LIST_SET, change.set_name.encode() + b"\0"))
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if kind == NFT_MSG_NEWSETELEM else 0)
    for i in range(0, len(prefixes), PREFIXES_PER_MESSAGE):
        elems = []
        for prefix in prefixes[i : i + PREFIXES_PER_MESSAGE]:
            start, end = interval_keys(prefix)
            elems.append(_element(start, 0))
            elems.append(_element(end, NFT_SET_ELEM_INTERVAL_END))
        payload = head + _attr(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, b"".join(elems))
        out.append(_message((NFNL_SUBSYS_NFTABLES << 8) | kind, flags, seq + len(out), NFPROTO_INET, 0,
                            payload))
    return out


def encode(table: str, changes: Iterable[ElementChange]) -> tuple[bytes, int]:
    """One batch: every removal first, then every addition (so a prefix moving between sets, or
    re-added after a shorter one left, never collides with itself). Returns the bytes and how many
    messages ask for an acknowledgement."""
    changes = list(changes)
    body: list[bytes] = []
    seq = 1
    for kind in (NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM):
        for change in changes:
            prefixes = change.removed if kind == NFT_MSG_DELSETELEM else change.added
            if prefixes:
                msgs = _element_messages(table, change, kind, prefixes, seq)
                seq += len(msgs)
                body.extend(msgs)
    begin = _message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b"")
    end = _message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b"")
    return begin + b"".join(body) + end, len(body)


def _open(netns: str | None) -> socket.socket:
    """A NETLINK_NETFILTER socket in `netns` (a name under /run/netns) or in the current namespace."""
    return run_in(netns, _socket, "nftnl")


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)   # errors without an echo of our 40 KB messages
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_BATCH_BYTES + 4096)
    sock.bind((0, 0))
    return sock


def _acks(sock: socket.socket, expected: int) -> list[int]:
    """Read until every acknowledged message has its answer; the kernel's errnos (0 = applied)."""
    codes: list[int] = []
    sock.settimeout(ACK_TIMEOUT_S)
    while len(codes) < expected:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if length < 16:
                raise NetlinkError(f"netlink answer with length {length}")
            if kind == NLMSG_ERROR:
                codes.append(-struct.unpack_from("=i", data, offset + 16)[0])
            offset += (length + 3) & ~3
        if any(codes):
            break  # the batch is aborted whole; the first error says why
    return codes


def apply_elements(table: str, changes: Sequence[ElementChange], netns: str | None = None) -> int:
    """Apply the element changes to `inet table` in one atomic batch; returns the bytes sent.

    Raises Unencodable, before sending anything, for what the batch cannot carry (a prefix ending at the
    top of the address space, a change too large for one message), NetlinkError when
    the kernel refuses (an element already gone, a missing set: nothing of the batch is applied)."""
    batch, expected = encode(table, changes)
    if not expected:
        return 0
    if len(batch) > MAX_BATCH_BYTES:
        raise Unencodable(f"{len(batch)} bytes of elements do not fit one netlink batch")
    try:
        sock = _open(netns)
    except OSError as exc:
        raise NetlinkError(f"netlink socket for nf_tables{' in ' + netns if netns else ''}: {exc}") from exc
    with sock:
        try:
            sock.sendall(batch)
            codes = _acks(sock, expected)
        except OSError as exc:
            raise NetlinkError(f"netlink batch to table {table}: {exc}") from exc
    failed = [c for c in codes if c]
    if failed:
        raise NetlinkError(f"nf_tables refused the element batch for table {table}: "
                           f"{errno.errorcode.get(failed[0], str(failed[0]))} ({os.strerror(failed[0])})")
    return len(batch)
