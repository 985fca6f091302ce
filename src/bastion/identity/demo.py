"""The token service as ``bastion demo`` runs it: embedded, SQLite under the state dir.

``prepare_demo_identity`` is idempotent: it creates the secret key file (0600), the
database, the signing keys, the users alice, bob and admin and one confidential demo
client the first time, and reuses them afterwards (the client secret is rotated on each
run, because only its hash is stored). ``DemoIdentity.token_for`` mints a real RFC 9068
token through the same issuing path the token endpoint uses.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette

from bastion.identity.app import create_identity_app
from bastion.identity.service import IdentityService
from bastion.identity.settings import IdentitySettings

__all__ = ["DEMO_PASSWORDS", "DEMO_USERS", "DemoIdentity", "prepare_demo_identity"]

#: username -> (subject, roles)
DEMO_USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alice": ("u-alice", ("customer",)),
    "bob": ("u-bob", ("customer",)),
    "admin": ("u-admin", ("admin",)),
    # The demo's background attacker: enumerates other customers' orders until blocked.
    "mallory": ("u-mallory", ("customer",)),
}
DEMO_PASSWORDS = {
    "alice": "alice-demo-password-2026",
    "bob": "bob-demo-password-2026",
    "admin": "admin-demo-password-2026",
    "mallory": "mallory-demo-password-2026",
}
DEMO_CLIENT_ID = "bastion-demo"
DEMO_SCOPES = ("read", "write")


@dataclass
class DemoIdentity:
    settings: IdentitySettings
    users: dict[str, str]
    clients: dict[str, dict[str, str]]
    _service: IdentityService | None = field(default=None, repr=False)

    def app(self) -> Starlette:
        """A fresh ASGI app of the token service for these settings."""
        return create_identity_app(self.settings)

    async def _svc(self) -> IdentityService:
        if self._service is None:
            service = IdentityService(self.settings)
            await service.keys.reload()
            self._service = service
        return self._service

    async def token_for(self, username: str, audience: str) -> str:
        """A real access token for a demo user (sub = user id, roles, scope)."""
        service = await self._svc()
        user = await service.users.by_username(username)
        client = await service.clients.get(DEMO_CLIENT_ID, fresh=True)
        if user is None or client is None:
            raise KeyError(username)
        return await service.issue_user_token(
            user, client, sorted(client.scopes), audience, grant="demo"
        )

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = None


def _secret_key(state_dir: Path) -> str:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "identity-secret.key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


async def prepare_demo_identity(
    state_dir: Path,
    issuer: str,
    *,
    audiences: Sequence[str] = ("api://demo",),
) -> DemoIdentity:
    key = _secret_key(state_dir)
    settings = IdentitySettings.model_validate(
        {
            "issuer": issuer.rstrip("/"),
            "mode": "development",
            "secret_key": key,
            "database": {"url": f"sqlite+aiosqlite:///{state_dir / 'identity.db'}"},
            "audit": "none",
        }
    )
    service = IdentityService(settings)
    try:
        await service.start()
        now = service.clock()
        for name, (subject, roles) in DEMO_USERS.items():
            if await service.users.by_username(name) is None:
                await service.users.add(
                    name, DEMO_PASSWORDS[name], roles=roles, user_id=subject, now=now
                )
        if await service.clients.get(DEMO_CLIENT_ID, fresh=True) is None:
            _, secret = await service.clients.create(
                client_id=DEMO_CLIENT_ID,
                name="Bastion demo",
                grant_types=["client_credentials", "authorization_code", "refresh_token"],
                redirect_uris=["http://127.0.0.1/callback"],
                scopes=DEMO_SCOPES,
                audiences=[*audiences, settings.issuer],
                roles=["service"],
            )
        else:
            secret = await service.clients.rotate_secret(DEMO_CLIENT_ID)
        assert secret is not None
    finally:
        await service.close()
    return DemoIdentity(
        settings=settings,
        users=dict(DEMO_PASSWORDS),
        clients={"demo": {"client_id": DEMO_CLIENT_ID, "client_secret": secret}},
    )
