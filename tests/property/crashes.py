"""Where a run may die, for the property tests that kill runs."""

from __future__ import annotations

from hypothesis import strategies as st

CRASH_POINTS = st.one_of(
    st.none(),  # the run ends normally
    st.tuples(st.just("call"), st.integers(1, 14), st.booleans()),  # at a call, before/after
    st.tuples(st.just("record"), st.integers(0, 40), st.just(False)),  # while reading
)
