"""The municipal chain integration job (tier sync): relays a child directory's records to its parent.

One :class:`RelayJob` serves one (child, parent) directory pair — a street directory and its district's, or a
district directory and the city's — which may live on different chains. A pass (:meth:`RelayJob.run_once`):

1. checks the parent authorises this job's relayer for the child (``child(chainId, directory)`` view);
2. settles the relayer's unsettled transactions (journal), so a pass after a crash starts from what is mined;
3. checks the checkpoint's block is still on the child chain (else :class:`registry.errors.ReorgDetected`:
   a reorganisation deeper than the confirmation depth — reported, nothing applied);
4. retries the items the parent refused in earlier passes (``relay_failures``), in child order;
5. reads the child's logs past the checkpoint up to ``head − confirmations`` in bounded ranges (never past
   head), rebuilds each signed submission (:mod:`chain.relay`), drops the origins the parent already holds
   (``originRelayed``, one batched request), and submits the rest as ``relay`` batches of at most
   ``batch_size`` items, one transaction in flight at a time. A batch that would revert is bisected: the
   items before the first refused one go in, the refused one is reported with its origin and decoded reason
   and kept in ``relay_failures``, the rest continue;
6. after the receipts of a range are mined, commits the checkpoint (block number, hash, timestamp) and the
   range's refusals in one database transaction.

Exactly once: the parent accepts each origin at most once (an on-chain key), so a pass re-run after a crash
anywhere — before or after a batch was mined, before or after the checkpoint commit — re-submits nothing
that already went in. Units: blocks for heights and depths, seconds for times (block timestamps, unix).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chain.abi import ContractCodec, DecodedLog
from chain.directory import DirectoryClient
from chain.errors import ContractRevert, TransactionFailed, UnknownRevert
from chain.logs import LogFetcher
from chain.relay import (
    PRIMARY_OF,
    JurisdictionScope,
    Origin,
    RelayBuildError,
    RelayItem,
    decode_call,
    encode_call,
    needs_input,
    relay_items,
)
from chain.rpc import RpcError
from chain.sender import TxSender
from registry.db import RelayCheckpoint, RelayFailure
from registry.errors import RegistryError, ReorgDetected
from registry.relay_sender import RelaySender

log = logging.getLogger(__name__)

#: Consecutive re-reads of a range whose blocks changed while it was read, before giving up.
MAX_UNSTABLE_READS = 5
#: Most calls in one batched JSON-RPC request.
MAX_RPC_BATCH = 500
#: Mined-but-reverted relay transactions tolerated in one pass before it gives up.
MAX_FAILED_TXS = 3

#: ``progress(done_blocks, total_blocks)``: called after each range while catching up.
Progress = Callable[[int, int], None]


class RelayConfigError(RegistryError):
    """The parent directory does not authorise this job's relayer for the child (see ``setChild``)."""


class RelayNotRegistered(RelayConfigError):
    """The parent directory has no relayer for the child yet: ``setChild`` has not been mined (a directory just
    made is indexed before its registration at the parent is)."""


class FailedItem(NamedTuple):
    """A relay item the parent refused or that could not be rebuilt: its ``origin``, the ``reason`` (a decoded
    custom error such as ``DepartmentAccountNotBound(account=…, department=…)``), ``what`` it is
    (``submitCatalogs 301001/XC0001 v1 (CatalogVersionRecorded)``) and how many passes refused it
    (``attempts``)."""

    origin: Origin
    reason: str
    what: str
    attempts: int = 1


@dataclass
class SyncReport:
    """What one pass did.

    ``added``: submissions the parent applied in this pass (``Relayed`` events in its receipts), including
    ``retried`` ones refused before; ``skipped``: origins the parent already held; ``failed``: items refused
    (new ones and earlier ones still refused); ``ignored``: child logs with nothing to relay (role and set-up
    events, automatic sharing transitions, the effects of the child's own relays, scaffolding outside the
    child's subtree); ``events``: child logs read. ``checkpoint``: (block number, hash) reached, None before the
    first range; ``head``: the child's head (block); ``lag_blocks`` = head − checkpoint (so at least the
    confirmation depth); ``lag_seconds``: head's timestamp − the checkpoint block's (seconds).
    ``transactions``: relay transactions sent; ``gas_used``: their gas; ``elapsed_s``: wall time (seconds).
    """

    added: int = 0
    skipped: int = 0
    failed: list[FailedItem] = field(default_factory=list)
    ignored: int = 0
    retried: int = 0
    events: int = 0
    checkpoint: tuple[int, str] | None = None
    head: int = 0
    lag_blocks: int = 0
    lag_seconds: int = 0
    transactions: list[str] = field(default_factory=list)
    gas_used: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """One line: ``added 12, skipped 3 (already relayed), failed 1, ignored 9; checkpoint 120; lag 2 blocks,
        4 s``."""
        cp = "none" if self.checkpoint is None else str(self.checkpoint[0])
        return (
            f"added {self.added}, skipped {self.skipped} (already relayed), failed {len(self.failed)}, "
            f"ignored {self.ignored}; checkpoint {cp}; lag {self.lag_blocks} blocks, {self.lag_seconds} s"
        )


@dataclass(frozen=True)
class _Checkpoint:
    block_number: int
    block_hash: str
    block_timestamp: int


def settle_sender(sender: TxSender) -> None:
    """Wait for the transactions of ``sender`` that an earlier pass left unsettled in its journal (a crash, a
    receipt timeout): reconcile them by hash and wait for those still pending or rebroadcast, so a pass starts
    from what is mined (their origins then count as held). A reverted one is logged, not raised."""
    if not any(e.sender == sender.address for e in sender.journal.unsettled()):
        return
    for tx_hash, outcome in sender.reconcile().items():
        if outcome in ("pending", "rebroadcast"):
            try:
                sender.wait(tx_hash)
            except TransactionFailed:
                log.warning("relay transaction %s left by an earlier pass reverted", tx_hash)


class RelayJob:
    """Relays child directory ``directory`` on chain ``chain_id`` to ``parent``.

    Child side: ``fetcher`` reads the child's logs (its ``rpc`` also answers the transaction inputs and the
    child's views), ``codec`` decodes them, ``confirmations`` (blocks) are left unread below the child's head.
    Parent side: ``parent`` is a :class:`DirectoryClient` whose ``sender`` is the relayer registered for this
    child with ``setChild``. ``sessions`` holds ``relay_checkpoints`` and ``relay_failures`` (writer sessions, see
    :func:`registry.db.session_factory`); ``readers``, when given, are plain sessions on the same database for the
    reads outside a write — the checkpoint and the failures at the start of a pass — so that those do not take
    SQLite's write lock (the write transaction checks the checkpoint again before moving it).

    ``max_range``: most child blocks per log query; ``batch_size``: most items per ``relay`` transaction;
    ``max_gas``: a batch whose gas budget exceeds it (gas) is split; ``start_block``: first child block read when
    there is no checkpoint yet (e.g. the child's creation block).

    ``attach(chain_id, directory)``: called when the parent refuses an item with ``RelayNotAuthorised`` because
    its origin lies further down (a street record relayed by the district → city job) and that origin directory
    is not registered at the parent yet; it registers it (``setChild``) if it can and says whether it did. The
    items before the refused one are relayed first (they may add the origin's home jurisdiction), then the item
    is tried again. Asked once per origin directory and pass.

    ``settle_journal``: settle the relayer's unsettled transactions at the start of every pass (step 2). A caller
    running several jobs of one relayer at once passes False and calls :func:`settle_sender` itself between
    rounds: a job would otherwise wait for another job's transaction in flight.

    ``relay_sender``: the :class:`RelaySender` the job's batches go through; jobs of sibling children sharing one
    (same parent, same relayer) have their batches carried together, several to a ``relay`` transaction. None: a
    sender of the job's own (one batch per transaction).
    """

    def __init__(
        self,
        fetcher: LogFetcher,
        codec: ContractCodec,
        chain_id: int,
        directory: str,
        parent: DirectoryClient,
        sessions: sessionmaker[Session],
        *,
        confirmations: int = 0,
        max_range: int = 2000,
        batch_size: int = 50,
        max_gas: int = 60_000_000,
        start_block: int = 0,
        attach: Callable[[int, str], bool] | None = None,
        settle_journal: bool = True,
        relay_sender: RelaySender | None = None,
        readers: sessionmaker[Session] | None = None,
    ) -> None:
        if confirmations < 0 or max_range < 1 or batch_size < 1 or start_block < 0:
            raise ValueError(
                "expected confirmations >= 0, max_range >= 1, batch_size >= 1, start_block >= 0, got "
                f"{confirmations}, {max_range}, {batch_size}, {start_block}"
            )
        if parent.sender is None:
            raise ValueError("expected a parent DirectoryClient with the relayer's sender, got a read-only one")
        self.fetcher = fetcher
        self.codec = codec
        self.chain_id = chain_id
        self.directory = to_checksum_address(directory)
        if fetcher.address != self.directory:
            raise ValueError(f"fetcher reads {fetcher.address}, job was given {self.directory}")
        self.parent = parent
        self.sender = parent.sender
        self.sessions = sessions
        self.readers = readers or sessions
        self.confirmations = confirmations
        self.max_range = max_range
        self.batch_size = batch_size
        self.max_gas = max_gas
        self.start_block = start_block
        self.attach = attach
        self.settle_journal = settle_journal
        if relay_sender is not None and (
            relay_sender.parent.chain_id, relay_sender.parent.address, relay_sender.sender.address
        ) != (parent.chain_id, parent.address, parent.sender.address):
            raise ValueError(
                f"relay_sender sends to {relay_sender.parent.chain_id}:{relay_sender.parent.address} from "
                f"{relay_sender.sender.address}, the job's parent is {parent.chain_id}:{parent.address} and its "
                f"relayer {parent.sender.address}"
            )
        self.relay_sender = relay_sender or RelaySender(parent, max_items=batch_size, max_gas=max_gas)
        self._attach_asked: set[tuple[int, str]] = set()
        self.child = DirectoryClient(fetcher.rpc, self.directory, chain_id)
        self._scope: JurisdictionScope | None = None
        self._failed_txs = 0

    # ------------------------------------------------------------------ identity and state

    @property
    def pair(self) -> tuple[int, str, int, str]:
        """(child chain id, child directory, parent chain id, parent directory): the checkpoint's key."""
        return (self.chain_id, self.directory, self.parent.chain_id, self.parent.address)

    def __repr__(self) -> str:
        return f"RelayJob({self.chain_id}:{self.directory} → {self.parent.chain_id}:{self.parent.address})"

    def _stored(self) -> _Checkpoint | None:
        with self.readers() as session:
            row = session.get(RelayCheckpoint, self.pair)
            return None if row is None else _Checkpoint(row.block_number, row.block_hash, row.block_timestamp)

    def checkpoint(self) -> tuple[int, str] | None:
        """(block number, hash) of the last child block fully relayed, or None before the first range."""
        cp = self._stored()
        return None if cp is None else (cp.block_number, cp.block_hash)

    def lag(self) -> tuple[int, int, int]:
        """(child head, lag in blocks, lag in seconds) now, without relaying (for status, health, metrics)."""
        head = self.fetcher.head()
        blocks, seconds = self._lag(head, self._stored())
        return head, blocks, seconds

    def _lag(self, head: int, cp: _Checkpoint | None) -> tuple[int, int]:
        if cp is None:
            first = min(self.start_block, head)
            stamps = self.fetcher.block_timestamps([first, head])
            return head - self.start_block + 1 if self.start_block <= head else 0, stamps[head][1] - stamps[first][1]
        if cp.block_number >= head:
            return 0, 0
        head_ts = self.fetcher.block_timestamps([head])[head][1]
        return head - cp.block_number, max(0, head_ts - cp.block_timestamp)

    def failures(self) -> list[FailedItem]:
        """Items the parent refused and that have not gone in since, in child order."""
        return [self._failed_of(row) for row in self._failure_rows()]

    # ------------------------------------------------------------------ the pass

    def run_once(self, progress: Progress | None = None) -> SyncReport:
        """Relay everything the child confirmed past the checkpoint; returns what was done.

        Raises :class:`RelayConfigError` if the parent does not authorise the relayer for the child,
        :class:`ReorgDetected` if the checkpoint's block left the child chain (nothing is applied), and
        whatever the RPC or the database raise (the checkpoint then stays where it was; a re-run resumes).
        """
        with self.relay_sender.participant():
            return self._run_once(progress)

    def _run_once(self, progress: Progress | None) -> SyncReport:
        started = time.monotonic()
        report = SyncReport()
        self._failed_txs = 0
        self._attach_asked.clear()
        self._check_authorised()
        if self.settle_journal:
            settle_sender(self.sender)
        stored = self._stored()
        head = self.fetcher.head()
        if stored is not None:
            self._check_on_chain(stored, head)
        self._retry(report)

        first = self.start_block if stored is None else stored.block_number + 1
        target = head - self.confirmations
        total = max(0, target - first + 1)
        unstable = 0
        while True:
            start = self.start_block if stored is None else stored.block_number + 1
            if start > target:
                break
            end = min(target, start + self.max_range - 1)
            done = self._relay_range(start, end, stored, report)
            if done is None:
                unstable += 1
                if unstable >= MAX_UNSTABLE_READS:
                    raise ReorgDetected(end, "stable blocks", f"blocks {start}..{end} kept changing while read")
                continue
            unstable = 0
            end_block, refused, unbuildable = done
            stored = self._commit(stored, end_block, refused, unbuildable)
            if progress is not None:
                progress(end - first + 1, total)

        report.head = head
        report.checkpoint = None if stored is None else (stored.block_number, stored.block_hash)
        report.lag_blocks, report.lag_seconds = self._lag(head, stored)
        report.elapsed_s = time.monotonic() - started
        busy = report.added or report.failed or report.skipped
        log.log(logging.INFO if busy else logging.DEBUG, "%r: %s", self, report.summary())
        return report

    def backfill(self, from_block: int, to_block: int, progress: Progress | None = None) -> SyncReport:
        """Relay child blocks ``from_block..to_block`` without moving the checkpoint — e.g. history before
        ``start_block`` that later records depend on. Origins the parent holds are skipped; refusals are kept in
        ``relay_failures`` like a pass's (and retried by the next :meth:`run_once`).

        Raises ValueError for a range reaching past ``head − confirmations``, and as :meth:`run_once`.
        """
        with self.relay_sender.participant():
            return self._backfill(from_block, to_block, progress)

    def _backfill(self, from_block: int, to_block: int, progress: Progress | None) -> SyncReport:
        started = time.monotonic()
        report = SyncReport()
        self._failed_txs = 0
        self._check_authorised()
        settle_sender(self.sender)
        head = self.fetcher.head()
        if from_block < 0 or to_block < from_block or to_block > head - self.confirmations:
            raise ValueError(f"expected 0 <= from_block <= to_block <= {head - self.confirmations} (head − "
                             f"confirmations), got {from_block}..{to_block}")
        start, unstable = from_block, 0
        while start <= to_block:
            end = min(to_block, start + self.max_range - 1)
            done = self._relay_range(start, end, None, report)
            if done is None:
                unstable += 1
                if unstable >= MAX_UNSTABLE_READS:
                    raise ReorgDetected(end, "stable blocks", f"blocks {start}..{end} kept changing while read")
                continue
            unstable = 0
            _end_block, refused, unbuildable = done
            self._commit(None, None, refused, unbuildable)
            if progress is not None:
                progress(end - from_block + 1, to_block - from_block + 1)
            start = end + 1
        stored = self._stored()
        report.head = head
        report.checkpoint = None if stored is None else (stored.block_number, stored.block_hash)
        report.lag_blocks, report.lag_seconds = self._lag(head, stored)
        report.elapsed_s = time.monotonic() - started
        return report

    def _relay_range(
        self, start: int, end: int, stored: _Checkpoint | None, report: SyncReport
    ) -> tuple[tuple[int, str, int], list[tuple[RelayItem, str]], list[RelayBuildError]] | None:
        """Read, rebuild and relay child blocks ``start..end``; returns ((end, hash, timestamp), refused items,
        unbuildable events), or None if the blocks changed while they were read (nothing was relayed)."""
        read = self._read(start, end, stored)
        if read is None:
            return None
        events, end_block = read
        report.events += len(events)
        built = relay_items(
            events,
            self.chain_id,
            inputs=self._inputs(events),
            scope=self._jurisdiction_scope(),
            types=self.child.types,
        )
        report.ignored += built.ignored
        refused = self._relay(built.items, report)
        new = [self._failed_of_item(it, reason) for it, reason in refused]
        new += [FailedItem(exc.origin, exc.reason, f"(not rebuilt) ({exc.event})") for exc in built.failed]
        report.failed.extend(new)
        for failed in new:
            log.warning("relay of %s refused: %s (origin %s)", failed.what, failed.reason, failed.origin)
        return end_block, refused, built.failed

    # ------------------------------------------------------------------ checks

    def _check_authorised(self) -> None:
        _home, relayer = self.parent.view("child", self.chain_id, self.directory)
        if int(relayer, 16) == 0:
            raise RelayNotRegistered(f"child {self.directory} (chain {self.chain_id}) is not registered at parent "
                                     f"{self.parent.address} (chain {self.parent.chain_id}) yet")
        if to_checksum_address(relayer) != self.sender.address:
            raise RelayConfigError(
                f"parent {self.parent.address} (chain {self.parent.chain_id}) authorises {relayer} to relay child "
                f"{self.directory} (chain {self.chain_id}), not this job's relayer {self.sender.address}"
            )

    def _check_on_chain(self, stored: _Checkpoint, head: int) -> None:
        if stored.block_number > head:
            raise ReorgDetected(stored.block_number, stored.block_hash, f"none (head is {head})")
        got = self.fetcher.block_hash(stored.block_number)
        if got != stored.block_hash:
            raise ReorgDetected(stored.block_number, stored.block_hash, got)

    def _jurisdiction_scope(self) -> JurisdictionScope:
        if self._scope is None:
            (home,) = self.child.view("homeJurisdiction")

            def parent_of(jurisdiction: bytes) -> bytes | None:
                parent, tier = self.child.jurisdiction(jurisdiction)
                return None if tier == 0 else parent

            self._scope = JurisdictionScope(bytes(home), parent_of)
        return self._scope

    # ------------------------------------------------------------------ reading the child

    def _read(
        self, start: int, end: int, stored: _Checkpoint | None
    ) -> tuple[list[DecodedLog], tuple[int, str, int]] | None:
        """Decoded logs of ``start..end`` and (end, hash, timestamp); None if blocks changed while read."""
        checked = [end] if stored is None else [stored.block_number, end]
        before = self.fetcher.block_timestamps(checked)
        if stored is not None and before[stored.block_number][0] != stored.block_hash:
            raise ReorgDetected(stored.block_number, stored.block_hash, before[stored.block_number][0])
        events: list[DecodedLog] = []
        for raw in self.fetcher.fetch(start, end):
            ev = self.codec.decode_log(raw)
            if ev is None:
                log.warning("skipping a child log the ABI does not know: topics %s", raw.get("topics"))
                continue
            events.append(ev)
        blocks = self.fetcher.block_timestamps(sorted({ev.block_number for ev in events} | {end}))
        if blocks[end][0] != before[end][0]:
            return None
        if any(blocks[ev.block_number][0] != ev.block_hash.lower() for ev in events):
            return None
        return events, (end, blocks[end][0], blocks[end][1])

    def _inputs(self, events: list[DecodedLog]) -> dict[str, bytes]:
        """Input of each transaction whose events need it (one batched ``eth_getTransactionByHash``)."""
        hashes = sorted({ev.tx_hash.lower() for ev in events if needs_input(ev)})
        out: dict[str, bytes] = {}
        for i in range(0, len(hashes), MAX_RPC_BATCH):
            chunk = hashes[i : i + MAX_RPC_BATCH]
            for tx_hash, tx in zip(chunk, self.fetcher.rpc.batch_checked(
                [("eth_getTransactionByHash", [h]) for h in chunk]
            ), strict=True):
                if tx is not None:
                    out[tx_hash] = bytes.fromhex(str(tx["input"])[2:])
        return out

    # ------------------------------------------------------------------ relaying to the parent

    def _held(self, items: list[RelayItem]) -> list[bool]:
        """Whether the parent already holds each item's origin (``originRelayed``, batched ``eth_call``)."""
        out: list[bool] = []
        for i in range(0, len(items), MAX_RPC_BATCH):
            chunk = items[i : i + MAX_RPC_BATCH]
            calls = [
                ("eth_call", [{"to": self.parent.address,
                               "data": "0x" + encode_call("originRelayed", [it.origin.key]).hex()}, "latest"])
                for it in chunk
            ]
            for result in self.parent.rpc.batch(calls):
                if isinstance(result, RpcError):
                    raise result
                out.append(int(str(result), 16) != 0)
        return out

    def _data(self, batch: list[RelayItem]) -> bytes:
        return encode_call("relay", [[it.origin.as_tuple() for it in batch], [it.call for it in batch]])

    def _estimate(self, batch: list[RelayItem]) -> tuple[int, ContractRevert | UnknownRevert | None]:
        """(gas limit, None) if ``relay(batch)`` would succeed now (one ``eth_call`` within the sender's gas budget,
        :meth:`TxSender.budget_gas`), else (0, decoded revert). Raises RpcError for an error that is not a revert."""
        try:
            return self.sender.budget_gas(self.parent.address, self._data(batch), len(batch)), None
        except RpcError as exc:
            if exc.data:
                return 0, self.parent.codec.decode_revert(exc.data)
            if "revert" in exc.message.lower():
                return 0, UnknownRevert(b"", exc.message)
            raise  # not a refusal of the batch (node trouble): the pass stops, the checkpoint stays

    def _first_refused(
        self, batch: list[RelayItem], error: ContractRevert | UnknownRevert
    ) -> tuple[int, ContractRevert | UnknownRevert]:
        """Index of the first item the parent refuses after the ones before it, and why: for ``RelayNotAuthorised``,
        which names the origin directory the parent does not take relays of, the first item from that directory (no
        item before it can have failed: the relay stops at its first failure); otherwise by bisecting prefixes (an
        ``eth_call`` each). A district's first pass after a street's first records met RelayNotAuthorised once per
        street — 347 times in a Beijing-scale load, with ~4.6 bisecting calls each."""
        if isinstance(error, ContractRevert) and error.name == "RelayNotAuthorised":
            refused = (int(error.args_by_name["chainId"]), str(error.args_by_name["directory"]).lower())
            for index, item in enumerate(batch):
                if (item.origin.chain_id, item.origin.directory.lower()) == refused:
                    return index, error
        lo, hi, err = 1, len(batch), error
        while lo < hi:
            mid = (lo + hi) // 2
            _gas, e = self._estimate(batch[:mid])
            if e is None:
                lo = mid + 1
            else:
                hi, err = mid, e
        return hi - 1, err

    def _relay(self, items: list[RelayItem], report: SyncReport) -> list[tuple[RelayItem, str]]:
        """Submit the items the parent does not hold yet; returns the refused ones with their reasons."""
        refused: list[tuple[RelayItem, str]] = []
        pending: list[RelayItem] = []
        seen: set[bytes] = set()
        for item, held in zip(items, self._held(items), strict=True):
            if held or item.origin.key in seen:
                report.skipped += 1
            else:
                seen.add(item.origin.key)
                pending.append(item)
        size = self.batch_size
        while pending:
            batch = pending[:size]
            gas, err = self._estimate(batch)
            if err is None and gas > self.max_gas and len(batch) > 1:
                size = max(1, len(batch) // 2)
                continue
            if err is None:
                pending = self._send(batch, gas, report) + pending[len(batch) :]
                continue
            index, reason = self._first_refused(batch, err)
            item = batch[index]
            if self._may_attach(item, reason):
                if index > 0:  # the items before it first: they may add the origin's home at the parent
                    gas, err = self._estimate(batch[:index])
                    if err is None:
                        pending = self._send(batch[:index], gas, report) + pending[index:]
                assert self.attach is not None
                if self.attach(item.origin.chain_id, item.origin.directory):
                    continue
                pending = [it for it in pending if it is not item]
                refused.append((item, str(reason)))
                continue
            if isinstance(reason, ContractRevert) and reason.name == "RelayDuplicate":
                report.skipped += 1  # another instance of this job got there first
            else:
                refused.append((item, str(reason)))
            pending = pending[:index] + pending[index + 1 :]  # the ones before it go in on the next round
        return refused

    def _may_attach(self, item: RelayItem, reason: ContractRevert | UnknownRevert) -> bool:
        """Whether to ask :attr:`attach` to register ``item``'s origin directory (asked once per pass)."""
        origin = (item.origin.chain_id, to_checksum_address(item.origin.directory))
        if (self.attach is None or not isinstance(reason, ContractRevert) or reason.name != "RelayNotAuthorised"
                or origin == (self.chain_id, self.directory) or origin in self._attach_asked):
            return False
        self._attach_asked.add(origin)
        return True

    def _send(self, batch: list[RelayItem], gas: int, report: SyncReport) -> list[RelayItem]:
        """Relay ``batch`` through :attr:`relay_sender` (possibly in one transaction with other children's batches)
        and wait for it; returns the items to try again (empty on success)."""
        sent = self.relay_sender.send(batch, gas)
        report.transactions.append(sent.tx_hash)
        report.gas_used += sent.gas_used
        if sent.mined:
            report.added += sent.added
            return []
        # Mined but reverted: the state moved between estimate and inclusion (e.g. another instance of this job
        # relayed some of these origins, or another child's batch in the same transaction was refused). Drop what
        # the parent now holds and try the rest again.
        self._failed_txs += 1
        if self._failed_txs > MAX_FAILED_TXS:
            raise TransactionFailed(sent.tx_hash, sent.block_number)
        again = [it for it, held in zip(batch, self._held(batch), strict=True) if not held]
        report.skipped += len(batch) - len(again)
        return again

    # ------------------------------------------------------------------ failures and checkpoint

    def _failure_rows(self) -> list[RelayFailure]:
        c_chain, c_dir, p_chain, p_dir = self.pair
        with self.readers() as session:
            stmt = (
                select(RelayFailure)
                .where(RelayFailure.child_chain_id == c_chain, RelayFailure.child_directory == c_dir,
                       RelayFailure.parent_chain_id == p_chain, RelayFailure.parent_directory == p_dir)
                .order_by(RelayFailure.child_block, RelayFailure.child_log_index)
            )
            return list(session.scalars(stmt))

    @staticmethod
    def _item_of(row: RelayFailure) -> RelayItem:
        origin = Origin(
            row.origin_chain_id, row.origin_directory, bytes.fromhex(row.origin_tx_hash[2:]),
            row.origin_block_number, bytes.fromhex(row.origin_block_hash[2:]), row.origin_log_index,
        )
        call = bytes.fromhex(row.call[2:])
        method, _args = decode_call(call)
        return RelayItem(origin, call, method, PRIMARY_OF[method], row.event, row.code, None,
                         (row.child_block, row.child_log_index))

    @staticmethod
    def _failed_of(row: RelayFailure) -> FailedItem:
        origin = Origin(
            row.origin_chain_id, row.origin_directory, bytes.fromhex(row.origin_tx_hash[2:]),
            row.origin_block_number, bytes.fromhex(row.origin_block_hash[2:]), row.origin_log_index,
        )
        return FailedItem(origin, row.reason, f"{row.method} {row.code} ({row.event})", row.attempts)

    @staticmethod
    def _failed_of_item(item: RelayItem, reason: str) -> FailedItem:
        return FailedItem(item.origin, reason, item.describe())

    def _retry(self, report: SyncReport) -> None:
        """Try the items refused in earlier passes again, in child order; forget those the parent now holds."""
        rows = self._failure_rows()
        if not rows:
            return
        retryable = [row for row in rows if row.call != "0x"]
        items = [self._item_of(row) for row in retryable]
        added_before = report.added
        refused = {it.origin.key: reason for it, reason in self._relay(items, report)}
        report.retried += report.added - added_before
        held = self._held(items)
        with self.sessions.begin() as session:
            for row, item, is_held in zip(retryable, items, held, strict=True):
                current = session.get(RelayFailure, (*self.pair, row.origin_key))
                if current is None:
                    continue
                if is_held:
                    session.delete(current)
                elif item.origin.key in refused:
                    current.reason = refused[item.origin.key]
                    current.attempts += 1
                    report.failed.append(FailedItem(item.origin, current.reason, item.describe(), current.attempts))
        report.failed.extend(self._failed_of(row) for row in rows if row.call == "0x")

    def _commit(
        self,
        stored: _Checkpoint | None,
        end_block: tuple[int, str, int] | None,
        refused: list[tuple[RelayItem, str]],
        unbuildable: list[RelayBuildError],
    ) -> _Checkpoint | None:
        """Record refusals and (unless ``end_block`` is None) move the checkpoint to the range's last block
        (number, hash, timestamp), in one database transaction; returns the checkpoint written."""
        with self.sessions.begin() as session:
            for item, reason in refused:
                self._upsert_failure(session, item.origin, item.via, item.position, item.method, item.event,
                                     item.code, item.call, reason)
            for exc in unbuildable:
                o = exc.origin
                self._upsert_failure(session, o, None, (o.block_number, o.log_index), "(none)", exc.event,
                                     "(not rebuilt)", b"", exc.reason)
            if end_block is None:
                return None
            end, end_hash, end_ts = end_block
            row = session.get(RelayCheckpoint, self.pair)
            if row is None:
                c_chain, c_dir, p_chain, p_dir = self.pair
                session.add(RelayCheckpoint(child_chain_id=c_chain, child_directory=c_dir, parent_chain_id=p_chain,
                                            parent_directory=p_dir, block_number=end, block_hash=end_hash,
                                            block_timestamp=end_ts))
            elif row.block_number < end:
                if stored is None or row.block_number != stored.block_number:
                    log.warning("%r: checkpoint moved by another writer from %s to %d", self, stored,
                                row.block_number)
                row.block_number, row.block_hash, row.block_timestamp = end, end_hash, end_ts
        return _Checkpoint(end, end_hash, end_ts)

    def _upsert_failure(
        self,
        session: Session,
        origin: Origin,
        via: Origin | None,
        position: tuple[int, int],
        method: str,
        event: str,
        code: str,
        call: bytes,
        reason: str,
    ) -> None:
        key = "0x" + origin.key.hex()
        row = session.get(RelayFailure, (*self.pair, key))
        if row is not None:
            row.reason = reason
            row.attempts += 1
            return
        c_chain, c_dir, p_chain, p_dir = self.pair
        values: dict[str, Any] = {
            "child_chain_id": c_chain, "child_directory": c_dir, "parent_chain_id": p_chain,
            "parent_directory": p_dir, "origin_key": key,
            "origin_chain_id": origin.chain_id, "origin_directory": origin.directory,
            "origin_tx_hash": "0x" + origin.tx_hash.hex(), "origin_block_number": origin.block_number,
            "origin_block_hash": "0x" + origin.block_hash.hex(), "origin_log_index": origin.log_index,
            "via_tx_hash": None if via is None else "0x" + via.tx_hash.hex(),
            "via_log_index": None if via is None else via.log_index,
            "child_block": position[0], "child_log_index": position[1],
            "method": method, "event": event, "code": code, "call": "0x" + call.hex(), "reason": reason,
            "attempts": 1,
        }
        session.add(RelayFailure(**values))
