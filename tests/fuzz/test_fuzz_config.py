"""Fuzz the TOML configuration loader: any document is a Config or a ConfigError naming the file and
the field (or line), never another exception.

Three generators, bounded so `make test` stays in budget (SAVD_FUZZ_EXAMPLES cases each, 200 by default;
set it higher for a long run):
- arbitrary text and bytes (most fail as TOML; the bytes go through `load_config`, which reads the file);
- mutations of the shipped configs (configs/example.toml, configs/demo.toml): lines deleted, duplicated
  or swapped, values replaced by odd TOML values (nan, inf, huge integers, dates, arrays, inline tables,
  control characters, NUL), keys renamed, text truncated;
- every key of the shipped configs set to an odd value, one document per draw.
Every crash found is kept under tests/fuzz/corpus/config/ and replayed by
test_corpus_documents_are_config_errors_or_configs (gobgp's testdata/bad-len habit).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import Config, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus" / "config"
SEEDS = [(REPO / "configs" / name).read_text() for name in ("example.toml", "demo.toml")]
EXAMPLES = int(os.environ.get("SAVD_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

#: whole-document problems that name no key (the file is named by ConfigError itself)
DOCUMENT_PROBLEMS = ("not valid TOML", "missing required table", "environment variable", "cannot read")


def check(run: object, source: Path) -> None:
    """The loader's contract: a Config, or a ConfigError naming `source` and each problem's key or line."""
    try:
        result = run() if callable(run) else None
    except ConfigError as exc:
        text = str(exc)
        assert str(source.name) in text, text
        assert exc.problems, "a ConfigError lists its problems"
        for p in exc.problems:
            assert p.message, p
            assert p.key or p.line or p.message.startswith(DOCUMENT_PROBLEMS), p
        return
    assert isinstance(result, Config)


def parse_in(tmp_path: Path, text: str) -> None:
    source = tmp_path / "fuzz.toml"
    check(lambda: parse_config(text, source), source)


ODD_VALUES = [
    "nan", "-nan", "inf", "-inf", "+inf", "0", "-1", "9223372036854775807", "-9223372036854775808",
    "18446744073709551616", "1e308", "1e-320", "0.0", "-0.0", "true", "false", '""', '"\\u0000"',
    '"\\u0000x"', '"a\\tb"', '"../../../etc/passwd"', '"::1:8180"', '"[::1"', '"[::1]:99999"', '"::"',
    '"fe80::1%eth0"', '"198.18.0.1/24"', '"0x10"', '"\\u00e9\\u0301"', '"\\ud7ff"', '"%s%n"', "'literal'",
    '"""multi\nline"""', "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "[]", "[1, 2]", '["a", 1]',
    "[[]]", "{}", "{a = 1}", '{ mode = "drop" }', "[{}]", "0o777", "0b101", "1_000",
    '"~savd-fuzz-no-such-user/x"', '"~"', '"/"', '"/dev/null"', '"."', '"http://[::1"', '"ws://x"',
]
KEY_LINE = re.compile(r"^(\s*)([A-Za-z0-9_.\"'-]+)(\s*=\s*)(.*)$")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SEEDS)).splitlines()
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["value", "value", "value", "delete", "dup", "swap", "key", "junk",
                                   "truncate", "uncomment"]))
        m = KEY_LINE.match(lines[i])
        if op == "value" and m:
            lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{draw(st.sampled_from(ODD_VALUES))}"
        elif op == "key" and m:
            key = draw(st.sampled_from(["", "x", "a.b", '"q.k"', "listen", "token", "rate", m.group(2) * 2]))
            lines[i] = f"{m.group(1)}{key}{m.group(3)}{m.group(4)}"
        elif op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "junk":
            lines.insert(i, draw(st.text(max_size=20)))
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "uncomment":
            lines[i] = lines[i].lstrip("# ")
    return "\n".join(lines) + "\n"


@st.composite
def every_key_odd(draw: st.DrawFn) -> str:
    """The seed with a random subset of its keys set to odd values (structure kept, so deep checks run)."""
    out = []
    for line in draw(st.sampled_from(SEEDS)).splitlines():
        m = KEY_LINE.match(line)
        if m and draw(st.integers(0, 3)) == 0:
            line = f"{m.group(1)}{m.group(2)}{m.group(3)}{draw(st.sampled_from(ODD_VALUES))}"
        out.append(line)
    return "\n".join(out) + "\n"


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(tmp_path: Path, text: str) -> None:
    parse_in(tmp_path, text)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_read_from_a_file(tmp_path: Path, data: bytes) -> None:
    source = tmp_path / "fuzz.toml"
    source.write_bytes(data)
    check(lambda: load_config(source), source)


@FUZZ
@given(mutated())
def test_mutated_shipped_configs(tmp_path: Path, text: str) -> None:
    parse_in(tmp_path, text)


@FUZZ
@given(every_key_odd())
def test_shipped_configs_with_odd_values(tmp_path: Path, text: str) -> None:
    parse_in(tmp_path, text)


@pytest.mark.parametrize("case", sorted(CORPUS.glob("*.toml")), ids=lambda p: p.name)
def test_corpus_documents_are_config_errors_or_configs(tmp_path: Path, case: Path) -> None:
    """Each document once crashed the loader (the file's first comment says how); now it must not."""
    source = tmp_path / case.name
    source.write_bytes(case.read_bytes())
    check(lambda: load_config(source), source)
