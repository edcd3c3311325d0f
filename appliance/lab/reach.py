"""Reachability between a running lab's hosts: who pings whom, IPv4 and IPv6 (`savd lab ping`).

Hosts are the nodes without FRR; each is reached at its first global address per family, read from
the node itself (`ip -j addr`), so the check works for any lab without an address plan.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from appliance.lab.runner import Lab

PING_COUNT = 2


@dataclass(frozen=True, slots=True)
class Reachability:
    """Packets received per (source, destination, family), out of `sent` each."""

    hosts: dict[str, dict[int, str]]
    received: dict[tuple[str, str, int], int]
    sent: int = PING_COUNT

    @property
    def ok(self) -> bool:
        return bool(self.received) and all(v == self.sent for v in self.received.values())

    def _cell(self, src: str, dst: str, family: int) -> str:
        if src == dst:
            return "-"
        got = self.received.get((src, dst, family))
        return "n/a" if got is None else f"{got}/{self.sent}"

    def matrix(self) -> str:
        """'received/sent' per cell, rows = from, columns = to, one block per family."""
        names = sorted(self.hosts)
        lines: list[str] = []
        for family in (4, 6):
            lines.append(f"IPv{family} ping ({self.sent} packets), rows = from, columns = to:")
            lines.append("        " + "".join(f"{d:>8}" for d in names))
            for src in names:
                cells = [self._cell(src, dst, family) for dst in names]
                lines.append(f"{src:>8}" + "".join(f"{c:>8}" for c in cells))
            lines.append("        " + "  ".join(f"{n}={self.hosts[n].get(family, '?')}" for n in names))
        return "\n".join(lines)


def host_addresses(lab: Lab) -> dict[str, dict[int, str]]:
    """First global IPv4 and IPv6 address of every node without FRR (the hosts)."""
    out: dict[str, dict[int, str]] = {}
    for node in lab.topology.nodes:
        if node.is_frr:
            continue
        links = json.loads(lab.exec(node.name, ["ip", "-j", "addr", "show"], check=True).stdout)
        found: dict[int, str] = {}
        for link in links:
            for info in link.get("addr_info", []):
                family = 4 if info["family"] == "inet" else 6
                if info.get("scope") == "global" and family not in found:
                    found[family] = info["local"]
        out[node.name] = found
    return out


def _ping(lab: Lab, src: str, dst_addr: str, family: int, count: int) -> int:
    proc = lab.exec(src, ["ping", f"-{family}", "-c", str(count), "-i", "0.2", "-W", "2", dst_addr])
    match = re.search(r"(\d+) (?:packets )?received", proc.stdout)
    return int(match.group(1)) if match else 0


def check_reachability(lab: Lab, count: int = PING_COUNT) -> Reachability:
    """Ping every host from every other host over both families (in parallel)."""
    hosts = host_addresses(lab)
    names = sorted(hosts)
    jobs: list[tuple[str, str, int]] = [
        (s, d, f) for f in (4, 6) for s in names for d in names if s != d and f in hosts[d]
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = pool.map(lambda j: _ping(lab, j[0], hosts[j[1]][j[2]], j[2], count), jobs)
        received = dict(zip(jobs, counts, strict=True))
    return Reachability(hosts=hosts, received=received, sent=count)
