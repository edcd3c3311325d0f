"""One managed ExaBGP 5.0.x child process, driven through its text/JSON process API.

Owns: rendering the ExaBGP configuration and environment (templates in templates/exabgp*.tmpl next to
this module, package data), spawning ExaBGP (`exabgp --env-file ABS server CONF`, through exabgp_queue.py
so that an NLRI's latest change is the one that reaches the router; optionally inside a network
namespace), restarting it with capped exponential backoff when it dies, turning the JSON it prints into
typed `SpeakerEvent`s, and sending API text commands while always draining ExaBGP's `done`/`error` acks
(an API process that does not read its acks wedges ExaBGP after ~13k commands).

How the API is wired: ExaBGP talks to "API processes" over their stdin/stdout. Ours is a small relay
(this same module run as `python -m appliance.speakers.exabgp relay SOCKET`) that connects back to a
Unix socket this object serves in its work directory; Unix sockets live in the file system, so this
also works when ExaBGP runs inside another network namespace.

Holdover and adoption (with `holdover_s`): ExaBGP runs under a holdover guard (speakers/holdover.py), its
output goes to <workdir>/exabgp.log, and the relay (`relay SOCKET hold`) waits for the next savd when this
one goes. With `adoptable` (FlowSpec-only speakers), a restarted savd takes that ExaBGP over when its
configuration is unchanged: the relay connects to the new socket, `show neighbor json` gives the sessions
that are up (SessionUp for each), and the pusher re-syncs without withdrawing. Otherwise it is reaped.

Must not: interpret families (BGP-LS decoding lives in sources/bgpls/decode.py, FlowSpec rendering in
appliance/flowspec/), or keep route state: ExaBGP forgets nothing on reconnect and withdraws nothing on
stop, so callers own their announcements and re-send them on `SessionUp`.

JSON quirks handled here: repeated keys are merged into a list of all values in
order; any line that is not a well-formed ExaBGP message becomes a `MalformedLine` event and a log
record carrying the offending text, never an exception.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import string
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import ExternalError
from appliance.speakers.events import (
    EndOfRib,
    MalformedLine,
    SessionDown,
    SessionUp,
    SpeakerEvent,
    SpeakerRestarted,
    UpdateReceived,
)
from appliance.speakers.holdover import adopt, claim, guard_argv, reap, release, wait_gone

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"  # package data, installed with the module
# the directory holding the `appliance` package (checkout or site-packages): PYTHONPATH for the relay
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
ACK_TIMEOUT_S = 30.0
RELAY_CONNECT_TIMEOUT_S = 20.0
# how long a held-over ExaBGP's relay has to reconnect to a restarted savd: generous, the speaker keeps its
# sessions meanwhile, and a savd starting on a busy machine is slow to accept
ADOPT_RELAY_S = 15.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0
MAX_LINE_BYTES = 16 * 1024 * 1024

__all__ = [
    "EndOfRib",
    "ExaBgpSpeaker",
    "ExaNeighbor",
    "MalformedLine",
    "SessionDown",
    "SessionUp",
    "SpeakerError",
    "SpeakerEvent",
    "SpeakerRestarted",
    "UpdateReceived",
    "exabgp_command",
    "normalise_line",
    "parse_api_line",
    "render_config",
    "render_env",
]


class SpeakerError(ExternalError):
    """ExaBGP could not be configured or started; `peer` names the neighbour when one is at fault."""

    def __init__(self, message: str, *, peer: str = "") -> None:
        super().__init__(message)
        self.peer = peer


@dataclass(frozen=True, slots=True)
class ExaNeighbor:
    """One BGP neighbour of the managed ExaBGP; `families` are ExaBGP family lines ("bgp-ls bgp-ls")."""

    address: str
    local_address: str
    local_as: int
    peer_as: int
    router_id: str
    families: tuple[str, ...]
    passive: bool = False
    port: int = 179
    name: str = ""


# --- pure parsing -------------------------------------------------------------------------------------


def _merge_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: a key repeated in one object keeps every value, in order, as a list."""
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for key, value in pairs:
        if key not in out:
            out[key] = value
        elif key in repeated:
            out[key].append(value)
        else:
            out[key] = [out[key], value]
            repeated.add(key)
    return out


def loads(text: str) -> Any:
    """json.loads that keeps repeated keys (ExaBGP prints one key per repeated BGP-LS TLV)."""
    return json.loads(text, object_pairs_hook=_merge_duplicates)


VOLATILE_KEYS = ("time", "host", "pid", "ppid", "counter")


def normalise_line(line: str) -> str:
    """A recorded API line without its volatile members (ExaBGP qa's _cleanup), for committed corpora.

    Only the envelope is touched: the line is re-serialised from the duplicate-preserving parse, so a
    repeated key inside the message comes back as one key holding a list of its values."""
    doc = loads(line)
    if isinstance(doc, dict):
        for key in VOLATILE_KEYS:
            doc.pop(key, None)
    return json.dumps(doc, separators=(",", ":"))


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} is {type(value).__name__}, expected an object")
    return value


def parse_api_line(line: str, names: Mapping[str, str] | None = None) -> SpeakerEvent | None:
    """Turn one line ExaBGP wrote to its API process into an event.

    Returns None for messages savd does not consume (open, keepalive, connected, notification ...),
    and MalformedLine for anything that is not well-formed. Never raises.
    """
    names = names or {}
    text = line.strip()
    if not text:
        return None
    try:
        return _parse_message(loads(text), names)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        return MalformedLine(line=line[:4096], error=f"{type(exc).__name__}: {exc}")


def _parse_message(doc: Any, names: Mapping[str, str]) -> SpeakerEvent | None:
    msg = _mapping(doc, "message")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ValueError("no 'type' member")
    if kind not in ("state", "update"):
        return None
    neighbor = _mapping(msg.get("neighbor"), "neighbor")
    address = _mapping(neighbor.get("address"), "neighbor.address")
    peer = address.get("peer")
    if not isinstance(peer, str) or not peer:
        raise ValueError("neighbor.address.peer missing")
    name = names.get(peer, "")
    if kind == "state":
        state = neighbor.get("state")
        if state == "up":
            return SessionUp(peer, name)
        if state == "down":
            return SessionDown(peer, name, str(neighbor.get("reason", "")))
        if state == "connected":
            return None
        raise ValueError(f"unknown state {state!r}")
    message = _mapping(neighbor.get("message"), "neighbor.message")
    if "eor" in message:
        eor = _mapping(message["eor"], "eor")
        return EndOfRib(peer, name, f"{eor.get('afi', '')} {eor.get('safi', '')}".strip())
    update = _mapping(message.get("update"), "neighbor.message.update")
    announce = _mapping(update.get("announce", {}), "announce")
    for fam, by_nh in announce.items():
        for nh, nlris in _mapping(by_nh, f"announce[{fam}]").items():
            if not isinstance(nlris, list):
                raise ValueError(f"announce[{fam}][{nh}] is not a list")
    withdraw = _mapping(update.get("withdraw", {}), "withdraw")
    for fam, nlris in withdraw.items():
        if not isinstance(nlris, list):
            raise ValueError(f"withdraw[{fam}] is not a list")
    attribute = _mapping(update.get("attribute", {}), "attribute")
    return UpdateReceived(peer, name, attribute, announce, withdraw)


# --- rendering ----------------------------------------------------------------------------------------


def _template(name: str) -> string.Template:
    return string.Template((TEMPLATE_DIR / name).read_text())


def _check_neighbor(n: ExaNeighbor) -> None:
    fields = (("address", n.address), ("local_address", n.local_address), ("router_id", n.router_id))
    for what, value in fields:
        if not value or any(c in value for c in " ;{}\n\"'"):
            raise SpeakerError(f"neighbor {n.address or '?'}: bad {what} {value!r}", peer=n.address)
    if not n.families:
        raise SpeakerError(f"neighbor {n.address}: no families", peer=n.address)
    for fam in n.families:
        if any(c in fam for c in ";{}\n"):
            raise SpeakerError(f"neighbor {n.address}: bad family {fam!r}", peer=n.address)
    if not (0 < n.local_as < 2**32 and 0 < n.peer_as < 2**32):
        raise SpeakerError(f"neighbor {n.address}: AS out of range", peer=n.address)


def render_config(neighbors: Sequence[ExaNeighbor], relay_command: str) -> str:
    """The ExaBGP configuration text for these neighbours and this API relay command."""
    seen: set[str] = set()
    blocks = []
    tmpl = _template("exabgp.neighbor.tmpl")
    for n in neighbors:
        _check_neighbor(n)
        if n.address in seen:
            raise SpeakerError(f"neighbor {n.address} configured twice", peer=n.address)
        seen.add(n.address)
        blocks.append(
            tmpl.substitute(
                address=n.address,
                name=(n.name or n.address).replace('"', ""),
                router_id=n.router_id,
                local_address=n.local_address,
                local_as=n.local_as,
                peer_as=n.peer_as,
                port_line="" if n.port == 179 else f"connect {n.port};",
                passive_line="passive true;" if n.passive else "",
                families="\n".join(f"        {f};" for f in n.families),
            )
        )
    return _template("exabgp.conf.tmpl").substitute(relay=relay_command, neighbors="\n".join(blocks))


def render_env(listen: tuple[str, int] | None) -> str:
    """The ExaBGP environment file; `listen` = (address, port) to accept passive sessions, else none."""
    bind, port = listen if listen else ("", 179)
    return _template("exabgp.env.tmpl").substitute(bind=bind, port=port)


# --- the managed process ------------------------------------------------------------------------------


class ExaBgpSpeaker:
    """An asyncio wrapper around one ExaBGP child: start/stop, events, commands with acks.

    `record`: append every line ExaBGP writes to the API (not the acks) to this file, so a session can
    be replayed through `parse_api_line` in tests (see normalise_line for committing them)."""

    def __init__(
        self,
        workdir: Path,
        neighbors: Sequence[ExaNeighbor],
        *,
        netns: str | None = None,
        listen: tuple[str, int] | None = None,
        exabgp_bin: str | None = None,
        record: Path | None = None,
        holdover_s: float | None = None,
        adoptable: bool = False,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.neighbors = tuple(neighbors)
        self.netns = netns
        self.listen = listen
        #: how ExaBGP is started; by default through exabgp_queue (ExaBGP's outgoing queue sends an NLRI's
        #: latest change only; stock 5.0.15 can send a withdraw after the re-announce that followed it)
        self.exabgp_argv = [exabgp_bin] if exabgp_bin else exabgp_command()
        self._names = {n.address: n.name for n in self.neighbors}
        self._queue: asyncio.Queue[SpeakerEvent] = asyncio.Queue()
        self._pending: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._established: set[str] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._relay_ready = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._restarts = 0
        self._record = record
        self.holdover_s = holdover_s
        self.adopts = adoptable and holdover_s is not None  # a killed savd's ExaBGP is taken over
        self._adopted: int | None = None  # the holdover guard of an ExaBGP a previous savd left running
        self._capture: list[str] | None = None  # answers of a `show` command being collected

    # public API ----------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Our child (ExaBGP, or its holdover guard), or the guard we adopted."""
        if self._proc and self._proc.returncode is None:
            return self._proc.pid
        return self._adopted

    @property
    def restarts(self) -> int:
        return self._restarts

    def established(self) -> set[str]:
        return set(self._established)

    async def start(self) -> None:
        """Render the config, start ExaBGP and return once its API relay is connected."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        sock = self._socket_path()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        self._server = await asyncio.start_unix_server(self._on_relay, path=str(sock), limit=MAX_LINE_BYTES)
        relay = f"{sys.executable} -m appliance.speakers.exabgp relay {sock}"
        if self.holdover_s is not None:
            relay += " hold"  # the relay waits for the next savd instead of ending with this one
        config, env = render_config(self.neighbors, relay), render_env(self.listen)
        if not (self.adopts and await self._adopt(config, env)):
            for pid in reap(self.workdir) if self.adopts else ():
                log.warning("event=stale-speaker-killed workdir=%s pid=%d", self.workdir, pid)
            (self.workdir / "exabgp.conf").write_text(config)
            (self.workdir / "exabgp.env").write_text(env)
            await self._spawn()
            try:
                await self._wait_relay()
            except SpeakerError:
                await self.stop()
                raise
        self._supervisor = asyncio.create_task(self._supervise(), name="exabgp-supervisor")

    async def _adopt(self, config: str, env: str) -> bool:
        """Take over the ExaBGP a killed savd left under its holdover guard, sessions and routes included:
        same configuration, its relay connects to our socket, and it says which sessions are up."""
        up: set[str] | None = None

        async def answers() -> bool:
            nonlocal up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._relay_ready.wait(), ADOPT_RELAY_S)
            if not self._relay_ready.is_set():
                log.warning("event=exabgp-adopt-no-answer workdir=%s reason=no-relay", self.workdir)
                return False
            for _ in range(3):  # a line a killed savd left half-written fails the first command
                up = await self._established_now()
                if up is not None:
                    return True
                log.warning("event=exabgp-adopt-no-answer workdir=%s reason=no-show", self.workdir)
            return False

        self._adopted = await adopt(self.workdir, {"exabgp.conf": config, "exabgp.env": env}, answers)
        if self._adopted is None or up is None:
            return False
        for peer in sorted(up):
            self._established.add(peer)
            self._queue.put_nowait(SessionUp(peer, self._names.get(peer, "")))
        log.info("event=exabgp-adopted workdir=%s pid=%d established=%s", self.workdir, self._adopted,
                 ",".join(sorted(up)))
        return True

    async def _established_now(self) -> set[str] | None:
        """The neighbours ExaBGP has Established (`show neighbor json`), None when it does not answer."""
        self._capture = []
        try:
            ok = await self.send("show neighbor json")
            answer = "".join(self._capture)
        finally:
            self._capture = None
        try:
            doc = json.loads(answer) if ok else None
        except ValueError:
            doc = None
        if not isinstance(doc, list):
            return None
        return {str(n["peer"]["address"]) for n in doc
                if isinstance(n, dict) and str(n.get("fsm", "")).lower() == "established"}

    async def stop(self) -> None:
        """Stop ExaBGP (SIGTERM, then SIGKILL by PID) and the relay server; idempotent."""
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._kill()
        if self._adopted is not None:
            adopted, self._adopted = self._adopted, None
            for pid in await release(self.workdir, adopted):
                log.warning("event=stale-speaker-killed workdir=%s pid=%d", self.workdir, pid)
        if self._writer:
            self._writer.close()
            self._writer = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server:
            self._server.close()
            self._server = None
        self._fail_pending()
        with contextlib.suppress(FileNotFoundError):
            self._socket_path().unlink()

    async def events(self) -> AsyncIterator[SpeakerEvent]:
        """Typed events in arrival order; one consumer."""
        while True:
            yield await self._queue.get()

    def next_event_nowait(self) -> SpeakerEvent | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def send(self, command: str) -> bool:
        """Send one API text command; True on ExaBGP's `done`, False on `error`, timeout or no relay."""
        line = command.strip()
        if not line or "\n" in line:
            log.warning("event=exabgp-send-rejected reason=empty-or-multiline command=%r", command[:200])
            return False
        writer = self._writer
        if writer is None or writer.is_closing():
            log.warning("event=exabgp-send-failed reason=no-relay command=%r", line[:200])
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(fut)
        writer.write(line.encode() + b"\n")
        try:
            await writer.drain()
            ok = await asyncio.wait_for(asyncio.shield(fut), ACK_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            log.warning("event=exabgp-send-failed reason=no-ack command=%r", line[:200])
            return False
        if not ok:
            log.warning("event=exabgp-command-error command=%r", line[:200])
        return ok

    # internals -----------------------------------------------------------------------------------------

    def _socket_path(self) -> Path:
        return self.workdir / "api.sock"

    def _argv(self) -> list[str]:
        argv = [*self.exabgp_argv, "--env-file", str(self.workdir / "exabgp.env"), "server",
                str(self.workdir / "exabgp.conf")]
        if self.holdover_s is not None:  # outlives a killed savd by holdover_s at most (fail open)
            argv = guard_argv(self.workdir, self.holdover_s, argv)
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return argv

    async def _spawn(self) -> None:
        self._relay_ready.clear()
        if self.holdover_s is not None:
            claim(self.workdir)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        env.pop("EXABGP_ENVFILE", None)
        # output to a file, not a pipe: ExaBGP in holdover outlives the savd that would read the pipe
        with (self.workdir / "exabgp.log").open("ab") as logf:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv(), stdin=asyncio.subprocess.DEVNULL, stdout=logf,
                stderr=asyncio.subprocess.STDOUT, env=env, cwd=str(self.workdir), start_new_session=True,
            )
        log.info("event=exabgp-started pid=%s netns=%s workdir=%s",
                 self._proc.pid, self.netns or "", self.workdir)

    async def _wait_relay(self) -> None:
        proc = self._proc
        assert proc is not None
        waiter = asyncio.create_task(self._relay_ready.wait())
        exited = asyncio.create_task(proc.wait())
        done, _ = await asyncio.wait({waiter, exited}, timeout=RELAY_CONNECT_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        exited.cancel()
        if waiter in done:
            return
        tail = " | ".join(self._log_tail())
        why = f"exited with {proc.returncode}" if exited in done else "API relay did not connect"
        raise SpeakerError(f"exabgp {why} (workdir {self.workdir}); last output: {tail[-2000:]}")

    def _log_tail(self, lines: int = 40) -> list[str]:
        """The last lines ExaBGP wrote to <workdir>/exabgp.log (for error messages)."""
        try:
            with (self.workdir / "exabgp.log").open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
                return f.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    async def _supervise(self) -> None:
        """Restart ExaBGP with capped exponential backoff whenever it dies."""
        backoff = BACKOFF_FIRST_S
        while not self._stopping:
            pid = self.pid
            started = time.monotonic()
            code = await self._exited()
            if self._stopping:
                return
            log.warning("event=exabgp-died pid=%s exit=%s tail=%r",
                        pid, code, " | ".join(self._log_tail())[-500:])
            self._reset_sessions(f"exabgp exited with {code}")
            if time.monotonic() - started > HEALTHY_AFTER_S:
                backoff = BACKOFF_FIRST_S
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            self._restarts += 1
            try:
                await self._spawn()
                await self._wait_relay()
            except (OSError, SpeakerError) as exc:
                log.error("event=exabgp-restart-failed attempt=%d error=%s", self._restarts, exc)
                await self._kill()
                continue
            self._queue.put_nowait(SpeakerRestarted(self._restarts, code))

    async def _exited(self) -> int | None:
        """Wait until our ExaBGP is gone: its exit code, or None for an adopted one (not our child)."""
        if self._proc is not None:
            return await self._proc.wait()
        if self._adopted is not None:
            await wait_gone(self._adopted)
        self._adopted = None
        return None

    def _reset_sessions(self, reason: str) -> None:
        for peer in sorted(self._established):
            self._queue.put_nowait(SessionDown(peer, self._names.get(peer, ""), reason))
        self._established.clear()
        self._fail_pending()

    def _fail_pending(self) -> None:
        while self._pending:
            fut = self._pending.popleft()
            if not fut.done():
                fut.set_result(False)

    async def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                await asyncio.wait_for(proc.wait(), wait_s)
                return
            except TimeoutError:
                continue

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
        self._fail_pending()
        self._writer = writer
        self._relay_ready.set()
        log.info("event=exabgp-relay-connected")
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:
                    log.warning("event=exabgp-line-too-long limit=%d", MAX_LINE_BYTES)
                    continue
                if not raw:
                    break
                self._on_line(raw.decode(errors="replace"))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
                self._fail_pending()

    def _on_line(self, line: str) -> None:
        text = line.strip()
        if self._capture is not None and text.startswith("["):  # the answer of a `show ... json`
            self._capture.append(text)
            return
        if self._record is not None and text and text not in ("done", "error"):
            with self._record.open("a") as rec:  # record-and-replay (holo's event recorder): raw API lines
                rec.write(text + "\n")
        if text in ("done", "error"):
            if self._pending:
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(text == "done")
            return
        event = parse_api_line(text, self._names)
        if event is None:
            return
        if isinstance(event, MalformedLine):
            log.warning("event=exabgp-malformed-line error=%r line=%r", event.error, event.line[:500])
        elif isinstance(event, SessionUp):
            self._established.add(event.neighbor)
        elif isinstance(event, SessionDown):
            self._established.discard(event.neighbor)
        self._queue.put_nowait(event)


def exabgp_command() -> list[str]:
    """How ExaBGP is started: this Python running it through exabgp_queue (the same interpreter: ExaBGP is
    a dependency)."""
    if importlib.util.find_spec("exabgp") is None:
        raise SpeakerError("the exabgp package is not installed for this Python (install the project venv: "
                           "scripts/setup)")
    return [sys.executable, "-m", "appliance.speakers.exabgp_queue"]


# --- the relay (runs as ExaBGP's API process) ----------------------------------------------------------


def _relay_connect(sock_path: str, deadline: float | None) -> socket.socket | None:
    """Connect to savd's Unix socket, retrying until `deadline` (None: for ever)."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(sock_path)
            return sock
        except OSError:
            sock.close()
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.1)


def _relay_main(sock_path: str, hold: bool = False) -> int:
    """Copy ExaBGP's stdin (JSON, acks) to the Unix socket and the socket (commands) to stdout.

    With `hold` (ExaBGP under a holdover guard), a savd that goes away is waited for: what ExaBGP writes
    meanwhile is dropped (the next savd asks for the session states), and the relay connects to the
    next savd's socket at the same path. The guard ends ExaBGP, and so the relay, after the holdover."""
    import threading

    first = _relay_connect(sock_path, time.monotonic() + RELAY_CONNECT_TIMEOUT_S)
    if first is None:
        return 1
    lock = threading.Lock()
    current: list[socket.socket | None] = [first]

    def to_exabgp() -> None:
        sock: socket.socket | None = first
        while sock is not None:
            with contextlib.suppress(OSError), sock.makefile("rb") as src:  # a killed savd: reset or EOF
                for raw in src:
                    sys.stdout.buffer.write(raw)
                    sys.stdout.buffer.flush()
            if not hold:
                os._exit(0)
            with lock:
                current[0] = None
            sock.close()
            sock = _relay_connect(sock_path, None)
            with lock:
                current[0] = sock

    threading.Thread(target=to_exabgp, daemon=True).start()
    for raw in sys.stdin.buffer:
        with lock:
            sock = current[0]
        if sock is None:
            continue  # savd away: dropped
        try:
            sock.sendall(raw)
        except OSError:
            if not hold:
                break
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "relay" and sys.argv[3:] in ([], ["hold"]):
        sys.exit(_relay_main(sys.argv[2], hold=sys.argv[3:] == ["hold"]))
    print("usage: python -m appliance.speakers.exabgp relay SOCKET [hold]", file=sys.stderr)
    sys.exit(2)
