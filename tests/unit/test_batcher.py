"""How :class:`chain.batcher.Batcher` gathers a batch: it closes after a quiet ``window_s``, ``linger_s`` after its
first submission, or at ``max_batch`` (in process: the worker thread is not started, ``_gather`` is called directly;
the gaps below are wide against the windows so that a slow machine only makes them wider)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from chain.batcher import Batcher


def _batcher(**kwargs: Any) -> Batcher:
    client: Any = SimpleNamespace(sender=object())  # _gather never touches the client
    return Batcher(client, **kwargs)


def _feed(batcher: Batcher, count: int, gap_s: float) -> threading.Thread:
    """Submit ``count`` items, one every ``gap_s`` seconds, from a thread (started, returned)."""

    def run() -> None:
        for i in range(count):
            batcher.submit("submitCatalogs", i)
            time.sleep(gap_s)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_steady_stream_keeps_the_batch_open_past_the_quiet_window() -> None:
    """Items arriving 0.1 s apart against a 0.5-s quiet window: all 8 in one batch, though they span 0.7 s (a window
    fixed at 0.5 s after the first would have left the last ones for the next batch)."""
    batcher = _batcher(window_s=0.5, linger_s=30.0)
    feeder = _feed(batcher, 8, 0.1)
    batch = [item.struct for item in batcher._gather()]  # gathered while they arrive
    feeder.join()
    assert batch == list(range(8))


def test_a_batch_closes_after_a_quiet_window() -> None:
    batcher = _batcher(window_s=0.2, linger_s=30.0)
    batcher.submit("submitCatalogs", 0)
    batcher.submit("submitCatalogs", 1)
    started = time.monotonic()
    assert [item.struct for item in batcher._gather()] == [0, 1]  # nothing else came: closed after 0.2 s quiet
    assert time.monotonic() - started < 30.0


def test_a_batch_closes_after_linger_even_while_items_keep_coming() -> None:
    """Items every 0.05 s for 2 s against a 1-s quiet window and a 0.3-s linger: the first batch closes with some
    of them, the others stay queued for the next, none is lost or repeated."""
    batcher = _batcher(window_s=1.0, linger_s=0.3)
    feeder = _feed(batcher, 40, 0.05)
    first = [item.struct for item in batcher._gather()]
    feeder.join()
    assert len(first) < 40  # closed by linger_s while items were still coming
    rest: list[int] = []
    for _ in range(40):  # each later batch takes at least one of the items left
        if len(first) + len(rest) == 40:
            break
        rest += [item.struct for item in batcher._gather()]
    assert first + rest == list(range(40))


def test_a_batch_holds_at_most_max_batch() -> None:
    batcher = _batcher(max_batch=3, window_s=1.0, linger_s=30.0)
    for i in range(7):
        batcher.submit("submitCatalogs", i)
    assert [[item.struct for item in batcher._gather()] for _ in range(3)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_windows_are_checked() -> None:
    with pytest.raises(ValueError, match="linger_s >= 0"):
        _batcher(window_s=0.5, linger_s=-0.1)
