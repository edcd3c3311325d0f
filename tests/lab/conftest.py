"""Fixtures for lab tests: real FRR in network namespaces, always torn down.

- `sav_basic` (module): containerlab/sav-basic up (on `savd lab init`'s output, `lab.kit_dir`) and converged
  (init's converged.json), shared by the tests of one module and torn down after it (so no lab idles
  through the rest of the run). Do not change it destructively; build your own with `lab_factory` for that.
- `lab_factory` (function): `make(path, prefix=None, converge=True) -> Lab`, up (and converged when the
  lab has a converged.json); every lab made is torn down after the test, pass or fail.
- `tiny_topology`: `make(r2_conf_extra=..., h1_exec=...)` writes a 2-router + 2-host lab (OSPF, one
  eBGP session) under tmp_path and returns its path.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.lab import Lab

REPO = Path(__file__).resolve().parents[2]
SAV_BASIC = REPO / "containerlab" / "sav-basic" / "sav-basic.clab.yml"
CONVERGE_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def sav_basic(require_root: None) -> Iterator[Lab]:
    lab = Lab.load(SAV_BASIC)
    try:
        lab.up()
        lab.wait_converged(timeout_s=CONVERGE_TIMEOUT_S)
        yield lab
    finally:
        lab.down()


@pytest.fixture
def lab_factory(require_root: None) -> Iterator[Callable[..., Lab]]:
    labs: list[Lab] = []

    def make(path: Path, prefix: str | None = None, converge: bool = True) -> Lab:
        lab = Lab.load(path, prefix=prefix)
        labs.append(lab)
        lab.up()
        if converge:
            lab.wait_converged(timeout_s=CONVERGE_TIMEOUT_S)
        return lab

    try:
        yield make
    finally:
        for lab in labs:
            lab.down()


def write_tiny_topology(root: Path, *, r2_conf_extra: str = "", h1_exec: tuple[str, ...] = ()) -> Path:
    """r1 -- r2 routers (OSPF v2, eBGP 65001/65002), host h1 behind r1 and h2 behind r2 (IPv4 only)."""
    files = {
        "r1/daemons": 'bgpd=yes\nospfd=yes\nzebra_options="-A 127.0.0.1 -s 90000000"\n',
        "r2/daemons": "bgpd=yes\nospfd=yes\n",
        "r1/frr.conf": """
            hostname r1
            interface lo
             ip address 198.18.255.1/32
             ip ospf area 0
            interface eth1
             ip address 198.18.10.1/30
             ip ospf area 0
             ip ospf network point-to-point
             ip ospf hello-interval 1
             ip ospf dead-interval 8
             ip ospf retransmit-interval 1
            interface eth2
             ip address 198.18.1.1/24
             ip ospf area 0
            router ospf
             ospf router-id 198.18.255.1
             timers throttle lsa all 100
             timers lsa min-arrival 50
             passive-interface eth2
            router bgp 65001
             no bgp ebgp-requires-policy
             neighbor 198.18.10.2 remote-as 65002
             neighbor 198.18.10.2 timers connect 2
            """,
        "r2/frr.conf": """
            hostname r2
            interface lo
             ip address 198.18.255.2/32
             ip ospf area 0
            interface eth1
             ip address 198.18.10.2/30
             ip ospf area 0
             ip ospf network point-to-point
             ip ospf hello-interval 1
             ip ospf dead-interval 8
             ip ospf retransmit-interval 1
            interface eth2
             ip address 198.18.2.1/24
             ip ospf area 0
            router ospf
             ospf router-id 198.18.255.2
             timers throttle lsa all 100
             timers lsa min-arrival 50
            router bgp 65002
             no bgp ebgp-requires-policy
             neighbor 198.18.10.1 remote-as 65001
             neighbor 198.18.10.1 timers connect 2
            """
        + r2_conf_extra,
        "converged.json": """
            {"r1": {"show ip ospf neighbor json": {"neighbors": {"198.18.255.2": [{"converged": "Full"}]}},
                    "show bgp neighbors json": {"198.18.10.2": {"bgpState": "Established"}},
                    "show ip route 198.18.2.0/24 json": {"198.18.2.0/24": [{"protocol": "ospf"}]}},
             "r2": {"show ip route 198.18.1.0/24 json": {"198.18.1.0/24": [{"protocol": "ospf"}]}}}
            """,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    execs = "".join(
        f"        - {json.dumps(line)}\n"
        for line in (
            "ip addr add 198.18.1.10/24 dev eth1",
            "ip route add 198.18.0.0/15 via 198.18.1.1",
            *h1_exec,
        )
    )
    topo = root / "tiny.clab.yml"
    topo.write_text(
        "name: savtest-tiny\n"
        "topology:\n"
        "  kinds:\n"
        "    linux:\n"
        "      sysctls: {net.ipv4.ip_forward: 1}\n"
        "  nodes:\n"
        "    r1: {kind: linux, binds: [r1/daemons:/etc/frr/daemons, r1/frr.conf:/etc/frr/frr.conf]}\n"
        "    r2: {kind: linux, binds: [r2/daemons:/etc/frr/daemons, r2/frr.conf:/etc/frr/frr.conf]}\n"
        "    h2:\n"
        "      kind: linux\n"
        "      exec: [ip addr add 198.18.2.10/24 dev eth1, ip route add 198.18.0.0/15 via 198.18.2.1]\n"
        "    h1:\n"
        "      kind: linux\n"
        "      exec:\n" + execs + "  links:\n"
        "    - endpoints: [r1:eth1, r2:eth1]\n"
        "    - endpoints: [r1:eth2, h1:eth1]\n"
        "    - endpoints: [r2:eth2, h2:eth1]\n"
    )
    return topo


@pytest.fixture
def tiny_topology(tmp_path: Path) -> Callable[..., Path]:
    """`make(r2_conf_extra="", h1_exec=())` writes the tiny lab under tmp_path and returns its file."""

    def make(**kwargs: Any) -> Path:
        return write_tiny_topology(tmp_path, **kwargs)

    return make
