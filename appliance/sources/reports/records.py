"""Report records beyond model.PrefixReport: where a report came from, and router role reports."""

from __future__ import annotations

import enum

from appliance.model import PrefixFlags, RouterRole


class Source(enum.StrEnum):
    """Where a report came from; a higher `precedence` wins for the same (router, interface, prefix)."""

    BGPLS = "bgp-ls"
    FILE = "file"
    API = "api"

    @property
    def precedence(self) -> int:
        return {Source.BGPLS: 1, Source.FILE: 2, Source.API: 3}[self]


RouterReport = RouterRole  # the model's record: role reports are store facts like prefix reports


FLAG_NAMES = ("anycast", "special", "multihomed")


def flags_from_names(names: list[str] | tuple[str, ...]) -> PrefixFlags:
    """["anycast", "multihomed"] -> PrefixFlags; ValueError naming an unknown flag."""
    unknown = [n for n in names if n not in FLAG_NAMES]
    if unknown:
        raise ValueError(f"unknown flag(s) {', '.join(map(repr, unknown))}; known: {', '.join(FLAG_NAMES)}")
    return PrefixFlags(anycast="anycast" in names, special="special" in names,
                       multihomed="multihomed" in names)


def flag_names(flags: PrefixFlags) -> list[str]:
    return [n for n in FLAG_NAMES if getattr(flags, n)]
