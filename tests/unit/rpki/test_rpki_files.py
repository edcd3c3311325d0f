"""Relying-party files: every schema variant to one model; bad files named with the entry; watching."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from appliance.model import Aspa, Vrp
from rpki import files
from rpki.tables import RpkiTables

RPKI_CLIENT_NEW = {
    "metadata": {"buildtime": "2026-01-01T00:00:00Z"},
    "roas": [{"asn": 65001, "prefix": "198.18.0.0/16", "maxLength": 24, "ta": "lab", "expires": 1}],
    "aspas": [{"customer_asid": 65001, "expires": 1, "providers": [65010, 65020]}],
}
RPKI_CLIENT_82 = {
    "roas": [{"asn": "AS65001", "prefix": "198.18.0.0/16", "maxLength": 24}],
    "provider_authorizations": {
        "ipv4": [{"customer_asid": 65001, "providers": [65010]}],
        "ipv6": [{"customer_asid": 65001, "providers": [65020]}],
    },
}
ROUTINATOR_JSONEXT = {
    "roas": [{"asn": "AS65001", "prefix": "198.18.0.0/16", "maxLength": 24,
              "source": [{"type": "roa", "uri": "rsync://x", "validity": {}}]}],
    "aspas": [{"customer": "AS65001", "providers": ["AS65010", "AS65020"]}],
}
PROVIDER_ASIDS = {"roas": [{"asn": 65001, "prefix": "198.18.0.0/16", "maxLength": 24}],
                  "aspas": [{"customer_asid": 65001, "provider_asids": [65020, 65010]}]}


@pytest.mark.parametrize("doc", [RPKI_CLIENT_NEW, RPKI_CLIENT_82, ROUTINATOR_JSONEXT, PROVIDER_ASIDS],
                         ids=["rpki-client", "rpki-client-8.2", "routinator-jsonext", "provider_asids"])
def test_json_variants_normalise_to_one_model(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "out.json"
    path.write_text(json.dumps(doc))
    data = files.load(path)
    assert data.vrp_records() == (Vrp("198.18.0.0/16", 24, 65001),)
    assert data.aspa_records() == (Aspa(65001, (65010, 65020)),)


def test_as0_and_empty_provider_sets_mean_no_providers(tmp_path: Path) -> None:
    doc = {"aspas": [{"customer_asid": 65001, "providers": [0]}, {"customer": "AS65002", "providers": []}]}
    data = files.parse_json(doc)
    assert data.aspa_records() == (Aspa(65001, (0,)), Aspa(65002, (0,)))


def test_csv_variants(tmp_path: Path) -> None:
    routinator = ("ASN,IP Prefix,Max Length,Trust Anchor\n"
                  "AS65001,198.18.0.0/16,24,lab\nAS65002,2001:db8::/32,48,lab\n")
    rpki_client = "ASN,IP Prefix,Max Length,Trust Anchor,Expires\n65001,198.18.0.0/16,24,lab,1\n"
    assert len(files.parse_csv(routinator).vrps) == 2
    assert files.parse_csv(rpki_client).vrp_records() == (Vrp("198.18.0.0/16", 24, 65001),)


def test_real_data_sets_load(shared_data: Path) -> None:
    afrinic = files.load(shared_data / "rpki/ripe-archive-afrinic/roas.afrinic.2021-12-31.csv")
    assert len(afrinic.vrps) == 4372
    assert Vrp("2001:43f8::/48", 128, 0) in afrinic.vrp_records()
    stayrtr = files.load(shared_data / "rpki/stayrtr/test.rpki.json")
    assert len(stayrtr.vrps) == 19
    assert stayrtr.aspas[15562] == (2914, 8283, 51088, 206238)  # the real AS15562 ASPA
    small = files.load(shared_data / "rpki/stayrtr/smalltest.rpki.json")
    assert Vrp("2001:200:136::/48", 48, 9367) in small.vrp_records()  # "AS9367" string ASN


@pytest.mark.parametrize(
    ("content", "entry", "reason"),
    [
        ('{"roas": [{"asn": 1, "prefix": "198.18.0.0/16", "maxLength": 24}, {"asn": 1, "prefix": '
         '"198.18.0.1/16", "maxLength": 24}]}', "roas[1]", "bad prefix"),
        ('{"roas": [{"asn": 1, "prefix": "198.18.0.0/16", "maxLength": 12}]}', "roas[0]", "maxLength 12"),
        ('{"roas": [{"asn": "ASx", "prefix": "198.18.0.0/16", "maxLength": 24}]}', "roas[0]", "bad ASN"),
        ('{"roas": [{"prefix": "198.18.0.0/16", "maxLength": 24}]}', "roas[0]", "missing 'asn'"),
        ('{"aspas": [{"customer_asid": 1, "providers": [2]}, {"customer_asid": 3}]}', "aspas[1]",
         "missing 'providers'"),
        ('{"provider_authorizations": {"ipv6": [{"customer_asid": 5, "providers": [5]}]}}',
         "provider_authorizations.ipv6[0]", "itself"),
        ('{"roas": [', "line 1", "invalid JSON"),
        ('{"vrps": []}', "", "no 'roas'"),
        ("ASN,IP Prefix,Max Length\nAS1,198.18.0.0/16,24\nAS1,198.18.0.0/16\n", "line 3", "columns"),
        ("a,b,c\n1,2,3\n", "line 1", "not a VRP file"),
    ],
)
def test_bad_files_name_the_file_and_entry(tmp_path: Path, content: str, entry: str, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(files.RpkiFileError) as err:
        files.load(path)
    assert err.value.path == str(path) and err.value.entry == entry
    assert reason in str(err.value) and str(path) in str(err.value)


def test_watcher_reloads_keeps_last_good_and_withdraws_missing(tmp_path: Path) -> None:
    path = tmp_path / "rp.json"
    path.write_text(json.dumps(RPKI_CLIENT_NEW))
    tables = RpkiTables()
    events: list[Any] = []
    watcher = files.FileWatcher([path], tables, on_event=events.append)
    assert watcher.poll() == [str(path)] and tables.counts()["vrp"] == 1
    assert watcher.poll() == []  # unchanged
    doc = dict(RPKI_CLIENT_NEW, roas=[*RPKI_CLIENT_NEW["roas"],  # type: ignore[list-item]
                                      {"asn": 65002, "prefix": "198.19.0.0/16", "maxLength": 16}])
    path.write_text(json.dumps(doc))
    os.utime(path, (1, 1))  # a distinct mtime even within the filesystem's resolution
    watcher.poll()
    assert tables.counts()["vrp"] == 2
    path.write_text('{"roas": [')
    os.utime(path, (2, 2))
    watcher.poll()
    assert tables.counts()["vrp"] == 2 and events[-1].type == "rpki.file.invalid" and events[-1].alarm
    path.unlink()
    watcher.poll()
    assert tables.counts()["vrp"] == 0 and events[-1].type == "rpki.file.missing"
