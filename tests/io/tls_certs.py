"""Test certificates made at test time with the ``openssl`` CLI: a CA, a server/client
certificate it signed for ``localhost`` + 127.0.0.1, and a second, unrelated CA's
certificate (a "bad" peer). Files only; nothing is installed system-wide."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Certs:
    ca: str      # PEM CA certificate that signed cert
    cert: str    # leaf for localhost / 127.0.0.1
    key: str
    bad_cert: str  # leaf for the same names, signed by another CA
    bad_key: str


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(d: Path, name: str) -> None:
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
         "-subj", f"/CN=test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _leaf(d: Path, name: str, ca: str) -> None:
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                               "basicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth,clientAuth\n")
    _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=localhost", cwd=d)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


def make_certs(d: Path) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca")
    _leaf(d, "leaf", "ca")
    _ca(d, "otherca")
    _leaf(d, "bad", "otherca")
    return Certs(str(d / "ca.pem"), str(d / "leaf.pem"), str(d / "leaf.key"),
                 str(d / "bad.pem"), str(d / "bad.key"))
