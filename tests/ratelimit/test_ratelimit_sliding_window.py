"""Sliding window counter: weighted previous window, edges, retry_after."""

from __future__ import annotations

import pytest

from bastion.ratelimit import parse_rate, sliding_window
from bastion.ratelimit.step import State, Step

W0 = 1_700_000_040.0  # a multiple of 60: a window boundary


def take(
    state: State, now: float, rate_text: str = "10/minute", cost: int = 1
) -> tuple[State, Step]:
    step = sliding_window(
        state if isinstance(state, tuple) else None, now, parse_rate(rate_text), cost
    )
    return (step.state if step.allowed else state), step


def fill(now: float, count: int, rate_text: str = "10/minute") -> State:
    state: State = None
    for _ in range(count):
        state, step = take(state, now, rate_text)
        assert step.allowed
    return state


def test_limit_within_one_window() -> None:
    state = fill(W0 + 1, 10)
    _, step = take(state, W0 + 30)
    assert not step.allowed
    assert step.remaining == 0


def test_previous_window_is_weighted_by_its_overlap() -> None:
    state = fill(W0 + 59, 10)  # 10 at the very end of the first window
    # 15 s into the next window 75% of the previous window still counts: 7.5 -> 2 fit.
    state, first = take(state, W0 + 75)
    state, second = take(state, W0 + 75)
    _, third = take(state, W0 + 75)
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)


def test_window_edge_does_not_double_the_limit() -> None:
    state = fill(W0 + 59.9, 10)
    _, step = take(state, W0 + 60.0)  # first instant of the next window: still 10 counted
    assert not step.allowed


def test_retry_after_is_exact() -> None:
    state = fill(W0 + 59, 10)
    _, refused = take(state, W0 + 60)
    assert not refused.allowed
    # Needs previous*(1-f) <= 9  ->  f >= 0.1  ->  6 s into the window.
    assert refused.retry_after == pytest.approx(6.0)
    _, early = take(state, W0 + 60 + 5.99)
    _, on_time = take(state, W0 + 60 + 6.0)
    assert (early.allowed, on_time.allowed) == (False, True)


def test_retry_after_reaches_into_the_next_window_when_needed() -> None:
    state = fill(W0 + 1, 10)
    _, refused = take(state, W0 + 10)
    # Current window is full; in the next window 10*(1-f) <= 9 -> f >= 0.1.
    assert refused.retry_after == pytest.approx(50 + 6)
    _, ok = take(state, W0 + 10 + refused.retry_after)
    assert ok.allowed


def test_old_state_is_forgotten_after_two_windows() -> None:
    state = fill(W0 + 1, 10)
    state, step = take(state, W0 + 120)
    assert step.allowed
    assert step.remaining == 9


def test_reset_after_reports_full_decay() -> None:
    _, step = take(None, W0 + 10)
    assert step.reset_after == pytest.approx(110)
