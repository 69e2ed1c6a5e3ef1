"""``/jurisdictions``, ``/departments``, ``/accounts``: the jurisdiction tree and who may sign for whom."""

from __future__ import annotations

from typing import Annotated

from eth_utils import to_checksum_address
from fastapi import APIRouter, Query, status

from api.deps import ServicesDep, SessionDep
from api.problems import ApiProblem
from api.schemas import (
    AccountCreate,
    DepartmentCreate,
    DepartmentPublic,
    JurisdictionCreate,
    JurisdictionPublic,
    SubmissionAccepted,
)
from registry import tree
from registry.messages import account_message, department_message, jurisdiction_message
from registry.models import Tier

router = APIRouter(tags=["directory"])


def _accepted(tx_hash: str, signer: str, primary: str, code: str, record_url: str | None) -> SubmissionAccepted:
    return SubmissionAccepted(
        tx_hash=tx_hash, signer=signer, primary_type=primary, code=code,
        status_url=f"/submissions/{tx_hash}", record_url=record_url,
    )


@router.post("/jurisdictions", status_code=status.HTTP_202_ACCEPTED, response_model=SubmissionAccepted)
async def add_jurisdiction(body: JurisdictionCreate, services: ServicesDep) -> SubmissionAccepted:
    """Relay a jurisdiction signed by an administrator of its parent (the bureau for the city)."""
    msg = jurisdiction_message(body.jurisdiction, body.nonce, body.deadline)
    tx_hash, signer = await services.relay.submit(msg, body.signature, body.jurisdiction.code)
    return _accepted(tx_hash, signer, msg.primary, body.jurisdiction.code, f"/jurisdictions/{body.jurisdiction.code}")


@router.post("/departments", status_code=status.HTTP_202_ACCEPTED, response_model=SubmissionAccepted)
async def register_department(body: DepartmentCreate, services: ServicesDep) -> SubmissionAccepted:
    """Relay a department registration signed by an administrator of its jurisdiction."""
    msg = department_message(body.department, body.nonce, body.deadline)
    tx_hash, signer = await services.relay.submit(msg, body.signature, body.department.code)
    return _accepted(tx_hash, signer, msg.primary, body.department.code, f"/departments/{body.department.code}")


@router.post("/accounts", status_code=status.HTTP_202_ACCEPTED, response_model=SubmissionAccepted)
async def set_account(body: AccountCreate, services: ServicesDep) -> SubmissionAccepted:
    """Relay a role grant or revocation (jurisdiction administrator, department signing key)."""
    account = to_checksum_address(body.account)
    msg = account_message(body.role, body.scope, account, body.active, body.nonce, body.deadline)
    tx_hash, signer = await services.relay.submit(msg, body.signature, f"{body.role}:{body.scope}:{account}")
    return _accepted(tx_hash, signer, msg.primary, body.scope, None)


@router.get("/jurisdictions", response_model=list[JurisdictionPublic])
def list_jurisdictions(session: SessionDep, tier: Tier | None = None) -> list[JurisdictionPublic]:
    """Every indexed jurisdiction (parents before children), optionally of one tier."""
    rows = tree.jurisdictions(session)
    return [JurisdictionPublic(**r) for r in rows if tier is None or r["tier"] == tier.value]


@router.get("/jurisdictions/{code:path}", response_model=JurisdictionPublic)
def get_jurisdiction(code: str, session: SessionDep) -> JurisdictionPublic:
    """One jurisdiction by code."""
    found = tree.jurisdiction(session, code)
    if found is not None:
        return JurisdictionPublic(**found)
    raise ApiProblem(404, "not-found", "No such jurisdiction", f"no jurisdiction with code {code!r} is indexed")


@router.get("/departments", response_model=list[DepartmentPublic])
def list_departments(
    session: SessionDep, jurisdiction: Annotated[str | None, Query(description="jurisdiction code")] = None
) -> list[DepartmentPublic]:
    """Indexed departments with their active signing keys."""
    return [DepartmentPublic(**r) for r in tree.departments(session, jurisdiction=jurisdiction)]


@router.get("/departments/{code:path}", response_model=DepartmentPublic)
async def get_department(code: str, session: SessionDep) -> DepartmentPublic:
    """One department by code."""
    for r in tree.departments(session, code=code):
        return DepartmentPublic(**r)
    raise ApiProblem(404, "not-found", "No such department", f"no department with code {code!r} is indexed")
