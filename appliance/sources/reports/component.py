"""The report sources of `savd run`: the [reports] file and the `savd report` store, watched and loaded
into the state store as prefix reports and router roles.

Each file is one store source ("file:<path>", "report-store:<path>"): a reload replaces what it said, so
a prefix or role deleted from the file goes. Any failure to load (unreadable, not YAML/JSON, a bad field,
anything else) is an alarm naming the file and the problem; the last good facts stay and the watcher
keeps watching, so fixing the file clears the alarm. At start-up too: a file that does not load is a
one-line error and an alarm, and savd serves on with what the journal holds from the file's last good
load (a restart after a bad edit must not take SAV away from every router). `savd config check` loads the
file, so the mistake is caught before a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from appliance.context import DaemonContext
from appliance.model import Event, PrefixReport, RouterRole, Severity
from appliance.periodic import Periodic
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.store import FILE_NAME, ReportStore
from appliance.sources.reports.yamlfile import load_report_file
from appliance.state.changes import ReplaceSource

log = logging.getLogger("savd.reports")

Loader = Callable[[Path], tuple[list[PrefixReport], list[RouterRole]]]
KINDS = ("report", "role")


def load_store_file(path: Path) -> tuple[list[PrefixReport], list[RouterRole]]:
    """The `savd report` store (<data_dir>/reports.json) as report and role facts."""
    store = ReportStore.load(path.parent)
    return list(store.prefixes), list(store.routers)


class WatchedReports:
    """One report file polled for changes (mtime and size) and loaded whole into the store."""

    def __init__(self, path: Path, loader: Loader, source: str, *, interval_s: float = 2.0,
                 required: bool = True) -> None:
        self.path, self.loader, self.source = path, loader, source
        self.interval_s, self.required = interval_s, required
        self.name = f"reports:{path.name}"
        self._seen: tuple[float, int] | None = None
        self._task: Periodic | None = None
        self.error: str | None = None  # why the last load failed; None once it loads

    def read(self) -> ReplaceSource:
        """The whole file as the change that states it (raises ReportError, OSError, ...)."""
        prefixes, roles = self.loader(self.path)
        return ReplaceSource(self.source, KINDS, (*prefixes, *roles))

    def _alarm(self, ctx: DaemonContext, message: str) -> None:
        self.error = message
        ctx.monitor.publish(Event(0.0, self.source, "reports.file-error", Severity.ERROR, message,
                                  {"path": str(self.path)}, True))

    def load(self, ctx: DaemonContext) -> bool:
        """Load if changed; True when loaded. A failure is an alarm; the last good facts stay."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self.required:
                self._alarm(ctx, f"{self.path}: no such file")
            elif self._seen is not None:  # an optional store file deleted: it says nothing any more
                self._seen = None
                ctx.store.apply(ReplaceSource(self.source, KINDS, ()))
            return False
        except OSError as exc:
            self._alarm(ctx, f"{self.path}: {exc.strerror}")
            return False
        seen = (st.st_mtime, st.st_size)
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            change = self.read()
        except ReportError as exc:
            self._alarm(ctx, str(exc))
            return False
        except Exception as exc:  # whatever the file holds, the watcher lives and says why
            log.exception("event=reports-file-failed path=%s", self.path)
            self._alarm(ctx, f"{self.path}: cannot load: {type(exc).__name__}: {exc}")
            return False
        self.error = None
        ctx.monitor.clear(f"reports.file-error/path={self.path}", self.source, f"{self.path} loads again")
        applied = ctx.store.apply(change)
        log.info("event=reports-file-loaded path=%s facts=%d changed=%s", self.path, len(change.facts),
                 applied.changed)
        return True

    async def start(self, ctx: DaemonContext) -> None:
        """Load once (a failure: a one-line error and the alarm, the journal's facts kept), then watch."""
        self.load(ctx)
        if self.error is not None:
            log.error("event=reports-file-not-loaded path=%s error=%r kept=journal", self.path,
                      "; ".join(self.error.splitlines()))

        async def round_() -> None:
            try:
                self.load(ctx)
            except Exception:  # the store refused the change (e.g. disk full): try again next round
                log.exception("event=reports-load-failed path=%s", self.path)
                self._seen = None

        self._task = Periodic(self.name, self.interval_s, round_)
        self._task.start()

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()


def report_file(path: Path, interval_s: float = 2.0) -> WatchedReports:
    """The [reports] file (YAML or TOML)."""
    return WatchedReports(path, load_report_file, f"file:{path}", interval_s=interval_s)


def report_store(data_dir: Path, interval_s: float = 2.0) -> WatchedReports:
    """`savd report add|del|role --config FILE` writes <data_dir>/reports.json; savd run reads it here."""
    path = data_dir / FILE_NAME
    return WatchedReports(path, load_store_file, f"report-store:{path}", interval_s=interval_s,
                          required=False)


def components(ctx: DaemonContext) -> list[WatchedReports]:
    config = ctx.config
    poll = config.timers.reports_poll_s
    out = [report_store(config.appliance.data_dir, poll)]
    if config.reports.file:
        out.insert(0, report_file(Path(config.reports.file), poll))
    return out


__all__ = ["WatchedReports", "components", "load_store_file", "report_file", "report_store"]
