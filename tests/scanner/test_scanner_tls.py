"""HTTPS targets: certificate verification (fail closed), private CAs, HSTS, TLS versions."""

from __future__ import annotations

import pytest

from bastion.scanner.engine import ScanError
from tests.scanner.conftest import scan
from tests.scanner.servers import serve, vulnapi
from tests.support.tls import self_signed


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    cert_path, key_path = self_signed(tmp_path_factory.mktemp("tls"))
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
