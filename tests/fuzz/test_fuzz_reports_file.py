"""Fuzz the reports file loader and its watcher (issue 12, item 2).

Properties: load_report_file raises ReportError and nothing else, naming the file; what it returns holds
only valid names and canonical prefixes; the watcher never raises, alarms on every failure, keeps the
last good facts and loads a good file afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from appliance.model import canonical_prefix
from appliance.monitor import Monitor
from appliance.names import interface_name_problem, router_name_problem
from appliance.sources.reports.component import report_file
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.yamlfile import load_report_file
from appliance.state import StateStore

from . import corpus, fuzz_settings

GOOD = b"prefixes:\n  - {router: r1, interface: eth1, prefix: 198.18.1.0/24, subnet: '1'}\n"
LATER = b"prefixes:\n  - {router: r2, interface: eth2, prefix: 198.18.3.0/24, subnet: '2'}\n"

SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
           | st.text(max_size=12)
           | st.sampled_from(["r1", "eth1", "../x", "yes", "198.18.1.0/24", "fe80::%eth0/64", "2001:db8::/32",
                              "anycast", "border", "savnet", "", "1.0"]))
KEYS = st.sampled_from(["routers", "subnets", "prefixes", "router", "interface", "prefix", "subnet", "id",
                        "flags", "attachments", "role", "capability", "r1"]) | st.integers(0, 3) | st.none()
FLAT_KEYS = st.sampled_from(["router", "interface", "prefix", "subnet", "flags"])
DOCS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(KEYS, inner, max_size=4), max_leaves=25)


def _check_loaded(path: Path) -> None:
    """The loader's contract on any file: valid facts, or one ReportError naming the file."""
    try:
        prefixes, routers = load_report_file(path)
    except ReportError as exc:
        assert exc.problems and all(p.startswith(str(path)) for p in exc.problems), exc.problems
        return
    for r in prefixes:
        assert router_name_problem(r.router) is None
        assert r.interface == "" or interface_name_problem(r.interface) is None
        assert canonical_prefix(r.prefix) == r.prefix
    for rr in routers:
        assert router_name_problem(rr.router) is None


def _write(path: Path, body: bytes, when: float) -> None:
    path.write_bytes(body)
    os.utime(path, (when, when))


def _check_watcher(tmp: Path, body: bytes) -> None:
    """Whatever the file holds, the watcher lives, alarms when it cannot load it, keeps the last good
    facts, and loads a good file afterwards."""
    path = tmp / "reports.yaml"
    _write(path, GOOD, 1.0)
    ctx = SimpleNamespace(monitor=Monitor(), store=StateStore())
    watcher = report_file(path)
    assert watcher.load(ctx)
    _write(path, body, 2.0)
    loaded = watcher.load(ctx)
    alarms = ctx.monitor.alarms.active("reports.file-error")
    if not loaded:
        assert len(alarms) == 1 and str(path) in alarms[0].message
        assert [(r.router, r.prefix) for r in ctx.store.snapshot().reports] == [("r1", "198.18.1.0/24")]
    _write(path, LATER, 3.0)
    assert watcher.load(ctx) and not ctx.monitor.alarms.active("reports.file-error")


@fuzz_settings()
@given(body=st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "bytes.yaml"
    path.write_bytes(body)
    _check_loaded(path)


@fuzz_settings()
@given(doc=DOCS)
def test_fuzz_arbitrary_yaml_documents(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _check_loaded(path)
    toml_path = tmp_path / "doc.toml"  # the same loader reads TOML: feed it text that is not TOML too
    toml_path.write_text(yaml.safe_dump(doc))
    _check_loaded(toml_path)


@fuzz_settings()
@given(doc=st.fixed_dictionaries({}, optional={
    "routers": st.dictionaries(KEYS | SCALARS.filter(lambda v: isinstance(v, str)), DOCS, max_size=3),
    "subnets": st.lists(st.fixed_dictionaries({}, optional={
        "id": SCALARS, "flags": DOCS, "prefixes": st.lists(SCALARS, max_size=3),
        "attachments": st.lists(st.dictionaries(st.sampled_from(["router", "interface", "x"]), SCALARS),
                                max_size=3)}), max_size=3),
    "prefixes": st.lists(st.dictionaries(FLAT_KEYS, SCALARS, max_size=5), max_size=4),
}))
def test_fuzz_schema_shaped_documents_through_the_watcher(tmp_path: Path, doc: Any) -> None:
    body = yaml.safe_dump(doc, allow_unicode=True).encode()
    path = tmp_path / "shaped.yaml"
    path.write_bytes(body)
    _check_loaded(path)
    _check_watcher(tmp_path, body)


@pytest.mark.parametrize("case", corpus("reports_file"), ids=lambda p: p.name)
def test_corpus_inputs_that_crashed_before_are_a_report_error_and_an_alarm(tmp_path: Path,
                                                                           case: Path) -> None:
    path = tmp_path / case.name
    path.write_bytes(case.read_bytes())
    with pytest.raises(ReportError) as exc:
        load_report_file(path)
    assert all(p.startswith(str(path)) for p in exc.value.problems)
    _check_watcher(tmp_path, case.read_bytes())
