"""``/systems``: register, update and retire information systems (信息系统); list and read them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import ServicesDep, SessionDep
from api.problems import ApiProblem
from api.routes.batches import multi_status
from api.routes.records import parse_record, provenance_public, relay_batch, relay_record, versions_public
from api.schemas import (
    BatchAccepted,
    Page,
    Provenance,
    RetirementCreate,
    SubmissionAccepted,
    SystemBatchCreate,
    SystemCreate,
    SystemDetail,
    SystemPublic,
)
from registry import queries
from registry.db import SystemRow
from registry.messages import record_message, retire_message
from registry.models import SystemStatus, Tier

router = APIRouter(prefix="/systems", tags=["systems"])


def _public(r: SystemRow) -> SystemPublic:
    record = parse_record(r.record)
    return SystemPublic(
        code=r.code,
        name=r.name,
        jurisdiction=r.jurisdiction_code,
        tier=r.tier,
        owner=r.owner,
        owner_code=r.department_code,
        status=r.status,
        lifecycle=r.lifecycle,
        latest_version=r.latest_version,
        latest_digest=r.latest_digest,
        tx_hash=r.tx_hash,
        block_number=r.block_number,
        updated_at=r.updated_at,
        record=record,
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=SubmissionAccepted)
async def submit_system(body: SystemCreate, services: ServicesDep) -> SubmissionAccepted:
    """Relay an information-system version signed by its department (EIP-712 ``System``); errors as for catalogs."""
    msg = record_message(body.record, body.action, body.version, body.nonce, body.deadline)
    return await relay_record(services, msg, body.signature, body.record.code, body.version, "systems")

@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchAccepted[SubmissionAccepted],
             responses=multi_status(BatchAccepted[SubmissionAccepted]))
async def submit_system_batch(body: SystemBatchCreate, services: ServicesDep, response: Response
                               ) -> BatchAccepted[SubmissionAccepted]:
    """Relay up to 100 system versions, each signed by its department as for ``POST /systems``, in one request
    (an integration job's bulk upload). 202 when every one was accepted; 207 Multi-Status with each refusal's
    problem at its index otherwise (the others are relayed all the same). A body that is not valid — any
    submission malformed, none, or more than 100 — gets 422 and relays nothing."""
    return await relay_batch(services, body.submissions, "systems", response)

@router.post("/{code:path}/retirement", status_code=status.HTTP_202_ACCEPTED, response_model=SubmissionAccepted)
async def retire_system(code: str, body: RetirementCreate, services: ServicesDep) -> SubmissionAccepted:
    """Relay a system retirement signed by its department."""
    msg = retire_message("system", code, body.jurisdiction, body.department, body.version, body.nonce, body.deadline)
    return await relay_record(services, msg, body.signature, code, body.version, "systems")

@router.get("", response_model=Page[SystemPublic])
def list_systems(
    session: SessionDep,
    jurisdiction: Annotated[str | None, Query(description="jurisdiction code")] = None,
    owner: Annotated[str | None, Query(description="owning department code")] = None,
    status_: Annotated[SystemStatus | None, Query(alias="status")] = None,
    lifecycle: Annotated[str | None, Query(pattern="^(active|retired)$")] = None,
    tier: Annotated[Tier | None, Query(description="held by a directory of this tier")] = None,
    text: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[SystemPublic]:
    """Information systems as indexed, filtered and paginated (ordered by code)."""
    rows, total = queries.list_systems(
        session,
        jurisdiction=jurisdiction,
        owner=owner,
        status=status_.value if status_ else None,
        lifecycle=lifecycle,
        tier=tier.value if tier else None,
        text=text,
        limit=limit,
        offset=offset,
    )
    return Page[SystemPublic](items=[_public(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{code:path}/provenance", response_model=Provenance)
async def get_system_provenance(code: str, session: SessionDep) -> Provenance:
    """Chain of custody of every version: where it was first recorded (signer, chain, directory, transaction,
    block, log) and each directory above holding it as relayed (its transaction, block, log and the ``Relayed``
    event's origin key), from the top tier down to the origin."""
    return provenance_public(session, "system", code)


@router.get("/{code:path}", response_model=SystemDetail)
async def get_system(code: str, session: SessionDep) -> SystemDetail:
    """One information system with every version and its provenance."""
    found = queries.get_system(session, code)
    if found is None:
        raise ApiProblem(404, "not-found", "No such system", f"no system with code {code!r} is indexed")
    return SystemDetail(**_public(found.system).model_dump(), versions=versions_public(found.versions))
