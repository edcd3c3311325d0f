"""The receiver's sidecar namespace: created from inside a node namespace, reachable over the veth pair,
gone (holder and veth) after stop. Real iproute2/unshare/nsenter in a scratch namespace."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from appliance.enforcer.node import NodeError, Sidecar, VethPair

pytestmark = pytest.mark.integration


@pytest.fixture
def ns(require_root: None) -> Iterator[str]:
    name = "enfs" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def links(ns: str) -> str:
    return subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True, check=True).stdout


def test_sidecar_reachable_then_gone(ns: str) -> None:
    pair = VethPair()
    car = Sidecar(pair, netns=ns)
    car.start()
    try:
        holder = car.pid
        assert pair.frr_ifname in links(ns) and pair.exa_ifname not in links(ns)
        ping = subprocess.run(
            ["ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", pair.exa_ip],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        inside = subprocess.run(
            [*car.prefix(), "ip", "-o", "addr"], capture_output=True, text=True, check=True
        )
        assert pair.exa_address in inside.stdout
    finally:
        car.stop()
    assert pair.frr_ifname not in links(ns)
    assert not os.path.exists(f"/proc/{holder}") or open(f"/proc/{holder}/stat").read().split()[2] == "Z"


def test_second_start_replaces_a_stale_pair(ns: str) -> None:
    pair = VethPair()
    first, second = Sidecar(pair, netns=ns), Sidecar(pair, netns=ns)
    first.start()
    try:
        second.start()  # the stale FRR end is removed, a fresh pair created
        assert links(ns).count(pair.frr_ifname) == 1
    finally:
        second.stop()
        first.stop()
    with pytest.raises(NodeError):
        Sidecar(pair, netns=ns).pid  # noqa: B018
