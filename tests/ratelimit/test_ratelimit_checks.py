"""All-or-nothing evaluation of several checks: refused requests consume nothing."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.errors import TooManyRequests
from bastion.ratelimit import LimitCheck, evaluate_checks, parse_quota, parse_rate
from bastion.ratelimit.step import State

NOW = 1_700_000_000.0


def apply(
    store: dict[str, State], checks: list[LimitCheck], now: float = NOW
) -> tuple[bool, int | None]:
    result, writes = evaluate_checks(checks, store, now)
    for key, (state, _ttl) in writes.items():
        store[key] = state
    return result.allowed, result.denied_by


def test_refusal_by_one_check_consumes_nothing_from_the_others() -> None:
    store: dict[str, State] = {}
    per_ip = LimitCheck("ip:1", parse_rate("5/minute"))
    per_user = LimitCheck("user:alice", parse_rate("2/minute"))
    assert apply(store, [per_ip, per_user]) == (True, None)
    assert apply(store, [per_ip, per_user]) == (True, None)
    for _ in range(10):  # refused by the user limit: the IP budget is untouched
        assert apply(store, [per_ip, per_user]) == (False, 1)
    # The IP still has exactly 3 of its 5 units.
    assert [apply(store, [per_ip])[0] for _ in range(4)] == [True, True, True, False]


def test_refused_result_reports_untouched_remaining_and_retry_after() -> None:
    store: dict[str, State] = {}
    a = LimitCheck("a", parse_rate("10/minute"), name="a")
    b = LimitCheck("b", parse_rate("1/minute"), name="b")
    apply(store, [a, b])
    result, writes = evaluate_checks([a, b], store, NOW)
    assert writes == {}
    assert not result.allowed
    assert result.denied_by == 1
    assert result.checks[0].allowed
    assert result.checks[0].remaining == 9  # not 8: nothing was taken
    assert result.checks[1].remaining == 0
    assert result.retry_after == pytest.approx(60.0)


def test_binding_check_is_the_one_with_the_longest_wait() -> None:
    store: dict[str, State] = {}
    fast = LimitCheck("f", parse_rate("1/second"))
    slow = LimitCheck("s", parse_rate("1/hour"))
    apply(store, [fast, slow])
    result, _ = evaluate_checks([fast, slow], store, NOW)
    assert result.denied_by == 1
    assert result.retry_after == pytest.approx(3600.0)


def test_mixed_algorithms_in_one_request() -> None:
    store: dict[str, State] = {}
    checks = [
        LimitCheck("k", parse_rate("100/minute"), "gcra"),
        LimitCheck("k", parse_rate("100/minute"), "sliding_window"),
        LimitCheck("k", parse_quota("3/day"), "quota"),
    ]
    outcomes = [apply(store, checks)[0] for _ in range(5)]
    assert outcomes == [True, True, True, False, False]
    assert len(store) == 3  # same key, different algorithms: separate states


def test_duplicate_checks_in_one_request_see_each_other() -> None:
    store: dict[str, State] = {}
    check = LimitCheck("dup", parse_rate("3/minute"))
    assert apply(store, [check, check]) == (True, None)
    assert apply(store, [check, check]) == (False, 1)
    assert apply(store, [check]) == (True, None)


def test_no_checks_is_allowed() -> None:
    result, writes = evaluate_checks([], {}, NOW)
    assert result.allowed
    assert writes == {}
    assert not result.checks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "leaky"}, "unknown rate-limit algorithm"),
        ({"cost": -1}, "cost must be an integer"),
        ({"cost": 11}, "could never be admitted"),
        ({"algorithm": "quota"}, "calendar rate"),
        ({"key": ""}, "non-empty key"),
    ],
)
def test_invalid_checks_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    args = {"key": "k", "rate": parse_rate("10/minute"), **kwargs}
    with pytest.raises(ValueError, match=message):
        LimitCheck(**args)


def test_long_keys_are_stored_hashed() -> None:
    check = LimitCheck("u:" + "x" * 5000, parse_rate("1/second"))
    assert len(check.storage_key) < 120
    assert "sha256:" in check.storage_key


def test_raise_if_denied_carries_headers() -> None:
    store: dict[str, State] = {}
    check = LimitCheck("r", parse_rate("1/minute"), name="login")
    apply(store, [check])
    result, _ = evaluate_checks([check], store, NOW + 0.5)
    with pytest.raises(TooManyRequests) as info:
        result.raise_if_denied()
    assert info.value.status == 429
    assert info.value.headers["Retry-After"] == "60"
    assert info.value.headers["RateLimit"] == '"login";r=0;t=60'
    ok, _ = evaluate_checks([check], {}, NOW)
    ok.raise_if_denied()
