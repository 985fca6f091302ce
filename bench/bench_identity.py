"""Token endpoint benchmark: client-credentials tokens per second through a real socket.

The token service runs as its own process (``bastion identity serve``, granian or
uvicorn, one worker) on a fresh SQLite database; the load generator (bench/loadgen.py,
aiohttp, by default) runs in separate processes and POSTs ``grant_type=client_credentials``
with HTTP Basic client authentication on keep-alive connections. Every 200 is one freshly
signed ES256 RFC 9068 access token. Also printed: the Argon2id parameters and the measured
password-verification (login) time.

    .venv/bin/python bench/bench_identity.py [--duration 10] [--warmup 2]
        [--connections 32] [--server granian|uvicorn] [--generator python|wrk]

``ROWS`` plugs the same measurement into ``make bench`` (bench/run.py) through a
``bench/rows_*.py`` module that re-exports it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from loaddriver import LoadSpec, run_load  # noqa: E402
from procs import exit_on_sigterm, free_port, group_cpu_seconds, start  # noqa: E402
from targets import Env, Row, Running  # noqa: E402

BASTION = str(Path(sys.executable).with_name("bastion"))
TARGET_TOKENS_PER_SECOND = 1000.0


def _write_config(workdir: Path, port: int, server: str) -> Path:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    config = workdir / "identity.yaml"
    config.write_text(
        f"""issuer: http://127.0.0.1:{port}
mode: development
listen: {{host: 127.0.0.1, port: {port}, server: {server}}}
secret_key: {key}
database: {{url: "sqlite+aiosqlite:///{workdir / "identity.db"}"}}
audit: stdout
"""
    )
    return config


async def _register(config: Path) -> tuple[str, str]:
    from bastion.identity.service import IdentityService
    from bastion.identity.settings import load_identity_settings

    service = IdentityService(load_identity_settings(config), audit_sink=None)
    try:
        await service.start()
        client, secret = await service.clients.create(
            name="bench", grant_types=["client_credentials"], scopes=["read"], roles=["service"]
        )
    finally:
        await service.close()
    assert secret is not None
    return client.client_id, secret


@dataclass
class Prepared:
    """A configured token service with one registered client, not yet started."""

    workdir: Path
    config: Path
    port: int
    server: str
    spec: LoadSpec


def prepare(workdir: Path, server: str = "granian") -> Prepared:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = _write_config(workdir, port, server)
    client_id, secret = asyncio.run(_register(config))
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    spec = LoadSpec(
        "/token",
        method="POST",
        headers=(
            ("Authorization", f"Basic {basic}"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ),
        body=b"grant_type=client_credentials&scope=read",
    )
    return Prepared(workdir, config, port, server, spec)


def launch(prepared: Prepared) -> Running:
    proc = start(
        f"identity-{prepared.server}",
        [
            BASTION,
            "identity",
            "serve",
            "--config",
            str(prepared.config),
            "--server",
            prepared.server,
        ],
        logdir=prepared.workdir,
        ready_url=f"http://127.0.0.1:{prepared.port}/.well-known/jwks.json",
    )
    return Running(f"http://127.0.0.1:{prepared.port}", [proc])


def argon2_login_ms(rounds: int = 15) -> tuple[str, float]:
    """Median time of one Argon2id verification with the default (shipped) parameters."""
    from bastion.identity.passwords import PasswordHasher
    from bastion.identity.settings import Argon2Settings

    params = Argon2Settings()
    hasher = PasswordHasher(params)
    stored = hasher.hash("a benchmark passphrase of decent length")
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        hasher.verify(stored, "a benchmark passphrase of decent length")
        times.append(time.perf_counter() - began)
    label = f"m={params.memory_cost} KiB, t={params.time_cost}, p={params.parallelism}"
    return label, statistics.median(times) * 1000


# -- make bench integration ------------------------------------------------------------------
# bench/run.py calls ``load`` before ``start`` for every round: ``load`` prepares a fresh
# service (database, client) and ``start`` launches the one prepared last.

_PREPARED: list[Prepared] = []


def _row_load(env: Env) -> LoadSpec:
    prepared = prepare(env.workdir / f"identity-{len(_PREPARED)}")
    _PREPARED.append(prepared)
    return prepared.spec


def _row_start(env: Env) -> Running:
    return launch(_PREPARED[-1])


ROWS = [
    Row(
        name="identity token endpoint (client credentials)",
        load=_row_load,
        start=_row_start,
    )
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--processes", type=int, default=1, help="load generator processes")
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument("--generator", choices=["python", "wrk"], default="python")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="bastion-bench-identity-") as tmp:
        workdir = Path(tmp)
        prepared = prepare(workdir, args.server)
        spec = prepared.spec
        running = launch(prepared)
        try:
            pgids = running.pgids()
            result = run_load(
                args.generator,
                running.base_url,
                spec,
                duration=args.duration,
                warmup=args.warmup,
                connections=args.connections,
                threads=args.processes,
                workdir=workdir,
                cpu=lambda: group_cpu_seconds(pgids),
            )
        finally:
            running.stop()
    label, login_ms = argon2_login_ms()
    verdict = "meets" if result.rps >= TARGET_TOKENS_PER_SECOND else "BELOW"
    cpu = (
        f", {result.cpu_us_per_request:.0f} us CPU/token"
        if result.cpu_us_per_request is not None
        else ""
    )
    print(
        f"token endpoint (client credentials, {args.server}, 1 worker, {os.cpu_count()} cores): "
        f"{result.rps:.0f} tokens/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"{result.requests} requests, {result.non2xx} non-2xx, {result.errors} errors{cpu} "
        f"-> {verdict} the {TARGET_TOKENS_PER_SECOND:.0f}/s target"
    )
    if result.cpu_us_per_request:
        print(
            f"CPU-bound capacity of the service process: "
            f"{1e6 / result.cpu_us_per_request:.0f} tokens/s per fully available core"
        )
    print(f"argon2id {label}: login verification {login_ms:.0f} ms (median)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if result.non2xx == 0 and result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
