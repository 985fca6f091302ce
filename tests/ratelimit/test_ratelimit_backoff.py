"""Login backoff policy: growing delay, lockout, forgetting (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.ratelimit import BackoffPolicy, login_state
from bastion.ratelimit.backoff import next_failure

NOW = 1_800_000_000.0


def test_delay_grows_geometrically_and_is_capped() -> None:
    policy = BackoffPolicy(free_failures=3, base_delay=1, factor=2, max_delay=10, lockout_after=20)
    assert [policy.delay(n) for n in range(1, 10)] == [0, 0, 0, 1, 2, 4, 8, 10, 10]
    assert policy.delay(20) == policy.lockout_duration


def test_state_is_derived_from_count_and_last_failure() -> None:
    policy = BackoffPolicy(free_failures=1, base_delay=5, lockout_after=3, lockout_duration=600)
    assert login_state(1, NOW, NOW, policy).locked_until is None
    assert login_state(2, NOW, NOW + 1, policy).locked_until == NOW + 5
    assert login_state(2, NOW, NOW + 5, policy).locked_until is None
    assert login_state(3, NOW, NOW + 599, policy).locked_until == NOW + 600


def test_failures_are_forgotten_after_reset_after_but_lockout_holds() -> None:
    policy = BackoffPolicy(reset_after=60, lockout_after=5, lockout_duration=3600)
    assert next_failure(4, NOW, NOW + 61, policy) == 1
    assert next_failure(4, NOW, NOW + 59, policy) == 5
    # A locked key keeps its count for the whole lockout, even past reset_after.
    assert login_state(5, NOW, NOW + 120, policy).locked_until == NOW + 3600
    assert next_failure(5, NOW, NOW + 120, policy) == 6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 0.5},
        {"lockout_after": 0},
        {"max_delay": 0.1, "base_delay": 1},
        {"reset_after": 0},
    ],
)
def test_invalid_policies(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        BackoffPolicy(**kwargs)
