from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import Upstream, run_upstream


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """The logging test upstream, shared by the session: tests count its log by path."""
    with run_upstream(tmp_path_factory.mktemp("rl-upstream")) as up:
        yield up
