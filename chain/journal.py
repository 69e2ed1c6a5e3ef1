"""Journal of signed transactions: each is written down before it is broadcast.

After a crash the sender reads the journal back and reconciles every transaction that has no
recorded outcome by its hash (receipt, still known to the node, or rebroadcast), so a submission
is never lost and never sent twice under two nonces. ``chain/`` keeps no SQL: the journal is a
JSON-lines file, appended to (fsync'd per entry) and rewritten with only its unsettled entries once settled ones
take up most of it, so it stays small however long the service runs.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class JournalEntry:
    """A signed transaction: ``tx_hash`` and ``raw`` (0x-hex), the sender, its ``nonce``, and ``label``
    (what it carries, e.g. ``submitCatalogs×25``)."""

    tx_hash: str
    sender: str
    nonce: int
    raw: str
    label: str


class TxJournal(Protocol):
    """Where a :class:`chain.sender.TxSender` writes signed transactions and their outcomes."""

    def record(self, entry: JournalEntry) -> None:
        """Write a signed transaction, durably, before it is broadcast."""

    def settle(self, tx_hash: str, outcome: str) -> None:
        """Record the outcome (``mined``, ``reverted``, ``dropped``) of a transaction."""

    def unsettled(self) -> list[JournalEntry]:
        """Signed transactions with no recorded outcome, in nonce order."""


class MemoryJournal:
    """A journal that lives only as long as the process (tests, one-shot tools)."""

    def __init__(self) -> None:
        self._open: dict[str, JournalEntry] = {}
        self._lock = threading.Lock()

    def record(self, entry: JournalEntry) -> None:
        """See :meth:`TxJournal.record`."""
        with self._lock:
            self._open[entry.tx_hash] = entry

    def settle(self, tx_hash: str, outcome: str) -> None:
        """See :meth:`TxJournal.settle`."""
        with self._lock:
            self._open.pop(tx_hash, None)

    def unsettled(self) -> list[JournalEntry]:
        """See :meth:`TxJournal.unsettled`."""
        with self._lock:
            return sorted(self._open.values(), key=lambda e: e.nonce)


class FileJournal:
    """JSON-lines journal at ``path``: each entry and each outcome is a line appended (and fsync'd); compacted —
    rewritten with only the unsettled entries, through a temporary file and an atomic rename — when opened, and
    whenever the file outgrows both ``compact_floor`` bytes and four times the unsettled entries' lines. Without it a
    service journals every transaction's raw bytes for as long as it runs; a bound in lines (1,024) still left
    44 MiB after one Beijing-scale load, since a batch transaction's raw bytes run to hundreds of kB."""

    def __init__(self, path: Path, *, compact_floor: int = 2**20) -> None:
        if compact_floor < 1:
            raise ValueError(f"expected compact_floor >= 1 byte, got {compact_floor}")
        self.path = path
        self.compact_floor = compact_floor
        self._lock = threading.Lock()
        self._open: dict[str, JournalEntry] = {}
        self._sizes: dict[str, int] = {}  # tx hash → bytes of its unsettled entry's line
        self._open_bytes = 0  # their sum
        self._bytes = 0  # bytes in the file
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from a crash mid-write: that tx was never broadcast
                if "outcome" in item:
                    self._open.pop(item["tx_hash"], None)
                else:
                    self._open[item["tx_hash"]] = JournalEntry(**item)
        self._rewrite()

    @staticmethod
    def _line(item: dict[str, object]) -> str:
        return json.dumps(item) + "\n"  # ASCII (json.dumps escapes the rest): its length is its size in bytes

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        self._sizes = {}
        with tmp.open("w", encoding="utf-8") as fh:
            for entry in self._open.values():
                line = self._line(asdict(entry))
                fh.write(line)
                self._sizes[entry.tx_hash] = len(line)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._bytes = self._open_bytes = sum(self._sizes.values())

    def _append(self, item: dict[str, object]) -> int:
        line = self._line(item)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._bytes += len(line)
        return len(line)

    def record(self, entry: JournalEntry) -> None:
        """See :meth:`TxJournal.record`."""
        with self._lock:
            size = self._append(asdict(entry))
            self._open_bytes += size - self._sizes.get(entry.tx_hash, 0)
            self._sizes[entry.tx_hash] = size
            self._open[entry.tx_hash] = entry

    def settle(self, tx_hash: str, outcome: str) -> None:
        """See :meth:`TxJournal.settle`."""
        with self._lock:
            if tx_hash in self._open:
                self._append({"tx_hash": tx_hash, "outcome": outcome})
                del self._open[tx_hash]
                self._open_bytes -= self._sizes.pop(tx_hash)
                # amortised: a rewrite copies at most a quarter of what was appended since the last one
                if self._bytes > max(self.compact_floor, 4 * self._open_bytes):
                    self._rewrite()

    def unsettled(self) -> list[JournalEntry]:
        """See :meth:`TxJournal.unsettled`."""
        with self._lock:
            return sorted(self._open.values(), key=lambda e: e.nonce)
