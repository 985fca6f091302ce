"""What every benchmark row is made of: the environment, a running target, a row.

Also the one HTTP helper the probes use. Other teams' ``bench/rows_*.py`` modules build
their rows from these (re-exported by ``targets``).
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loaddriver import LoadSpec
from procs import Proc, stop

__all__ = ["Env", "Row", "Running", "Unavailable", "http", "send"]


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


def send(running: Running, spec: LoadSpec, path: str | None = None) -> tuple[int, bytes]:
    status, _, body = http(
        running.base_url + (path or spec.path), spec.method, dict(spec.headers), spec.body
    )
    return status, body
