"""docs/configuration.md is generated from the models; it must match them."""

from __future__ import annotations

from pathlib import Path

from bastion.config.docs import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: run `python -m bastion.config.docs > "
        "docs/configuration.md`"
    )


def test_every_field_is_described() -> None:
    assert "|  |" not in render()
