"""Deprecation and sunset headers for API versions.

* RFC 9745 ``Deprecation``: a Structured Field Date (RFC 9651 §3.3.7), ``@<epoch seconds>``,
  e.g. ``Deprecation: @1688169599``; ``Link: <…>; rel="deprecation"`` (§3) points to the
  human-readable deprecation policy.
* RFC 8594 ``Sunset``: an HTTP-date (IMF-fixdate, RFC 9110 §5.6.7), e.g.
  ``Sunset: Sat, 31 Dec 2033 23:59:59 GMT``; ``Link: <…>; rel="sunset"`` (§6).
* ``rel="successor-version"`` (RFC 5829 §3.4) names the version that replaces this one.

Config dates may be given as ``datetime``/``date`` objects, ISO 8601 strings
(``2025-06-30``, ``2025-06-30T12:00:00Z``), IMF-fixdates, or ``@epoch``; naive values are
UTC. Errors are :class:`~bastion.errors.ConfigError` (this runs at load time).
"""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime, parsedate_to_datetime

from bastion.errors import ConfigError

__all__ = [
    "DateLike",
    "deprecation_headers",
    "deprecation_value",
    "parse_deprecation",
    "parse_sunset",
    "sunset_value",
    "to_datetime",
]

DateLike = dt.datetime | dt.date | str | int


def to_datetime(value: DateLike) -> dt.datetime:
    """An aware UTC datetime from any accepted config date form."""
    if isinstance(value, bool):
        raise ConfigError(f"not a date: {value!r}")
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, dt.date):
        result = dt.datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        if text.startswith("@") and text[1:].lstrip("-").isdigit():
            return dt.datetime.fromtimestamp(int(text[1:]), dt.UTC)
        try:
            result = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                result = parsedate_to_datetime(text)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"not a date: {value!r}") from exc
    if result.tzinfo is None:
        result = result.replace(tzinfo=dt.UTC)
    return result.astimezone(dt.UTC)


def deprecation_value(when: DateLike) -> str:
    """RFC 9745 §2.1: ``@<seconds since the epoch>``."""
    return f"@{int(to_datetime(when).timestamp())}"


def sunset_value(when: DateLike) -> str:
    """RFC 8594 §3: an IMF-fixdate."""
    return format_datetime(to_datetime(when).replace(microsecond=0), usegmt=True)


def parse_deprecation(value: str) -> dt.datetime:
    """Read a ``Deprecation`` field value (``@epoch``); ValueError when malformed."""
    text = value.strip()
    if not (text.startswith("@") and text[1:].lstrip("-").isdigit()):
        raise ValueError("Deprecation must be a structured-field date like @1688169599")
    return dt.datetime.fromtimestamp(int(text[1:]), dt.UTC)


def parse_sunset(value: str) -> dt.datetime:
    """Read a ``Sunset`` field value (HTTP-date); ValueError when malformed."""
    try:
        result = parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise ValueError("Sunset must be an HTTP-date") from exc
    return result.astimezone(dt.UTC)


def _link(url: str, rel: str) -> str:
    if any(c in url for c in '<>"\r\n ,'):
        raise ConfigError(f"link URL {url!r} contains characters not allowed in a Link header")
    return f'<{url}>; rel="{rel}"'


def deprecation_headers(
    deprecated_at: DateLike | None,
    sunset_at: DateLike | None = None,
    link: str | None = None,
    *,
    sunset_link: str | None = None,
    successor: str | None = None,
) -> list[tuple[str, str]]:
    """Response headers announcing deprecation/sunset; computed once at load time.

    ``link`` documents the deprecation (rel="deprecation"), ``sunset_link`` the sunset
    policy (rel="sunset"), ``successor`` the replacing version (rel="successor-version").
    All links go into one ``Link`` field so that setting it by name keeps every relation.
    """
    headers: list[tuple[str, str]] = []
    if deprecated_at is not None:
        headers.append(("Deprecation", deprecation_value(deprecated_at)))
    if sunset_at is not None:
        if deprecated_at is not None and to_datetime(sunset_at) < to_datetime(deprecated_at):
            raise ConfigError("sunset date is before the deprecation date (RFC 9745 §4)")
        headers.append(("Sunset", sunset_value(sunset_at)))
    links = []
    if link:
        links.append(_link(link, "deprecation"))
    if sunset_link:
        links.append(_link(sunset_link, "sunset"))
    if successor:
        links.append(_link(successor, "successor-version"))
    if links:
        headers.append(("Link", ", ".join(links)))
    return headers
