"""Daemon components that need no network: enforcer group files, the report sources (file and store),
component start failures, and the demo's runtime configuration."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.config import Config, load_config
from appliance.daemon import Daemon, DaemonContext, StartError
from appliance.demo import TEMPLATE, runtime_config
from appliance.flowspec.compiler import compile_ruleset
from appliance.model import InterfaceRules, ListKind, SavRuleSet
from appliance.monitor import Monitor
from appliance.sources.reports.component import report_file
from appliance.speakers.holdover import reap
from appliance.speakers.sessions import write_groups
from appliance.state import StateStore

from .test_daemon import make_config


def ruleset(*keys: tuple[str, str]) -> SavRuleSet:
    return SavRuleSet(tuple(InterfaceRules(r, i, ListKind.ALLOW, ("198.18.1.0/24",)) for r, i in keys))


def test_group_files_match_the_compiler_and_follow_routers_that_lose_their_rules(tmp_path: Path) -> None:
    rules = ruleset(("r1", "eth1"), ("r2", "eth1"), ("r2", "eth2"))
    write_groups(tmp_path, rules)
    plan = compile_ruleset(rules)
    for spec in plan.routers:  # the enforcer's mapping is the one the compiled rules use
        on_disk = json.loads((tmp_path / f"{spec.router}.json").read_text())
        groups = [{"group_id": g.group_id, "interface": g.interface} for g in spec.groups]
        assert on_disk == {"groups": groups, "redirects": {}}
    before = (tmp_path / "r1.json").stat().st_mtime_ns
    time.sleep(0.01)
    write_groups(tmp_path, ruleset(("r1", "eth1")))
    assert (tmp_path / "r1.json").stat().st_mtime_ns == before  # unchanged: not rewritten, no reload
    # r2 lost its rules: empty mapping
    assert json.loads((tmp_path / "r2.json").read_text()) == {"groups": [], "redirects": {}}
    assert oct(os.stat(tmp_path / "r1.json").st_mode & 0o777) == "0o644"


def test_reports_file_loads_keeps_the_last_good_facts_on_error_and_raises_then_clears_an_alarm(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reports.yaml"
    path.write_text("prefixes:\n  - {router: r1, interface: eth1, prefix: 198.18.1.0/24, subnet: '1'}\n")
    ctx = SimpleNamespace(monitor=Monitor(), store=StateStore())
    component = report_file(path)
    assert component.load(ctx)
    assert [(r.router, r.prefix) for r in ctx.store.snapshot().reports] == [("r1", "198.18.1.0/24")]
    assert ctx.store.sources() == {f"file:{path}": 1}
    path.write_text("prefixes:\n  - {router: r1, interface: eth1, prefix: 198.18.1.1/24}\n")
    os.utime(path, (time.time() + 1, time.time() + 1))
    assert not component.load(ctx)
    alarms = ctx.monitor.alarms.active("reports.file-error")
    assert len(alarms) == 1 and str(path) in alarms[0].message and "prefixes[0]" in alarms[0].message
    assert len(ctx.store.snapshot().reports) == 1  # the last good facts stand
    path.write_text("prefixes:\n  - {router: r2, interface: eth2, prefix: 198.18.3.0/24, subnet: '2'}\n")
    os.utime(path, (time.time() + 2, time.time() + 2))
    assert component.load(ctx)
    assert not ctx.monitor.alarms.active("reports.file-error")
    assert [(r.router, r.prefix) for r in ctx.store.snapshot().reports] == [("r2", "198.18.3.0/24")]


class Broken:
    name = "broken-speaker"

    def __init__(self) -> None:
        self.stopped = False

    async def start(self, ctx: DaemonContext) -> None:
        raise RuntimeError("exabgp exited with 1: cannot bind 198.18.20.10:1179")

    async def stop(self) -> None:
        self.stopped = True


def test_a_component_that_cannot_start_is_a_start_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(make_config(tmp_path, monkeypatch))
    broken = Broken()
    daemon.add(broken)
    with pytest.raises(StartError, match="component broken-speaker did not start: exabgp exited with 1"):
        asyncio.run(daemon.run())
    assert not broken.stopped  # never started, so not stopped either


def test_reap_touches_only_processes_naming_the_work_directory(tmp_path: Path) -> None:
    assert reap(tmp_path / "speakers" / "nobody-runs-here") == []


def test_runtime_config_makes_the_demo_config_concrete(tmp_path: Path) -> None:
    out = runtime_config(TEMPLATE, tmp_path / "savd.toml", prefix="svxx", data_dir=tmp_path / "d",
                         api_port=18181, rtr_port=18282)
    config = load_config(out)
    assert {s.netns for s in config.speakers} == {"svxx-ctl"}
    assert [e.netns for e in config.enforcers] == ["svxx-r1", "svxx-r2", "svxx-r3", "svxx-r4"]
    assert config.appliance.data_dir == tmp_path / "d" and config.api.port == 18181
    assert [c.port for c in config.rpki.caches] == [18282]
    assert config.reports.file == TEMPLATE.parent / "demo-reports.yaml" and config.reports.file.exists()


def test_rpki_resync_drops_vrps_the_journal_restored_but_the_sources_no_longer_say(tmp_path: Path) -> None:
    """A VRP withdrawn while savd was down must not survive the restart: deltas alone never withdraw it."""
    from appliance.api.memory import RpkiStatusBoard
    from appliance.config import RpkiConfig, RpkiFileConfig
    from appliance.model import Vrp
    from appliance.sources.rpki.component import RpkiComponent
    from appliance.state import Announce
    from rpki.localcache import write_stayrtr_json

    rpki_file = tmp_path / "vrps.json"
    kept, gone = Vrp("198.18.0.0/16", 24, 65000), Vrp("198.19.0.0/16", 24, 65100)
    write_stayrtr_json(rpki_file, [kept])
    store = StateStore()
    store.apply(Announce("rpki", (kept, gone)))  # as restored from the journal
    config = dataclasses.replace(load_config(TEMPLATE), rpki=RpkiConfig(files=(RpkiFileConfig(rpki_file),)))
    ctx = SimpleNamespace(monitor=Monitor(), store=store, rpki=RpkiStatusBoard())
    component = RpkiComponent(config)

    async def scenario() -> tuple[tuple[Vrp, ...], list[dict[str, object]]]:
        await component.start(ctx)
        try:
            for _ in range(100):
                if gone not in store.snapshot().vrps:
                    break
                await asyncio.sleep(0.05)
            return store.snapshot().vrps, list(ctx.rpki.rpki_status()["files"])
        finally:
            await component.stop()

    vrps, files = asyncio.run(scenario())
    assert vrps == (kept,)
    assert files and files[0]["path"] == str(rpki_file) and files[0]["last_update"] is not None


def test_savd_report_role_reaches_the_engine_input_of_savd_run_through_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One pipeline: `savd report role --config` writes where `savd run` with that config reads, and the
    role reaches the engine (the daemon used to drop roles from report files)."""
    from appliance.cli import main
    from appliance.sources.assemble import engine_input

    cfg = tmp_path / "savd.toml"
    reports_yaml = tmp_path / "reports.yaml"
    reports_yaml.write_text("routers:\n  r2: {role: border, capability: legacy}\n")
    cfg.write_text('[appliance]\nasn = 65000\nrouter_id = "198.18.20.10"\ndata_dir = "data"\n'
                   '[reports]\nfile = "reports.yaml"\n')
    assert main(["report", "role", "--config", str(cfg), "--router", "r1", "--role", "access"]) == 0
    config = load_config(cfg)
    ctx = SimpleNamespace(config=config, monitor=Monitor(), store=StateStore())
    from appliance.sources.reports.component import components

    for component in components(ctx):  # type: ignore[arg-type]
        assert component.load(ctx)  # type: ignore[arg-type]
    routers = {r.name: r for r in engine_input(config, ctx.store.snapshot()).routers}
    assert (routers["r1"].role.value, routers["r2"].role.value, routers["r2"].capability.value) == \
        ("access", "border", "legacy")
    capsys.readouterr()
    assert main(["report", "list", "--config", str(cfg), "--json"]) == 0  # the CLI sees the same facts
    listed = {r["router"]: r["role"] for r in json.loads(capsys.readouterr().out)["routers"]}
    assert listed == {"r1": "access", "r2": "border"}


def test_bgpls_border_links_make_border_routers_in_the_engine_input(tmp_path: Path) -> None:
    from appliance.model import Link, Router
    from appliance.sources.assemble import engine_input
    from appliance.sources.bgpls.ingest import TOPOLOGY_KINDS
    from appliance.sources.reports.tags import roles_from_topology
    from appliance.state.changes import ReplaceSource

    class Topo:  # roles_from_topology reads only the border links
        def border_links(self) -> list[Link]:
            return [Link("r4", "ext")]

    config = load_config_text(tmp_path, '[appliance]\nasn = 65000\nrouter_id = "198.18.20.10"\n')
    store = StateStore()
    store.apply(ReplaceSource("bgp-ls:x", TOPOLOGY_KINDS, (Router("r4"), Router("r3"),
                                                            *roles_from_topology(Topo()))))  # type: ignore[arg-type]
    routers = {r.name: r.role.value for r in engine_input(config, store.snapshot()).routers}
    assert routers == {"r3": "core", "r4": "border"}


def load_config_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path)


def test_node_files_carry_each_routers_route_targets(tmp_path: Path) -> None:
    from appliance.model import Steered

    rules = ruleset(("r1", "eth1"), ("r2", "eth1"))
    steering = (Steered("r1", "2001:db8:9::/48", "", "insp6", "2001:db8:80::2", target="65000:4711"),
                Steered("r1", "198.18.9.0/24", "", "insp", "198.18.80.2"),
                Steered("r2", "2001:db8:9::/48", "", fallback=None))
    write_groups(tmp_path, SavRuleSet(rules.rules, steering))
    assert json.loads((tmp_path / "r1.json").read_text())["redirects"] == {"65000:4711": "2001:db8:80::2"}
    assert json.loads((tmp_path / "r2.json").read_text())["redirects"] == {}
