"""``/catalogs``: register, update and retire data resource catalogs (数据资源目录); list and read them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import ServicesDep, SessionDep
from api.problems import ApiProblem
from api.routes.batches import multi_status
from api.routes.records import parse_record, provenance_public, relay_batch, relay_record, versions_public
from api.schemas import (
    BatchAccepted,
    CatalogBatchCreate,
    CatalogCreate,
    CatalogDetail,
    CatalogPublic,
    Page,
    Provenance,
    RetirementCreate,
    SubmissionAccepted,
)
from registry import queries
from registry.db import CatalogRow
from registry.messages import record_message, retire_message
from registry.models import OpenType, ShareType, Tier

router = APIRouter(prefix="/catalogs", tags=["catalogs"])


def _public(r: CatalogRow) -> CatalogPublic:
    return CatalogPublic(
        code=r.code,
        name=r.name,
        jurisdiction=r.jurisdiction_code,
        tier=r.tier,
        provider=r.provider,
        provider_code=r.department_code,
        share_type=r.share_type,
        open_type=r.open_type,
        update_frequency=r.update_frequency,
        status=r.status,
        latest_version=r.latest_version,
        latest_digest=r.latest_digest,
        source_system=r.source_system,
        tx_hash=r.tx_hash,
        block_number=r.block_number,
        updated_at=r.updated_at,
        record=parse_record(r.record),
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=SubmissionAccepted)
async def submit_catalog(body: CatalogCreate, services: ServicesDep) -> SubmissionAccepted:
    """Relay a catalog version signed by its department (EIP-712 ``Catalog``).

    202 with the transaction hash; the record appears at ``record_url`` once indexed. 4xx problem
    for an invalid record (422), a malformed signature (400), a signer not authorised (403), a
    replayed nonce or version conflict (409), an expired deadline (422).
    """
    msg = record_message(body.record, body.action, body.version, body.nonce, body.deadline)
    return await relay_record(services, msg, body.signature, body.record.code, body.version, "catalogs")

@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchAccepted[SubmissionAccepted],
             responses=multi_status(BatchAccepted[SubmissionAccepted]))
async def submit_catalog_batch(body: CatalogBatchCreate, services: ServicesDep, response: Response
                               ) -> BatchAccepted[SubmissionAccepted]:
    """Relay up to 100 catalog versions, each signed by its department as for ``POST /catalogs``, in one request
    (an integration job's bulk upload). 202 when every one was accepted; 207 Multi-Status with each refusal's
    problem at its index otherwise (the others are relayed all the same). A body that is not valid — any
    submission malformed, none, or more than 100 — gets 422 and relays nothing."""
    return await relay_batch(services, body.submissions, "catalogs", response)

@router.post("/{code:path}/retirement", status_code=status.HTTP_202_ACCEPTED, response_model=SubmissionAccepted)
async def retire_catalog(code: str, body: RetirementCreate, services: ServicesDep) -> SubmissionAccepted:
    """Relay a catalog retirement signed by its department (the catalog accepts no further versions)."""
    msg = retire_message("catalog", code, body.jurisdiction, body.department, body.version, body.nonce, body.deadline)
    return await relay_record(services, msg, body.signature, code, body.version, "catalogs")

@router.get("", response_model=Page[CatalogPublic])
def list_catalogs(
    session: SessionDep,
    jurisdiction: Annotated[str | None, Query(description="jurisdiction code, e.g. 110102")] = None,
    owner: Annotated[str | None, Query(description="owning department code (provider code)")] = None,
    share_type: ShareType | None = None,
    open_type: OpenType | None = None,
    tier: Annotated[Tier | None, Query(description="held by a directory of this tier (city: the municipal "
                                                  "directory)")] = None,
    status_: Annotated[str | None, Query(alias="status", pattern="^(active|retired)$")] = None,
    text: Annotated[str | None, Query(max_length=100, description="substring of name, summary, items")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[CatalogPublic]:
    """Catalogs as indexed, filtered and paginated (ordered by code)."""
    rows, total = queries.list_catalogs(
        session,
        jurisdiction=jurisdiction,
        owner=owner,
        share_type=share_type.value if share_type else None,
        open_type=open_type.value if open_type else None,
        tier=tier.value if tier else None,
        status=status_,
        text=text,
        limit=limit,
        offset=offset,
    )
    return Page[CatalogPublic](items=[_public(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{code:path}/provenance", response_model=Provenance)
async def get_catalog_provenance(code: str, session: SessionDep) -> Provenance:
    """Chain of custody of every version: where it was first recorded (signer, chain, directory, transaction,
    block, log) and each directory above holding it as relayed (its transaction, block, log and the ``Relayed``
    event's origin key), from the top tier down to the origin."""
    return provenance_public(session, "catalog", code)


@router.get("/{code:path}", response_model=CatalogDetail)
async def get_catalog(code: str, session: SessionDep) -> CatalogDetail:
    """One catalog with every version: digest, signer, transaction hash, block number and log index."""
    found = queries.get_catalog(session, code)
    if found is None:
        raise ApiProblem(404, "not-found", "No such catalog", f"no catalog with code {code!r} is indexed")
    return CatalogDetail(**_public(found.catalog).model_dump(), versions=versions_public(found.versions))
