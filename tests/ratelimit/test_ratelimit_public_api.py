"""The curated public API of the rate-limit and state packages."""

from __future__ import annotations

import bastion.ratelimit
import bastion.state


def test_all_names_exist_and_are_sorted() -> None:
    for module in (bastion.ratelimit, bastion.state):
        names = list(module.__all__)
        assert names == sorted(names)
        for name in names:
            assert hasattr(module, name), name
