"""Sockets in another network namespace, made from savd's own process.

Python 3.11 has no os.setns, so `run_in` lets a short-lived thread join /var/run/netns/<name> with libc
setns(CLONE_NEWNET), which changes only that thread, make a socket there and exit; the socket stays bound
to that namespace and the caller uses it from any thread. The BMP station listens inside a router's
namespace this way, the enforcer sends its netlink batches into its router's namespace, and the enforcer
poller reaches an enforcer's HTTP endpoint on 127.0.0.1 inside the router's namespace (a process per poll
would cost ~0.4 s of CPU in imports alone, every 5 s per router).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"

T = TypeVar("T")


def run_in(netns: str | None, work: Callable[[], T], name: str = "netns") -> T:
    """`work()` run inside the network namespace `netns` (a name under /var/run/netns), or here when
    None or empty; its exception is raised in the caller's thread."""
    if not netns:
        return work()
    result: list[tuple[bool, object]] = []

    def enter_and_work() -> None:
        try:
            enter(netns)
            result.append((True, work()))
        except BaseException as exc:  # handed to the caller's thread
            result.append((False, exc))

    thread = threading.Thread(target=enter_and_work, name=f"{name}-{netns}", daemon=True)
    thread.start()
    thread.join()
    ok, value = result[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]


def enter(netns: str) -> None:
    """Move the calling thread into `netns` (only from a thread that ends afterwards: it never returns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")
    finally:
        os.close(fd)
