"""The token service's tables (SQLAlchemy Core; every query is parameterised).

Times are seconds since the epoch (float). Secrets never appear in clear: client secrets,
refresh tokens, authorization codes, session ids and recovery codes are stored as keyed
hashes; TOTP seeds and private signing keys are sealed (AES-256-GCM).
The alembic migration in ``migrations/versions`` creates exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "access_tokens",
    "auth_codes",
    "clients",
    "metadata",
    "recovery_codes",
    "refresh_families",
    "refresh_tokens",
    "revoked_jtis",
    "seen_assertions",
    "sessions",
    "signing_keys",
    "users",
]

metadata = MetaData()

users = Table(
    "identity_users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("email", String(320), nullable=True),
    Column("password_hash", Text, nullable=False),
    Column("roles", Text, nullable=False, default="[]"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("mfa_seed", Text, nullable=True),
    Column("mfa_last_step", Integer, nullable=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", Float, nullable=False, default=0.0),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("not_before", Float, nullable=False, default=0.0),
    Column("created_at", Float, nullable=False),
)

recovery_codes = Table(
    "identity_recovery_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("identity_users.id"), nullable=False),
    Column("used_at", Float, nullable=True),
)

clients = Table(
    "identity_clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("auth_method", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=True),
    Column("jwks", Text, nullable=True),
    Column("jwt_alg", String(16), nullable=True),
    Column("redirect_uris", Text, nullable=False, default="[]"),
    Column("grant_types", Text, nullable=False, default="[]"),
    Column("scopes", Text, nullable=False, default="[]"),
    Column("audiences", Text, nullable=False, default="[]"),
    Column("roles", Text, nullable=False, default="[]"),
    Column("require_mfa", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

sessions = Table(
    "identity_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("identity_users.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("mfa", Boolean, nullable=False, default=False),
    Column("revoked_at", Float, nullable=True),
)

auth_codes = Table(
    "identity_auth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("session_hash", String(64), nullable=True),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("resource", Text, nullable=True),
    Column("code_challenge", String(128), nullable=False),
    Column("family_id", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("consumed_at", Float, nullable=True),
)

refresh_families = Table(
    "identity_refresh_families",
    metadata,
    Column("family_id", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("session_hash", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoked_reason", String(64), nullable=True),
    Index("ix_identity_families_user", "user_id"),
    Index("ix_identity_families_session", "session_hash"),
)

refresh_tokens = Table(
    "identity_refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("resource", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("consumed_at", Float, nullable=True),
    Index("ix_identity_refresh_family", "family_id"),
)

access_tokens = Table(
    "identity_access_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_identity_access_family", "family_id"),
)

revoked_jtis = Table(
    "identity_revoked_jtis",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
)

seen_assertions = Table(
    "identity_seen_assertions",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("expires_at", Float, nullable=False),
)

signing_keys = Table(
    "identity_signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("sealed_private", Text, nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("activated_at", Float, nullable=True),
    Column("retire_at", Float, nullable=True),
)
