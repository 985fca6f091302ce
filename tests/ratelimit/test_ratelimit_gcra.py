"""GCRA: burst, steady rate, retry_after and reset_after, with an injected clock."""

from __future__ import annotations

import pytest

from bastion.ratelimit import gcra, parse_rate

T0 = 1_700_000_000.0


def run(rate_text: str, times: list[float], burst: int | None = None) -> list[bool]:
    rate = parse_rate(rate_text, burst=burst)
    tat: float | None = None
    admitted = []
    for t in times:
        step = gcra(tat, t, rate)
        if step.allowed:
            assert isinstance(step.state, float)
            tat = step.state
        admitted.append(step.allowed)
    return admitted


def test_fresh_key_admits_the_burst_at_once_then_refuses() -> None:
    assert run("10/minute", [T0] * 12) == [True] * 10 + [False] * 2


def test_smaller_burst_limits_the_initial_spike() -> None:
    assert run("100/minute", [T0] * 5, burst=3) == [True, True, True, False, False]


def test_one_unit_returns_every_emission_interval() -> None:
    rate = parse_rate("10/minute")  # T = 6 s
    tat: float | None = None
    for _ in range(10):
        step = gcra(tat, T0, rate)
        tat = step.state  # type: ignore[assignment]
    refused = gcra(tat, T0, rate)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(6.0)
    assert refused.remaining == 0
    assert refused.state == tat  # a refusal stores nothing new
    assert not gcra(tat, T0 + 5.999, rate).allowed
    again = gcra(tat, T0 + 6.0, rate)
    assert again.allowed
    assert again.remaining == 0


def test_remaining_and_reset_after_count_down() -> None:
    rate = parse_rate("5/second")
    first = gcra(None, T0, rate)
    assert first.remaining == 4
    assert first.reset_after == pytest.approx(0.2)
    second = gcra(first.state, T0, rate)  # type: ignore[arg-type]
    assert second.remaining == 3
    assert second.reset_after == pytest.approx(0.4)


def test_idle_key_refills_completely() -> None:
    rate = parse_rate("3/minute")
    tat: float | None = None
    for _ in range(3):
        tat = gcra(tat, T0, rate).state  # type: ignore[assignment]
    assert not gcra(tat, T0, rate).allowed
    assert run("3/minute", [T0, T0, T0, T0 + 60, T0 + 60, T0 + 60, T0 + 60]) == [
        True,
        True,
        True,
        True,
        True,
        True,
        False,
    ]


def test_cost_takes_several_units_and_retry_covers_the_whole_cost() -> None:
    rate = parse_rate("10/second")
    step = gcra(None, T0, rate, cost=8)
    assert step.allowed
    assert step.remaining == 2
    refused = gcra(step.state, T0, rate, cost=5)  # type: ignore[arg-type]
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.3)
    assert gcra(step.state, T0 + 0.3, rate, cost=5).allowed  # type: ignore[arg-type]


def test_sustained_rate_over_a_long_run_matches_the_limit() -> None:
    # 1 request every 0.1 s for 10 minutes against 60/minute: 60 burst + 1/s thereafter.
    times = [T0 + i * 0.1 for i in range(6000)]
    admitted = sum(run("60/minute", times))
    assert admitted == 60 + 600 - 1 or admitted == 60 + 600


@pytest.mark.parametrize("rate_text", ["3/s", "7/10s", "9/7s", "1000/s", "100/minute"])
def test_full_burst_at_one_instant_despite_float_rounding(rate_text: str) -> None:
    # Epoch timestamps have ~0.24 µs resolution; the last unit of a burst sits exactly on
    # the boundary and must not be refused by rounding noise.
    rate = parse_rate(rate_text)
    for offset in (0.1, 0.123456, 79.3999975, 500.7):
        now = 1_800_000_000.0 + offset
        tat: float | None = None
        remaining = []
        for _ in range(rate.burst):
            step = gcra(tat, now, rate)
            assert step.allowed
            tat = step.state  # type: ignore[assignment]
            remaining.append(step.remaining)
        assert remaining == list(range(rate.burst - 1, -1, -1))
        assert not gcra(tat, now, rate).allowed
