"""chain.journal.FileJournal on disk, without a chain: the file stays small however many transactions settle, and
whatever is unsettled survives each compaction and a reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.journal import FileJournal, JournalEntry

SENDER = "0x00000000000000000000000000000000000000A1"


def _entry(n: int) -> JournalEntry:
    return JournalEntry(f"0x{n:064x}", SENDER, n, "0x" + "ee" * 200, f"transfer {n}")


def test_settled_transactions_are_compacted_away_and_unsettled_ones_kept(tmp_path: Path) -> None:
    """3,000 transactions (~580-byte lines), every tenth left unsettled, with ``compact_floor`` 64 kB: the file never
    outgrows the floor or four times the unsettled entries' lines by more than one entry (it grew to 2.0 MB before),
    and a reopened journal finds exactly the 300 unsettled ones."""
    path = tmp_path / "journal.jsonl"
    journal = FileJournal(path, compact_floor=64_000)
    most = 0
    for n in range(3000):
        journal.record(_entry(n))
        if n % 10:
            journal.settle(_entry(n).tx_hash, "mined")
        most = max(most, path.stat().st_size)
    unsettled = [_entry(n) for n in range(0, 3000, 10)]
    assert journal.unsettled() == unsettled
    assert FileJournal(path).unsettled() == unsettled
    kept = path.stat().st_size  # opening compacts too: the unsettled entries' lines only
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(unsettled)
    assert most <= max(64_000, 4 * kept) + 2 * kept // len(unsettled)


def test_the_floor_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compact_floor >= 1"):
        FileJournal(tmp_path / "journal.jsonl", compact_floor=0)
