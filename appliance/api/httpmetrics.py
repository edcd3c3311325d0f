"""Prometheus figures of the API itself: requests by method, route and status, and time spent.

An ASGI middleware outside every other one, so refusals (401/403/413) and unhandled errors count too.
Routes are labelled by their template (`/api/v1/rules/{router}/{interface}`), never the raw path: a label
per router, prefix or scanner's guess would grow without bound. Unmatched paths share one label.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"


class HttpStats(Collector):
    """Counts per (method, route, status); durations summed per (method, route)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.seconds: dict[tuple[str, str], float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        self.seconds[(method, route)] = self.seconds.get((method, route), 0.0) + seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("savd_http_requests", "API requests answered, by method, route "
                                       "template and status", labels=["method", "route", "status"])
        for labels, n in sorted(self.requests.items()):
            requests.add_metric(list(labels), n)
        yield requests
        spent = CounterMetricFamily("savd_http_request_duration_seconds", "Time spent answering API "
                                    "requests, by method and route template", labels=["method", "route"])
        for (method, route), s in sorted(self.seconds.items()):
            spent.add_metric([method, route], s)
        yield spent


class HttpMetrics:
    """The middleware: times each HTTP request and records it in `stats` under its route template."""

    def __init__(self, app: ASGIApp, stats: HttpStats, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.stats = stats
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            method = str(scope.get("method", "GET")).upper()
            self.stats.observe(method, self._template(scope), status, time.perf_counter() - started)

    def _template(self, scope: Scope) -> str:
        """The route the router matched (it leaves it in the scope); matched here only for a request
        refused before routing (401/403/413), which never reached the router."""
        routed = scope.get("route")
        if routed is not None:
            return str(getattr(routed, "path", UNMATCHED))
        for route in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                return str(getattr(route, "path", UNMATCHED))
        return UNMATCHED
