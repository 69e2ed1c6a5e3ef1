"""SQL schema of the derived index, engine set-up and migrations.

The chain is the source of truth; these tables are a *derived index* of its events. Re-indexing
the same chain from block 0 into an empty database must reproduce every row exactly, so:

* every key is natural (a code, a 0x-hex id, an account, ``(tx_hash, log_index)``) — no
  autoincrement surrogates;
* no wall-clock column anywhere — times are block timestamps (unix seconds);
* ``blocks`` holds exactly the blocks that contain at least one indexed log (not every block a
  range happened to end on), so the rows do not depend on how the indexing was split into ranges.

Value conventions: ids, hashes and signatures are lowercase 0x-hex strings; accounts are EIP-55
checksummed addresses; uint256 values that may exceed 2**63 (nonces, deadlines) are decimal
strings; tiers are ``city``/``district``/``street``; booleans are SQL booleans.

Foreign keys are declared only where the indexer itself creates both sides (a version row and its
current-state row, an event and its block); references to jurisdictions and departments are
guaranteed by the contract and only indexed, so an index that starts mid-chain cannot be wedged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, declared_attr, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

#: Folder holding the Alembic environment (``env.py``, ``versions/``), shipped as package data.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Execution option making SQLite transactions ``BEGIN IMMEDIATE`` (see :func:`session_factory`).
BEGIN_IMMEDIATE = "dirchain_sqlite_begin_immediate"

#: SQLite busy timeout in milliseconds (how long a connection waits for another's write lock).
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Connections kept open to a SQLite file, and how many more may be opened at a busy moment (the API's thread
#: pool alone runs 40 requests at once; past the limit a request waits 30 s for a connection, then fails).
SQLITE_POOL_SIZE = 10
SQLITE_POOL_OVERFLOW = 90

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HASH = 66  # len("0x" + 64 hex digits): ids, hashes
ADDRESS = 42  # len("0x" + 40 hex digits)


class Base(DeclarativeBase):
    """Declarative base of the index tables (one :class:`MetaData` with Alembic's naming convention)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# ---------------------------------------------------------------------------------------- raw chain


class ChainEvent(Base):
    """Every log of the directory contract, decoded (including OpenZeppelin's role events).

    ``args`` is the decoded arguments as canonical JSON text (sorted keys): bytes as 0x-hex,
    addresses checksummed, integers of ABI types wider than 64 bits as decimal strings.
    """

    __tablename__ = "chain_events"
    __table_args__ = (
        ForeignKeyConstraint(["chain_id", "block_number"], ["blocks.chain_id", "blocks.number"]),
        Index("ix_chain_events_chain_id_address_block_number", "chain_id", "address", "block_number"),  # /audit/changes
    )

    tx_hash: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    block_hash: Mapped[str] = mapped_column(String(HASH))
    tx_index: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(ADDRESS))
    event: Mapped[str] = mapped_column(String(64), index=True)
    args: Mapped[str] = mapped_column(Text)


class Block(Base):
    """A block of chain ``chain_id`` holding at least one indexed log: hash (0x-hex) and timestamp (unix seconds)."""

    __tablename__ = "blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(HASH))
    timestamp: Mapped[int] = mapped_column(BigInteger)


class Cursor(Base):
    """How far the index of one chain's directories reaches: ``address`` is the directory indexed, or the
    DirectoryFactory whose directories are indexed; the last block fully indexed and its hash (checked
    against the chain before every range to detect reorganisations)."""

    __tablename__ = "cursors"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(String(ADDRESS), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(HASH))


# ---------------------------------------------------------------------------------------- directory


class JurisdictionRow(Base):
    """A jurisdiction (行政区划) from ``JurisdictionAdded``: id = keccak256(code), tier, parent id."""

    __tablename__ = "jurisdictions"

    id: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    tier: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(String(HASH), index=True)
    signer: Mapped[str] = mapped_column(String(ADDRESS))
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)


class DepartmentRow(Base):
    """A department (部门) from ``DepartmentRegistered``: id = keccak256(code), its jurisdiction id."""

    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    jurisdiction_id: Mapped[str] = mapped_column(String(HASH), index=True)
    signer: Mapped[str] = mapped_column(String(ADDRESS))
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)


class AdministratorRow(Base):
    """Latest ``AdministratorSet`` of (jurisdiction, account): ``active`` False once revoked."""

    __tablename__ = "administrators"

    jurisdiction_id: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    account: Mapped[str] = mapped_column(String(ADDRESS), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean)
    signer: Mapped[str] = mapped_column(String(ADDRESS))
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)


class DepartmentAccountRow(Base):
    """Latest ``DepartmentAccountSet`` of a signing key: its department and jurisdiction, ``active``."""

    __tablename__ = "department_accounts"

    account: Mapped[str] = mapped_column(String(ADDRESS), primary_key=True)
    department_id: Mapped[str] = mapped_column(String(HASH), index=True)
    jurisdiction_id: Mapped[str] = mapped_column(String(HASH))
    active: Mapped[bool] = mapped_column(Boolean)
    signer: Mapped[str] = mapped_column(String(ADDRESS))
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)


# ---------------------------------------------------------------------------------------- records


class CatalogRow(Base):
    """Current state of a catalog (数据资源目录 entry).

    ``latest_version``, ``status`` (``active``/``retired``), ``tx_hash``, ``block_number`` and
    ``updated_at`` (block timestamp, unix seconds) mirror the chain's latest version event, valid or
    not. The content columns (``name`` … ``search_text``, ``record``) come from the latest *valid*
    version, ``record_version``; they are null while no version has been valid. ``latest_digest`` is
    the digest of the latest register/update (a retire carries none).
    """

    __tablename__ = "catalogs"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(HASH), unique=True)
    jurisdiction_id: Mapped[str] = mapped_column(String(HASH))
    jurisdiction_code: Mapped[str | None] = mapped_column(Text, index=True)
    tier: Mapped[str | None] = mapped_column(String(16), index=True)
    department_id: Mapped[str] = mapped_column(String(HASH))
    department_code: Mapped[str | None] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(Text)
    share_type: Mapped[str | None] = mapped_column(String(32), index=True)
    open_type: Mapped[str | None] = mapped_column(String(32), index=True)
    update_frequency: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    latest_digest: Mapped[str | None] = mapped_column(String(HASH))
    source_system: Mapped[str | None] = mapped_column(String(64))
    record_version: Mapped[int | None] = mapped_column(Integer)
    record: Mapped[str | None] = mapped_column(Text)
    search_text: Mapped[str | None] = mapped_column(Text)
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    block_number: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class _VersionColumns:
    """Columns of one version event of a catalog or system (the two version tables are alike but for the
    table their ``code`` refers to, ``_current_table``)."""

    _current_table: ClassVar[str]

    @declared_attr
    def code(cls) -> Mapped[str]:
        return mapped_column(String(64), ForeignKey(f"{cls._current_table}.code"), primary_key=True, sort_order=-1)

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str | None] = mapped_column(String(HASH))
    record: Mapped[str | None] = mapped_column(Text)
    signer: Mapped[str] = mapped_column(String(ADDRESS))
    nonce: Mapped[str] = mapped_column(String(80))
    deadline: Mapped[str] = mapped_column(String(80))
    signature: Mapped[str] = mapped_column(Text)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    directory: Mapped[str] = mapped_column(String(ADDRESS))
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(HASH))
    block_timestamp: Mapped[int] = mapped_column(BigInteger)
    valid: Mapped[bool] = mapped_column(Boolean)
    invalid_reason: Mapped[str | None] = mapped_column(Text)


class CatalogVersionRow(_VersionColumns, Base):
    """One catalog version event (register / update / retire) exactly as on chain, plus its check.

    ``record`` is the raw record bytes decoded as UTF-8 (undecodable bytes replaced by U+FFFD; the
    exact bytes stay in ``chain_events.args``), null for a retire; ``digest`` null for a retire.
    ``valid`` is False with an ``invalid_reason`` when the bytes are not the canonical JSON of a
    valid record matching the event's code, jurisdiction, department (and source system).
    """

    __tablename__ = "catalog_versions"
    __table_args__ = (Index("ix_catalog_versions_chain_id_directory", "chain_id", "directory"),)  # held_at_tier
    _current_table: ClassVar[str] = "catalogs"


class SystemRow(Base):
    """Current state of an information system (信息系统), as :class:`CatalogRow`.

    ``status`` is the record's construction status (planned/building/online/offline, from the latest
    valid version); ``lifecycle`` is the chain's ``active``/``retired``.
    """

    __tablename__ = "systems"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(HASH), unique=True)
    jurisdiction_id: Mapped[str] = mapped_column(String(HASH))
    jurisdiction_code: Mapped[str | None] = mapped_column(Text, index=True)
    tier: Mapped[str | None] = mapped_column(String(16), index=True)
    department_id: Mapped[str] = mapped_column(String(HASH))
    department_code: Mapped[str | None] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(16), index=True)
    lifecycle: Mapped[str] = mapped_column(String(16), index=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    latest_digest: Mapped[str | None] = mapped_column(String(HASH))
    record_version: Mapped[int | None] = mapped_column(Integer)
    record: Mapped[str | None] = mapped_column(Text)
    search_text: Mapped[str | None] = mapped_column(Text)
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    block_number: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class SystemVersionRow(_VersionColumns, Base):
    """One system version event, as :class:`CatalogVersionRow`."""

    __tablename__ = "system_versions"
    __table_args__ = (Index("ix_system_versions_chain_id_directory", "chain_id", "directory"),)  # held_at_tier
    _current_table: ClassVar[str] = "systems"


# ---------------------------------------------------------------------------------------- sharing


class SharingRequestRow(Base):
    """A data-sharing request (共享申请) and, once granted, its grant, from ``SharingRequested`` and the
    ``SharingStatusChanged`` events that follow it.

    ``id`` = keccak256(abi.encode(signer, nonce)) (0x-hex). ``items_mask`` is the requested bitmask over
    the catalog version's data items (decimal string; bit i = item i); ``items`` the JSON list of those
    items' names resolved from the indexed record of ``catalog_version`` (null when that version has no
    valid record in the index). ``start``/``end``: the period asked for, unix seconds, the grant holds
    for start ≤ t < end. ``status``: ``requested`` / ``granted`` / ``rejected`` / ``refused`` /
    ``revoked`` / ``expired``. Times are block timestamps (unix seconds): ``requested_at``;
    ``granted_at`` (null if never granted); ``decided_at`` — when it was granted, rejected or refused
    (null while undecided); ``ended_at`` — when a grant was revoked or expired. ``reason`` is the latest
    transition's. ``signer`` … ``block_number`` locate the request's own event.
    """

    __tablename__ = "sharing_requests"

    id: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    catalog_code: Mapped[str] = mapped_column(String(64), index=True)
    catalog_hash: Mapped[str] = mapped_column(String(HASH))
    catalog_version: Mapped[int] = mapped_column(Integer)
    requester_id: Mapped[str] = mapped_column(String(HASH))
    requester_code: Mapped[str | None] = mapped_column(Text, index=True)
    owner_id: Mapped[str] = mapped_column(String(HASH))
    owner_code: Mapped[str | None] = mapped_column(Text, index=True)
    items_mask: Mapped[str] = mapped_column(String(80))
    items: Mapped[str | None] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    basis: Mapped[str] = mapped_column(Text)
    start: Mapped[int] = mapped_column(BigInteger)
    end: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_at: Mapped[int] = mapped_column(BigInteger)
    granted_at: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    signer: Mapped[str] = mapped_column(String(ADDRESS))
    nonce: Mapped[str] = mapped_column(String(80))
    deadline: Mapped[str] = mapped_column(String(80))
    signature: Mapped[str] = mapped_column(Text)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    directory: Mapped[str] = mapped_column(String(ADDRESS))
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)


class SharingTransitionRow(Base):
    """One ``SharingStatusChanged`` event: request ``request_id`` moved ``from_status`` → ``to_status``.

    ``signer`` is the zero address, ``nonce``/``deadline`` ``"0"`` and ``signature`` ``"0x"`` for the
    automatic transitions (unconditional grant, not-shared refusal, expiry), exactly as on chain.
    ``block_timestamp``: unix seconds. Kept even when the request itself is not indexed (an index that
    starts mid-chain).
    """

    __tablename__ = "sharing_transitions"

    tx_hash: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(HASH), index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    signer: Mapped[str] = mapped_column(String(ADDRESS))
    nonce: Mapped[str] = mapped_column(String(80))
    deadline: Mapped[str] = mapped_column(String(80))
    signature: Mapped[str] = mapped_column(Text)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    directory: Mapped[str] = mapped_column(String(ADDRESS))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_timestamp: Mapped[int] = mapped_column(BigInteger)


# ---------------------------------------------------------------------------------------- tiers


class DirectoryRow(Base):
    """A jurisdiction's directory, from its factory's ``DirectoryCreated``: a minimal clone (EIP-1167) at
    ``address`` on chain ``chain_id`` serving ``home_id`` (keccak256 of the jurisdiction code; zero = every
    jurisdiction), made by ``creator`` through ``factory``. Its tier is its home jurisdiction's."""

    __tablename__ = "directories"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(String(ADDRESS), primary_key=True)
    home_id: Mapped[str] = mapped_column(String(HASH), index=True)
    factory: Mapped[str] = mapped_column(String(ADDRESS))
    creator: Mapped[str] = mapped_column(String(ADDRESS))
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)


class RelayedRecordRow(Base):
    """A record a parent directory holds as relayed from a child: one effect event of a ``relay`` call (a
    catalog or system version or retirement, a jurisdiction, department, key or sharing event) and the
    ``Relayed`` event after it, which names its origin — the log where the submission was first recorded.

    ``tx_hash``/``log_index``: the effect event at the parent (``chain_id``, ``directory``); ``event`` its name;
    ``subject`` the catalog or system code, jurisdiction or department code, account, or sharing request id
    (0x-hex), ``version`` the record version (null for other events). ``relayed_log_index`` locates the
    ``Relayed`` event. ``origin_*``: where the record was first recorded (chain id, directory, transaction,
    block number and hash, log index) and ``origin_key`` = keccak256(abi.encode(chainId, directory, txHash,
    logIndex)), the parent's at-most-once key. ``block_timestamp``: unix seconds.
    The record's own row (version, request …) is the one indexed at its origin; a copy never changes it."""

    __tablename__ = "relayed_records"
    __table_args__ = (Index("ix_relayed_records_subject_event", "subject", "event"),)  # provenance of a record

    tx_hash: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    directory: Mapped[str] = mapped_column(String(ADDRESS), index=True)
    event: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text, index=True)
    version: Mapped[int | None] = mapped_column(Integer)
    relayed_log_index: Mapped[int] = mapped_column(Integer)
    origin_key: Mapped[str] = mapped_column(String(HASH), index=True)
    origin_chain_id: Mapped[int] = mapped_column(BigInteger)
    origin_directory: Mapped[str] = mapped_column(String(ADDRESS))
    origin_tx_hash: Mapped[str] = mapped_column(String(HASH))
    origin_block_number: Mapped[int] = mapped_column(BigInteger)
    origin_block_hash: Mapped[str] = mapped_column(String(HASH))
    origin_log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_timestamp: Mapped[int] = mapped_column(BigInteger)


# ---------------------------------------------------------------------------------------- tier relay


class RelayCheckpoint(Base):
    """How far the relay job of one (child, parent) directory pair has read the child: the last child block
    whose relay items all reached the parent (their receipts mined), its hash (0x-hex; checked against the
    child chain before every pass to detect a reorganisation deeper than the confirmation depth) and its
    timestamp (unix seconds; for the lag in seconds).

    Operational state of the relay, not part of the derived index: it is not rebuilt by re-indexing. Losing it
    is safe — the job reads the child again from its start block and every origin the parent already holds is
    skipped (the parent's on-chain ``originRelayed`` key)."""

    __tablename__ = "relay_checkpoints"

    child_chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    child_directory: Mapped[str] = mapped_column(String(ADDRESS), primary_key=True)
    parent_chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    parent_directory: Mapped[str] = mapped_column(String(ADDRESS), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(HASH))
    block_timestamp: Mapped[int] = mapped_column(BigInteger)


class RelayFailure(Base):
    """A relay item the parent refused (or that could not be rebuilt), kept until it goes in.

    Keyed by the (child, parent) pair and the origin's at-most-once key (``origin_key``, 0x-hex). ``origin_*``
    locate the log where the submission was first recorded; ``via_tx_hash``/``via_log_index`` the child's
    ``Relayed`` log when the origin lies further down (else null). ``child_block``/``child_log_index`` the child
    log the item was read from (retries go in this order). ``call`` is the single-submission call (0x-hex;
    ``0x`` when it could not be rebuilt — not retried), ``method``/``event``/``code`` describe it, ``reason`` is
    the latest refusal (a decoded custom error) and ``attempts`` counts them."""

    __tablename__ = "relay_failures"

    child_chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    child_directory: Mapped[str] = mapped_column(String(ADDRESS), primary_key=True)
    parent_chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    parent_directory: Mapped[str] = mapped_column(String(ADDRESS), primary_key=True)
    origin_key: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    origin_chain_id: Mapped[int] = mapped_column(BigInteger)
    origin_directory: Mapped[str] = mapped_column(String(ADDRESS))
    origin_tx_hash: Mapped[str] = mapped_column(String(HASH))
    origin_block_number: Mapped[int] = mapped_column(BigInteger)
    origin_block_hash: Mapped[str] = mapped_column(String(HASH))
    origin_log_index: Mapped[int] = mapped_column(Integer)
    via_tx_hash: Mapped[str | None] = mapped_column(String(HASH))
    via_log_index: Mapped[int | None] = mapped_column(Integer)
    child_block: Mapped[int] = mapped_column(BigInteger)
    child_log_index: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(Text)
    call: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)


# ---------------------------------------------------------------------------------------- engine


def _is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (``sqlite:///path.db``, ``sqlite://`` in memory, ``postgresql+…``).

    SQLite connections get ``journal_mode=WAL`` (file databases), ``foreign_keys=ON`` and a
    ``busy_timeout`` of :data:`SQLITE_BUSY_TIMEOUT_MS`; transactions begin at the first statement
    (SQLAlchemy's pysqlite recipe), so a transaction's reads and writes see one snapshot. An
    in-memory SQLite database is one shared connection (``StaticPool``). Other backends get
    ``pool_pre_ping``. ``kwargs`` go to :func:`sqlalchemy.create_engine`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)

    memory = _is_memory_sqlite(url)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    if memory:
        kwargs.setdefault("poolclass", StaticPool)
    elif "poolclass" not in kwargs:  # every API thread, relay job and batcher may hold one; SQLite's are cheap
        kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
        kwargs.setdefault("max_overflow", SQLITE_POOL_OVERFLOW)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN (see "begin" below)
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(BEGIN_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def session_factory(engine: Engine, *, writer: bool = False) -> sessionmaker[Session]:
    """A :class:`sessionmaker` bound to ``engine``; objects stay readable after commit
    (``expire_on_commit=False``) so query results can be returned from a closed session.

    ``writer``: for threads that read and then write in one transaction (the indexers, the relay jobs). On
    SQLite their transactions begin ``IMMEDIATE`` — taking the write lock at once, waiting up to the busy
    timeout for it — because a deferred transaction that read before another writer committed cannot upgrade
    to a write and fails at once with "database is locked". Other backends are unaffected."""
    bind = engine.execution_options(**{BEGIN_IMMEDIATE: True}) if writer else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    """Alembic :class:`~alembic.config.Config` for ``url`` using the migrations inside this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: the latest) with Alembic ``upgrade``.

    Idempotent: an up-to-date database is left as is. Raises whatever the driver raises if the
    database cannot be reached or written.
    """
    from alembic import command

    command.upgrade(alembic_config(url), revision)
