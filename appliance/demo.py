"""`savd demo`: what a newcomer sees first. Until the appliance runs end to end it brings the sav-basic
lab up with real FRR, shows its status and an IPv4/IPv6 reachability matrix between the hosts, and
tears it down (unless --keep). Exit code 0 only when the lab converged and every host reached every
other host over both families.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from appliance.lab.cli import default_topology, format_status
from appliance.lab.errors import LabError
from appliance.lab.netns import list_netns
from appliance.lab.runner import Lab

PING_COUNT = 2


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="bring the sav-basic lab up, show status and reachability, tear it down",
        description="Start containerlab/sav-basic in network namespaces with real FRR (OSPFv2/v3, eBGP "
        "at the border), wait for convergence, print every node's daemons and neighbours and a "
        "ping matrix between the hosts (IPv4 and IPv6), then remove everything. Needs root.",
    )
    demo.add_argument(
        "--keep", action="store_true", help="leave the lab running (stop it with savd lab down)"
    )
    demo.add_argument("--topo", type=Path, help="another topology file (default: sav-basic)")
    demo.add_argument("--timeout", type=float, default=90.0, metavar="S", help="convergence timeout")
    demo.set_defaults(func=run)


def host_addresses(lab: Lab) -> dict[str, dict[int, str]]:
    """First global IPv4 and IPv6 address of every node without FRR (the hosts)."""
    out: dict[str, dict[int, str]] = {}
    for node in lab.topology.nodes:
        if node.is_frr:
            continue
        addrs = json.loads(lab.exec(node.name, ["ip", "-j", "addr", "show"], check=True).stdout)
        found: dict[int, str] = {}
        for link in addrs:
            for info in link.get("addr_info", []):
                family = 4 if info["family"] == "inet" else 6
                if info.get("scope") == "global" and family not in found:
                    found[family] = info["local"]
        out[node.name] = found
    return out


def _ping(lab: Lab, src: str, dst_addr: str, family: int) -> int:
    proc = lab.exec(src, ["ping", f"-{family}", "-c", str(PING_COUNT), "-i", "0.2", "-W", "2", dst_addr])
    match = re.search(r"(\d+) (?:packets )?received", proc.stdout)
    return int(match.group(1)) if match else 0


def reachability(lab: Lab) -> tuple[str, bool]:
    """A matrix 'received/sent' per (source, destination), IPv4 then IPv6; True when all arrived."""
    hosts = host_addresses(lab)
    names = sorted(hosts)
    jobs = [(s, d, f) for f in (4, 6) for s in names for d in names if s != d and f in hosts[d]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(
            zip(jobs, pool.map(lambda j: _ping(lab, j[0], hosts[j[1]][j[2]], j[2]), jobs), strict=True)
        )
    lines: list[str] = []
    for family in (4, 6):
        lines.append(f"IPv{family} ping ({PING_COUNT} packets), rows = from, columns = to:")
        lines.append("        " + "".join(f"{d:>8}" for d in names))
        for src in names:
            cells = [
                ("-" if src == dst else f"{results.get((src, dst, family), 0)}/{PING_COUNT}") for dst in names
            ]
            lines.append(f"{src:>8}" + "".join(f"{c:>8}" for c in cells))
        lines.append("        " + "  ".join(f"{n}={hosts[n].get(family, '?')}" for n in names))
    ok = all(v == PING_COUNT for v in results.values()) and bool(results)
    return "\n".join(lines), ok


def run(args: argparse.Namespace) -> int:
    topo = args.topo or default_topology()
    try:
        lab = Lab.load(topo)
    except LabError as exc:
        print(f"savd demo: {exc}", file=sys.stderr)
        return 1
    print(
        f"== savd demo: lab {lab.name} ({len(lab.topology.nodes)} nodes, {len(lab.topology.links)} links), "
        f"real FRR in network namespaces {lab.prefix}-*"
    )
    ok = False
    try:
        start = time.monotonic()
        lab.up(detach=args.keep)
        print(f"== up in {time.monotonic() - start:.1f} s; waiting for OSPF/BGP convergence")
        waited = lab.wait_converged(timeout_s=args.timeout)
        print(f"== converged in {waited:.1f} s\n")
        print(format_status(lab.status()) + "\n")
        matrix, ok = reachability(lab)
        print(matrix + "\n")
        print(
            "== reachability: "
            + ("every host reaches every host (IPv4 and IPv6)" if ok else "LOSS (see above)")
        )
    except LabError as exc:
        print(f"savd demo: {exc}", file=sys.stderr)
    finally:
        if args.keep:
            print(
                f"== lab left running (prefix {lab.prefix}): savd lab status | savd lab exec h1 -- ping "
                "198.19.1.10 | stop with: savd lab down"
            )
        else:
            lab.down()
            left = [n for n in list_netns() if n.startswith(lab.prefix + "-")]
            print(f"== torn down: {len(left)} namespaces left, FRR processes killed")
    return 0 if ok else 1
