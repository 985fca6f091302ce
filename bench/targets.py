"""The benchmark rows: how each target is started, what it is sent, how it is checked.

A row whose gateway does not start (a feature not integrated yet) or whose probe shows the
feature is not actually enforced is reported as ``n/a (<reason>)`` instead of a number that
would measure something else. The building blocks live in ``harness`` (Env, Running, Row),
``gateways`` (configs) and ``probes``; they are re-exported here for ``rows_*.py`` modules.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import fixtures
import orjson
from gateways import (
    ITEM_PATH,
    gateway_config,
    jwt_changes,
    openapi_changes,
    rate_limit_changes,
    redis_state,
    start_gateway,
)
from harness import Env, Row, Running, Unavailable, http
from loaddriver import LoadSpec
from probes import (
    delete_redis_keys,
    probe_contract,
    probe_jwt,
    probe_memory_limit,
    probe_redis_limit,
    redis_keys,
)
from procs import Proc, free_port, start

__all__ = [
    "ITEM_PATH",
    "ROWS",
    "Env",
    "Row",
    "Running",
    "Unavailable",
    "all_rows",
    "gateway_config",
    "http",
    "start_gateway",
    "start_upstream_process",
]

HERE = Path(__file__).resolve().parent


# -- load specs ----------------------------------------------------------------------------


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


def make_env(workdir: Path, upstream: Proc, upstream_url: str, redis_url: str) -> Env:
    """Everything the rows share: the ES256 key and token, the OpenAPI spec, ids."""
    private_pem, public_pem = fixtures.write_es256_key(workdir)
    spec_path = workdir / "orders-openapi.json"
    spec_path.write_bytes(orjson.dumps(fixtures.openapi_spec(upstream_url)))
    return Env(
        workdir=workdir,
        upstream_url=upstream_url,
        upstream_pgid=upstream.popen.pid,
        private_pem=private_pem,
        public_pem=public_pem,
        token=fixtures.make_token(private_pem),
        spec_path=spec_path,
        redis_url=redis_url,
        run_id=uuid.uuid4().hex[:10],
    )


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


def _redis_row_start(env: Env) -> Running:
    try:
        redis_keys(env.redis_url, "bench-ping-")
    except Exception as exc:
        raise Unavailable(f"Redis not reachable at {env.redis_url}: {exc}") from None
    state = redis_state(env, "measure")
    running = start_gateway(
        env, "ratelimit-redis", state=state, **rate_limit_changes("100000000/second")
    )
    running.cleanups.append(lambda: delete_redis_keys(env.redis_url, state["prefix"]))
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
        lambda env: start_gateway(env, "jwt", **jwt_changes(env)),
        probe=probe_jwt,
        reference="bastion routing",
        goal=0.80,
    ),
    Row(
        "rate limit (memory)",
        _get_item,
        lambda env: start_gateway(
            env, "ratelimit-memory", **rate_limit_changes("100000000/second")
        ),
        probe=probe_memory_limit,
        reference="bastion routing",
        goal=0.95,
    ),
    Row(
        "rate limit (Redis)",
        _get_item,
        _redis_row_start,
        probe=probe_redis_limit,
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
        lambda env: start_gateway(env, "contract", **openapi_changes(env)),
        probe=probe_contract,
        # Routing-only on the same request: the cost of the contract itself. The GET row,
        # which moves no body, is shown beside it.
        reference="bastion routing (POST 2 KB)",
        goal=0.75,
        also="bastion routing",
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
