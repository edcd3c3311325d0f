"""RPKI freshness: turns each source's last update time into stale / expired alarms and their clearing.

A source (an RTR cache, a relying-party file) is fresh until `stale_after_s` passes without an update,
stale until `expire_after_s`, then expired (the RPKI part drops its data and the rules it supported are
withdrawn: fail open). Only transitions produce notices; a source with no data yet produces none (its
session alarm says why). Pure apart from the time passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

from appliance.monitor.events import RpkiFreshness


class FreshnessWatch:
    def __init__(self, stale_after_s: float, expire_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.expire_after_s = expire_after_s
        self._state: dict[str, str] = {}

    def _classify(self, age_s: float) -> str:
        if age_s >= self.expire_after_s:
            return "expired"
        return "stale" if age_s >= self.stale_after_s else "fresh"

    def stale_sources(self) -> list[str]:
        """Sources stale now (not expired: expired data is withdrawn already)."""
        return sorted(source for source, state in self._state.items() if state == "stale")

    def check(self, last_updates: Mapping[str, float | None], now: float) -> list[RpkiFreshness]:
        notices: list[RpkiFreshness] = []
        for source, last in sorted(last_updates.items()):
            if last is None:
                continue
            age = max(0.0, now - last)
            state = self._classify(age)
            before = self._state.get(source, "fresh")
            self._state[source] = state
            if state != before:
                notices.append(RpkiFreshness(source, age, stale=state != "fresh", expired=state == "expired"))
        for source in sorted(set(self._state) - set(last_updates)):
            if self._state.pop(source) != "fresh":  # source removed from the configuration: clear its alarm
                notices.append(RpkiFreshness(source, 0.0, stale=False))
        return notices
