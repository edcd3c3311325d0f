"""The lab kit on an IS-IS network (issue 14): tests/lab/fixtures/kitisis, four FRR routers running isisd
only (level 2, point-to-point links, a ring a1-c1-a2-c2) with hosts h1 (S1 at a1), h2 (S2 at a2) and
the appliance ctl on c1, through the commands only, as tests/lab/test_lab_kit.py does for OSPF:

    savd lab init kitisis.clab.yml --out OUT --prefix P   (daemons with isisd, IS-IS adjacencies expected)
    savd lab up OUT/kitisis.clab.yml --prefix P           (converged: every IS-IS adjacency Up)
    savd rpki serve, savd lab enforcers up, savd run       (the exporters read IS-IS: Protocol-ID 2)
    savd lab traffic kitisis/traffic.yaml --json

and asserts that savd learnt, over BGP-LS from the IS-IS exporters, every router, every directed link
with both addresses, the interfaces and the IGP prefixes; that the rules are those an OSPF network gets
(allowlists on the access routers' host interfaces, nothing on the cores); that spoofed packets are
dropped and legitimate ones delivered; and that a link taken down leaves savd's topology. Everything
started is stopped in `finally` by PID or its own down command, even on failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_lab_kit import kit_files, savd, start_kit, wait_active

from appliance.demo import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(300)]

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "kitisis"
ROUTERS = ("a1", "a2", "c1", "c2")
LOOPBACK = {"a1": "198.18.251.1", "a2": "198.18.251.2", "c1": "198.18.251.3", "c2": "198.18.251.4"}
# (router, interface, address) -- (router, interface, address): the four point-to-point links
P2P = [
    (("a1", "eth2", "198.18.74.1"), ("c1", "eth1", "198.18.74.2")),
    (("c1", "eth2", "198.18.74.5"), ("a2", "eth2", "198.18.74.6")),
    (("a2", "eth3", "198.18.74.9"), ("c2", "eth2", "198.18.74.10")),
    (("c2", "eth1", "198.18.74.14"), ("a1", "eth3", "198.18.74.13")),
]
S1 = {"198.18.71.0/24", "2001:db8:0:71::/64"}
S2 = {"198.18.72.0/24", "2001:db8:0:72::/64"}


@pytest.fixture
def kit(tmp_path: Path, require_root: None) -> Iterator[dict[str, Any]]:
    with kit_files(FIXTURE / "kitisis.clab.yml", tmp_path / "out", "svi") as state:
        yield state


def test_isis_lab_is_learnt_over_bgpls_and_enforced(kit: dict[str, Any]) -> None:
    out, prefix = kit["out"], kit["prefix"]
    topo_file = out / "kitisis.clab.yml"
    # init: isisd (and no ospfd) in every router's daemons file, IS-IS adjacencies in converged.json
    for r in ROUTERS:
        daemons = (out / r / "daemons").read_text()
        assert "isisd=yes" in daemons and "ospfd" not in daemons, daemons
    converged = json.loads((out / "converged.json").read_text())
    circuits = converged["a1"]["show isis neighbor json"]["areas"][0]["circuits"]
    assert sorted((c["interface"], c["adj"], c["state"]) for c in circuits) == [
        ("eth2", "c1", "Up"), ("eth3", "c2", "Up")]

    app = start_kit(kit, topo_file, "kitisis", {LOOPBACK[r]: r for r in ROUTERS}, 90)
    installed = wait_active(kit, app, 120)

    # the topology savd learnt from the IS-IS exporters: every router, link, interface, prefix
    topo = app.get("/api/v1/topology")
    routers = {r["name"]: r for r in topo["routers"]}
    assert sorted(routers) == sorted(ROUTERS)
    assert {r: routers[r]["router_id"] for r in ROUTERS} == LOOPBACK  # TE Router ID, as OSPF's router ID
    assert {r["asn"] for r in routers.values()} == {65010}
    want_links = set()
    for (ra, _, aa), (rb, _, ab) in P2P:
        want_links |= {(ra, rb, aa, ab), (rb, ra, ab, aa)}
    links = {(lk["local"], lk["remote"], lk["local_address"], lk["remote_address"]) for lk in topo["links"]}
    assert links == want_links, links
    assert {lk["metric"] for lk in topo["links"]} == {10}
    itf = {(i["router"], i["name"]): i for i in topo["interfaces"]}
    for end in (e for pair in P2P for e in pair):
        assert f"{end[2]}/30" in itf[(end[0], end[1])]["addresses"], itf.get((end[0], end[1]))
    assert set(itf[("a1", "eth2")]["addresses"]) == {"198.18.74.1/30", "2001:db8:0:74::1/64"}
    prefixes = {(p["router"], p["prefix"]): p for p in topo["igp_prefixes"]}
    for r, subnet in (("a1", S1), ("a2", S2)):
        for p in subnet:
            assert not prefixes[(r, p)]["external"], prefixes[(r, p)]
    for r in ROUTERS:
        assert (r, f"{LOOPBACK[r]}/32") in prefixes

    # the rules an OSPF network of the same shape gets: allowlists at the access routers' host
    # interfaces (the subnets reported there), nothing on the cores
    rules = app.get("/api/v1/rules")["rules"]
    allow = {(r["router"], r["interface"]): set(r["prefixes"]) for r in rules if r["kind"] == "allow"}
    assert allow[("a1", "eth1")] >= S1 and not allow[("a1", "eth1")] & S2, allow
    assert allow[("a2", "eth1")] >= S2 and not allow[("a2", "eth1")] & S1, allow
    assert not [r for r in rules if r["router"] in ("c1", "c2") and (r["kind"] == "allow" or r["prefixes"])]
    assert installed["a1"] > 0 and installed["a2"] > 0, installed

    traffic = savd("lab", "traffic", str(FIXTURE / "traffic.yaml"), "--topo", str(topo_file), "--prefix",
                   prefix, "--json", timeout_s=200)
    results = json.loads(traffic.stdout)
    for r in results:
        print(f"  {'SPOOFED' if r['spoofed'] else 'legit  '} {r['label']:<42} {r['source']:<20} "
              f"{r['delivered']}/{r['sent']}")
    spoofed = [r for r in results if r["spoofed"]]
    legit = [r for r in results if not r["spoofed"]]
    assert len(spoofed) == 3 and len(legit) == 3
    assert [r["delivered"] for r in spoofed] == [0, 0, 0], spoofed
    assert [r["delivered"] for r in legit] == [r["sent"] for r in legit], legit
    assert traffic.returncode == 0, traffic.stderr

    # a link going down in IS-IS leaves savd's topology (the exporters withdraw it over BGP-LS)
    app.lab.exec("a1", ["ip", "link", "set", "eth2", "down"])

    def a1_c1_gone() -> bool:
        now = app.get("/api/v1/topology")["links"]
        pairs = {(lk["local"], lk["remote"]) for lk in now}
        return ("a1", "c1") not in pairs and ("c1", "a1") not in pairs and len(pairs) == 6

    wait_until("the a1-c1 link withdrawn from savd's topology", a1_c1_gone, 30, 0.5)
