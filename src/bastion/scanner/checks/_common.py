"""Helpers shared by the checks: response similarity and flattening."""

from __future__ import annotations

import difflib
import secrets
from typing import Any

from bastion.scanner.probe import Exchange

__all__ = ["flatten", "random_path", "similarity"]


def flatten(value: Any, prefix: str = "") -> set[tuple[str, str]]:
    if isinstance(value, dict):
        out: set[tuple[str, str]] = set()
        for key, sub in value.items():
            out |= flatten(sub, f"{prefix}/{key}")
        return out
    if isinstance(value, list):
        out = set()
        for index, sub in enumerate(value[:50]):
            out |= flatten(sub, f"{prefix}/{index}")
        return out
    return {(prefix, repr(value))}


def similarity(a: Exchange, b: Exchange) -> float:
    """1.0 for the same content; JSON compared as (path, value) sets, text by difflib."""
    ja, jb = a.json(), b.json()
    if ja is not None and jb is not None:
        fa, fb = flatten(ja), flatten(jb)
        if not fa and not fb:
            return 1.0
        return len(fa & fb) / len(fa | fb)
    return difflib.SequenceMatcher(None, a.text[:2000], b.text[:2000]).ratio()


def random_path(prefix: str = "") -> str:
    return f"{prefix.rstrip('/')}/bastion-{secrets.token_hex(6)}"
