"""Drift repair through `savd run` on sav-basic (the lab kit's, with GoBGP pushing the FlowSpec): r1's
allowlist catch-all discard is deleted by hand from the gobgpd savd runs for r1 (savd's pusher still
believes r1 holds it), so FRR withdraws it, r1's enforcer takes it out of nftables and a spoofed source
passes. savd's drift check (`SAVD_DRIFT_CHECK_S`=2 here, the enforcer poll every 5 s) raises a
drift.rule alarm naming r1 and the rule, re-announces it (savd_drift_repairs_total), r1 holds and enforces
it again (spoofed packets dropped, counted at the receiver) and the alarm clears.

Own lab under a fresh random namespace prefix, torn down (savd, enforcers, StayRTR, namespaces) pass or fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.demo import Appliance, demo_flows, wait_until
from appliance.lab import Lab
from appliance.lab.kit.flows import Flow, send_flow
from appliance.lab.runner import new_prefix

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(300)]

SAV_BASIC = Path(__file__).resolve().parents[2] / "containerlab" / "sav-basic" / "sav-basic.clab.yml"
PREFIX = new_prefix()
CATCH_ALL = "0.0.0.0/0"


@pytest.fixture(scope="module")
def app(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    lab = Lab.load(SAV_BASIC, prefix=PREFIX)
    appliance = Appliance(lab, tmp_path_factory.mktemp("savd-drift"), speaker="gobgp",
                          env={"SAVD_DRIFT_CHECK_S": "2"})
    try:
        appliance.start_on_converged_lab(120)  # GoBGP: 5-10 s before its first connect
        yield appliance
    finally:
        appliance.stop()
        lab.down()


def spoofed_foreign() -> Flow:
    (flow,) = [f for f in demo_flows(count=10) if f.source == "198.19.7.7"]
    return flow  # dropped only by r1's catch-all discard


def r1_rule(app: Appliance, source: str) -> dict[str, Any] | None:
    """r1's enforcer entry for `source` (its view of FRR's accepted FlowSpec, checked against nftables)."""
    doc = app.enforcer("r1", "/counters")
    return next((r for r in doc["rules"] if r["source"] == source), None)


def frr_holds(app: Appliance, source: str) -> bool:
    table = app.lab.vtysh("r1", "show bgp ipv4 flowspec")
    return re.search(rf"from {re.escape(source)}\s", table) is not None


def drift_alarms(app: Appliance) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = app.get("/api/v1/alarms?type=drift.rule")["alarms"]
    return alarms


def metric(app: Appliance, name: str, **labels: str) -> float:
    """The sum of a Prometheus family's samples with these labels, from savd's /metrics."""
    req = urllib.request.Request(app.api + "/metrics", headers={"Authorization": f"Bearer {app.token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def gobgp_delete(app: Appliance, router: str, source: str) -> None:
    """Delete one route from the gobgpd savd runs for `router`, behind savd's back."""
    sock = app.data_dir / "speakers" / "ctl-fs" / router / "api.sock"
    assert sock.exists(), sock
    argv = ["gobgp", "--target", f"unix://{sock}", "global", "rib", "-a", "ipv4-flowspec"]
    listed = subprocess.run([*argv, "-j"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert source in listed, listed[:2000]
    subprocess.run([*argv, "del", "match", "source", source], capture_output=True, text=True, timeout=30,
                   check=True)
    after = subprocess.run([*argv, "-j"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert f'"{source}"' not in after and f"source {source}" not in json.dumps(after), after[:2000]


def test_a_rule_deleted_behind_savds_back_is_alarmed_repaired_and_enforced_again(app: Appliance) -> None:
    spoofed = spoofed_foreign()
    entry = r1_rule(app, CATCH_ALL)
    assert entry is not None and entry["state"] == "installed" and entry["action"] == "discard", entry
    assert frr_holds(app, CATCH_ALL)
    assert send_flow(app.lab, spoofed) == 0
    assert drift_alarms(app) == []
    repairs_before = metric(app, "savd_drift_repairs_total", router="r1")

    gobgp_delete(app, "r1", CATCH_ALL)
    wait_until("FRR on r1 to lose the catch-all", lambda: not frr_holds(app, CATCH_ALL), 10, 0.2)
    wait_until("r1's enforcer to drop it", lambda: r1_rule(app, CATCH_ALL) is None, 10, 0.2)
    # the deletion took effect in the data plane: the spoofed source passes r1 (fail open) ...
    assert send_flow(app.lab, spoofed) == spoofed.count

    # ... until savd sees the drift, raises the alarm and re-announces the rule
    alarms = wait_until("a drift.rule alarm for r1's catch-all", lambda: drift_alarms(app), 30, 0.5)
    (alarm,) = alarms
    fields = alarm["fields"]
    assert (fields["router"], fields["prefix"], fields["kind"]) == ("r1", CATCH_ALL, "missing"), alarm
    assert fields["intended"] == "discard" and fields["held"] == "" and CATCH_ALL in alarm["message"]
    wait_until("FRR on r1 to hold the catch-all again", lambda: frr_holds(app, CATCH_ALL), 30, 0.5)
    wait_until("r1's enforcer to install it again",
               lambda: (r1_rule(app, CATCH_ALL) or {}).get("state") == "installed", 30, 0.5)
    assert app.enforcer("r1", "/counters")["in_sync"]  # nftables holds the plan
    assert send_flow(app.lab, spoofed) == 0
    wait_until("the drift alarm to clear", lambda: drift_alarms(app) == [], 30, 0.5)
    assert metric(app, "savd_drift_repairs_total", router="r1", op="announce") >= repairs_before + 1
    assert metric(app, "savd_drift_detected_total", router="r1", kind="missing") == 1
    assert metric(app, "savd_drift_repaired_total", router="r1") == 1
    # every other verdict as before: nothing widened or narrowed by the repair
    for f in demo_flows(count=10):
        got = send_flow(app.lab, f)
        assert got == (0 if f.spoofed else f.count), f"{f.label} from {f.source}: {got}/{f.count} delivered"
