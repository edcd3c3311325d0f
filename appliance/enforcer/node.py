"""Node-side plumbing for the enforcer: the in-node veth pair and FRR's session toward the receiver.

Why a veth pair inside the node: FRR refuses BGP peers on 127.0.0.0/8 and the dummy module may be
missing; both ends of the pair live in the node's namespace, FRR on one end, the
enforcer's ExaBGP on the other, so no lab or production address plan is touched.

Why route-reflector-client: the FlowSpec routes reach FRR over iBGP from the controller and iBGP
routes are not re-advertised to other iBGP peers unless the receiver is a route-reflector client.

The pair's subnet (default 198.18.254.0/30, from the benchmarking range) must be free in the node: an
address or a more specific route of the node inside it (a loopback, an OSPF route; covering aggregates
are fine) makes FRR reach the receiver the wrong way and the session stays Active, so `Sidecar.start`
refuses with the overlapping addresses and routes named, and --frr-address/--exa-address pick another
/30. The neighbour is added at start, re-added when FRR lost it (bgpd restarted: `frr_has_neighbor`), and
removed at stop (`unconfigure_frr`).

bgpd refuses every incoming session with NOTIFICATION 5/0 (FSM error) when it cannot find an interface
holding the session's local address, and its interfaces come from zebra: zebra not running, or not having
learnt the FRR end or its address, keeps the session down with nothing else to show for it.
`frr_interface_state` tells these apart (vtysh `show interface IFNAME json`) and `Sidecar.resignal` makes
the kernel announce the FRR end again so that zebra relearns it.
Must not: change anything else in FRR's configuration.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import ExternalError
from appliance.speakers.holdover import die_with_parent

log = logging.getLogger(__name__)

__all__ = ["ADDRESS_UNKNOWN", "INTERFACE_UNKNOWN", "OK", "UNKNOWN", "ZEBRA_DOWN", "NodeError", "Sidecar",
           "VethPair", "address_conflicts", "configure_frr", "frr_commands", "frr_has_neighbor",
           "frr_interface_state", "unconfigure_frr"]

# what FRR knows of the FRR end of the pair (`frr_interface_state`)
OK = "ok"
ZEBRA_DOWN = "zebra-down"                # vtysh: "zebra is not running"; bgpd has no interfaces
INTERFACE_UNKNOWN = "interface-unknown"  # zebra runs but does not list the interface
ADDRESS_UNKNOWN = "address-unknown"      # zebra lists the interface without the FRR end's address
UNKNOWN = "unknown"                      # vtysh failed otherwise (timeout, other daemon, bad output)


class NodeError(ExternalError, RuntimeError):
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


def _links(netns: str | None) -> set[str]:
    doc = json.loads(_ip(["-j", "link", "show"], "list links", netns) or "[]")
    return {link.get("ifname") for link in doc}


def address_conflicts(pair: VethPair, addresses: Any, routes: Any) -> list[str]:
    """What in the node overlaps the pair's subnets (`ip -j addr show`, `ip -j route show` documents),
    outside the pair's own interfaces."""
    nets = {ipaddress.ip_interface(a).network for a in (pair.frr_address, pair.exa_address)}
    own = {pair.frr_ifname, pair.exa_ifname}

    def inside(text: str, route: bool) -> bool:
        """An address within one of the pair's /30s, or a route as specific as it or more. A covering
        route (an aggregate 198.18.0.0/16) is no conflict: the pair's connected /30 is the longer match."""
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            return False
        return any(iface.version == n.version and iface.ip in n
                   and (not route or iface.network.prefixlen >= n.prefixlen) for n in nets)

    out = []
    for link in addresses if isinstance(addresses, list) else []:
        ifname = str(link.get("ifname", ""))
        for info in link.get("addr_info", []) if ifname not in own else []:
            local = f"{info.get('local')}/{info.get('prefixlen')}"
            if inside(local, route=False):
                out.append(f"address {local} on {ifname}")
    for route in routes if isinstance(routes, list) else []:
        dst, dev = str(route.get("dst", "")), str(route.get("dev", ""))
        if dst != "default" and dev not in own and inside(dst, route=True):
            via = route.get("gateway") or dev
            out.append(f"route {dst} via {via}")
    return out


class Sidecar:
    """A private network namespace for the receiver, joined to the node by the veth pair.

    FRR refuses a neighbour whose address is configured on any interface of its own namespace ("% Can
    not configure the local system as neighbor"), so the receiver's end cannot stay in the node. The
    sidecar is anonymous: a holder process (`unshare --net sleep infinity`) owns it and processes join
    it with `nsenter --net=/proc/PID/ns/net`, so it needs no /run/netns name (which does not propagate
    out of `ip netns exec` mount namespaces) and vanishes, veth included, when its processes exit.
    """

    def __init__(self, pair: VethPair, netns: str | None = None) -> None:
        self.pair = pair
        self.netns = netns
        self.holder: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.holder is None:
            raise NodeError("sidecar not started", step="sidecar")
        return self.holder.pid

    def prefix(self) -> list[str]:
        """argv prefix that runs a command inside the sidecar namespace."""
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net"]

    def check_addresses(self) -> None:
        """Refuse a pair subnet the node already uses (the session would stay Active, silently)."""
        docs = [json.loads(_ip(["-j", *args], "list addresses", self.netns) or "[]")
                for args in (["addr", "show"], ["-4", "route", "show"], ["-6", "route", "show"])]
        found = address_conflicts(self.pair, docs[0], docs[1] + docs[2])
        if found:
            raise NodeError(f"{self.pair.frr_address} / {self.pair.exa_address} overlap what the node uses: "
                            f"{'; '.join(found[:5])}. Pick a free /30 with --frr-address and --exa-address",
                            step="address check")

    def start(self) -> None:
        if self.pair.frr_ifname in _links(self.netns):
            _ip(["link", "del", self.pair.frr_ifname], "remove stale veth", self.netns)
        self.check_addresses()
        argv = ["unshare", "--net", "sleep", "infinity"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        # dies with the enforcer: outside the node's namespace no `ip netns pids` sweep would find it
        self.holder = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True,
                                       preexec_fn=die_with_parent)
        try:
            self._wait_unshared()
            _ip(["link", "add", self.pair.frr_ifname, "type", "veth", "peer", "name", self.pair.exa_ifname,
                 "netns", str(self.pid)], "create veth", self.netns)
            _ip(["addr", "add", self.pair.frr_address, "dev", self.pair.frr_ifname], "address FRR end",
                self.netns)
            _ip(["link", "set", self.pair.frr_ifname, "up"], "up FRR end", self.netns)
            for args in (["addr", "add", self.pair.exa_address, "dev", self.pair.exa_ifname],
                         ["link", "set", self.pair.exa_ifname, "up"], ["link", "set", "lo", "up"]):
                self._inside(["ip", *args], "configure receiver end")
        except BaseException:
            self.stop()
            raise
        log.info("event=enforcer-sidecar pid=%d frr=%s/%s exa=%s", self.pid, self.pair.frr_ifname,
                 self.pair.frr_address, self.pair.exa_address)

    def _wait_unshared(self) -> None:
        """`ip netns exec` and `unshare` exec in place: once the PID runs `sleep`, the namespace exists."""
        assert self.holder is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.holder.poll() is not None:
                raise NodeError(f"unshare exited with {self.holder.returncode}", step="sidecar")
            with contextlib.suppress(OSError):
                argv0 = Path(f"/proc/{self.holder.pid}/cmdline").read_bytes().split(b"\0")[0]
                if argv0.endswith(b"sleep"):
                    return
            time.sleep(0.02)
        raise NodeError("holder process did not enter its namespace", step="sidecar")

    def _inside(self, argv: Sequence[str], step: str) -> None:
        proc = subprocess.run([*self.prefix(), *argv], capture_output=True, text=True, timeout=30,
                              check=False)
        if proc.returncode != 0:
            raise NodeError(f"`{shlex.join(argv)}` failed: {proc.stderr.strip()}", step=step)

    def stop(self) -> None:
        """Kill the holder (by PID) and remove the veth; processes still inside keep it until they exit."""
        with contextlib.suppress(NodeError, OSError, ValueError):
            if self.pair.frr_ifname in _links(self.netns):
                _ip(["link", "del", self.pair.frr_ifname], "remove veth", self.netns)
        if self.holder and self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait(10)
        self.holder = None

    def resignal(self) -> None:
        """Flap the FRR end and re-add its address: the kernel announces both again, so a zebra that
        missed them (restarted after the pair was made) relearns them and bgpd accepts the session."""
        p, ns = self.pair, self.netns
        _ip(["link", "set", p.frr_ifname, "down"], "resignal: down FRR end", ns)
        _ip(["link", "set", p.frr_ifname, "up"], "resignal: up FRR end", ns)
        with contextlib.suppress(NodeError):    # already gone: adding it is what matters
            _ip(["addr", "del", p.frr_address, "dev", p.frr_ifname], "resignal: remove address", ns)
        _ip(["addr", "add", p.frr_address, "dev", p.frr_ifname], "resignal: add address", ns)
        log.warning("event=enforcer-sidecar-resignalled ifname=%s address=%s", p.frr_ifname, p.frr_address)


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
    _vtysh_config(vtysh, frr_commands(asn, receiver))


def unconfigure_frr(vtysh: Sequence[str], asn: int, receiver: str) -> None:
    """Remove the receiver neighbour (the enforcer stops: FRR must not keep trying it)."""
    _vtysh_config(vtysh, ["configure terminal", f"router bgp {asn}", f"no neighbor {receiver}", "end"])


def frr_has_neighbor(vtysh: Sequence[str], receiver: str) -> bool | None:
    """Whether FRR's bgpd has the receiver neighbour configured; None when bgpd cannot be asked (down,
    restarting). JSON: `show bgp neighbors ADDR json` holds the address as a key when it exists."""
    argv = [*vtysh, "-c", f"show bgp neighbors {receiver} json"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        doc = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return receiver in doc if isinstance(doc, dict) else None


def frr_interface_state(vtysh: Sequence[str], ifname: str, address: str) -> str:
    """What zebra knows of the FRR end (`ifname` holding `address`, e.g. "198.18.254.1/30"): OK,
    ZEBRA_DOWN, INTERFACE_UNKNOWN, ADDRESS_UNKNOWN or UNKNOWN. Why: bgpd refuses the session (NOTIFICATION
    5/0) in all but OK, and the enforcer only sees the notification."""
    argv = [*vtysh, "-c", f"show interface {ifname} json"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    if "zebra is not running" in proc.stdout + proc.stderr:
        return ZEBRA_DOWN
    try:
        doc = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        return UNKNOWN
    if not isinstance(doc, dict):
        return UNKNOWN
    iface = doc.get(ifname)
    if not isinstance(iface, dict):
        return INTERFACE_UNKNOWN    # zebra answers {} for an interface it does not know
    held = [a.get("address") for a in iface.get("ipAddresses") or [] if isinstance(a, dict)]
    return OK if any(_same_interface(str(h), address) for h in held) else ADDRESS_UNKNOWN


def _same_interface(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_interface(a) == ipaddress.ip_interface(b)
    except ValueError:
        return False


def _vtysh_config(vtysh: Sequence[str], lines: Sequence[str]) -> None:
    argv = [*vtysh]
    for line in lines:
        argv += ["-c", line]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    output = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                       if "vtysh.conf" not in line).strip()     # missing per-pathspace vtysh.conf: harmless
    if proc.returncode != 0 or "% " in output:
        raise NodeError(f"`{shlex.join(vtysh)}` exit {proc.returncode}: {output[:1000]}",
                        step="configure FRR")
