"""Audit search over the JSON-lines audit file (with its rotated siblings) or the database.

Filters: principal, route (the template, e.g. ``/orders/{order_id}``, or a path prefix
ending in ``*``), status (``404`` or a class ``4xx``), event type and a time range. Times
are ISO-8601 (``2026-11-28T04:00:00Z``), unix seconds, or relative (``15m``, ``2h``, ``7d``
ago).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Query", "parse_time", "search_file"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_time(text: str, now: float | None = None) -> float:
    """Unix seconds from ISO-8601, a number, or a relative duration (meaning that long ago)."""
    text = text.strip()
    now = time.time() if now is None else now
    if text and text[-1] in _UNITS and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * _UNITS[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO-8601, unix seconds, or 15m/2h/7d)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def event_time(event: Mapping[str, Any]) -> float | None:
    value = event.get("time")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Query:
    principal: str | None = None
    route: str | None = None
    status: str | None = None
    event: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 1000

    def status_range(self) -> tuple[int, int] | None:
        if self.status is None:
            return None
        text = self.status.lower()
        if len(text) == 3 and text.endswith("xx") and text[0].isdigit():
            low = int(text[0]) * 100
            return low, low + 99
        if text.isdigit():
            return int(text), int(text)
        raise ValueError(f"status {self.status!r} must be like 404 or 4xx")

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.event is not None and event.get("event") != self.event:
            return False
        if self.principal is not None and event.get("principal") != self.principal:
            return False
        if self.route is not None:
            route = event.get("route") or ""
            if self.route.endswith("*"):
                path = str(event.get("path") or "")
                prefix = self.route[:-1]
                if not (str(route).startswith(prefix) or path.startswith(prefix)):
                    return False
            elif route != self.route:
                return False
        bounds = self.status_range()
        if bounds is not None:
            status = event.get("status")
            if not isinstance(status, int) or not bounds[0] <= status <= bounds[1]:
                return False
        if self.since is not None or self.until is not None:
            at = event_time(event)
            if at is None:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at > self.until:
                return False
        return True


def _files(path: Path) -> list[Path]:
    """Rotated files oldest first: path.N ... path.1, then path."""
    rotated = []
    for candidate in path.parent.glob(path.name + ".*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if path.exists() else [])


def search_file(path: Path, query: Query) -> Iterator[dict[str, Any]]:
    """Matching events in file order (oldest first), at most ``query.limit``."""
    found = 0
    for file in _files(path):
        with file.open("rb") as fh:
            for line in fh:
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line while the gateway writes
                if isinstance(event, dict) and query.matches(event):
                    yield event
                    found += 1
                    if found >= query.limit:
                        return
