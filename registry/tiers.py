"""The service's tier sync: one relay job (:class:`registry.sync.RelayJob`) per child directory, street →
district → city, run in rounds.

The children are read from the index (the factory's ``DirectoryCreated`` events for the service's relayer):
every directory whose home has a parent jurisdiction is relayed to its parent's directory, streets before
districts in each round, so a street record usually reaches the city in one round. Within a tier the children's
passes run in a pool of ``workers`` threads, siblings next to each other (children of one tier never depend on
each other: each relays its own origins, and a district's copies of its streets' records were relayed in the
street phase before). Each pass has at most one batch in flight; the passes of siblings share one
:class:`registry.relay_sender.RelaySender` for their parent, so while one ``relay`` transaction to that parent
is in flight the others' batches gather and go out together in the next (fewer transactions, so fewer blocks).

The lag of each child (in blocks and seconds of its chain, see :meth:`RelayJob.lag`) after its latest pass is
kept for ``dirchain status``, ``GET /health`` and ``GET /metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chain.abi import ContractCodec
from chain.directory import DirectoryClient
from chain.logs import LogFetcher
from registry.db import DirectoryRow, JurisdictionRow
from registry.directories import Directories, TierChain
from registry.errors import ReorgDetected
from registry.relay_sender import RelaySender
from registry.sync import RelayJob, RelayNotRegistered, settle_sender

log = logging.getLogger(__name__)

#: Tiers in the order their jobs run in a round (lower tiers first).
_ORDER = {"street": 0, "district": 1}


@dataclass
class ChildLag:
    """A child directory's relay state: its home ``jurisdiction`` (code) and ``tier``, where it lives
    (``chain_id``, ``directory``) and its parent's (``parent_chain_id``, ``parent_directory``); after the latest
    pass the child chain's ``head``, the lag behind it in ``blocks`` and ``seconds``, items ``relayed`` in all,
    refused items still ``failing``, and the pass's ``error`` (None when it went through)."""

    jurisdiction: str
    tier: str
    chain_id: int
    directory: str
    parent_chain_id: int
    parent_directory: str
    head: int = 0
    blocks: int = 0
    seconds: int = 0
    relayed: int = 0
    failing: int = 0
    error: str | None = None


@dataclass
class _Child:
    job: RelayJob
    lag: ChildLag
    checkpoint: int = -1  # last child block the latest pass relayed up to (-1: no pass yet)
    last_log: int = -1  # latest child block seen holding a log of the child directory


@dataclass
class TierSync:
    """Relays every child directory of ``directories`` to its parent, state in ``sessions`` (writer sessions: the
    checkpoints and failures are written in ``BEGIN IMMEDIATE`` transactions; what is only read — the directories
    each round, each job's checkpoint and failures — goes through ``directories.sessions``, which do not take
    SQLite's write lock and so never queue behind the indexer's writes); ``interval_s``:
    seconds between rounds once caught up; ``batch_size``: most items per ``relay`` transaction; ``workers``: most
    children of one tier passed at once (threads; 1 passes them one after another). Counters:
    ``rounds`` completed, relay ``passes`` run, items ``relayed``, and ``busy_s`` — wall seconds of the rounds that
    relayed something. A round passes only the children that emitted logs past their checkpoint (one log query
    per chain finds them), have refused items to retry, failed last time, or never ran; a quiet child keeps the
    lag of its latest pass (0 blocks when it was caught up: nothing of it is left to relay)."""

    directories: Directories
    sessions: sessionmaker[Session]
    interval_s: float = 1.0
    batch_size: int = 50
    workers: int = 16
    rounds: int = 0
    relayed: int = 0
    busy_s: float = 0.0
    passes: int = 0
    _children: dict[tuple[int, str], _Child] = field(default_factory=dict)
    _scanned: dict[int, int] = field(default_factory=dict)
    #: Directories that are not children to relay (the root, or made by another relayer), not looked at again.
    _not_children: set[tuple[int, str]] = field(default_factory=set)
    #: One relay sender per parent directory (chain id, address), shared by the jobs of its children.
    _senders: dict[tuple[int, str], RelaySender] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _discover(self) -> None:
        """Make a job for every child directory the index lists that has none yet."""
        with self.directories.sessions() as session:  # runs every round: only directories not seen yet are loaded
            keys = session.execute(select(DirectoryRow.chain_id, DirectoryRow.address)).all()
            unseen = {(c, a) for c, a in keys if (c, a) not in self._children and (c, a) not in self._not_children}
            if not unseen:
                return
            rows = session.execute(
                select(DirectoryRow, JurisdictionRow).join(JurisdictionRow, JurisdictionRow.id == DirectoryRow.home_id)
                .where(DirectoryRow.address.in_({a for _c, a in unseen}))
            ).all()
            found: list[tuple[DirectoryRow, JurisdictionRow]] = []
            for d, j in rows:
                if (d.chain_id, d.address) not in unseen:
                    continue
                if j.parent_id is None:
                    self._not_children.add((d.chain_id, d.address))
                else:
                    found.append((d, j))
            parents = {j.id: session.get(JurisdictionRow, j.parent_id) for _d, j in found}
        for d, j in found:
            chain = self.directories.chain_by_id(d.chain_id)
            parent_j = parents[j.id]
            key = (d.chain_id, d.address)
            if chain is not None and d.creator != chain.relayer.address:
                self._not_children.add(key)  # made by another relayer: not ours to relay
                continue
            if chain is None or parent_j is None:
                continue  # looked at again next round
            parent_chain = self.directories.chain_of_tier(parent_j.tier)
            parent_address = self.directories.predict(parent_chain, bytes.fromhex(parent_j.id[2:]))
            job = self._job(chain, d, parent_chain, parent_address)
            lag = ChildLag(j.code, j.tier, d.chain_id, d.address, parent_chain.chain_id, parent_address)
            with self._lock:
                self._children[key] = _Child(job, lag)

    def _job(self, chain: TierChain, row: DirectoryRow, parent_chain: TierChain, parent_address: str) -> RelayJob:
        parent = DirectoryClient(parent_chain.rpc, parent_address, parent_chain.chain_id, parent_chain.sync)
        fetcher = LogFetcher.from_rpc(chain.rpc, row.address)
        with self._lock:
            shared = self._senders.get((parent.chain_id, parent.address))
            if shared is None:
                shared = self._senders[(parent.chain_id, parent.address)] = RelaySender(parent,
                                                                                      max_items=self.batch_size)
        return RelayJob(
            fetcher,
            ContractCodec(parent.abi),
            chain.chain_id,
            row.address,
            parent,
            self.sessions,
            readers=self.directories.sessions,
            confirmations=chain.confirmations,
            batch_size=self.batch_size,
            start_block=row.block_number,
            attach=lambda chain_id, address: self.directories.attach(parent, chain_id, address),
            settle_journal=False,  # settled once per round for all jobs (run_once): they share the relayer
            relay_sender=shared,
        )

    def _scan(self, children: list[_Child]) -> None:
        """Note, per chain, which children emitted logs since the last round: ONE ``eth_getLogs`` over every
        child's address (bounded ranges), instead of a full pass of every child every round."""
        by_chain: dict[int, dict[str, _Child]] = {}
        for child in children:
            by_chain.setdefault(child.lag.chain_id, {})[child.lag.directory.lower()] = child
        for chain_id, members in by_chain.items():
            chain = self.directories.chain_by_id(chain_id)
            if chain is None:
                continue
            head = int(chain.rpc.call("eth_blockNumber", []), 16)
            start = self._scanned.get(chain_id, min(c.job.start_block for c in members.values()))
            addresses = sorted(members)
            while start <= head:
                end = min(head, start + 4999)
                logs = chain.rpc.call("eth_getLogs", [{"address": addresses, "fromBlock": hex(start),
                                                       "toBlock": hex(end)}])
                for raw in logs or []:
                    hit = members.get(str(raw.get("address", "")).lower())
                    if hit is not None:
                        hit.last_log = max(hit.last_log, int(raw["blockNumber"], 16))
                start = end + 1
            self._scanned[chain_id] = head + 1

    @staticmethod
    def _due(child: _Child) -> bool:
        """Whether a child needs a pass: never passed, logs past its checkpoint, refused items to retry, or an
        error last time."""
        return (child.checkpoint < 0 or child.last_log > child.checkpoint or child.lag.failing > 0
                or child.lag.error is not None)

    def run_once(self) -> int:
        """One round over every child with something to relay (streets first, each tier's children in parallel);
        returns the items relayed. A child whose pass fails keeps its error in its :class:`ChildLag` and does not
        stop the others."""
        started = time.monotonic()
        self._discover()
        with self._lock:
            children = sorted(self._children.values(), key=lambda c: (_ORDER.get(c.lag.tier, 9), c.lag.jurisdiction))
        self._scan(children)
        for chain in {c.sync.address: c.sync for c in self.directories.chains.values()}.values():
            settle_sender(chain)
        added = 0
        for rank in sorted({_ORDER.get(c.lag.tier, 9) for c in children}):
            due = [c for c in children if _ORDER.get(c.lag.tier, 9) == rank and self._due(c)]
            if len(due) <= 1 or self.workers <= 1:
                added += sum(self._pass(child) for child in due)
                continue
            with ThreadPoolExecutor(max_workers=min(self.workers, len(due)), thread_name_prefix="relay") as pool:
                added += sum(pool.map(self._pass, due))
        self.rounds += 1
        self.relayed += added
        if added:
            self.busy_s += time.monotonic() - started
        return added

    def _pass(self, child: _Child) -> int:
        """One pass of ``child``'s job; its lag updated; returns the items relayed (0 when the pass failed)."""
        with self._lock:
            self.passes += 1
        try:
            report = child.job.run_once()
        except RelayNotRegistered as exc:  # made a moment ago; its setChild is on its way (retried next round)
            child.lag.error = str(exc)
            log.debug("relay of %s waits: %s", child.lag.jurisdiction, exc)
            return 0
        except ReorgDetected as exc:
            child.lag.error = f"reorganisation deeper than the confirmation depth: {exc}"
            log.critical("relay of %s stopped: %s", child.lag.jurisdiction, exc)
            return 0
        except Exception as exc:
            child.lag.error = str(exc)
            log.warning("relay of %s failed (retried next round): %s", child.lag.jurisdiction, exc)
            return 0
        child.lag.head = report.head
        child.lag.blocks, child.lag.seconds = report.lag_blocks, report.lag_seconds
        child.checkpoint = report.checkpoint[0] if report.checkpoint is not None else child.job.start_block - 1
        child.lag.relayed += report.added
        child.lag.failing = len(child.job.failures())
        child.lag.error = None
        return report.added

    def relay_counts(self) -> dict[str, int]:
        """``relay_transactions`` sent to the parents so far and the children's ``relay_batches`` they carried (a
        job hands in one batch at a time): their ratio is how many batches a transaction carried on average."""
        with self._lock:
            senders = list(self._senders.values())
        return {"relay_transactions": sum(s.transactions for s in senders),
                "relay_batches": sum(s.batches for s in senders)}

    def lags(self) -> list[ChildLag]:
        """Each child's state after its latest pass, lower tiers first."""
        with self._lock:
            return sorted((c.lag for c in self._children.values()),
                          key=lambda lag: (_ORDER.get(lag.tier, 9), lag.jurisdiction))

    def run(self, stop: threading.Event) -> None:
        """Rounds until ``stop`` is set (a thread's target); a round that relayed something is followed at once
        by the next, an idle one after ``interval_s`` seconds."""
        while not stop.is_set():
            try:
                busy = self.run_once() > 0
            except Exception as exc:  # discovery itself failed (database, RPC): try again next round
                log.warning("tier sync round failed: %s", exc)
                busy = False
            if not busy:
                stop.wait(self.interval_s)
