"""Through `savd run` itself on sav-basic as the lab kit makes it (`savd lab init` on the labelled
topology: the routers' own frr.conf plus the appliance parts, savd.toml, reports.yaml and rpki.json):
savd (subprocess) learns the topology over BGP-LS from the routers' exporters, reports from init's
reports file and the API, RPKI from a local StayRTR serving init's ROAs, and pushes FlowSpec to FRR
r1..r4, where savd-enforcer turns it into nftables. Verdicts come from real packets counted at the
receiver (appliance.demo.send_flow).

One lab and one appliance for the module, under a fresh random namespace prefix (another sav-basic may
run beside it); the tests restore what they change, the restart test runs next to last and the holdover
test, which leaves savd dead, last.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.demo import Appliance, Flow, demo_flows, send_flow, wait_until
from appliance.lab import Lab
from appliance.lab.runner import new_prefix
from appliance.speakers.holdover import processes_naming

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(240)]

SAV_BASIC = Path(__file__).resolve().parents[2] / "containerlab" / "sav-basic" / "sav-basic.clab.yml"
PREFIX = new_prefix()
HOLDOVER_S = 8  # SAVD_SPEAKER_HOLDOVER_S: how long savd's ExaBGP outlives a killed savd (120 s by default)


@pytest.fixture(scope="module")
def app(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    lab = Lab.load(SAV_BASIC, prefix=PREFIX)
    # a lost BGP-LS peer is expired after 4 s here (90 s by default), so the fail-open test stays short
    appliance = Appliance(lab, tmp_path_factory.mktemp("savd-run"),
                          env={"SAVD_BGPLS_HOLD_S": "4", "SAVD_SPEAKER_HOLDOVER_S": str(HOLDOVER_S)})
    try:
        appliance.start_on_converged_lab(90)
        # the lab and savd run on init's output, not on hand-written savd stanzas
        assert lab.kit_dir is not None and lab.topology.path == lab.kit_dir / SAV_BASIC.name
        assert appliance.config == appliance.workdir / "kit" / "savd.toml"
        yield appliance
    finally:
        appliance.stop()
        lab.down()


def rules_of(app: Appliance, router: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = app.get(f"/api/v1/rules?router={router}")["rules"]
    return rules


def flow(label: str, sender: str, source: str, spoofed: bool, count: int = 10) -> Flow:
    to_h1, to_h2 = ("h1", "198.18.1.10", "2001:db8:0:1::10"), ("h2", "198.18.3.10", "2001:db8:0:3::10")
    dst = to_h1 if sender == "h2" else to_h2
    return Flow(label, sender, source, dst[0], dst[2] if ":" in source else dst[1], count, spoofed)


def test_every_class_of_traffic_gets_its_verdict(app: Appliance) -> None:
    for f in demo_flows(count=10):
        got = send_flow(app.lab, f)
        assert got == (0 if f.spoofed else f.count), f"{f.label} from {f.source}: {got}/{f.count} delivered"

    def spoofing_seen() -> set[tuple[str, str]]:
        alarms = app.get("/api/v1/alarms?type=spoofing-seen")["alarms"]
        return {(a["fields"].get("router", ""), a["fields"].get("interface", "")) for a in alarms}

    # the enforcer poller (every 5 s) turns rising drop counters into alarms naming router and interface
    wait_until("spoofing-seen alarms", lambda: {("r1", "eth1"), ("r2", "eth2"), ("r4", "eth2")}
               <= spoofing_seen(), 20, 1.0)


def test_a_rule_the_router_did_not_install_raises_an_alarm_until_it_is_installed(app: Appliance) -> None:
    """r1's enforcer loses its interface-group mapping: the pushed rules are `unmapped` there, not in
    nftables; savd's enforcer poller says so with a rule-not-installed alarm per rule, naming the reason,
    and clears them once the mapping is back."""

    def not_installed() -> list[dict[str, Any]]:
        alarms: list[dict[str, Any]] = app.get("/api/v1/alarms?type=rule-not-installed")["alarms"]
        return alarms

    assert not_installed() == []  # the previous test ran through several polls with every rule installed
    groups = app.data_dir / "enforcer-groups" / "r1.json"
    mapping = groups.read_text()
    try:
        groups.write_text("[]")
        alarms = wait_until("rule-not-installed alarms for r1", not_installed, 30, 1.0)
        assert {a["fields"]["router"] for a in alarms} == {"r1"}
        assert all("unmapped" in a["fields"]["reason"] for a in alarms), alarms
        assert len(alarms) == app.pushed()["r1"]
    finally:
        groups.write_text(mapping)
    wait_until("the alarms cleared", lambda: not not_installed(), 30, 1.0)
    wait_until("rules active", app.rules_active, 30)


def exporter_pids(app: Appliance, router: str) -> list[int]:
    out = []
    for pid in app.lab.pids(router):
        try:
            if b"bgpls_exporter" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            continue
    return out


def test_a_lost_bgp_ls_peer_is_expired_with_an_alarm_and_the_rules_follow(app: Appliance) -> None:
    """Fail open: r2's exporter dies; after the hold time r2's topology goes, an alarm says so, and the
    rules are recomputed from what is left (r2's reports come from the file, so its allowlists stay)."""
    pids = exporter_pids(app, "r2")
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    def r2_learned() -> bool:
        return any(r["name"] == "r2" for r in app.get("/api/v1/topology")["routers"])

    wait_until("r2 expired from the topology", lambda: not r2_learned(), 30)
    alarms = app.get("/api/v1/alarms?type=bgpls.peer-expired")["alarms"]
    assert [a["fields"]["peer"] for a in alarms] == ["198.18.255.2"]
    assert app.get("/api/v1/alarms?type=bgp.session-down")["alarms"]
    wait_until("rules recomputed and active", lambda: app.rules_active(("r1", "r3", "r4")), 30)
    assert app.get("/api/v1/rules")["version"] == app.get("/api/v1/topology")["version"]
    flows = demo_flows(count=10)
    for f in flows:  # verdicts unchanged: nothing was widened or narrowed on a guess
        got = send_flow(app.lab, f)
        assert got == (0 if f.spoofed else f.count), f"{f.label} from {f.source}: {got}/{f.count} delivered"
    # bring the exporter back as the lab's exec line does; r2 is learned again
    node = app.lab.topology.nodes[[n.name for n in app.lab.topology.nodes].index("r2")]
    line = next(cmd for cmd in node.exec if "bgpls_exporter" in cmd)
    app.lab._run_exec_line(node, line)  # exactly as `lab up` ran it (bind paths, output to exec.log)
    wait_until("r2 learned again", r2_learned, 60)
    wait_until("rules active", app.rules_active, 30)


def test_api_report_changes_rules_and_verdicts(app: Appliance) -> None:
    new = flow("h1 from a newly reported prefix", "h1", "198.18.7.7", spoofed=False)
    assert send_flow(app.lab, new) == 0  # not reported yet: r1's allowlist drops it
    before = app.installed("r1")
    code, doc = app.request("POST", "/api/v1/reports",
                            {"router": "r1", "interface": "eth1", "prefix": "198.18.7.0/24", "subnet": "1"})
    assert code == 201, doc
    try:
        wait_until("r1's rules to allow 198.18.7.0/24",
                   lambda: any("198.18.7.0/24" in r["prefixes"] for r in rules_of(app, "r1")), 20)
        wait_until("r1's nftables to follow",
                   lambda: app.rules_active() and app.installed("r1") != before, 30)
        assert send_flow(app.lab, new) == new.count
    finally:
        code, doc = app.request("DELETE", "/api/v1/reports?router=r1&interface=eth1&prefix=198.18.7.0/24")
        assert code == 200, doc
    wait_until("r1's rules back", lambda: app.rules_active() and app.installed("r1") == before, 30)
    assert send_flow(app.lab, new) == 0


def test_malformed_api_input_is_refused_with_a_message_and_changes_nothing(app: Appliance) -> None:
    version = app.get("/api/v1/reports")["version"]
    rules = app.get("/api/v1/rules")
    bad = [
        {"router": "r1", "interface": "eth1", "prefix": "198.18.7.1/24"},  # host bits set
        {"router": "r1", "interface": "eth1", "prefix": "not-a-prefix"},
        {"router": "r1", "prefix": "198.18.7.0/24"},  # no interface
        {"router": "r1", "interface": "eth1", "prefix": "198.18.7.0/24", "colour": "red"},  # unknown field
    ]
    for body in bad:
        code, doc = app.request("POST", "/api/v1/reports", body)
        assert 400 <= code < 500, (body, code, doc)
        assert isinstance(doc, dict) and doc.get("message"), doc
    code, doc = app.request("DELETE", "/api/v1/reports?router=r1&interface=eth1&prefix=198.18.1.0/24")
    assert code == 409 and "file:" in doc["message"]  # the file's report cannot be deleted through the API
    saved, app.token = app.token, "wrong-token"
    try:
        code, doc = app.request("POST", "/api/v1/reports",
                                {"router": "r1", "interface": "eth1", "prefix": "198.18.7.0/24"})
    finally:
        app.token = saved
    assert code in (401, 403) and doc.get("message")
    assert app.get("/api/v1/reports")["version"] == version
    assert app.get("/api/v1/rules") == rules


def test_link_failure_is_withdrawn_over_bgp_ls_and_the_rules_follow(app: Appliance) -> None:
    before = rules_of(app, "r4")
    assert any(r["interface"] == "eth2" for r in before)  # the border's blocklist toward AS 65100

    def border_links() -> int:
        topo = app.get("/api/v1/topology")
        links = [json.dumps(lk) for lk in topo.get("links", [])]
        return sum(1 for lk in links if "r4" in lk and "198.18.30" in lk)

    assert border_links() > 0
    # Linux flushes an interface's IPv6 addresses when it goes down unless told to keep them
    app.lab.exec("r4", ["sysctl", "-qw", "net.ipv6.conf.eth2.keep_addr_on_down=1"], check=True)
    app.lab.exec("r4", ["ip", "link", "set", "eth2", "down"], check=True)
    try:
        wait_until("r4's eBGP link withdrawn over BGP-LS", lambda: border_links() == 0, 60)
        # BAR-SAV at the border with no eBGP link left: an empty blocklist (fail open), nothing to push
        wait_until("r4's blocklist to empty", lambda: all(not r["prefixes"] for r in rules_of(app, "r4")), 30)
        wait_until("r4's nftables to follow", lambda: app.rules_active() and app.installed("r4") == 0, 30)
    finally:
        app.lab.exec("r4", ["ip", "link", "set", "eth2", "up"], check=True)
    wait_until("r4's eBGP link back over BGP-LS", lambda: border_links() > 0, 90)
    wait_until("r4's rules back", lambda: rules_of(app, "r4") == before, 30)
    wait_until("r4's nftables back", lambda: app.rules_active() and app.installed("r4") > 0, 30)
    assert send_flow(app.lab, flow("Internet spoofs P1", "inet", "198.18.1.78", spoofed=True)) == 0
    assert send_flow(app.lab, flow("Internet spoofs P1", "inet", "2001:db8:0:1::78", spoofed=True)) == 0
    for f in demo_flows(count=10):
        if f.sender == "inet" and not f.spoofed:
            wait_until(f"{f.source} delivered again after the link came back",
                       lambda f=f: send_flow(app.lab, f) == f.count, 60, 1.0)


def test_restart_under_traffic_keeps_every_verdict_as_the_flowspec_exabgp_is_adopted(app: Appliance) -> None:
    """kill -9 savd while legitimate and spoofed traffic flows: its FlowSpec ExaBGP stays (holdover) with
    its sessions, so the routers keep their rules, and the restarted savd adopts it; the BGP-LS ExaBGP is
    replaced and the topology re-learned. No legitimate packet dropped, no spoofed one delivered."""
    installed = app.rules_active()
    assert installed
    bgpls_before = set(processes_naming(app.data_dir / "speakers" / "ctl-ls"))
    assert bgpls_before
    assert app.verdicts_across_restart() == []
    wait_until("rules active again", lambda: app.rules_active() == installed, 60, 0.5)
    restart = app.log_since_restart()
    adopted = [line for line in restart.splitlines() if "event=exabgp-adopted" in line]
    assert len(adopted) == 1 and "speakers/ctl-fs" in adopted[0], adopted
    # BGP-LS: replaced (the old ExaBGP dies with its relay or is reaped, depending on timing), not adopted
    assert not bgpls_before & set(processes_naming(app.data_dir / "speakers" / "ctl-ls"))
    assert re.search(r"event=exabgp-started \S+ netns=\S* workdir=\S+/speakers/ctl-ls\b", restart), restart
    resyncs = [line for line in restart.splitlines() if "event=flowspec-resync" in line]
    assert resyncs and all("withdraw=0" in line for line in resyncs), resyncs


def test_without_savd_the_exabgp_holdover_runs_out_and_the_rules_go(app: Appliance) -> None:
    """Fail open: savd killed and not restarted. Its ExaBGP keeps the sessions (and the routers their
    rules) for the holdover, then its guard stops it: FRR drops the FlowSpec, nftables empties, and
    spoofed traffic is no longer dropped (legitimate traffic never was)."""
    assert app.rules_active()
    app.kill_savd(signal.SIGKILL)
    time.sleep(HOLDOVER_S / 2)
    assert app.speaker_pids() and app.installed("r1") > 0  # still holding
    wait_until("speakers and rules gone", app.rules_withdrawn, HOLDOVER_S + 30)
    for f in demo_flows(count=10):
        got = send_flow(app.lab, f)
        assert got == f.count, f"{f.label} from {f.source}: {got}/{f.count} delivered without savd"
