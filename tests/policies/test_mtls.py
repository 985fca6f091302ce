"""mTLS client identity, unit level: which certificate becomes which principal, and every
way a forwarded (RFC 9440) certificate is refused."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from bastion.config import load_config
from bastion.config.lint import lint
from bastion.errors import ConfigError, Unauthorized
from bastion.gateway.headers import request_headers_for_upstream
from bastion.gateway.request import TrustedProxies
from bastion.policies.authentication import AuthenticationPolicy
from bastion.policies.mtls import (
    MtlsAuthenticator,
    build_mtls,
    check_server,
    parse_client_cert_chain,
    parse_sf_binary,
)
from bastion.state.factory import create_store
from bastion.types import Headers, RequestContext
from tests.support.context import request_context
from tests.support.tls import CertificateAuthority, IssuedCert, certificate_authority

PROXY = "10.0.0.5"
CLIENT = "203.0.113.9"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return certificate_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return certificate_authority(tmp_path_factory.mktemp("other"), "other-ca")


def ctx(
    *,
    pem: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    peer: str = CLIENT,
) -> RequestContext:
    return request_context(headers=headers or [], client_ip=peer, scheme="https", client_cert=pem)


def native(principal_from: str = "subject_cn", **identities: list[str]) -> MtlsAuthenticator:
    return MtlsAuthenticator(
        principal_from=principal_from,
        identities={name: (frozenset(roles), frozenset()) for name, roles in identities.items()},
    )


@asynccontextmanager
async def _policy(
    methods: list[str], mtls: MtlsAuthenticator, verifier: Any = None
) -> AsyncIterator[AuthenticationPolicy]:
    """The gateway's authentication policy for ``methods``, on a fresh memory store."""
    store = create_store({"backend": "memory"})
    await store.start()
    try:
        yield AuthenticationPolicy(
            methods=methods,
            verifier=verifier,
            api_keys=None,
            api_key_header="X-API-Key",
            store=store,
            clock=time.time,
            mtls=mtls,
        )
    finally:
        await store.close()


def via_header(ca: CertificateAuthority, principal_from: str = "san_uri") -> MtlsAuthenticator:
    return MtlsAuthenticator(
        principal_from=principal_from,
        identities={},
        header_cas=[ca.cert],
        trusted=TrustedProxies(["10.0.0.0/8"]),
    )


def reason(auth: MtlsAuthenticator, context: RequestContext, now: float | None = None) -> str:
    with pytest.raises(Unauthorized) as info:
        auth.authenticate(context, time.time() if now is None else now, "ClientCert")
    assert info.value.status == 401
    assert info.value.headers["WWW-Authenticate"] == "ClientCert"
    return info.value.reason


# -- principal_from ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal_from", "expected"),
    [
        ("subject_cn", "alice"),
        ("san_uri", "spiffe://example.org/ns/shop/sa/alice"),
        ("san_dns", "alice.clients.example.org"),
        ("san_email", "alice@example.org"),
        ("subject", "CN=alice"),
    ],
)
def test_principal_from_each_identity_field(
    tmp_path: Path, ca: CertificateAuthority, principal_from: str, expected: str
) -> None:
    cert = ca.issue(
        tmp_path,
        "alice",
        cn="alice",
        uris=["spiffe://example.org/ns/shop/sa/alice"],
        dns=["alice.clients.example.org"],
        emails=["alice@example.org"],
    )
    auth = native(principal_from, **{expected: ["reader"]})
    principal = auth.authenticate(ctx(pem=cert.pem), time.time(), "ClientCert")
    assert principal.subject == expected
    assert principal.kind == "mtls"
    assert principal.roles == frozenset({"reader"})
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(cert.der).digest()).rstrip(b"=")
    assert principal.claim("cnf.x5t#S256") == thumbprint.decode()
    assert principal.credential_id == thumbprint.decode()
    assert principal.claim("serial") == format(cert.cert.serial_number, "x")
    assert principal.issuer == ca.cert.subject.rfc4514_string()
    assert principal.claim("san.email") == ["alice@example.org"]


def test_unlisted_subject_gets_no_roles_or_scopes(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert = ca.issue(tmp_path, "mallory", cn="mallory")
    principal = native(alice=["admin"]).authenticate(ctx(pem=cert.pem), time.time(), "ClientCert")
    assert principal.subject == "mallory"
    assert principal.roles == frozenset()
    assert principal.scopes == frozenset()


def test_certificate_without_the_chosen_identity_is_401(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    cert = ca.issue(tmp_path, "cn-only", cn="bob")
    with pytest.raises(Unauthorized) as info:
        native("san_uri").authenticate(ctx(pem=cert.pem), time.time(), "ClientCert")
    assert info.value.reason == "mtls.no_identity"
    assert info.value.detail is not None
    assert "URI SAN" in info.value.detail


def test_two_values_of_the_chosen_identity_are_ambiguous(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    cert = ca.issue(tmp_path, "two", uris=["spiffe://a/1", "spiffe://a/2"])
    assert reason(native("san_uri"), ctx(pem=cert.pem)) == "mtls.ambiguous_identity"


def test_no_certificate_is_401_missing() -> None:
    assert reason(native(), ctx()) == "mtls.missing"


def test_native_certificate_expiring_during_a_connection_is_refused(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    cert = ca.issue(tmp_path, "short", cn="alice")
    auth = native()
    auth.authenticate(ctx(pem=cert.pem), time.time(), "ClientCert")  # valid now (and cached)
    later = cert.cert.not_valid_after_utc.timestamp() + 1
    assert reason(auth, ctx(pem=cert.pem), now=later) == "mtls.expired"


# -- RFC 9440 header -------------------------------------------------------------------------


def header_ctx(cert: IssuedCert, peer: str = PROXY) -> RequestContext:
    return ctx(headers=[("client-cert", cert.client_cert_header())], peer=peer)


def test_header_from_trusted_proxy_is_verified_and_accepted(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    cert = ca.issue(tmp_path, "h", uris=["spiffe://example.org/alice"])
    principal = via_header(ca).authenticate(header_ctx(cert), time.time(), "ClientCert")
    assert principal.subject == "spiffe://example.org/alice"
    assert principal.claim("source") == "header"


def test_header_cert_from_another_ca_is_refused(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    cert = other_ca.issue(tmp_path, "foreign", uris=["spiffe://example.org/alice"])
    context = header_ctx(cert)
    assert reason(via_header(ca), context) == "mtls.untrusted"
    assert "mtls_error" in context.audit  # the precise cause, for the audit event only


def test_expired_header_cert_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    now = dt.datetime.now(dt.UTC)
    cert = ca.issue(
        tmp_path,
        "old",
        uris=["spiffe://example.org/alice"],
        valid_from=now - dt.timedelta(hours=2),
        valid_until=now - dt.timedelta(hours=1),
    )
    assert reason(via_header(ca), header_ctx(cert)) == "mtls.expired"


def test_header_cert_without_client_auth_eku_is_refused(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    cert = ca.issue(tmp_path, "server", uris=["spiffe://example.org/alice"], client_auth=False)
    assert reason(via_header(ca), header_ctx(cert)) == "mtls.eku"


def test_header_from_untrusted_peer_is_ignored(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert = ca.issue(tmp_path, "spoof", uris=["spiffe://example.org/admin"])
    context = header_ctx(cert, peer=CLIENT)
    assert reason(via_header(ca), context) == "mtls.missing"
    assert context.audit["mtls_header_ignored"] is True


def test_trusted_proxy_without_header_is_not_the_principal(ca: CertificateAuthority) -> None:
    # The proxy's own TLS certificate (native) names the proxy, not the caller.
    context = ctx(pem=ca.cert.public_bytes(Encoding.PEM).decode(), peer=PROXY)
    assert reason(via_header(ca), context) == "mtls.missing"


@pytest.mark.parametrize("value", ["not-base64", ":@@@:", "::", ":YWJj", "YWJj:", ":YWJj:"])
def test_malformed_header_is_refused(ca: CertificateAuthority, value: str) -> None:
    context = ctx(headers=[("client-cert", value)], peer=PROXY)
    assert reason(via_header(ca), context) == "mtls.header_malformed"


def test_two_client_cert_headers_are_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert = ca.issue(tmp_path, "dup", uris=["spiffe://example.org/alice"])
    value = cert.client_cert_header()
    context = ctx(headers=[("client-cert", value), ("client-cert", value)], peer=PROXY)
    assert reason(via_header(ca), context) == "mtls.header_multiple"


def test_sf_binary_and_chain_parsing() -> None:
    assert parse_sf_binary(" :YWJj: ") == b"abc"
    assert parse_client_cert_chain([":YWJj:, :ZGVm:", ":Z2hp:"]) == [b"abc", b"def", b"ghi"]
    assert parse_client_cert_chain([]) == []
    with pytest.raises(ValueError):
        parse_sf_binary(":YW Jj:")


def test_client_cert_headers_never_reach_the_upstream() -> None:
    headers = Headers(
        [(b"client-cert", b":YWJj:"), (b"client-cert-chain", b":YWJj:"), (b"accept", b"*/*")]
    )
    out = request_headers_for_upstream(
        headers,
        client_ip=CLIENT,
        peer_trusted=True,
        scheme="https",
        host="api.example.org",
        request_id="r" * 16,
    )
    names = {name for name, _ in out}
    assert "accept" in names
    assert not names & {"client-cert", "client-cert-chain"}


# -- configuration ---------------------------------------------------------------------------


def config(tmp_path: Path, tls: str, mtls: str, extra: str = "") -> Path:
    path = tmp_path / "bastion.yaml"
    path.write_text(
        f"""version: 1
mode: development
{tls}
{extra}
authentication:
  mtls: {mtls}
upstreams:
  echo: {{url: "http://127.0.0.1:9", timeout: {{connect: 1, read: 1, total: 1}}}}
apis:
  - name: echo
    upstream: echo
    routes:
      - {{path: /echo, methods: [GET], authentication: [mtls], allow: authenticated}}
"""
    )
    return path


def test_mtls_without_a_certificate_source_is_a_config_error(tmp_path: Path) -> None:
    loaded = load_config(config(tmp_path, "", "{principal_from: san_uri}"))
    with pytest.raises(ConfigError) as info:
        build_mtls(loaded)
    message = str(info.value)
    assert "bastion.yaml:6: authentication.mtls: no source" in message
    assert "listen.tls.client_ca" in message
    assert "from_header" in message


def test_granian_without_from_header_is_a_config_error(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    tls = f'listen: {{tls: {{cert: "{ca.path}", key: "{ca.path}", client_ca: "{ca.path}"}}}}'
    loaded = load_config(config(tmp_path, tls, "{principal_from: subject_cn}"))
    assert build_mtls(loaded) is not None
    check_server(loaded, "uvicorn")
    with pytest.raises(ConfigError) as info:
        check_server(loaded, "granian")
    message = str(info.value)
    assert "authentication.mtls" in message
    assert "granian" in message
    assert "uvicorn" in message
    assert "from_header" in message


def test_from_header_needs_trusted_proxies_and_a_ca(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    loaded = load_config(config(tmp_path, "", "{from_header: true}"))
    with pytest.raises(ConfigError, match="trusted_proxies"):
        build_mtls(loaded)
    loaded = load_config(
        config(tmp_path, "", "{from_header: true}", "trusted_proxies: [10.0.0.0/8]")
    )
    with pytest.raises(ConfigError, match="needs a CA"):
        build_mtls(loaded)
    loaded = load_config(
        config(
            tmp_path,
            "",
            f'{{from_header: true, ca: "{ca.path}"}}',
            "trusted_proxies: [10.0.0.0/8]",
        )
    )
    auth = build_mtls(loaded)
    assert auth is not None
    assert auth.from_header
    check_server(loaded, "granian")  # granian is fine behind a proxy


def test_unreadable_ca_bundle_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    loaded = load_config(
        config(
            tmp_path,
            "",
            '{from_header: true, ca: "bad.pem"}',
            "trusted_proxies: [10.0.0.0/8]",
        )
    )
    with pytest.raises(ConfigError) as info:
        build_mtls(loaded)
    assert "authentication.mtls.ca" in str(info.value)
    assert "not a PEM certificate bundle" in str(info.value)


def test_bastion_check_reports_mtls_without_a_usable_source(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    loaded = load_config(config(tmp_path, "", "{principal_from: san_uri}"))
    assert "mtls-without-source" in {f.code for f in lint(loaded) if f.severity == "error"}
    tls = f'listen: {{tls: {{cert: "{ca.path}", key: "{ca.path}", client_ca: "{ca.path}"}}}}'
    loaded = load_config(config(tmp_path, tls, "{principal_from: san_uri}"))
    assert "mtls-granian" in {f.code for f in lint(loaded) if f.severity == "warning"}
    tls = tls.replace("listen: {", "listen: {server: uvicorn, ")
    loaded = load_config(config(tmp_path, tls, "{principal_from: san_uri}"))
    assert not {f.code for f in lint(loaded)} & {"mtls-granian", "mtls-without-source"}


async def test_route_accepting_jwt_or_mtls_uses_the_certificate_without_a_token(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    # The verifier is never reached without a token.
    async with _policy(["jwt", "mtls"], native(alice=["reader"]), verifier=object()) as policy:
        cert = ca.issue(tmp_path, "mixed", cn="alice")
        context = ctx(pem=cert.pem)
        assert await policy.on_request(context) is None
        assert context.principal is not None
        assert context.principal.subject == "alice"
        assert ("x-bastion-auth", "mtls") in context.upstream_headers
        with pytest.raises(Unauthorized) as info:
            await policy.on_request(ctx())
        assert info.value.reason == "mtls.missing"
        assert info.value.headers["WWW-Authenticate"] == "Bearer, ClientCert"


# -- role / scope values (X-Bastion-Roles / X-Bastion-Scopes injection) ----------------------


@pytest.mark.parametrize(
    ("identity", "key"),
    [
        ('{roles: [reader, "x,admin"]}', "authentication.mtls.identities.alice.roles[1]"),
        ('{roles: ["a admin"]}', "authentication.mtls.identities.alice.roles[0]"),
        ('{scopes: ["read admin:all"]}', "authentication.mtls.identities.alice.scopes[0]"),
        ('{scopes: ["read\\u00a0admin"]}', "authentication.mtls.identities.alice.scopes[0]"),
    ],
)
def test_identity_roles_or_scopes_with_separators_are_a_config_error(
    tmp_path: Path, ca: CertificateAuthority, identity: str, key: str
) -> None:
    tls = f'listen: {{tls: {{cert: "{ca.path}", key: "{ca.path}", client_ca: "{ca.path}"}}}}'
    mtls = f"{{principal_from: subject_cn, identities: {{alice: {identity}}}}}"
    loaded = load_config(config(tmp_path, tls, mtls))
    with pytest.raises(ConfigError) as info:
        build_mtls(loaded)
    assert key in str(info.value)
    assert "alice" in str(info.value)


async def test_mtls_principal_with_injected_role_never_reaches_the_upstream(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    # build_mtls refuses such identities; the authentication policy checks again.
    async with _policy(["mtls"], native(alice=["customer", "x,admin"])) as policy:
        context = ctx(pem=ca.issue(tmp_path, "inject", cn="alice").pem)
        with pytest.raises(Unauthorized) as info:
            await policy.on_request(context)
        assert info.value.status == 401
        assert info.value.reason == "auth.invalid_roles"
        assert not [name for name, _ in context.upstream_headers if name.startswith("x-bastion")]


def test_a_remembered_chain_lapses_with_its_first_certificate_to_expire(tmp_path: Path) -> None:
    """A forwarded chain is verified once and remembered; on a hit only the leaf's dates
    were checked, so a leaf kept authenticating after its intermediate had expired."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = certificate_authority(tmp_path)
    now = dt.datetime.now(dt.UTC)
    issuing_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )

    def make(
        subject: str, issuer: x509.Name, key: Any, signer: Any, ends: dt.datetime, ca_: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(ends)
            .add_extension(x509.BasicConstraints(ca=ca_, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        if ca_:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
            builder = builder.add_extension(eku, critical=False)
        return builder.sign(signer, hashes.SHA256())

    inter = make(
        "Issuing CA", ca.cert.subject, issuing_key, ca.key, now + dt.timedelta(minutes=10), True
    )
    leaf = make(
        "alice", inter.subject, leaf_key, issuing_key, now + dt.timedelta(minutes=90), False
    )

    def header(cert: x509.Certificate) -> str:
        return ":" + base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode() + ":"

    authenticator = MtlsAuthenticator(
        principal_from="subject_cn",
        identities={"alice": (frozenset({"admin"}), frozenset())},
        header_cas=[ca.cert],
        trusted=TrustedProxies(["10.0.0.0/8"]),
    )

    def call(at: float) -> str:
        ctx = request_context(
            headers=[("client-cert", header(leaf)), ("client-cert-chain", header(inter))],
            client_ip="10.0.0.5",
        )
        try:
            return authenticator.authenticate(ctx, at, "ClientCert").subject
        except Unauthorized as refused:
            return str(refused.reason)

    assert call(now.timestamp()) == "alice"
    assert call(now.timestamp() + 30 * 60) == "mtls.expired"  # the intermediate ended at 10
