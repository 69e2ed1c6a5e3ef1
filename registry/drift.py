"""Drift between the SQL index and the chain: rebuild the index from the chains alone and compare it row by row.

The index is derived from the chain (DESIGN §3), so an auditor who does not trust the service, its database or
its operator can rebuild it: :func:`drift_report` reads the index's cursors, re-indexes every chain into a
fresh in-memory SQLite database — with the service's own code path (:class:`registry.indexer.Indexer` following
each chain's DirectoryFactory for the service's relayer, :func:`registry.store.apply_events`) — up to the block
each cursor reached (a lagging index is not drift), and compares every derived table row by row, keyed by
primary key. A row edited, deleted or inserted in the index is a :class:`Finding`: ``changed`` (with each
column's chain value and index value), ``missing`` (on chain, not in the index) or ``extra`` (in the index, not
on chain). Operational tables (:data:`OPERATIONAL_TABLES`: cursors, relay checkpoints, relay failures) are not
compared row by row, but each cursor's block hash must be the chain's (else the index follows another fork).

The report is a numbered plan (:data:`CHECKS`) that fails closed: no chain, a chain that does not answer, a
chain id that is not the stated one, no contract at a factory, or an index that holds no cursor for any of the
chains raise :class:`DriftError` naming the check — never "no drift".

Chains are re-indexed in one order across chains: blocks with logs merged by block timestamp (ties: in the order
the chains are given, the city's first). The store resolves some columns across chains when an event is applied
(a district catalog's jurisdiction code comes from the city chain's ``JurisdictionAdded``), so the rebuild
follows causality as the running service does. The index is read in one transaction (a snapshot), so an
indexer writing meanwhile cannot make rows appear past the cursors read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eth_utils import to_checksum_address
from sqlalchemy import Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from chain.errors import ChainError
from chain.logs import LogFetcher
from chain.rpc import Rpc
from registry.db import Base, Cursor, make_engine, session_factory
from registry.directories import TierChain
from registry.errors import RegistryError, ReorgDetected
from registry.indexer import Indexer, indexer_codec

#: Tables of operational state, not derived from the chain: not compared row by row.
OPERATIONAL_TABLES = frozenset({"cursors", "relay_checkpoints", "relay_failures"})

#: Derived tables in the order findings are reported (domain first, raw logs last); any other derived table of
#: the schema is compared too, after these.
TABLE_ORDER = (
    "jurisdictions",
    "departments",
    "administrators",
    "department_accounts",
    "directories",
    "catalogs",
    "catalog_versions",
    "systems",
    "system_versions",
    "sharing_requests",
    "sharing_transitions",
    "relayed_records",
    "chain_events",
    "blocks",
)

#: The numbered plan of :func:`drift_report`.
CHECKS: tuple[tuple[int, str], ...] = (
    (1, "input"),
    (2, "chains"),
    (3, "index"),
    (4, "rebuild"),
    (5, "compare"),
)

Kind = Literal["changed", "missing", "extra"]


class DriftError(RegistryError):
    """Check ``number`` (``name``) of :data:`CHECKS` could not be completed: ``reason``. ``str()``:
    ``check 2 chains: chain 31337 (http://…): ConnectError: …``."""

    def __init__(self, number: int, name: str, reason: str) -> None:
        super().__init__(f"check {number} {name}: {reason}")
        self.number = number
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class ChainSource:
    """One chain to rebuild from: its JSON-RPC endpoint, EIP-155 ``chain_id`` (checked against the node), the
    DirectoryFactory address, the ``creators`` whose directories the index follows (the service's relayer) and
    the factory's deployment block (``start_block``, where indexing starts). ``name`` labels messages."""

    rpc: Rpc
    chain_id: int
    factory: str
    creators: frozenset[str]
    start_block: int = 0
    name: str = ""

    @classmethod
    def of(cls, chain: TierChain) -> ChainSource:
        """The source of a service's chain: its factory, followed for the service's relayer."""
        return cls(chain.rpc, chain.chain_id, to_checksum_address(chain.factory),
                   frozenset({to_checksum_address(chain.relayer.address)}), chain.start_block, chain.name)

    @property
    def label(self) -> str:
        """``city chain 31337`` or ``chain 31337`` (for messages)."""
        return f"{self.name} chain {self.chain_id}" if self.name else f"chain {self.chain_id}"


@dataclass(frozen=True)
class ColumnDifference:
    """One column of a changed row: ``expected`` (rebuilt from the chain) and ``got`` (in the index)."""

    column: str
    expected: Any
    got: Any


@dataclass(frozen=True)
class Finding:
    """A row where the index and the chain disagree: ``table``, primary ``key`` (column values in key order),
    ``kind`` — ``changed`` (``differences``: the columns that differ), ``missing`` (on chain, not in the index;
    ``row``: the chain's) or ``extra`` (in the index, not on chain; ``row``: the index's)."""

    table: str
    key: tuple[Any, ...]
    kind: Kind
    differences: tuple[ColumnDifference, ...] = ()
    row: dict[str, Any] | None = None

    def __str__(self) -> str:
        where = f"{self.table} ({', '.join(str(k) for k in self.key)})"
        if self.kind == "missing":
            return f"{where}: on chain, missing from the index"
        if self.kind == "extra":
            return f"{where}: in the index, not on chain"
        first, *rest = self.differences
        more = f" (and {len(rest)} more column{'s' if len(rest) > 1 else ''})" if rest else ""
        return f"{where}.{first.column}: expected {first.expected!r}, got {first.got!r}{more}"


@dataclass(frozen=True)
class ChainCheck:
    """What was compared on one chain: its ``head`` when checked, the index's ``cursor`` (None: the index never
    indexed it, so it must hold nothing of it) and the block the rebuild reached (``rebuilt_to``), events
    re-applied (``events``)."""

    chain_id: int
    name: str
    factory: str
    head: int
    cursor: int | None
    rebuilt_to: int | None
    events: int


@dataclass
class DriftReport:
    """Outcome of :func:`drift_report`: ``ok`` when there is no finding; ``findings`` in :data:`TABLE_ORDER`,
    by key; ``chains`` per chain; ``tables``: rows compared per table (the index's count); ``elapsed_ms`` of the
    whole report (rebuild included, wall time)."""

    ok: bool
    findings: list[Finding] = field(default_factory=list)
    chains: list[ChainCheck] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    @property
    def first(self) -> Finding | None:
        """The first finding (None when ok)."""
        return self.findings[0] if self.findings else None


# ---------------------------------------------------------------------------------------- reading


class _CappedFetcher(LogFetcher):
    """A topic-reading fetcher whose head is at most ``cap``: the rebuilt indexer stops where the index's cursor
    stands (the chain's later blocks are not the index's business yet)."""

    def __init__(self, rpc: Rpc, address: str, topics: list[str], cap: int) -> None:
        super().__init__(None, address, rpc.url, rpc=rpc, topics=topics)
        self.cap = cap

    def head(self) -> int:
        return min(super().head(), self.cap)


def derived_tables() -> list[Table]:
    """The tables compared: every table of the schema but :data:`OPERATIONAL_TABLES`, in :data:`TABLE_ORDER`
    (tables added to the schema later come after, by name)."""
    tables = {t.name: t for t in Base.metadata.sorted_tables if t.name not in OPERATIONAL_TABLES}
    known = [tables[name] for name in TABLE_ORDER if name in tables]
    return known + [tables[name] for name in sorted(set(tables) - set(TABLE_ORDER))]


Keyed = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


def dump_keyed(session: Session, tables: Iterable[Table] | None = None) -> Keyed:
    """Every row of the derived tables, as ``{table: {primary key tuple: {column: value}}}``."""
    out: Keyed = {}
    for table in derived_tables() if tables is None else tables:
        pk = [c.name for c in table.primary_key.columns]
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in session.execute(select(*table.columns)).mappings():
            row = dict(r)
            rows[tuple(row[c] for c in pk)] = row
        out[table.name] = rows
    return out


def compare(expected: Keyed, got: Keyed) -> list[Finding]:
    """Findings between two :func:`dump_keyed` dumps: ``expected`` (rebuilt from the chain) and ``got`` (the
    index), table by table in the order of ``expected``, keys sorted."""
    findings: list[Finding] = []
    for table, want in expected.items():
        have = got.get(table, {})
        for key in sorted(set(want) | set(have), key=_sort_key):
            if key not in have:
                findings.append(Finding(table, key, "missing", row=want[key]))
            elif key not in want:
                findings.append(Finding(table, key, "extra", row=have[key]))
            else:
                diffs = tuple(ColumnDifference(c, v, have[key].get(c)) for c, v in want[key].items()
                              if have[key].get(c) != v or type(have[key].get(c)) is not type(v))
                if diffs:
                    findings.append(Finding(table, key, "changed", diffs))
    return findings


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
    return tuple((0, "") if k is None else (1, k) if isinstance(k, int) else (2, str(k)) for k in key)


def _check_chain(src: ChainSource) -> None:
    """Check 2 for one chain: the node answers with the stated chain id and has a contract at the factory."""
    try:
        chain_id = int(src.rpc.call("eth_chainId", []), 16)
        if chain_id != src.chain_id:
            raise DriftError(2, "chains", f"{src.label} at {src.rpc.url}: expected chain id {src.chain_id}, "
                                          f"got {chain_id}")
        code = str(src.rpc.call("eth_getCode", [src.factory, "latest"]))
    except (ChainError, ValueError, TypeError) as exc:
        raise DriftError(2, "chains", f"{src.label} at {src.rpc.url} does not answer: "
                                      f"{type(exc).__name__}: {exc}") from exc
    if code in ("", "0x"):
        raise DriftError(2, "chains", f"{src.label}: expected a DirectoryFactory at {src.factory}, got no contract")


def _head(src: ChainSource) -> int:
    """The chain's head block number (check 4: read after the index's cursors, so a cursor the indexer moved
    meanwhile is never past it)."""
    try:
        return int(src.rpc.call("eth_blockNumber", []), 16)
    except (ChainError, ValueError, TypeError) as exc:
        raise DriftError(4, "rebuild", f"{src.label} at {src.rpc.url} does not answer: "
                                       f"{type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------------------- rebuilding


def rebuild(
    chains: Sequence[ChainSource], caps: dict[int, int]
) -> tuple[sessionmaker[Session], dict[int, tuple[int, str]], dict[int, int]]:
    """Index ``chains`` into a fresh in-memory SQLite database, each up to block ``caps[chain_id]`` (chains
    without a cap are not read), with :class:`registry.indexer.Indexer` following each factory for its creators.

    Blocks holding logs are applied in one order across chains: by block timestamp, ties in the order of
    ``chains`` (see the module docstring). Returns the database's session factory, each chain's final cursor
    (block number, hash) and the events applied per chain. Raises :class:`ReorgDetected` or ChainError
    (:class:`chain.rpc.RpcUnavailable` when a node does not answer) from the indexers.
    """
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    sessions = session_factory(engine)
    codec = indexer_codec()
    topics = ["0x" + topic.hex() for topic in codec.events]
    indexers: dict[int, tuple[Indexer, _CappedFetcher]] = {}
    schedule: list[tuple[int, int, int]] = []  # (block timestamp, chain rank, block number)
    for rank, src in enumerate(chains):
        cap = caps.get(src.chain_id)
        if cap is None or cap < src.start_block:
            continue
        fetcher = _CappedFetcher(src.rpc, src.factory, topics, cap)
        indexers[rank] = (Indexer(fetcher, codec, sessions, src.chain_id, src.factory, start_block=src.start_block,
                                  creators=src.creators), fetcher)
        if len([c for c in chains if caps.get(c.chain_id) is not None]) > 1:
            blocks = sorted({int(raw["blockNumber"], 16) for raw in fetcher.fetch(src.start_block, cap)})
            stamps = fetcher.block_timestamps(blocks)
            schedule += [(stamps[b][1], rank, b) for b in blocks]
    schedule.sort()
    runs: list[tuple[int, int]] = []  # (chain rank, last block of the run)
    for _, rank, block in schedule:
        if runs and runs[-1][0] == rank:
            runs[-1] = (rank, block)
        else:
            runs.append((rank, block))
    applied = dict.fromkeys(indexers, 0)
    for rank, block in runs:
        indexer, fetcher = indexers[rank]
        fetcher.cap = block
        applied[rank] += indexer.run_once()
    cursors: dict[int, tuple[int, str]] = {}
    events: dict[int, int] = {}
    for rank, (indexer, fetcher) in indexers.items():
        fetcher.cap = caps[chains[rank].chain_id]
        applied[rank] += indexer.run_once()
        with sessions() as session:
            row = session.get(Cursor, (chains[rank].chain_id, indexer.address))
            assert row is not None
            cursors[chains[rank].chain_id] = (row.block_number, row.block_hash)
        events[chains[rank].chain_id] = applied[rank]
    return sessions, cursors, events


# ---------------------------------------------------------------------------------------- the report


def drift_report(session: Session, chains: Sequence[ChainSource]) -> DriftReport:
    """Compare the index behind ``session`` with the index rebuilt from ``chains`` alone (see the module
    docstring); the plan of :data:`CHECKS`:

    1. **input** — at least one chain, no chain id twice;
    2. **chains** — each node answers with its stated chain id and has a contract at the factory;
    3. **index** — the index's cursor of each chain (keyed (chain id, factory)) and every derived row, read in
       one transaction; at least one chain has a cursor (an index that indexed nothing proves nothing);
    4. **rebuild** — every chain re-indexed up to its cursor (a cursor past the chain's head is a finding on
       ``cursors`` and the rebuild stops at the head);
    5. **compare** — every derived table row by row, and each cursor's block hash against the rebuilt one.

    ``session`` is only read (its transaction is the snapshot; on PostgreSQL it is made REPEATABLE READ, so it
    must not have run a statement yet). Returns a :class:`DriftReport` (``ok`` iff no finding). Raises
    :class:`DriftError` naming the check that could not be completed (fails closed).
    """
    started = time.perf_counter()
    if not chains:
        raise DriftError(1, "input", "expected at least one chain to rebuild the index from, got none")
    ids = [c.chain_id for c in chains]
    if len(set(ids)) != len(ids):
        raise DriftError(1, "input", f"expected each chain once, got chain ids {ids}")
    for src in chains:
        _check_chain(src)

    try:
        bind = session.get_bind()
        if bind.dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        stored = {src.chain_id: session.get(Cursor, (src.chain_id, to_checksum_address(src.factory)))
                  for src in chains}
        cursors = {cid: (row.block_number, row.block_hash) for cid, row in stored.items() if row is not None}
        index = dump_keyed(session)
    except SQLAlchemyError as exc:
        raise DriftError(3, "index", f"cannot read the index: {type(exc).__name__}: {exc}") from exc
    if not cursors:
        raise DriftError(3, "index", "expected a cursor for at least one of the chains "
                                     f"({', '.join(c.label for c in chains)}), got none: the index has indexed nothing")

    heads = {src.chain_id: _head(src) for src in chains}
    findings: list[Finding] = []
    caps: dict[int, int] = {}
    for src in chains:
        if src.chain_id not in cursors:
            continue
        number, _ = cursors[src.chain_id]
        if number > heads[src.chain_id]:
            findings.append(Finding("cursors", (src.chain_id, to_checksum_address(src.factory)), "changed",
                                    (ColumnDifference("block_number", heads[src.chain_id], number),)))
        caps[src.chain_id] = min(number, heads[src.chain_id])
    try:
        sessions, rebuilt, events = rebuild(chains, caps)
    except (ChainError, ReorgDetected) as exc:
        raise DriftError(4, "rebuild", f"{type(exc).__name__}: {exc}") from exc

    for src in chains:
        if src.chain_id in rebuilt and src.chain_id in cursors:
            number, block_hash = cursors[src.chain_id]
            if number == rebuilt[src.chain_id][0] and block_hash != rebuilt[src.chain_id][1]:
                findings.append(Finding("cursors", (src.chain_id, to_checksum_address(src.factory)), "changed",
                                        (ColumnDifference("block_hash", rebuilt[src.chain_id][1], block_hash),)))
    with sessions() as fresh:
        expected = dump_keyed(fresh)
    findings += compare(expected, index)
    report = DriftReport(
        ok=not findings,
        findings=findings,
        chains=[
            ChainCheck(src.chain_id, src.name, to_checksum_address(src.factory), heads[src.chain_id],
                       cursors[src.chain_id][0] if src.chain_id in cursors else None,
                       rebuilt[src.chain_id][0] if src.chain_id in rebuilt else None, events.get(src.chain_id, 0))
            for src in chains
        ],
        tables={name: len(rows) for name, rows in index.items()},
    )
    report.elapsed_ms = (time.perf_counter() - started) * 1000
    return report


def chain_sources(chains: Iterable[TierChain]) -> list[ChainSource]:
    """:class:`ChainSource` of each of a service's chains, in the order given (the city's first)."""
    return [ChainSource.of(chain) for chain in chains]
