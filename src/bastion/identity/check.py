"""``bastion identity check``: every RFC 9700 and NIST SP 800-63B-4 rule with its setting.

Each rule is either fixed by construction (shown as ``enforced``) or depends on the
settings; an insecure setting is a ``fail`` in production mode and a ``warn`` in
development mode. :func:`run_checks` is pure (settings in, findings out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bastion.identity.passwords import load_blocklist
from bastion.identity.settings import IdentitySettings

__all__ = ["Finding", "failed", "run_checks"]

Status = Literal["ok", "warn", "fail"]
_WEAK_KEYS = {b"\x00" * 32, b"0" * 32, b"a" * 32}


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    setting: str
    status: Status
    note: str = ""


def run_checks(settings: IdentitySettings) -> list[Finding]:
    prod = settings.mode == "production"
    bad: Status = "fail" if prod else "warn"
    t, p, a = settings.tokens, settings.passwords, settings.passwords.argon2
    lock, sess, keys = settings.lockout, settings.sessions, settings.keys
    key = settings.secret_bytes()
    findings = [
        Finding("RFC 9700 §2.1.1 PKCE S256 for every client, plain refused", "enforced", "ok"),
        Finding("RFC 9700 §2.1 / §4.1.3 exact redirect URI matching", "enforced", "ok"),
        Finding("RFC 9700 §2.1.2 implicit grant", "not implemented", "ok"),
        Finding("RFC 9700 §2.4 resource owner password grant", "not implemented", "ok"),
        Finding("RFC 9207 iss in authorization responses", "enforced", "ok"),
        Finding(
            "RFC 6749 §4.1.2 authorization code lifetime <= 60 s, single use",
            f"code_ttl={t.code_ttl}",
            "ok",
        ),
        Finding("RFC 9700 §4.14.2 refresh rotation with reuse detection", "enforced", "ok"),
        Finding(
            "RFC 9700 §4.14.2 refresh idle expiry",
            f"refresh_idle_ttl={t.refresh_idle_ttl}",
            "ok" if t.refresh_idle_ttl <= 30 * 86400 else bad,
        ),
        Finding(
            "RFC 9700 §4.14.2 refresh absolute expiry",
            f"refresh_absolute_ttl={t.refresh_absolute_ttl}",
            "ok" if t.refresh_absolute_ttl <= 90 * 86400 else bad,
        ),
        Finding(
            "RFC 9700 §2.2 short-lived access tokens (RFC 9068)",
            f"access_token_ttl={t.access_token_ttl}",
            "ok" if t.access_token_ttl <= 3600 else bad,
        ),
        Finding(
            "RFC 9700 §2.5 client authentication (secret hashed / private_key_jwt)",
            "enforced",
            "ok",
        ),
        Finding(
            "RFC 8414 issuer uses https",
            settings.issuer,
            "ok" if settings.issuer.startswith("https://") else bad,
        ),
        Finding(
            "TLS: served here, or terminated by a trusted proxy in front",
            "listen.tls_cert set" if settings.listen.tls_cert else "plain HTTP listener",
            "ok" if settings.listen.tls_cert or not prod else "warn",
            "" if settings.listen.tls_cert else "the issuer is https: put TLS in front",
        ),
        Finding(
            "secret key strength (>= 256 bits, not trivial)",
            f"{len(key) * 8} bits",
            "ok" if len(key) >= 32 and key[:32] not in _WEAK_KEYS and len(set(key)) > 8 else "fail",
        ),
        Finding(
            "key rotation interval <= 90 days",
            f"rotation_interval={keys.rotation_interval}",
            "ok" if keys.rotation_interval <= 90 * 86400 else bad,
        ),
        Finding(
            "next key published at least one JWKS cache lifetime ahead",
            f"publish_ahead={keys.publish_ahead} jwks_max_age={keys.jwks_max_age}",
            "ok" if keys.publish_ahead >= keys.jwks_max_age else bad,
        ),
        Finding(
            "NIST 63B-4 §3.1.1.2 minimum length 15 (8 with MFA)",
            f"min_length={p.min_length} min_length_with_mfa={p.min_length_with_mfa} "
            f"mfa.enforce={settings.mfa.enforce}",
            "ok" if p.min_length >= 15 else bad,
        ),
        Finding(
            "NIST 63B-4 §3.1.1.2 at least 64 characters allowed", f"max_length={p.max_length}", "ok"
        ),
        Finding("NIST 63B-4 §3.1.1.2 no composition rules, NFKC normalisation", "enforced", "ok"),
        Finding(
            "NIST 63B-4 §3.1.1.2 blocklist of common/breached passwords",
            f"{len(load_blocklist(p.blocklist_file))} entries + context words",
            "ok" if len(load_blocklist(p.blocklist_file)) >= 1000 else bad,
        ),
        Finding(
            "Argon2id cost (>= 19 MiB, t >= 2)",
            f"m={a.memory_cost} KiB t={a.time_cost} p={a.parallelism}",
            "ok" if a.memory_cost >= 19456 and a.time_cost >= 2 else bad,
        ),
        Finding(
            "NIST 63B-4 §3.2.2 throttling, lockout after <= 100 failures",
            f"throttle_after={lock.throttle_after} lockout_threshold={lock.lockout_threshold}",
            "ok",
        ),
        Finding(
            "NIST 63B-4 §3.1.4 TOTP: one step drift, single use, sealed seeds",
            f"mfa.enforce={settings.mfa.enforce}",
            "ok",
        ),
        Finding(
            "NIST 63B-4 §5.1 session idle timeout <= 1 h",
            f"idle_ttl={sess.idle_ttl}",
            "ok" if sess.idle_ttl <= 3600 else bad,
        ),
        Finding(
            "NIST 63B-4 §5.1 session absolute timeout <= 24 h",
            f"absolute_ttl={sess.absolute_ttl}",
            "ok" if sess.absolute_ttl <= 86400 else bad,
        ),
        Finding("session cookie __Host-, Secure, HttpOnly, SameSite", sess.cookie_name, "ok"),
        Finding(
            "audit events recorded",
            f"audit={settings.audit}",
            "ok" if settings.audit != "none" else bad,
        ),
    ]
    return findings


def failed(findings: list[Finding]) -> bool:
    return any(f.status == "fail" for f in findings)
