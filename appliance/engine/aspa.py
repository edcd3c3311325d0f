"""ASPA AS_PATH verification, draft-ietf-sidrops-aspa-verification-28 section 5 (upstream and downstream).

Input is an `AspaTable`: customer ASN -> frozenset of provider ASNs (the union of the customer's valid ASPAs,
U-SPAS in the draft). A customer absent from the table has no attestation; an ASPA that lists only AS0 (or no
provider) attests "no providers", so every check from that AS is Not Provider+ (section 4: AS0 has no other
influence).

Paths are in BGP wire order (neighbour first, origin last), as model.BgpPath. The draft numbers the
COMPRESSED_AS_PATH origin-first: A(1) = origin ... A(N) = neighbour; `_ramps` works on that order.
The checks of sections 5.4/5.5 before the ramps: an empty path is Invalid; a path whose first AS is not the
neighbour AS is Invalid unless the route came from a route server (the RS does not prepend its AS, so the
receiving AS is an RS-client and skips the check; `neighbor_as=None` skips it too, for callers that do not
know the neighbour); a path with an AS_SET segment (`as_set`, kept apart from the sequence as in
model.BgpPath) is Invalid. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from operator import ne

from appliance.model import Aspa

__all__ = [
    "AspaTable",
    "Authorization",
    "PathVerdict",
    "authorized",
    "build_table",
    "compress",
    "table_from_mapping",
    "verify_downstream",
    "verify_path",
    "verify_upstream",
]

AspaTable = Mapping[int, frozenset[int]]


class Authorization(enum.StrEnum):
    """Result of the hop check authorized(x, y), section 5.2."""

    NO_ATTESTATION = "NoAttestation"
    PROVIDER_PLUS = "ProviderPlus"
    NOT_PROVIDER_PLUS = "NotProviderPlus"


class PathVerdict(enum.StrEnum):
    """Outcome of AS_PATH verification; Unknown is treated like Valid for route selection (section 5.6)."""

    VALID = "Valid"
    INVALID = "Invalid"
    UNKNOWN = "Unknown"


def build_table(aspas: Iterable[Aspa]) -> dict[int, frozenset[int]]:
    """Union the providers of every ASPA per customer (U-SPAS); AS0 is dropped but keeps the entry."""
    acc: dict[int, set[int]] = {}
    for a in aspas:
        acc.setdefault(a.customer, set()).update(p for p in a.providers if p != 0)
    return {c: frozenset(p) for c, p in acc.items()}


def table_from_mapping(providers_by_customer: Mapping[int, Iterable[int]]) -> dict[int, frozenset[int]]:
    """An AspaTable from customer -> providers (e.g. rpki.tables.RpkiTables.aspas()); AS0 is dropped."""
    return {c: frozenset(p for p in provs if p != 0) for c, provs in providers_by_customer.items()}


def authorized(table: AspaTable, customer: int, provider: int) -> Authorization:
    """Is `provider` an attested provider (or RS/sibling) of `customer`?"""
    providers = table.get(customer)
    if providers is None:
        return Authorization.NO_ATTESTATION
    return Authorization.PROVIDER_PLUS if provider in providers else Authorization.NOT_PROVIDER_PLUS


def compress(as_path: Sequence[int]) -> tuple[int, ...]:
    """Remove consecutive duplicates (AS prepending), keeping order."""
    if all(map(ne, as_path, islice(as_path, 1, None))):  # no prepending (most paths): compared in C
        return tuple(as_path)
    out: list[int] = []
    for asn in as_path:
        if not out or out[-1] != asn:
            out.append(asn)
    return tuple(out)


def _ramps(table: AspaTable, seq: Sequence[int]) -> tuple[int, int, int, int]:
    """(max_up, min_up, max_down, min_down) of section 5.3 over `seq` = A(1)..A(N), origin first."""
    n = len(seq)
    max_up = min_up = n
    for i in range(n - 1):  # pair (A(i+1), A(i+2)) in 1-based terms
        auth = authorized(table, seq[i], seq[i + 1])
        if auth is not Authorization.PROVIDER_PLUS and min_up == n:
            min_up = i + 1
        if auth is Authorization.NOT_PROVIDER_PLUS:
            max_up = i + 1
            break
    max_down = min_down = n
    for j in range(n - 1, 0, -1):  # pair (A(J), A(J-1)) with J = j+1 in 1-based terms
        auth = authorized(table, seq[j], seq[j - 1])
        if auth is not Authorization.PROVIDER_PLUS and min_down == n:
            min_down = n - (j + 1) + 1
        if auth is Authorization.NOT_PROVIDER_PLUS:
            max_down = n - (j + 1) + 1
            break
    return max_up, min_up, max_down, min_down


def verify_upstream(
    table: AspaTable,
    as_path: Sequence[int],
    neighbor_as: int | None = None,
    *,
    rs_client: bool = False,
    as_set: Sequence[int] = (),
) -> PathVerdict:
    """Section 5.4: a route received from a customer, lateral peer, or RS / RS-client."""
    path = compress(as_path)
    if not path:
        return PathVerdict.INVALID
    if neighbor_as is not None and not rs_client and path[0] != neighbor_as:
        return PathVerdict.INVALID
    if as_set:
        return PathVerdict.INVALID
    seq = path[::-1]
    n = len(seq)
    max_up, min_up, _, _ = _ramps(table, seq)
    if max_up < n:
        return PathVerdict.INVALID
    if min_up < n:
        return PathVerdict.UNKNOWN
    return PathVerdict.VALID


def verify_downstream(
    table: AspaTable, as_path: Sequence[int], neighbor_as: int | None = None, *, as_set: Sequence[int] = ()
) -> PathVerdict:
    """Section 5.5: a route received from a provider."""
    path = compress(as_path)
    if not path:
        return PathVerdict.INVALID
    if neighbor_as is not None and path[0] != neighbor_as:
        return PathVerdict.INVALID
    if as_set:
        return PathVerdict.INVALID
    seq = path[::-1]
    n = len(seq)
    max_up, min_up, max_down, min_down = _ramps(table, seq)
    if max_up + max_down < n:
        return PathVerdict.INVALID
    if min_up + min_down < n:
        return PathVerdict.UNKNOWN
    return PathVerdict.VALID


def verify_path(
    table: AspaTable,
    as_path: Sequence[int],
    *,
    from_provider: bool,
    neighbor_as: int | None = None,
    rs_client: bool = False,
    as_set: Sequence[int] = (),
) -> PathVerdict:
    """Dispatch on the direction the route came from (a route server's routes are checked upstream)."""
    if from_provider:
        return verify_downstream(table, as_path, neighbor_as, as_set=as_set)
    return verify_upstream(table, as_path, neighbor_as, rs_client=rs_client, as_set=as_set)
