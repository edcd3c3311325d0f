"""Steering end to end (issue 16, part 1) on the kit lab `steer` (kit6 plus the inspection host insp on
the border b1), through the commands a user runs (`savd lab init`, `lab up`, `rpki serve`, `lab enforcers
up`, `savd run`, `savd api`):

1. `savd api suspects add 198.19.41.10/32` and `2001:db8:101:1::10/128`: savd pushes to b1, on its
   validated interface (eth2, from AS 65101), a FlowSpec redirect-to-IP to insp's IPv4 address and, for
   IPv6, an rt-redirect to the route target of insp's IPv6 instance (insp-v6), which savd's node file
   maps to that address (FRR 8.4.4 drops IPv6 redirect-to-IP when it re-advertises); FRR re-advertises
   both to b1's enforcer, which marks the packets and policy-routes them to insp. Sent from inet: every
   packet of each suspect arrives at h2 AND was counted forwarding through insp; other Internet sources
   arrive without passing insp; a spoofed class is still dropped; h1's own traffic arrives.
2. `savd api inspectors load insp 100` and `insp-v6 100` (at capacity: they take nothing) while an
   instance registered through the API, `spare` (IPv4, on insp's host), takes the IPv4 suspect; then
   `savd api inspectors delete spare`: the instance is gone and no inspector can take the suspects, the
   configured fallback (accept: fail open) applies with the alarm steering.no-inspector, b1's policy
   routes go, and the suspects' packets arrive at h2 directly (insp's counts do not move).
Counted at the receivers (`savd lab traffic`) and by an nft counter in insp's forward hook.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_lab_kit import kit_files, savd, start_kit, wait_active

from appliance.demo import Appliance, wait_until

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(480)]

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "steer"
ROUTERS = ("a1", "a2", "c1", "c2", "b1")
SUSPECT, OTHER = "198.19.41.10", "198.19.41.11"
SUSPECT6, OTHER6 = "2001:db8:101:1::10", "2001:db8:101:1::11"
COUNTER = """table inet savdtest {
    chain forwarded {
        type filter hook forward priority 0; policy accept;
        ip saddr 198.19.41.10 counter
        ip saddr 198.19.41.11 counter
        ip6 saddr 2001:db8:101:1::10 counter
        ip6 saddr 2001:db8:101:1::11 counter
    }
}
"""


@pytest.fixture
def kit(tmp_path: Path, require_root: None) -> Iterator[dict[str, Any]]:
    with kit_files(FIXTURE / "steer.clab.yml", tmp_path / "out", "svs") as state:
        yield state


def insp_counts(prefix: str) -> dict[str, int]:
    """Packets insp forwarded, per source (its nft counters)."""
    out = subprocess.run(["ip", "netns", "exec", f"{prefix}-insp", "nft", "-j", "list", "table", "inet",
                          "savdtest"], capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = {}
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        if rule:
            source = next(e["match"]["right"] for e in rule["expr"] if "match" in e)
            counts[source] = next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
    return counts


def policy_routed(prefix: str, family: str = "-4") -> bool:
    """b1 has a policy-routing rule of `family` for a redirect mark (the enforcer's steering)."""
    out = subprocess.run(["ip", family, "-n", f"{prefix}-b1", "rule", "show"], capture_output=True,
                         text=True, check=True).stdout
    return "fwmark 0x5a" in out


def traffic(kit: dict[str, Any], topo: Path) -> dict[str, dict[str, Any]]:
    done = savd("lab", "traffic", str(FIXTURE / "traffic.yaml"), "--topo", str(topo), "--prefix",
                kit["prefix"], "--json", timeout_s=300)
    results = json.loads(done.stdout)
    for r in results:
        print(f"  {'SPOOFED' if r['spoofed'] else 'legit  '} {r['label']:<36} {r['source']:<16} "
              f"{r['delivered']}/{r['sent']}")
    return {f"{r['source']}": r for r in results}


def test_a_suspect_is_steered_through_the_inspector_and_fails_open_without_it(kit: dict[str, Any]) -> None:
    out, prefix = kit["out"], kit["prefix"]
    topo = out / "steer.clab.yml"
    app: Appliance = start_kit(kit, topo, "steer",
                               {f"198.18.253.{i}": r for i, r in enumerate(ROUTERS, start=1)}, 120)
    wait_active(kit, app, 180)
    subprocess.run(["ip", "netns", "exec", f"{prefix}-insp", "nft", "-f", "-"], input=COUNTER, text=True,
                   check=True)

    api = ("api", "--url", f"http://127.0.0.1:{kit['api_port']}", "--token", str(app.token))
    for suspect in (f"{SUSPECT}/32", f"{SUSPECT6}/128"):   # the operator's CLI
        done = savd(*api, "suspects", "add", suspect, "--reason", "lab: ids")
        assert done.returncode == 0, done.stderr
    wait_until("b1's enforcer policy-routing the suspects to insp",
               lambda: policy_routed(prefix) and policy_routed(prefix, "-6"), 60, 0.5)
    steered = traffic(kit, topo)
    counts = insp_counts(prefix)
    print(f"insp forwarded: {counts}")
    for suspect, other in ((SUSPECT, OTHER), (SUSPECT6, OTHER6)):
        assert steered[suspect]["delivered"] == steered[suspect]["sent"] == 20, steered[suspect]
        assert counts[suspect] >= 20, counts              # every packet of the suspect went through insp
        assert steered[other]["delivered"] == 20 and counts[other] == 0, (steered[other], counts)
    assert steered["198.18.41.10"]["delivered"] == 20  # legitimate traffic untouched
    assert steered["198.18.41.77"]["delivered"] == 0   # spoofed still dropped
    steering = app.get("/api/v1/rules").get("steering", [])
    assert any(s.get("prefix") == f"{SUSPECT}/32" and s.get("address") == "198.18.80.2" and not s["target"]
               for s in steering), steering
    assert any(s.get("prefix") == f"{SUSPECT6}/128" and s.get("address") == "2001:db8:0:80::2"
               and s["target"].startswith("65000:") for s in steering), steering

    done = savd(*api, "inspectors", "add", "spare", "198.18.80.2", "--capacity", "50")
    assert done.returncode == 0, done.stderr
    for name in ("insp", "insp-v6"):   # at capacity: they take nothing
        done = savd(*api, "inspectors", "load", name, "100")
        assert done.returncode == 0, done.stderr

    def by_spare() -> bool:
        return any(s.get("prefix") == f"{SUSPECT}/32" and s.get("inspector") == "spare"
                   for s in app.get("/api/v1/rules").get("steering", []))
    wait_until("the IPv4 suspect steered through spare", by_spare, 30, 0.5)
    assert policy_routed(prefix)
    done = savd(*api, "inspectors", "delete", "spare")   # the instance goes away
    assert done.returncode == 0, done.stderr
    wait_until("b1's steering removed (fallback accept)",
               lambda: not policy_routed(prefix) and not policy_routed(prefix, "-6"), 60, 0.5)
    alarms = app.get("/api/v1/alarms")
    assert any(a.get("type") == "steering.no-inspector" for a in alarms.get("alarms", [])), alarms
    before = insp_counts(prefix)
    direct = traffic(kit, topo)
    for suspect in (SUSPECT, SUSPECT6):
        assert direct[suspect]["delivered"] == 20, direct[suspect]   # fail open: delivered, not dropped
        assert insp_counts(prefix)[suspect] == before[suspect]       # ... without passing insp
    assert direct["198.18.41.77"]["delivered"] == 0
