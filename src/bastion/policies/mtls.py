"""mTLS client identity: a verified client certificate becomes the :class:`Principal`.

Two sources, chosen once at startup (``authentication.mtls``):

* native: the TLS handshake verified the certificate against ``listen.tls.client_ca``
  and the ASGI server passed it in the ASGI ``tls`` extension (uvicorn, through
  :mod:`bastion.gateway.tls_scope`). It is parsed here, and its validity period is
  checked again on every request (a keep-alive connection may outlive the certificate).
* RFC 9440 ``Client-Cert`` / ``Client-Cert-Chain`` header fields, written by a
  TLS-terminating proxy, believed only when the direct TCP peer is in ``trusted_proxies``
  and only with ``from_header: true``. The proxy may be configured to pass certificates
  it did not verify, so the chain is verified here (``cryptography.x509.verification``,
  RFC 5280 path validation against ``mtls.ca``): validity period, signature chain, and
  EKU ``clientAuth`` when the certificate restricts its key usage. When the peer is a
  trusted proxy, only the header counts: the proxy's own TLS certificate names the proxy,
  not the caller. The header from any other peer is ignored (and never forwarded:
  :mod:`bastion.gateway.headers` strips it).

The principal's subject is the identity ``principal_from`` names (the subject CN, the one
URI / DNS / email SAN, or the RFC 4514 subject); roles and scopes come from
``identities``. Its claims carry ``cnf.x5t#S256`` (RFC 8705 §3.1 thumbprint), serial,
issuer, subject and SANs. Failures are ``401`` with a short detail; the precise reason
(``mtls.missing``, ``mtls.untrusted``, ``mtls.expired``, ``mtls.eku``, ``mtls.no_identity``
…) goes to the audit event only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from bastion.config import LoadedConfig
from bastion.config.loader import KeyPath
from bastion.errors import ConfigError, Unauthorized
from bastion.gateway.request import TrustedProxies
from bastion.tokens.labels import is_valid_role, is_valid_scope
from bastion.types import Principal, RequestContext

__all__ = [
    "CHALLENGE",
    "MtlsAuthenticator",
    "build_mtls",
    "check_server",
    "parse_client_cert_chain",
    "parse_sf_binary",
]

#: The ``WWW-Authenticate`` challenge of mTLS routes. No HTTP authentication scheme is
#: registered for TLS client certificates, yet RFC 9110 §15.5.2 requires a challenge on
#: every 401: this token tells the client to retry the handshake with a certificate.
CHALLENGE = "ClientCert"

_CACHE_MAX = 4096
_IDENTITY_FIELDS = {
    "subject_cn": "subject CN",
    "san_uri": "URI SAN",
    "san_dns": "DNS SAN",
    "san_email": "email SAN",
    "subject": "subject",
}


@dataclass(frozen=True, slots=True)
class _Identity:
    """What one certificate proves, computed once per certificate (cached)."""

    principal: Principal | None
    #: Why the certificate yields no principal (``mtls.no_identity`` …), else None.
    failure: str | None
    not_before: float
    not_after: float


class MtlsAuthenticator:
    """Turns the request's client certificate into a :class:`Principal` (or raises 401)."""

    def __init__(
        self,
        *,
        principal_from: str,
        identities: Mapping[str, tuple[frozenset[str], frozenset[str]]],
        header_cas: Sequence[x509.Certificate] = (),
        trusted: TrustedProxies | None = None,
    ) -> None:
        if principal_from not in _IDENTITY_FIELDS:
            raise ValueError(f"unknown principal_from {principal_from!r}")
        self._principal_from = principal_from
        self._identities = dict(identities)
        self._store = Store(list(header_cas)) if header_cas else None
        self._trusted = trusted if self._store is not None else None
        self._native: dict[str, _Identity] = {}
        self._verified: dict[bytes, _Identity] = {}
        self._ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            # A client certificate named by its subject CN need not carry SANs.
            x509.SubjectAlternativeName,
            Criticality.AGNOSTIC,
            None,
        )

    @property
    def from_header(self) -> bool:
        return self._trusted is not None

    def authenticate(self, ctx: RequestContext, now: float, challenge: str) -> Principal:
        """The principal of ``ctx``'s client certificate; 401 with ``challenge`` if none."""
        header = self._trusted is not None and self._trusted.trusts(ctx.peer_ip)
        if header:
            identity = self._from_header(ctx, now, challenge)
        else:
            if "client-cert" in ctx.headers:
                # Not a trusted proxy: the header is ignored (and stripped before forwarding).
                ctx.audit["mtls_header_ignored"] = True
            pem = ctx.client_cert
            if pem is None:
                raise _fail("mtls.missing", challenge)
            cached = self._native.get(pem)
            if cached is None:
                cached = self._parse_native(pem)
                _remember(self._native, pem, cached)
            identity = cached
        if now < identity.not_before:
            raise _fail("mtls.not_yet_valid", challenge)
        if now > identity.not_after:
            raise _fail("mtls.expired", challenge)
        if identity.principal is None:
            field = _IDENTITY_FIELDS[self._principal_from]
            raise Unauthorized(
                f"The client certificate carries no single {field} to identify the caller.",
                reason=identity.failure or "mtls.no_identity",
                scheme=challenge,
            )
        return identity.principal

    # -- native (verified by the TLS handshake) -------------------------------------------

    def _parse_native(self, pem: str) -> _Identity:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except ValueError:
            # The server verified it, so this only happens with a broken ASGI server.
            return _Identity(None, "mtls.unparsable", 0.0, 0.0)
        return self._identity(cert, "tls")

    # -- RFC 9440 header (verified here) --------------------------------------------------

    def _from_header(self, ctx: RequestContext, now: float, challenge: str) -> _Identity:
        values = ctx.headers.get_all("client-cert")
        if not values:
            raise _fail("mtls.missing", challenge)
        if len(values) > 1:
            raise _fail("mtls.header_multiple", challenge)
        try:
            der = parse_sf_binary(values[0])
            chain = parse_client_cert_chain(ctx.headers.get_all("client-cert-chain"))
        except ValueError:
            raise _fail("mtls.header_malformed", challenge) from None
        key = hashlib.sha256(b"".join([der, *chain])).digest()
        identity = self._verified.get(key)
        if identity is not None:
            return identity
        try:
            leaf = x509.load_der_x509_certificate(der)
            intermediates = [x509.load_der_x509_certificate(item) for item in chain]
        except ValueError:
            raise _fail("mtls.header_malformed", challenge) from None
        if now > leaf.not_valid_after_utc.timestamp():
            raise _fail("mtls.expired", challenge)
        if now < leaf.not_valid_before_utc.timestamp():
            raise _fail("mtls.not_yet_valid", challenge)
        assert self._store is not None
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(dt.datetime.fromtimestamp(now, dt.UTC))
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=self._ee_policy
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, intermediates)
        except VerificationError as exc:
            message = str(exc)
            ctx.audit["mtls_error"] = message[:300]
            reason = "mtls.eku" if "EKU" in message else "mtls.untrusted"
            raise _fail(reason, challenge) from None
        identity = self._identity(leaf, "header")
        # Remembered for as long as the whole path is valid, not only the leaf: an
        # intermediate expiring first used to keep authenticating from the cache.
        identity = dataclasses.replace(
            identity,
            not_before=max(c.not_valid_before_utc.timestamp() for c in verified.chain),
            not_after=min(c.not_valid_after_utc.timestamp() for c in verified.chain),
        )
        _remember(self._verified, key, identity)
        return identity

    # -- identity ---------------------------------------------------------------------------

    def _identity(self, cert: x509.Certificate, source: str) -> _Identity:
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
        sans = _sans(cert)
        candidates: list[str]
        match self._principal_from:
            case "subject":
                candidates = [cert.subject.rfc4514_string()]
            case "subject_cn":
                candidates = [
                    str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                ]
            case "san_uri":
                candidates = sans["uri"]
            case "san_dns":
                candidates = sans["dns"]
            case _:
                candidates = sans["email"]
        candidates = [c for c in candidates if c]
        if len(candidates) != 1:
            failure = "mtls.no_identity" if not candidates else "mtls.ambiguous_identity"
            return _Identity(None, failure, not_before, not_after)
        subject = candidates[0]
        roles, scopes = self._identities.get(subject, (frozenset(), frozenset()))
        thumbprint = (
            base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode("ascii")
        )
        claims: dict[str, Any] = {
            "cnf": {"x5t#S256": thumbprint},
            "serial": format(cert.serial_number, "x"),
            "subject_dn": cert.subject.rfc4514_string(),
            "issuer_dn": cert.issuer.rfc4514_string(),
            "san": sans,
            "not_after": int(not_after),
            "source": source,
        }
        principal = Principal(
            subject=subject,
            kind="mtls",
            issuer=cert.issuer.rfc4514_string(),
            roles=roles,
            scopes=scopes,
            claims=claims,
            credential_id=thumbprint,
        )
        return _Identity(principal, None, not_before, not_after)


def _sans(cert: x509.Certificate) -> dict[str, list[str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {"uri": [], "dns": [], "email": [], "ip": []}
    return {
        "uri": list(ext.get_values_for_type(x509.UniformResourceIdentifier)),
        "dns": list(ext.get_values_for_type(x509.DNSName)),
        "email": list(ext.get_values_for_type(x509.RFC822Name)),
        "ip": [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)],
    }


def _fail(reason: str, challenge: str) -> Unauthorized:
    detail = (
        "A client certificate is required."
        if reason == "mtls.missing"
        else "The client certificate is not valid."
    )
    return Unauthorized(detail, reason=reason, scheme=challenge)


def _remember(cache: dict[Any, _Identity], key: Any, identity: _Identity) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = identity


# -- RFC 9440 / RFC 8941 field values -------------------------------------------------------


def parse_sf_binary(value: str) -> bytes:
    """An RFC 8941 §3.3.5 byte sequence (``:base64:``) -> bytes; ValueError if malformed."""
    text = value.strip(" \t")
    if len(text) < 2 or text[0] != ":" or text[-1] != ":":
        raise ValueError("not a structured-field byte sequence")
    try:
        data = base64.b64decode(text[1:-1], validate=True)
    except binascii.Error as exc:
        raise ValueError("invalid base64 in byte sequence") from exc
    if not data:
        raise ValueError("empty byte sequence")
    return data


def parse_client_cert_chain(values: Sequence[str]) -> list[bytes]:
    """RFC 9440 §2.3 ``Client-Cert-Chain``: a list of byte sequences (over several lines)."""
    out: list[bytes] = []
    for value in values:
        for member in value.split(","):
            if member.strip(" \t"):
                out.append(parse_sf_binary(member))
    return out


# -- building from config ---------------------------------------------------------------------


def build_mtls(loaded: LoadedConfig) -> MtlsAuthenticator | None:
    """The authenticator for ``authentication.mtls``, or None; ConfigError naming the key."""
    config = loaded.config
    mtls = config.authentication.mtls
    if mtls is None:
        return None
    where = loaded.source.location
    tls = config.listen.tls
    client_ca = tls.client_ca if tls is not None else None
    if client_ca is None and not mtls.from_header:
        raise ConfigError(
            "no source of client certificates: set listen.tls.client_ca "
            "(the TLS handshake verifies them) and/or from_header: true (a TLS-terminating "
            "proxy in trusted_proxies passes them in the RFC 9440 Client-Cert header)",
            location=where(("authentication", "mtls")),
        )
    header_cas: list[x509.Certificate] = []
    if mtls.from_header:
        if not config.trusted_proxies:
            raise ConfigError(
                "from_header: true needs trusted_proxies: the Client-Cert header is believed "
                "only from those peers",
                location=where(("authentication", "mtls", "from_header")),
            )
        if mtls.ca is not None:
            header_cas = _load_cas(loaded, mtls.ca, ("authentication", "mtls", "ca"))
        elif client_ca is not None:
            header_cas = _load_cas(loaded, client_ca, ("listen", "tls", "client_ca"))
        else:
            raise ConfigError(
                "from_header: true needs a CA to verify the forwarded certificates: set "
                "authentication.mtls.ca (or listen.tls.client_ca)",
                location=where(("authentication", "mtls", "ca")),
            )
    elif client_ca is not None:
        _load_cas(loaded, client_ca, ("listen", "tls", "client_ca"))  # fail fast on a bad file
    for name, ident in mtls.identities.items():
        for field, values, valid, rule in (
            ("roles", ident.roles, is_valid_role, "no ',', whitespace or control characters"),
            ("scopes", ident.scopes, is_valid_scope, "RFC 6749 scope-token characters only"),
        ):
            for position, value in enumerate(values):
                if not valid(value):
                    raise ConfigError(
                        f"{field[:-1]} {value!r} of identity {name!r} is not valid ({rule}): "
                        f"it is sent upstream in the X-Bastion-{field.capitalize()} header",
                        location=where(
                            ("authentication", "mtls", "identities", name, field, position)
                        ),
                    )
    return MtlsAuthenticator(
        principal_from=mtls.principal_from,
        identities={
            name: (frozenset(ident.roles), frozenset(ident.scopes))
            for name, ident in mtls.identities.items()
        },
        header_cas=header_cas,
        trusted=TrustedProxies(config.trusted_proxies) if mtls.from_header else None,
    )


def check_server(loaded: LoadedConfig, server: str) -> None:
    """Refuse mTLS identity that ``server`` cannot deliver to the app (granian)."""
    config = loaded.config
    mtls = config.authentication.mtls
    if mtls is None or mtls.from_header or server != "granian":
        return
    raise ConfigError(
        "mTLS identity needs the client certificate inside the app, and granian "
        "verifies client certificates but cannot pass them to the app: use "
        "listen.server: uvicorn, or a TLS-terminating proxy with from_header: true",
        location=loaded.source.location(("authentication", "mtls")),
    )


def _load_cas(loaded: LoadedConfig, path: Any, key: KeyPath) -> list[x509.Certificate]:
    resolved = loaded.resolve(path)
    try:
        cas = x509.load_pem_x509_certificates(resolved.read_bytes())
    except OSError as exc:
        raise ConfigError(
            f"cannot read CA bundle {resolved}: {exc.strerror}",
            location=loaded.source.location(key),
        ) from None
    except ValueError:
        raise ConfigError(
            f"{resolved} is not a PEM certificate bundle", location=loaded.source.location(key)
        ) from None
    return cas
