"""[collaboration] is read like every savd section: typed, every problem naming its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

from appliance.collab.config import CollabConfig, CollabPeer, read_collab
from appliance.config_reader import LineIndex, Problems, Table

GOOD = """
[collaboration]
listen = "127.0.0.1:8190"
cert = "tls/as1.crt"
key = "tls/as1.key"
ca = "/etc/savd/collab-ca.crt"
asn = 65001
name = "as1.example"

[[collaboration.peer]]
name = "as2.example"
asn = 65002
url = "https://192.0.2.2:8190"
initiate = true
modes = ["resilient"]
duration_s = 3600
send_every_s = 60
"""


def _read(text: str) -> tuple[CollabConfig | None, list[str]]:
    problems = Problems(LineIndex(text))
    t = Table(tomllib.loads(text), (), problems).table("collaboration")
    config = read_collab(t, Path("/etc/savd"))
    t.finish()
    return config, [f"{p.key}: {p.message}" for p in problems.items]


def test_reads_every_key() -> None:
    config, problems = _read(GOOD)
    assert problems == []
    assert config == CollabConfig("127.0.0.1", 8190, Path("/etc/savd/tls/as1.crt"),
                                  Path("/etc/savd/tls/as1.key"), Path("/etc/savd/collab-ca.crt"), 65001,
                                  "as1.example", 300.0,
                                  (CollabPeer("as2.example", 65002, "https://192.0.2.2:8190", True,
                                              ("resilient",), 3600.0, 60.0),))


def test_absent_section_is_no_collaboration() -> None:
    assert _read("")[0] is None


def test_problems_name_the_key() -> None:
    text = (GOOD.replace('"127.0.0.1:8190"', '"nowhere"').replace('"https://192.0.2.2:8190"', '"http://x"')
            .replace('["resilient"]', '["fast"]') + "colour = 1\n")
    _, problems = _read(text)
    keys = sorted(p.split(":")[0] for p in problems)
    assert keys == ["collaboration.listen", "collaboration.peer[0].colour", "collaboration.peer[0].modes",
                    "collaboration.peer[0].url"], problems


def test_duplicate_peer() -> None:
    text = GOOD + "\n" + GOOD.split("\n\n")[1]
    assert any("duplicate peer name" in p for p in _read(text)[1])
