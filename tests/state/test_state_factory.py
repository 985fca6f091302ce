"""create_store builds the configured store and rejects bad config clearly."""

from __future__ import annotations

import pytest

from bastion.errors import ConfigError
from bastion.state import MemoryStateStore, RedisStateStore, create_store


def test_memory_is_the_default() -> None:
    assert isinstance(create_store({}), MemoryStateStore)
    assert isinstance(create_store({"backend": "memory"}), MemoryStateStore)


async def test_redis_store_from_config() -> None:
    store = create_store(
        {"backend": "redis", "url": "redis://127.0.0.1:6379/0", "prefix": "gw1", "max_staleness": 3}
    )
    assert isinstance(store, RedisStateStore)
    assert store.prefix == "gw1"
    assert store.time_source == "server"
    await store.close()


@pytest.mark.parametrize(
    ("config", "location"),
    [
        ({"backend": "etcd"}, "state.backend"),
        ({"backend": "memory", "url": "x"}, "state"),
        ({"backend": "redis"}, "state.url"),
        ({"backend": "redis", "url": "http://x"}, "state.url"),
        ({"backend": "redis", "url": "redis://h", "max_staleness": 0}, "state.max_staleness"),
        ({"backend": "redis", "url": "redis://h", "time_source": "ntp"}, "state.time_source"),
        ({"backend": "redis", "url": "redis://h", "prefix": "a{b}"}, "state"),
        ({"backend": "redis", "url": "redis://h", "pasword": "x"}, "state"),
    ],
)
def test_bad_config_names_the_key(config: dict[str, object], location: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_store(config)
    assert info.value.location == location


def test_url_with_password_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        create_store({"backend": "redis", "url": "redis://:s3cr3t-pw@h:6379/0", "timeout": -1})
    assert "s3cr3t-pw" not in str(info.value)
