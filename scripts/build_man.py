#!/usr/bin/env python3
"""Build the man pages savd(8), savd-enforcer(8) and savd.toml(5) from their sources.

Sources: docs/man/<page>.md (a small markdown subset, below), with the command and option lists generated
from the argparse parsers (`appliance.cli.build_parser`, `appliance.enforcer.main.build_parser`) and the
savd.toml(5) sections from the table of docs/configuration.md, so neither can drift from the code or the
configuration reference. Output: docs/man/savd.8, docs/man/savd-enforcer.8, docs/man/savd.toml.5
(committed; tests/unit/test_docs.py checks they are current).

    python scripts/build_man.py                # write the roff files
    python scripts/build_man.py --check        # exit 1 when a committed page is out of date
    python scripts/build_man.py --install DIR  # also copy them to DIR/man5, DIR/man8 (/usr/local/share/man)

It also renders the events table of docs/operator-guide.md (between the `events-table` markers) from the
one vocabulary, appliance/monitor/vocabulary.py.

Markdown subset: a first line `# name section "manual"`, `##`/`###` headings, paragraphs, `- ` bullets,
``` fenced blocks, **bold**, *italic*, `code` (bold), [text](link) (text only), and a line
`<!-- generated: savd | savd-enforcer | savd.toml -->` replaced by the generated section.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAN = ROOT / "docs" / "man"
PAGES = ("savd.8", "savd-enforcer.8", "savd.toml.5")


# --- roff helpers ----------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Text safe for roff: backslashes and hyphens escaped, a leading . or ' neutralised."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def inline(text: str) -> str:
    """Markdown inline markup (links, **bold**, *italic*, `code`) to roff fonts."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    out: list[str] = []
    pattern = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\*([^*]+)\*")
    pos = 0
    for m in pattern.finditer(text):
        out.append(escape(text[pos : m.start()]))
        code, bold, italic = m.groups()
        if italic is not None:
            out.append(f"\\fI{escape(italic)}\\fR")
        else:
            out.append(f"\\fB{escape(code if code is not None else bold)}\\fR")
        pos = m.end()
    out.append(escape(text[pos:]))
    line = "".join(out)
    return "\\&" + line if line[:1] in (".", "'") else line


def markdown_to_roff(md: str, generated: dict[str, Callable[[], str]], version: str) -> str:
    lines = md.splitlines()
    head = re.fullmatch(r'# (\S+) (\d) "([^"]+)"', lines[0])
    if head is None:
        raise ValueError(f"first line must be '# name section \"manual\"', got {lines[0]!r}")
    name, section, manual = head.groups()
    out = [f'.TH "{name.upper()}" "{section}" "" "savd {version}" "{manual}"']
    para: list[str] = []
    in_code = False
    in_list = False

    def flush() -> None:
        nonlocal in_list
        if para:
            out.append(".IP \\(bu 2" if in_list else ".PP")
            out.extend(inline(p) for p in para)
            para.clear()

    for raw in lines[1:]:
        line = raw.rstrip()
        if in_code:
            if line.startswith("```"):
                out.extend([".fi", ".RE"])
                in_code = False
            else:
                out.append(escape(line) if line else "")
            continue
        if line.startswith("```"):
            flush()
            out.extend([".RS 4", ".nf"])
            in_code = True
        elif m := re.fullmatch(r"<!-- generated: (\S+) -->", line):
            flush()
            out.append(generated[m.group(1)]())
        elif line.startswith("## "):
            flush()
            in_list = False
            out.append(f".SH {escape(line[3:].upper())}")
        elif line.startswith("### "):
            flush()
            in_list = False
            out.append(f".SS {escape(line[4:])}")
        elif line.startswith("- "):
            flush()
            in_list = True
            para.append(line[2:])
        elif not line:
            flush()
            in_list = False
        else:
            para.append(line.strip())
    flush()
    return "\n".join(out) + "\n"


# --- generated sections ----------------------------------------------------------------------------------


def _subparsers(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _option_text(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or (action.dest.upper() if action.dest else "VALUE")
            if isinstance(metavar, tuple):
                metavar = " ".join(metavar)
            names += f" {metavar}"
        return names
    metavar = action.metavar or action.dest
    if action.choices is not None and not isinstance(action.choices, dict):
        metavar = "{" + ",".join(str(c) for c in action.choices) + "}"
    return str(metavar)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    formatter = parser._get_formatter()
    return str(formatter._expand_help(action))  # expands %(default)s and friends like --help does


def _describe(parser: argparse.ArgumentParser, path: str, summary: str, out: list[str]) -> None:
    """One .SS per leaf command: its summary, description and options; recurse into subcommands."""
    sub = _subparsers(parser)
    if sub is not None:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        for name, child in sub.choices.items():
            _describe(child, f"{path} {name}", helps.get(name, ""), out)
        return
    out.append(f".SS {escape(path)}")
    text = summary or ""
    description = (parser.description or "").strip()
    if text:
        out.append(escape(text + ("" if text.endswith(".") else ".")))
    if description and description != text:
        out.append(".PP")
        out.append(escape(" ".join(description.split())))
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        out.append(".TP")
        out.append(f"\\fB{escape(_option_text(action))}\\fR")
        out.append(escape(_help(parser, action)) or "\\&")


def commands(parser: argparse.ArgumentParser) -> str:
    out: list[str] = []
    sub = _subparsers(parser)
    assert sub is not None
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    for name, child in sub.choices.items():
        _describe(child, f"{parser.prog} {name}", helps.get(name, ""), out)
    return "\n".join(out)


def config_sections() -> str:
    """The section table of docs/configuration.md as a tagged list."""
    out: list[str] = []
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        m = re.fullmatch(r"\| `(\[[^`]+\])` \| (.+) \|", line.strip())
        if m:
            out.extend([".TP", f"\\fB{escape(m.group(1))}\\fR", inline(m.group(2).replace("\\|", "|"))])
    if not out:
        raise ValueError("docs/configuration.md: no section table found")
    return "\n".join(out)


def build() -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from appliance import cli
    from appliance.enforcer import main as enforcer_main

    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    generated: dict[str, Callable[[], str]] = {
        "savd": lambda: commands(cli.build_parser()),
        "savd-enforcer": lambda: commands(enforcer_main.build_parser()),
        "savd.toml": config_sections,
    }
    return {page: markdown_to_roff((MAN / f"{page}.md").read_text(encoding="utf-8"), generated, version)
            for page in PAGES}


GUIDE = ROOT / "docs" / "operator-guide.md"
TABLE_BEGIN = "<!-- events-table: generated from appliance/monitor/vocabulary.py by scripts/build_man.py -->"
TABLE_END = "<!-- events-table end -->"


def guide_with_events_table(text: str) -> str:
    """The operator guide with its events table rendered from the vocabulary."""
    sys.path.insert(0, str(ROOT))
    from appliance.monitor.vocabulary import markdown_table

    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_BEGIN}\n{markdown_table()}{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed page is out of date")
    parser.add_argument("--install", metavar="DIR", help="copy the pages to DIR/man5 and DIR/man8")
    args = parser.parse_args(argv)
    pages = build()
    stale = [p for p, text in pages.items()
             if not (MAN / p).exists() or (MAN / p).read_text(encoding="utf-8") != text]
    guide = GUIDE.read_text(encoding="utf-8")
    if guide_with_events_table(guide) != guide:
        if args.check:
            print("build_man: the events table of docs/operator-guide.md is out of date", file=sys.stderr)
            return 1
        GUIDE.write_text(guide_with_events_table(guide), encoding="utf-8")
        print("build_man: wrote the events table of docs/operator-guide.md")
    if args.check:
        for p in stale:
            print(f"build_man: docs/man/{p} is out of date; run: python scripts/build_man.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        (MAN / p).write_text(pages[p], encoding="utf-8")
        print(f"build_man: wrote docs/man/{p}")
    if args.install:
        for p in PAGES:
            target = Path(args.install) / f"man{p.rsplit('.', 1)[1]}"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(MAN / p, target / p)
            print(f"build_man: installed {target / p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
