"""Issue 12, items 4 and 5 and the error shape: a journal that cannot be written refuses the write (507,
nothing served, an alarm, /health degraded); a write's token and body size are checked before any body
byte is read; every API error is one JSON shape."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig
from appliance.daemon import alarm_on_journal_failure
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metrics import Metrics
from appliance.state import Announce, Change, StateError, StateErrorKind, StateStore
from appliance.state.journal import Journal
from appliance.state.snapshot import StateSnapshot

TOKEN = "t0ken-for-the-hardening-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPORT = {"router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24", "subnet": "lan-a"}


def make_app(store: StateStore, token: str = TOKEN, body_limit_bytes: int = 4096) -> tuple[Any, Monitor]:
    monitor = Monitor(ManualClock(100.0))
    alarm_on_journal_failure(store, monitor)
    counters = CounterBoard()
    ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters))
    return create_app(ports, ApiConfig(token=token, body_limit_bytes=body_limit_bytes)), monitor


class Client:
    """httpx over ASGI on this thread: the journal's SQLite connection may only be used by its thread
    (as in the daemon, where the API runs on the loop that owns the store)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://savd") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)


def fill_the_disk(journal: Journal) -> None:
    """ENOSPC simulated: SQLite's max_page_count makes the next write fail with SQLITE_FULL, the error a
    full file system gives (a real one needs a tmpfs mount)."""
    pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]
    journal._conn.execute(f"PRAGMA max_page_count={pages}")


def post_until_full(client: Client) -> tuple[list[str], httpx.Response, str]:
    """POST reports until the journal is full: (prefixes accepted, the refused response, its prefix)."""
    accepted: list[str] = []
    for i in range(200):
        prefix = f"198.18.{i}.0/24"
        r = client.post("/api/v1/reports", json={**REPORT, "prefix": prefix, "subnet": "s" * 120},
                        headers=AUTH)
        if r.status_code != 201:
            return accepted, r, prefix
        accepted.append(prefix)
    raise AssertionError("the journal never filled up")


def free_the_disk(journal: Journal) -> None:
    journal._conn.execute("PRAGMA max_page_count=1073741823")


def test_a_report_is_refused_not_served_when_the_journal_write_fails_ENOSPC_simulated(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    store = StateStore(journal)
    app, monitor = make_app(store)
    client = Client(app)
    fill_the_disk(journal)
    accepted, r, refused = post_until_full(client)
    assert r.status_code == 507 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == "journal-write-failed" and body["kind"] == "disk-full"
    assert "nothing changed" in body["message"]
    assert store.version == len(accepted)
    served = [x["prefix"] for x in client.get("/api/v1/reports").json()["reports"]]
    assert refused not in served and sorted(served) == sorted(accepted)  # the refused one is not served
    assert [a.type for a in monitor.alarms.active()] == ["journal-failed"]
    health = client.get("/health").json()
    assert health["status"] == "degraded" and "disk-full" in health["degraded"][0]

    free_the_disk(journal)
    again = client.post("/api/v1/reports", json={**REPORT, "prefix": refused}, headers=AUTH)
    assert again.status_code == 201
    assert monitor.alarms.active() == [] and client.get("/health").json()["status"] == "ok"
    journal.close()
    with Journal.open(tmp_path) as reopened:  # what was acknowledged is what a restart sees
        assert len(list(reopened.replay())) == len(accepted) + 1


class FailingJournal(Journal):
    """A journal double whose appends fail as a full disk does; counts what reached it."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.path = "/simulated/savd-journal.sqlite"

    def append(self, change: Change, version: int, time: float, durable: bool = False) -> int:
        self.calls.append(durable)
        raise StateError("database or disk is full", self.path, kind=StateErrorKind.DISK_FULL)


def test_memory_does_not_change_when_the_journal_append_fails_ENOSPC_simulated() -> None:
    store = StateStore(FailingJournal())
    seen: list[StateError | None] = []
    store.watch_journal(seen.append)
    from appliance.model import PrefixFlags, PrefixReport
    report = PrefixReport("r1", "eth1", "198.18.1.0/24", "", PrefixFlags(), source="api")
    with pytest.raises(StateError):
        store.apply(Announce("api", (report,)))
    assert store.version == 0 and store.snapshot().reports == () and store.sources() == {}
    assert len(seen) == 1 and seen[0] is not None and seen[0].kind is StateErrorKind.DISK_FULL
    assert store.journal_error is seen[0]


def test_api_inputs_are_journalled_durably_and_protocol_inputs_are_not() -> None:
    journal = FailingJournal()
    store = StateStore(journal)
    from appliance.model import PrefixFlags, PrefixReport
    for source in ("api", "bgp-ls:exa1/198.18.0.2"):
        report = PrefixReport("r1", "eth1", "198.18.1.0/24", "", PrefixFlags(), source=source)
        with pytest.raises(StateError):
            store.apply(Announce(source, (report,)))
    assert journal.calls == [True, False]  # synchronous=FULL for the API's reports only


# --- auth and body size before the body is read -------------------------------------------------------


def asgi_call(app: Any, method: str, path: str, headers: dict[str, str],
              chunks: list[bytes]) -> tuple[int, dict[str, Any], int]:
    """Drive the ASGI app directly: (status, JSON body, body chunks the app pulled from the client)."""
    import json

    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8180),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def test_a_write_without_the_token_is_refused_before_its_body_is_read() -> None:
    app, _ = make_app(StateStore())
    chunks = [b'{"router": "r1", ' + b" " * 1000] * 50  # 50 kB that must never be pulled
    status, body, pulled = asgi_call(app, "POST", "/api/v1/reports",
                                     {"content-type": "application/json", "content-length": "50900"}, chunks)
    assert (status, pulled) == (401, 0) and "bearer token" in body["message"]
    no_token_app, _ = make_app(StateStore(), token="")
    status, body, pulled = asgi_call(no_token_app, "POST", "/api/v1/reports", {}, chunks)
    assert (status, pulled) == (403, 0) and "no API token" in body["message"]


def test_a_body_over_the_limit_is_413_before_it_is_parsed() -> None:
    app, _ = make_app(StateStore(), body_limit_bytes=4096)
    declared = {**AUTH, "content-type": "application/json", "content-length": str(10 * 2**20)}
    status, body, pulled = asgi_call(app, "POST", "/api/v1/reports", declared, [b"{" * 1024] * 10)
    assert (status, pulled) == (413, 0) and body["limit_bytes"] == 4096 and "4096 bytes" in body["message"]
    chunked = {**AUTH, "content-type": "application/json", "transfer-encoding": "chunked"}
    status, body, pulled = asgi_call(app, "POST", "/api/v1/reports", chunked, [b" " * 1024] * 100)
    assert status == 413 and pulled == 5  # stopped at the first chunk past 4096 bytes, not at 100
    client = Client(app)
    assert client.post("/api/v1/reports", json=REPORT, headers=AUTH).status_code == 201  # small is fine


# --- one error shape ----------------------------------------------------------------------------------


class BrokenFacts(StateStore):
    """A facts port double whose snapshot raises: an unhandled exception inside a route."""

    def snapshot(self) -> StateSnapshot:
        raise RuntimeError("boom")


def test_every_api_error_has_the_one_json_shape(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    app, _ = make_app(StateStore(journal), body_limit_bytes=1024)
    client = Client(app)
    no_token = Client(make_app(StateStore(), token="")[0])
    broken = Client(make_app(BrokenFacts())[0])
    responses = {
        401: client.post("/api/v1/reports", json=REPORT),
        403: no_token.post("/api/v1/reports", json=REPORT, headers=AUTH),
        404: client.get("/api/v1/nowhere"),
        405: client.put("/health", headers=AUTH),
        413: client.post("/api/v1/reports", content=b"{}" * 1024, headers=AUTH),
        422: client.post("/api/v1/reports", json={"router": "r1"}, headers=AUTH),
        500: broken.get("/api/v1/topology"),
    }
    fill_the_disk(journal)
    responses[507] = post_until_full(client)[1]
    for code, r in responses.items():
        assert r.status_code == code, (code, r.text)
        assert r.headers["content-type"] == "application/json", (code, r.text)
        body = r.json()
        assert isinstance(body.get("message"), str) and body["message"], (code, body)
    assert "allow" in responses[405].headers
    assert "boom" not in responses[500].text  # internals stay in the log
    journal.close()


def test_sqlite_full_maps_to_disk_full() -> None:
    err = sqlite3.OperationalError("database or disk is full")
    err.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    from appliance.state.journal import sqlite_kind
    assert sqlite_kind(err) is StateErrorKind.DISK_FULL
