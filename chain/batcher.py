"""Batches signed submissions of one type into single transactions, one transaction in flight at a time.

Callers hand in ABI structs (already simulated one by one) and get a future that resolves to the
hash of the transaction that carries them. The worker waits for each receipt before sending the
next batch, so a batch that depends on an earlier one (departments after their jurisdiction)
is estimated against a state that already holds it. If a batch would revert as a whole, each
submission is simulated alone and only the failing ones are refused (their futures carry the
decoded :class:`~chain.errors.ContractRevert`); the rest go out.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from chain.directory import DirectoryClient
from chain.errors import ChainError, ContractRevert, UnknownRevert
from chain.sender import Receipt

log = logging.getLogger(__name__)


@dataclass
class _Item:
    primary: str
    struct: Any  # an ABI tuple, or a bytes32 request id for ``Expiry``
    future: Future[str] = field(default_factory=Future)


@dataclass(frozen=True)
class TxOutcome:
    """What happened to a batch transaction: ``status`` ``pending`` / ``mined`` / ``reverted`` / ``lost``."""

    tx_hash: str
    primary: str
    count: int
    status: str
    block_number: int | None = None
    gas_used: int | None = None


class Batcher:
    """Background worker batching submissions for ``client``.

    ``max_batch``: most submissions per transaction. A batch closes when no submission has arrived for
    ``window_s`` seconds, ``linger_s`` seconds after its first, or at ``max_batch``: a lone submission waits
    ``window_s``, and a steady stream — the API hands one in every few milliseconds under load — fills a batch for
    up to ``linger_s`` instead of leaving after a fixed window with a few. Each transaction costs the service a
    simulation, a signature, a receipt and the indexer's and tier sync's reads of its block, and anvil a block, so
    bigger batches under load cost less per submission.

    :meth:`outcome` knows every transaction still waiting for its receipt and the latest ``keep_final`` whose outcome
    is final (mined, reverted, lost); older final ones are forgotten — their receipts are on the chain — so a
    service running for months holds a bounded number.
    """

    def __init__(
        self, client: DirectoryClient, *, max_batch: int = 200, window_s: float = 0.02, linger_s: float = 0.25,
        keep_final: int = 256,
    ) -> None:
        if client.sender is None:
            raise ValueError("expected a DirectoryClient with a sender, got a read-only one")
        if window_s < 0 or linger_s < 0 or max_batch < 1 or keep_final < 0:
            raise ValueError(f"expected window_s >= 0, linger_s >= 0, max_batch >= 1 and keep_final >= 0, got "
                             f"{window_s}, {linger_s}, {max_batch}, {keep_final}")
        self.client = client
        self.max_batch = max_batch
        self.window_s = window_s
        self.linger_s = linger_s
        self._queue: queue.Queue[_Item | None] = queue.Queue()  # None: wake up and stop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self.keep_final = keep_final
        self._outcomes: dict[str, TxOutcome] = {}  # tx hash → outcome: the pending ones and the latest final ones
        self._final: deque[str] = deque()  # tx hashes of the final outcomes held, oldest first
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current batch; waits up to ``timeout_s`` seconds."""
        self._stop.set()
        self._queue.put(None)  # the worker blocks on the queue without polling: wake it
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def running(self) -> bool:
        """Whether the worker thread is alive (started and not stopped)."""
        return self._thread.is_alive()

    def submit(self, primary: str, struct: Any) -> Future[str]:
        """Queue one submission — an ABI tuple of a signed message (:func:`chain.directory.to_struct`), or
        a 32-byte request id for ``Expiry`` — the future resolves to its transaction hash once sent."""
        item = _Item(primary, struct)
        self._queue.put(item)
        return item.future

    def outcome(self, tx_hash: str) -> TxOutcome | None:
        """What the worker knows of a transaction it sent: always while it is ``pending``, and among the latest
        ``keep_final`` once final; None for a transaction it did not send or whose final outcome it has forgotten."""
        with self._lock:
            return self._outcomes.get(tx_hash.lower())

    def pending(self) -> int:
        """Submissions queued and not yet sent."""
        return max(0, self._queue.qsize() - (1 if self._stop.is_set() else 0))  # less the stop marker

    # ------------------------------------------------------------------ worker

    def _gather(self) -> list[_Item]:
        """Up to ``max_batch`` queued items, gathered until none has arrived for ``window_s`` or ``linger_s`` after
        the first; empty once stopped. The wait for the first item blocks without a timeout (no polling: a service
        runs one batcher per directory, 364 at Beijing scale, and threads waking every 0.1 s to poll cost the busy
        ones the GIL). Each item's future is marked running (``set_running_or_notify_cancel``): it can no longer be
        cancelled, and an item whose future was cancelled while queued is dropped, never sent."""
        first = self._queue.get()
        if first is None:
            return []
        items = [first] if first.future.set_running_or_notify_cancel() else []
        started = last = time.monotonic()
        while len(items) < self.max_batch:
            remaining = min(last + self.window_s, started + self.linger_s) - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:
                break
            last = time.monotonic()
            if item.future.set_running_or_notify_cancel():
                items.append(item)
        return items

    def _run(self) -> None:
        while not self._stop.is_set():
            items = self._gather()
            # Keep arrival order; consecutive items of one type form one transaction.
            group: list[_Item] = []
            for item in items:
                if group and item.primary != group[0].primary:
                    self._send_or_fail(group)
                    group = []
                group.append(item)
            if group:
                self._send_or_fail(group)

    def _send_or_fail(self, group: list[_Item]) -> None:
        """:meth:`_send`, and whatever it raises (an RPC failure while isolating a reverting batch, say) fails
        this group's futures instead of stopping the worker."""
        try:
            self._send(group)
        except Exception as exc:
            log.exception("batch of %d %s submissions: unexpected error", len(group), group[0].primary)
            self._fail(group, exc)

    def _send(self, group: list[_Item]) -> None:
        primary = group[0].primary
        try:
            tx_hash = self.client.submit(primary, [i.struct for i in group])
        except (ContractRevert, UnknownRevert):
            group = self._isolate(group)
            if not group:
                return
            try:
                tx_hash = self.client.submit(primary, [i.struct for i in group])
            except Exception as exc:
                self._fail(group, exc)
                return
        except Exception as exc:
            self._fail(group, exc)
            return
        self._record(TxOutcome(tx_hash, primary, len(group), "pending"))
        for item in group:
            item.future.set_result(tx_hash)
        self._await(tx_hash, primary, len(group))

    def _isolate(self, group: list[_Item]) -> list[_Item]:
        good = []
        for item in group:
            try:
                self.client.simulate(item.primary, [item.struct])
                good.append(item)
            except (ContractRevert, UnknownRevert) as exc:
                item.future.set_exception(exc)
        return good

    def _fail(self, group: list[_Item], exc: Exception) -> None:
        log.error("batch of %d %s submissions failed: %s", len(group), group[0].primary, exc)
        for item in group:
            if not item.future.done():
                item.future.set_exception(exc)

    def _await(self, tx_hash: str, primary: str, count: int) -> None:
        assert self.client.sender is not None
        try:
            receipt: Receipt = self.client.sender.wait(tx_hash)
            self._record(TxOutcome(tx_hash, primary, count, "mined", receipt.block_number, receipt.gas_used))
        except ChainError as exc:
            status = "reverted" if "reverted" in str(exc) else "lost"
            log.error("transaction %s (%s×%d): %s", tx_hash, primary, count, exc)
            self._record(TxOutcome(tx_hash, primary, count, status))

    def _record(self, outcome: TxOutcome) -> None:
        """Hold ``outcome`` (pending, or the final outcome replacing it), forgetting the oldest final outcome past
        ``keep_final``."""
        key = outcome.tx_hash.lower()
        with self._lock:
            self._outcomes[key] = outcome
            if outcome.status == "pending":
                return
            self._final.append(key)
            while len(self._final) > self.keep_final:
                self._outcomes.pop(self._final.popleft(), None)
