"""Where the gateway's time goes: cProfile of the Bastion ASGI app, in-process, no server.

Starts the bench upstream (a separate process), builds the gateway for one bench row's
config and calls the ASGI app directly (``--concurrency`` requests in flight), so the
profile holds the gateway's own work plus the aiohttp upstream client, without granian.

    .venv/bin/python bench/profile_gateway.py --row "bastion routing" --requests 5000

``--cpu ROW ...`` measures instead of profiling: the gateway's own CPU time per request
(``time.process_time`` of this process: the gateway and its upstream client, not the
upstream), for several rows interleaved over ``--rounds``, medians printed side by side.
No server and no load generator share the cores, so differences of a few µs show:

    .venv/bin/python bench/profile_gateway.py --cpu "bastion routing" "rate limit (memory)"
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from gateways import jwt_changes, openapi_changes, rate_limit_changes, redis_state  # noqa: E402
from procs import exit_on_sigterm, stop  # noqa: E402
from targets import ROWS, Env, gateway_config, make_env, start_upstream_process  # noqa: E402

_CHANGES = {
    "bastion routing": lambda env: {},
    "bastion routing (POST 2 KB)": lambda env: {},
    "JWT (ES256) + roles + owner rule": jwt_changes,
    "rate limit (memory)": lambda env: rate_limit_changes("100000000/second"),
    "rate limit (Redis)": lambda env: {
        "state": redis_state(env, "profile"),
        **rate_limit_changes("100000000/second"),
    },
    "validation + response filtering": openapi_changes,
}


async def _drive(
    app: Any, env: Env, row_name: str, requests: int, concurrency: int
) -> tuple[float, float]:
    row = next(r for r in ROWS if r.name == row_name)
    spec = row.load(env)
    headers = [(b"host", b"127.0.0.1")]
    headers += [(k.lower().encode(), v.encode()) for k, v in spec.headers]
    if spec.body is not None:
        headers.append((b"content-length", str(len(spec.body)).encode()))
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": spec.method,
        "scheme": "http",
        "path": spec.path,
        "raw_path": spec.path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    statuses: dict[int, int] = {}

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": spec.body or b"", "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(dict(scope), receive, send)

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await app.startup()
    await asyncio.gather(*(worker(2) for _ in range(concurrency)))  # warm pools and caches
    statuses.clear()
    begun, cpu = time.perf_counter(), time.process_time()
    share = requests // concurrency
    await asyncio.gather(*(worker(share) for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - begun, time.process_time() - cpu
    await app.shutdown(grace=1)
    print(f"statuses: {statuses}", file=sys.stderr)
    return elapsed / (share * concurrency), cpu / (share * concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--row", default="bastion routing", choices=sorted(_CHANGES))
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    parser.add_argument(
        "--cpu", nargs="+", metavar="ROW", help="measure, not profile (a row may repeat)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --cpu: rounds per row")
    args = parser.parse_args()

    from bastion.config import load_config
    from bastion.gateway.server import create_gateway

    exit_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="bastion-profile-"))
    upstream, upstream_url = start_upstream_process(workdir)
    try:
        env = make_env(workdir, upstream, upstream_url, "redis://127.0.0.1:6379/0")

        def build(row: str) -> Any:
            config = gateway_config(env, "profile", 0, **_CHANGES[row](env))
            path = workdir / "gateway-profile.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            load_config(path)  # clear errors before profiling
            return create_gateway(path, serving=True)  # GC tuned as in a server worker

        if args.cpu:
            unknown = sorted(set(args.cpu) - set(_CHANGES))
            if unknown:
                parser.error(f"unknown rows {unknown}; rows are {sorted(_CHANGES)}")
            samples: list[list[float]] = [[] for _ in args.cpu]
            for _ in range(args.rounds):
                for index, row in enumerate(args.cpu):
                    _, cpu = asyncio.run(
                        _drive(build(row), env, row, args.requests, args.concurrency)
                    )
                    samples[index].append(cpu)
            base = statistics.median(samples[0])
            for row, values in zip(args.cpu, samples, strict=True):
                median = statistics.median(values)
                print(
                    f"{row:40} {median * 1e6:7.1f} µs CPU/request"
                    f"  (ratio to first {base / median:.2f};"
                    f" rounds {', '.join(f'{v * 1e6:.0f}' for v in values)})"
                )
            return
        app = build(args.row)
        profiler = cProfile.Profile(time.process_time)  # CPU time: immune to preemption
        profiler.enable()
        per_request, _ = asyncio.run(_drive(app, env, args.row, args.requests, args.concurrency))
        profiler.disable()
    finally:
        stop(upstream)
    print(f"{args.row}: {per_request * 1e6:.0f} µs wall per request under the profiler")
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
