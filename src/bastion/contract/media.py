"""Media types (RFC 9110 §8.3.1): parsing ``Content-Type`` and matching declared content."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType

__all__ = ["is_json", "match_media", "parse_media_type"]


def parse_media_type(value: str | None) -> tuple[str, Mapping[str, str]] | None:
    """``type/subtype`` (lower-cased) and its parameters; None when absent or malformed."""
    if not value:
        return None
    return _parse_media_type(value)


@lru_cache(maxsize=256)  # clients send few distinct Content-Type values
def _parse_media_type(value: str) -> tuple[str, Mapping[str, str]] | None:
    head, *params = value.split(";")
    media = head.strip().lower()
    kind, slash, sub = media.partition("/")
    if not slash or not kind or not sub or " " in media:
        return None
    parsed: dict[str, str] = {}
    for param in params:
        name, eq, val = param.strip().partition("=")
        if eq:
            parsed[name.strip().lower()] = val.strip().strip('"').lower()
    return media, MappingProxyType(parsed)


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def match_media(media: str, declared: Iterable[str]) -> str | None:
    """The declared key for ``media``: exact, then ``type/*``, then ``*/*``."""
    return _match_media(media, tuple(declared))


@lru_cache(maxsize=256)
def _match_media(media: str, declared: tuple[str, ...]) -> str | None:
    keys = {key.split(";")[0].strip().lower(): key for key in declared}
    for candidate in (media, media.split("/")[0] + "/*", "*/*"):
        if candidate in keys:
            return keys[candidate]
    return None
