"""The reports file under bad input (issue 12, item 2): every failure to load is an alarm naming file and
field, the last good facts stay, the watcher lives and a later good file clears the alarm; at start-up a
bad file is one error line and the alarm while savd serves on with the journal's facts, and `savd config
check` names file and field. YAML coercions are errors, not names."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.config_cli import run_check
from appliance.monitor import Monitor
from appliance.sources.reports.component import report_file
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.yamlfile import load_report_file, parse_report_doc
from appliance.state import StateStore
from rpki.localcache import free_port

GOOD = b"prefixes:\n  - {router: r1, interface: eth1, prefix: 198.18.1.0/24, subnet: '1'}\n"
LATER = b"prefixes:\n  - {router: r2, interface: eth2, prefix: 198.18.3.0/24, subnet: '2'}\n"

# (case, file bytes, what the alarm must name besides the file)
BAD = [
    ("non-utf8", b"prefixes:\n  - {router: r\xff1, interface: eth1, prefix: 198.18.1.0/24}\n",
     "line 2: not UTF-8"),
    ("mixed-top-level-keys", b"1: x\nprefixes: []\n", "1: unknown section"),
    ("mixed-router-keys", b"routers: {1: {role: core}, a: {role: core}}\n", "routers.1"),
    ("deep-nesting", b"prefixes: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    ("router-yes", b"prefixes:\n  - {router: yes, interface: eth1, prefix: 198.18.1.0/24}\n",
     "prefixes[0].router: must be a name string, got True"),
    ("id-float", b"subnets:\n  - {id: 1.0, prefixes: [198.18.1.0/24], attachments: [{router: r1}]}\n",
     "subnets[0].id: must be a string or an integer, got 1.0"),
    ("empty-interface", b"prefixes:\n  - {router: r1, interface: , prefix: 198.18.1.0/24}\n",
     "prefixes[0].interface"),
    ("empty-string-interface", b"prefixes:\n  - {router: r1, interface: '', prefix: 198.18.1.0/24}\n",
     "prefixes[0].interface: must not be empty"),
    ("traversal", b"prefixes:\n  - {router: ../../../X, interface: eth1, prefix: 198.18.1.0/24}\n",
     "prefixes[0].router"),
    ("scoped-ipv6", b"prefixes:\n  - {router: r1, interface: eth1, prefix: 'fe80::%eth0/64'}\n",
     "prefixes[0].prefix"),
    ("huge-integer", b"prefixes:\n  - {router: r1, interface: eth1, prefix: 198.18.1.0/24, subnet: "
     + b"9" * 5000 + b"}\n", "not valid YAML"),
]


def _touch(path: Path, body: bytes, when: float) -> None:
    path.write_bytes(body)
    os.utime(path, (when, when))


@pytest.mark.parametrize("case, body, field", BAD, ids=[c[0] for c in BAD])
def test_a_bad_file_is_an_alarm_naming_file_and_field_and_the_watcher_lives(
    tmp_path: Path, case: str, body: bytes, field: str
) -> None:
    path = tmp_path / "reports.yaml"
    _touch(path, GOOD, 1.0)
    ctx = SimpleNamespace(monitor=Monitor(), store=StateStore())
    component = report_file(path)
    assert component.load(ctx)
    _touch(path, body, 2.0)
    assert not component.load(ctx)
    alarms = ctx.monitor.alarms.active("reports.file-error")
    assert len(alarms) == 1 and str(path) in alarms[0].message and field in alarms[0].message, alarms
    assert "Error:" not in alarms[0].message  # a reason an operator can act on, not an exception name
    assert [(r.router, r.prefix) for r in ctx.store.snapshot().reports] == [("r1", "198.18.1.0/24")]
    _touch(path, LATER, 3.0)  # fixing the file loads it and clears the alarm
    assert component.load(ctx)
    assert not ctx.monitor.alarms.active("reports.file-error")
    assert [(r.router, r.prefix) for r in ctx.store.snapshot().reports] == [("r2", "198.18.3.0/24")]


@pytest.mark.parametrize("case, body, field", BAD, ids=[c[0] for c in BAD])
def test_the_loader_raises_only_report_error(tmp_path: Path, case: str, body: bytes, field: str) -> None:
    path = tmp_path / "reports.yaml"
    path.write_bytes(body)
    with pytest.raises(ReportError, match=None) as exc:
        load_report_file(path)
    assert str(path) in str(exc.value) and field in str(exc.value)


def test_an_absent_interface_key_is_a_router_level_report() -> None:
    prefixes, _ = parse_report_doc({"prefixes": [{"router": "r1", "prefix": "198.18.1.0/24"}]})
    assert [(p.router, p.interface) for p in prefixes] == [("r1", "")]


def test_integer_subnet_ids_still_load() -> None:
    doc = {"subnets": [{"id": 10, "prefixes": ["198.18.10.0/24"], "attachments": [{"router": "r1"}]}]}
    prefixes, _ = parse_report_doc(doc)
    assert [p.subnet for p in prefixes] == ["10"]


def test_aliases_cannot_multiply_a_small_file_into_millions_of_reports(tmp_path: Path) -> None:
    atts = ", ".join(f"{{router: r{i}, interface: eth1}}" for i in range(300))
    pfx = ", ".join(f"198.18.{i // 256}.{i % 256}/32" for i in range(300))
    path = tmp_path / "reports.yaml"
    path.write_text(f"subnets:\n  - {{id: 1, prefixes: &p [{pfx}], attachments: &a [{atts}]}}\n"
                    + "".join(f"  - {{id: {k}, prefixes: *p, attachments: *a}}\n" for k in range(2, 5)))
    with pytest.raises(ReportError) as exc:  # 4 x 90,000 reports from a 20 kB file
        load_report_file(path)
    assert f"{path}: subnets[2]: more than 200000 reports in one file" in str(exc.value)


def test_at_start_a_bad_reports_file_is_an_alarm_and_the_journal_facts_serve_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """savd restarted after a bad edit: one error line and the alarm, what the file said at its last good
    load (held by the journal under the file's source) stays, and the watcher loads the fixed file."""
    path = tmp_path / "reports.yaml"
    _touch(path, GOOD, 1.0)
    store = StateStore()
    ctx = SimpleNamespace(monitor=Monitor(), store=store)
    assert report_file(path).load(ctx)  # the previous savd's last good load
    _touch(path, b"prefixes:\n  - {router: yes, interface: eth1, prefix: 198.18.1.0/24}\n", 2.0)
    ctx = SimpleNamespace(monitor=Monitor(), store=store)  # a new savd over the same state
    component = report_file(path, interval_s=0.05)
    caplog.set_level(logging.INFO)

    async def run() -> None:
        await component.start(ctx)
        try:
            alarms = ctx.monitor.alarms.active("reports.file-error")
            assert len(alarms) == 1 and "prefixes[0].router" in alarms[0].message
            assert [(r.router, r.prefix) for r in store.snapshot().reports] == [("r1", "198.18.1.0/24")]
            _touch(path, LATER, 3.0)
            for _ in range(100):
                await asyncio.sleep(0.02)
                if not ctx.monitor.alarms.active("reports.file-error"):
                    break
            assert [(r.router, r.prefix) for r in store.snapshot().reports] == [("r2", "198.18.3.0/24")]
        finally:
            await component.stop()

    asyncio.run(run())
    assert [r for r in caplog.records if "reports-file-not-loaded" in r.getMessage()]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_config_check_loads_the_reports_file_and_names_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    reports = tmp_path / "reports.yaml"
    reports.write_bytes(b"subnets:\n  - {id: 1.0, prefixes: [198.18.1.0/24], attachments: [{router: r1}]}\n")
    config = tmp_path / "savd.toml"
    config.write_text(f'[appliance]\nasn = 65000\nrouter_id = "198.18.20.10"\n'
                      f'data_dir = "{tmp_path / "data"}"\n'
                      f'[api]\nlisten = "127.0.0.1:{free_port()}"\n[reports]\nfile = "{reports}"\n')
    assert run_check(argparse.Namespace(file=str(config))) == 1
    err = capsys.readouterr().err
    assert str(reports) in err and "subnets[0].id" in err and "Traceback" not in err
    reports.write_bytes(GOOD)
    assert run_check(argparse.Namespace(file=str(config))) == 0
    assert capsys.readouterr().out.startswith("OK ")
