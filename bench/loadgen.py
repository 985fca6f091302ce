"""The Python load generator (used where wrk is not installed): aiohttp, N processes.

Run as its own process; prints one JSON object on stdout::

    python bench/loadgen.py --url http://127.0.0.1:8000/items/u-1 --duration 10 \
        --warmup 2 --connections 64 --processes 2 [--method POST --body-file f \
        --header 'content-type: application/json']

Each process keeps ``connections / processes`` keep-alive connections busy in a closed
loop; a response counts when its body has been read completely. Latencies are measured
per request after the warm-up; requests that end with a non-2xx status or an error count
as errors (and still count toward req/s, as wrk does for non-2xx).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import orjson


async def _worker_loop(args: argparse.Namespace, connections: int) -> dict[str, Any]:
    import aiohttp

    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    body: bytes | None = args.body
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    latencies: list[float] = []
    counts = {"requests": 0, "non2xx": 0, "errors": 0, "total": 0}
    clock = time.perf_counter
    start = clock()
    measure_from = start + args.warmup
    stop_at = measure_from + args.duration

    async def one_connection(session: aiohttp.ClientSession) -> None:
        while True:
            begun = clock()
            if begun >= stop_at:
                return
            status = 0
            try:
                async with session.request(args.method, args.url, headers=headers, data=body) as r:
                    await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError, OSError):
                status = -1
            ended = clock()
            counts["total"] += 1
            if begun >= measure_from and ended <= stop_at:
                counts["requests"] += 1
                latencies.append(ended - begun)
                if status < 0:
                    counts["errors"] += 1
                elif not 200 <= status < 300:
                    counts["non2xx"] += 1

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        await asyncio.gather(*(one_connection(session) for _ in range(connections)))
    return {**counts, "latencies": latencies}


def _run_process(payload: tuple[argparse.Namespace, int]) -> dict[str, Any]:
    args, connections = payload
    return asyncio.run(_worker_loop(args, connections))


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="closed-loop HTTP/1.1 load generator")
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body-file", default=None)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    args.body = Path(args.body_file).read_bytes() if args.body_file else None
    processes = max(1, min(args.processes, args.connections))
    shares = [args.connections // processes] * processes
    for i in range(args.connections % processes):
        shares[i] += 1
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        results = pool.map(_run_process, [(args, share) for share in shares])
    latencies = sorted(x for r in results for x in r["latencies"])
    requests = sum(r["requests"] for r in results)
    summary = {
        "generator": "python",
        "requests": requests,
        "rps": requests / args.duration,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "non2xx": sum(r["non2xx"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "total_requests": sum(r["total"] for r in results),
    }
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")


if __name__ == "__main__":
    main()
