"""GoBGP 3.10 as a FlowSpec speaker: a managed or external gobgpd driven over gRPC.

Owns: rendering a minimal gobgpd TOML, spawning gobgpd (optionally inside a network namespace) and
killing it by PID; turning FlowRules into `apipb.Path` messages (from flowspec/render_gobgp.py) and
pushing them with AddPathStream in batches (about 9 times faster than one unary AddPath per rule,
§3.11); DeletePath per rule, or per family to clear everything; peer states from ListPeer.

The gRPC API listens on a Unix socket in the work directory (`--api-hosts unix://…`): a socket file is
reachable from every network namespace, where 127.0.0.1:50051 inside a lab namespace is not (§2.1).

Next-hop detail (§2.1): AddPath of a FlowSpec path fails with "nexthop not found" unless the path
carries an MpReachNLRIAttribute with next hop 0.0.0.0 (:: for IPv6) and the NLRI repeated in `nlris`.

Targeting: gobgpd advertises its global RIB to every neighbour with the family, and rules carry
interface-group IDs that only mean something on their own router. Rules for one router therefore go to
a gobgpd that peers with that router only (one instance per router; several sessions to it, e.g. IPv4
and IPv6, are fine). A managed speaker refuses neighbours with different `name`s (router names) and
pushes for a peer it does not have; `peer` is otherwise bookkeeping for the pusher.

Sessions and restarts: a session reset does not lose gobgpd's RIB (gobgpd re-advertises by itself), a
gobgpd restart does. With `holdover_s` set, a managed gobgpd runs under a holdover guard
(speakers/holdover.py): when savd dies it keeps its sessions and RIB, so the routers keep their rules
(FRR has no graceful restart for FlowSpec), for `holdover_s` seconds; a restarted savd adopts it if its
configuration is unchanged, else kills it and starts a new one. `events()` reports SessionUp once per
neighbour per gobgpd generation or adoption (first Established, polled with ListPeer), SessionDown for
every neighbour when gobgpd dies or becomes unreachable, and a managed gobgpd is restarted with capped
exponential backoff. Fed to FlowPusher.on_event, that re-syncs exactly when the RIB may differ from
what savd believes (an adopted gobgpd is re-synced too: announcing what it holds changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2

from appliance.errors import ExternalError
from appliance.flowspec.render_gobgp import SAFI_FLOWSPEC, GoBgpFlowPath, Message, to_path
from appliance.flowspec.rules import FlowRule
from appliance.speakers.events import SessionDown, SessionUp, SpeakerRestarted
from appliance.speakers.holdover import adopt, claim, guard_argv, reap, release, wait_gone

GoBgpEvent = SessionUp | SessionDown | SpeakerRestarted
WATCH_INTERVAL_S = 0.5
# how long an adopted gobgpd has to answer gRPC: generous, it keeps its sessions (and the routers their
# rules) meanwhile, while a savd starting up on a busy machine may be slow to look
ADOPT_ANSWER_S = 10.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 30.0

log = logging.getLogger(__name__)

try:  # generated at install by scripts/build.d/10-gobgp-stubs.sh; typed Any (generated .pyi are not strict)
    attr: Any = importlib.import_module("appliance.speakers.gobgp_pb.attribute_pb2")
    api: Any = importlib.import_module("appliance.speakers.gobgp_pb.gobgp_pb2")
    api_grpc: Any = importlib.import_module("appliance.speakers.gobgp_pb.gobgp_pb2_grpc")
except ImportError as exc:  # pragma: no cover - depends on the build step
    raise ImportError("GoBGP stubs missing: run scripts/setup (scripts/build.d/10-gobgp-stubs.sh)") from exc


class GoBgpError(ExternalError, RuntimeError):
    """gobgpd could not be started or refused a call; `speaker` names the instance."""

    def __init__(self, speaker: str, message: str) -> None:
        super().__init__(f"gobgp {speaker}: {message}")
        self.speaker = speaker


@dataclass(frozen=True, slots=True)
class GoBgpNeighbor:
    address: str
    peer_as: int
    local_address: str = ""
    families: tuple[str, ...] = ("ipv4-flowspec", "ipv6-flowspec")
    passive: bool = False
    name: str = ""


def _pack(message: Any) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def path_message(spec: GoBgpFlowPath) -> Any:
    """The apipb.Path for one rendered rule, with the MP_REACH next hop GoBGP insists on."""
    family = api.Family(afi=spec.afi, safi=SAFI_FLOWSPEC)
    rules = [_pack(attr.FlowSpecIPPrefix(type=2, prefix_len=spec.source_len, prefix=spec.source_prefix))]
    for ctype, items in spec.components:
        rules.append(_pack(attr.FlowSpecComponent(
            type=ctype, items=[attr.FlowSpecComponentItem(op=op, value=v) for op, v in items])))
    nlri = _pack(attr.FlowSpecNLRI(rules=rules))
    next_hop = "0.0.0.0" if spec.afi == 1 else "::"
    pattrs = [
        _origin(),
        _pack(attr.MpReachNLRIAttribute(family=family, next_hops=[next_hop], nlris=[nlri])),
    ]
    if spec.communities:
        pattrs.append(_communities(spec.communities))
    return api.Path(family=family, nlri=nlri, pattrs=pattrs)


@functools.cache
def _origin() -> Any:
    return _pack(attr.OriginAttribute(origin=0))


@functools.lru_cache(maxsize=4096)
def _communities(messages: tuple[Message, ...]) -> Any:
    """Packed once per distinct (action, groups): large pushes mostly repeat a few of them."""
    comms = [_pack(getattr(attr, m.name)(**dict(m.fields))) for m in messages]
    return _pack(attr.ExtendedCommunitiesAttribute(communities=comms))


def render_config(asn: int, router_id: str, neighbors: Sequence[GoBgpNeighbor]) -> str:
    """gobgpd TOML: no BGP listener (port -1); active or passive sessions to each neighbour."""
    lines = ["[global.config]", f"  as = {asn}", f'  router-id = "{router_id}"', "  port = -1", ""]
    for n in neighbors:
        lines += ["[[neighbors]]", "  [neighbors.config]", f'    neighbor-address = "{n.address}"',
                  f"    peer-as = {n.peer_as}", "  [neighbors.timers.config]",
                  "    connect-retry = 1", "  [neighbors.transport.config]",
                  f"    passive-mode = {'true' if n.passive else 'false'}"]
        if n.local_address:
            lines.append(f'    local-address = "{n.local_address}"')
        for fam in n.families:
            lines += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                      f'      afi-safi-name = "{fam}"']
        lines.append("")
    return "\n".join(lines)


class GoBgpSpeaker:
    """One gobgpd. Managed (spawned here) unless `api_target` names an external one."""

    #: batches FlowPusher keeps in flight: gobgpd takes concurrent AddPathStream calls, and while it
    #: digests one batch Python builds the protobufs of the next (bench/flowspec_bench.py pipeline)
    pipeline_depth = 4

    def __init__(self, workdir: Path, *, asn: int = 0, router_id: str = "", name: str = "gobgp",
                 neighbors: Sequence[GoBgpNeighbor] = (), netns: str | None = None,
                 api_target: str | None = None, gobgpd_bin: str = "gobgpd", group_asn: int = 0,
                 batch_size: int = 1000, holdover_s: float | None = None) -> None:
        self.workdir = workdir.resolve()
        self.name = name
        self.asn, self.router_id, self.neighbors = asn, router_id, tuple(neighbors)
        self.netns, self.gobgpd_bin = netns, gobgpd_bin
        self.managed = api_target is None
        routers = {n.name for n in self.neighbors}
        if len(routers) > 1:
            raise GoBgpError(name, f"neighbours of several routers {sorted(routers)}: gobgpd sends its whole "
                                   "RIB to every neighbour, use one speaker per router")
        self.target = api_target or f"unix://{self.workdir / 'api.sock'}"
        self.group_asn, self.batch_size = group_asn, batch_size
        self.holdover_s = holdover_s
        self._proc: asyncio.subprocess.Process | None = None
        self._adopted: int | None = None  # the holdover guard of a gobgpd a previous savd left running
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._queue: asyncio.Queue[GoBgpEvent] = asyncio.Queue()
        self._up: set[str] = set()       # neighbours reported up since this gobgpd (generation) started
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._restarts = 0

    @property
    def pid(self) -> int | None:
        """Our child (gobgpd, or its holdover guard), or the guard we adopted."""
        return self._proc.pid if self._proc else self._adopted

    @property
    def restarts(self) -> int:
        return self._restarts

    async def start(self, timeout_s: float = 10.0) -> None:
        """Spawn (managed) and connect; then watch sessions and, if managed, restart gobgpd when it dies."""
        self._stopping = False
        await self._connect(timeout_s)
        log.info("event=gobgp-started speaker=%s target=%s pid=%s", self.name, self.target, self.pid)
        self._tasks = [asyncio.create_task(self._watch(), name=f"gobgp-watch-{self.name}")]
        if self.managed:
            self._tasks.append(asyncio.create_task(self._supervise(), name=f"gobgp-supervise-{self.name}"))

    async def _connect(self, timeout_s: float) -> None:
        if self.managed and not await self._adopt():
            for pid in reap(self.workdir):
                log.warning("event=stale-speaker-killed speaker=%s pid=%d", self.name, pid)
            await self._spawn()
        await self._open_channel()
        await self._wait_ready(timeout_s)

    async def _open_channel(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = grpc.aio.insecure_channel(self.target)
        self._stub = api_grpc.GobgpApiStub(self._channel)

    async def _adopt(self) -> bool:
        """Take over the gobgpd a dead savd left under its holdover guard, sessions and RIB included, when
        it runs this very configuration and answers; otherwise it is killed and a new one started."""
        async def answers() -> bool:
            await self._open_channel()
            try:
                await self._wait_ready(ADOPT_ANSWER_S)
            except GoBgpError as exc:
                log.warning("event=gobgp-adopt-no-answer speaker=%s error=%s", self.name, exc)
                return False
            return True

        self._adopted = None
        if self.holdover_s is None:
            return False
        self._adopted = await adopt(self.workdir, {"gobgpd.toml": self._config()}, answers)
        if self._adopted is not None:
            log.info("event=gobgp-adopted speaker=%s pid=%d", self.name, self._adopted)
        return self._adopted is not None

    def _config(self) -> str:
        return render_config(self.asn, self.router_id, self.neighbors)

    async def events(self) -> AsyncIterator[GoBgpEvent]:
        """SessionUp once per neighbour per gobgpd generation (gobgpd keeps its RIB across session resets,
        so flaps are not reported); SessionDown for every neighbour when gobgpd is lost (RIB gone);
        SpeakerRestarted after a managed restart. Feed them to FlowPusher.on_event."""
        while True:
            yield await self._queue.get()

    def _lost(self, reason: str) -> None:
        for address in sorted(self._up):
            self._queue.put_nowait(SessionDown(address, self.name, reason))
        self._up.clear()

    async def _watch(self) -> None:
        while not self._stopping:
            try:
                up = await self.established()
            except (grpc.aio.AioRpcError, AttributeError):
                if self._up:
                    log.warning("event=gobgp-unreachable speaker=%s target=%s", self.name, self.target)
                self._lost("gobgpd unreachable")
                up = set()
            for address in sorted(up - self._up):
                self._up.add(address)
                self._queue.put_nowait(SessionUp(address, self.name))
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _supervise(self) -> None:
        backoff = BACKOFF_FIRST_S
        while not self._stopping:
            pid = self.pid
            code = await self._exited()
            if self._stopping:
                return
            log.warning("event=gobgp-exited speaker=%s pid=%s code=%s", self.name, pid, code)
            self._lost(f"gobgpd exited with {code}")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            try:
                await self._connect(10.0)
            except GoBgpError as exc:
                log.warning("event=gobgp-restart-failed speaker=%s error=%s", self.name, exc)
                continue
            self._restarts += 1
            self._queue.put_nowait(SpeakerRestarted(self._restarts, code))

    async def _exited(self) -> int | None:
        """Wait until our gobgpd is gone: its exit code, or None for an adopted one (not our child)."""
        if self._proc is not None:
            return await self._proc.wait()
        if self._adopted is not None:
            await wait_gone(self._adopted)
        self._adopted = None
        return None

    async def _spawn(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "gobgpd.toml"
        conf.write_text(self._config())
        sock = self.workdir / "api.sock"
        sock.unlink(missing_ok=True)
        argv = [self.gobgpd_bin, "-f", str(conf), "--api-hosts", self.target, "-p", "--pprof-disable",
                "--log-plain"]
        if self.holdover_s is not None:
            claim(self.workdir)
            argv = guard_argv(self.workdir, self.holdover_s, argv)
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        logf = (self.workdir / "gobgpd.log").open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(*argv, stdout=logf, stderr=logf,
                                                              stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            raise GoBgpError(self.name, f"cannot run {self.gobgpd_bin}: {exc}") from exc
        finally:
            logf.close()

    async def _wait_ready(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last: Exception | None = None
        attempts = 0
        while loop.time() < deadline or attempts < 2:  # a loop busy at start-up does not eat every try
            attempts += 1
            if self._proc is not None and self._proc.returncode is not None:
                raise GoBgpError(self.name, f"gobgpd exited with {self._proc.returncode}; see "
                                            f"{self.workdir / 'gobgpd.log'}")
            try:
                await self._stub.GetBgp(api.GetBgpRequest(), timeout=1.0)
                return
            except grpc.aio.AioRpcError as exc:
                last = exc
            await asyncio.sleep(0.05)
        raise GoBgpError(self.name, f"gRPC API at {self.target} not ready after {timeout_s}s: {last}")

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._up.clear()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        proc, self._proc = self._proc, None
        adopted, self._adopted = self._adopted, None
        if adopted is not None:
            for pid in await release(self.workdir, adopted):
                log.warning("event=stale-speaker-killed speaker=%s pid=%d", self.name, pid)
        if proc is None or proc.returncode is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 5.0)
        except (ProcessLookupError, TimeoutError):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    def _check_peer(self, peer: str) -> None:
        if self.managed and self.neighbors and peer not in {n.address for n in self.neighbors}:
            raise GoBgpError(self.name, f"{peer} is not a neighbour of this speaker")

    async def announce(self, peer: str, rules: Sequence[FlowRule]) -> None:
        """Add (or replace, same NLRI) the rules in the global RIB, streamed in batches."""
        self._check_peer(peer)
        if not rules:
            return

        async def requests() -> AsyncIterator[Any]:   # built per request: the stream sends one, we build
            for i in range(0, len(rules), self.batch_size):   # the next
                chunk = rules[i:i + self.batch_size]
                paths = [path_message(to_path(r, self.group_asn)) for r in chunk]
                yield api.AddPathStreamRequest(table_type=api.GLOBAL, paths=paths)

        try:
            await self._stub.AddPathStream(requests())
        except grpc.aio.AioRpcError as exc:
            raise GoBgpError(self.name, f"AddPathStream for {peer}: {exc.details()}") from exc

    async def withdraw(self, peer: str, rules: Sequence[FlowRule], concurrency: int = 64) -> None:
        """DeletePath per rule (GoBGP has no streaming delete), `concurrency` calls in flight."""
        self._check_peer(peer)
        sem = asyncio.Semaphore(concurrency)

        async def one(rule: FlowRule) -> None:
            path = path_message(to_path(rule, self.group_asn))
            async with sem:
                await self._stub.DeletePath(api.DeletePathRequest(table_type=api.GLOBAL, path=path))

        try:
            await asyncio.gather(*(one(r) for r in rules))
        except grpc.aio.AioRpcError as exc:
            raise GoBgpError(self.name, f"DeletePath for {peer}: {exc.details()}") from exc

    async def withdraw_all(self) -> None:
        """Delete every IPv4 and IPv6 FlowSpec path of the global RIB."""
        for afi in (1, 2):
            family = api.Family(afi=afi, safi=SAFI_FLOWSPEC)
            await self._stub.DeletePath(api.DeletePathRequest(table_type=api.GLOBAL, family=family))

    async def count_paths(self, afi: int = 1) -> int:
        """Destinations in the global RIB of IPv4 (1) or IPv6 (2) FlowSpec."""
        req = api.ListPathRequest(table_type=api.GLOBAL, family=api.Family(afi=afi, safi=SAFI_FLOWSPEC))
        n = 0
        async for _ in self._stub.ListPath(req):
            n += 1
        return n

    async def established(self) -> set[str]:
        """Neighbour addresses whose session is Established."""
        up = set()
        async for resp in self._stub.ListPeer(api.ListPeerRequest()):
            if resp.peer.state.session_state == api.PeerState.ESTABLISHED:
                up.add(resp.peer.conf.neighbor_address)
        return up
