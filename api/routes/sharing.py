"""Data sharing (数据共享): ``/sharing-requests``, ``/grants``, ``/catalogs/{code}/access``, ``/kpis``.

Submissions are signed by departments and relayed like catalogs (simulated first: a refused one
writes nothing); reads come from the index. Request ids are keccak256(abi.encode(signer, nonce)).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import Services, ServicesDep, SessionDep
from api.problems import ApiProblem
from api.routes.batches import answer_batch, multi_status
from api.schemas import (
    REQUEST_ID_PATTERN,
    AccessHolderPublic,
    BatchAccepted,
    CatalogAccess,
    GrantHeldPublic,
    KpisPublic,
    Page,
    SharingAccepted,
    SharingBatchCreate,
    SharingDecisionBatchCreate,
    SharingDecisionCreate,
    SharingRequestCreate,
    SharingRequestDetail,
    SharingRequestPublic,
    SharingRevocationBatchCreate,
    SharingRevocationCreate,
    SharingTransitionPublic,
)
from chain.directory import DirectoryClient
from registry import kpis, sharing
from registry.db import CatalogRow, CatalogVersionRow, SharingRequestRow, SharingTransitionRow
from registry.directories import RouteError
from registry.messages import (
    Message,
    items_mask,
    sharing_decision_message,
    sharing_request_id,
    sharing_request_message,
    sharing_revocation_message,
)
from registry.models import CatalogRecord

router = APIRouter(tags=["sharing"])

RequestId = Annotated[str, Path(pattern=REQUEST_ID_PATTERN, description="request id, 0x-hex 32 bytes")]
StatusFilter = Annotated[str | None, Query(alias="status", pattern="^(" + "|".join(sharing.STATUSES) + ")$")]
GrantStatusFilter = Annotated[
    str | None, Query(alias="status", pattern="^(" + "|".join(sharing.GRANT_STATUSES) + ")$")
]
ZERO_ADDRESS = "0x" + "0" * 40
_UNIX = re.compile(r"^[0-9]{1,19}$")


# ---------------------------------------------------------------------------------------- shaping


def _public(r: SharingRequestRow) -> SharingRequestPublic:
    return SharingRequestPublic(
        id=r.id,
        catalog=r.catalog_code,
        catalog_version=r.catalog_version,
        requester=r.requester_code,
        owner=r.owner_code,
        items_mask=r.items_mask,
        items=sharing.request_items(r),
        purpose=r.purpose,
        basis=r.basis,
        start=r.start,
        end=r.end,
        status=r.status,
        requested_at=r.requested_at,
        granted_at=r.granted_at,
        decided_at=r.decided_at,
        ended_at=r.ended_at,
        reason=r.reason,
        signer=r.signer,
        nonce=r.nonce,
        deadline=r.deadline,
        tx_hash=r.tx_hash,
        log_index=r.log_index,
        block_number=r.block_number,
    )


def _transition(t: SharingTransitionRow) -> SharingTransitionPublic:
    return SharingTransitionPublic(
        from_status=t.from_status,
        to_status=t.to_status,
        reason=t.reason,
        automatic=t.signer.lower() == ZERO_ADDRESS,
        signer=t.signer,
        nonce=t.nonce,
        deadline=t.deadline,
        tx_hash=t.tx_hash,
        log_index=t.log_index,
        block_number=t.block_number,
        block_timestamp=t.block_timestamp,
    )


def parse_time(raw: str | None) -> int:
    """Unix seconds of ``raw``: decimal unix seconds, or ISO 8601 (a time without offset is UTC);
    now (wall clock) when None. Raises :class:`ApiProblem` 422 for anything else."""
    if raw is None or raw == "":
        return int(time.time())
    text = raw.strip()
    if _UNIX.match(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ApiProblem(422, "invalid-time", "The time is not understood",
                         f"expected ISO 8601 (e.g. 2025-06-30T12:00:00+08:00) or unix seconds, got {raw!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


# ---------------------------------------------------------------------------------------- submissions


def _items_mask(services: Services, body: SharingRequestCreate) -> int:
    """The bitmask of the body's item names over the indexed record of the catalog version."""
    with services.sessions() as session:
        catalog = session.get(CatalogRow, body.catalog)
        version = session.get(CatalogVersionRow, (body.catalog, body.version))
    if catalog is None:
        raise ApiProblem(422, "unknown-reference", "The catalog is not in the directory",
                         f"no catalog with code {body.catalog!r} is indexed")
    if version is None:
        raise ApiProblem(409, "version-conflict", "The version is not the catalog's current one",
                         f"catalog {body.catalog} has no version {body.version} "
                         f"(its latest is {catalog.latest_version})")
    if not version.valid or version.record is None:
        raise ApiProblem(422, "invalid-content", "The catalog version has no valid record",
                         f"version {body.version} of {body.catalog} is a retirement or an invalid record")
    record = CatalogRecord.model_validate_json(version.record)
    try:
        return items_mask(record, body.items)
    except ValueError as exc:
        raise ApiProblem(422, "unknown-items", "The request names data items the catalog version does not have",
                         str(exc)) from exc


def _sharing_state(services: Services, rid: bytes) -> int:
    """The chain's status of request ``rid`` (0: no such request) in the directory the index locates it in.
    Raises :class:`RouteError` when the index locates it nowhere."""
    _home, chain_id, address = services.directories.locate_request(rid)
    chain = services.directories.chain_by_id(chain_id)
    assert chain is not None
    return int(DirectoryClient(chain.rpc, address, chain_id).sharing(rid)["status"])


async def _require_on_chain(services: Services, request_id: str) -> bytes:
    """The id's bytes; 404 when the chain knows no request with that id (one hop to the thread pool: locating the
    request reads the index, its status is an ``eth_call``)."""
    rid = bytes.fromhex(request_id[2:])
    try:
        state = await run_in_threadpool(_sharing_state, services, rid)
    except RouteError as exc:
        raise ApiProblem(404, "not-found", "No such sharing request", str(exc)) from exc
    if state == 0:
        raise ApiProblem(404, "not-found", "No such sharing request", f"no sharing request {request_id} on chain")
    return rid


def _accepted(tx_hash: str, signer: str, msg: Message, request_id: str, mask: int | None = None) -> SharingAccepted:
    return SharingAccepted(
        tx_hash=tx_hash,
        signer=signer,
        primary_type=msg.primary,
        request_id=request_id,
        items_mask=None if mask is None else str(mask),
        status_url=f"/submissions/{tx_hash}",
        request_url=f"/sharing-requests/{request_id}",
    )


@router.post("/sharing-requests", status_code=status.HTTP_202_ACCEPTED, response_model=SharingAccepted)
async def request_sharing(body: SharingRequestCreate, services: ServicesDep) -> SharingAccepted:
    """Relay a sharing request signed by a key of the requesting department (EIP-712 ``SharingRequest``).

    The item names become the bitmask over the indexed catalog version (sign the message with that
    mask). The catalog's share type decides on chain: ``unconditional`` — granted at once;
    ``conditional`` — awaits the owner's decision; ``not_shared`` — refused (recorded, no grant).
    202 with the transaction hash and the request id. Problems: 422 unknown catalog, unknown item
    name (``unknown-items``), own catalog (``SharingSelfRequest``), empty or past period
    (``SharingPeriodInvalid``), expired deadline; 409 stale version or replayed nonce; 403 signer not
    a key of ``requester``; 400 malformed signature.
    """
    return await _relay_request(services, body)


@router.post("/sharing-requests/batch", status_code=status.HTTP_202_ACCEPTED,
             response_model=BatchAccepted[SharingAccepted],
             responses=multi_status(BatchAccepted[SharingAccepted]))
async def request_sharing_batch(body: SharingBatchCreate, services: ServicesDep, response: Response
                                ) -> BatchAccepted[SharingAccepted]:
    """Relay up to 100 sharing requests, each signed by its requester as for ``POST /sharing-requests``, in one
    request. 202 when every one was accepted; 207 Multi-Status with each refusal's problem at its index otherwise
    (the others are relayed all the same). A body that is not valid — any request malformed, none, or more than
    100 — gets 422 and relays nothing."""
    return await answer_batch([_relay_request(services, item) for item in body.submissions],
                              "/sharing-requests/batch", response)


async def _relay_request(services: Services, body: SharingRequestCreate) -> SharingAccepted:
    """Resolve a sharing request's item names to its mask and relay it; its 202 answer or the ApiProblem."""
    mask = await run_in_threadpool(_items_mask, services, body)
    msg = sharing_request_message(body.catalog, body.version, body.requester, mask, body.purpose, body.basis,
                                  body.start, body.end, body.nonce, body.deadline)
    tx_hash, signer = await services.relay.submit(msg, body.signature, f"{body.catalog}:{body.requester}:{body.nonce}")
    request_id = "0x" + sharing_request_id(signer, body.nonce).hex()
    return _accepted(tx_hash, signer, msg, request_id, mask)


@router.post("/sharing-requests/{request_id}/decision", status_code=status.HTTP_202_ACCEPTED,
             response_model=SharingAccepted)
async def decide_sharing(request_id: RequestId, body: SharingDecisionCreate, services: ServicesDep) -> SharingAccepted:
    """Relay the owning department's approval (``approve: true`` → granted) or rejection of a
    conditional request (EIP-712 ``SharingDecision``). Problems: 404 unknown request; 403 signer not a
    key of the owner (``SharingNotOwner``); 409 not awaiting a decision (``SharingStatusInvalid``, e.g.
    decided twice), period over (``SharingPeriodOver``) or replayed nonce; 400/422 as for requests."""
    return await _relay_decision(services, request_id, body)


@router.post("/sharing-requests/decisions/batch", status_code=status.HTTP_202_ACCEPTED,
             response_model=BatchAccepted[SharingAccepted],
             responses=multi_status(BatchAccepted[SharingAccepted]))
async def decide_sharing_batch(body: SharingDecisionBatchCreate, services: ServicesDep, response: Response
                               ) -> BatchAccepted[SharingAccepted]:
    """Relay up to 100 decisions, each naming its ``request_id`` and signed by the owner as for
    ``POST /sharing-requests/{request_id}/decision``, in one request. 202 when every one was accepted; 207
    Multi-Status with each refusal's problem at its index otherwise (the others are relayed all the same). A body
    that is not valid — any decision malformed, none, or more than 100 — gets 422 and relays nothing."""
    return await answer_batch([_relay_decision(services, item.request_id, item) for item in body.submissions],
                              "/sharing-requests/decisions/batch", response)


async def _relay_decision(services: Services, request_id: str, body: SharingDecisionCreate) -> SharingAccepted:
    """Relay a decision on request ``request_id``; its 202 answer or the ApiProblem."""
    return await _relay_transition(services, request_id, body.signature, lambda rid: sharing_decision_message(
        rid, body.approve, body.reason, body.nonce, body.deadline))


async def _relay_transition(services: Services, request_id: str, signature: str,
                            message: Callable[[bytes], Message]) -> SharingAccepted:
    """Relay the owner's signed ``message`` (built from the request id's bytes) moving request ``request_id`` on: a
    decision or a revocation; 404 first when the chain knows no such request."""
    rid = await _require_on_chain(services, request_id)
    msg = message(rid)
    tx_hash, signer = await services.relay.submit(msg, signature, request_id.lower())
    return _accepted(tx_hash, signer, msg, request_id.lower())


@router.post("/grants/{request_id}/revocation", status_code=status.HTTP_202_ACCEPTED, response_model=SharingAccepted)
async def revoke_grant(request_id: RequestId, body: SharingRevocationCreate, services: ServicesDep) -> SharingAccepted:
    """Relay the owning department's revocation of a grant before its period ends (EIP-712
    ``SharingRevocation``). Problems: 404 unknown request; 403 signer not a key of the owner (e.g. the
    requester: ``SharingNotOwner``); 409 not a current grant (``SharingStatusInvalid``: never granted,
    revoked, expired), period over (``SharingPeriodOver``) or replayed nonce."""
    return await _relay_revocation(services, request_id, body)


@router.post("/grants/revocations/batch", status_code=status.HTTP_202_ACCEPTED,
             response_model=BatchAccepted[SharingAccepted],
             responses=multi_status(BatchAccepted[SharingAccepted]))
async def revoke_grant_batch(body: SharingRevocationBatchCreate, services: ServicesDep, response: Response
                             ) -> BatchAccepted[SharingAccepted]:
    """Relay up to 100 revocations, each naming its ``request_id`` and signed by the owner as for
    ``POST /grants/{request_id}/revocation``, in one request; answered as ``POST /sharing-requests/decisions/batch``
    is."""
    return await answer_batch([_relay_revocation(services, item.request_id, item) for item in body.submissions],
                              "/grants/revocations/batch", response)


async def _relay_revocation(services: Services, request_id: str, body: SharingRevocationCreate) -> SharingAccepted:
    """Relay a revocation of grant ``request_id``; its 202 answer or the ApiProblem."""
    return await _relay_transition(services, request_id, body.signature, lambda rid: sharing_revocation_message(
        rid, body.reason, body.nonce, body.deadline))


# ---------------------------------------------------------------------------------------- reads


def _listing(
    session: SessionDep, grants_only: bool, requester: str | None, owner: str | None, catalog: str | None,
    status_: str | None, limit: int, offset: int,
) -> Page[SharingRequestPublic]:
    rows, total = sharing.list_requests(
        session, requester=requester, owner=owner, catalog=catalog, status=status_, grants_only=grants_only,
        limit=limit, offset=offset,
    )
    return Page[SharingRequestPublic](items=[_public(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/sharing-requests", response_model=Page[SharingRequestPublic])
def list_sharing_requests(
    session: SessionDep,
    requester: Annotated[str | None, Query(description="requesting department code")] = None,
    owner: Annotated[str | None, Query(description="owning department code")] = None,
    catalog: Annotated[str | None, Query(description="catalog code")] = None,
    status_: StatusFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[SharingRequestPublic]:
    """Sharing requests as indexed, in chain order, filtered and paginated."""
    return _listing(session, False, requester, owner, catalog, status_, limit, offset)


@router.get("/grants", response_model=Page[SharingRequestPublic])
def list_grants(
    session: SessionDep,
    requester: Annotated[str | None, Query(description="requesting (holding) department code")] = None,
    owner: Annotated[str | None, Query(description="owning department code")] = None,
    catalog: Annotated[str | None, Query(description="catalog code")] = None,
    status_: GrantStatusFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[SharingRequestPublic]:
    """Grants — requests that were granted — current (``granted``) or ended (``revoked``, ``expired``)."""
    return _listing(session, True, requester, owner, catalog, status_, limit, offset)


def _detail(session: SessionDep, request_id: str, grants_only: bool) -> SharingRequestDetail:
    found = sharing.get_request(session, request_id)
    if found is None or (grants_only and found.request.granted_at is None):
        what = "grant" if grants_only else "sharing request"
        raise ApiProblem(404, "not-found", f"No such {what}", f"no {what} {request_id} is indexed")
    return SharingRequestDetail(**_public(found.request).model_dump(),
                                transitions=[_transition(t) for t in found.transitions])


@router.get("/sharing-requests/{request_id}", response_model=SharingRequestDetail)
async def get_sharing_request(request_id: RequestId, session: SessionDep) -> SharingRequestDetail:
    """One request with its transitions: who moved it, in which transaction, block and log, when."""
    return _detail(session, request_id, False)


@router.get("/grants/{request_id}", response_model=SharingRequestDetail)
async def get_grant(request_id: RequestId, session: SessionDep) -> SharingRequestDetail:
    """One grant (a request that was granted) with its transitions."""
    return _detail(session, request_id, True)


@router.get("/catalogs/{code:path}/access", response_model=CatalogAccess)
def catalog_access(
    code: str,
    session: SessionDep,
    at: Annotated[str | None, Query(description="ISO 8601 time or unix seconds; default now")] = None,
) -> CatalogAccess:
    """The departments holding an active grant on the catalog at ``at``, with the data items each may
    use. Active: granted at or before ``at``, ``start`` ≤ ``at`` < ``end``, not revoked or expired at or
    before ``at``. 404 for an unknown catalog, 422 for a time that is not understood."""
    moment = parse_time(at)
    if session.get(CatalogRow, code) is None:
        raise ApiProblem(404, "not-found", "No such catalog", f"no catalog with code {code!r} is indexed")
    holders = [
        AccessHolderPublic(
            department=h.department_code,
            name=h.department_name,
            jurisdiction=h.jurisdiction_code,
            items=h.items,
            grants=[GrantHeldPublic(id=g.id, items=g.items, start=g.start, end=g.end, granted_at=g.granted_at,
                                    purpose=g.purpose, basis=g.basis) for g in h.grants],
        )
        for h in sharing.access_at(session, code, moment)
    ]
    iso = datetime.fromtimestamp(moment, UTC).isoformat() if moment < 253402300800 else ""
    return CatalogAccess(catalog=code, at=moment, at_iso=iso, holders=holders)


@router.get("/kpis", response_model=KpisPublic)
def get_kpis(session: SessionDep) -> KpisPublic:
    """The sharing KPIs overall and per jurisdiction against the 2025 targets, from the index; each
    reproducible from the chain alone (``registry.kpis.kpis_from_chain``)."""
    return KpisPublic.model_validate(kpis.kpis_from_index(session).as_dict())
