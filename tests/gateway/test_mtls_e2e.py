"""mTLS client identity through real processes: a client CA, client certificates, the gateway
(uvicorn verifying in the handshake; granian behind a TLS-terminating proxy passing RFC 9440
``Client-Cert``), and the echo upstream that records what it received."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import GatewayProc, Upstream, run_gateway
from tests.support.tls import CertificateAuthority, IssuedCert, certificate_authority, self_signed

ALICE = "spiffe://example.org/ns/shop/sa/alice"
BOB = "spiffe://example.org/ns/shop/sa/bob"
PROXY_ADDRESS = "127.0.0.2"  # the trusted proxy connects from here; anyone else from 127.0.0.1


@dataclass
class Pki:
    server_cert: Path
    server_key: Path
    ca: CertificateAuthority
    alice: IssuedCert
    bob: IssuedCert
    proxy: IssuedCert
    foreign: IssuedCert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    server_cert, server_key = self_signed(tmp)
    ca = certificate_authority(tmp)
    other = certificate_authority(tmp, "other-ca")
    return Pki(
        server_cert,
        server_key,
        ca,
        alice=ca.issue(tmp, "alice", cn="alice", uris=[ALICE]),
        bob=ca.issue(tmp, "bob", cn="bob", uris=[BOB]),
        proxy=ca.issue(tmp, "proxy", cn="edge-proxy", uris=["spiffe://example.org/edge"]),
        foreign=other.issue(tmp, "foreign", cn="alice", uris=[ALICE]),
    )


def gateway_config(
    pki: Pki,
    upstream: Upstream,
    *,
    client_cert: str = "required",
    server: str = "uvicorn",
    from_header: bool = False,
) -> str:
    trusted = f"trusted_proxies: [{PROXY_ADDRESS}/32]" if from_header else ""
    return f"""version: 1
mode: production
listen:
  server: {server}
  tls:
    cert: "{pki.server_cert}"
    key: "{pki.server_key}"
    client_ca: "{pki.ca.path}"
    client_cert: {client_cert}
{trusted}
audit: {{sink: file, path: "{{AUDIT}}"}}
authentication:
  mtls:
    principal_from: san_uri
    from_header: {str(from_header).lower()}
    identities:
      "{ALICE}": {{roles: [reader]}}
upstreams:
  echo: {{url: "{upstream.url}", timeout: {{connect: 1, read: 2, total: 3}}}}
apis:
  - name: echo
    upstream: echo
    routes:
      - {{path: /echo, methods: [GET], authentication: [mtls], allow: {{roles: [reader]}}}}
      - {{path: /open, methods: [GET], public: true}}
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def call(
    gw: GatewayProc,
    pki: Pki,
    cert: IssuedCert | None,
    path: str = "/echo",
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
) -> Reply:
    context = ssl.create_default_context(cafile=str(pki.server_cert))
    if cert is not None:
        context.load_cert_chain(str(cert.path), str(cert.key_path))
    conn = http.client.HTTPSConnection(
        "127.0.0.1", gw.port, context=context, timeout=10, source_address=(source, 0)
    )
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        return Reply(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            json.loads(raw) if raw else {},
        )
    finally:
        conn.close()


def refused(gw: GatewayProc, pki: Pki, cert: IssuedCert | None) -> bool:
    """True when the TLS layer refuses the client (the handshake or its first read fails)."""
    try:
        call(gw, pki, cert)
    except (OSError, http.client.HTTPException):  # ssl.SSLError is an OSError
        return True
    return False


def upstream_headers(record: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in record["headers"]}


@pytest.fixture(scope="module")
def required(
    pki: Pki, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    config = gateway_config(pki, upstream)
    with run_gateway(
        config, tmp_path_factory.mktemp("mtls"), server="uvicorn", scheme="https"
    ) as gw:
        yield gw


def test_verified_certificate_becomes_the_principal(
    required: GatewayProc, pki: Pki, upstream: Upstream
) -> None:
    reply = call(required, pki, pki.alice)
    assert reply.status == 200
    [record] = upstream.received()
    seen = upstream_headers(record)
    assert seen["x-bastion-subject"] == ALICE
    assert seen["x-bastion-roles"] == "reader"
    assert seen["x-bastion-auth"] == "mtls"
    event = required.event_for(reply.headers["x-request-id"])
    assert event["principal"] == ALICE
    assert event["decision"] == "allow"


def test_certificate_without_the_role_is_forbidden(
    required: GatewayProc, pki: Pki, upstream: Upstream
) -> None:
    reply = call(required, pki, pki.bob)
    assert reply.status == 403
    assert upstream.received() == []
    assert required.event_for(reply.headers["x-request-id"])["principal"] == BOB


def test_no_certificate_is_refused_in_the_handshake(
    required: GatewayProc, pki: Pki, upstream: Upstream
) -> None:
    assert refused(required, pki, None)
    assert upstream.received() == []


def test_certificate_from_another_ca_is_refused_in_the_handshake(
    required: GatewayProc, pki: Pki, upstream: Upstream
) -> None:
    assert refused(required, pki, pki.foreign)
    assert upstream.received() == []


def test_client_cert_header_from_a_direct_client_is_ignored_and_stripped(
    required: GatewayProc, pki: Pki, upstream: Upstream
) -> None:
    # Bob (no role) claims to be Alice through an RFC 9440 header: the header counts for
    # nothing without from_header, and never reaches the upstream.
    spoof = {"Client-Cert": pki.alice.client_cert_header(), "Client-Cert-Chain": ":AAAA:"}
    assert call(required, pki, pki.bob, headers=spoof).status == 403
    reply = call(required, pki, pki.bob, path="/open", headers=spoof)
    assert reply.status == 200
    [record] = upstream.received()
    seen = upstream_headers(record)
    assert "client-cert" not in seen
    assert "client-cert-chain" not in seen


def test_optional_client_certificate_is_401_without_one(
    pki: Pki, upstream: Upstream, tmp_path: Path
) -> None:
    config = gateway_config(pki, upstream, client_cert="optional")
    with run_gateway(config, tmp_path, server="uvicorn", scheme="https") as gw:
        reply = call(gw, pki, None)
        assert reply.status == 401
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["www-authenticate"] == "ClientCert"
        assert reply.body["detail"] == "A client certificate is required."
        assert gw.event_for(reply.headers["x-request-id"])["reason"] == "mtls.missing"
        assert call(gw, pki, None, path="/open").status == 200  # public routes need none
        assert call(gw, pki, pki.alice).status == 200
        assert refused(gw, pki, pki.foreign)  # a certificate, if sent, must still verify
        assert [r["path"] for r in upstream.received()] == ["/open", "/echo"]


def test_granian_behind_a_trusted_tls_proxy_takes_the_client_cert_header(
    pki: Pki, upstream: Upstream, tmp_path: Path
) -> None:
    config = gateway_config(pki, upstream, server="granian", from_header=True)
    with run_gateway(config, tmp_path, server="granian", scheme="https") as gw:
        forwarded = {"Client-Cert": pki.alice.client_cert_header()}
        # The trusted proxy (its own certificate in the handshake) forwards Alice's.
        reply = call(gw, pki, pki.proxy, headers=forwarded, source=PROXY_ADDRESS)
        assert reply.status == 200
        [record] = upstream.received()
        seen = upstream_headers(record)
        assert seen["x-bastion-subject"] == ALICE
        assert "client-cert" not in seen
        upstream.clear()
        # The same header from a peer that is not a trusted proxy is ignored: 401.
        reply = call(gw, pki, pki.bob, headers=forwarded)
        assert reply.status == 401
        assert upstream.received() == []
        event = gw.event_for(reply.headers["x-request-id"])
        assert event["reason"] == "mtls.missing"
        assert event["mtls_header_ignored"] is True
        # A certificate from another CA, forwarded by the trusted proxy, is verified: 401.
        foreign = {"Client-Cert": pki.foreign.client_cert_header()}
        reply = call(gw, pki, pki.proxy, headers=foreign, source=PROXY_ADDRESS)
        assert reply.status == 401
        assert gw.event_for(reply.headers["x-request-id"])["reason"] == "mtls.untrusted"
        # On a public route the spoofed header passes through to nobody.
        assert call(gw, pki, pki.bob, path="/open", headers=forwarded).status == 200
        [record] = upstream.received()
        assert "client-cert" not in upstream_headers(record)


def test_granian_without_from_header_refuses_to_start(
    pki: Pki, upstream: Upstream, tmp_path: Path
) -> None:
    config = gateway_config(pki, upstream, server="granian")
    with pytest.raises(RuntimeError) as info, run_gateway(config, tmp_path, server="granian"):
        pass
    message = str(info.value)
    assert "granian verifies client certificates but cannot pass them to the app" in message
    assert "authentication.mtls" in message
