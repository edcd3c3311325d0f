"""The dashboard's files are served by the API app at /dashboard/, with their types and a strict CSP, without
a token even when reads need one (they hold no data), and pyproject ships every one of them."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from fastapi.testclient import TestClient

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig
from appliance.dashboard import STATIC
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metrics import Metrics
from appliance.state import StateStore

REPO = Path(__file__).resolve().parents[3]


def client(read_required: bool = False) -> TestClient:
    store, monitor, counters = StateStore(), Monitor(ManualClock(1.0)), CounterBoard()
    ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters))
    return TestClient(create_app(ports, ApiConfig(token="t", read_token_required=read_required)))


def test_files_are_served_with_their_types_and_security_headers() -> None:
    c = client(read_required=True)
    assert c.get("/api/v1/rules").status_code == 401  # data needs the token ...
    page = c.get("/dashboard/")  # ... the page does not
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, kind in (("app.js", "text/javascript"), ("api.js", "text/javascript"),
                       ("graph.js", "text/javascript"), ("style.css", "text/css")):
        answer = c.get(f"/dashboard/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind), name
    moved = c.get("/dashboard", follow_redirects=False)
    assert moved.status_code in (302, 307) and moved.headers["location"] == "dashboard/"
    assert c.get("/dashboard/../pyproject.toml").status_code == 404
    assert c.get("/dashboard/nothing.js").status_code == 404


def test_the_page_references_only_its_own_files_and_no_inline_script() -> None:
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs and all((STATIC / ref).is_file() for ref in refs), refs
    assert "<script>" not in html and "onclick=" not in html  # the CSP forbids inline code
    for js in STATIC.glob("*.js"):
        text = js.read_text()
        assert "innerHTML" not in text and "eval(" not in text, js.name  # API values go in as text
        for module in re.findall(r'from "\./([^"]+)"', text):
            assert (STATIC / module).is_file(), (js.name, module)


def test_pyproject_ships_every_dashboard_file() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["appliance.dashboard"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.iterdir() if p.is_file()]
    assert files and all(any(fnmatch(f, pat) for pat in patterns) for f in files), (files, patterns)
    assert sum(p.stat().st_size for p in STATIC.iterdir()) < 200_000  # small, readable, no bundle
