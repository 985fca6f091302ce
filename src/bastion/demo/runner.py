"""``bastion demo``: the demo shop behind the gateway, with the token service embedded.

Three servers on loopback in one process and one event loop: the naive shop upstream, the
token service (SQLite under the state directory), and the gateway in front of the shop,
configured from the shop's OpenAPI document. Generated keys, the databases and the audit
log go to the state directory (``~/.local/state/bastion/demo`` by default), never into the
repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from bastion.demo.shop import SHOP_OPENAPI_PATH, create_shop_app
from bastion.gateway.app import Gateway
from bastion.gateway.embedded import embedded_server
from bastion.gateway.server import create_gateway

__all__ = ["default_state_dir", "demo_config", "run_demo"]

AUDIENCE = "api://shop"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "bastion" / "demo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def demo_config(*, shop_url: str, issuer: str, state_dir: Path, port: int, admin_port: int) -> str:
    """The gateway config the demo runs (written to the state directory for reading)."""
    return f"""# Written by `bastion demo`. Development mode: plain HTTP on loopback.
version: 1
mode: development
listen: {{host: 127.0.0.1, port: {port}, server: uvicorn}}
audit:
  sink: file
  path: "{state_dir / "audit.jsonl"}"
state: {{backend: memory}}
admin: {{port: {admin_port}, token: "${{BASTION_DEMO_ADMIN_TOKEN}}"}}
monitoring:
  detectors:
    enumeration: {{distinct_objects: 10, window: 60}}
  playbooks:
    - name: demo-stop-enumeration
      when: [enumeration]
      actions: [block_principal]
      duration: 600
authentication:
  jwt:
    - issuer: {issuer}
      audiences: [{AUDIENCE}]
      algorithms: [ES256]
      discovery: true
upstreams:
  shop:
    url: {shop_url}
    timeout: {{connect: 2, read: 10, total: 15}}
    health_path: /health
apis:
  - name: shop-v2
    upstream: shop
    openapi: "{SHOP_OPENAPI_PATH}"
    paths: ["/v2/*", "/health"]
    cors: {{allow_origins: ["http://localhost:3000"]}}
  - name: shop-v1
    upstream: shop
    openapi: "{SHOP_OPENAPI_PATH}"
    paths: ["/v1/*"]
    version:
      deprecated_at: 2026-06-01T00:00:00Z
      sunset_at: 2027-12-31T00:00:00Z
      successor: shop-v2
      link: https://bastion.dev/docs/demo/migrate-to-v2
"""


def _server(app: Any, port: int) -> uvicorn.Server:
    return embedded_server(app, "127.0.0.1", port)


async def _serve(
    as_json: bool, port: int, state_dir: Path, out: Callable[[str], None], traffic: bool
) -> None:
    from bastion.identity.app import create_identity_app
    from bastion.identity.demo import prepare_demo_identity

    if port == 0 or not _port_free(port):
        if port != 0:
            print(f"bastion demo: port {port} is busy, using a free one", file=sys.stderr)
        port = _free_port()
    shop_port, identity_port, admin_port = _free_port(), _free_port(), _free_port()
    os.environ["BASTION_DEMO_ADMIN_TOKEN"] = _admin_token(state_dir)
    issuer = f"http://127.0.0.1:{identity_port}"
    shop_url = f"http://127.0.0.1:{shop_port}"
    identity = await prepare_demo_identity(state_dir, issuer, audiences=[AUDIENCE])
    config_path = state_dir / "gateway.yaml"
    config_path.write_text(
        demo_config(
            shop_url=shop_url,
            issuer=issuer,
            state_dir=state_dir,
            port=port,
            admin_port=admin_port,
        )
    )
    shop = _server(create_shop_app(), shop_port)
    tasks = [asyncio.create_task(shop.serve())]
    # The token service must be up before the gateway discovers its keys.
    placeholder: list[Gateway] = []
    bridge = _RevocationBridge(placeholder)
    id_server = _server(create_identity_app(identity.settings, events=bridge), identity_port)
    tasks.append(asyncio.create_task(id_server.serve()))
    await _started(shop, id_server)
    gateway = create_gateway(config_path)
    placeholder.append(gateway)
    gw_server = _server(gateway, port)
    tasks.append(asyncio.create_task(gw_server.serve()))
    await _started(gw_server)
    gateway_url = f"http://127.0.0.1:{port}"
    tokens = {name: await identity.token_for(name, AUDIENCE) for name in ("alice", "bob", "admin")}
    attacker_token = await identity.token_for("mallory", AUDIENCE)
    await identity.close()
    info = {
        "gateway_url": gateway_url,
        "upstream_url": shop_url,
        "identity_url": issuer,
        "jwks_url": f"{issuer}/.well-known/jwks.json",
        "tokens": tokens,
        "users": identity.users,
        "clients": identity.clients,
        "state_dir": str(state_dir),
        "audit_log": str(state_dir / "audit.jsonl"),
        "admin_url": f"http://127.0.0.1:{admin_port}",
        "dashboard_url": f"http://127.0.0.1:{admin_port}/dashboard",
        "admin_token": os.environ["BASTION_DEMO_ADMIN_TOKEN"],
    }
    if as_json:
        out(json.dumps(info))
    else:
        out(_summary(info))
    stop = asyncio.Event()
    if traffic:
        tasks.append(
            asyncio.create_task(_background_traffic(gateway_url, tokens, attacker_token, stop))
        )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in (gw_server, id_server, shop):
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


class _RevocationBridge:
    """Connects the token service's revocations and logouts to the gateway's shared state,
    so a revoked token is refused at the gateway at once."""

    def __init__(self, holder: list[Gateway]) -> None:
        self.holder = holder  # filled once the gateway exists

    async def token_revoked(self, jti: str, exp: float) -> None:
        if self.holder:
            await self.holder[0].runtime.services.store.revoke_token(jti, exp)

    async def subject_revoked(self, subject: str, not_before: float) -> None:
        if self.holder:
            await self.holder[0].runtime.services.store.revoke_subject(subject, not_before)


async def _started(*servers: uvicorn.Server) -> None:
    for _ in range(600):
        if all(s.started for s in servers):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("a demo server did not start")


def _admin_token(state_dir: Path) -> str:
    """The demo's admin credential, kept (0600) in the state directory across runs."""
    path = state_dir / "admin-token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="ascii").strip()


async def _background_traffic(
    gateway_url: str, tokens: dict[str, str], attacker: str, stop: asyncio.Event
) -> None:
    """Customers browsing their own things, then mallory enumerating other orders: the
    enumeration detector fires, the playbook blocks mallory, the dashboard shows both."""
    from bastion.observability.demo_traffic import Actor, run_traffic

    users = [
        Actor(tokens["alice"], ["/v2/orders", "/v2/orders/o-1001", "/v2/users/u-alice"]),
        Actor(tokens["bob"], ["/v2/orders", "/v2/orders/o-2001", "/health"]),
    ]
    probes = [f"/v2/orders/o-{n}" for n in range(1000, 1100)]
    await run_traffic(
        gateway_url, users, Actor(attacker, probes), stop, interval=0.5, attack_after=20
    )


def _summary(info: dict[str, Any]) -> str:
    gw = info["gateway_url"]
    lines = [
        "",
        "Bastion demo is running.",
        f"  gateway         {gw}",
        f"  shop upstream   {info['upstream_url']}  (naive on purpose: use the gateway)",
        f"  token service   {info['identity_url']}",
        f"  audit log       {info['audit_log']}",
        f"  gateway config  {info['state_dir']}/gateway.yaml",
        f"  dashboard       {info['dashboard_url']}  (admin token: {info['admin_token']})",
        "",
        "Paste these into a shell first:",
    ]
    for name, token in info["tokens"].items():
        lines.append(f"  export {name.upper()}={token}")
    lines += ["", "Then try (expected status on the left):", ""]
    for status, what, command in _examples(gw):
        lines.append(f"  {status}  {what}")
        lines.append(f"       {command}")
    lines += [
        "",
        f"Users: {', '.join(f'{u} / {p}' for u, p in info['users'].items())}",
        "Press Ctrl+C to stop.",
        "",
    ]
    return "\n".join(lines)


def _examples(gw: str) -> list[tuple[str, str, str]]:
    auth = '-H "Authorization: Bearer ${}"'
    login = '-H \'content-type: application/json\' -d \'{"username":"alice","password":"x"}\''
    return [
        ("200", "public health check", f"curl -i {gw}/health"),
        ("401", "no token", f"curl -i {gw}/v2/orders/o-1001"),
        (
            "200",
            "alice reads her own order (fraud_score stripped)",
            f"curl -i {auth.format('ALICE')} {gw}/v2/orders/o-1001",
        ),
        (
            "404",
            "alice reads bob's order (BOLA blocked)",
            f"curl -i {auth.format('ALICE')} {gw}/v2/orders/o-2001",
        ),
        (
            "200",
            "alice lists orders: only hers come back",
            f"curl -s {auth.format('ALICE')} {gw}/v2/orders",
        ),
        (
            "403",
            "alice calls an admin route (BFLA blocked)",
            f"curl -i {auth.format('ALICE')} {gw}/v2/admin/reports",
        ),
        ("200", "admin calls it", f"curl -i {auth.format('ADMIN')} {gw}/v2/admin/reports"),
        (
            "200",
            "alice's profile without password_hash / internal_notes",
            f"curl -s {auth.format('ALICE')} {gw}/v2/users/u-alice",
        ),
        (
            "400",
            "mass assignment: registering as admin",
            f'curl -i -H \'content-type: application/json\' -d \'{{"username":"eve",'
            f'"email":"eve@example.com","password":"a long enough passphrase",'
            f'"display_name":"Eve","role":"admin"}}\' {gw}/v2/users',
        ),
        (
            "200",
            "v1 is deprecated: see Deprecation, Sunset and Link",
            f"curl -i {auth.format('ALICE')} {gw}/v1/orders/o-1001",
        ),
        ("404", "undeclared path", f"curl -i {gw}/v2/debug"),
        ("405", "undeclared method", f"curl -i -X DELETE {gw}/health"),
        (
            "413",
            "oversized body",
            f"head -c 2000000 /dev/zero | curl -i -H 'content-type: application/json' "
            f"--data-binary @- {gw}/v2/login",
        ),
        (
            "429",
            "login brute force: 401s, then lockout with Retry-After",
            f"for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}} ' {login} "
            f"{gw}/v2/login; done; echo",
        ),
    ]


def run_demo(*, as_json: bool, port: int, state_dir: Path | None, traffic: bool = True) -> None:
    """Run the demo until interrupted."""
    directory = (state_dir or default_state_dir()).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)

    def out(text: str) -> None:
        print(text, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(as_json, port, directory, out, traffic))
