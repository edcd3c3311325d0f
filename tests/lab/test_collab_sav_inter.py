"""Collaboration end to end (issue 16, part 2) on containerlab/sav-inter with two savd instances, both ways.

AS 65000's savd runs the lab as the other sav-inter tests do (BMP paths, FlowSpec to b1..b3, enforcers),
on EFP-uRPF B (path-based alone, no RPKI data) and with a [collaboration] listener ("as1"): its prefixes
(198.18.0.0/16), b1's and b2's addresses on the links to c1 (`local_address` 198.19.31.1 and .5), and an
initiating [[collaboration.peer]] "as2". AS 65010 (customer c1, multi-homed to b1 and b2) gets a savd of
its own ("as2"): no routers, only its prefixes, c1's eth1/eth2 as [[engine.neighbor]] (its addresses on
the links to AS 65000) and an initiating [[collaboration.peer]] "as1". Both initiate, so they hold two
agreements, one per direction, each carrying its initiator's SavInfo. Mutual TLS with certificates from
one CA (openssl, tests/support/collab_pki.py).

1. c1 stops announcing P1 (198.19.16.0/24) to b2 but keeps sending P1's traffic through b2 (its
   asymmetric path): EFP-uRPF B on b2's eth2 no longer lists P1 and drops c1's legitimate traffic
   (the improper block of path-based methods, counted at the receiver); as1 keeps trying to reach as2;
2. AS 65010's savd starts: as2's agreement made, its SavInfo (P1, arriving from 198.19.31.2 and .6)
   accepted, b2's eth2 allows P1 again ("collaboration" in its rules) and c1's traffic arrives; spoofing
   from c2 of P1 at b3 is still dropped (the allowance is for c1's links only). The other way: as1's
   agreement made, its SavInfo (198.18.0.0/16 arriving from 198.19.31.1 and .5) accepted by as2, whose
   API lists 198.18.0.0/16 allowed on c1 eth1 and eth2 under as1's agreement (`/api/v1/collaboration`
   and the `collaboration` of `/api/v1/rules?router=c1`), and c1's rules there do not block it. At the
   rules/API level only: as2 has no FlowSpec session to c1 nor an enforcer on it (the lab's FlowSpec
   and enforcers are AS 65000's), and c1's rules there are loose uRPF's empty blocklists (no RPKI data:
   fail open), which collaboration, lifting blocks only, leaves as they are. Both agreements are then
   renewed (at 2/3 of their 30 s) and each side still holds the other's allowances: the renewal of one
   direction's agreement never drops what the other carried;
3. AS 65010's savd is stopped: neither agreement is renewed, both expire (30 s), the allowances go, the
   alarm collab.agreement-ended is raised, and b2 drops P1's traffic again (path-based fallback);
4. AS 65010's savd starts again (new agreements both ways: P1 allowed on b2, 198.18.0.0/16 on c1), then
   AS 65000's operator revokes as2 (`savd api collaboration --end as2`): both agreements end; on as1
   the allowances are withdrawn, the alarm, P1 dropped, no new agreement; as2, told, withdraws as1's
   allowances on c1 and raises the alarm too.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from support.collab_pki import Pki, make_pki

from appliance.demo import INTER_SRV, LABS, Appliance, Flow, send_flow, wait_until
from appliance.lab import Lab
from rpki.localcache import free_port

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(480)]

PROFILE = LABS["sav-inter"]
P1 = ("198.19.16.0/24", "2001:db8:10:1::/64")
AS65000_PREFIX = "198.18.0.0/16"
C1_LINKS = {"b1": ("198.19.31.2", "198.19.31.1"), "b2": ("198.19.31.6", "198.19.31.5")}  # c1's, ours
DURATION_S = 30
P1_VIA_B2 = Flow("c1 P1 via b2", "h1", "198.19.16.10", INTER_SRV[0], INTER_SRV[1], 10, False)
C2_SPOOFS_P1 = Flow("c2 spoofs c1's P1 at b3", "h2", "198.19.16.77", INTER_SRV[0], INTER_SRV[1], 10, True)


def as65000_template(pki: Pki, out: Path, port: int, peer_port: int) -> Path:
    """configs/demo-inter.toml on EFP-uRPF B, with the collaboration listener of AS 65000 ("as1")."""
    src = PROFILE.templates["exabgp"]
    text = src.read_text().replace('algorithm = "auto"', 'algorithm = "efp-b"')
    reports = src.parent / "demo-inter-reports.yaml"
    text = text.replace('file = "demo-inter-reports.yaml"', f'file = "{reports}"')
    for c1_side, ours in C1_LINKS.values():  # our side of the links to c1: what as2 is told
        line = f'address = "{c1_side}"\n'
        assert text.count(line) == 1, line
        text = text.replace(line, f'{line}local_address = "{ours}"\n')
    cert, key = pki.cert("as1")
    text += f"""
[collaboration]
listen = "127.0.0.1:{port}"
cert = "{cert}"
key = "{key}"
ca = "{pki.ca}"
asn = 65000
name = "as1"
prefixes = ["{AS65000_PREFIX}"]

[[collaboration.peer]]
name = "as2"
asn = 65010
url = "https://127.0.0.1:{peer_port}"
initiate = true
duration_s = {DURATION_S}
send_every_s = 5
"""
    path = out / "savd-as65000.toml"
    path.write_text(text)
    return path


def as65010_config(pki: Pki, out: Path, port: int, peer_port: int, api_port: int) -> Path:
    """AS 65010's savd: no routers of its own here, its prefixes and its side of the links to AS 65000."""
    cert, key = pki.cert("as2")
    path = out / "savd-as65010.toml"
    path.write_text(f"""[appliance]
asn = 65010
router_id = "198.19.31.2"
data_dir = "{out / 'as65010-data'}"

[api]
listen = "127.0.0.1:{api_port}"
token_env = "SAVD_API_TOKEN"

[collaboration]
listen = "127.0.0.1:{port}"
cert = "{cert}"
key = "{key}"
ca = "{pki.ca}"
asn = 65010
name = "as2"
prefixes = ["{P1[0]}", "{P1[1]}"]

[[collaboration.peer]]
name = "as1"
asn = 65000
url = "https://127.0.0.1:{peer_port}"
initiate = true
duration_s = {DURATION_S}
send_every_s = 5

[[engine.neighbor]]
router = "c1"
interface = "eth1"
asn = 65000
relationship = "provider"
address = "198.19.31.1"
local_address = "198.19.31.2"

[[engine.neighbor]]
router = "c1"
interface = "eth2"
asn = 65000
relationship = "provider"
address = "198.19.31.5"
local_address = "198.19.31.6"
""")
    return path


@pytest.fixture(scope="module")
def setup(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("collab")
    (out / "pki").mkdir()
    pki = make_pki(out / "pki")
    ports = {"as1": free_port(), "as2": free_port(), "api2": free_port()}
    lab = Lab.load(PROFILE.topology, prefix="svc" + secrets.token_hex(2))
    app = Appliance(lab, out / "as65000", template=as65000_template(pki, out, ports["as1"], ports["as2"]),
                    profile=PROFILE)
    state: dict[str, Any] = {"out": out, "pki": pki, "ports": ports, "app": app, "peer": None}
    try:
        app.start_on_converged_lab(90)
        yield state
    finally:
        peer = state["peer"]
        if peer is not None and peer.poll() is None:
            peer.send_signal(signal.SIGTERM)
            peer.wait(20)
        app.stop()
        lab.down()


def start_as65010(out: Path, config: Path, token: str) -> subprocess.Popen[bytes]:
    with (out / "savd-as65010.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "appliance.cli", "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, SAVD_API_TOKEN=token))


def as2_get(ports: dict[str, int], token: str, path: str) -> dict[str, Any]:
    """GET on AS 65010's savd API."""
    req = urllib.request.Request(f"http://127.0.0.1:{ports['api2']}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return cast(dict[str, Any], json.loads(resp.read()))


def c1_allowed(ports: dict[str, int], token: str) -> set[str]:
    """The interfaces of c1 on which as2 holds a live allowance of AS 65000's prefix from as1."""
    try:
        allowances = as2_get(ports, token, "/api/v1/collaboration")["allowances"]
    except OSError:  # not answering yet
        return set()
    wanted = ("c1", AS65000_PREFIX, "as1", 65000, True)
    return {a["interface"] for a in allowances
            if (a["router"], a["prefix"], a["peer"], a["peer_asn"], a["live"]) == wanted}


def carrying(view: dict[str, Any], peer: str) -> dict[str, Any]:
    """The agreement a savd's /api/v1/collaboration shows for `peer` (the one its SavInfo came under)."""
    [shown] = [p for p in view["peers"] if p["peer"] == peer]
    [agreement] = [a for a in view["agreements"] if a["ca_id"] == shown["agreement"]]
    return cast(dict[str, Any], agreement)


def check_as65000_info_on_c1(ports: dict[str, int], token: str) -> dict[str, Any]:
    """as2 holds AS 65000's prefix on c1 eth1 and eth2 under the agreement as1 initiated, and its rules
    for c1 show it (the `collaboration` of /api/v1/rules) without blocking it."""
    collab = as2_get(ports, token, "/api/v1/collaboration")
    print(f"as2 collaboration: {collab}")
    agreement = carrying(collab, "as1")
    assert (agreement["initiator"], agreement["provider"], agreement["state"]) == ("as1", "as2", "in-force")
    assert [p["allowances"] for p in collab["peers"] if p["peer"] == "as1"] == [2], collab
    rules = as2_get(ports, token, "/api/v1/rules?router=c1")
    print(f"as2 rules for c1: {rules}")
    shown = {(a["interface"], a["prefix"], a["ca_id"]) for a in rules["collaboration"]}
    assert shown == {(i, AS65000_PREFIX, agreement["ca_id"]) for i in ("eth1", "eth2")}, rules
    by_interface = {r["interface"]: r for r in rules["rules"]}
    assert set(by_interface) == {"eth1", "eth2"}, by_interface
    net = ipaddress.ip_network(AS65000_PREFIX)
    for rule in by_interface.values():
        listed = [ipaddress.ip_network(p) for p in rule["prefixes"]]
        if rule["kind"] == "allow":
            assert AS65000_PREFIX in rule["prefixes"], rule
            assert any(t.startswith("collab:") for t in rule["provenance"][AS65000_PREFIX]), rule
        else:
            assert not any(p.version == net.version and net.overlaps(p) for p in listed), rule
    return agreement


def b2_eth2(app: Appliance) -> dict[str, Any]:
    rules: list[dict[str, Any]] = app.get("/api/v1/rules?router=b2")["rules"]
    return next(r for r in rules if r["interface"] == "eth2")


def c1_route_map(app: Appliance, action: str) -> None:
    """c1's TO-B2 entries for P1 (IPv4 10, IPv6 15): `deny` hides P1 from b2, `permit` announces it."""
    vtysh = app.lab.vtysh_argv("c1")
    cmds = ["configure terminal"]
    for seq, match in ((10, "ip address prefix-list C1-P1"), (15, "ipv6 address prefix-list C1-P1-V6")):
        cmds += [f"no route-map TO-B2 permit {seq}", f"no route-map TO-B2 deny {seq}",
                 f"route-map TO-B2 {action} {seq}", f"match {match}", "match as-path OWN"]
        if action == "permit":
            cmds += ["set as-path prepend 65010 65010", "set community no-export additive"]
        cmds += ["exit"]
    cmds += ["end", "clear bgp * soft out"]
    argv = [*vtysh]
    for c in cmds:
        argv += ["-c", c]
    app.lab.exec("c1", argv, check=True)


def test_sav_information_lifts_the_improper_block_and_falls_back_when_the_agreement_expires(
        setup: dict[str, Any]) -> None:
    app: Appliance = setup["app"]
    out, ports = setup["out"], setup["ports"]
    c1_route_map(app, "deny")
    try:
        wait_until("P1 gone from b2's EFP-uRPF B list", lambda: P1[0] not in b2_eth2(app)["prefixes"],
                   60, 0.5)
        wait_until("rules in sync", app.rules_in_sync, 60, 0.5)
        assert send_flow(app.lab, P1_VIA_B2) == 0, "path-based alone should block c1's P1 at b2 here"

        token = secrets.token_hex(16)
        config = as65010_config(setup["pki"], out, ports["as2"], ports["as1"], ports["api2"])
        setup["peer"] = start_as65010(out, config, token)
        wait_until("b2's eth2 allowing P1 by collaboration", lambda: P1[0] in b2_eth2(app)["prefixes"],
                   60, 0.5)
        collab = app.get("/api/v1/collaboration")
        print(f"collaboration: {collab}")
        assert any(a["prefix"] == P1[0] and a["router"] == "b2" for a in collab["allowances"]), collab
        wait_until("rules in sync", app.rules_in_sync, 60, 0.5)
        assert send_flow(app.lab, P1_VIA_B2) == 10        # the improper block is gone
        assert send_flow(app.lab, C2_SPOOFS_P1) == 0      # P1 is allowed on c1's links only
        wait_until("as2 allowing AS 65000's prefix on c1 eth1 and eth2 (as1's SavInfo)",
                   lambda: c1_allowed(ports, token) == {"eth1", "eth2"}, 60, 0.5)
        theirs = check_as65000_info_on_c1(ports, token)  # the other way, under as1's agreement
        ours = carrying(collab, "as2")
        assert ours["initiator"] == "as2", collab         # b2's allowance came under as2's own agreement

        def both_renewed() -> bool:
            a = carrying(app.get("/api/v1/collaboration"), "as2")
            b = carrying(as2_get(ports, token, "/api/v1/collaboration"), "as1")
            return (a["ca_id"], b["ca_id"]) == (ours["ca_id"], theirs["ca_id"]) \
                and a["expires_at"] > ours["expires_at"] and b["expires_at"] > theirs["expires_at"]

        wait_until("both agreements renewed (at 2/3 of their life)", both_renewed, DURATION_S + 10, 0.5)
        time.sleep(6)                                     # one more SavInfo each way (send_every_s 5)
        assert P1[0] in b2_eth2(app)["prefixes"]          # one direction's renewal never drops the other's
        assert c1_allowed(ports, token) == {"eth1", "eth2"}

        setup["peer"].send_signal(signal.SIGTERM)        # no renewal: the agreement lapses
        setup["peer"].wait(20)
        wait_until("P1 gone again from b2's list (agreement expired)",
                   lambda: P1[0] not in b2_eth2(app)["prefixes"], DURATION_S + 60, 0.5)
        alarms = app.get("/api/v1/alarms")["alarms"]
        assert any(a.get("type") == "collab.agreement-ended" for a in alarms), alarms
        wait_until("rules in sync", app.rules_in_sync, 60, 0.5)
        assert send_flow(app.lab, P1_VIA_B2) == 0         # back to the path-based rules

        setup["peer"] = start_as65010(out, config, token)  # a new agreement ...
        wait_until("P1 allowed again (new agreement)", lambda: P1[0] in b2_eth2(app)["prefixes"], 60, 0.5)
        wait_until("as2 allowing AS 65000's prefix on c1 again (as1's new agreement)",
                   lambda: c1_allowed(ports, token) == {"eth1", "eth2"}, 60, 0.5)
        check_as65000_info_on_c1(ports, token)
        revoke = subprocess.run([sys.executable, "-m", "appliance.cli", "api", "--url",
                                 f"http://127.0.0.1:{app.api_port}", "--token", str(app.token),
                                 "collaboration", "--end", "as2"], capture_output=True, text=True, timeout=60)
        assert revoke.returncode == 0, revoke.stderr   # ... revoked by AS 65000's operator
        wait_until("P1 gone after the revocation", lambda: P1[0] not in b2_eth2(app)["prefixes"], 30, 0.5)
        alarms = app.get("/api/v1/alarms")["alarms"]
        assert any(a.get("type") == "collab.agreement-ended" for a in alarms), alarms
        wait_until("rules in sync", app.rules_in_sync, 60, 0.5)
        assert send_flow(app.lab, P1_VIA_B2) == 0
        peers = app.get("/api/v1/collaboration")["peers"]
        # AS 65010 gets no new agreement while revoked
        assert [p["state"] for p in peers if p["peer"] == "as2"] == ["ended"], peers
        # as2 was told: as1's agreement ended there too, its allowances on c1 are gone, with the alarm
        wait_until("as1's allowances gone from as2", lambda: c1_allowed(ports, token) == set(), 30, 0.5)
        as2_alarms = as2_get(ports, token, "/api/v1/alarms")["alarms"]
        assert any(a["id"] == "collab.agreement-ended/as1" for a in as2_alarms), as2_alarms
        assert as2_get(ports, token, "/api/v1/rules?router=c1")["collaboration"] == []
    finally:
        c1_route_map(app, "permit")
