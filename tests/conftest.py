"""Shared test fixtures: real services (Redis, PostgreSQL) and free ports.

Tests that need Redis or PostgreSQL use the ``redis_url`` / ``postgres_url`` fixtures. When
the service is unreachable they skip with a clear reason, unless
``BASTION_REQUIRE_SERVICES=1`` (as in CI), where an unreachable service is a failure.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("BASTION_TEST_REDIS_PORT", "6379"))
PG_HOST, PG_PORT = "127.0.0.1", int(os.environ.get("BASTION_TEST_PG_PORT", "5432"))
PG_DATABASE = os.environ.get("BASTION_TEST_PG_DATABASE", "test")
PG_USER = os.environ.get("BASTION_TEST_PG_USER", "postgres")


def services_required() -> bool:
    return os.environ.get("BASTION_REQUIRE_SERVICES") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _need_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if services_required():
        pytest.fail(f"{message} and BASTION_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{message} (set BASTION_REQUIRE_SERVICES=1 to make this a failure)")


CHROMIUM = "/usr/bin/chromium"


def need_chromium(why: str = "") -> str:
    """Path of Debian's Chromium for the browser tests; skips without it, or fails when
    ``BASTION_REQUIRE_SERVICES=1`` (CI's ``.ci/run`` installs it first)."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    message = f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium){why}"
    if services_required():
        pytest.fail(f"{message} and BASTION_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{message} (set BASTION_REQUIRE_SERVICES=1 to make this a failure)")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the machine's real Redis (database 0 is never flushed: use unique key prefixes)."""
    _need_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy async URL of the machine's real PostgreSQL (database ``test``)."""
    _need_service("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def unused_port() -> int:
    return free_port()
