"""registry.indexer.next_span: block ranges sized by the logs they hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from registry.indexer import FIRST_SPAN, MAX_LOGS, next_span


@given(span=st.integers(1, 5000), blocks=st.integers(1, 5000), logs=st.integers(0, 10**6),
       max_logs=st.integers(1, 20_000), max_range=st.integers(1, 5000))
def test_next_span_stays_within_its_bounds(span: int, blocks: int, logs: int, max_logs: int, max_range: int) -> None:
    """Between 1 and max_range blocks; fewer blocks than held max_logs at the density just seen when the range held
    too many; at most twice the span otherwise; the span kept by a range the head cut short."""
    span = min(span, max_range)  # as the indexer keeps it
    blocks = min(blocks, span)  # a range never reads more than its span
    got = next_span(span, blocks, logs, max_logs=max_logs, max_range=max_range)
    assert 1 <= got <= max_range
    if logs > max_logs:
        assert got == 1 or got * logs <= blocks * max_logs
    elif blocks < span:
        assert got == span
    else:
        assert got <= 2 * span


@given(density=st.integers(0, 400), max_logs=st.integers(1, 20_000), max_range=st.integers(1, 4000))
def test_ranges_of_a_uniform_chain_settle_under_max_logs(density: int, max_logs: int, max_range: int) -> None:
    """On a chain of ``density`` logs a block the first range reads FIRST_SPAN blocks; every range after it holds at
    most max_logs logs (or is one block), so memory per range is bounded by logs; and the span settles on the most
    blocks that hold max_logs (max_range on a chain without logs)."""
    span = min(max_range, FIRST_SPAN)
    for n in range(40):
        logs = span * density
        if n > 0:
            assert logs <= max_logs or span == 1
        span = next_span(span, span, logs, max_logs=max_logs, max_range=max_range)
    assert span == (max(1, min(max_range, max_logs // density)) if density else max_range)


def test_a_sparse_chain_grows_to_max_range_in_doublings() -> None:
    """No logs: 100, 200, 400, … blocks up to max_range; at Beijing's density (~10 a block) about MAX_LOGS a range."""
    spans = [FIRST_SPAN]
    while len(spans) < 8:
        spans.append(next_span(spans[-1], spans[-1], 0, max_logs=MAX_LOGS, max_range=2000))
    assert spans == [100, 200, 400, 800, 1600, 2000, 2000, 2000]
    span = 2000
    for _ in range(3):
        span = next_span(span, span, 10 * span, max_logs=MAX_LOGS, max_range=2000)
    assert span * 10 <= MAX_LOGS < (span + 1) * 10
