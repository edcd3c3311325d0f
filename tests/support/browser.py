"""The dashboard in a real headless browser: Playwright driving Debian's Chromium (/usr/bin/chromium,
installed by scripts/setup; Playwright's own browser downloads are never used). `browser_page(url, token)`
yields a page that is logged in and records every request (URL and Authorization header) and every
script error; the browser is closed even when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Seen:
    """What the page did: its requests (url, Authorization header) and the script errors it logged."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def browser_page(url: str, token: str, missing: tuple[str, ...] = ()) -> Iterator[tuple[Page, Seen]]:
    """(Page, Seen) for the dashboard at `url`, logged in with `token`; requests to the URL globs in
    `missing` are answered 404, as by a savd without those routes."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (scripts/setup installs Debian's chromium)")
    seen = Seen()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            for glob in missing:
                page.route(glob, lambda route: route.fulfill(status=404, json={"message": "Not Found"}))
            page.on("request", lambda r: seen.requests.append((r.url, r.headers.get("authorization", ""))))
            page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
            page.on("console", lambda m: seen.errors.append(f"console: {m.text}") if m.type == "error"
                    and not m.text.startswith("Failed to load resource") else None)  # a 404 is not a bug
            page.goto(url)
            page.locator("#login").wait_for(state="visible")
            page.fill("#token", token)
            page.click("#connect")
            page.locator("#login").wait_for(state="hidden")
            yield page, seen
        finally:
            browser.close()  # ends the Chromium processes; sync_playwright's exit stops the driver


def token_only_in_headers(seen: Seen, token: str) -> None:
    """The token never appears in a URL, and every API call carried it as a bearer header."""
    assert seen.requests
    assert not [u for u, _ in seen.requests if token in u]
    api_calls = [(u, auth) for u, auth in seen.requests if "/api/v1/" in u or u.endswith("/health")]
    assert api_calls and all(auth == f"Bearer {token}" for _, auth in api_calls), api_calls[:5]
