"""`savd report add|del|list|role`: operator/IPAM reports persisted in the data directory.

`list` shows the merged view (store + optional YAML file), with overrides and conflicts, so an import
can be checked before the appliance uses it: the files go through the same loaders and the same store
as in `savd run` (sources/reports/component.py), resolved by the same function (sources/assemble.py).
With `--config`, the data directory is the one `savd run` watches.
Exit codes: 0 ok, 1 conflicts found (list --check), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.config import ConfigError
from appliance.model import Capability, PrefixReport, Role, canonical_prefix
from appliance.sources.assemble import resolved
from appliance.sources.reports.component import report_file, report_store
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.merge import Resolved
from appliance.sources.reports.records import FLAG_NAMES, RouterReport, flag_names, flags_from_names
from appliance.sources.reports.store import ReportStore, default_data_dir
from appliance.state import StateStore
from appliance.state.changes import Change


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="source-prefix reports: add, delete, list; router roles")
    sub = p.add_subparsers(dest="report_command", metavar="ACTION", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--config",
            type=Path,
            default=None,
            help="savd's TOML configuration: use its data_dir (and, for list, its [reports] file), so a "
            "running `savd run` with that configuration picks the change up within seconds",
        )
        sp.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="where reports.json lives (default: the --config data_dir, else /var/lib/savd, or ./var "
            "when not root)",
        )

    add = sub.add_parser("add", help="add or replace the report for (router, interface, prefix)")
    common(add)
    add.add_argument("--router", required=True)
    add.add_argument("--interface", default="", help="interface name (empty: router-level)")
    add.add_argument("--prefix", required=True, action="append", help="repeat for several prefixes")
    add.add_argument("--subnet", default="", help="subnet ID")
    add.add_argument("--flag", action="append", default=[], choices=FLAG_NAMES)
    add.set_defaults(func=_add)

    rm = sub.add_parser("del", help="delete the report for (router, interface, prefix)")
    common(rm)
    rm.add_argument("--router", required=True)
    rm.add_argument("--interface", default="")
    rm.add_argument("--prefix", required=True, action="append")
    rm.set_defaults(func=_del)

    role = sub.add_parser("role", help="set a router's role and/or SAVNET capability")
    common(role)
    role.add_argument("--router", required=True)
    role.add_argument("--role", choices=[r.value for r in Role])
    role.add_argument("--capability", choices=[c.value for c in Capability])
    role.set_defaults(func=_role)

    ls = sub.add_parser("list", help="the merged reports (store + --file), overrides and conflicts")
    common(ls)
    ls.add_argument("--file", type=Path, help="declarative YAML report file to merge in")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--check", action="store_true", help="exit 1 when there are conflicts")
    ls.set_defaults(func=_list)


def _config_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(data dir, reports file) from --data-dir/--file, else --config, else the defaults."""
    data_dir, file = args.data_dir, getattr(args, "file", None)
    if args.config is not None:
        from appliance.config import load_config

        config = load_config(args.config)
        data_dir = data_dir or config.appliance.data_dir
        file = file or config.reports.file
    return data_dir or default_data_dir(), file


def _store(args: argparse.Namespace) -> ReportStore:
    return ReportStore(_config_paths(args)[0])


def _fail(exc: Exception) -> int:
    print(f"savd report: {exc}", file=sys.stderr)
    return 2


def _add(args: argparse.Namespace) -> int:
    try:
        prefixes = [canonical_prefix(p) for p in args.prefix]
        flags = flags_from_names(args.flag)
        with _store(args).locked() as store:
            changed = sum(
                store.add(PrefixReport(args.router, args.interface, p, args.subnet, flags)) for p in prefixes
            )
    except (ValueError, ReportError, OSError) as exc:
        return _fail(exc)
    print(f"{changed} report(s) added or changed in {store.path}")
    return 0


def _del(args: argparse.Namespace) -> int:
    try:
        with _store(args).locked() as store:
            gone = sum(store.delete(args.router, args.interface, p) for p in args.prefix)
    except (ValueError, ReportError, OSError) as exc:
        return _fail(exc)
    print(f"{gone} report(s) deleted from {store.path}")
    return 0 if gone else 1


def _role(args: argparse.Namespace) -> int:
    if not args.role and not args.capability:
        return _fail(ValueError("give --role and/or --capability"))
    try:
        with _store(args).locked() as store:
            store.set_router(
                RouterReport(
                    args.router,
                    Role(args.role) if args.role else None,
                    Capability(args.capability) if args.capability else None,
                )
            )
    except (ReportError, OSError) as exc:
        return _fail(exc)
    print(f"router {args.router} updated in {store.path}")
    return 0


def load_sources(data_dir: Path | None, file: Path | None) -> list[Change]:
    """The store changes `savd run`'s report sources would make for these files (same loaders, same
    source names); raises ReportError naming the bad file/field."""
    sources = [report_store(data_dir or default_data_dir())]
    if file:
        sources.append(report_file(file))
    return [s.read() for s in sources]


def resolved_to_dict(res: Resolved) -> dict[str, Any]:
    return {
        "prefixes": [
            {
                "router": r.router,
                "interface": r.interface,
                "prefix": r.prefix,
                "subnet": r.subnet,
                "flags": flag_names(r.flags),
                "source": r.source,
            }
            for r in res.prefixes
        ],
        "routers": [
            {
                "router": r.router,
                "role": r.role.value if r.role else None,
                "capability": r.capability.value if r.capability else None,
                "source": r.source,
            }
            for r in sorted(res.routers.values(), key=lambda r: r.router)
        ],
        "events": [e.to_dict() for e in res.events],
    }


def print_resolved(res: Resolved) -> None:
    print(f"reports ({len(res.prefixes)})")
    for r in res.prefixes:
        flags = f" [{','.join(flag_names(r.flags))}]" if flag_names(r.flags) else ""
        where = f"{r.router}:{r.interface}" if r.interface else r.router
        print(f"  {where:<16} {r.prefix:<22} subnet {r.subnet or '-'}{flags} ({r.source})")
    for rr in sorted(res.routers.values(), key=lambda r: r.router):
        print(f"  router {rr.router}: role {rr.role or '-'} capability {rr.capability or '-'} ({rr.source})")
    for e in res.events:
        print(f"{'CONFLICT' if e.alarm else 'note'}: {e.type}: {e.message}")


def _list(args: argparse.Namespace) -> int:
    try:
        data_dir, file = _config_paths(args)
        changes = load_sources(data_dir, file)
    except (ReportError, ConfigError) as exc:
        return _fail(exc)
    store = StateStore()
    for change in changes:
        store.apply(change)
    res = resolved(store.snapshot())
    if args.json:
        print(json.dumps(resolved_to_dict(res), indent=1, sort_keys=True))
    else:
        print_resolved(res)
    return 1 if args.check and res.conflicts() else 0
