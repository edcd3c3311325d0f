"""The dashboard in headless Chromium against the real API app (uvicorn on loopback) over in-memory parts, no
lab: a broken page (a script error, a view that does not draw, a live update that never comes) fails here in
seconds. Each view is checked on what it shows; the token is asked for, sent as a bearer header and never
put in a URL."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import uvicorn
from playwright.sync_api import expect
from support.browser import browser_page, token_only_in_headers

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig
from appliance.flowspec.diff import FlowDiff
from appliance.flowspec.rules import ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.model import (
    Action,
    InterfaceRules,
    Link,
    ListKind,
    Mode,
    PrefixReport,
    Role,
    Router,
    SavRuleSet,
)
from appliance.monitor import Monitor
from appliance.monitor.counters import CounterBoard, CounterSample
from appliance.monitor.events import BgpSession, EventType, Operational
from appliance.monitor.metrics import Metrics
from appliance.state import Announce, StateStore
from appliance.state.pushed import record_diff

pytestmark = [pytest.mark.timeout(120)]

TOKEN = "dashboard-t0ken"
STREAM = "/api/v1/events/stream"
T = TypeVar("T")


def rules(*extra: str) -> SavRuleSet:
    return SavRuleSet.of([
        InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24", *extra), Action(Mode.DROP),
                       algorithm="intra", provenance={"198.18.1.0/24": ("report:lan@r1:eth1",),
                                                      **{p: ("report:api@r1:eth1",) for p in extra}}),
        InterfaceRules("r2", "eth2", ListKind.BLOCK, ("198.18.64.0/20",), Action(Mode.DROP),
                       algorithm="bar-sav",
                       provenance={"198.18.64.0/20": ("roa:198.18.64.0/20-24 AS65020",)}),
    ])


@dataclass
class Served:
    url: str
    store: StateStore
    rules: RulesHolder
    monitor: Monitor
    counters: CounterBoard
    run: Callable[[Callable[[], Any]], Any]  # run a change on the server's event loop, as the daemon does
    live: str  # how the page should stay live: "stream" or "poll"
    paths: set[str]  # the API's routes

    @property
    def missing(self) -> tuple[str, ...]:
        return (f"**{STREAM}*",) if self.live == "poll" else ()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(params=["stream", "poll"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The app on loopback; "poll": the page finds no event stream (404), as with a savd before it had one."""
    store, monitor, counters = StateStore(), Monitor(), CounterBoard()
    store.apply(Announce("bgp-ls:test", (
        Router("r1", "198.18.255.1", 65000, Role.ACCESS), Router("r2", "198.18.255.2", 65000, Role.BORDER),
        Router("r3", "198.18.255.3", 65000, Role.CORE),
        Link("r1", "r3"), Link("r3", "r1"), Link("r2", "r3"), Link("r3", "r2"))))
    holder = RulesHolder((store.snapshot().version, rules()))
    rule = FlowRule("r1", FlowMatch("198.18.1.0/24"), FlowAction(ActionKind.ACCEPT), (1,))
    record_diff(store, "198.18.255.1", FlowDiff(withdraw=(), announce=(rule,)))
    monitor.emit(BgpSession("exa1", "198.18.255.2", "r2", up=False, reason="hold timer expired"))
    ports = ApiPorts(store, holder, RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters))
    app = create_app(ports, ApiConfig(token=TOKEN))
    paths = set(app.openapi()["paths"])
    if request.param == "stream" and STREAM not in paths:
        pytest.skip("this savd has no event stream: the page polls (the poll case)")
    for n in (0, 40):  # an enforcer's baseline, then a rise: spoofing seen (the traces come from it)
        for notice in counters.update([CounterSample("r2", "eth2", "198.18.64.0/20", "drop", n, 100 * n)],
                                      now=n):
            monitor.emit(notice)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()

    def run(change: Callable[[], T]) -> T:
        async def call() -> T:
            return change()
        return asyncio.run_coroutine_threadsafe(call(), loop).result(5)

    try:
        for _ in range(100):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield Served(f"http://127.0.0.1:{port}", store, holder, monitor, counters, run, request.param, paths)
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()


def test_every_view_draws_and_the_token_stays_in_headers(served: Served) -> None:
    with browser_page(f"{served.url}/dashboard/", TOKEN, served.missing) as (page, seen):
        # topology: the routers learned, with their roles
        for name, role in (("r1", "access"), ("r2", "border"), ("r3", "core")):
            node = page.locator(f'#graph g[data-router="{name}"]')
            expect(node).to_be_visible()
            expect(node).to_contain_text(role)
        assert page.locator("#graph line.edge").count() == 2  # one per adjacency, not per direction
        # rules with provenance
        expect(page.locator('[data-rule="r1:eth1"]')).to_contain_text("report:lan@r1:eth1")
        expect(page.locator('[data-rule="r2:eth2"]')).to_contain_text("blocklist")
        # explain
        page.locator('[data-rule="r2:eth2"] button').click()
        page.fill("#explain-source", "198.18.64.9")
        page.click("#explain-form button[type=submit]")
        expect(page.locator("#explain-result")).to_contain_text("drop")
        expect(page.locator("#explain-result")).to_contain_text("roa:198.18.64.0/20-24 AS65020")
        # spoofed traffic (counters, or traces when savd has them), RPKI, FlowSpec push
        spoofing = page.locator("#spoofing")  # a trace, or the drop counters of a savd without traces
        expect(spoofing).to_contain_text("198.18.64.0/20")
        expect(spoofing).to_contain_text("40")
        if STREAM in served.paths:  # the traces came with the stream (issue 15 item 2)
            expect(page.locator('#spoofing [data-trace="r2:eth2"]')).to_contain_text("40 packets")
        expect(page.locator("#rpki-body")).to_contain_text("0 VRPs")
        expect(page.locator('#push-list [data-peer="198.18.255.1"]')).to_contain_text("1")
        page.locator('#push-list [data-peer="198.18.255.1"] button').click()
        expect(page.locator("#push-detail")).to_contain_text("198.18.1.0/24")
        # alarms: ack, then clear
        row = page.locator("#alarms-list tr[data-type='bgp.session-down']")
        expect(row).to_contain_text("hold timer expired")
        row.locator("button.ack").click()
        expect(row).to_contain_text("acked")
        row.locator("button.clear").click()
        expect(row).to_have_count(0)
        expect(page.locator("#alarms-list tr[data-type=spoofing-seen]")).to_contain_text("r2 eth2")
        assert [a.type for a in served.run(lambda: served.monitor.alarms.active())] == ["spoofing-seen"]
        token_only_in_headers(seen, TOKEN)
        assert seen.errors == []


def test_a_report_added_through_the_api_appears_in_the_rules_view_live(served: Served) -> None:
    with browser_page(f"{served.url}/dashboard/", TOKEN, served.missing) as (page, seen):
        rule = page.locator('[data-rule="r1:eth1"]')
        expect(rule).to_contain_text("198.18.1.0/24")
        expect(page.locator("body")).to_have_attribute("data-live", served.live)
        marker = page.evaluate("document.body.dataset.refreshed")
        # the report goes in through the API; the engine's part (a new rule set, rules-changed) is played here
        report = PrefixReport("r1", "eth1", "198.18.7.0/24", source="api")
        served.run(lambda: served.store.apply(Announce("api", (report,))))

        def recompute() -> None:
            served.rules.publish(served.store.snapshot().version, rules("198.18.7.0/24"))
            served.monitor.emit(Operational(EventType.RULES_CHANGED, "engine", "rules changed"))

        served.run(recompute)
        # within a poll (3 s) or at once on the event: well before the 15 s backstop of the stream mode
        expect(rule.locator('tr[data-prefix="198.18.7.0/24"]')).to_contain_text("report:api@r1:eth1",
                                                                                 timeout=6_000)
        assert page.evaluate("document.body.dataset.refreshed") != marker  # redrawn, not reloaded:
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        token_only_in_headers(seen, TOKEN)
        assert seen.errors == []


def test_a_wrong_token_asks_again(served: Served) -> None:
    with browser_page(f"{served.url}/dashboard/", "wrong") as (page, _):
        row = page.locator("#alarms-list tr[data-type='bgp.session-down']")
        row.locator("button.clear").click()  # reads are open; the write is refused
        expect(page.locator("#error")).to_contain_text("bearer token")
        assert "bgp.session-down" in {a.type for a in served.run(lambda: served.monitor.alarms.active())}
