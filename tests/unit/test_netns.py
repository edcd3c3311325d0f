"""appliance/netns.py: a socket made in another network namespace from savd's own process."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from appliance.config import EnforcerConfig
from appliance.enforcer.poller import ENFORCER_ENDPOINT, PollError, fetch
from appliance.netns import run_in


def _inode(netns: str | None) -> int:
    return run_in(netns, lambda: os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino)


def test_work_runs_in_the_namespace_and_the_caller_stays(scratch_netns: str) -> None:
    here = os.stat("/proc/self/ns/net").st_ino
    assert _inode(None) == here
    assert _inode(scratch_netns) != here
    assert os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino == here


def test_an_error_inside_reaches_the_caller() -> None:
    with pytest.raises(FileNotFoundError):
        run_in("svnt-no-such-namespace", lambda: 1)


class _Counters(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"node": "r9", "samples": [], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_the_poller_reads_an_enforcer_listening_inside_a_namespace(scratch_netns: str) -> None:
    # an HTTP server on 127.0.0.1:9180 in the namespace only
    def serve() -> HTTPServer:
        return HTTPServer(ENFORCER_ENDPOINT, _Counters)

    server = run_in(scratch_netns, serve)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target = EnforcerConfig("r9", netns=scratch_netns)
    try:
        assert fetch(target) == {"node": "r9", "samples": [], "path": "/counters"}
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(PollError, match=f"netns {scratch_netns}"):   # gone: an error naming the namespace
        fetch(target, timeout_s=2)
