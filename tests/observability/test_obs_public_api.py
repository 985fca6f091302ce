"""Every observability module has a curated ``__all__`` (ordered by ruff's RUF022) whose
names exist."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "alerts", "audit_db", "audit_search", "cli", "config", "dashboard", "demo_traffic", "detectors",
    "incidents", "metrics", "monitor", "playbooks", "tracing", "windows",
]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_all_is_complete(name: str) -> None:
    module = importlib.import_module(f"bastion.observability.{name}")
    names = list(module.__all__)
    assert len(names) == len(set(names))
    for item in names:
        assert hasattr(module, item), item
