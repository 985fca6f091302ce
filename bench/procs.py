"""Starting and stopping the benchmark's processes, each in its own session.

Every process is started with ``start_new_session=True`` so that stopping it signals its
whole process group (granian's supervisor and its workers) by that group's id, and nothing
else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Proc",
    "StartFailed",
    "exit_on_sigterm",
    "free_port",
    "group_cpu_seconds",
    "start",
    "stop",
]


class StartFailed(RuntimeError):
    """A process exited or never answered; the message is its first useful output line."""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks stop the children we started."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _first_line(log: Path) -> str:
    """The line that names the problem (with the next one when it ends with a colon)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no output"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = len(lines) - 1
    for index, line in enumerate(lines):  # prefer the line that names the problem
        if "error" in line.lower() or line.startswith("bastion:"):
            chosen = index
            break
    if chosen < 0:
        return "no output"
    line = lines[chosen]
    if line.endswith(":") and chosen + 1 < len(lines):
        line += " " + lines[chosen + 1]
    return line[:240]


def start(
    name: str,
    argv: list[str],
    *,
    logdir: Path,
    ready_url: str,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Proc:
    """Start ``argv`` and wait until ``ready_url`` answers any HTTP status."""
    log = logdir / f"{name.replace(' ', '_').replace('/', '_')}.log"
    handle = log.open("wb")
    popen = subprocess.Popen(
        argv,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    handle.close()
    proc = Proc(name, popen, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise StartFailed(_first_line(log))
        if _answers(ready_url):
            return proc
        time.sleep(0.1)
    stop(proc)
    raise StartFailed(f"{name} did not answer within {timeout:.0f} s: {_first_line(log)}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            response.read()
        return True
    except urllib.error.HTTPError:
        return True  # any status means the server is up
    except (OSError, ValueError):
        return False


def stop(proc: Proc, *, grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
    if proc.popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.popen.pid, signal.SIGTERM)
    try:
        proc.popen.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(5)
    # granian workers may outlive their supervisor by a moment: reap the group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.popen.pid, signal.SIGKILL)


def group_cpu_seconds(pgids: list[int]) -> float | None:
    """User + system CPU seconds used so far by every live process in ``pgids`` (Linux).

    CPU time per request is far less sensitive to a busy, shared machine than req/s: a
    process that waits for a core does not accumulate CPU time while it waits.
    """
    proc_root = Path("/proc")
    if not pgids or not proc_root.is_dir():
        return None
    wanted = set(pgids)
    ticks = 0
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "stat").read_text()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2 :].split()
        # after "pid (comm) ": state ppid pgrp ... utime(14th field) stime(15th)
        if int(fields[2]) in wanted:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
