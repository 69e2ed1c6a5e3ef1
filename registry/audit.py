"""Audit queries (read side, for the ``/audit`` API): a record's full history, what changed in a jurisdiction's
directory between two times, and — against the chain, not the index — whether a document is a committed version.

The index functions take an open Session, never commit, and return plain dataclasses (no wire format); times
are block timestamps in unix seconds. :func:`verify_record` reads nothing from the index: it finds the record's
directories from the factories' ``DirectoryCreated`` logs, recomputes the document's digest (keccak-256 of its
RFC 8785 canonical JSON), verifies the matching version's evidence bundle (:func:`registry.evidence.verify_document`:
receipt and transaction proofs under the block header, the department's EIP-712 signature) and reads the digest
each directory holding the version committed (the ``recordDigest`` view).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from eth_utils import keccak, to_checksum_address
from sqlalchemy import and_, select, tuple_
from sqlalchemy.orm import Session

from chain.abi import DecodedLog
from chain.directory import KIND_CATALOG, KIND_SYSTEM, DirectoryClient
from chain.rpc import Rpc, RpcError
from registry import provenance as registry_provenance
from registry.db import (
    Block,
    CatalogRow,
    CatalogVersionRow,
    ChainEvent,
    DepartmentRow,
    DirectoryRow,
    JurisdictionRow,
    RelayedRecordRow,
    SharingRequestRow,
    SystemRow,
    SystemVersionRow,
)
from registry.drift import ChainSource
from registry.errors import RegistryError
from registry.evidence import EVENTS, BundleBuildError, CheckOutcome, FieldDifference, infer_kind, verify_document
from registry.indexer import indexer_codec
from registry.provenance import Holder
from registry.queries import parse_record
from registry.store import TIER_NAMES

ZERO_HOME = "0x" + "00" * 32
_TIER_RANK = {"city": 0, "district": 1, "street": 2}


class AuditInputError(RegistryError, ValueError):
    """An audit query's input is unusable (an inverted time window, a document without a code …): a 4xx."""


# ---------------------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryVersion:
    """One version event of a record: ``action`` (register/update/retire), ``digest`` (0x-hex, None for a
    retirement), ``valid`` with ``invalid_reason``, ``signer``, ``nonce`` (decimal string); where it was first
    recorded — ``chain_id``, ``directory``, its home ``jurisdiction`` and ``tier`` (for a zero-home directory,
    the record's own jurisdiction and tier), ``tx_hash``, ``block_number``, ``block_hash``, ``log_index``,
    ``block_timestamp`` (unix seconds); ``tiers``: the tiers of every directory holding it (origin and relayed
    copies, top first); ``custody``: the holders from the top tier down to the origin (see
    :mod:`registry.provenance`); ``record``: the parsed record (None for a retirement)."""

    version: int
    action: str
    digest: str | None
    valid: bool
    invalid_reason: str | None
    signer: str
    nonce: str
    chain_id: int
    directory: str
    jurisdiction: str | None
    tier: str | None
    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int
    block_timestamp: int
    tiers: list[str]
    custody: list[Holder]
    record: Any


@dataclass(frozen=True)
class RecordHistory:
    """Every version of a ``kind`` (``catalog``/``system``) record ``code``, oldest first, with its current
    ``status`` (catalogs: active/retired; systems: the chain lifecycle active/retired), ``latest_version``, its
    ``jurisdiction`` and owning ``department`` codes."""

    kind: str
    code: str
    status: str
    latest_version: int
    jurisdiction: str | None
    department: str | None
    versions: list[HistoryVersion]


def record_history(session: Session, kind: str, code: str) -> RecordHistory | None:
    """The full history of catalog or system ``code`` from the index (None if it is not indexed).

    Raises :class:`AuditInputError` for a ``kind`` other than ``catalog``/``system``."""
    if kind not in ("catalog", "system"):
        raise AuditInputError(f"kind: expected catalog or system, got {kind!r}")
    current: CatalogRow | SystemRow | None
    rows: list[CatalogVersionRow] | list[SystemVersionRow]
    if kind == "catalog":
        current = session.get(CatalogRow, code)
        rows = list(session.scalars(select(CatalogVersionRow).where(CatalogVersionRow.code == code)
                                    .order_by(CatalogVersionRow.version)))
        status = current.status if current is not None else ""
    else:
        current = session.get(SystemRow, code)
        rows = list(session.scalars(select(SystemVersionRow).where(SystemVersionRow.code == code)
                                    .order_by(SystemVersionRow.version)))
        status = current.lifecycle if current is not None else ""
    if current is None or not rows:
        return None
    custody = {p.version: p for p in registry_provenance.provenance(session, kind, code) or []}
    versions = []
    for r in rows:
        prov = custody.get(r.version)
        hops = prov.custody if prov is not None else []
        origin = prov.origin if prov is not None else None
        jurisdiction = origin.jurisdiction if origin is not None and origin.tier else current.jurisdiction_code
        tier = origin.tier if origin is not None and origin.tier else current.tier
        tiers = sorted({h.tier for h in hops if h.tier} or ({tier} if tier else set()),
                       key=lambda t: _TIER_RANK.get(t, 9))
        versions.append(HistoryVersion(
            version=r.version, action=r.action, digest=r.digest, valid=r.valid, invalid_reason=r.invalid_reason,
            signer=r.signer, nonce=r.nonce, chain_id=r.chain_id, directory=r.directory, jurisdiction=jurisdiction,
            tier=tier, tx_hash=r.tx_hash, block_number=r.block_number, block_hash=r.block_hash,
            log_index=r.log_index, block_timestamp=r.block_timestamp, tiers=tiers, custody=hops,
            record=parse_record(r.record),
        ))
    return RecordHistory(kind, code, status, current.latest_version, current.jurisdiction_code,
                         current.department_code, versions)


# ---------------------------------------------------------------------------------------- changes


#: Events of a directory an auditor asks "what changed" about, by the category they are listed under.
CHANGE_CATEGORIES: dict[str, str] = {
    "CatalogVersionRecorded": "versions",
    "SystemVersionRecorded": "versions",
    "CatalogRetired": "retirements",
    "SystemRetired": "retirements",
    "JurisdictionAdded": "jurisdictions",
    "DepartmentRegistered": "departments",
    "DepartmentAccountSet": "keys",
    "AdministratorSet": "keys",
    "SharingRequested": "sharing",
    "SharingStatusChanged": "sharing",
}
_KIND_OF = {"CatalogVersionRecorded": "catalog", "CatalogRetired": "catalog", "SystemVersionRecorded": "system",
            "SystemRetired": "system"}
_SHARING = ("none", "requested", "granted", "rejected", "refused", "revoked", "expired")


@dataclass(frozen=True)
class Origin:
    """Where a record a directory holds as relayed was first recorded (chain id, directory, tx, block, log)."""

    chain_id: int
    directory: str
    tx_hash: str
    block_number: int
    log_index: int


@dataclass(frozen=True)
class Change:
    """One event of the directory: ``event`` name, record ``kind`` (catalog/system, None otherwise), ``subject``
    (catalog or system code, jurisdiction or department code, account, or sharing request id), ``version``
    (records and sharing requests' catalog version, else None), ``detail`` (event-specific: digest; name and
    tier; department and active; catalog, from and to status, reason …), ``signer`` (the zero address for an
    automatic sharing transition), where it is recorded (``chain_id``, ``directory``, ``tx_hash``,
    ``block_number``, ``log_index``, ``block_timestamp`` unix seconds) and, for a relayed copy, its ``origin``."""

    event: str
    kind: str | None
    subject: str
    version: int | None
    detail: dict[str, Any]
    signer: str
    chain_id: int
    directory: str
    tx_hash: str
    block_number: int
    log_index: int
    block_timestamp: int
    origin: Origin | None = None


@dataclass
class JurisdictionChanges:
    """What changed in the directory of ``jurisdiction`` (its code, ``tier``) in ``[start, end)`` (block
    timestamps, unix seconds): the ``directories`` read ((chain id, address): the jurisdiction's own, or — in a
    single zero-home directory — that directory, keeping the events about this jurisdiction) and the changes by
    category, each in chain order (block timestamp, chain, block, log)."""

    jurisdiction: str
    tier: str
    start: int
    end: int
    directories: list[tuple[int, str]]
    versions: list[Change] = field(default_factory=list)
    retirements: list[Change] = field(default_factory=list)
    jurisdictions: list[Change] = field(default_factory=list)
    departments: list[Change] = field(default_factory=list)
    keys: list[Change] = field(default_factory=list)
    sharing: list[Change] = field(default_factory=list)


def changes(session: Session, jurisdiction: str, start: int, end: int) -> JurisdictionChanges | None:
    """What the directory of jurisdiction code ``jurisdiction`` recorded with a block timestamp in
    ``[start, end)``: catalog and system versions and retirements, jurisdictions added, departments registered,
    keys (department accounts, administrators) set, sharing requests and status transitions — its own and those
    it holds as relayed from below (with their origin). None if the jurisdiction is not indexed.

    In a per-jurisdiction deployment that is the jurisdiction's directory (none yet: nothing changed); in a
    single zero-home directory, the events of that directory about this jurisdiction (its records, departments,
    keys, child jurisdictions, and sharing requests its departments made or answered). Raises
    :class:`AuditInputError` when ``start > end`` or either is negative."""
    if start < 0 or end < 0 or start > end:
        raise AuditInputError(f"time window: expected 0 <= from <= to (unix seconds), got from={start}, to={end}")
    row = session.scalar(select(JurisdictionRow).where(JurisdictionRow.code == jurisdiction))
    if row is None:
        return None
    pairs = select(DirectoryRow.chain_id, DirectoryRow.address)
    own = [(int(c), str(a)) for c, a in session.execute(pairs.where(DirectoryRow.home_id == row.id))]
    single = not own
    dirs = sorted(own or [(int(c), str(a)) for c, a in session.execute(pairs.where(DirectoryRow.home_id == ZERO_HOME))])
    out = JurisdictionChanges(jurisdiction, row.tier, start, end, dirs)
    if not dirs or start == end:
        return out
    stmt = (
        select(ChainEvent, Block.timestamp, RelayedRecordRow)
        .join(Block, and_(Block.chain_id == ChainEvent.chain_id, Block.number == ChainEvent.block_number))
        .outerjoin(RelayedRecordRow, and_(RelayedRecordRow.tx_hash == ChainEvent.tx_hash,
                                          RelayedRecordRow.log_index == ChainEvent.log_index))
        .where(tuple_(ChainEvent.chain_id, ChainEvent.address).in_(dirs))
        .where(ChainEvent.event.in_(list(CHANGE_CATEGORIES)))
        .where(Block.timestamp >= start, Block.timestamp < end)
        .order_by(Block.timestamp, ChainEvent.chain_id, ChainEvent.block_number, ChainEvent.log_index)
    )
    names = _Names(session)
    about = _About(session, row.id) if single else None
    for ev, timestamp, copy in session.execute(stmt):
        args = json.loads(ev.args)
        if about is not None and not about(ev.event, args):
            continue
        change = _change(ev, int(timestamp), args, copy, names)
        getattr(out, CHANGE_CATEGORIES[ev.event]).append(change)
    return out


class _Names:
    """Jurisdiction and department ids → codes (None when not indexed)."""

    def __init__(self, session: Session) -> None:
        self._jurisdictions = {i: c for i, c in session.execute(select(JurisdictionRow.id, JurisdictionRow.code))}
        self._departments = {i: c for i, c in session.execute(select(DepartmentRow.id, DepartmentRow.code))}

    def jurisdiction(self, jid: Any) -> str | None:
        return self._jurisdictions.get(str(jid))

    def department(self, did: Any) -> str | None:
        return self._departments.get(str(did))


class _About:
    """Whether an event of a zero-home directory is about jurisdiction ``jid`` (0x-hex id)."""

    def __init__(self, session: Session, jid: str) -> None:
        self.jid = jid
        self.departments = set(session.scalars(select(DepartmentRow.id).where(DepartmentRow.jurisdiction_id == jid)))
        self.requests = {
            rid for rid, requester, owner in session.execute(
                select(SharingRequestRow.id, SharingRequestRow.requester_id, SharingRequestRow.owner_id))
            if requester in self.departments or owner in self.departments
        }

    def __call__(self, event: str, args: dict[str, Any]) -> bool:
        if event == "JurisdictionAdded":
            return self.jid in (args.get("id"), args.get("parent"))
        if event in ("SharingRequested", "SharingStatusChanged"):
            return args.get("id") in self.requests
        return bool(args.get("jurisdiction") == self.jid)


def _change(ev: ChainEvent, timestamp: int, a: dict[str, Any], copy: RelayedRecordRow | None, names: _Names) -> Change:
    event = ev.event
    version: int | None = None
    detail: dict[str, Any] = {}
    if event in _KIND_OF:
        subject, version = str(a.get("code")), int(a.get("version", 0))
        detail = {"jurisdiction": names.jurisdiction(a.get("jurisdiction")),
                  "department": names.department(a.get("department"))}
        if "digest" in a:
            detail["digest"] = a["digest"]
    elif event == "JurisdictionAdded":
        subject = str(a.get("code"))
        detail = {"name": a.get("name"), "tier": TIER_NAMES.get(a.get("tier", 0)),
                  "parent": names.jurisdiction(a.get("parent"))}
    elif event == "DepartmentRegistered":
        subject = str(a.get("code"))
        detail = {"name": a.get("name"), "jurisdiction": names.jurisdiction(a.get("jurisdiction"))}
    elif event == "DepartmentAccountSet":
        subject = str(a.get("account"))
        detail = {"role": "department", "department": names.department(a.get("department")),
                  "active": bool(a.get("active"))}
    elif event == "AdministratorSet":
        subject = str(a.get("account"))
        detail = {"role": "administrator", "jurisdiction": names.jurisdiction(a.get("jurisdiction")),
                  "active": bool(a.get("active"))}
    elif event == "SharingRequested":
        subject, version = str(a.get("id")), int(a.get("version", 0))
        detail = {"catalog": a.get("catalog"), "from": "none", "to": "requested",
                  "requester": names.department(a.get("requester")),
                  "owner": names.department(a.get("owner")), "start": a.get("start"), "end": a.get("end")}
    else:  # SharingStatusChanged
        subject = str(a.get("id"))
        detail = {"from": _status(a.get("from")), "to": _status(a.get("to")), "reason": a.get("reason")}
    origin = None
    if copy is not None:
        origin = Origin(copy.origin_chain_id, copy.origin_directory, copy.origin_tx_hash, copy.origin_block_number,
                        copy.origin_log_index)
    return Change(event, _KIND_OF.get(event), subject, version, detail, str(a.get("signer", "")), ev.chain_id,
                  ev.address, ev.tx_hash, ev.block_number, ev.log_index, timestamp, origin)


def _status(value: Any) -> str:
    return _SHARING[value] if isinstance(value, int) and 0 <= value < len(_SHARING) else f"unknown({value})"


# ---------------------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ChainHolder:
    """A directory holding a version, as the chain says: its home ``jurisdiction`` code and ``tier`` (None for
    a zero-home directory), ``chain_id``, ``directory``, the log recording the version there (``tx_hash``,
    ``block_number``, ``log_index``), ``relayed`` (a copy of a lower tier's record) and ``digest_on_chain``: what
    the directory's ``recordDigest`` view answers for the version (0x-hex)."""

    jurisdiction: str | None
    tier: str | None
    chain_id: int
    directory: str
    tx_hash: str
    block_number: int
    log_index: int
    relayed: bool
    digest_on_chain: str


@dataclass
class RecordVerification:
    """Outcome of :func:`verify_record`: ``ok`` when the document's digest (recomputed here) is a committed
    version whose evidence bundle verifies and whose ``recordDigest`` every holder confirms. ``version``,
    ``status`` (current/superseded/retired), ``signer``, the origin (``chain_id``, ``directory``, ``tx_hash``,
    ``block_number``, ``block_hash``, ``log_index``) name the matching version — or, when not ok, the nearest;
    ``holders``: the directories holding the matching version (origin first, then up the tiers);
    ``differences``: fields that differ from the nearest version; ``failure``: why not ok; ``checks``: the
    bundle verification's numbered checks that ran."""

    ok: bool
    kind: str
    code: str
    digest: str
    version: int | None = None
    status: str | None = None
    signer: str | None = None
    chain_id: int | None = None
    directory: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    log_index: int | None = None
    holders: list[ChainHolder] = field(default_factory=list)
    differences: list[FieldDifference] = field(default_factory=list)
    failure: str | None = None
    checks: list[CheckOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class _Directory:
    source: ChainSource
    address: str
    home: bytes
    tier: str | None
    jurisdiction: str | None


def _logs(rpc: Rpc, query: dict[str, Any], start: int, end: int) -> list[dict[str, Any]]:
    """``eth_getLogs`` of ``query`` over ``start..end``, halving a range the node refuses."""
    try:
        result = rpc.call("eth_getLogs", [{**query, "fromBlock": hex(start), "toBlock": hex(end)}])
    except RpcError:
        if start >= end:
            raise
        middle = (start + end) // 2
        return _logs(rpc, query, start, middle) + _logs(rpc, query, middle + 1, end)
    return [raw for raw in result or [] if not raw.get("removed")]


def _topic(value: bytes) -> str:
    return "0x" + value.rjust(32, b"\x00").hex()


def _directories(src: ChainSource, head: int) -> dict[str, _Directory]:
    """The directories the factory of ``src`` made for its creators, by checksummed address (from the chain)."""
    codec = indexer_codec()
    created = "0x" + codec.topics_by_name["DirectoryCreated"].hex()
    out: dict[str, _Directory] = {}
    for raw in _logs(src.rpc, {"address": src.factory, "topics": [created]}, src.start_block, head):
        ev = codec.decode_log(raw)
        if ev is None or to_checksum_address(ev.args["creator"]) not in src.creators:
            continue
        address, home = to_checksum_address(ev.args["directory"]), bytes(ev.args["home"])
        tier = jurisdiction = None
        if home != b"\x00" * 32:
            _, tier_value = DirectoryClient(src.rpc, address, src.chain_id).jurisdiction(home)
            tier = TIER_NAMES.get(tier_value)
            added = "0x" + codec.topics_by_name["JurisdictionAdded"].hex()
            for jraw in _logs(src.rpc, {"address": address, "topics": [added, "0x" + home.hex()]}, src.start_block,
                              head):
                jev = codec.decode_log(jraw)
                if jev is not None:
                    jurisdiction = str(jev.args["code"])
                    break
        out[address] = _Directory(src, address, home, tier, jurisdiction)
    return out


def _record_logs(src: ChainSource, kind: str, code: str, head: int) -> list[DecodedLog]:
    """Every version and retirement event of ``kind`` ``code`` on the chain, from any contract, decoded."""
    codec = indexer_codec()
    version_event, retired_event, _ = EVENTS[kind]
    topics = [["0x" + codec.topics_by_name[version_event].hex(), "0x" + codec.topics_by_name[retired_event].hex()],
              "0x" + keccak(text=code).hex()]
    found = []
    for raw in _logs(src.rpc, {"topics": topics}, src.start_block, head):
        ev = codec.decode_log(raw)
        if ev is not None and ev.args.get("code") == code:
            found.append(ev)
    return found


def verify_record(chains: Sequence[ChainSource], document: Any, kind: str | None = None) -> RecordVerification:
    """Is ``document`` (a catalog or system record as JSON) a committed version, on the chains alone?

    1. the document must be a non-empty object with a ``code``; ``kind`` (``catalog``/``system``, None: inferred
       from its fields); its digest is recomputed (keccak-256 of RFC 8785 canonical JSON);
    2. every directory the chains' factories made for the service, and every version event of the code in them,
       are read from the chains' logs;
    3. the record's origin directory is the lowest-tier one holding it (records are relayed upward only);
       :func:`registry.evidence.verify_document` there matches the digest to a version and verifies its evidence
       bundle (header, receipt and transaction proofs, event, digest, signature) — or names the fields that
       differ from the nearest version;
    4. each directory holding the matching version must answer the same digest from its ``recordDigest`` view.

    Raises :class:`AuditInputError` for an unusable document or kind; ChainError
    (:class:`chain.rpc.RpcUnavailable`) when a chain does not answer. A document of a code no chain holds, or
    whose evidence bundle cannot be built from the node's data, is ``ok`` False with a ``failure``."""
    if not chains:
        raise AuditInputError("chains: expected at least one chain to verify against, got none")
    if not isinstance(document, dict) or not document:
        raise AuditInputError(f"document: expected a non-empty JSON object, got {document!r:.60}")
    kind = kind or infer_kind(document)
    if kind not in EVENTS:
        raise AuditInputError(f"kind: expected catalog or system, got {kind!r}")
    code = document.get("code")
    if not isinstance(code, str) or not code:
        raise AuditInputError(f"document: expected a code (a non-empty string), got {code!r}")
    try:
        digest = "0x" + keccak(rfc8785.dumps(document)).hex()
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise AuditInputError(f"document: not canonicalisable as RFC 8785 JSON: {exc}") from exc
    result = RecordVerification(False, kind, code, digest)

    held: list[tuple[_Directory, DecodedLog]] = []
    for src in chains:
        head = int(src.rpc.call("eth_blockNumber", []), 16)
        directories = _directories(src, head)
        for ev in _record_logs(src, kind, code, head):
            directory = directories.get(to_checksum_address(ev.address))
            if directory is not None:
                held.append((directory, ev))
    if not held:
        result.failure = f"{kind} {code}: expected a committed version in the directories on chain " \
                         f"{', '.join(str(c.chain_id) for c in chains)}, got none"
        return result
    origin = max((d for d, _ in held), key=lambda d: _TIER_RANK.get(d.tier, 3) if d.tier else 3)
    try:
        found = verify_document(origin.source.rpc, origin.address, kind, document)
    except BundleBuildError as exc:  # the node's data do not add up to a proof: not verified
        result.failure = f"{kind} {code}: no evidence bundle from chain {origin.source.chain_id}: {exc}"
        return result
    result.version, result.status, result.signer = found.version, found.status, found.signer
    result.chain_id, result.directory = origin.source.chain_id, origin.address
    result.tx_hash, result.block_number, result.block_hash = found.tx_hash, found.block_number, found.block_hash
    result.log_index, result.differences = found.log_index, list(found.differences)
    result.checks = list(found.bundle.checks) if found.bundle is not None else []
    if not found.ok:
        result.failure = found.failure
        return result
    version_event = EVENTS[kind][0]
    kind_value = KIND_CATALOG if kind == "catalog" else KIND_SYSTEM
    holders = []
    for directory, ev in held:
        if ev.event != version_event or int(ev.args["version"]) != found.version:
            continue
        on_chain = DirectoryClient(directory.source.rpc, directory.address, directory.source.chain_id)
        committed = "0x" + on_chain.record_digest(kind_value, code, int(ev.args["version"])).hex()
        holders.append(ChainHolder(directory.jurisdiction, directory.tier, directory.source.chain_id,
                                   directory.address, ev.tx_hash.lower(), ev.block_number, ev.log_index,
                                   directory is not origin, committed))
    holders.sort(key=lambda h: (h.relayed, -_TIER_RANK.get(h.tier, 3) if h.tier else -3))
    result.holders = holders
    wrong = next((h for h in holders if h.digest_on_chain != digest), None)
    if wrong is not None:
        result.failure = (f"recordDigest of {kind} {code} version {found.version} at {wrong.directory} on chain "
                          f"{wrong.chain_id}: expected {digest}, got {wrong.digest_on_chain}")
        return result
    result.ok = True
    return result
