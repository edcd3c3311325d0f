"""ExaBGP, run with an outgoing queue that keeps one change per NLRI: the latest.

ExaBGP 5.0.15 queues each announce and withdraw in a bucket per attribute set and, when it sends, walks
the buckets in the order they were first used in that round, sending every change each one holds. An
NLRI changed twice in one round goes out in bucket order, not command order: announce Y (attributes A),
withdraw X, announce X (attributes A) puts X's announce in A's bucket, created before the withdraw's,
so the router receives the announce and then the withdraw. The router loses the rule while ExaBGP's
adj-rib-out believes it sent it, and suppresses every later identical announce: the rule stays missing
(seen in the lab: one of 22 rules never reached an enforcer; tests/integration/flowspec/
test_exabgp_queue_order.py reproduces it against FRR). savd pushes rule versions back to back, so a
rule withdrawn by one version and restored by the next is ordinary.

BGP replaces a route implicitly, so only an NLRI's latest change needs to reach the wire. This launcher
drops the NLRI's earlier change from its bucket before ExaBGP queues the new one, then runs ExaBGP's
own main unchanged. Written here because no ExaBGP release has the fix; remove it once one does.

    python -m appliance.speakers.exabgp_queue <exabgp arguments>
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["keep_latest_change", "main"]

_MARK = "_savd_latest_change_only"


def keep_latest_change(rib_class: Any) -> None:
    """Patch `rib_class._update_rib` (ExaBGP's OutgoingRIB) so a new change of an NLRI replaces the one
    queued earlier in the round instead of joining it in another bucket. Idempotent."""
    queue_change = rib_class._update_rib
    if getattr(queue_change, _MARK, False):
        return

    def _update_rib(self: Any, change: Any) -> Any:
        index = change.index()
        earlier = self._new_nlri.get(index)
        if earlier is not None:
            by_family = self._new_attr_af_nlri.get(earlier.attributes.index(), {})
            bucket = by_family.get(earlier.nlri.family().afi_safi())
            if bucket is not None:
                bucket.pop(index, None)
        return queue_change(self, change)

    setattr(_update_rib, _MARK, True)
    rib_class._update_rib = _update_rib


def main(argv: list[str]) -> int:
    from exabgp.application.main import main as exabgp_main
    from exabgp.rib.outgoing import OutgoingRIB

    keep_latest_change(OutgoingRIB)
    sys.argv = ["exabgp", *argv]
    return int(exabgp_main() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
