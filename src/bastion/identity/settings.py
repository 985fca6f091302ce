"""Typed, frozen settings of the token service, loaded from YAML.

Every field carries a description; the loader names file, line and key on any error
(:class:`bastion.errors.ConfigError`). ``${NAME}`` in a string value is replaced by the
environment variable ``NAME`` (missing variable = error), so secrets stay out of the file.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from bastion.errors import ConfigError

__all__ = [
    "Argon2Settings",
    "DatabaseSettings",
    "IdentitySettings",
    "KeySettings",
    "ListenSettings",
    "LockoutSettings",
    "MfaSettings",
    "PasswordSettings",
    "SessionSettings",
    "TokenSettings",
    "load_identity_settings",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ListenSettings(_Frozen):
    host: str = Field("127.0.0.1", description="Address the service binds to.")
    port: int = Field(9443, ge=0, le=65535, description="TCP port (0 = any free port).")
    server: Literal["granian", "uvicorn"] = Field("granian", description="ASGI server.")
    tls_cert: Path | None = Field(None, description="PEM certificate chain (TLS served here).")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")

    @model_validator(mode="after")
    def _tls_pair(self) -> ListenSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class DatabaseSettings(_Frozen):
    url: str = Field(
        "sqlite+aiosqlite:///bastion-identity.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or postgresql+asyncpg://…",
    )
    migrate_on_start: bool = Field(True, description="Apply alembic migrations at startup.")


class TokenSettings(_Frozen):
    access_token_ttl: int = Field(600, ge=30, le=86400, description="RFC 9068 token lifetime, s.")
    refresh_idle_ttl: int = Field(
        14 * 86400, ge=60, description="A refresh token unused this long expires (s)."
    )
    refresh_absolute_ttl: int = Field(
        30 * 86400, ge=60, description="A refresh family ends this long after login (s)."
    )
    code_ttl: int = Field(60, ge=5, le=60, description="Authorization code lifetime (<= 60 s).")
    default_audience: str | None = Field(
        None, description="Audience when no RFC 8707 resource is sent (None = issuer)."
    )
    client_cache_ttl: float = Field(
        2.0, ge=0, le=60, description="Seconds a client record is cached in memory (0 = off)."
    )


class KeySettings(_Frozen):
    rotation_interval: int = Field(
        30 * 86400, ge=3600, description="Sign with a new ES256 key this often (s)."
    )
    publish_ahead: int = Field(
        3600, ge=0, description="A next key is published this long before it signs (s)."
    )
    jwks_max_age: int = Field(300, ge=0, le=86400, description="Cache-Control max-age of JWKS.")


class Argon2Settings(_Frozen):
    time_cost: int = Field(2, ge=1, description="Argon2id iterations.")
    memory_cost: int = Field(19456, ge=8, description="Argon2id memory in KiB.")
    parallelism: int = Field(1, ge=1, le=16, description="Argon2id lanes.")


class PasswordSettings(_Frozen):
    argon2: Argon2Settings = Field(default_factory=Argon2Settings)
    min_length: int = Field(15, ge=8, description="Minimum length without MFA (NIST: 15).")
    min_length_with_mfa: int = Field(8, ge=8, description="Minimum length when MFA is enforced.")
    max_length: int = Field(128, ge=64, le=4096, description="Maximum length (NIST: >= 64).")
    blocklist_file: Path | None = Field(None, description="Extra blocklist, one per line.")


class MfaSettings(_Frozen):
    enforce: bool = Field(False, description="Require TOTP for every login.")
    issuer_name: str = Field("Bastion", description="Label shown in authenticator apps.")
    recovery_codes: int = Field(10, ge=0, le=50, description="Recovery codes per enrolment.")


class LockoutSettings(_Frozen):
    throttle_after: int = Field(5, ge=1, description="Failures before delays start.")
    base_delay: float = Field(1.0, ge=0, description="First delay (s); doubles per failure.")
    max_delay: float = Field(300.0, ge=0, description="Upper bound of one delay (s).")
    lockout_threshold: int = Field(
        20, ge=1, le=100, description="Consecutive failures that lock the account (<= 100)."
    )
    lockout_duration: int = Field(900, ge=60, description="Seconds an account stays locked.")


class SessionSettings(_Frozen):
    idle_ttl: int = Field(3600, ge=60, le=86400, description="Session idle timeout (s).")
    absolute_ttl: int = Field(86400, ge=300, le=30 * 86400, description="Session max age (s).")
    cookie_name: str = Field("__Host-bastion-session", pattern=r"^__Host-[A-Za-z0-9_-]+$")


class IdentitySettings(_Frozen):
    version: Literal[1] = 1
    issuer: str = Field(description="Issuer URL (https in production), no trailing slash.")
    mode: Literal["production", "development"] = Field("production")
    listen: ListenSettings = Field(default_factory=ListenSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    secret_key: SecretStr = Field(
        description="base64url of >= 32 random bytes: seals TOTP seeds and signing keys, "
        "keys CSRF tokens and audit hashes. Use ${ENV}."
    )
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    keys: KeySettings = Field(default_factory=KeySettings)
    passwords: PasswordSettings = Field(default_factory=PasswordSettings)
    mfa: MfaSettings = Field(default_factory=MfaSettings)
    lockout: LockoutSettings = Field(default_factory=LockoutSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    audit: Literal["stdout", "none"] = Field("stdout", description="Where audit events go.")

    @model_validator(mode="after")
    def _check(self) -> IdentitySettings:
        if self.issuer.endswith("/") or "?" in self.issuer or "#" in self.issuer:
            raise ValueError("issuer must have no trailing slash, query or fragment")
        if not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", self.issuer):
            raise ValueError("issuer must be an http(s) URL")
        if self.mode == "production" and not self.issuer.startswith("https://"):
            raise ValueError("issuer must use https in production mode")
        if len(self.secret_bytes()) < 32:
            raise ValueError("secret_key must decode to at least 32 bytes")
        return self

    def secret_bytes(self) -> bytes:
        raw = self.secret_key.get_secret_value().strip()
        try:
            return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError:
            return b""

    @property
    def longest_token_lifetime(self) -> int:
        return self.tokens.access_token_ttl


class _Duplicate(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.key, self.line = key, line


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _key_lines(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[Any, ...], int]
) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise _Duplicate(_dotted((*path, key)), key_node.start_mark.line + 1)
            seen.add(key)
            out[(*path, key)] = key_node.start_mark.line + 1
            _key_lines(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _key_lines(item, (*path, index), out)


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise KeyError(name)
            return os.environ[name]

        return _ENV_REF.sub(repl, value)
    return value


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_identity_settings(path: str | Path) -> IdentitySettings:
    """Load and validate the YAML file; every error names ``file:line: key``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", location=str(file)) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError("invalid YAML", location=f"{file}{line}") from exc
    if not isinstance(data, dict) or root is None:
        raise ConfigError("the file must be a YAML mapping", location=str(file))
    lines: dict[tuple[Any, ...], int] = {}
    try:
        _key_lines(root, (), lines)
    except _Duplicate as dup:
        raise ConfigError("duplicate key", location=f"{file}:{dup.line}: {dup.key}") from None
    raw_secret = data.get("secret_key")
    try:
        data = _expand(data, "")
    except KeyError as exc:
        raise ConfigError(
            f"environment variable {exc.args[0]} is not set", location=str(file)
        ) from None
    try:
        settings = IdentitySettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(p for p in first["loc"] if isinstance(p, str | int))
        probe = loc
        while probe and probe not in lines:
            probe = probe[:-1]
        line_no = lines.get(probe, 1)
        key = _dotted(loc) or "(root)"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(message, location=f"{file}:{line_no}: {key}") from None
    if settings.mode == "production" and not (
        isinstance(raw_secret, str) and _ENV_REF.fullmatch(raw_secret.strip())
    ):
        line_no = lines.get(("secret_key",), 1)
        raise ConfigError(
            "in production the secret key must come from the environment: secret_key: ${NAME}",
            location=f"{file}:{line_no}: secret_key",
        )
    return settings
