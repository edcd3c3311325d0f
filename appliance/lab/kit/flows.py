"""Traffic classes sent through a running lab and counted where they arrive, with a verdict table:
`savd lab traffic FILE.yaml`, the demo and the lab tests.

A `Flow` is `count` packets from node `sender` with source address `source` (spoofed or not) to `dst` on
node `receiver`; the receiver's nftables counter for that source (appliance.lab.traffic) says how many
arrived. Legitimate flows must all arrive, spoofed ones none (unless `passes`: fail open expected).

Traffic file (YAML):

    count: 20                      # packets per class (default 20)
    classes:
      - label: h1 own prefix       # free text
        from: h1                   # sending node
        source: 198.18.1.10        # source address (IPv6: added to the sender's eth1 as a /128)
        to: h2                     # receiving node
        dst: 198.18.3.10           # destination address (on `to`)
        kind: legit                # legit | spoofed | spoofed-passes
        count: 50                  # optional, this class only

Owns sending and counting; must not start savd, enforcers or the lab.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.lab.errors import LabError
from appliance.lab.runner import Lab
from appliance.lab.traffic import rx_counter

KINDS = ("legit", "spoofed", "spoofed-passes")


class TrafficFileError(LabError):
    """The traffic file is unreadable or a class is malformed; `field` names it (classes[2].source)."""

    def __init__(self, message: str, *, path: Path, field: str = "") -> None:
        super().__init__(f"{path}: {field + ': ' if field else ''}{message}")
        self.path = path
        self.field = field


@dataclass(frozen=True, slots=True)
class Flow:
    """`count` packets from node `sender` with source `source` to `dst` on node `receiver`. `passes`: a
    spoofed flow the configuration is expected to let through (fail open: nothing proves it spoofed)."""

    label: str
    sender: str
    source: str
    receiver: str
    dst: str
    count: int
    spoofed: bool
    passes: bool = False

    @property
    def expected(self) -> int:
        """Packets the receiver should get."""
        return self.count if self.passes or not self.spoofed else 0


def send_flow(lab: Lab, flow: Flow, count: int | None = None, interval: str = "u2000") -> int:
    """Send the flow's packets (hping3 UDP for IPv4, ping -I for IPv6) and return how many reached the
    receiver (nft counter per source in the receiver's namespace, appliance.lab.traffic)."""
    n = count if count is not None else flow.count
    rx = lab.netns(flow.receiver)
    before = rx_counter(rx, flow.source)
    if ":" in flow.source:
        have = lab.exec(flow.sender, ["ip", "-6", "addr", "show"]).stdout
        if flow.source + "/" not in have:
            lab.exec(flow.sender, ["ip", "-6", "addr", "add", f"{flow.source}/128", "dev", "eth1", "nodad",
                                   "preferred_lft", "0"], check=True)
        secs = "0.01" if interval == "u2000" else str(int(interval.lstrip("u")) / 1e6)
        lab.exec(flow.sender, ["ping", "-6", "-q", "-n", "-I", flow.source, "-c", str(n), "-i", secs,
                               "-W", "1", flow.dst], timeout_s=120)
    else:
        lab.exec(flow.sender, ["hping3", "--udp", "-p", "5000", "-a", flow.source, "-c", str(n), "-i",
                               interval, "-q", flow.dst], timeout_s=120)
    time.sleep(0.3)
    return rx_counter(rx, flow.source) - before


def send_flows(lab: Lab, flows: Sequence[Flow], workers: int = 8) -> list[int]:
    """`send_flow` for many flows at once, in rounds of at most `workers` threads in which no two flows
    share a receiver and source (the receiver's counter key) or a sender and source; the packets each
    flow delivered, in order."""
    for f in flows:  # create the receivers' counters before the threads race to
        rx_counter(lab.netns(f.receiver), f.source)
    results = [0] * len(flows)
    pending = list(range(len(flows)))
    while pending:
        round_: list[int] = []
        rest: list[int] = []
        keys: set[tuple[str, str, str]] = set()
        for i in pending:
            f = flows[i]
            mine = {("rx", f.receiver, f.source), ("tx", f.sender, f.source)}
            if len(round_) < workers and not mine & keys:
                round_.append(i)
                keys |= mine
            else:
                rest.append(i)

        def one(i: int) -> None:
            results[i] = send_flow(lab, flows[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in round_]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        pending = rest
    return results


def report(results: Sequence[tuple[Flow, int]]) -> tuple[list[str], bool]:
    lines = [f"  {'class':<58} {'src':<18} {'sent':>4} {'delivered':>9} {'dropped':>7}"]
    ok = True
    for flow, got in results:
        verdict = "ok" if got == flow.expected else "WRONG"
        ok = ok and verdict == "ok"
        kind = "legit   " if not flow.spoofed else "SPOOFED " if not flow.passes else "spoofed~"
        lines.append(f"  {kind}{flow.label:<50} {flow.source:<18} {flow.count:>4} {got:>9} "
                     f"{flow.count - got:>7}  {verdict}")
    spoofed = [(f, g) for f, g in results if f.spoofed and not f.passes]
    legit = [(f, g) for f, g in results if not f.spoofed]
    passing = [(f, g) for f, g in results if f.spoofed and f.passes]
    s_sent, s_got = sum(f.count for f, _ in spoofed), sum(g for _, g in spoofed)
    l_sent, l_got = sum(f.count for f, _ in legit), sum(g for _, g in legit)
    share = 100 * (s_sent - s_got) / max(s_sent, 1)
    lines.append(f"  spoofed: {s_sent - s_got}/{s_sent} dropped ({share:.0f}%);"
                 f" legitimate: {l_got}/{l_sent} delivered, {l_sent - l_got} dropped")
    if passing:
        lines.append(f"  spoofed~ (expected to pass, fail open): {sum(g for _, g in passing)}/"
                     f"{sum(f.count for f, _ in passing)} delivered")
    return lines, ok


def load_flows(path: Path, lab: Lab | None = None) -> tuple[Flow, ...]:
    """The classes of a traffic file; with `lab`, senders and receivers must be its nodes."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise TrafficFileError(f"cannot read: {exc}", path=path) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), list) or not doc["classes"]:
        raise TrafficFileError("needs a non-empty `classes:` list", path=path)
    default = _count(doc.get("count", 20), path, "count")
    flows = []
    for i, raw in enumerate(doc["classes"]):
        where = f"classes[{i}]"
        if not isinstance(raw, dict):
            raise TrafficFileError("a class is a mapping", path=path, field=where)
        unknown = set(raw) - {"label", "from", "source", "to", "dst", "kind", "count"}
        if unknown:
            raise TrafficFileError(f"unknown keys {sorted(unknown)}", path=path, field=where)
        for key in ("from", "source", "to", "dst", "kind"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise TrafficFileError("missing or not a string", path=path, field=f"{where}.{key}")
        if raw["kind"] not in KINDS:
            raise TrafficFileError(f"{raw['kind']!r} is not one of {', '.join(KINDS)}", path=path,
                                   field=f"{where}.kind")
        try:
            src, dst = ipaddress.ip_address(raw["source"]), ipaddress.ip_address(raw["dst"])
        except ValueError as exc:
            raise TrafficFileError(str(exc), path=path, field=where) from exc
        if src.version != dst.version:
            raise TrafficFileError("source and dst are of different IP versions", path=path, field=where)
        if lab is not None:
            for key in ("from", "to"):
                try:
                    lab.node(raw[key])
                except LabError as exc:
                    raise TrafficFileError(str(exc), path=path, field=f"{where}.{key}") from exc
        flows.append(Flow(label=str(raw.get("label") or f"{raw['from']} {raw['source']} -> {raw['to']}"),
                          sender=raw["from"], source=str(src), receiver=raw["to"], dst=str(dst),
                          count=_count(raw.get("count", default), path, f"{where}.count"),
                          spoofed=raw["kind"] != "legit", passes=raw["kind"] == "spoofed-passes"))
    return tuple(flows)


def _count(value: Any, path: Path, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
        raise TrafficFileError(f"{value!r} is not a packet count 1..100000", path=path, field=field)
    return value
