"""The path source (appliance/sources/paths/component.py) without sockets: BMP events in, store facts out.

The station is not started; events are handed to `on_event` as the station would. Checks what the daemon
relies on: paths land on the configured neighbour's interface with AS_SET kept apart, a replaced route is
one fact, a peer down withdraws exactly that peer's paths, a router down withdraws all of its paths and
raises an alarm cleared when it is back, End-of-RIB drops what the store held from before, and peers with
no [[engine.neighbor]] (or iBGP ones, or post-policy routes) give no facts, the unknown one an alarm.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.config import parse_config
from appliance.model import BgpPath, Relationship, Role
from appliance.monitor import Monitor
from appliance.sources.assemble import engine_input
from appliance.sources.paths.component import PathSource, source_name
from appliance.sources.paths.events import (
    EndOfRib,
    Malformed,
    PeerDown,
    PeerUp,
    Route,
    RouterDown,
    RouterUp,
    Routes,
)
from appliance.state import StateStore
from appliance.state.changes import Announce

CONFIG = """
[appliance]
asn = 65000
router_id = "198.18.20.10"
data_dir = "data"

[[bmp]]
listen = "127.0.0.1:11019"

[[engine.neighbor]]
router = "b1"
interface = "eth2"
asn = 65010
relationship = "customer"
address = "198.18.40.2"

[[engine.neighbor]]
router = "b1"
interface = "eth3"
asn = 65040
relationship = "provider"
address = "198.18.41.2"
"""

C1, PROV = "198.18.40.2", "198.18.41.2"


def make(tmp_path: Path) -> tuple[PathSource, SimpleNamespace]:
    config = parse_config(CONFIG, tmp_path / "savd.toml")
    source = PathSource(config, config.bmp)
    ctx = SimpleNamespace(config=config, store=StateStore(), monitor=Monitor())
    source._ctx = ctx  # type: ignore[assignment]  # what start() does before the station runs
    return source, ctx


def routes(peer: str, asn: int, *announced: Route, withdrawn: tuple[tuple[str, int], ...] = (),
           post_policy: bool = False) -> Routes:
    return Routes("b1", peer, asn, announced, withdrawn, post_policy=post_policy)


def paths(ctx: SimpleNamespace) -> list[BgpPath]:
    return list(ctx.store.snapshot().paths)


def test_routes_become_paths_on_the_neighbours_interface_and_follow_updates(tmp_path: Path) -> None:
    source, ctx = make(tmp_path)
    source.on_event(RouterUp("b1", "198.18.255.1", "b1", "FRRouting"))
    source.on_event(PeerUp("b1", C1, 65010, "198.18.255.10"))
    source.on_event(routes(C1, 65010, Route("198.18.50.0/24", (65010,)),
                           Route("198.18.51.0/24", (65010, 65011), (65012, 65013))))
    source.flush(ctx)
    assert sorted(paths(ctx), key=lambda p: p.prefix) == [
        BgpPath("b1", "eth2", "198.18.50.0/24", (65010,)),
        BgpPath("b1", "eth2", "198.18.51.0/24", (65010, 65011), 0, (65012, 65013)),
    ]
    assert paths(ctx)[1].origin == 0  # an AS_SET: no single origin
    # an implicit withdraw (same prefix, new path) is one fact, the old one gone; a withdrawal removes
    source.on_event(routes(C1, 65010, Route("198.18.50.0/24", (65010, 65010)),
                           withdrawn=(("198.18.51.0/24", 0),)))
    source.flush(ctx)
    assert paths(ctx) == [BgpPath("b1", "eth2", "198.18.50.0/24", (65010, 65010))]
    assert ctx.store.sources() == {source_name("b1", C1): 1, "bmp:b1": 1}
    # the router is a border router (lowest precedence: an operator's role wins)
    snap = ctx.store.snapshot()
    assert {r.name: r.role for r in engine_input(ctx.config, snap).routers} == {"b1": Role.BORDER}
    assert [r.asn for r in engine_input(ctx.config, snap).routers] == [65000]  # no BGP-LS: the local AS
    assert {n.relationship for n in engine_input(ctx.config, snap).neighbors} == {
        Relationship.CUSTOMER, Relationship.PROVIDER}


def test_peer_down_withdraws_that_peer_only_and_router_down_everything_with_an_alarm(tmp_path: Path) -> None:
    source, ctx = make(tmp_path)
    source.on_event(RouterUp("b1", "198.18.255.1", "b1", ""))
    source.on_event(routes(C1, 65010, Route("198.18.50.0/24", (65010,))))
    source.on_event(routes(PROV, 65040, Route("198.19.0.0/16", (65040, 65100))))
    source.flush(ctx)
    assert len(paths(ctx)) == 2
    source.on_event(PeerDown("b1", C1, "remote closed"))
    assert [p.interface for p in paths(ctx)] == ["eth3"]
    source.on_event(RouterDown("b1", "connection reset"))
    assert paths(ctx) == []
    assert [a.type for a in ctx.monitor.alarms.active()] == ["bmp.router-down"]
    source.on_event(RouterUp("b1", "198.18.255.1", "b1", ""))
    assert ctx.monitor.alarms.active() == []


def test_end_of_rib_drops_what_the_store_held_from_before(tmp_path: Path) -> None:
    source, ctx = make(tmp_path)
    old = BgpPath("b1", "eth2", "198.18.59.0/24", (65010,))  # e.g. restored from the journal
    ctx.store.apply(Announce(source_name("b1", C1), (old,)))
    source.on_event(PeerUp("b1", C1, 65010, "198.18.255.10"))
    source.on_event(routes(C1, 65010, Route("198.18.50.0/24", (65010,))))
    source.flush(ctx)
    assert len(paths(ctx)) == 2  # before End-of-RIB the old path stands
    source.on_event(EndOfRib("b1", C1, "ipv4 unicast"))
    assert paths(ctx) == [BgpPath("b1", "eth2", "198.18.50.0/24", (65010,))]


def test_unusable_routes_give_no_facts_and_an_unknown_peer_an_alarm_naming_it(tmp_path: Path) -> None:
    source, ctx = make(tmp_path)
    source.on_event(routes("198.18.42.2", 65030, Route("198.18.60.0/24", (65030,))))  # not configured
    source.on_event(routes("198.18.255.2", 65000, Route("198.18.61.0/24", ())))  # iBGP
    source.on_event(routes(C1, 65010, Route("198.18.62.0/24", (65010,)), post_policy=True))
    source.on_event(Malformed("b1", "198.18.255.1", "Route Monitoring: UPDATE length 9999 > message"))
    source.flush(ctx)
    assert paths(ctx) == []
    alarms = {a.type: a for a in ctx.monitor.alarms.active()}
    assert set(alarms) == {"bmp.unknown-peer", "bmp.malformed"}
    unknown = alarms["bmp.unknown-peer"].message
    assert "198.18.42.2" in unknown and "AS65030" in unknown and "[[engine.neighbor]]" in unknown
    assert "UPDATE length" in alarms["bmp.malformed"].message
    assert source.ignored == {"unknown-peer": 1, "ibgp": 1, "post-policy": 1}


def test_a_peer_whose_as_differs_from_the_configuration_raises_an_alarm(tmp_path: Path) -> None:
    source, ctx = make(tmp_path)
    source.on_event(PeerUp("b1", C1, 65099, "198.18.255.10"))
    assert [a.type for a in ctx.monitor.alarms.active()] == ["bmp.neighbor-mismatch"]


def test_restored_paths_of_a_peer_that_never_comes_back_are_withdrawn(tmp_path: Path) -> None:
    source, ctx = make(tmp_path)
    ctx.store.apply(Announce(source_name("b1", PROV), (BgpPath("b1", "eth3", "198.19.0.0/16", (65040,)),)))
    source.initial_sync_s = 0.01
    asyncio.run(source._expire_restored(ctx))  # type: ignore[arg-type]
    assert paths(ctx) == []


def test_savd_paths_show_runs_the_daemons_path_source_on_a_live_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`savd paths show` listens like `savd run` and prints the facts the engine would get, with alarms."""
    from test_bmp import NH4, ORIGIN, PEER4, PEER_AS, as_path, initiation, monitoring, nlri, peer_up, update

    from appliance.cli import main
    from rpki.localcache import free_port

    port = free_port()
    cfg = tmp_path / "savd.toml"
    cfg.write_text(CONFIG.replace("127.0.0.1:11019", f"127.0.0.1:{port}").replace(C1, PEER4)
                   .replace("asn = 65010", f"asn = {PEER_AS}"))
    feed = b"".join([
        initiation("b1"), peer_up(),
        monitoring(update(attrs=ORIGIN + as_path((2, [PEER_AS, 65011])) + NH4,
                          announced=nlri("198.18.50.0/24"))),
        monitoring(update()),  # End-of-RIB
        peer_up("198.18.42.2", 65030),  # no [[engine.neighbor]]: an alarm
    ])

    def router() -> None:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                    sock.sendall(feed)
                    time.sleep(1)
                return
            except OSError:
                time.sleep(0.05)

    thread = threading.Thread(target=router, daemon=True)
    thread.start()
    code = main(["paths", "show", "--config", str(cfg), "--timeout", "10", "--json"])
    doc = json.loads(capsys.readouterr().out)
    thread.join()
    assert code == 0
    assert [(p["router"], p["interface"], p["prefix"], p["as_path"]) for p in doc["paths"]] == [
        ("b1", "eth2", "198.18.50.0/24", [PEER_AS, 65011])]
    assert doc["peers"][0]["synced"] is True
    assert [a["type"] for a in doc["alarms"]] == ["bmp.unknown-peer"]
