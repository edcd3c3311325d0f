"""FRR 8.4.4 zebra under a FlowSpec burst, with and without the table-range workaround.

For each trial: build the enforcer testbed (FRR zebra + bgpd in a namespace, ExaBGP pusher over eBGP),
announce one unicast route, push N FlowSpec discard rules in one burst, wait, then record whether zebra
is still the same live process, whether the unicast route is still in the kernel, and how many PBR
iptable objects zebra holds. Prints one line per trial and a summary per mode.

    .venv/bin/python bench/enforcer_zebra_burst.py --trials 5 --rules 100 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.testbed

from support.testbed import Testbed, TestbedError, wait_for  # tests/ is on sys.path


def trial(fix: bool, rules: int, settle_s: float) -> dict[str, object]:
    with Testbed(table_range_fix=fix, enforcer=False) as tb:
        zebra = tb.frr_pid("zebra")
        tb.push(["announce route 198.18.150.0/24 next-hop self"])
        wait_for(
            "unicast route",
            lambda: "198.18.150.0/24" in tb.exec("r", ["ip", "route", "show", "198.18.150.0/24"]).stdout,
            20,
        )
        started = time.monotonic()
        tb.push(
            [
                f"announce flow route {{ match {{ source 198.19.{i // 256}.{i % 256}/32; }} "
                "then { discard; } }"
                for i in range(rules)
            ]
        )
        pushed_s = time.monotonic() - started
        time.sleep(settle_s)
        alive = tb.frr_pid("zebra") == zebra and zebra is not None
        route = "198.18.150.0/24" in tb.exec("r", ["ip", "route", "show", "198.18.150.0/24"]).stdout
        try:
            pbr = tb.vtysh("show pbr iptable", timeout=5).count("IPtable") if alive else -1
        except Exception:  # a spinning zebra hangs plain vtysh
            pbr = -2
        new_route = False
        if alive:  # routing alive, not just left in the kernel: a new route still gets installed
            tb.push(["announce route 198.18.151.0/24 next-hop self"])
            time.sleep(2)
            new_route = "198.18.151.0/24" in tb.exec("r", ["ip", "route", "show", "198.18.151.0/24"]).stdout
        return {
            "fix": fix,
            "rules": rules,
            "zebra_alive": alive,
            "old_route_in_kernel": route,
            "new_route_installed": new_route,
            "pbr_iptables": pbr,
            "push_s": round(pushed_s, 2),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rules", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--settle-s", type=float, default=8.0)
    parser.add_argument("--modes", default="nofix,fix")
    args = parser.parse_args()
    summary: dict[tuple[bool, int], list[bool]] = {}
    for mode in args.modes.split(","):
        fix = mode == "fix"
        for n in args.rules:
            for i in range(args.trials):
                try:
                    row = trial(fix, n, args.settle_s)
                except TestbedError as exc:
                    row = {"fix": fix, "rules": n, "error": str(exc)[:200]}
                print(f"trial {i + 1}: {row}", flush=True)
                summary.setdefault((fix, n), []).append(bool(row.get("zebra_alive")))
    for (fix, n), alive in summary.items():
        mode = "ip table range 100000 150000" if fix else "stock zebra.conf"
        print(f"{mode:30} rules={n:5} zebra survived {sum(alive)}/{len(alive)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
