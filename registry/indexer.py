"""The indexer: reads a directory's logs from the chain and keeps the SQL index in step with them.

One :class:`Indexer` follows one directory (chain id, contract address) from a cursor stored in
the ``cursors`` table. Each block range is read, checked and written as a unit:

1. check that the block the cursor points at is still on the chain (else :class:`ReorgDetected`);
2. read the logs of ``cursor+1 .. min(head − confirmations, cursor + span)`` — never past head; the span is at
   most ``max_range`` blocks and sized from the range before so that a range holds about ``max_logs`` logs
   (:func:`next_span`: what the indexer holds grows with a range's logs, however few blocks hold them);
3. read, in one batched request, the hash and timestamp of every block holding a log and of the
   range's last block, and check they match the logs and the hash seen before reading (a
   reorganisation *during* the read makes the range be read again);
4. in ONE database transaction: store and apply the events in (block, log index) order and move
   the cursor to the range's last block (number and hash).

While a range is written (step 4), the range after it is read (steps 1–3, from the cursor the write will leave)
in a thread of its own when the chain already has it, so the node's time to answer overlaps the write (a
re-index from block zero); the read-ahead is dropped if the write fails or finds its cursor moved.

A crash between ranges loses nothing and a re-read range changes nothing (events are idempotent by
``(tx_hash, log_index)``), so the indexer resumes from its cursor after a restart.

Only the indexer writes its cursor row and the followed directories, so it keeps what it last committed in
memory instead of reading both back before every range; step 4 moves the cursor with a compare-and-set (``UPDATE
… WHERE`` it is still at the block the range was read from), so a cursor another writer moved is noticed there and
read again, and so is everything after any failure.

With ``creators``, ``address`` is a DirectoryFactory and the indexer follows every directory that factory
made for one of ``creators`` (its ``DirectoryCreated`` events, read in chain order, add each new directory
as it appears): one indexer, one cursor per chain however many jurisdictions' directories live on it.
The fetcher must then read by topics (:class:`chain.logs.LogFetcher` with ``topics``) and the codec know the
factory's events as well as the directory's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass

from eth_utils import to_checksum_address
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from chain.abi import ContractCodec, DecodedLog, checksummed
from chain.artifacts import load_artifact
from chain.logs import LogFetcher
from registry.db import Cursor, DirectoryRow
from registry.errors import ReorgDetected
from registry.store import apply_events

log = logging.getLogger(__name__)

#: Consecutive re-reads of a range whose blocks changed while it was read, before giving up.
MAX_UNSTABLE_READS = 5
#: Logs a block range aims to hold (``max_logs``): a range is read, decoded and written whole, so what the indexer
#: holds grows with its logs, not its blocks. Re-indexing a Beijing-scale chain (about 10 logs a block; 2026-12-06)
#: raised the indexer's resident memory by 145 MiB in 250-block ranges, 222–236 MiB at 5,000 logs a range (5 % slower),
#: 306 MiB at 10,000 and 324 MiB in 2,000-block ranges (about 19,000 logs); a chain mined at intervals holds hundreds
#: of logs a block, where 2,000 blocks would be the whole chain.
MAX_LOGS = 10_000
#: Blocks the first range of an indexer reads; :func:`next_span` sizes the next ones by their logs.
FIRST_SPAN = 100


def next_span(span: int, blocks: int, logs: int, *, max_logs: int, max_range: int) -> int:
    """Blocks the next range may read, after a range of ``blocks`` blocks read with span ``span`` held ``logs`` logs.

    As many as should hold ``max_logs`` logs at that density, but at most twice ``span`` (the density may rise
    again), at least 1 and at most ``max_range``. A range cut short by the head (``blocks < span``) leaves the span
    as it was unless it held more than ``max_logs`` logs.
    """
    if logs > max_logs:
        return max(1, blocks * max_logs // logs)
    if blocks < span:
        return span
    fits = blocks * max_logs // logs if logs else max_range
    return max(1, min(max_range, 2 * span, fits))


@dataclass(frozen=True)
class _Written:
    """The indexer's cursor — (block number, block hash), or None before the first range — and the checksummed
    addresses of the directories it follows, as its last committed range (or its last read) left them."""

    cursor: tuple[int, str] | None
    directories: frozenset[str]


@dataclass(frozen=True)
class _Range:
    """A block range as read from the chain, before it is written: the cursor it was read from (``stored``), its
    blocks ``start..end``, the ``target`` (``head − confirmations``) when it was read, its followed events in
    order, the directories followed after them, the hash and timestamp of each block holding an event and of
    ``end``, and — when a block changed while the range was read — (block, expected hash, got hash)."""

    stored: tuple[int, str] | None
    start: int
    end: int
    target: int
    events: list[DecodedLog]
    directories: frozenset[str]
    blocks: dict[int, tuple[str, int]]
    moved: tuple[int, str, str] | None


def _in_thread(read: Callable[[_Written], _Range | None], written: _Written) -> Future[_Range | None]:
    """``read(written)`` run in a new daemon thread; its result (or exception) in the returned future."""
    future: Future[_Range | None] = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(read(written))
            except BaseException as exc:
                future.set_exception(exc)

    threading.Thread(target=run, name="indexer-read-ahead", daemon=True).start()
    return future


def _settled(future: Future[_Range | None] | None) -> None:
    """Wait for a read-ahead that will not be used to end (so the fetcher is never used by two threads at once)
    and drop its result or error."""
    if future is not None:
        future.exception()


def indexer_codec() -> ContractCodec:
    """Decoder of everything a factory-following indexer reads: the Directory's events and the factory's
    (``DirectoryCreated``). Raises FileNotFoundError if the contracts are not compiled."""
    factory_events = [e for e in load_artifact("DirectoryFactory").abi if e.get("type") == "event"]
    return ContractCodec(load_artifact("Directory").abi + factory_events)


class Indexer:
    """Follows directory ``address`` on chain ``chain_id`` into the index behind ``sessions``.

    ``fetcher`` reads the chain, ``codec`` decodes the directory ABI's events. ``confirmations``:
    blocks left unindexed below head (the indexer reads up to ``head − confirmations``);
    ``max_range``: most blocks read per range (per ``eth_getLogs``, split further by the fetcher if
    the node refuses); ``max_logs``: the logs a range aims to hold — the first range reads
    :data:`FIRST_SPAN` blocks, each next one as many as :func:`next_span` gives (``span``); ``start_block``:
    where an index without a cursor starts (e.g. the deployment block; 0 reads from genesis). Raises ValueError
    for a negative ``confirmations`` or ``start_block``, a ``max_range`` or ``max_logs`` below 1, or a fetcher of
    another address.

    ``last_error`` holds the error of the latest failed attempt of :meth:`run` (None after a
    success); ``events_applied`` counts events applied by this instance, ``ranges_indexed`` the ranges it
    committed.
    """

    def __init__(
        self,
        fetcher: LogFetcher,
        codec: ContractCodec,
        sessions: sessionmaker[Session],
        chain_id: int,
        address: str,
        confirmations: int = 0,
        max_range: int = 2000,
        *,
        start_block: int = 0,
        creators: Collection[str] | None = None,
        max_logs: int = MAX_LOGS,
    ) -> None:
        if confirmations < 0 or max_range < 1 or start_block < 0 or max_logs < 1:
            raise ValueError(
                f"expected confirmations >= 0, max_range >= 1, start_block >= 0, max_logs >= 1, got "
                f"{confirmations}, {max_range}, {start_block}, {max_logs}"
            )
        self.fetcher = fetcher
        self.codec = codec
        self.sessions = sessions
        self.chain_id = chain_id
        self.address = to_checksum_address(address)
        if fetcher.address != self.address:
            raise ValueError(f"fetcher reads {fetcher.address}, indexer was given {self.address}")
        self.confirmations = confirmations
        self.max_range = max_range
        self.max_logs = max_logs
        #: Most blocks the next range reads (≤ max_range), sized by the logs of the range before (:func:`next_span`).
        self.span = min(max_range, FIRST_SPAN)
        self.start_block = start_block
        self.creators = None if creators is None else frozenset(to_checksum_address(c) for c in creators)
        if self.creators is not None and fetcher.topics is None:
            raise ValueError("a factory-following indexer needs a fetcher that reads by topics")
        self.last_error: BaseException | None = None
        self.events_applied = 0
        self.ranges_indexed = 0
        #: Called after each committed range (e.g. to count ranges for another process), in the indexing thread.
        self.on_commit: Callable[[Indexer], None] | None = None
        self._stop: threading.Event | None = None
        self._written: _Written | None = None  # None: read from the database before the next range

    # ------------------------------------------------------------------ cursor

    def _stored_cursor(self) -> tuple[int, str] | None:
        with self.sessions() as session:
            row = session.get(Cursor, (self.chain_id, self.address))
            return None if row is None else (row.block_number, row.block_hash)

    def cursor(self) -> int | None:
        """Number of the last block fully indexed, or None before the first range (read from the database)."""
        stored = self._stored_cursor()
        return None if stored is None else stored[0]

    def _read_written(self) -> _Written:
        return _Written(self._stored_cursor(), frozenset(self.directories()))

    def _advance(self, session: Session, stored: tuple[int, str] | None, number: int, block_hash: str) -> bool:
        """Move the cursor row from ``stored`` to block ``number`` (hash ``block_hash``) in ``session``'s
        transaction; False, writing nothing, if the row is not at ``stored`` any more (another writer moved it)."""
        if stored is None:
            if session.get(Cursor, (self.chain_id, self.address)) is not None:
                return False
            session.add(Cursor(chain_id=self.chain_id, address=self.address, block_number=number,
                               block_hash=block_hash))
            return True
        moved = session.execute(
            update(Cursor)
            .where(Cursor.chain_id == self.chain_id, Cursor.address == self.address,
                   Cursor.block_number == stored[0], Cursor.block_hash == stored[1])
            .values(block_number=number, block_hash=block_hash)
            .execution_options(synchronize_session=False)
        )
        return bool(moved.rowcount == 1)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ indexing

    def run_once(self) -> int:
        """Index ranges until caught up with ``head − confirmations``; returns the events newly applied.

        Raises :class:`ReorgDetected` if the cursor's block is no longer on the chain (checked on
        every call, even when there is nothing new), or if the blocks of a range keep changing while
        it is read (:data:`MAX_UNSTABLE_READS` times), and whatever the RPC or the database raise;
        a failed range writes nothing.
        """
        try:
            return self._run_ranges()
        except BaseException:
            self._written = None  # whatever failed, read the cursor and directories again
            raise

    def _run_ranges(self) -> int:
        applied = 0
        unstable = 0
        ahead: Future[_Range | None] | None = None  # the next range, read while the current one is written
        try:
            while self._stop is None or not self._stop.is_set():
                written = self._written if self._written is not None else self._read_written()
                self._written = written
                read, ahead = (ahead.result() if ahead is not None else self._read_range(written)), None
                if read is None:
                    return applied
                if read.moved is not None:
                    unstable += 1
                    if unstable >= MAX_UNSTABLE_READS:
                        raise ReorgDetected(*read.moved)
                    log.warning("blocks %d..%d changed while read (block %d); reading again",
                                read.start, read.end, read.moved[0])
                    continue
                unstable = 0
                after = _Written((read.end, read.blocks[read.end][0]), read.directories)
                if read.end < read.target:
                    ahead = _in_thread(self._read_range, after)

                with self.sessions.begin() as session:
                    if not self._advance(session, read.stored, read.end, read.blocks[read.end][0]):
                        log.warning("cursor moved from %s by another writer; re-reading", read.stored)
                        self._written = None
                        _settled(ahead)
                        ahead = None
                        continue
                    events = read.events
                    new = apply_events(session, [(ev, read.blocks[ev.block_number][1]) for ev in events],
                                       chain_id=self.chain_id) if events else 0
                self._written = after
                applied += new
                self.events_applied += new
                self.ranges_indexed += 1
                if self.on_commit is not None:
                    self.on_commit(self)
                log.debug("indexed blocks %d..%d: %d events (%d new)", read.start, read.end, len(events), new)
            return applied
        finally:
            _settled(ahead)

    def _read_range(self, written: _Written) -> _Range | None:
        """Read the range after ``written``'s cursor (steps 1–3 of the module docstring): None when there is
        nothing to read below ``head − confirmations`` (after checking the cursor's block is still on the
        chain). Reads the chain only, never the database, so it may run in another thread while the range
        before it is written. Raises :class:`ReorgDetected` if the cursor's block is no longer on the chain."""
        stored = written.cursor
        start = self.start_block if stored is None else stored[0] + 1
        head = self.fetcher.head()
        if stored is not None and stored[0] > head:  # the chain lost blocks the index holds
            raise ReorgDetected(stored[0], stored[1], f"none (head is {head})")
        target = head - self.confirmations
        if target < start:
            if stored is not None:  # idle: still make sure the cursor's block is on the chain
                got = self.fetcher.block_hash(stored[0])
                if got != stored[1]:
                    raise ReorgDetected(stored[0], stored[1], got)
            return None
        end = min(target, start + self.span - 1)

        checked = [end] if stored is None else [stored[0], end]
        before = self.fetcher.block_timestamps(checked)
        if stored is not None and before[stored[0]][0] != stored[1]:
            raise ReorgDetected(stored[0], stored[1], before[stored[0]][0])

        raw_logs = self.fetcher.fetch(start, end)
        self.span = next_span(self.span, end - start + 1, len(raw_logs), max_logs=self.max_logs,
                              max_range=self.max_range)
        events, directories = self._followed(self._decode(raw_logs), written.directories)
        blocks = self.fetcher.block_timestamps(sorted({ev.block_number for ev in events} | {end}))
        moved = self._moved(events, blocks, end, before[end][0])
        return _Range(stored, start, end, target, events, directories, blocks, moved)

    def _decode(self, raw_logs: list[dict[str, object]]) -> list[DecodedLog]:
        events: list[DecodedLog] = []
        for raw in raw_logs:
            ev = self.codec.decode_log(raw)
            if ev is None:
                log.warning("skipping a log the ABI does not know: topics %s", raw.get("topics"))
                continue
            events.append(ev)
        events.sort(key=lambda ev: (ev.block_number, ev.log_index))
        return events

    def directories(self) -> set[str]:
        """Checksummed addresses of the directories followed (indexed ``DirectoryCreated`` of the factory for
        one of ``creators``); just this indexer's ``address`` when it follows one directory."""
        if self.creators is None:
            return {self.address}
        with self.sessions() as session:  # plain column tuples: this runs on every range read
            rows = session.execute(
                select(DirectoryRow.address, DirectoryRow.creator)
                .where(DirectoryRow.chain_id == self.chain_id, DirectoryRow.factory == self.address)
            )
            return {address for address, creator in rows if creator in self.creators}

    def _followed(
        self, events: list[DecodedLog], directories: frozenset[str]
    ) -> tuple[list[DecodedLog], frozenset[str]]:
        """The events of the followed contracts, in order, and the directories followed after them, given those
        followed before (``directories``); a factory's ``DirectoryCreated`` for one of ``creators`` adds its
        directory to what is followed from that log on."""
        if self.creators is None:
            return events, directories
        known = set(directories)
        kept: list[DecodedLog] = []
        for ev in events:
            address = checksummed(ev.address)
            if address == self.address:
                if ev.event != "DirectoryCreated" or checksummed(ev.args["creator"]) not in self.creators:
                    continue
                known.add(checksummed(ev.args["directory"]))
            elif address not in known:
                continue
            kept.append(ev)
        return kept, frozenset(known)

    @staticmethod
    def _moved(
        events: list[DecodedLog], blocks: dict[int, tuple[str, int]], end: int, end_hash_before: str
    ) -> tuple[int, str, str] | None:
        """(block, expected hash, got hash) of the first block that changed while the range was read."""
        if blocks[end][0] != end_hash_before:
            return end, end_hash_before, blocks[end][0]
        for ev in events:
            got = blocks[ev.block_number][0]
            if got != ev.block_hash.lower():
                return ev.block_number, ev.block_hash.lower(), got
        return None

    # ------------------------------------------------------------------ background

    def run(self, stop: threading.Event, poll_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        """Index until ``stop`` is set, polling every ``poll_s`` seconds once caught up.

        Meant as a thread's target. Any error but a reorganisation is logged and retried after a
        backoff doubling from ``poll_s`` up to ``max_backoff_s`` seconds; :class:`ReorgDetected` is
        logged, kept in :attr:`last_error` and re-raised — the thread stops, loudly, and an operator
        decides how to recover.
        """
        self._stop = stop
        failures = 0
        try:
            while not stop.is_set():
                try:
                    self.run_once()
                except ReorgDetected as exc:
                    self.last_error = exc
                    log.critical("indexer of %s stopped: %s", self.address, exc)
                    raise
                except Exception as exc:
                    failures += 1
                    self.last_error = exc
                    delay = min(max_backoff_s, poll_s * 2 ** min(failures, 16))
                    log.warning(
                        "indexer of %s failed (%d in a row), retrying in %.1f s: %s",
                        self.address,
                        failures,
                        delay,
                        exc,
                        exc_info=failures == 1,
                    )
                    stop.wait(delay)
                    continue
                failures = 0
                self.last_error = None
                stop.wait(poll_s)
        finally:
            self._stop = None
