"""Names of routers, interfaces and BGP-LS nodes: one strict pattern, checked wherever a name enters savd.

Why this module exists: names become file names (the enforcer group files
`<data_dir>/enforcer-groups/<router>.json`, speaker work directories), nft identifiers, source keys and
log fields. A router named "../../../x" once made savd write x.json outside its data directory. So:
- every entry checks its names here: the API, the reports file and the `savd report` store, BGP-LS node
  names, BMP sysNames and the configuration;
- every file named after one is built with `safe_child`, which refuses a name that would leave its
  folder even where a check upstream was missed (defence in depth, not the first line).

The pattern (ROUTER_NAME_RE): a letter or digit, then up to 63 letters, digits, '.', '_', ':' or '-', and
never "..". It admits host names, IPv4/IPv6 router IDs and IS-IS system IDs. Interface names follow Linux
(IFNAMSIZ): the same characters without ':', at most 15. Must not: accept a non-string (YAML turns
`router: yes` into True; that is an error, never the name "True").
"""

from __future__ import annotations

import re
from pathlib import Path

from appliance.errors import InputError

ROUTER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
INTERFACE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")
ROUTER_NAME_RULE = "a letter or digit, then up to 63 of letters, digits, '.', '_', ':', '-' (no '..')"
INTERFACE_NAME_RULE = "1 to 15 characters: a letter or digit, then letters, digits, '.', '_', '-' (no '..')"

__all__ = [
    "INTERFACE_NAME_RE",
    "ROUTER_NAME_RE",
    "UnsafeName",
    "check_interface_name",
    "check_router_name",
    "interface_name_problem",
    "is_router_name",
    "router_name_problem",
    "safe_child",
    "subnet_id_problem",
]


class UnsafeName(InputError, ValueError):
    """A name that would leave its folder if used as a file name."""


def _describe(value: object) -> str:
    """A short description of a bad value that never renders a large structure."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 70 else repr(value[:67] + "...")
    if isinstance(value, bool | int | float) or value is None:
        return f"{value!r} ({type(value).__name__}, not a string)"
    return f"a {type(value).__name__}, not a string"


def _problem(value: object, pattern: re.Pattern[str], rule: str) -> str | None:
    if not isinstance(value, str):
        return f"must be a name string, got {_describe(value)}"
    if not value:
        return "must not be empty"
    if pattern.fullmatch(value) is None or ".." in value:
        return f"{_describe(value)} is not a valid name: {rule}"
    return None


def router_name_problem(value: object) -> str | None:
    """Why `value` is not a router or node name, or None when it is one."""
    return _problem(value, ROUTER_NAME_RE, ROUTER_NAME_RULE)


def interface_name_problem(value: object) -> str | None:
    """Why `value` is not an interface name, or None when it is one."""
    return _problem(value, INTERFACE_NAME_RE, INTERFACE_NAME_RULE)


def is_router_name(value: object) -> bool:
    return router_name_problem(value) is None


def check_router_name(value: object) -> str:
    """The name itself when valid; ValueError saying why otherwise."""
    problem = router_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(value, str)
    return value


def check_interface_name(value: object) -> str:
    """The name itself when valid; ValueError saying why otherwise."""
    problem = interface_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(value, str)
    return value


def safe_child(folder: Path, name: str) -> Path:
    """`folder / name`, refused (UnsafeName) unless it is a plain entry directly inside `folder`.

    `name` is a single path component such as f"{router}.json": no separator, no NUL, not "." or "..",
    and the joined path must resolve to a direct child of the resolved folder.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UnsafeName(f"unsafe file name {_describe(name)} under {folder}")
    path = folder / name
    if path.resolve(strict=False).parent != folder.resolve(strict=False):
        raise UnsafeName(f"file name {_describe(name)} leaves {folder}")
    return path


MAX_SUBNET_ID_LEN = 128


def subnet_id_problem(value: object) -> str | None:
    """Why `value` is not a subnet ID (a string or integer of printable text, at most 128 characters).

    A float (`id: 1.0`) or boolean is refused rather than turned into "1.0" or "True".
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"must be a string or an integer, got {_describe(value)}"
    text = str(value) if isinstance(value, str) or abs(value) < 10**MAX_SUBNET_ID_LEN else ""
    if not text or len(text) > MAX_SUBNET_ID_LEN or not text.isprintable():
        return f"{_describe(value)} is not a subnet ID: 1 to {MAX_SUBNET_ID_LEN} printable characters"
    return None
