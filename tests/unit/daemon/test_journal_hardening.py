"""Issue 12, item 8: `--reset-corrupt-journal` fixes what it is suggested for (a damaged saved rule set
is discarded and the state kept), a zero-length journal is refused instead of starting empty, and a data
dir savd cannot write is told to fix permissions, not to reset the journal."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import Config, parse_config
from appliance.daemon import Daemon
from appliance.model import InterfaceRules, ListKind, PrefixFlags, PrefixReport, SavRuleSet
from appliance.state import Announce, StateError, StateErrorKind, StateStore
from appliance.state import journal as journal_module
from appliance.state.journal import FILE_NAME, Journal

TOKEN = "daemon-test-token-0123"


def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Config, Path]:
    monkeypatch.setenv("SAVD_JOURNAL_TEST_TOKEN", TOKEN)
    text = f"""
[appliance]
asn = 65000
router_id = "198.18.20.10"
data_dir = "{tmp_path / 'data'}"
[api]
listen = "127.0.0.1:18999"
token_env = "SAVD_JOURNAL_TEST_TOKEN"
"""
    (tmp_path / "savd.toml").write_text(text)
    return parse_config(text, tmp_path / "savd.toml"), tmp_path / "data"


def saved_state_with_a_damaged_rule_set(data: Path) -> None:
    with Journal.open(data) as journal:
        store = StateStore(journal)
        report = PrefixReport("r1", "eth1", "198.18.1.0/24", "lan", PrefixFlags(), source="api")
        store.apply(Announce("api", (report,)))
        rule = InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",))
        store.save_ruleset(SavRuleSet.of([rule]), 1)
    with closing(sqlite3.connect(data / FILE_NAME)) as conn, conn:
        conn.execute("UPDATE ruleset_rule SET rule='{\"router\": 1'")


def test_reset_corrupt_journal_discards_a_damaged_rule_set_and_keeps_the_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data = config(tmp_path, monkeypatch)
    saved_state_with_a_damaged_rule_set(data)
    with pytest.raises(StateError) as info:  # without the flag: refused at start, naming the rule set
        Daemon(cfg)._open_store()
    assert info.value.kind is StateErrorKind.CORRUPT and "saved rule set does not decode" in str(info.value)
    daemon = Daemon(cfg, reset_corrupt_journal=True)
    store = daemon._open_store()
    assert store.version == 1 and [r.prefix for r in store.snapshot().reports] == ["198.18.1.0/24"]
    assert store.last_ruleset() is None  # discarded: the first recompute makes it again
    assert list(data.glob(f"{FILE_NAME}.corrupt-*")) == []  # the state was not moved aside
    assert daemon._journal is not None
    daemon._journal.close()
    with Journal.open(data) as journal:  # and the next start is clean, without the flag
        assert journal.load_ruleset() is None and StateStore.restore(journal).version == 1


def test_a_zero_length_journal_is_refused_then_reset_on_request(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data = config(tmp_path, monkeypatch)
    data.mkdir()
    (data / FILE_NAME).write_bytes(b"")
    with pytest.raises(StateError) as info:
        Daemon(cfg)._open_store()
    assert info.value.kind is StateErrorKind.CORRUPT and "zero length" in str(info.value)
    daemon = Daemon(cfg, reset_corrupt_journal=True)
    assert daemon._open_store().version == 0
    assert len(list(data.glob(f"{FILE_NAME}.corrupt-*"))) == 1
    assert daemon._journal is not None
    daemon._journal.close()


def test_a_read_only_data_dir_is_not_told_to_reset_simulated_by_os_access(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data = config(tmp_path, monkeypatch)
    with Journal.open(data):
        pass
    monkeypatch.setattr(journal_module.os, "access", lambda path, mode: False)  # tests run as root
    for reset in (False, True):
        with pytest.raises(StateError) as info:
            Daemon(cfg, reset_corrupt_journal=reset)._open_store()
        assert info.value.kind is StateErrorKind.UNWRITABLE and f"uid {os.geteuid()}" in str(info.value)
    assert list(data.glob(f"{FILE_NAME}.corrupt-*")) == []  # never moved aside


def test_savd_run_says_fix_permissions_for_a_read_only_journal_simulated_sqlite_readonly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _, data = config(tmp_path, monkeypatch)
    with Journal.open(data):
        pass

    def read_only(*args: object, **kwargs: object) -> sqlite3.Connection:
        exc = sqlite3.OperationalError("attempt to write a readonly database")
        exc.sqlite_errorcode = sqlite3.SQLITE_READONLY  # type: ignore[attr-defined]
        raise exc

    monkeypatch.setattr(journal_module.sqlite3, "connect", read_only)
    for flags in ([], ["--reset-corrupt-journal"]):
        assert main(["run", "--config", str(tmp_path / "savd.toml"), *flags]) == 3
        err = capsys.readouterr().err
        assert "cannot open the journal: attempt to write a readonly database" in err
        assert "remount read-write (--reset-corrupt-journal would not help)" in err
        assert "start with --reset-corrupt-journal" not in err
    assert list(data.glob(f"{FILE_NAME}.corrupt-*")) == []
