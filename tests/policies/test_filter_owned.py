"""Filtering a list by owner gives, item by item, what decide_owner decides."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.decisions import FieldRef, OwnerSpec, decide_owner, filter_owned, lookup_path
from bastion.types import Principal

_OWNERS = st.one_of(
    st.none(), st.booleans(), st.integers(0, 3), st.sampled_from(["u-1", "u-2", "0"])
)
items = st.lists(
    st.one_of(st.fixed_dictionaries({"owner": _OWNERS}), st.just({}), st.integers()), max_size=8
)
principals = st.one_of(
    st.none(),
    st.builds(
        lambda sub, roles, teams: Principal(
            subject=sub, kind="jwt", roles=frozenset(roles), claims={"teams": teams}
        ),
        st.sampled_from(["u-1", "u-2", "1"]),
        st.lists(st.sampled_from(["admin", "customer"]), max_size=2),
        st.one_of(st.none(), st.just("u-1"), st.lists(_OWNERS, max_size=3)),
    ),
)
specs = st.one_of(
    st.just(OwnerSpec(FieldRef("principal", ("sub",)), "equals")),
    st.just(OwnerSpec(FieldRef("principal", ("teams",)), "in")),
    st.just(OwnerSpec(FieldRef("principal", ("teams",)), "equals")),
    st.just(OwnerSpec(FieldRef("principal", ("sub",)), "in", frozenset({"admin"}))),
)


@settings(max_examples=400, deadline=None)
@given(principals, items, specs)
def test_filter_owned_keeps_what_decide_owner_allows(
    principal: Principal | None, listed: list[Any], spec: OwnerSpec
) -> None:
    field = ("owner",)
    expected = [i for i in listed if decide_owner(principal, lookup_path(i, field), spec).allowed]
    kept, removed = filter_owned(principal, listed, field, spec)
    assert kept == expected
    assert removed == len(listed) - len(expected)
