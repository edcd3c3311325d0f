"""BGP-LS ingest: ExaBGP JSON lines -> typed events -> topology graph, and graph queries.

Baseline (same process, same lines): json.loads alone, the floor any consumer of ExaBGP's API pays.
Figures: lines/s for parse (duplicate-key-preserving JSON + envelope checks), + BGP-LS decode,
+ topology apply; then the cost of the model views on the resulting graph.

    .venv/bin/python bench/ingest_bench.py [--routers 1000]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import time
from collections.abc import Callable
from typing import TypeVar

from appliance.sources.bgpls.decode import decode_update
from appliance.sources.bgpls.graph import Topology
from appliance.speakers.exabgp import UpdateReceived, parse_api_line


def desc(rid: str) -> list[dict[str, object]]:
    return [
        {"autonomous-system": 65000},
        {"bgp-ls-identifier": "0"},
        {"ospf-area-id": "0.0.0.0"},
        {"router-id": rid},
    ]


def line(attrs: dict[str, object], nlri: dict[str, object]) -> str:
    """One update as ExaBGP 5.0.15 prints it (envelope, attribute, announce)."""
    update = {"attribute": {"bgp-ls": attrs}, "announce": {"bgp-ls bgp-ls": {"198.18.255.1": [nlri]}}}
    return json.dumps(
        {
            "exabgp": "5.0.0",
            "time": 1.0,
            "host": "h",
            "pid": 1,
            "ppid": 1,
            "counter": 1,
            "type": "update",
            "neighbor": {
                "address": {"local": "198.18.20.10", "peer": "198.18.255.1"},
                "asn": {"local": 65000, "peer": 65000},
                "direction": "receive",
                "message": {"update": update},
            },
        }
    )


def lines(n_routers: int) -> list[str]:
    """Per router: a node, links to two other routers, a loopback and a tagged stub prefix."""
    rid = [str(ipaddress.IPv4Address(0xC6120000 + i + 1)) for i in range(n_routers)]
    out = []
    for i, r in enumerate(rid):
        base = {"l3-routing-topology": 0, "protocol-id": 3}
        out.append(
            line(
                {"node-name": f"r{i}", "local-te-router-ids": [r]},
                {"ls-nlri-type": "bgpls-node", **base, "node-descriptors": desc(r)},
            )
        )
        for k in (1, 7):
            j = (i + k) % n_routers
            out.append(
                line(
                    {"igp-metric": 10, "link-name": f"eth{k}"},
                    {
                        "ls-nlri-type": "bgpls-link",
                        **base,
                        "local-node-descriptors": desc(r),
                        "remote-node-descriptors": desc(rid[j]),
                        "interface-addresses": [f"10.{i % 250}.{k}.1"],
                        "neighbor-addresses": [f"10.{i % 250}.{k}.2"],
                        "multi-topology-ids": [],
                        "link-identifiers": [],
                    },
                )
            )
        for p in (f"{r}/32", f"100.{i // 250}.{i % 250}.0/24"):
            out.append(
                line(
                    {"prefix-metric": 10, "igp-route-tags": [2684354561]},
                    {
                        "ls-nlri-type": "bgpls-prefix-v4",
                        **base,
                        "node-descriptors": desc(r),
                        "ip-reach-prefix": p,
                        "ospf-route-type": 1,
                    },
                )
            )
    return out


R = TypeVar("R")


def timed(fn: Callable[..., R], *args: object) -> tuple[float, R]:
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--routers", type=int, default=1000)
    n = ap.parse_args().routers
    data = lines(n)
    base, _ = timed(lambda: [json.loads(x) for x in data])
    parse_s, events = timed(lambda: [parse_api_line(x) for x in data])
    ups = [e for e in events if isinstance(e, UpdateReceived)]
    assert len(ups) == len(data)
    decode_s, decoded = timed(lambda: [decode_update(u, "peer")[0] for u in ups])
    topo = Topology()
    apply_s, _ = timed(lambda: [topo.apply_all(d) for d in decoded])
    total = parse_s + decode_s + apply_s
    print(f"{len(data)} BGP-LS update lines ({n} routers)")
    print(f"  baseline json.loads        {len(data) / base:10.0f} lines/s  1.00")
    print(f"  parse_api_line             {len(data) / parse_s:10.0f} lines/s  {base / parse_s:.2f}")
    print(f"  + decode_update            {len(data) / decode_s:10.0f} lines/s")
    print(f"  + Topology.apply           {len(data) / apply_s:10.0f} lines/s")
    print(f"  end to end                 {len(data) / total:10.0f} lines/s  {base / total:.2f} of baseline")
    for name in ("routers", "links", "interfaces", "igp_prefixes"):
        s, res = timed(getattr(topo, name))
        print(f"  Topology.{name + '()':<18} {s * 1000:8.1f} ms  ({len(res)} records)")
    s, _ = timed(lambda: [topo.routers_serving(f"100.{i // 250}.{i % 250}.7/32") for i in range(100)])
    print(f"  routers_serving x100       {s * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
