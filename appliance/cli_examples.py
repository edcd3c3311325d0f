"""Examples shown at the end of every `savd … --help`, one entry per command path.

A subcommand whose register() already sets an `examples:` epilog keeps its own (`savd api …`, `savd paths
show`); the rest get theirs from this table, applied by appliance/cli.py `build_parser`. A new subcommand
needs an entry here or its own epilog: tests/unit/test_cli_help.py walks every parser and fails on a
subcommand without examples or an action without a help line. Examples use documentation prefixes,
private ASNs and the sav-basic lab's names only.
"""

from __future__ import annotations

import argparse

from appliance.cli_common import RAW, examples

RAW_DESCRIPTION = argparse.RawDescriptionHelpFormatter

__all__ = ["EXAMPLES", "apply_examples"]

EXAMPLES: dict[str, tuple[str, ...]] = {
    "savd": ("savd config check /etc/savd/savd.toml", "savd run --config /etc/savd/savd.toml",
             "savd api rules r1 eth1", "savd scenarios run", "savd demo"),
    "savd rpki": ("savd rpki status --cache 127.0.0.1:8282", "savd rpki dump --file vrps.json --json",
                  "savd rpki serve lab/rpki.json --port 8282"),
    "savd config": ("savd config check /etc/savd/savd.toml",),
    "savd config check": ("savd config check /etc/savd/savd.toml", "savd config check configs/example.toml"),
    "savd run": ("savd run --config /etc/savd/savd.toml",
                 "savd run --config /etc/savd/savd.toml --reset-corrupt-journal"),
    "savd scenarios": ("savd scenarios run",),
    "savd scenarios run": ("savd scenarios run", "savd scenarios run --json",
                           "savd scenarios run --dir my-scenarios/"),
    "savd rules": ("savd rules show --snapshot snapshot.yaml",
                   "savd rules explain --snapshot snapshot.yaml --router r1 198.18.1.10"),
    "savd rules show": ("savd rules show --snapshot snapshot.yaml",
                        "savd rules show --snapshot snapshot.yaml --json"),
    "savd rules explain": ("savd rules explain --snapshot snapshot.yaml 198.18.1.10",
                           "savd rules explain --snapshot snapshot.yaml --router r1 2001:db8::1 --json"),
    "savd flowspec": ("savd flowspec compile rules.json",),
    "savd flowspec compile": ("savd flowspec compile rules.json",
                              "savd flowspec compile rules.json --router r1 --format exabgp"),
    "savd topology": ("savd topology show --config /etc/savd/savd.toml",),
    "savd topology show": ("savd topology show --config /etc/savd/savd.toml",
                           "savd topology show --frr-json link-state.json --json"),
    "savd paths": ("savd paths show --config /etc/savd/savd.toml",),
    "savd report": ("savd report list --config /etc/savd/savd.toml",
                    "savd report add --config /etc/savd/savd.toml --router r1 --interface eth1 "
                    "--prefix 198.18.1.0/24"),
    "savd report add": ("savd report add --config /etc/savd/savd.toml --router r1 --interface eth1 "
                        "--prefix 198.18.1.0/24",),
    "savd report del": ("savd report del --config /etc/savd/savd.toml --router r1 --interface eth1 "
                        "--prefix 198.18.1.0/24",),
    "savd report role": ("savd report role --config /etc/savd/savd.toml --router r4 --role border",),
    "savd report list": ("savd report list --config /etc/savd/savd.toml",
                         "savd report list --config /etc/savd/savd.toml --json"),
    "savd lab": ("savd lab up containerlab/sav-basic/sav-basic.clab.yml", "savd lab status",
                 "savd lab exec r1 -- vtysh -c 'show bgp summary'", "savd lab down"),
    "savd lab up": ("savd lab up containerlab/sav-basic/sav-basic.clab.yml",
                    "savd lab up mylab.clab.yml --prefix t1"),
    "savd lab down": ("savd lab down", "savd lab down --prefix t1 --keep-logs /tmp/t1-logs"),
    "savd lab status": ("savd lab status", "savd lab status --json"),
    "savd lab ping": ("savd lab ping", "savd lab ping --prefix t1"),
    "savd lab list": ("savd lab list",),
    "savd lab exec": ("savd lab exec r1 -- vtysh -c 'show ip route'",
                      "savd lab exec h1 -- ping -c1 198.18.3.10"),
    "savd lab init": ("savd lab init mylab.clab.yml --out mylab/",),
    "savd lab enforcers": ("savd lab enforcers up --config mylab/savd.toml",
                           "savd lab enforcers down --config mylab/savd.toml"),
    "savd lab traffic": ("savd lab traffic traffic.yaml",),
    "savd demo": ("savd demo", "savd demo --lab sav-inter", "savd demo --speaker gobgp --keep"),
}


def apply_examples(parser: argparse.ArgumentParser, path: str = "savd") -> None:
    """Give `parser` and each subcommand below it its examples epilog, unless it has one already."""
    lines = EXAMPLES.get(path)
    if lines and "examples:" not in (parser.epilog or ""):
        parser.epilog = ((parser.epilog or "").rstrip() + "\n\n" + examples(*lines)).lstrip("\n")
    has_examples = "examples:" in (parser.epilog or "")
    formatter = parser.formatter_class
    if has_examples and not (isinstance(formatter, type) and issubclass(formatter, (RAW, RAW_DESCRIPTION))):
        parser.formatter_class = RAW  # the examples keep their line breaks
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                apply_examples(child, f"{path} {name}")
