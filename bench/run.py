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
from pathlib import Path
from typing import Any

import orjson

from bastion import native

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported by tests or run from elsewhere
    sys.path.insert(0, str(HERE))

from loaddriver import LoadSpec, Measurement, run_load  # noqa: E402
from procs import StartFailed, exit_on_sigterm, group_cpu_seconds, stop  # noqa: E402
from report import aggregate, markdown_table, print_table  # noqa: E402
from targets import (  # noqa: E402
    Env,
    Row,
    Running,
    Unavailable,
    all_rows,
    http,
    make_env,
    start_upstream_process,
)


def _parse(argv: list[str] | None, rows: list[Row]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Bastion benchmark: req/s, p50, p99 and ratios for every target.",
        epilog="Rows: " + "; ".join(row.name for row in rows),
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
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat every row N times (interleaved); medians"
    )
    parser.add_argument(
        "--bracket",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure each row's reference right before and right after it (default: on)",
    )
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument("--only", nargs="+", metavar="ROW", help="run only these rows (by name)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = parser.parse_args(argv)
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    elif args.generator == "wrk" and not shutil.which("wrk"):
        parser.error("--generator wrk: wrk is not installed")
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1 or args.threads < 1:
        parser.error("--rounds, --duration, --connections and --threads must be positive")
    return args


def _select(rows: list[Row], only: list[str] | None) -> list[Row]:
    if not only:
        return rows
    by_name = {row.name.lower(): row for row in rows}
    unknown = [name for name in only if name.lower() not in by_name]
    if unknown:
        names = ", ".join(repr(row.name) for row in rows)
        raise SystemExit(f"unknown row(s) {unknown}; rows are: {names}")
    wanted = {name.lower() for name in only}
    return [row for row in rows if row.name.lower() in wanted]


def schedule(rows: list[Row], bracket: bool) -> list[tuple[Row, bool]]:
    """One round's order: each row, with its reference right before and after it.

    Each entry says whether the row is measured for itself (True) or as a bracket.

    The machine's speed drifts over minutes (shared cores): a ratio is only as good as the
    closeness in time of its two measurements. Bracketing measures the reference on both
    sides of each row (A-B-A), so a linear drift cancels in the mean of the two; consecutive
    rows with the same reference share the measurement between them.
    """
    if not bracket:
        return [(row, True) for row in rows]
    by_name = {row.name: row for row in rows}
    order: list[tuple[Row, bool]] = []
    for row in rows:
        reference = by_name.get(row.reference or "")
        if reference is not None and (not order or order[-1][0] is not reference):
            order.append((reference, False))
        order.append((row, True))
        if reference is not None:
            order.append((reference, False))
    return order


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
    result: dict[str, Any] = {"status": "n/a", "loadavg_1m": os.getloadavg()[0]}
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
            cpu=lambda: group_cpu_seconds(running.pgids()) if running else None,
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
        cpu_us_per_request=measured.cpu_us_per_request,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    known = all_rows()
    args = _parse(argv, known)
    rows = _select(known, args.only)
    if args.list:
        for row in rows:
            print(row.name)
        return 0
    exit_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    try:
        upstream, upstream_url = start_upstream_process(workdir)
    except StartFailed as exc:
        print(f"bench: the upstream did not start: {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        return 1
    rounds: dict[str, list[dict[str, Any]]] = {row.name: [] for row in rows}
    order = schedule(rows, args.bracket)
    sequence = 0
    try:
        env = make_env(workdir, upstream, upstream_url, args.redis_url)
        for number in range(1, args.rounds + 1):
            for row, own in order:
                role = "" if own else " (bracket)"
                print(f"bench: round {number}/{args.rounds}: {row.name}{role} ...", file=sys.stderr)
                measured = _measure_row(row, env, args)
                measured["seq"] = sequence  # position in time, for the ratios (report.py)
                measured["bracket"] = not own
                sequence += 1
                rounds[row.name].append(measured)
    finally:
        stop(upstream)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results = aggregate(rows, rounds)
    rounds_note = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    # The contract's modules run compiled (mypyc, `make native`) or as Python: say which.
    compiled = native.compiled_modules()
    build = f"contract compiled ({len(compiled)} modules)" if compiled else "contract as Python"
    print_table(
        results,
        f"Bastion bench: {args.generator}, {args.connections} connections, {args.duration:g} s "
        f"per row after {args.warmup:g} s warm-up{rounds_note}; {build}",
    )
    if args.markdown:
        print(markdown_table(results))
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "compiled_modules": compiled,
        "settings": {
            "generator": args.generator,
            "duration": args.duration,
            "warmup": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "rounds": args.rounds,
            "bracket": args.bracket,
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
