"""Properties over random request sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.ratelimit import LimitCheck, evaluate_checks, parse_quota, parse_rate
from bastion.ratelimit.step import State

T0 = 1_800_000_000.0

CHECKS = [
    LimitCheck("a", parse_rate("5/10s", burst=3), "gcra"),
    LimitCheck("b", parse_rate("4/10s"), "sliding_window"),
    LimitCheck("c", parse_quota("12/day"), "quota"),
    LimitCheck("a", parse_rate("2/s"), "gcra"),
]

requests = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=7, allow_nan=False),  # time step
        st.sets(st.integers(min_value=0, max_value=3), min_size=1),  # which checks
        st.integers(min_value=0, max_value=2),  # cost
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(requests)
def test_refused_requests_change_no_state_and_limits_hold(
    sequence: list[tuple[float, set[int], int]],
) -> None:
    store: dict[str, State] = {}
    now = T0
    admitted_units = {i: [] for i in range(len(CHECKS))}  # type: dict[int, list[tuple[float, int]]]
    for step, chosen, cost in sequence:
        now += step
        checks = [
            LimitCheck(CHECKS[i].key, CHECKS[i].rate, CHECKS[i].algorithm, cost)
            for i in sorted(chosen)
        ]
        before = dict(store)
        result, writes = evaluate_checks(checks, store, now)
        if not result.allowed:
            assert writes == {}
            assert store == before
            assert result.retry_after > 0
            assert result.denied_by is not None
            assert not result.checks[result.denied_by].allowed
        else:
            assert all(o.allowed for o in result.checks)
            for key, (state, ttl) in writes.items():
                assert ttl >= 0
                store[key] = state
            for i in chosen:
                admitted_units[i].append((now, cost))
        for outcome in result.checks:
            assert outcome.remaining >= 0
            assert outcome.reset_after >= 0
    # The sliding window never admits more than its limit inside one fixed window.
    windows: dict[int, int] = {}
    for at, cost in admitted_units[1]:
        windows[int(at // 10)] = windows.get(int(at // 10), 0) + cost
    assert all(total <= 4 for total in windows.values())
    # GCRA "a" at 5/10s with burst 3: any span of d seconds admits at most 3 + d/2 units.
    units = admitted_units[0]
    for i, (start, _) in enumerate(units):
        total = 0
        for at, cost in units[i:]:
            total += cost
            assert total <= 3 + (at - start) / 2 + 1e-6
