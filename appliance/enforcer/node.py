"""Node-side plumbing for the enforcer: the in-node veth pair and FRR's session toward the receiver.

Why a veth pair inside the node: FRR refuses BGP peers on 127.0.0.0/8 and the dummy module may be
missing (integration.md §3.8); both ends of the pair live in the node's namespace, FRR on one end, the
enforcer's ExaBGP on the other, so no lab or production address plan is touched.

Why route-reflector-client: the FlowSpec routes reach FRR over iBGP from the controller and iBGP
routes are not re-advertised to other iBGP peers unless the receiver is a route-reflector client.
Must not: change anything else in FRR's configuration.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["NodeError", "VethPair", "configure_frr", "ensure_veth", "frr_commands", "remove_veth"]


class NodeError(RuntimeError):
    """Setting up the node failed; `step` names what was attempted."""

    def __init__(self, message: str, *, step: str = "") -> None:
        super().__init__(f"{step}: {message}" if step else message)
        self.step = step


@dataclass(frozen=True, slots=True)
class VethPair:
    frr_ifname: str = "savd-fs-frr"
    exa_ifname: str = "savd-fs-exa"
    frr_address: str = "198.18.254.1/30"
    exa_address: str = "198.18.254.2/30"

    @property
    def frr_ip(self) -> str:
        return str(ipaddress.ip_interface(self.frr_address).ip)

    @property
    def exa_ip(self) -> str:
        return str(ipaddress.ip_interface(self.exa_address).ip)


def _ip(args: Sequence[str], step: str, netns: str | None = None) -> str:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise NodeError(f"`{shlex.join(argv)}` failed: {proc.stderr.strip()}", step=step)
    return proc.stdout


def _addresses(ifname: str, netns: str | None) -> set[str]:
    doc = json.loads(_ip(["-j", "addr", "show", "dev", ifname], "read addresses", netns) or "[]")
    return {f"{a['local']}/{a['prefixlen']}" for link in doc for a in link.get("addr_info", [])}


def ensure_veth(pair: VethPair, netns: str | None = None) -> bool:
    """Create the pair if needed, address both ends (no DAD), bring them up. True if it was created."""
    links = json.loads(_ip(["-j", "link", "show"], "list links", netns) or "[]")
    names = {link.get("ifname") for link in links}
    created = False
    if pair.frr_ifname not in names or pair.exa_ifname not in names:
        for stale in (pair.frr_ifname, pair.exa_ifname):
            if stale in names:
                _ip(["link", "del", stale], "remove half pair", netns)
        _ip(["link", "add", pair.frr_ifname, "type", "veth", "peer", "name", pair.exa_ifname],
            "create veth", netns)
        created = True
    for ifname, address in ((pair.frr_ifname, pair.frr_address), (pair.exa_ifname, pair.exa_address)):
        if address not in _addresses(ifname, netns):
            _ip(["addr", "add", address, "dev", ifname], f"address {ifname}", netns)
        _ip(["link", "set", ifname, "up"], f"up {ifname}", netns)
    log.info("event=enforcer-veth frr=%s exa=%s created=%s", pair.frr_ifname, pair.exa_ifname, created)
    return created


def remove_veth(pair: VethPair, netns: str | None = None) -> None:
    links = json.loads(_ip(["-j", "link", "show"], "list links", netns) or "[]")
    if pair.frr_ifname in {link.get("ifname") for link in links}:
        _ip(["link", "del", pair.frr_ifname], "remove veth", netns)


def frr_commands(asn: int, receiver: str) -> list[str]:
    """vtysh lines that peer FRR with the receiver and re-advertise accepted FlowSpec to it."""
    lines = ["configure terminal", f"router bgp {asn}",
             f"neighbor {receiver} remote-as internal",
             f"neighbor {receiver} description savd-enforcer",
             "address-family ipv4 unicast", f"no neighbor {receiver} activate", "exit-address-family"]
    for afi in ("ipv4", "ipv6"):
        lines += [f"address-family {afi} flowspec", f"neighbor {receiver} activate",
                  f"neighbor {receiver} route-reflector-client", "exit-address-family"]
    return [*lines, "end"]


def configure_frr(vtysh: Sequence[str], asn: int, receiver: str) -> None:
    """Apply `frr_commands` with the given vtysh invocation (e.g. ["vtysh", "-N", "r1"])."""
    argv = [*vtysh]
    for line in frr_commands(asn, receiver):
        argv += ["-c", line]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "% " in output:
        raise NodeError(f"`{shlex.join(vtysh)}` exit {proc.returncode}: {output[:1000]}",
                        step="configure FRR")
