"""HTTPS targets: certificate verification (fail closed), private CAs, HSTS, TLS versions."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.scanner.engine import ScanError
from tests.scanner.conftest import scan
from tests.scanner.servers import serve, vulnapi


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_https_target_with_a_private_ca(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    with serve(vulnapi(True), certfile=cert, keyfile=key) as url:
        assert url.startswith("https://")
        with pytest.raises(ScanError, match="zero operations"):
            scan(url, checks=("API8",), examples=0)  # unverifiable certificate: fail closed
        result = scan(url, checks=("API8",), examples=0, ca_file=cert)
    assert len(result.operations_exercised) == 15
    rules = {f.rule for f in result.findings}
    assert "API8.header-hsts" in rules
    assert "API8.weak-tls" not in rules  # TLS 1.0/1.1 handshakes are refused
    hsts = next(f for f in result.findings if f.rule == "API8.header-hsts")
    assert hsts.curl is not None
    assert f"--cacert {cert}" in hsts.curl


def test_fixed_twin_over_https_sends_hsts(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    with serve(vulnapi(False), certfile=cert, keyfile=key) as url:
        result = scan(url, fixed=True, checks=("API8",), examples=0, insecure=True)
    assert [f.rule for f in result.findings] == []
