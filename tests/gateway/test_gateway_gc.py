"""A serving process tunes the garbage collector once started; an embedded gateway does not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.gateway.app import GC_THRESHOLD
from bastion.gateway.server import create_gateway
from tests.support.procs import dev_config


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    text = dev_config("http://127.0.0.1:9").replace("{AUDIT}", str(tmp_path / "audit.jsonl"))
    path.write_text(text)
    return path


@pytest.mark.usefixtures("restore_gc")
async def test_a_serving_gateway_freezes_startup_objects_and_collects_less_often(
    tmp_path: Path,
) -> None:
    gateway = create_gateway(_config(tmp_path), serving=True)
    await gateway.startup()
    try:
        assert gc.get_threshold() == GC_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        await gateway.shutdown(grace=0.1)


@pytest.mark.usefixtures("restore_gc")
async def test_an_embedded_gateway_leaves_the_host_process_gc_alone(tmp_path: Path) -> None:
    before = gc.get_threshold()
    gateway = create_gateway(_config(tmp_path))
    await gateway.startup()
    try:
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
    finally:
        await gateway.shutdown(grace=0.1)
