"""BMP ingest: RIPE RIS MRT data replayed as a router's BMP feed over loopback TCP into BmpStation.

Inputs (../shared/data, skipped when absent): the 2002 RIS RIB dump (TABLE_DUMP v1, 2-octet ASNs, one BMP
Route Monitoring message per route, as FRR sends its table) and the 2019 RIS updates file
(BGP4MP_MESSAGE_AS4: each real UPDATE wrapped as it came, 4-octet ASNs, IPv4 + IPv6). Each MRT peer
becomes a BMP peer with a Peer Up whose OPENs negotiate what the data needs. All bytes are built before
timing; a sender thread writes them to the station's socket; the clock stops when the consumer has seen
every route. Baseline (same process, same UPDATE bytes): ExaBGP's `Update.unpack_message` in a loop.

    .venv/bin/python bench/bmp_bench.py [--data rib|updates|all] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import resource
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from exabgp.bgp.message.direction import Direction
from exabgp.bgp.message.update import EOR, Update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from appliance.sources.paths.bmp import negotiated_from_opens
from appliance.sources.paths.events import BmpEvent, Malformed, RouterDown, Routes
from appliance.sources.paths.station import BmpStation

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bgp-routes" / "ripe-ris-mrt"
RIB = DATA / "bview.20020722.2337.gz"
UPDATES = DATA / "updates.20190101.0000.gz"
MARKER = b"\xff" * 16
LOCAL_AS = 12654


def bmp(mtype: int, body: bytes) -> bytes:
    return struct.pack("!BIB", 3, 6 + len(body), mtype) + body


def per_peer(ip: bytes, peer_as: int) -> bytes:
    flags = 0x80 if len(ip) == 16 else 0
    addr = ip if len(ip) == 16 else bytes(12) + ip
    return struct.pack("!BB8s16sI4sII", 0, flags, bytes(8), addr, peer_as, b"\xc6\x12\x00\x01", 0, 0)


def bgp(mtype: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), mtype) + body


def bgp_open(asn: int, asn4: bool) -> bytes:
    caps = b"".join(bytes([2, 6, 1, 4]) + struct.pack("!HBB", afi, 0, 1) for afi in (1, 2))
    if asn4:
        caps += bytes([2, 6, 65, 4]) + struct.pack("!I", asn)
    my_as = asn if asn < 65536 else 23456
    return bgp(1, struct.pack("!BHH4sB", 4, my_as, 180, b"\xc6\x12\x00\x01", len(caps)) + caps)


def peer_up(ip: bytes, peer_as: int, asn4: bool) -> bytes:
    return bmp(3, per_peer(ip, peer_as) + bytes(16) + struct.pack("!HH", 179, 179)
               + bgp_open(LOCAL_AS, asn4) + bgp_open(peer_as, asn4))


def mrt_records(path: Path) -> list[tuple[int, int, bytes]]:
    data = gzip.open(path).read()
    out, i = [], 0
    while i + 12 <= len(data):
        _, mtype, sub, length = struct.unpack_from("!IHHI", data, i)
        out.append((mtype, sub, data[i + 12 : i + 12 + length]))
        i += 12 + length
    return out


def rib_updates() -> tuple[list[tuple[bytes, int, bool]], list[bytes], list[tuple[bytes, int]]]:
    """TABLE_DUMP v1 -> ((peer ip, peer as, asn4) per peer, one UPDATE body per route)."""
    peers: dict[tuple[bytes, int], None] = {}
    bodies: list[tuple[bytes, int, bytes]] = []
    for mtype, sub, rec in mrt_records(RIB):
        if mtype != 12 or sub not in (1, 2):
            continue
        alen_ip = 4 if sub == 1 else 16
        pos = 4
        prefix = rec[pos : pos + alen_ip]
        plen = rec[pos + alen_ip]
        pos += alen_ip + 2 + 4
        peer_ip = rec[pos : pos + alen_ip]
        peer_as, attr_len = struct.unpack_from("!HH", rec, pos + alen_ip)
        attrs = rec[pos + alen_ip + 4 : pos + alen_ip + 4 + attr_len]
        if sub != 1:
            continue  # the 2002 dump is IPv4 only
        nlri = bytes([plen]) + prefix[: (plen + 7) // 8]
        peers[(peer_ip, peer_as)] = None
        bodies.append((peer_ip, peer_as, struct.pack("!HH", 0, len(attrs)) + attrs + nlri))
    return [(ip, asn, False) for ip, asn in peers], [b for _, _, b in bodies], [(i, a) for i, a, _ in bodies]


def updates_updates() -> tuple[list[tuple[bytes, int, bool]], list[bytes], list[tuple[bytes, int]]]:
    """BGP4MP_MESSAGE_AS4 UPDATEs -> (peers, UPDATE bodies, their peer)."""
    peers: dict[tuple[bytes, int], None] = {}
    bodies, owners = [], []
    for mtype, sub, rec in mrt_records(UPDATES):
        if mtype != 16 or sub != 4:
            continue
        peer_as = struct.unpack_from("!I", rec, 0)[0]
        afi = struct.unpack_from("!H", rec, 10)[0]
        alen = 4 if afi == 1 else 16
        peer_ip = rec[12 : 12 + alen]
        msg = rec[12 + 2 * alen :]
        if len(msg) < 19 or msg[18] != 2:
            continue
        peers[(peer_ip, peer_as)] = None
        bodies.append(msg[19:])
        owners.append((peer_ip, peer_as))
    return [(ip, asn, True) for ip, asn in peers], bodies, owners


def stream(peers: list[tuple[bytes, int, bool]], bodies: list[bytes], owners: list[tuple[bytes, int]]
           ) -> bytes:
    parts = [bmp(4, struct.pack("!HH", 2, 5) + b"bench")]
    parts += [peer_up(ip, asn, asn4) for ip, asn, asn4 in peers]
    headers = {(ip, asn): per_peer(ip, asn) for ip, asn, _ in peers}
    for body, owner in zip(bodies, owners, strict=True):
        parts.append(bmp(0, headers[owner] + bgp(2, body)))
    return b"".join(parts)


def baseline(peers: list[tuple[bytes, int, bool]], bodies: list[bytes], owners: list[tuple[bytes, int]]
             ) -> tuple[float, int]:
    """ExaBGP alone: Update.unpack_message on every body with the peer's negotiated state."""
    negs = {(ip, asn): negotiated_from_opens(bgp_open(LOCAL_AS, asn4)[19:], bgp_open(asn, asn4)[19:])
            for ip, asn, asn4 in peers}
    routes = 0
    t0 = time.perf_counter()
    for body, owner in zip(bodies, owners, strict=True):
        upd = Update.unpack_message(body, Direction.IN, negs[owner])
        if not isinstance(upd, EOR):
            routes += sum(1 for n in upd.nlris if int(n.action) == 1)
    return time.perf_counter() - t0, routes


def run_station(data: bytes) -> tuple[float, int, int]:
    """Seconds from the first byte sent until the station has handed over everything (the sender's close
    arrives as RouterDown after the last message); routes and Malformed events seen."""

    async def go() -> tuple[float, int, int]:
        seen, malformed = [0], [0]
        done = asyncio.Event()

        def consumer(ev: BmpEvent) -> None:
            if isinstance(ev, Routes):
                seen[0] += len(ev.announced)
            elif isinstance(ev, Malformed):
                malformed[0] += 1
            elif isinstance(ev, RouterDown):   # the sender closed after its last byte: all consumed
                done.set()

        station = BmpStation(("127.0.0.1", 0), on_event=consumer)
        await station.start()
        sock = socket.create_connection(("127.0.0.1", station.port))
        def send() -> None:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        t0 = time.perf_counter()
        sender.start()
        try:
            await asyncio.wait_for(done.wait(), 600)
            elapsed = time.perf_counter() - t0
        finally:
            sender.join()
            sock.close()
            await station.stop()
        return elapsed, seen[0], malformed[0]

    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("rib", "updates", "all"), default="all")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not present")
        return 0
    sets = {"rib": (RIB.name, rib_updates), "updates": (UPDATES.name, updates_updates)}
    chosen = list(sets) if args.data == "all" else [args.data]
    print(f"{'data':<28} {'routes':>8} {'ExaBGP Update.unpack_message':>30} {'BmpStation (TCP)':>18} "
          f"{'ratio':>6} {'peak RSS':>9}")
    for name in chosen:
        label, build = sets[name]
        peers, bodies, owners = build()
        data = stream(peers, bodies, owners)
        base_t, routes = min(baseline(peers, bodies, owners) for _ in range(args.repeat))
        gc.collect()
        best = None
        for _ in range(args.repeat):
            t, got, malformed = run_station(data)
            if got != routes or malformed:   # reported, not fatal: the figures still say what was decoded
                print(f"!!! {label}: station saw {got:,} routes, ExaBGP {routes:,}; {malformed} malformed")
            best = t if best is None else min(best, t)
        assert best is not None
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label:<28} {routes:>8,} {routes / base_t:>23,.0f} rt/s {routes / best:>13,.0f} rt/s "
              f"{base_t / best:>5.1f}x {rss:>6.0f} MiB")
        print(f"  ({len(bodies):,} UPDATEs from {len(peers)} peers, {len(data) / 2**20:.1f} MiB of BMP; "
              f"best of {args.repeat}: baseline {base_t:.2f} s, station {best:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
