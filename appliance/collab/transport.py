"""HTTPS with mutual TLS between two savd instances: the server, the client, the peer's identity.

Hand-written on asyncio streams rather than a second FastAPI/uvicorn app: the handler must know which
certificate the peer presented, and uvicorn's ASGI scope does not expose the peer certificate. So the
server accepts TCP, performs the TLS handshake itself (`StreamWriter.start_tls`, which also lets it log
every refused handshake as `event=collab-refused`), names the peer from the verified certificate (its
subject CN or a DNS SAN equal to a configured peer name) and parses four POSTs of HTTP/1.1, one per
connection. A client without a certificate, with one from another CA, or with an unknown name gets no
answer (handshake refused) or a 403.

    POST /collab/v1/agreements                  AgreementRequest -> {"ok", "agreement", "proposal"}
    POST /collab/v1/agreements/{ca_id}/renew    {"expires_at"}   -> {"ok", "agreement"}
    POST /collab/v1/agreements/{ca_id}/end      {}               -> {"ok", "agreement"}
    POST /collab/v1/sav-info                    SavInfo          -> {"ok", "seq"}

Errors answer {"error": "<CODE>", "message": "..."} with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import secrets
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from appliance.collab.agreement import Accepted, check_response
from appliance.collab.model import (
    Agreement,
    AgreementRequest,
    CollabError,
    CollabRefused,
    Proposal,
    Refusal,
    SavInfo,
    agreement_from_json,
    agreement_to_json,
    error_from_json,
    error_to_json,
    proposal_from_json,
    proposal_to_json,
    request_from_json,
    request_to_json,
    sav_info_from_json,
    sav_info_to_json,
)
from appliance.errors import ExternalError, PeerDataError

log = logging.getLogger(__name__)

__all__ = ["CollabClient", "CollabServer", "CollabUnavailable", "Endpoint", "client_context",
           "identify", "server_context"]

MAX_HEAD = 16 * 1024
MAX_BODY = 8 * 1024 * 1024  # 100k prefixes of JSON
TIMEOUT_S = 10.0
_RENEW_END = re.compile(r"/collab/v1/agreements/([^/]+)/(renew|end)")
STATUS = {CollabError.MALFORMED: 400, CollabError.FORGED: 403, CollabError.NO_AGREEMENT: 404,
          CollabError.ERROR_UNACCEPTABLE_CA_ID: 409, CollabError.REPLAYED: 409,
          CollabError.AGREEMENT_EXPIRED: 410}  # the other ERROR_UNACCEPTABLE_* are 422
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 410: "Gone", 413: "Payload Too Large", 422: "Unprocessable Content",
            500: "Internal Server Error"}


class CollabUnavailable(ExternalError):
    """The peer could not be reached or answered something that is not HTTP/JSON."""


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS 1.2+, our certificate, and a client certificate from `ca` required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=str(ca))
    return ctx


def client_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS 1.2+, our certificate, the server verified against `ca` and its expected name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=str(ca))
    return ctx


def cert_names(peercert: Mapping[str, Any]) -> tuple[str, ...]:
    """The subject CNs and DNS SANs of a verified certificate (ssl's getpeercert() dict)."""
    cns = [v for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"]
    sans = [v for k, v in peercert.get("subjectAltName", ()) if k == "DNS"]
    return tuple(dict.fromkeys([*cns, *sans]))


def identify(peercert: Mapping[str, Any] | None, known: Collection[str]) -> str | None:
    """The configured peer name the certificate carries, or None."""
    if not peercert:
        return None
    return next((n for n in cert_names(peercert) if n in known), None)


class Endpoint(Protocol):
    """What the server calls once the peer is authenticated and the body parsed (the service)."""

    def on_propose(self, peer: str, request: AgreementRequest) -> Accepted | Refusal: ...

    def on_renew(self, peer: str, ca_id: str, expires_at: float) -> Agreement | Refusal: ...

    def on_end(self, peer: str, ca_id: str) -> Agreement | Refusal: ...

    def on_sav_info(self, peer: str, info: SavInfo) -> Refusal | None: ...


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    body: bytes


class _HttpError(PeerDataError):
    """A request the server refuses before any handler (not HTTP, too large, unknown path): its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _read_request(reader: asyncio.StreamReader) -> _Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _HttpError(413, "request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _HttpError(400, "not an HTTP/1.x request line")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise _HttpError(400, "Content-Length must be a number")
    length = int(length_text)
    if length > MAX_BODY:
        raise _HttpError(413, f"body larger than {MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    return _Request(parts[0], parts[1].split("?", 1)[0], body)


def _write_response(writer: asyncio.StreamWriter, status: int, body: Mapping[str, Any]) -> None:
    data = json.dumps(body, sort_keys=True).encode() + b"\n"
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    writer.write(head + data)


def _refused(r: Refusal) -> tuple[int, dict[str, Any]]:
    return STATUS.get(r.code, 422), error_to_json(r)


class CollabServer:
    """The listener: TLS handshake, peer identity, routing to an `Endpoint`."""

    def __init__(self, context: ssl.SSLContext, known: Collection[str], endpoint: Endpoint) -> None:
        self._context = context
        self._known = frozenset(known)
        self._endpoint = endpoint
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._on_client, host, port, limit=MAX_HEAD)
        log.info("event=collab-listening host=%s port=%d", host, self.port)

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")
        where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        try:
            await writer.start_tls(self._context, ssl_handshake_timeout=TIMEOUT_S)
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            log.warning("event=collab-refused peer=%s reason=%r", where, f"tls: {exc}"[:300])
            writer.close()
            return
        try:
            await self._serve(reader, writer, where)
        except Exception as exc:  # never let one connection take the listener down
            log.warning("event=collab-connection-error peer=%s error=%r", where, str(exc)[:300])
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        peercert = writer.get_extra_info("peercert")
        peer = identify(peercert, self._known)
        if peer is None:
            names = ",".join(cert_names(peercert or {})) or "-"
            log.warning("event=collab-refused peer=%s names=%s reason=unknown-name", where, names)
            _write_response(writer, 403, {"error": CollabError.ERROR_UNACCEPTABLE_INITIATOR.value,
                                          "message": "this certificate names no configured peer"})
            await writer.drain()
            return
        try:
            request = await asyncio.wait_for(_read_request(reader), TIMEOUT_S)
            status, body = self._route(peer, request)
        except _HttpError as exc:
            status, body = exc.status, {"error": CollabError.MALFORMED.value, "message": str(exc)}
        except (TimeoutError, asyncio.IncompleteReadError):
            log.info("event=collab-request-incomplete peer=%s", peer)
            return
        if status != 200:
            log.info("event=collab-request-refused peer=%s status=%d code=%s message=%r", peer, status,
                     body.get("error"), str(body.get("message", ""))[:200])
        _write_response(writer, status, body)
        await writer.drain()

    def _route(self, peer: str, request: _Request) -> tuple[int, dict[str, Any]]:
        if request.method != "POST":
            return 405, {"error": CollabError.MALFORMED.value, "message": "only POST"}
        try:
            data = json.loads(request.body or b"{}")
            return self._dispatch(peer, request.path, data)
        except json.JSONDecodeError as exc:
            return _refused(Refusal(CollabError.MALFORMED, f"body: not JSON ({exc})"))
        except CollabRefused as exc:
            return _refused(exc.refusal)

    def _dispatch(self, peer: str, path: str, data: Any) -> tuple[int, dict[str, Any]]:
        if path == "/collab/v1/agreements":
            accepted = self._endpoint.on_propose(peer, request_from_json(data))
            if isinstance(accepted, Refusal):
                return _refused(accepted)
            return 200, {"ok": True, "agreement": agreement_to_json(accepted.agreement),
                         "proposal": proposal_to_json(accepted.proposal)}
        if path == "/collab/v1/sav-info":
            info = sav_info_from_json(data)
            refusal = self._endpoint.on_sav_info(peer, info)
            return _refused(refusal) if refusal else (200, {"ok": True, "seq": info.seq})
        m = _RENEW_END.fullmatch(path)
        if m is None:
            return 404, {"error": CollabError.MALFORMED.value, "message": f"no such resource {path!r}"}
        ca_id, action = unquote(m.group(1)), m.group(2)
        if action == "end":
            result = self._endpoint.on_end(peer, ca_id)
        else:
            expires_at = data.get("expires_at") if isinstance(data, dict) else None
            if not isinstance(expires_at, int | float) or isinstance(expires_at, bool) \
                    or not math.isfinite(expires_at):
                raise CollabRefused(CollabError.MALFORMED, "expires_at: must be a finite number")
            result = self._endpoint.on_renew(peer, ca_id, float(expires_at))
        if isinstance(result, Refusal):
            return _refused(result)
        return 200, {"ok": True, "agreement": agreement_to_json(result)}


class CollabClient:
    """Requests to one peer over mutual TLS; a refusal raises CollabRefused, a transport failure
    CollabUnavailable. One connection per request: messages are minutes apart."""

    def __init__(self, name: str, peer: str, url: str, context: ssl.SSLContext,
                 timeout_s: float = TIMEOUT_S, clock: Callable[[], float] = time.time) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.port is None:
            raise ValueError(f"url must be https://host:port, got {url!r}")
        self.name, self.peer = name, peer
        self._host, self._port = parts.hostname, parts.port
        self._context = context
        self._timeout_s = timeout_s
        self._clock = clock

    async def negotiate(self, proposals: tuple[Proposal, ...], ca_id: str = "") -> Accepted:
        """Send the proposals; the provider's agreement and chosen proposal, checked against them."""
        request = AgreementRequest(ca_id or f"{self.name}-{secrets.token_hex(8)}", self.name, proposals)
        data = await self._post("/collab/v1/agreements", request_to_json(request))
        if not isinstance(data, dict):
            raise CollabRefused(CollabError.MALFORMED, "response: must be an object")
        accepted = Accepted(agreement_from_json(data.get("agreement"), "agreement."),
                            proposal_from_json(data.get("proposal"), "proposal."))
        refusal = check_response(request, accepted, self.peer, self._clock())
        if refusal is not None:
            raise CollabRefused(refusal.code, refusal.message)
        return accepted

    async def propose(self, proposals: tuple[Proposal, ...]) -> Agreement:
        return (await self.negotiate(proposals)).agreement

    async def renew(self, ca_id: str, expires_at: float) -> Agreement:
        data = await self._post(f"/collab/v1/agreements/{quote(ca_id, safe='')}/renew",
                                {"expires_at": expires_at})
        return agreement_from_json(data.get("agreement") if isinstance(data, dict) else None, "agreement.")

    async def end(self, ca_id: str) -> Agreement:
        data = await self._post(f"/collab/v1/agreements/{quote(ca_id, safe='')}/end", {})
        return agreement_from_json(data.get("agreement") if isinstance(data, dict) else None, "agreement.")

    async def send(self, info: SavInfo) -> None:
        await self._post("/collab/v1/sav-info", sav_info_to_json(info))

    async def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        try:
            return await asyncio.wait_for(self._exchange(path, body), self._timeout_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise CollabUnavailable(f"{self.peer}: {type(exc).__name__}: {exc}") from exc

    async def _exchange(self, path: str, body: Mapping[str, Any]) -> Any:
        reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._context,
                                                       server_hostname=self.peer, limit=MAX_HEAD)
        try:
            data = json.dumps(body).encode()
            writer.write((f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                          f"Connection: close\r\n\r\n").encode() + data)
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            payload = await reader.read(MAX_BODY)
        finally:
            writer.close()
            with contextlib.suppress(Exception):  # the answer is in: a slow TLS close must not undo it
                await asyncio.wait_for(writer.wait_closed(), 1)
        return _answer(self.peer, head, payload)


def _answer(peer: str, head: str, payload: bytes) -> Any:
    """The JSON of a 200, or the peer's refusal raised."""
    parts = head.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise CollabUnavailable(f"{peer}: not an HTTP response")
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise CollabUnavailable(f"{peer}: status {parts[1]} without JSON") from exc
    if parts[1] == "200":
        return data
    refusal = error_from_json(data)
    raise CollabRefused(refusal.code, refusal.message)

