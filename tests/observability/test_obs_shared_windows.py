"""Detector windows shared through a real Redis: an attack spread over two gateways is
seen as one, and only one gateway raises the alert (shared dedup)."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest

from bastion.observability.audit import AuditLog
from bastion.observability.config import MonitoringConfig
from bastion.observability.monitor import Monitor
from bastion.observability.windows import Batch, RedisWindows
from bastion.state.redis_store import RedisStateStore
from tests.observability.streams import request

pytestmark = pytest.mark.services


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_redis_windows_count_slide_and_union(redis_url: str) -> None:
    store = RedisStateStore(redis_url, prefix=f"bastion-obsw-{secrets.token_hex(4)}")
    await store.start()
    try:
        windows = RedisWindows(store._client, store.prefix)
        batch = Batch()
        batch.add("k", 60, 3)
        batch.add_member("d", 60, "a")
        batch.add_member("d", 60, "b")
        first = await windows.apply(batch, 1000.0)
        assert first.counts[("k", 60)] == 3
        assert first.distinct[("d", 60)] == 2
        batch = Batch()
        batch.add("k", 60, 1)
        batch.add_member("d", 60, "b")
        batch.add_member("d", 60, "c")
        later = await windows.apply(batch, 1030.0)
        assert later.counts[("k", 60)] == 4
        assert later.distinct[("d", 60)] == 3  # the union over the window's buckets
        batch = Batch()
        batch.add("k", 60, 1)
        gone = await windows.apply(batch, 1075.0)  # the first bucket left the window
        assert gone.counts[("k", 60)] == 2
    finally:
        await store.close()


async def test_attack_split_over_two_gateways_is_one_attack(redis_url: str, tmp_path: Path) -> None:
    prefix = f"bastion-obsw-{secrets.token_hex(4)}"
    clock = Clock()
    settings = MonitoringConfig.model_validate(
        {
            "metrics_options": {"multiprocess_dir": str(tmp_path)},
            "detectors": {"enumeration": {"distinct_objects": 10}},
            "alerts": {"sinks": []},
        }
    )
    stores = [RedisStateStore(redis_url, prefix=prefix) for _ in range(2)]
    monitors = []
    for store in stores:
        await store.start()
        audit = AuditLog(sink="stdout", stream=io.BytesIO())
        monitors.append(Monitor(settings, store=store, audit=audit, clock=clock))
    try:
        for n in range(12):  # six probes against each gateway
            monitors[n % 2].observe(request(principal="u-eve", path=f"/orders/{n}", status=404))
        first = await monitors[0].process_pending()
        second = await monitors[1].process_pending()
        assert [a.subject for a in first + second] == ["principal:u-eve"]
        listing = await monitors[0].incidents.recent()
        assert [i["subject"] for i in listing] == ["principal:u-eve"]
    finally:
        for store in stores:
            await store.close()
