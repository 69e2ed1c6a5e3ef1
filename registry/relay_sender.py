"""One ``relay`` transaction for the batches of several child directories bound for the same parent.

The tier sync runs the relay jobs (:class:`registry.sync.RelayJob`) of sibling children — the streets of one
district, the districts of the city — at the same time. Each job has at most one batch in flight, and on its
own it would spend one transaction, so one block, per child and pass. A :class:`RelaySender` shared by those
jobs is a group commit: a transaction leaves once every job in a pass has handed its batch in (or a bound is
reached), and carries all the batches waiting (up to ``max_items`` items and ``max_gas`` gas). The contract's
``relay`` takes origins from any child the sender is the relayer of, in any order.

Nothing about exactly-once changes: each job estimated its batch against the parent before handing it in,
waits until the transaction carrying it is mined (or failed), and moves its checkpoint only after that; the
parent applies each origin at most once (``RelayDuplicate``). When a combined transaction reverts (the state
moved between a job's estimate and the block: another writer, or one job's item interfering with another's),
every job that contributed sees the revert and retries only what the parent does not hold, as it did alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from chain.directory import DirectoryClient
from chain.errors import TransactionFailed
from chain.relay import RelayItem, encode_call
from chain.sender import TxSender


@dataclass(frozen=True)
class SentBatch:
    """What became of a batch handed to :meth:`RelaySender.send`: the ``tx_hash`` of the ``relay`` transaction
    that carried it and its ``block_number``, whether it was ``mined`` with status 1 (False: mined but reverted),
    how many of the batch's origins the parent applied in it (``added``: its ``Relayed`` events), the batch's
    share of the transaction's gas (``gas_used``, gas, pro rata by items), and how many items the transaction
    carried in all (``carried``)."""

    tx_hash: str
    block_number: int
    mined: bool
    added: int
    gas_used: int
    carried: int


@dataclass
class _Entry:
    items: list[RelayItem]
    gas: int
    queued_at: float  # time.monotonic()
    done: threading.Event = field(default_factory=threading.Event)
    result: SentBatch | None = None
    error: BaseException | None = None


class RelaySender:
    """Sends the relay batches of the jobs sharing it to ``parent`` (a :class:`DirectoryClient` whose ``sender``
    is the relayer), several batches to a transaction, one transaction in flight at a time.

    A job announces its pass with :meth:`participant`. The next transaction leaves when every job in a pass has a
    batch waiting or in flight (the others have nothing more to add before it), when the batches waiting reach
    ``max_items`` items, or ``gather_s`` seconds after the first of them was handed in (or after the previous
    transaction was mined, if later) — so a slow job delays the others by at most that. A caller outside any pass
    sends at once. ``max_items``: most items per transaction (a batch larger than that still goes alone);
    ``max_gas``: most gas per transaction (the sum of the batches' gas limits; gas). Thread-safe.
    """

    def __init__(
        self, parent: DirectoryClient, *, max_items: int = 50, max_gas: int = 60_000_000, gather_s: float = 0.5
    ) -> None:
        if parent.sender is None:
            raise ValueError("expected a parent DirectoryClient with the relayer's sender, got a read-only one")
        if max_items < 1 or max_gas < 1 or gather_s < 0:
            raise ValueError(f"expected max_items >= 1, max_gas >= 1 and gather_s >= 0, got {max_items}, {max_gas}, "
                             f"{gather_s}")
        self.parent = parent
        self.sender: TxSender = parent.sender
        self.max_items = max_items
        self.max_gas = max_gas
        self.gather_s = gather_s
        #: Transactions sent, and batches they carried (``batches / transactions`` is the coalescing achieved).
        self.transactions = 0
        self.batches = 0
        self._cond = threading.Condition()
        self._queue: list[_Entry] = []
        self._sending = False
        self._active = 0  # jobs in a pass (participant)
        self._inside = 0  # callers inside send(): their batch waits or is in flight
        self._last_mined = 0.0  # time.monotonic() when the previous transaction settled

    @contextmanager
    def participant(self) -> Iterator[None]:
        """Context of one job's pass: while it lasts, a transaction waits (at most ``gather_s``) for this job's
        next batch, or for the pass to end."""
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def waiting(self) -> int:
        """Batches handed in that no transaction carries yet."""
        with self._cond:
            return len(self._queue)

    def send(self, items: list[RelayItem], gas: int) -> SentBatch:
        """Relay ``items`` (a batch the parent accepted in an ``eth_call`` with ``gas`` gas) in the next ``relay``
        transaction, possibly with other jobs' batches, and wait until it is mined.

        Returns a :class:`SentBatch`, also when the transaction was mined but reverted (``mined`` False: the caller
        checks what the parent holds and tries the rest again). Raises what sending or waiting raised (an
        :class:`chain.rpc.RpcError`, :class:`chain.errors.TransactionTimeout`): the batch's fate is then unknown
        until the sender's journal is settled.
        """
        if not items:
            raise ValueError("expected at least one relay item, got none")
        entry = _Entry(list(items), gas, time.monotonic())
        with self._cond:
            self._queue.append(entry)
            self._inside += 1
            self._cond.notify_all()
        try:
            while True:
                with self._cond:
                    while not entry.done.is_set():
                        wait_s = None if self._sending else self._gather_left()
                        if wait_s is not None and wait_s <= 0:
                            break
                        self._cond.wait(wait_s)
                    if entry.done.is_set():
                        break
                    self._sending = True
                    group = self._take()
                try:
                    self._send_group(group)
                finally:
                    with self._cond:
                        self._sending = False
                        self._last_mined = time.monotonic()
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._inside -= 1
                self._cond.notify_all()
        if entry.error is not None:
            raise entry.error
        assert entry.result is not None
        return entry.result

    def _gather_left(self) -> float:
        """Seconds the next transaction still waits for more batches (<= 0: send now); holds the lock."""
        if self._inside >= self._active or sum(len(e.items) for e in self._queue) >= self.max_items:
            return 0.0
        return max(self._queue[0].queued_at, self._last_mined) + self.gather_s - time.monotonic()

    def _take(self) -> list[_Entry]:
        """The batches of the next transaction, first come first served (at least one); holds the lock."""
        group = [self._queue.pop(0)]
        items, gas = len(group[0].items), group[0].gas
        while self._queue:
            nxt = self._queue[0]
            if items + len(nxt.items) > self.max_items or gas + nxt.gas > self.max_gas:
                break
            group.append(self._queue.pop(0))
            items += len(nxt.items)
            gas += nxt.gas
        return group

    def _send_group(self, group: list[_Entry]) -> None:
        """Send one transaction for ``group`` and settle each entry (a result or the error); never raises."""
        try:
            items = [it for e in group for it in e.items]
            data = encode_call("relay", [[it.origin.as_tuple() for it in items], [it.call for it in items]])
            gas = min(sum(e.gas for e in group), self.sender.block_gas_limit)
            tx_hash = self.sender.send(self.parent.address, data, gas, label=f"relay×{len(items)}")
            self.transactions += 1
            self.batches += len(group)
            try:
                receipt = self.sender.wait(tx_hash)
            except TransactionFailed:
                raw = self.parent.rpc.call("eth_getTransactionReceipt", [tx_hash]) or {}
                block, used = int(raw.get("blockNumber", "0x0"), 16), int(raw.get("gasUsed", "0x0"), 16)
                self._settle(group, tx_hash, block, False, used, set())
                return
            topic = self.parent.codec.topics_by_name["Relayed"]
            applied = {
                bytes.fromhex(lg["topics"][1][2:])
                for lg in receipt.logs
                if len(lg["topics"]) > 1 and bytes.fromhex(lg["topics"][0][2:]) == topic
                and str(lg["address"]).lower() == self.parent.address.lower()
            }
            self._settle(group, tx_hash, receipt.block_number, True, receipt.gas_used, applied)
        except BaseException as exc:  # handed to every waiting job, which re-raises it
            for e in group:
                if not e.done.is_set():
                    e.error = exc
                    e.done.set()

    @staticmethod
    def _settle(
        group: list[_Entry], tx_hash: str, block_number: int, mined: bool, gas_used: int, applied: set[bytes]
    ) -> None:
        carried = sum(len(e.items) for e in group)
        shares = [gas_used * len(e.items) // carried for e in group]
        shares[0] += gas_used - sum(shares)
        for e, share in zip(group, shares, strict=True):
            added = sum(1 for it in e.items if it.origin.key in applied)
            e.result = SentBatch(tx_hash, block_number, mined, added, share, carried)
            e.done.set()
