"""Counting test traffic where it arrives: one nftables counter per source address in a receiver's
network namespace. The demo's verdict table and the lab tests read these counts as the proof that a
source was or was not stopped on the way.

Owns the `inet rx` table in the receiver namespaces it is pointed at (created on first use, a
prerouting filter chain with policy accept, so counting never changes forwarding). Must not touch any
other table; the enforcer's own table is `inet savd_enforcer` on the routers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

from appliance.lab.errors import LabError

__all__ = ["rx_counter"]

RX_TABLE = "table inet rx {\n chain c {\n  type filter hook prerouting priority 0;\n  policy accept;\n }\n}\n"


def rx_counter(netns: str, source: str) -> int:
    """Packets from `source` that reached namespace `netns` (nft table `inet rx`, one counter rule per
    source, created on first use, so a first call returns 0). LabError names the failing command."""
    base = ["ip", "netns", "exec", netns, "nft"]
    table = _nft([*base, "-j", "list", "table", "inet", "rx"], check=False)
    if table.returncode != 0:
        _nft([*base, "-f", "-"], stdin=RX_TABLE)
        table = _nft([*base, "-j", "list", "table", "inet", "rx"])
    for item in json.loads(table.stdout)["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment") == source:
            for expr in rule["expr"]:
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
    fam = "ip6" if ":" in source else "ip"
    _nft([*base, "add", "rule", "inet", "rx", "c", fam, "saddr", source, "counter", "comment", f'"{source}"'])
    return 0


def _nft(
    argv: Sequence[str], *, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=30, input=stdin, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if check and proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[:800] or f"exit code {proc.returncode}"
        raise LabError(f"{' '.join(argv)}: {detail}")
    return proc
