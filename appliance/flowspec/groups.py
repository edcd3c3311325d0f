"""Interface-set group IDs: which 14-bit group stands for which interface of a router.

draft-ietf-idr-flowspec-interfaceset scopes a rule to "interface groups" that each router configures
locally; savd owns that mapping and ships it with the rules, so an enforcer maps group -> interface name.
IDs are derived from a CRC-32 of the interface name (stdlib zlib, deterministic across processes and
runs, unlike `hash()`), probing upwards on collision in name order. An interface keeps its ID when
others come and go unless it collided, so a topology change rarely renumbers rules. Explicit IDs
(operator configuration) take precedence. Group 0 is never used (the SAV draft gives it the meaning
"all other interfaces").
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

from appliance.flowspec.rules import MAX_GROUP_ID, InterfaceGroup


def assign_groups(router: str, interfaces: Iterable[str],
                  explicit: Mapping[tuple[str, str], int] | None = None) -> tuple[InterfaceGroup, ...]:
    """Deterministic group IDs (1..16383) for the interfaces of `router`, in interface-name order.

    Raises ValueError if an explicit ID is out of range or used twice on the router.
    """
    explicit = explicit or {}
    names = sorted(set(interfaces))
    if len(names) > MAX_GROUP_ID:
        raise ValueError(f"{router} has {len(names)} interfaces, more than {MAX_GROUP_ID} interface groups")
    taken: dict[int, str] = {}
    out: dict[str, int] = {}
    for name in names:
        gid = explicit.get((router, name))
        if gid is None:
            continue
        if not 1 <= gid <= MAX_GROUP_ID or gid in taken:
            raise ValueError(f"interface group {gid} for {router}:{name} is out of range or already "
                             f"used by {router}:{taken.get(gid, '?')}")
        taken[gid] = name
        out[name] = gid
    for name in names:
        if name in out:
            continue
        gid = zlib.crc32(name.encode()) % MAX_GROUP_ID + 1
        while gid in taken:
            gid = gid % MAX_GROUP_ID + 1
        taken[gid] = name
        out[name] = gid
    return tuple(InterfaceGroup(router, n, out[n]) for n in names)
