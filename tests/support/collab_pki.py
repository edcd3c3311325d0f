"""Throwaway PKIs for the collaboration tests, made with the openssl CLI (no `cryptography` in the venv):
a CA with two peers' certificates, a name no peer has, an expired certificate, and a second CA whose
certificate carries a peer's name."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

CA_CNF = """[ca]
default_ca = ca_default
[ca_default]
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = any
copy_extensions = copy
[any]
commonName = supplied
"""


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    dir: Path

    def cert(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"


def _run(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", d / f"{name}.key", "-out", d / f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _csr(d: Path, file: str, cn: str) -> Path:
    _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", d / f"{file}.key", "-out", d / f"{file}.csr", "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=DNS:{cn}", "-addext", "extendedKeyUsage=serverAuth,clientAuth")
    return d / f"{file}.csr"


def _sign(d: Path, ca: str, file: str, cn: str) -> None:
    (d / "ext.cnf").write_text(f"subjectAltName=DNS:{cn}\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth,clientAuth\n")
    _run("x509", "-req", "-in", _csr(d, file, cn), "-CA", d / f"{ca}.crt", "-CAkey", d / f"{ca}.key",
         "-CAcreateserial", "-out", d / f"{file}.crt", "-days", "2", "-extfile", d / "ext.cnf")


def _sign_expired(d: Path, ca: str, file: str, cn: str) -> None:
    """`openssl x509 -days` cannot go negative and OpenSSL 3.0 lacks -not_after: `openssl ca` dates it."""
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(CA_CNF.format(d=d))
    _run("ca", "-batch", "-config", d / "ca.cnf", "-cert", d / f"{ca}.crt", "-keyfile", d / f"{ca}.key",
         "-in", _csr(d, file, cn), "-out", d / f"{file}.crt", "-notext",
         "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")


def make_pki(d: Path) -> Pki:
    """In `d`: the CA with as1, as2 and as3 (no one's peer), an expired as1, another CA's as1."""
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    for name in ("as1", "as2", "as3"):
        _sign(d, "ca", name, name)
    _sign(d, "other-ca", "as1-other-ca", "as1")
    _sign_expired(d, "ca", "as1-expired", "as1")
    return Pki(d / "ca.crt", d / "other-ca.crt", d)
