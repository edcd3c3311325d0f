"""The daemon's recompute path (engine_from_config -> appliance.recompute.ConfigEngine) is incremental and
gives, after every burst of store changes, exactly the rules a full compute() of the same snapshot gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import Config, parse_config
from appliance.daemon import engine_from_config
from appliance.engine.snapshot import compute
from appliance.model import (
    Aspa,
    BgpPath,
    IgpPrefix,
    Interface,
    Link,
    Neighbor,
    PrefixReport,
    Relationship,
    Router,
    Vrp,
)
from appliance.recompute import ConfigEngine
from appliance.sources.assemble import engine_input
from appliance.state import Announce, StateStore, Withdraw
from appliance.state.changes import Change, ReplaceSource, WithdrawSource
from appliance.state.facts import Fact

CONFIG = """
[appliance]
asn = 65000
router_id = "198.18.20.10"
data_dir = "{data_dir}"
[[engine.router]]
name = "r1"
role = "border"
capability = "savnet"
[[engine.router]]
name = "r2"
role = "access"
capability = "legacy"
"""

ROUTERS = ("r1", "r2")
IFACES = ("eth1", "eth2")
PREFIXES = ("198.18.1.0/24", "198.18.2.0/24", "198.18.0.0/16", "2001:db8:1::/48", "198.18.1.128/25")
ASNS = (64512, 64513, 64514, 64515)

_router = st.sampled_from(ROUTERS)
_iface = st.sampled_from(IFACES)
_prefix = st.sampled_from(PREFIXES)
_asn = st.sampled_from(ASNS)
FACTS: st.SearchStrategy[Fact] = st.one_of(
    st.builds(Router, _router, st.just(""), _asn),
    st.builds(Interface, _router, _iface, external=st.booleans()),
    st.builds(Link, _router, _iface, _router, _iface),
    st.builds(IgpPrefix, _router, _prefix, external=st.booleans()),
    st.builds(PrefixReport, _router, _iface, _prefix, source=st.sampled_from(("api", "file", "bgp-ls"))),
    st.builds(Neighbor, _router, _iface, _asn, st.sampled_from(list(Relationship))),
    st.builds(BgpPath, _router, _iface, _prefix, st.lists(_asn, min_size=1, max_size=3).map(tuple),
              path_id=st.integers(0, 1)),
    st.builds(Vrp, _prefix, st.sampled_from((16, 24, 25, 48)), _asn),
    st.builds(Aspa, _asn, st.lists(_asn, max_size=2, unique=True).map(lambda a: tuple(sorted(a)))),
)
SOURCES = st.sampled_from(("api", "bgp-ls:ctl/198.18.255.1", "rtr:cache", "file:reports.toml"))
CHANGES: st.SearchStrategy[Change] = st.one_of(
    st.builds(Announce, SOURCES, st.lists(FACTS, min_size=1, max_size=4).map(tuple)),
    st.builds(Withdraw, SOURCES, st.lists(FACTS, min_size=1, max_size=4).map(tuple)),
    st.builds(ReplaceSource, SOURCES, st.just(("path", "vrp")), st.lists(FACTS, max_size=4).map(tuple)),
    st.builds(WithdrawSource, SOURCES),
)


def make_config(tmp_path: Path) -> Config:
    return parse_config(CONFIG.format(data_dir=tmp_path / "data"), tmp_path / "savd.toml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bursts=st.lists(st.lists(CHANGES, min_size=1, max_size=4), min_size=1, max_size=8))
def test_random_store_changes_give_the_rules_of_a_full_compute(
    tmp_path: Path, bursts: list[list[Change]]
) -> None:
    config = make_config(tmp_path)
    engine = engine_from_config(config)
    assert isinstance(engine, ConfigEngine)
    store = StateStore()
    for burst in bursts:
        for change in burst:
            store.apply(change)
        snapshot = store.snapshot()
        assert engine(snapshot) == compute(engine_input(config, snapshot))


def test_path_and_report_changes_do_not_rebuild(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    engine = ConfigEngine(config)
    store = StateStore()
    store.apply(Announce("bgp-ls:x", (Router("r1", "", 65000), Interface("r1", "eth1", external=True),
                                      Neighbor("r1", "eth1", 64512, Relationship.CUSTOMER))))
    engine(store.snapshot())
    steps: list[Change] = [
        Announce("bgp-ls:x", (BgpPath("r1", "eth1", "198.18.1.0/24", (64512,)),)),
        Announce("api", (PrefixReport("r1", "eth2", "198.18.2.0/24"),)),
        Announce("bgp-ls:x", (BgpPath("r1", "eth1", "198.18.1.0/24", (64512, 64513), 1),)),
        Withdraw("bgp-ls:x", (BgpPath("r1", "eth1", "198.18.1.0/24", (64512,)),)),
        Announce("rtr:c", (Vrp("198.18.1.0/24", 24, 64513),)),
        ReplaceSource("bgp-ls:x", ("path",), (BgpPath("r1", "eth1", "198.18.1.0/24", (64512, 64514), 1),)),
        Withdraw("api", (PrefixReport("r1", "eth2", "198.18.2.0/24"),)),
    ]
    for change in steps:
        store.apply(change)
        snapshot = store.snapshot()
        assert engine(snapshot) == compute(engine_input(config, snapshot))
    assert engine.rebuilds == 1


def test_an_incremental_failure_is_logged_and_rebuilt(tmp_path: Path, caplog: object) -> None:
    config = make_config(tmp_path)
    engine = ConfigEngine(config)
    store = StateStore()
    store.apply(Announce("api", (PrefixReport("r1", "eth1", "198.18.1.0/24"),)))
    engine(store.snapshot())
    assert engine.engine is not None

    def broken(event: object) -> frozenset[tuple[str, str]]:
        raise RuntimeError("boom")

    engine.engine.apply = broken  # type: ignore[method-assign]
    store.apply(Announce("api", (PrefixReport("r1", "eth2", "198.18.2.0/24"),)))
    snapshot = store.snapshot()
    assert engine(snapshot) == compute(engine_input(config, snapshot))
    assert engine.rebuilds == 2
    assert "recompute-incremental-failed" in caplog.text  # type: ignore[attr-defined]


def test_the_engine_input_keeps_configured_roles(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = StateStore()
    store.apply(Announce("bgp-ls:x", (Router("r2", "198.18.255.2", 65000),)))
    routers = {r.name: r for r in engine_input(config, store.snapshot()).routers}
    assert dataclasses.astuple(routers["r2"])[3:] == ("access", "legacy")
    assert routers["r2"].router_id == "198.18.255.2" and "r1" in routers
