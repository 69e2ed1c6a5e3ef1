"""Request (``*Create``) and response (``*Public``) schemas of the HTTP API, separate from the ORM.

A submission body is the record plus the EIP-712 envelope its authority signed: ``nonce``
(uint256, any unused value: nonces are unordered), ``deadline`` (unix seconds) and ``signature``
(0x-hex, 65 bytes r‖s‖v, low s). Unknown fields are rejected everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from registry.models import CatalogRecord, Department, Jurisdiction, SystemRecord

T = TypeVar("T")
UINT256_MAX = 2**256 - 1
HexBytes = Annotated[str, Field(pattern=r"^0x([0-9a-fA-F]{2})*$", max_length=2 + 2 * 1024)]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Envelope(_Body):
    """What every signed submission carries besides its content."""

    nonce: Annotated[int, Field(ge=0, le=UINT256_MAX)]
    deadline: Annotated[int, Field(ge=0, le=2**64 - 1, description="unix seconds")]
    signature: HexBytes


class JurisdictionCreate(Envelope):
    """Add a jurisdiction; signed by an administrator of its parent (the bureau for the city)."""

    jurisdiction: Jurisdiction


class DepartmentCreate(Envelope):
    """Register a department; signed by an administrator of its jurisdiction or an ancestor."""

    department: Department


class AccountCreate(Envelope):
    """Grant (``active``) or revoke a role: ``administrator`` of a jurisdiction or ``department`` key."""

    role: Literal["administrator", "department"]
    scope: Annotated[str, Field(min_length=1, max_length=64, description="jurisdiction or department code")]
    account: Address
    active: bool = True


class CatalogCreate(Envelope):
    """Register (version 1) or update (the next version) a catalog; signed by its department."""

    action: Literal["register", "update"] = "register"
    version: Annotated[int, Field(ge=1, le=2**32 - 1)] = 1
    record: CatalogRecord


class SystemCreate(Envelope):
    """Register or update an information system; signed by its department."""

    action: Literal["register", "update"] = "register"
    version: Annotated[int, Field(ge=1, le=2**32 - 1)] = 1
    record: SystemRecord


class RetirementCreate(Envelope):
    """Retire a catalog or system at ``version`` (its next version); signed by its department."""

    version: Annotated[int, Field(ge=2, le=2**32 - 1)]
    jurisdiction: Annotated[str, Field(min_length=1, max_length=64)]
    department: Annotated[str, Field(min_length=1, max_length=64, description="owning department code")]


class SubmissionAccepted(BaseModel):
    """202 answer: the submission is in transaction ``tx_hash``; follow ``status_url`` until ``indexed``."""

    tx_hash: str
    signer: str
    primary_type: str
    code: str
    version: int | None = None
    digest: str | None = None
    status_url: str
    record_url: str | None = None


#: Most submissions one batch route (``POST /catalogs/batch``, ``/systems/batch``, ``/sharing-requests/batch``,
#: ``/sharing-requests/decisions/batch``, ``/grants/revocations/batch``)
#: carries (each relayed on its own).
MAX_BATCH_SUBMISSIONS = 100


class CatalogBatchCreate(_Body):
    """Several catalog versions in one request, each signed by its department as for ``POST /catalogs``."""

    submissions: Annotated[list[CatalogCreate], Field(min_length=1, max_length=MAX_BATCH_SUBMISSIONS)]


class SystemBatchCreate(_Body):
    """Several system versions in one request, each signed by its department as for ``POST /systems``."""

    submissions: Annotated[list[SystemCreate], Field(min_length=1, max_length=MAX_BATCH_SUBMISSIONS)]


class SubmissionResult(BaseModel, Generic[T]):
    """What became of one submission of a batch, at its ``index`` (0-based, the request's order): ``status`` 202 and
    ``accepted`` (as the single route answers it), or the refusal's status and ``problem`` (RFC 9457, as the single
    route would have answered it)."""

    index: int
    status: int
    accepted: T | None = None
    problem: dict[str, Any] | None = None


class BatchAccepted(BaseModel, Generic[T]):
    """Answer to a batch: 202 when every submission was accepted, 207 when some were refused; ``results`` in the
    request's order."""

    accepted: int
    refused: int
    results: list[SubmissionResult[T]]


class SubmissionStatus(BaseModel):
    """State of a submission transaction: ``pending`` → ``mined`` → ``indexed`` (or ``reverted``/``unknown``)."""

    tx_hash: str
    status: Literal["pending", "mined", "indexed", "reverted", "unknown"]
    block_number: int | None = None
    gas_used: int | None = None
    chain_id: int | None = None


#: Most transactions one ``POST /submissions/status`` asks about.
MAX_STATUS_QUERY = 200


class SubmissionStatusQuery(BaseModel):
    """Transactions to report on at once (``POST /submissions/status``): 1 to :data:`MAX_STATUS_QUERY` 0x-hex
    transaction hashes (32 bytes each)."""

    model_config = ConfigDict(extra="forbid")

    tx_hashes: list[Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]] = Field(
        min_length=1, max_length=MAX_STATUS_QUERY)


class QueuedSubmissionPublic(BaseModel):
    """What became of a submission answered 503 ``submission-pending``: ``queued`` (no transaction yet), ``sent``
    (``tx_hash`` carries it; follow it at ``/submissions/{tx_hash}``) or ``refused`` (``problem``: the problem
    document it would have been answered with at once, ``status`` its HTTP status)."""

    submission: str
    status: Literal["queued", "sent", "refused"]
    tx_hash: str | None = None
    problem: dict[str, Any] | None = None


class VersionPublic(BaseModel):
    """One committed version of a catalog or system, with its provenance on chain."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    action: str
    digest: str | None
    signer: str
    nonce: str
    deadline: int
    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int
    block_timestamp: int
    valid: bool
    invalid_reason: str | None = None
    record: Any | None = None


class CatalogPublic(BaseModel):
    """A catalog's current state (the latest valid record) and where it was last committed."""

    code: str
    name: str | None
    jurisdiction: str | None
    tier: str | None
    provider: str | None
    provider_code: str | None
    share_type: str | None
    open_type: str | None
    update_frequency: str | None
    status: str
    latest_version: int
    latest_digest: str | None
    source_system: str | None
    tx_hash: str
    block_number: int
    updated_at: int | None
    record: Any | None = None


class CatalogDetail(CatalogPublic):
    """A catalog with its full version history."""

    versions: list[VersionPublic]


class SystemPublic(BaseModel):
    """An information system's current state."""

    code: str
    name: str | None
    jurisdiction: str | None
    tier: str | None
    owner: str | None
    owner_code: str | None
    status: str | None
    lifecycle: str
    latest_version: int
    latest_digest: str | None
    tx_hash: str
    block_number: int
    updated_at: int | None
    record: Any | None = None


class SystemDetail(SystemPublic):
    """A system with its full version history."""

    versions: list[VersionPublic]


class Page(BaseModel, Generic[T]):
    """A page of results: ``items``, ``total`` matches, ``limit`` and ``offset`` as asked."""

    items: list[T]
    total: int
    limit: int
    offset: int


class JurisdictionPublic(BaseModel):
    """A jurisdiction as indexed."""

    code: str
    name: str
    tier: str
    parent: str | None
    tx_hash: str
    block_number: int


class DepartmentPublic(BaseModel):
    """A department as indexed, with its active signing keys."""

    code: str
    name: str
    jurisdiction: str
    accounts: list[str]
    tx_hash: str
    block_number: int


class ChainHealth(BaseModel):
    """One chain the service indexes: ``name`` (``city``/``district``), head and indexer cursor (blocks) of
    the directories made by ``factory``; ``lag_blocks`` = head − cursor; ``confirmations`` the indexer and the
    relay jobs reading this chain stay behind head (blocks)."""

    name: str
    chain_id: int
    factory: str
    head: int | None
    cursor: int | None
    lag_blocks: int | None
    confirmations: int


class ChildLagPublic(BaseModel):
    """A child directory's relay to its parent: home ``jurisdiction`` and ``tier``, where it and its parent live,
    the child chain's ``head`` and the lag behind it in ``blocks`` and ``seconds`` after the latest pass, items
    ``relayed`` since the service started, refused items still ``failing``, and the latest pass's ``error``."""

    jurisdiction: str
    tier: str
    chain_id: int
    directory: str
    parent_chain_id: int
    parent_directory: str
    head: int
    blocks: int
    seconds: int
    relayed: int
    failing: int
    error: str | None


class Health(BaseModel):
    """The city chain's head and indexer cursor (blocks; ``lag_blocks`` = head − cursor), every chain's
    (``chains``), each child directory's relay lag (``children``), queued submissions and index counts.
    ``read_only``: a read-only replica, which reads the index alone (chain fields null, no chains)."""

    status: Literal["ok", "degraded"]
    read_only: bool = False
    indexer_error: str | None = None
    chain_id: int | None
    head: int | None
    cursor: int | None
    lag_blocks: int | None
    confirmations: int | None
    chains: list[ChainHealth]
    children: list[ChildLagPublic]
    sync_rounds: int
    pending_submissions: int
    counts: dict[str, int]


# ---------------------------------------------------------------------------------------- sharing

Bytes32 = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="0x-hex, 32 bytes")]
CodeRef = Annotated[str, Field(min_length=1, max_length=64, description="a catalog or department code")]
UnixSeconds = Annotated[int, Field(ge=0, le=2**64 - 1, description="unix seconds")]
Reason = Annotated[str, Field(max_length=2000)]


class SharingRequestCreate(Envelope):
    """A sharing request (共享申请) signed by a key of the ``requester`` department (EIP-712 ``SharingRequest``).

    ``items`` are data item *names* of the catalog version; the service turns them into the bitmask the
    signed message carries (bit i = the version's i-th data item, :func:`registry.messages.items_mask`),
    so sign with the mask of the same names. The period is ``start`` ≤ t < ``end`` (unix seconds).
    """

    catalog: CodeRef
    version: Annotated[int, Field(ge=1, le=2**32 - 1)]
    requester: CodeRef
    items: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=256)]
    purpose: Annotated[str, Field(min_length=1, max_length=2000)]
    basis: Annotated[str, Field(min_length=1, max_length=2000, description="legal basis (依据)")]
    start: UnixSeconds
    end: UnixSeconds


class SharingBatchCreate(_Body):
    """Several sharing requests in one request, each signed by its requester as for ``POST /sharing-requests``."""

    submissions: Annotated[list[SharingRequestCreate], Field(min_length=1, max_length=MAX_BATCH_SUBMISSIONS)]


class SharingDecisionCreate(Envelope):
    """The owning department's decision on a conditional request (EIP-712 ``SharingDecision``)."""

    approve: bool
    reason: Reason = ""


class SharingRevocationCreate(Envelope):
    """The owning department's revocation of a grant (EIP-712 ``SharingRevocation``)."""

    reason: Reason = ""


#: A sharing request's id: keccak256(abi.encode(signer, nonce)), 0x-hex 32 bytes.
REQUEST_ID_PATTERN = r"^0x[0-9a-fA-F]{64}$"


class SharingDecisionItem(SharingDecisionCreate):
    """One decision of a batch: the request it decides, and what ``POST /sharing-requests/{request_id}/decision``
    takes."""

    request_id: Annotated[str, Field(pattern=REQUEST_ID_PATTERN, description="request id, 0x-hex 32 bytes")]


class SharingDecisionBatchCreate(_Body):
    """Several decisions in one request, each signed by its owner as for ``POST /sharing-requests/{id}/decision``."""

    submissions: Annotated[list[SharingDecisionItem], Field(min_length=1, max_length=MAX_BATCH_SUBMISSIONS)]


class SharingRevocationItem(SharingRevocationCreate):
    """One revocation of a batch: the grant it revokes, and what ``POST /grants/{request_id}/revocation`` takes."""

    request_id: Annotated[str, Field(pattern=REQUEST_ID_PATTERN, description="request id, 0x-hex 32 bytes")]


class SharingRevocationBatchCreate(_Body):
    """Several revocations in one request, each signed by its owner as for ``POST /grants/{id}/revocation``."""

    submissions: Annotated[list[SharingRevocationItem], Field(min_length=1, max_length=MAX_BATCH_SUBMISSIONS)]


class SharingAccepted(BaseModel):
    """202 answer: the submission is in transaction ``tx_hash``; the request is ``request_id``
    (keccak256(abi.encode(signer, nonce))) and appears at ``request_url`` once indexed."""

    tx_hash: str
    signer: str
    primary_type: str
    request_id: str
    items_mask: str | None = None
    status_url: str
    request_url: str


class SharingTransitionPublic(BaseModel):
    """One status transition of a request, with its provenance; ``automatic`` when the contract made it
    (unconditional grant, not-shared refusal, expiry) — then signer is the zero address."""

    from_status: str
    to_status: str
    reason: str
    automatic: bool
    signer: str
    nonce: str
    deadline: str
    tx_hash: str
    log_index: int
    block_number: int
    block_timestamp: int


class SharingRequestPublic(BaseModel):
    """A sharing request / grant as indexed. Times are block timestamps (unix seconds); null when the
    step has not happened. ``items_mask`` is a decimal string; ``items`` null if not resolvable."""

    id: str
    catalog: str
    catalog_version: int
    requester: str | None
    owner: str | None
    items_mask: str
    items: list[str] | None
    purpose: str
    basis: str
    start: int
    end: int
    status: str
    requested_at: int
    granted_at: int | None
    decided_at: int | None
    ended_at: int | None
    reason: str | None
    signer: str
    nonce: str
    deadline: str
    tx_hash: str
    log_index: int
    block_number: int


class SharingRequestDetail(SharingRequestPublic):
    """A request with every status transition, oldest first."""

    transitions: list[SharingTransitionPublic]


class GrantHeldPublic(BaseModel):
    """One active grant of a holder: request id, data items, period (unix seconds), grant time."""

    id: str
    items: list[str] | None
    start: int
    end: int
    granted_at: int
    purpose: str
    basis: str


class AccessHolderPublic(BaseModel):
    """A department holding an active grant, with the data items it may use (union of its grants')."""

    department: str | None
    name: str | None
    jurisdiction: str | None
    items: list[str]
    grants: list[GrantHeldPublic]


class CatalogAccess(BaseModel):
    """Who may use catalog ``catalog`` at ``at`` (unix seconds; ``at_iso`` the same in UTC)."""

    catalog: str
    at: int
    at_iso: str
    holders: list[AccessHolderPublic]


class KpiRatioPublic(BaseModel):
    """``numerator`` ÷ ``denominator`` (``value``, null if the denominator is 0) against ``target``."""

    value: float | None
    numerator: int
    denominator: int
    target: float
    met: bool | None


class KpiFiguresPublic(BaseModel):
    """The three sharing KPIs of one scope."""

    unconditional_share_rate: KpiRatioPublic
    share_demand_satisfaction_rate: KpiRatioPublic
    open_department_ratio: KpiRatioPublic


class JurisdictionKpisPublic(KpiFiguresPublic):
    """The KPIs of one jurisdiction (catalogs, requests and departments owned by its departments)."""

    code: str
    name: str
    tier: str


class KpisPublic(BaseModel):
    """The sharing KPIs overall and per jurisdiction against the 2025 targets (see ``registry.kpis``)."""

    targets: dict[str, float]
    targets_source: str
    overall: KpiFiguresPublic
    jurisdictions: list[JurisdictionKpisPublic]


# ---------------------------------------------------------------------------------------- provenance


class HolderPublic(BaseModel):
    """A directory holding a version: home ``jurisdiction`` and ``tier``, ``chain_id``, ``directory``, and the log
    recording the version there; for a relayed copy the ``Relayed`` event's log index and the origin key."""

    model_config = ConfigDict(from_attributes=True)

    jurisdiction: str | None
    tier: str | None
    chain_id: int
    directory: str
    tx_hash: str
    block_number: int
    block_hash: str | None
    log_index: int
    block_timestamp: int
    relayed_log_index: int | None
    origin_key: str | None


class VersionProvenancePublic(BaseModel):
    """One version's origin and chain of custody (``custody``: top tier first, the origin last)."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    action: str
    digest: str | None
    signer: str
    origin: HolderPublic
    custody: list[HolderPublic]


class Provenance(BaseModel):
    """Where each version of a catalog or system was first recorded and which directories above hold it."""

    kind: Literal["catalog", "system"]
    code: str
    versions: list[VersionProvenancePublic]


# ---------------------------------------------------------------------------------------- audit


class HistoryVersionPublic(BaseModel):
    """One version of a record's history: the event (action, digest, validity, signer, nonce), where it was
    first recorded (chain id, directory, its jurisdiction and tier, tx hash, block, log, block timestamp in unix
    seconds), the tiers holding it and its chain of custody (top tier first, the origin last)."""

    model_config = ConfigDict(from_attributes=True)

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
    custody: list[HolderPublic]
    record: Any | None = None


class RecordHistoryPublic(BaseModel):
    """The full history of a catalog or system, oldest version first."""

    model_config = ConfigDict(from_attributes=True)

    kind: Literal["catalog", "system"]
    code: str
    status: str
    latest_version: int
    jurisdiction: str | None
    department: str | None
    versions: list[HistoryVersionPublic]


class FieldDifferencePublic(BaseModel):
    """A field of a document that differs from the committed record: ``path`` (``data_items[1].name``), the
    committed value (``expected``) and the document's (``got``); ``missing``: ``document`` or ``record`` when
    one side lacks the field."""

    model_config = ConfigDict(from_attributes=True)

    path: str
    expected: Any
    got: Any
    missing: str


class CheckOutcomePublic(BaseModel):
    """One check of the evidence bundle's numbered plan that ran (see ``registry.evidence``)."""

    model_config = ConfigDict(from_attributes=True)

    number: int
    name: str
    passed: bool
    detail: str


class ChainHolderPublic(BaseModel):
    """A directory holding the version, as read from the chain: home jurisdiction and tier, chain id, address,
    the log recording it there, whether it is a relayed copy, and the digest its ``recordDigest`` view answers."""

    model_config = ConfigDict(from_attributes=True)

    jurisdiction: str | None
    tier: str | None
    chain_id: int
    directory: str
    tx_hash: str
    block_number: int
    log_index: int
    relayed: bool
    digest_on_chain: str


class RecordVerificationPublic(BaseModel):
    """Whether a document is a committed version, checked against the chain: the recomputed ``digest``; the
    matching (or, when not ``ok``, nearest) version with its signer and origin transaction, block and log; the
    directories holding it; the fields that differ; the first failure; the evidence checks that ran."""

    model_config = ConfigDict(from_attributes=True)

    ok: bool
    kind: Literal["catalog", "system"]
    code: str
    digest: str
    version: int | None
    status: str | None
    signer: str | None
    chain_id: int | None
    directory: str | None
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    log_index: int | None
    holders: list[ChainHolderPublic]
    differences: list[FieldDifferencePublic]
    failure: str | None
    checks: list[CheckOutcomePublic]


class OriginPublic(BaseModel):
    """Where a relayed record was first recorded."""

    model_config = ConfigDict(from_attributes=True)

    chain_id: int
    directory: str
    tx_hash: str
    block_number: int
    log_index: int


class ChangePublic(BaseModel):
    """One event recorded in a directory: name, record kind, subject (code, account or request id), version,
    event-specific ``detail``, signer, where (chain id, directory, tx hash, block, log, block timestamp in unix
    seconds) and, for a relayed copy, its ``origin``."""

    model_config = ConfigDict(from_attributes=True)

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
    origin: OriginPublic | None


class DirectoryRef(BaseModel):
    """A directory: chain id and address."""

    chain_id: int
    address: str


class JurisdictionChangesPublic(BaseModel):
    """What changed in a jurisdiction's directory in ``[from, to)`` (block timestamps, unix seconds), by
    category, each in chain order."""

    jurisdiction: str
    tier: str
    from_: int = Field(serialization_alias="from")
    to: int
    directories: list[DirectoryRef]
    versions: list[ChangePublic]
    retirements: list[ChangePublic]
    jurisdictions: list[ChangePublic]
    departments: list[ChangePublic]
    keys: list[ChangePublic]
    sharing: list[ChangePublic]


class ColumnDifferencePublic(BaseModel):
    """A column of a changed row: the value rebuilt from the chain (``expected``) and the index's (``got``)."""

    model_config = ConfigDict(from_attributes=True)

    column: str
    expected: Any
    got: Any


class FindingPublic(BaseModel):
    """A row where the index and the chain disagree: ``kind`` changed / missing (on chain, not in the index) /
    extra (in the index, not on chain); ``key``: the primary key's values; ``message``: one line naming it."""

    table: str
    key: list[Any]
    kind: Literal["changed", "missing", "extra"]
    differences: list[ColumnDifferencePublic]
    row: dict[str, Any] | None
    message: str


class ChainCheckPublic(BaseModel):
    """One chain of a drift report: head, the index's cursor, the block the rebuild reached, events re-applied."""

    model_config = ConfigDict(from_attributes=True)

    chain_id: int
    name: str
    factory: str
    head: int
    cursor: int | None
    rebuilt_to: int | None
    events: int


class DriftReportPublic(BaseModel):
    """The index compared row by row with the index rebuilt from the chains alone: ``ok`` iff no finding;
    ``findings``: the first ``limit`` of ``findings_total``; ``tables``: rows compared per table; ``elapsed_ms``:
    wall time of the report, rebuild included."""

    ok: bool
    findings_total: int
    findings: list[FindingPublic]
    chains: list[ChainCheckPublic]
    tables: dict[str, int]
    elapsed_ms: float
