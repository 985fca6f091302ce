"""The identities file: who the scanner acts as.

```yaml
version: 1
identities:
  - name: alice
    roles: [user]
    login:                       # or `headers:` with static credentials
      method: POST
      path: /api/v2/login
      json: {username: alice, password: "${ALICE_PASSWORD}"}
      token: {json_pointer: /access_token}      # or {header: X-Auth-Token}
      apply: {header: Authorization, format: "Bearer {token}"}   # the default
  - name: ops
    roles: [admin]
    headers: {X-API-Key: "${OPS_KEY}"}
admin_operations: ["GET /api/v2/reports/*"]   # optional: admin-only besides the spec's labels
```

``${VAR}`` is read from the environment. An ``anonymous`` identity (no credentials) is always
added. Role labels drive the checks: an identity whose roles include ``admin`` is the
privileged one; every other named identity is a low-privilege user.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.errors import ConfigError
from bastion.scanner.probe import Probe, ProbeError
from bastion.scanner.redact import SENSITIVE_NAME, Redactor, is_credential_header
from bastion.scanner.spec import PRIVILEGED_ROLES

__all__ = [
    "ANONYMOUS",
    "IdentitiesConfig",
    "Identity",
    "load_identities",
    "load_identities_file",
    "login_all",
]

ANONYMOUS = "anonymous"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenSource(_Strict):
    json_pointer: str | None = Field(None, description="RFC 6901 pointer into the JSON body")
    header: str | None = Field(None, description="response header carrying the token")


class Apply(_Strict):
    header: str = "Authorization"
    format: str = "Bearer {token}"


class LoginFlow(_Strict):
    method: Literal["POST", "GET", "PUT"] = "POST"
    path: str
    json_body: dict[str, Any] | None = Field(None, alias="json")
    form: dict[str, str] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    token: TokenSource
    apply: Apply = Apply()


class IdentitySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    roles: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    login: LoginFlow | None = None
    owner_values: list[str] = Field(default_factory=list)
    expired_token: str | None = None


class IdentitiesFile(_Strict):
    version: Literal[1] = 1
    identities: list[IdentitySpec]
    admin_operations: list[str] = Field(
        default_factory=list,
        description='"METHOD /path" globs of operations only administrators may call',
    )


@dataclass
class Identity:
    name: str
    roles: tuple[str, ...] = ()
    static_headers: dict[str, str] = field(default_factory=dict)
    login: LoginFlow | None = None
    owner_values: set[str] = field(default_factory=set)
    expired_token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    problem: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS

    @property
    def privileged(self) -> bool:
        return any(r.lower() in PRIVILEGED_ROLES for r in self.roles)

    @property
    def usable(self) -> bool:
        return self.anonymous or (self.problem is None and bool(self.headers))


@dataclass
class IdentitiesConfig:
    """The identities file: who the scanner acts as, and what it treats as admin-only."""

    identities: list[Identity]
    admin_operations: tuple[str, ...] = ()


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"environment variable {name} is not set", location=where)
            return os.environ[name]

        return _ENV.sub(replace, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def load_identities_file(path: str | Path) -> IdentitiesConfig:
    """Parse and validate the identities file; ``anonymous`` is appended."""
    location = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", location=location) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", location=location) from exc
    try:
        parsed = IdentitiesFile.model_validate(_expand(data, location))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{loc}: {first['msg']}", location=location) from None
    names = [i.name for i in parsed.identities]
    if ANONYMOUS in names or len(set(names)) != len(names):
        raise ConfigError("identity names must be unique and not 'anonymous'", location=location)
    out = [
        Identity(
            i.name, tuple(i.roles), dict(i.headers), i.login, set(i.owner_values), i.expired_token
        )
        for i in parsed.identities
    ]
    out.append(Identity(ANONYMOUS, ("anonymous",)))
    return IdentitiesConfig(out, tuple(parsed.admin_operations))


def load_identities(path: str | Path) -> list[Identity]:
    """The identities of the file (see :func:`load_identities_file`)."""
    return load_identities_file(path).identities


def _pointer(document: Any, pointer: str) -> Any:
    if pointer in ("", "/"):
        return document
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


async def _login(probe: Probe, identity: Identity, redactor: Redactor) -> None:
    flow = identity.login
    assert flow is not None
    for key, value in {**(flow.json_body or {}), **(flow.form or {})}.items():
        if isinstance(value, str) and SENSITIVE_NAME.search(key):
            redactor.add_secret(value, f"BASTION_{identity.name}_{key}")
    headers = dict(flow.headers)
    data = None
    if flow.form is not None:
        from urllib.parse import urlencode

        data = urlencode(flow.form).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    try:
        exchange = await probe.send(
            flow.method,
            probe.base_path + flow.path,
            json=flow.json_body,
            data=data,
            headers=headers,
            identity=identity.name,
            operation="login",
            template=flow.path,
        )
    except ProbeError as exc:
        identity.problem = f"login request refused: {exc}"
        return
    if not exchange.ok:
        identity.problem = f"login failed with HTTP {exchange.status or exchange.error}"
        return
    if flow.token.header:
        token = exchange.header(flow.token.header)
    else:
        token = _pointer(exchange.json(), flow.token.json_pointer or "")
    if not isinstance(token, str) or not token:
        identity.problem = "login succeeded but no token was found where the identities file says"
        return
    identity.token = token
    redactor.add_secret(token, f"BASTION_{identity.name}_TOKEN")
    identity.headers[flow.apply.header] = flow.apply.format.format(token=token)


async def login_all(probe: Probe, identities: list[Identity], redactor: Redactor) -> None:
    """Fill every identity's auth headers (static or by logging in); record problems."""
    for identity in identities:
        identity.headers = dict(identity.static_headers)
        for name, value in identity.static_headers.items():
            if not is_credential_header(name):
                continue  # X-Tenant: acme is not a secret, and must not hide "acme" in paths
            redactor.add_secret(value, f"BASTION_{identity.name}_{name}")
            if name.lower() == "authorization" and value.lower().startswith("bearer "):
                identity.token = value[7:]
                redactor.add_secret(identity.token, f"BASTION_{identity.name}_TOKEN")
        if identity.expired_token:
            redactor.add_secret(identity.expired_token, f"BASTION_{identity.name}_EXPIRED")
        if identity.login is not None:
            await _login(probe, identity, redactor)
