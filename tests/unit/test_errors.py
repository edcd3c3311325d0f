"""One error tree (appliance/errors.py): every error savd raises on purpose is a SavdError whose category
gives the exit code; commands print one line, never a traceback; savd-enforcer says what the host lacks."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil

import pytest

import appliance
import rpki
from appliance.cli_common import run_handler
from appliance.enforcer.main import build_parser as enforcer_parser
from appliance.enforcer.main import main as enforcer_main
from appliance.enforcer.main import preflight
from appliance.errors import ExitCode, ExternalError, HostError, InputError, PeerDataError, SavdError

# outside the tree on purpose (appliance/errors.py docstring): control flow, and a standalone script
OUTSIDE = {"appliance.recompute._Rebuild", "rpki.rtr.session._Retry",
           "appliance.lab.bgpls_exporter.ExportError"}


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in (appliance, rpki):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".gobgp_pb" in info.name or info.name.endswith("_rtrlib_cffi"):
                continue
            module = importlib.import_module(info.name)
            for name, obj in inspect.getmembers(module, inspect.isclass):
                if issubclass(obj, BaseException) and obj.__module__ == info.name:
                    found[f"{info.name}.{name}"] = obj
    return found


ERRORS = _error_classes()


def test_every_error_class_is_in_the_tree() -> None:
    assert len(ERRORS) >= 25
    stray = sorted(n for n, cls in ERRORS.items() if not issubclass(cls, SavdError) and n not in OUTSIDE)
    assert stray == [], "derive these from a category in appliance/errors.py"


@pytest.mark.parametrize(("name", "category", "builtin"), [
    ("appliance.config_reader.ConfigError", InputError, ValueError),
    ("appliance.sources.reports.errors.ReportError", InputError, Exception),
    ("appliance.names.UnsafeName", InputError, ValueError),
    ("appliance.engine.loader.SnapshotError", InputError, ValueError),
    ("rpki.files.RpkiFileError", InputError, ValueError),
    ("appliance.enforcer.route.RouteError", PeerDataError, ValueError),
    ("rpki.rtr.pdu.PduError", PeerDataError, Exception),
    ("appliance.context.StartError", HostError, RuntimeError),
    ("rpki.rtrlib.RtrlibUnavailable", HostError, RuntimeError),
    ("appliance.speakers.exabgp.SpeakerError", ExternalError, Exception),
    ("appliance.enforcer.nft.NftError", ExternalError, RuntimeError),
    ("appliance.sources.paths.station.StationError", ExternalError, OSError),
    ("appliance.lab.errors.TopologyError", ExternalError, Exception),
])
def test_category_and_older_base_kept(name: str, category: type, builtin: type) -> None:
    cls = ERRORS[name]
    assert issubclass(cls, category) and issubclass(cls, builtin)


def test_exit_code_table() -> None:
    from appliance.state.errors import StateError

    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 70, 130]
    assert (InputError.exit_code, StateError.exit_code, HostError.exit_code, ExternalError.exit_code,
            PeerDataError.exit_code, SavdError.exit_code) == (2, 3, 4, 5, 5, 70)


def _raise(exc: BaseException) -> object:
    def handler(args: argparse.Namespace) -> int:
        raise exc
    return handler


@pytest.mark.parametrize(("exc", "code", "line"), [
    (InputError("x.toml: line 3: bad\nline 4: worse"), 2, "savd: x.toml: line 3: bad; line 4: worse"),
    (HostError("run needs root"), 4, "savd: run needs root"),
    (ExternalError("nft -f failed"), 5, "savd: nft -f failed"),
    (KeyError("boom"), 70, "savd: internal error: KeyError: 'boom' (run with -vv for the traceback)"),
])
def test_a_command_error_is_one_line_and_its_code(exc: BaseException, code: int, line: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run_handler("savd", _raise(exc), argparse.Namespace()) == code  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err == line + "\n" and "Traceback" not in err


def _run_args(*extra: str) -> argparse.Namespace:
    return enforcer_parser().parse_args(["run", "--node", "r1", "--asn", "65000", *extra])


def test_enforcer_preflight_names_missing_programs() -> None:
    args = _run_args("--configure-frr", "--vtysh", "vtysh -N r1")
    with pytest.raises(HostError, match=r"run needs ip, nsenter, vtysh on PATH") as info:
        preflight(args, euid=0, which=lambda p: None if p in ("ip", "nsenter", "vtysh") else f"/usr/bin/{p}")
    assert info.value.exit_code == 4
    preflight(_run_args("--no-sidecar"), euid=0, which=lambda p: f"/usr/sbin/{p}")  # all there: no error


def test_enforcer_preflight_refuses_non_root() -> None:
    with pytest.raises(HostError, match="run needs root"):
        preflight(_run_args(), euid=1000, which=lambda p: f"/usr/sbin/{p}")


def test_enforcer_without_ip_on_path_is_one_line_exit_4(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert enforcer_main(["run", "--node", "r1", "--asn", "65000"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("savd-enforcer: run needs ip, nft, unshare, nsenter on PATH")
    assert err.count("\n") == 1
