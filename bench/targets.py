"""The benchmark rows: how each target is started, what it is sent, how it is checked.

A row whose gateway does not start (a feature not integrated yet) or whose probe shows the
feature is not actually enforced is reported as ``n/a (<reason>)`` instead of a number that
would measure something else.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fixtures
import orjson
import yaml
from loaddriver import LoadSpec
from procs import Proc, StartFailed, free_port, start, stop

__all__ = ["ROWS", "Env", "Row", "Running", "Unavailable", "all_rows"]

HERE = Path(__file__).resolve().parent


class Unavailable(RuntimeError):
    """The row cannot be measured honestly; the message says why."""


@dataclass
class Env:
    workdir: Path
    upstream_url: str
    upstream_pgid: int
    private_pem: bytes
    public_pem: Path
    token: str
    spec_path: Path
    redis_url: str
    run_id: str


@dataclass
class Running:
    base_url: str
    procs: list[Proc]
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    #: Process groups whose CPU time is charged to this target (default: its own).
    charged: list[int] = field(default_factory=list)

    def pgids(self) -> list[int]:
        return self.charged or [proc.popen.pid for proc in self.procs]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        for cleanup in self.cleanups:
            with contextlib.suppress(Exception):
                cleanup()


@dataclass(frozen=True)
class Row:
    name: str
    load: Callable[[Env], LoadSpec]
    start: Callable[[Env], Running]
    probe: Callable[[Env, Running, LoadSpec], None] | None = None
    reference: str | None = None
    goal: float | None = None
    #: A second row to compare with (shown beside the main ratio).
    also: str | None = None


# -- HTTP helper for probes ---------------------------------------------------------------


def http(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request (any status is an answer); no answer within 10 s is :class:`Unavailable`."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = {k.lower(): v for k, v in response.headers.items()}
            return response.status, answer, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    except TimeoutError:
        path = urllib.parse.urlsplit(url).path
        raise Unavailable(f"{method} {path}: no answer within 10 s") from None


def _send(running: Running, spec: LoadSpec, path: str | None = None) -> tuple[int, bytes]:
    status, _, body = http(
        running.base_url + (path or spec.path), spec.method, dict(spec.headers), spec.body
    )
    return status, body


# -- load specs ----------------------------------------------------------------------------

ITEM_PATH = "/items/" + fixtures.SUBJECT


def _get_item(env: Env) -> LoadSpec:
    return LoadSpec(ITEM_PATH)


def _get_item_with_token(env: Env) -> LoadSpec:
    return LoadSpec(ITEM_PATH, headers=(("Authorization", f"Bearer {env.token}"),))


def _post_order(env: Env) -> LoadSpec:
    return LoadSpec(
        "/orders",
        method="POST",
        headers=(("Content-Type", "application/json"),),
        body=orjson.dumps(fixtures.order_request()),
    )


# -- starting targets ----------------------------------------------------------------------


def _start_upstream(env: Env) -> Running:
    # started once for the whole run by run.py, and stopped by it
    return Running(env.upstream_url, [], charged=[env.upstream_pgid])


def start_upstream_process(workdir: Path) -> tuple[Proc, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, str(HERE / "upstream_app.py"), "--port", str(port)]
    return start("upstream", argv, logdir=workdir, ready_url=url + ITEM_PATH), url


def _start_minimal(env: Env) -> Running:
    port = free_port()
    argv = [sys.executable, str(HERE / "minimal_proxy.py"), "--port", str(port)]
    argv += ["--upstream", env.upstream_url]
    url = f"http://127.0.0.1:{port}"
    return Running(
        url, [start("minimal_proxy", argv, logdir=env.workdir, ready_url=url + ITEM_PATH)]
    )


def nginx_conf(directory: Path, port: int, upstream_url: str) -> str:
    """A non-root-safe nginx.conf: every path inside ``directory``, keepalive upstream."""
    upstream = upstream_url.removeprefix("http://")
    return f"""worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {directory}/client_body;
  proxy_temp_path {directory}/proxy;
  fastcgi_temp_path {directory}/fastcgi;
  uwsgi_temp_path {directory}/uwsgi;
  scgi_temp_path {directory}/scgi;
  upstream bench_upstream {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }}
  }}
}}
"""


def _start_nginx(env: Env) -> Running:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).is_file()), None
    )
    if nginx is None:
        raise Unavailable("nginx is not installed")
    directory = env.workdir / "nginx"
    directory.mkdir(exist_ok=True)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(nginx_conf(directory, port, env.upstream_url))
    argv = [nginx, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
    argv += ["-g", "daemon off;"]
    url = f"http://127.0.0.1:{port}"
    return Running(url, [start("nginx", argv, logdir=env.workdir, ready_url=url + ITEM_PATH)])


def _bastion_argv() -> list[str]:
    script = Path(sys.executable).parent / "bastion"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from bastion.cli import main; main()"]


def gateway_config(env: Env, name: str, port: int, **changes: Any) -> dict[str, Any]:
    """The bastion routing config, with ``changes`` applied (``route``, ``api``, top level)."""
    route_items: dict[str, Any] = {"path": "/items/{owner_id}", "methods": ["GET"], "public": True}
    route_orders: dict[str, Any] = {"path": "/orders", "methods": ["POST"], "public": True}
    route_items.update(changes.pop("route", {}))
    route_orders.update(changes.pop("orders_route", {}))
    routes = changes.pop("routes", None) or [route_items, route_orders]
    api: dict[str, Any] = {"name": "bench", "upstream": "up", "routes": routes}
    api.update(changes.pop("api", {}))
    config: dict[str, Any] = {
        "version": 1,
        "mode": "development",
        "listen": {"host": "127.0.0.1", "port": port, "graceful_timeout": 2},
        "audit": {"sink": "file", "path": str(env.workdir / f"audit-{name}.jsonl")},
        "security_headers": {"frame_options": "DENY"},
        "upstreams": {
            "up": {"url": env.upstream_url, "timeout": {"connect": 2, "read": 10, "total": 30}}
        },
        "apis": [api],
    }
    config.update(changes)
    return config


def start_gateway(env: Env, name: str, **changes: Any) -> Running:
    port = free_port()
    config = gateway_config(env, name, port, **changes)
    path = env.workdir / f"gateway-{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    url = f"http://127.0.0.1:{port}"
    argv = [*_bastion_argv(), "gateway", "--config", str(path)]
    proc = start(
        f"gateway-{name}", argv, logdir=env.workdir, ready_url=url + "/_bastion/health/live"
    )
    return Running(url, [proc])


def _jwt_changes(env: Env) -> dict[str, Any]:
    return {
        "authentication": {
            "jwt": [
                {
                    "issuer": fixtures.ISSUER,
                    "audiences": [fixtures.AUDIENCE],
                    "algorithms": ["ES256"],
                    "keys": [str(env.public_pem)],
                }
            ]
        },
        "route": {
            "public": False,
            "allow": {"roles": ["customer"]},
            "owner": {"request": "path.owner_id", "equals": "principal.sub"},
        },
    }


def _rate_limit(limit: str) -> dict[str, Any]:
    return {"route": {"rate_limit": [{"key": "ip", "limit": limit}]}}


def _redis_state(env: Env, suffix: str) -> dict[str, Any]:
    return {"backend": "redis", "url": env.redis_url, "prefix": f"bench-{env.run_id}-{suffix}"}


def _openapi_changes(env: Env) -> dict[str, Any]:
    """The spec's one operation, made public by a route override (deny by default)."""
    orders = {"path": "/orders", "methods": ["POST"], "public": True}
    return {"api": {"openapi": str(env.spec_path)}, "routes": [orders]}


# -- probes: is the feature really there? ---------------------------------------------------


def _probe_jwt(env: Env, running: Running, spec: LoadSpec) -> None:
    status, _, _ = http(running.base_url + ITEM_PATH)
    if status != 401:
        raise Unavailable(f"JWT not enforced: a request without a token got {status}")
    status, _ = _send(running, spec, "/items/u-2")
    if status not in (403, 404):
        raise Unavailable(f"owner rule not enforced: another user's object got {status}")


def _probe_rate_limit(env: Env, state: dict[str, Any] | None) -> None:
    """A twin gateway limited to 2/minute must refuse with 429 (and use Redis if asked)."""
    changes: dict[str, Any] = _rate_limit("2/minute")
    if state is not None:
        changes["state"] = state
    try:
        probe = start_gateway(env, "ratelimit-probe", **changes)
    except StartFailed as exc:
        raise Unavailable(str(exc)) from None
    try:
        statuses = [http(probe.base_url + ITEM_PATH)[0] for _ in range(4)]
    finally:
        probe.stop()
    if 429 not in statuses:
        raise Unavailable(f"rate limit not enforced: 2/minute answered {statuses}")
    if state is not None:
        try:
            if not _redis_keys(env.redis_url, state["prefix"]):
                raise Unavailable("rate limit state not written to Redis (no keys under prefix)")
        finally:
            _delete_redis_keys(env.redis_url, state["prefix"])


def _probe_memory_limit(env: Env, running: Running, spec: LoadSpec) -> None:
    _probe_rate_limit(env, None)


def _redis_keys(url: str, prefix: str) -> list[bytes]:
    """Keys holding ``prefix`` anywhere (the store puts it inside a hash tag: ``{p:rl}``)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return list(client.scan_iter(match=f"*{prefix}*", count=1000))
    finally:
        client.close()


def _delete_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        for start_at in range(0, len(keys), 500):
            client.delete(*keys[start_at : start_at + 500])
    finally:
        client.close()


def _probe_redis_limit(env: Env, running: Running, spec: LoadSpec) -> None:
    # The measured limit's counters expire within nanoseconds, so the proof that Redis
    # holds the state comes from the 2/minute twin, whose keys live for a minute.
    _probe_rate_limit(env, _redis_state(env, "probe"))


def _probe_contract(env: Env, running: Running, spec: LoadSpec) -> None:
    bad = orjson.dumps(fixtures.invalid_order_request())
    status, _, _ = http(running.base_url + "/orders", "POST", dict(spec.headers), bad)
    if status not in (400, 422):
        raise Unavailable(f"request validation not enforced: an invalid body got {status}")
    status, body = _send(running, spec)
    if fixtures.UNDECLARED_RESPONSE_FIELD.encode() in body:
        raise Unavailable("response filtering not enforced: undeclared fields passed")


# -- the rows ------------------------------------------------------------------------------


def _redis_row_start(env: Env) -> Running:
    try:
        _redis_keys(env.redis_url, "bench-ping-")
    except Exception as exc:
        raise Unavailable(f"Redis not reachable at {env.redis_url}: {exc}") from None
    state = _redis_state(env, "measure")
    running = start_gateway(env, "ratelimit-redis", state=state, **_rate_limit("100000000/second"))
    running.cleanups.append(lambda: _delete_redis_keys(env.redis_url, state["prefix"]))
    return running


ROWS: list[Row] = [
    Row("upstream direct", _get_item, _start_upstream),
    Row("nginx proxy", _get_item, _start_nginx, reference="upstream direct"),
    Row("minimal python proxy", _get_item, _start_minimal, reference="upstream direct"),
    Row(
        "bastion routing",
        _get_item,
        lambda env: start_gateway(env, "routing"),
        reference="minimal python proxy",
        goal=0.85,
    ),
    Row(
        "JWT (ES256) + roles + owner rule",
        _get_item_with_token,
        lambda env: start_gateway(env, "jwt", **_jwt_changes(env)),
        probe=_probe_jwt,
        reference="bastion routing",
        goal=0.80,
    ),
    Row(
        "rate limit (memory)",
        _get_item,
        lambda env: start_gateway(env, "ratelimit-memory", **_rate_limit("100000000/second")),
        probe=_probe_memory_limit,
        reference="bastion routing",
        goal=0.95,
    ),
    Row(
        "rate limit (Redis)",
        _get_item,
        _redis_row_start,
        probe=_probe_redis_limit,
        reference="bastion routing",
        goal=0.80,
    ),
    Row(
        "minimal python proxy (POST 2 KB)",
        _post_order,
        _start_minimal,
        reference="minimal python proxy",
    ),
    Row(
        "bastion routing (POST 2 KB)",
        _post_order,
        lambda env: start_gateway(env, "routing-post"),
        reference="minimal python proxy (POST 2 KB)",
    ),
    Row(
        "validation + response filtering",
        _post_order,
        lambda env: start_gateway(env, "contract", **_openapi_changes(env)),
        probe=_probe_contract,
        reference="bastion routing",
        goal=0.75,
        also="bastion routing (POST 2 KB)",
    ),
]


def all_rows() -> list[Row]:
    """ROWS, then the ``ROWS`` of every ``bench/rows_*.py`` module (name order).

    Other teams add their rows (token endpoint, metrics, ...) as their own module instead
    of editing this one. A module that fails to import is reported and skipped.
    """
    import importlib

    rows = list(ROWS)
    for module_path in sorted(HERE.glob("rows_*.py")):
        try:
            module = importlib.import_module(module_path.stem)
            rows.extend(module.ROWS)
        except Exception as exc:
            print(f"bench: skipping {module_path.name}: {exc!r}", file=sys.stderr)
    return rows
