"""``make bench``: every target, one after another, in one run, one table.

The upstream, the proxy under test and the load generator are separate processes; each
target is stopped before the next starts. wrk drives the load where it is installed (else
bench/loadgen.py). Quote the ratios, not the absolute numbers: they come from one run on
one (shared, noisy) machine.

    .venv/bin/python bench/run.py [--duration 10] [--warmup 2] [--connections 64]
        [--threads 2] [--generator auto|wrk|python] [--only ROW ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported by tests or run from elsewhere
    sys.path.insert(0, str(HERE))

import fixtures  # noqa: E402
from loaddriver import LoadSpec, Measurement, run_load  # noqa: E402
from procs import StartFailed, stop  # noqa: E402
from targets import ROWS, Env, Row, Running, Unavailable, http, start_upstream_process  # noqa: E402


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Bastion benchmark: req/s, p50, p99 and ratios for every target.",
        epilog="Rows: " + "; ".join(row.name for row in ROWS),
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per row")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per row")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads / loadgen processes")
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="auto: wrk when installed, else the Python generator",
    )
    parser.add_argument("--only", nargs="+", metavar="ROW", help="run only these rows (by name)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = parser.parse_args(argv)
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    elif args.generator == "wrk" and not shutil.which("wrk"):
        parser.error("--generator wrk: wrk is not installed")
    return args


def _select(only: list[str] | None) -> list[Row]:
    if not only:
        return list(ROWS)
    by_name = {row.name.lower(): row for row in ROWS}
    unknown = [name for name in only if name.lower() not in by_name]
    if unknown:
        names = ", ".join(repr(row.name) for row in ROWS)
        raise SystemExit(f"unknown row(s) {unknown}; rows are: {names}")
    wanted = {name.lower() for name in only}
    return [row for row in ROWS if row.name.lower() in wanted]


def _problem(body: bytes) -> str:
    """The gist of an RFC 9457 problem body: its code and first error detail."""
    try:
        problem = orjson.loads(body)
        gist = str(problem.get("code") or problem.get("title") or "")
        errors = problem.get("errors") or []
        if errors and isinstance(errors[0], dict):
            gist += f": {errors[0].get('pointer', '')} {errors[0].get('detail', '')}".rstrip()
    except (orjson.JSONDecodeError, AttributeError):
        gist = body[:60].decode("utf-8", "replace")
    return f" ({gist})" if gist else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


def _measure_row(row: Row, env: Env, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"target": row.name, "status": "n/a", "load": os.getloadavg()[0]}
    spec: LoadSpec = row.load(env)
    running: Running | None = None
    try:
        running = row.start(env)
        status, _, body = http(
            running.base_url + spec.path, spec.method, dict(spec.headers), spec.body
        )
        if not 200 <= status < 300:
            raise Unavailable(f"{spec.method} {spec.path} answered {status}{_problem(body)}")
        if row.probe is not None:
            row.probe(env, running, spec)
        measured: Measurement = run_load(
            args.generator,
            running.base_url,
            spec,
            duration=args.duration,
            warmup=args.warmup,
            connections=args.connections,
            threads=args.threads,
            workdir=env.workdir,
        )
    except (StartFailed, Unavailable) as exc:
        result["reason"] = _first_line(exc)
        return result
    except Exception as exc:  # one broken row must never end the whole run
        result["reason"] = f"{type(exc).__name__}: {_first_line(exc)}"
        return result
    finally:
        if running is not None:
            running.stop()
    result.update(
        status="ok",
        generator=measured.generator,
        rps=measured.rps,
        p50_ms=measured.p50_ms,
        p99_ms=measured.p99_ms,
        requests=measured.requests,
        non2xx=measured.non2xx,
        errors=measured.errors,
    )
    return result


def _ratios(rows: list[Row], results: list[dict[str, Any]]) -> None:
    rps = {r["target"]: r["rps"] for r in results if r["status"] == "ok" and r["rps"] > 0}
    for row, result in zip(rows, results, strict=True):
        result["reference"], result["goal"] = row.reference, row.goal
        if result["status"] != "ok":
            continue
        if row.reference in rps:
            result["ratio"] = result["rps"] / rps[row.reference]
            if row.goal is not None:
                result["goal_met"] = result["ratio"] >= row.goal
        if row.also in rps:
            result["also"] = {"target": row.also, "ratio": result["rps"] / rps[row.also]}


def _print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Bastion bench: {args.generator}, {args.connections} connections, "
        f"{args.duration:g} s per row after {args.warmup:g} s warm-up"
    )
    for column in ("target", "req/s", "p50 ms", "p99 ms", "ratio", "vs", "goal", "notes"):
        table.add_column(column, justify="right" if column in ("req/s", "ratio") else "left")
    for r in results:
        if r["status"] != "ok":
            table.add_row(r["target"], "n/a", "", "", "", "", "", f"({r['reason']})")
            continue
        notes = []
        if r["non2xx"] or r["errors"]:
            notes.append(f"{r['non2xx']} non-2xx, {r['errors']} errors")
        if "also" in r:
            notes.append(f"{r['also']['ratio']:.2f} vs {r['also']['target']}")
        goal = ""
        if r.get("goal") is not None and "ratio" in r:
            goal = f">= {r['goal']:.2f} " + ("met" if r["goal_met"] else "MISSED")
        table.add_row(
            r["target"],
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['ratio']:.2f}" if "ratio" in r else "",
            r.get("reference") or "",
            goal,
            "; ".join(notes),
        )
    Console(width=200).print(table)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    rows = _select(args.only)
    workdir = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    private_pem, public_pem = fixtures.write_es256_key(workdir)
    spec_path = workdir / "orders-openapi.json"
    try:
        upstream, upstream_url = start_upstream_process(workdir)
    except StartFailed as exc:
        print(f"bench: the upstream did not start: {exc}", file=sys.stderr)
        return 1
    spec_path.write_bytes(orjson.dumps(fixtures.openapi_spec(upstream_url)))
    env = Env(
        workdir=workdir,
        upstream_url=upstream_url,
        private_pem=private_pem,
        public_pem=public_pem,
        token=fixtures.make_token(private_pem),
        spec_path=spec_path,
        redis_url=args.redis_url,
        run_id=uuid.uuid4().hex[:10],
    )
    results: list[dict[str, Any]] = []
    try:
        for row in rows:
            print(f"bench: {row.name} ...", file=sys.stderr, flush=True)
            results.append(_measure_row(row, env, args))
    finally:
        stop(upstream)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    _ratios(rows, results)
    _print_table(results, args)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {
            "generator": args.generator,
            "duration": args.duration,
            "warmup": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
        },
        "rows": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if args.keep:
        print(f"bench: configs and logs kept in {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
