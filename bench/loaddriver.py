"""Driving load from a separate process: wrk (``--latency``) or bench/loadgen.py.

Both return a :class:`Measurement`. wrk counts non-2xx/3xx answers and socket errors
separately; the Python generator reports the same two numbers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = ["LoadSpec", "Measurement", "parse_wrk", "run_load"]

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class LoadSpec:
    """What every connection sends, again and again."""

    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass
class Measurement:
    generator: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int = 0
    errors: int = 0
    #: CPU time of the target's processes per request (None where not measurable).
    cpu_us_per_request: float | None = None


CpuProbe = Callable[[], float | None]


def _cpu_per_request(before: float | None, after: float | None, requests: int) -> float | None:
    if before is None or after is None or requests <= 0:
        return None
    return (after - before) / requests * 1e6


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> Measurement:
    """Parse ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise ValueError(f"wrk printed no Requests/sec: {output.strip()[:200]}")
    percentiles: dict[str, float] = {}
    for pct, value, unit in re.findall(
        r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M
    ):
        percentiles[pct] = _ms(value, unit)
    total = re.search(r"(\d+) requests in", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Measurement(
        generator="wrk",
        rps=float(rps.group(1)),
        p50_ms=percentiles.get("50", 0.0),
        p99_ms=percentiles.get("99", 0.0),
        requests=int(total.group(1)) if total else 0,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(x) for x in sock.groups()) if sock else 0,
    )


def _lua_string(data: bytes) -> str:
    return (
        '"'
        + "".join(f"\\{b:03d}" if b < 32 or b > 126 or b in b'"\\' else chr(b) for b in data)
        + '"'
    )


def _wrk_script(spec: LoadSpec, workdir: Path) -> Path:
    lines = [f'wrk.method = "{spec.method}"']
    for name, value in spec.headers:
        lines.append(f"wrk.headers[{_lua_string(name.encode())}] = {_lua_string(value.encode())}")
    if spec.body is not None:
        lines.append(f"wrk.body = {_lua_string(spec.body)}")
    script = workdir / "wrk-request.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def _run_wrk(
    base_url: str,
    spec: LoadSpec,
    *,
    duration: float,
    warmup: float,
    connections: int,
    threads: int,
    workdir: Path,
    cpu: CpuProbe,
) -> Measurement:
    wrk = shutil.which("wrk")
    assert wrk is not None
    script = _wrk_script(spec, workdir)
    url = base_url + spec.path
    common = [wrk, f"-t{threads}", f"-c{connections}", "-s", str(script), "--latency"]
    if warmup > 0:
        subprocess.run(
            [*common, f"-d{max(1, round(warmup))}s", url],
            capture_output=True,
            check=False,
            timeout=warmup + 30,
        )
    cpu_before = cpu()
    done = subprocess.run(
        [*common, f"-d{max(1, round(duration))}s", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {(done.stderr or done.stdout).strip()[:200]}")
    measured = parse_wrk(done.stdout)
    measured.cpu_us_per_request = _cpu_per_request(cpu_before, cpu(), measured.requests)
    return measured


def _run_python(
    base_url: str,
    spec: LoadSpec,
    *,
    duration: float,
    warmup: float,
    connections: int,
    threads: int,
    workdir: Path,
    cpu: CpuProbe,
) -> Measurement:
    argv = [
        sys.executable,
        str(HERE / "loadgen.py"),
        "--url",
        base_url + spec.path,
        "--method",
        spec.method,
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--connections",
        str(connections),
        "--processes",
        str(threads),
    ]
    for name, value in spec.headers:
        argv += ["--header", f"{name}: {value}"]
    if spec.body is not None:
        body_file = workdir / "loadgen-body.bin"
        body_file.write_bytes(spec.body)
        argv += ["--body-file", str(body_file)]
    cpu_before = cpu()  # warm-up included: divided by every request sent, warm-up too
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=duration + warmup + 60
    )
    cpu_after = cpu()
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()[-200:]}")
    data = orjson.loads(done.stdout.strip().splitlines()[-1])
    return Measurement(
        generator="python",
        rps=data["rps"],
        p50_ms=data["p50_ms"],
        p99_ms=data["p99_ms"],
        requests=data["requests"],
        non2xx=data["non2xx"],
        errors=data["errors"],
        cpu_us_per_request=_cpu_per_request(cpu_before, cpu_after, data["total_requests"]),
    )


def run_load(
    generator: str,
    base_url: str,
    spec: LoadSpec,
    *,
    duration: float,
    warmup: float,
    connections: int,
    threads: int,
    workdir: Path,
    cpu: CpuProbe = lambda: None,
) -> Measurement:
    """Warm up, then measure, with ``generator`` ("wrk" or "python")."""
    runner = _run_wrk if generator == "wrk" else _run_python
    return runner(
        base_url,
        spec,
        duration=duration,
        warmup=warmup,
        connections=connections,
        threads=threads,
        workdir=workdir,
        cpu=cpu,
    )
