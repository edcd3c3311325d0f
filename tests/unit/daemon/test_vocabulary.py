"""One vocabulary of event types (issue 14): every type a producer emits is in
appliance/monitor/vocabulary.py, which gives its category and the operator guide's events table; typed
notices use the producers' types."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

from appliance.monitor.events import BgpSession, EventType
from appliance.monitor.metadata import category_of
from appliance.monitor.vocabulary import BY_TYPE, VOCABULARY

ROOT = Path(__file__).resolve().parents[3]
TYPE_LIKE = re.compile(r"^(bgp|bgpls|bmp|speaker|flowspec|rpki|reports|drift|stale)\.[a-z-]+(\.[a-z-]+)?$"
                       r"|^(report|rtr|rpki|rule|rules|state|journal|enforcer|spoofing)-[a-z-]+$")
FILE_OR_MODULE = re.compile(r"\.(json|yaml|toml|txt|py)$|^rpki\.(rtrlib|tables|service|files|rtr)$")


def _called_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def emitted_literals() -> dict[str, str]:
    """Type-like string constants handed to an event or alarm constructor, or bound to an *_EVENT name."""
    found: dict[str, str] = {}
    for path in [*sorted((ROOT / "appliance").rglob("*.py")), *sorted((ROOT / "rpki").rglob("*.py"))]:
        if "gobgp_pb" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.Call) and re.search(r"event|alarm|^Event$", _called_name(node), re.I):
                values = [*node.args, *(k.value for k in node.keywords)]
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id.endswith("_EVENT") for t in node.targets):
                values = [node.value]
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and TYPE_LIKE.match(v.value) \
                        and not FILE_OR_MODULE.search(v.value):
                    found.setdefault(v.value, str(path.relative_to(ROOT)))
    return found


def test_every_type_a_producer_emits_is_in_the_vocabulary() -> None:
    found = emitted_literals()
    assert {"bgp.session-down", "flowspec.push-failed", "bmp.malformed", "rtr-session"} <= found.keys()
    missing = {t: where for t, where in found.items() if t not in BY_TYPE}
    assert not missing, f"emitted but not in appliance/monitor/vocabulary.py: {missing}"


def test_typed_notices_use_the_producers_types() -> None:
    assert {str(t) for t in EventType} <= BY_TYPE.keys()
    assert BgpSession("exa", "198.18.0.2", "r1", up=False).event_type == "bgp.session-down"
    assert BgpSession("exa", "198.18.0.2", "r1", up=True).event_type == "bgp.session-up"


def test_each_type_once_with_its_category_and_the_guide_table_is_rendered_from_it() -> None:
    assert len(BY_TYPE) == len(VOCABULARY)
    for kind in VOCABULARY:
        assert category_of(kind.type, kind.alarm) is kind.category
        assert kind.raised and (kind.alarm or not kind.cleared)
    spec = importlib.util.spec_from_file_location("build_man", ROOT / "scripts" / "build_man.py")
    assert spec is not None and spec.loader is not None
    build_man = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_man)
    guide = (ROOT / "docs" / "operator-guide.md").read_text(encoding="utf-8")
    assert build_man.guide_with_events_table(guide) == guide, "run python scripts/build_man.py"
    assert all(f"| `{k.type}` |" in guide for k in VOCABULARY)
