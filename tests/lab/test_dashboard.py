"""The dashboard in headless Chromium against a real `savd run` on sav-basic (the appliance of
test_run_sav_basic.py: the lab kit's savd.toml, StayRTR, an enforcer per router, FlowSpec to FRR r1..r4):
the page loads, the topology learned over BGP-LS shows r1..r4 with their roles, a report added through the
API shows up in the rules view without a reload, and spoofed traffic (counted at the receivers) shows up as
spoofing-seen alarms and in the spoofed-traffic view. The browser, savd, its helpers and the lab are torn
down even when a step fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support.browser import browser_page, token_only_in_headers

from appliance.demo import Appliance, demo_flows
from appliance.lab import Lab
from appliance.lab.kit.flows import send_flow
from appliance.lab.runner import new_prefix

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(300)]

SAV_BASIC = Path(__file__).resolve().parents[2] / "containerlab" / "sav-basic" / "sav-basic.clab.yml"
ROLES = {"r1": "access", "r2": "access", "r3": "core", "r4": "border"}
NEW = {"router": "r1", "interface": "eth1", "prefix": "198.18.7.0/24", "subnet": "1"}


@pytest.fixture(scope="module")
def app(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    lab = Lab.load(SAV_BASIC, prefix=new_prefix())
    appliance = Appliance(lab, tmp_path_factory.mktemp("savd-dashboard"))
    try:
        appliance.start_on_converged_lab(90)
        yield appliance
    finally:
        appliance.stop()
        lab.down()


def test_dashboard_follows_the_running_appliance(app: Appliance) -> None:
    with browser_page(f"{app.api}/dashboard/", app.token) as (page, seen):
        # the topology savd learned over BGP-LS: r1..r4 with their roles
        for router, role in ROLES.items():
            node = page.locator(f'#graph g[data-router="{router}"]')
            expect(node).to_be_visible(timeout=30_000)
            expect(node).to_contain_text(role)
        expect(page.locator('[data-rule="r1:eth1"]')).to_contain_text("198.18.1.0/24")

        # a report through the API reaches the rules view live (no reload)
        code, doc = app.request("POST", "/api/v1/reports", NEW)
        assert code == 201, doc
        try:
            row = page.locator('[data-rule="r1:eth1"] tr[data-prefix="198.18.7.0/24"]')
            expect(row).to_contain_text("report", timeout=30_000)
        finally:
            code, doc = app.request("DELETE", "/api/v1/reports?router=r1&interface=eth1&prefix=198.18.7.0/24")
            assert code == 200, doc
        expect(page.locator('[data-rule="r1:eth1"] tr[data-prefix="198.18.7.0/24"]')).to_have_count(
            0, timeout=30_000)

        # spoofed traffic: dropped (counted at the receivers), then alarms and traces on the page
        spoofed = [f for f in demo_flows(count=10) if f.spoofed]
        assert spoofed
        for f in spoofed:
            assert send_flow(app.lab, f) == 0, f"{f.label} from {f.source} was delivered"
        alarms = page.locator("#alarms-list tr[data-type=spoofing-seen]")
        expect(alarms.first).to_be_visible(timeout=30_000)  # the enforcer poller runs every 5 s
        for router, interface in (("r1", "eth1"), ("r2", "eth2"), ("r4", "eth2")):
            expect(page.locator("#alarms-list")).to_contain_text(f"{router} {interface}", timeout=30_000)
            expect(page.locator("#spoofing-list")).to_contain_text(router)
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        token_only_in_headers(seen, app.token)
        assert seen.errors == []
