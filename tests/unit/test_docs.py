"""The documentation: links resolve inside the repository, the README stays a front door, the man pages
are built from their sources (argparse parsers, docs/configuration.md) and render without warnings."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from appliance.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"integration\.md|seeds/\d|\.\./shared|reference/[a-z-]+\.md")


def _markdown_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.md"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        files = [ROOT / f for f in out.split()]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob("*.md") if ".venv" not in p.parts]
    return [f for f in files if f.exists()]


def _build_man() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_man", ROOT / "scripts" / "build_man.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_markdown_links_exist_in_the_repository() -> None:
    broken = []
    for md in _markdown_files():
        text = md.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (md.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or ROOT not in (path, *path.parents):
                broken.append(f"{md.relative_to(ROOT)}: {target}")
    assert not broken, "links to paths not in the repository:\n" + "\n".join(broken)


def test_front_door_and_docs_name_no_file_outside_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in pages
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "references to documents outside the repository:\n" + "\n".join(found)


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 130, f"README.md has {len(lines)} lines; move detail to docs/"
    text = "\n".join(lines)
    for needed in ("make demo", "make test", "docs/"):
        assert needed in text


def test_every_config_key_is_documented() -> None:
    """Every key of configs/example.toml (which shows every key) is named in docs/configuration.md."""
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")

    def keys(value: object, path: str) -> list[str]:
        if isinstance(value, dict):
            return [k for key, v in value.items() for k in [f"{path}.{key}", *keys(v, f"{path}.{key}")]]
        if isinstance(value, list):
            return [k for v in value for k in keys(v, path)]
        return []

    example = tomllib.loads((ROOT / "configs" / "example.toml").read_text(encoding="utf-8"))
    missing = sorted({k for k in keys(example, "") if f"`{k.rsplit('.', 1)[1]}`" not in doc
                      and f"[{k.lstrip('.')}]" not in doc and f"[[{k.lstrip('.')}]]" not in doc
                      and not k.startswith(".bmp.routers.")})
    assert not missing, f"keys of configs/example.toml missing from docs/configuration.md: {missing}"


def test_man_pages_are_built_from_their_sources() -> None:
    built = _build_man().build()
    man = ROOT / "docs" / "man"
    stale = [p for p, text in built.items() if (man / p).read_text(encoding="utf-8") != text]
    assert not stale, f"docs/man/{stale} out of date: run python scripts/build_man.py"


def test_every_savd_subcommand_is_in_savd_8() -> None:
    page = (ROOT / "docs" / "man" / "savd.8").read_text(encoding="utf-8").replace("\\-", "-")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [name for name in sub.choices if f".SS savd {name}" not in page]
    assert not missing, f"savd(8) lacks: {missing}"


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
@pytest.mark.parametrize("page", ["savd.8", "savd-enforcer.8", "savd.toml.5"])
def test_man_page_renders_without_warnings(page: str) -> None:
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"}
    done = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(ROOT / "docs" / "man" / page)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
    text = re.sub(".\b", "", done.stdout)  # overstrike bold
    assert "NAME" in text and "SYNOPSIS" in text
