"""`savd run`: the daemon serves the API on one loop with the state, recomputes rules with the real
engine, keeps state, rules and pushed rules across a restart, and reports a corrupt journal clearly."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.cli import main
from appliance.config import Config, load_config, parse_config
from appliance.daemon import Daemon, DaemonContext, engine_from_config
from appliance.model import Interface, PrefixReport, Router, SavRuleSet, Severity
from appliance.state import Announce, StateSnapshot, Withdraw
from appliance.state.journal import FILE_NAME
from rpki.localcache import free_port

REPO = Path(__file__).resolve().parents[3]
TOKEN = "daemon-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPORT = {"router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24", "subnet": "lan-a"}


def config_text(data_dir: Path, port: int = 8180) -> str:
    return f"""
[appliance]
asn = 65000
router_id = "198.18.20.10"
data_dir = "{data_dir}"
[api]
listen = "127.0.0.1:{port}"
token_env = "SAVD_DAEMON_TEST_TOKEN"
[[engine.router]]
name = "r1"
role = "access"
capability = "legacy"
[[engine.mode]]
router = "r1"
interface = "eth1"
mode = "monitor"
"""


def make_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("SAVD_DAEMON_TEST_TOKEN", TOKEN)
    config = parse_config(config_text(tmp_path / "data"), tmp_path / "savd.toml")
    return dataclasses.replace(config, api=dataclasses.replace(config.api, port=0))  # any free port


class RecordingComponent:
    """A stand-in component recording its lifecycle and the rule sets it is handed (mock)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.rule_versions: list[int] = []

    async def start(self, ctx: DaemonContext) -> None:
        self.log.append(f"start {self.name}")

        async def on_rules(version: int, new: SavRuleSet, old: SavRuleSet) -> None:
            self.rule_versions.append(version)

        ctx.on_rules(on_rules)

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def poll(what: str, probe: Callable[[], Awaitable[Any]], deadline_s: float = 10.0) -> Any:
    """Poll `probe` until it returns something truthy; fail naming what was awaited and the last value."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


async def start(daemon: Daemon) -> asyncio.Task[None]:
    task = asyncio.create_task(daemon.run())
    await poll("daemon ready", lambda: _ready(daemon, task))
    return task


async def _ready(daemon: Daemon, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return daemon.ready.is_set()


def test_daemon_computes_rules_and_comes_back_after_restart_with_mock_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, monkeypatch)
    lifecycle: list[str] = []

    async def first_run() -> int:
        daemon = Daemon(config, debounce_s=0.01, tick_s=0.05)
        daemon.set_engine(engine_from_config(config))  # the real engine
        pusher = RecordingComponent("pusher", lifecycle)
        daemon.add(RecordingComponent("speaker", lifecycle))
        daemon.add(pusher)
        task = await start(daemon)
        assert daemon.ctx is not None and daemon.api_address is not None
        ctx = daemon.ctx
        # what a BGP-LS speaker would apply
        topology = (Router("r1", "198.18.255.1", 65000), Interface("r1", "eth1"), Interface("r1", "eth2"))
        ctx.store.apply(Announce("bgp-ls:ctl/198.18.255.1", topology))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.api_address[1]}") as client:
            created = await client.post("/api/v1/reports", json=REPORT, headers=AUTH)
            assert created.status_code == 201

            async def rules() -> list[dict[str, Any]]:
                body = (await client.get("/api/v1/rules")).json()
                return [r for r in body["rules"] if body["version"] == 2]

            (rule,) = await poll("rules for state version 2", rules)
            assert (rule["router"], rule["interface"], rule["kind"], rule["prefixes"]) == (
                "r1", "eth1", "allow", ["198.18.1.0/24"])
            # the configuration completes the state: capability legacy -> ACL delivery, mode monitor
            assert (rule["delivery"], rule["action"]["mode"]) == ("acl", "monitor")
            events = (await client.get("/api/v1/events", params={"type": "rules-changed"})).json()["events"]
            assert events[-1]["fields"]["added"] == "1"
            metrics = (await client.get("/metrics")).text
            assert "savd_state_version 2.0" in metrics and "savd_rules 1.0" in metrics
        await poll("pusher handed version 2", lambda: _true(2 in pusher.rule_versions))
        ctx.store.record_push("198.18.255.1", {"src 198.18.1.0/24": "flow route ... accept"}, ())
        daemon.stop()
        await asyncio.wait_for(task, 10)
        return ctx.store.version

    version = asyncio.run(first_run())
    assert lifecycle == ["start speaker", "start pusher", "stop pusher", "stop speaker"]

    async def second_run() -> None:
        daemon = Daemon(config, debounce_s=0.01)  # no engine: what is served comes from the journal
        task = await start(daemon)
        assert daemon.api_address is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.api_address[1]}") as client:
            health = (await client.get("/health")).json()
            assert (health["state_version"], health["rules_version"]) == (version, 2)
            reports = (await client.get("/api/v1/reports")).json()["reports"]
            assert [(r["prefix"], r["sources"]) for r in reports] == [("198.18.1.0/24", ["api"])]
            rules = (await client.get("/api/v1/rules/r1/eth1")).json()["rule"]
            assert rules["prefixes"] == ["198.18.1.0/24"]
            held = (await client.get("/api/v1/flowspec/198.18.255.1")).json()["rules"]
            assert held == [{"key": "src 198.18.1.0/24", "rule": "flow route ... accept"}]
            topo = (await client.get("/api/v1/topology")).json()
            assert [r["name"] for r in topo["routers"]] == ["r1"]
        daemon.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(second_run())


async def _true(value: bool) -> bool:
    return value


def test_a_failing_engine_keeps_the_rules_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, monkeypatch)

    def broken(snap: StateSnapshot) -> SavRuleSet:
        raise RuntimeError("radix exploded")

    async def scenario() -> None:
        daemon = Daemon(config, debounce_s=0.01)
        daemon.set_engine(broken)
        task = await start(daemon)
        assert daemon.ctx is not None
        daemon.ctx.rules.publish(1, SavRuleSet())
        daemon.ctx.store.apply(Announce("api", (Router("r1"),)))
        monitor = daemon.ctx.monitor

        async def failed() -> list[Any]:
            records = monitor.bus.recent(types=["rules-changed"])
            return [r for r in records if "compute failed" in r.event.message]

        (record,) = await poll("engine failure event", failed)
        assert "radix exploded" in record.event.message and record.event.severity == "error"
        assert daemon.ctx.rules.current() == (1, SavRuleSet())
        daemon.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


class OldCache:
    def to_dict(self) -> dict[str, Any]:
        return {"name": "stayrtr", "last_update": time.time() - 9000.0}


class RpkiStandIn:
    """Registers an RPKI cache status that has not updated for 2.5 hours (mock)."""

    name = "rpki"

    async def start(self, ctx: DaemonContext) -> None:
        ctx.rpki.add_caches(lambda: [OldCache()])

    async def stop(self) -> None:
        return None


def test_stale_rpki_raises_an_alarm_with_mock_cache_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, monkeypatch)

    async def scenario() -> None:
        daemon = Daemon(config, tick_s=0.02)
        daemon.add(RpkiStandIn())
        task = await start(daemon)
        assert daemon.ctx is not None
        alarms = daemon.ctx.monitor.alarms
        (alarm,) = await poll("rpki alarm", lambda: _value(alarms.active("rpki-expired")))
        assert alarm.id == "rpki-stale/rtr:stayrtr" and alarm.severity == "critical"
        daemon.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


async def _value(value: Any) -> Any:
    return value


def savd(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "appliance.cli", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def wait_health(port: int, proc: subprocess.Popen[str], deadline_s: float = 20.0) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < end:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"savd exited with {proc.returncode}: {err}")
        try:
            return dict(httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json())
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for /health on port {port}; last: {last!r}")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def test_savd_run_cli_corrupt_journal_and_clean_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    (data / FILE_NAME).write_bytes(b"\x00garbage, not a database" * 200)
    cfg = tmp_path / "savd.toml"
    cfg.write_text(config_text(data, port))
    env = {**os.environ, "SAVD_DAEMON_TEST_TOKEN": TOKEN}
    monkeypatch.setenv("SAVD_DAEMON_TEST_TOKEN", TOKEN)  # for the in-process `savd api --config`

    refused = savd("run", "--config", str(cfg), env=env)
    _, err = refused.communicate(timeout=30)
    assert refused.returncode == 3
    assert f"{data / FILE_NAME}: not a usable journal" in err and "--reset-corrupt-journal" in err

    proc = savd("run", "--config", str(cfg), "--reset-corrupt-journal", env=env)
    try:
        assert wait_health(port, proc)["status"] == "ok"
        # CLI parity: the same API through `savd api`, address and token taken from the config
        added = api_cli(cfg, "reports", "add", "r1", "eth1", "198.18.1.0/24", "--multihomed")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["report"]["flags"]["multihomed"] is True
        listed = api_cli(cfg, "reports", "list", "--router", "r1")
        assert [r["prefix"] for r in json.loads(listed.stdout)["reports"]] == ["198.18.1.0/24"]
        bad = api_cli(cfg, "reports", "add", "r1", "eth1", "198.18.1.1/24")
        assert bad.returncode == 1 and "HTTP 422: body.prefix" in bad.stderr
        why = api_cli(cfg, "explain", "r1", "eth1", "198.18.1.7")
        assert json.loads(why.stdout)["verdict"] == "pass"  # no rules computed here: fail open
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert len(list(data.glob(f"{FILE_NAME}.corrupt-*"))) == 1
    assert re.search(r"time=\S+Z type=report-changed severity=info category=system-event source=api "
                     r"router=r1 interface=eth1 prefix=198\.18\.1\.0/24 ", err)  # structured key=value lines
    assert "event=journal-reset" in err


def api_cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`savd api --config CFG ARGS` in this process (the daemon is the subprocess), output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["api", "--config", str(cfg), *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_savd_api_cannot_reach_is_exit_5(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["api", "--url", f"http://127.0.0.1:{port}", "health"]) == 5  # ExitCode.EXTERNAL
    assert f"cannot reach http://127.0.0.1:{port}" in capsys.readouterr().err


def test_savd_run_rejects_a_bad_config_with_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[appliance]\nasn = 'x'\n[api]\nlisten = 'nowhere:1'\n")
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg.resolve()}:2: appliance.asn: must be an integer, got str" in err
    assert f"{cfg.resolve()}:4: api.listen: must be an IP address, got 'nowhere'" in err


def test_reload_applies_the_engine_section_and_refuses_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAVD_DAEMON_TEST_TOKEN", TOKEN)
    path = tmp_path / "savd.toml"
    path.write_text(config_text(tmp_path / "data"))
    config = load_config(path)
    config = dataclasses.replace(config, api=dataclasses.replace(config.api, port=0))

    async def scenario() -> None:
        daemon = Daemon(config, debounce_s=0.01)
        daemon.use_config_engine()
        task = await start(daemon)
        assert daemon.ctx is not None
        ctx = daemon.ctx
        facts = (Interface("r1", "eth1"), PrefixReport("r1", "eth1", "198.18.1.0/24"))
        ctx.store.apply(Announce("api", facts))

        async def mode() -> str:
            current = ctx.rules.current()
            rule = current[1].get("r1", "eth1") if current else None
            return str(rule.action.mode) if rule else ""

        assert await poll("monitor rule", lambda: _wanted(mode, "monitor"))
        text = config_text(tmp_path / "data")
        path.write_text(text.replace('mode = "monitor"', 'mode = "rate-limit"\nrate = 500.0'))
        assert daemon.reload() == ("api", "engine")  # api: the file says 8180, the test runs on port 0
        assert await poll("rate-limit rule", lambda: _wanted(mode, "rate-limit"))
        event = [r.event for r in ctx.monitor.bus.recent(types=["daemon"]) if r.event.source == "config"][-1]
        assert event.message == "configuration reloaded: changed api, engine; restart savd to apply api"
        path.write_text("[appliance]\nasn = 0\n")
        assert daemon.reload() == ()
        refused = ctx.monitor.bus.recent(types=["daemon"], min_severity=Severity.ERROR)[-1].event
        assert "reload refused" in refused.message and "appliance.asn: must be between" in refused.message
        assert await mode() == "rate-limit" and daemon.config.engine.modes[0].action.rate == 500.0
        daemon.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


async def _wanted(probe: Callable[[], Awaitable[str]], value: str) -> bool:
    return await probe() == value


def test_an_api_port_in_use_is_a_clear_start_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SAVD_DAEMON_TEST_TOKEN", TOKEN)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "savd.toml"
        cfg.write_text(config_text(tmp_path / "data", port))
        assert main(["run", "--config", str(cfg)]) == 4
    err = capsys.readouterr().err
    assert err.startswith("savd: cannot start:") and "address already in use" in err.lower()


def test_report_conflicts_raise_and_clear_alarms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, monkeypatch)
    lan_a = PrefixReport("r1", "eth1", "198.18.1.0/24", subnet="a", source="api")
    lan_b = PrefixReport("r2", "eth1", "198.18.1.0/24", subnet="b", source="file")

    async def scenario() -> None:
        daemon = Daemon(config, debounce_s=0.01)
        daemon.use_config_engine()
        task = await start(daemon)
        assert daemon.ctx is not None
        ctx = daemon.ctx
        ctx.store.apply(Announce("api", (lan_a,)))
        ctx.store.apply(Announce("file:reports.yaml", (lan_b,)))
        (alarm,) = await poll("conflict alarm", lambda: _value(ctx.monitor.alarms.active()))
        assert alarm.source == "reports" and "198.18.1.0/24" in alarm.message
        ctx.store.apply(Withdraw("file:reports.yaml", (lan_b,)))
        await poll("alarm cleared", lambda: _value(not ctx.monitor.alarms.active()))
        daemon.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
