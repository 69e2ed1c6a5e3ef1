"""``/audit``: what an auditor asks — a record's full history and chain of custody, who held access at a time,
what changed in a jurisdiction's directory between two times, whether a document is a committed version
(checked against the chain, not the index), and the drift between the index and the chain.

Histories, custody, access and changes are read from the index; ``POST /audit/verify`` and ``GET /audit/drift``
read the chains themselves, so their answers do not rest on the index (see :mod:`registry.audit`,
:mod:`registry.drift`). Bad input is a 4xx problem; a chain that does not answer a 503 problem.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from api.deps import ServicesDep, SessionDep
from api.problems import ApiProblem, chain_problem
from api.routes.records import provenance_public
from api.routes.sharing import catalog_access, parse_time
from api.schemas import (
    CatalogAccess,
    ChainCheckPublic,
    ChangePublic,
    ColumnDifferencePublic,
    DirectoryRef,
    DriftReportPublic,
    FindingPublic,
    HistoryVersionPublic,
    JurisdictionChangesPublic,
    Provenance,
    RecordHistoryPublic,
    RecordVerificationPublic,
)
from chain.errors import ChainError
from registry import audit
from registry.drift import DriftError, chain_sources, drift_report

router = APIRouter(prefix="/audit", tags=["audit"])

def _history(session: Any, kind: str, code: str) -> RecordHistoryPublic:
    found = audit.record_history(session, kind, code)
    if found is None:
        raise ApiProblem(404, "not-found", f"No such {kind}", f"no {kind} with code {code!r} is indexed")
    return RecordHistoryPublic(
        kind=found.kind,  # type: ignore[arg-type]
        code=found.code,
        status=found.status,
        latest_version=found.latest_version,
        jurisdiction=found.jurisdiction,
        department=found.department,
        versions=[HistoryVersionPublic.model_validate(v, from_attributes=True) for v in found.versions],
    )


@router.get("/catalogs/{code:path}/history", response_model=RecordHistoryPublic)
async def catalog_history(code: str, session: SessionDep) -> RecordHistoryPublic:
    """Every version of the catalog, oldest first: action, digest, validity, signer, nonce, the transaction,
    block and log where it was first recorded (chain id, directory, its jurisdiction and tier, block timestamp),
    the tiers holding it and its chain of custody. 404 if the catalog is not indexed."""
    return _history(session, "catalog", code)


@router.get("/systems/{code:path}/history", response_model=RecordHistoryPublic)
async def system_history(code: str, session: SessionDep) -> RecordHistoryPublic:
    """Every version of the information system, as ``GET /audit/catalogs/{code}/history``."""
    return _history(session, "system", code)


@router.get("/catalogs/{code:path}/custody", response_model=Provenance)
async def catalog_custody(code: str, session: SessionDep) -> Provenance:
    """Per version, the chain of custody from the city directory's copy down to the origin transaction: each
    hop's directory, transaction, block, log, ``Relayed`` log and origin key. 404 if not indexed."""
    return provenance_public(session, "catalog", code)


@router.get("/catalogs/{code:path}/access", response_model=CatalogAccess)
def catalog_access_at(
    code: str,
    session: SessionDep,
    at: Annotated[str | None, Query(description="ISO 8601 time or unix seconds; default now")] = None,
) -> CatalogAccess:
    """The departments holding an active grant on the catalog at ``at`` and the data items each may use
    (granted at or before ``at``, ``start`` ≤ ``at`` < ``end``, not revoked or expired at or before ``at``).
    404 for an unknown catalog, 422 for a time that is not understood."""
    return catalog_access(code, session, at)


@router.post("/verify", response_model=RecordVerificationPublic)
def verify(
    services: ServicesDep,
    document: Annotated[dict[str, Any], Body(description="a catalog or system record (JSON object)")],
    kind: Annotated[str | None, Query(pattern="^(catalog|system)$",
                                      description="record kind (default: from the document's fields)")] = None,
) -> RecordVerificationPublic:
    """Is the document a committed version? Checked against the chains, not the index: its digest (keccak-256
    of RFC 8785 canonical JSON) is recomputed and matched with the version events of its code in the service's
    directories (found from the factories' logs); the matching version's evidence bundle is verified (header,
    receipt and transaction proofs, event, digest, signature) and each directory holding it must answer the
    digest from its ``recordDigest`` view. ``ok`` with the version, signer, transaction, block, log and holders
    (tiers); or not ``ok`` with the fields that differ from the nearest committed version and the first
    failure. 422 for a document that is not a record (no code), 503 when a chain does not answer."""
    try:
        found = audit.verify_record(chain_sources(services.chains), document, kind)
    except audit.AuditInputError as exc:
        raise ApiProblem(422, "invalid-document", "The document cannot be verified", str(exc)) from exc
    except ChainError as exc:  # the node did not answer (RpcUnavailable) or answered an error (RpcError)
        raise chain_problem(exc) from exc
    return RecordVerificationPublic.model_validate(found, from_attributes=True)


@router.get("/changes", response_model=JurisdictionChangesPublic)
def changes(
    session: SessionDep,
    jurisdiction: Annotated[str, Query(min_length=1, max_length=64, description="jurisdiction code, e.g. 110102")],
    from_: Annotated[str, Query(alias="from", description="start, inclusive: ISO 8601 or unix seconds")],
    to: Annotated[str, Query(description="end, exclusive: ISO 8601 or unix seconds")],
) -> JurisdictionChangesPublic:
    """What the jurisdiction's directory recorded with a block timestamp in ``[from, to)``: catalog and system
    versions and retirements, jurisdictions, departments, keys, sharing requests and transitions — its own and
    those it holds as relayed (with their origin). 404 for an unknown jurisdiction, 422 for a time not
    understood or ``from`` after ``to``."""
    start, end = parse_time(from_), parse_time(to)
    try:
        found = audit.changes(session, jurisdiction, start, end)
    except audit.AuditInputError as exc:
        raise ApiProblem(422, "invalid-time", "The time window is not valid", str(exc)) from exc
    if found is None:
        raise ApiProblem(404, "not-found", "No such jurisdiction", f"no jurisdiction {jurisdiction!r} is indexed")

    def items(rows: list[audit.Change]) -> list[ChangePublic]:
        return [ChangePublic.model_validate(c, from_attributes=True) for c in rows]

    return JurisdictionChangesPublic(
        jurisdiction=found.jurisdiction, tier=found.tier, from_=found.start, to=found.end,
        directories=[DirectoryRef(chain_id=c, address=a) for c, a in found.directories],
        versions=items(found.versions), retirements=items(found.retirements),
        jurisdictions=items(found.jurisdictions), departments=items(found.departments), keys=items(found.keys),
        sharing=items(found.sharing),
    )


@router.get("/drift", response_model=DriftReportPublic)
def drift(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000, description="most findings listed")] = 1000,
) -> DriftReportPublic:
    """Rebuild the index from the service's chains alone, up to the block the index reached on each, and compare
    every derived table row by row: each row edited (``changed``, with the chain's and the index's value of each
    column), deleted (``missing``) or inserted (``extra``) in the index is a finding; ``ok`` iff none; the first
    ``limit`` findings are listed. 503 when a chain does not answer, 409 while the index has indexed nothing."""
    try:
        with services.sessions() as session:
            report = drift_report(session, chain_sources(services.chains))
    except DriftError as exc:
        if exc.number == 3:
            raise ApiProblem(409, "index-not-ready", "The index cannot be compared yet", str(exc)) from exc
        if exc.number == 1:
            raise ApiProblem(422, "invalid-input", "Nothing to compare", str(exc)) from exc
        raise chain_problem(exc) from exc
    return DriftReportPublic(
        ok=report.ok,
        findings_total=len(report.findings),
        findings=[
            FindingPublic(table=f.table, key=list(f.key), kind=f.kind,
                          differences=[ColumnDifferencePublic.model_validate(d, from_attributes=True)
                                       for d in f.differences],
                          row=f.row, message=str(f))
            for f in report.findings[:limit]
        ],
        chains=[ChainCheckPublic.model_validate(c, from_attributes=True) for c in report.chains],
        tables=report.tables,
        elapsed_ms=report.elapsed_ms,
    )
