"""TLS termination in production mode: TLS >= 1.2, HSTS, and plain HTTP not served."""

from __future__ import annotations

import http.client
import ssl
import warnings
from pathlib import Path

import pytest

from tests.support.procs import Upstream, run_gateway
from tests.support.tls import self_signed


def _config(cert: Path, key: Path, upstream: Upstream, tls_extra: str = "") -> str:
    return f"""version: 1
mode: production
listen: {{tls: {{cert: "{cert}", key: "{key}"{tls_extra}}}}}
audit: {{sink: file, path: "{{AUDIT}}"}}
upstreams:
  echo: {{url: "{upstream.url}", timeout: {{connect: 1, read: 2, total: 3}}}}
apis:
  - name: echo
    upstream: echo
    routes:
      - {{path: /echo, methods: [GET], public: true}}
"""


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_tls_production_gateway(tmp_path: Path, upstream: Upstream, server: str) -> None:
    cert, key = self_signed(tmp_path)
    config = _config(cert, key, upstream)
    with run_gateway(config, tmp_path, server=server, scheme="https") as gw:
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=context, timeout=10)
        conn.request("GET", "/echo")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        assert response.getheader("strict-transport-security", "").startswith("max-age=31536000")
        assert conn.sock is not None
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        conn.close()
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(cert))
        with warnings.catch_warnings():  # the client side of a TLS 1.1 attempt is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        legacy = http.client.HTTPSConnection("127.0.0.1", gw.port, context=old, timeout=5)
        try:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                legacy.connect()  # the TLS 1.1 handshake must fail
        finally:
            legacy.close()
        plain = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        try:
            plain.request("GET", "/echo")
            answer = plain.getresponse()
            answer.read()
            assert answer.status == 400  # a TLS listener may only refuse plain HTTP
        except (ConnectionError, OSError, http.client.HTTPException):
            pass  # or drop the connection
        finally:
            plain.close()


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_tls_13_minimum_refuses_tls_12(tmp_path: Path, upstream: Upstream, server: str) -> None:
    """uvicorn only logged a note for min_version 1.3 and went on accepting TLS 1.2."""
    cert, key = self_signed(tmp_path)
    config = _config(cert, key, upstream, ', min_version: "1.3"')
    with run_gateway(config, tmp_path, server=server, scheme="https") as gw:
        modern = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=modern, timeout=10)
        conn.request("GET", "/echo")
        assert conn.getresponse().status == 200
        assert conn.sock is not None
        assert conn.sock.version() == "TLSv1.3"
        conn.close()
        older = ssl.create_default_context(cafile=str(cert))
        older.maximum_version = ssl.TLSVersion.TLSv1_2
        legacy = http.client.HTTPSConnection("127.0.0.1", gw.port, context=older, timeout=5)
        try:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                legacy.connect()
        finally:
            legacy.close()
