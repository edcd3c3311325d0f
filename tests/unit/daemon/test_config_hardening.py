"""Issue 12, items 5 and 7: `savd config check` gives a clear error, never a traceback, for a binary
token file, an unbracketed IPv6 listen address, a non-finite number and a short token; [api]
body_limit_bytes is read with its default."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import DEFAULT_BODY_LIMIT_BYTES, ConfigError, parse_config

MINIMAL = """\
[appliance]
asn = 65000
router_id = "198.18.0.1"
"""
LONG_TOKEN = "0123456789abcdef0123"


def problems(text: str, tmp_path: Path) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "savd.toml")
    return [(p.line, p.key, p.message) for p in info.value.problems]


def test_a_binary_token_file_is_a_clear_error_not_a_traceback(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "api.token").write_bytes(b"\xff\xfe\x00\x01binary\x9c")
    cfg = tmp_path / "savd.toml"
    cfg.write_text(MINIMAL + '[api]\ntoken_file = "api.token"\n')
    assert main(["config", "check", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}:5: api.token_file: api.token is not UTF-8 text" in err and "Traceback" not in err


@pytest.mark.parametrize(("listen", "message"), [
    ("::1:8180", "an IPv6 address needs brackets: '[::1:8180]' for the address alone, or '[address]:port'"),
    ("2001:db8::1", "an IPv6 address needs brackets"),
    ("[::1", "must be host:port or [IPv6]:port"),
    ("[::1]8180", "must be host:port or [IPv6]:port"),
    ("[198.18.0.1]:8180", "brackets are for IPv6 addresses only"),
    ("127.0.0.1:", "port missing after ':'"),
    ("[::1]:", "port missing after ':'"),
    ("127.0.0.1:\uff18\uff11\uff18\uff10", "port must be 1-65535"),  # fullwidth digits: isdigit() is true
])
def test_listen_addresses_that_would_be_misread_are_errors(tmp_path: Path, listen: str, message: str) -> None:
    found = problems(MINIMAL + f'[api]\nlisten = "{listen}"\n', tmp_path)
    assert len(found) == 1 and found[0][:2] == (5, "api.listen") and message in found[0][2], found


@pytest.mark.parametrize(("listen", "host", "port"), [
    ("[::1]:8181", "::1", 8181), ("[::1]", "::1", 8180), ("198.18.0.1:80", "198.18.0.1", 80),
    ("localhost", "localhost", 8180),
])
def test_listen_addresses_that_are_fine(tmp_path: Path, listen: str, host: str, port: int) -> None:
    api = parse_config(MINIMAL + f'[api]\nlisten = "{listen}"\n', tmp_path / "savd.toml").api
    assert (api.host, api.port) == (host, port)


@pytest.mark.parametrize(("section", "key", "value"), [
    ("engine.default", "rate", "nan"), ("engine.default", "rate", "inf"), ("engine.default", "rate", "-nan"),
    ("rpki", "stale_after_s", "inf"), ("timers", "bgpls_hold_s", "nan"),
])
def test_non_finite_numbers_are_errors(tmp_path: Path, section: str, key: str, value: str) -> None:
    extra = 'mode = "rate-limit"\n' if key == "rate" else ""
    found = problems(MINIMAL + f"[{section}]\n{extra}{key} = {value}\n", tmp_path)
    assert any(k == f"{section}.{key}" and m == f"must be a finite number, got {value.lstrip('+-')}"
               for _, k, m in found), found


@pytest.mark.parametrize("token", ["short", "fifteen-chars!!", "with space in the middle of it",
                                   "tab\there-0123456789"])
def test_short_or_unsendable_tokens_are_refused(tmp_path: Path, token: str) -> None:
    found = problems(MINIMAL + f'[api]\ntoken = "{token}"\n', tmp_path)
    assert [(k, "at least 16 bytes" in m) for _, k, m in found] == [("api.token", True)]


def test_a_sixteen_byte_token_and_the_body_limit(tmp_path: Path) -> None:
    api = parse_config(MINIMAL + f'[api]\ntoken = "{LONG_TOKEN[:16]}"\n', tmp_path / "savd.toml").api
    assert api.token == LONG_TOKEN[:16] and api.body_limit_bytes == DEFAULT_BODY_LIMIT_BYTES == 1_048_576
    api = parse_config(MINIMAL + "[api]\nbody_limit_bytes = 65536\n", tmp_path / "savd.toml").api
    assert api.body_limit_bytes == 65536
    assert problems(MINIMAL + "[api]\nbody_limit_bytes = 10\n", tmp_path) == [
        (5, "api.body_limit_bytes", "must be between 1024 and 1073741824, got 10")]
