"""Read side of data sharing (数据共享): requests, grants, their transitions, and who holds access when.

Every function takes an open Session and returns ORM rows of :mod:`registry.db` or plain dataclasses;
nothing here is a wire format. Times are unix seconds (block timestamps for what happened on chain).

The access rule (one place, :func:`grant_active`): a request grants access to its data items at time
``at`` iff it was granted at or before ``at`` (``granted_at ≤ at``), ``at`` lies in its period
(``start ≤ at < end``) and it was not revoked or expired at or before ``at`` (``ended_at`` is null or
``ended_at > at``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from registry.db import DepartmentRow, JurisdictionRow, SharingRequestRow, SharingTransitionRow
from registry.queries import MAX_LIMIT

#: Request / grant statuses (``IDirectorySharing.SharingStatus`` without ``none``).
STATUSES = ("requested", "granted", "rejected", "refused", "revoked", "expired")
#: Statuses of a request that was granted at some point (a grant, current or ended).
GRANT_STATUSES = ("granted", "revoked", "expired")


@dataclass(frozen=True)
class SharingDetail:
    """A request with every status transition, in chain order."""

    request: SharingRequestRow
    transitions: list[SharingTransitionRow]


@dataclass(frozen=True)
class GrantHeld:
    """One active grant: request id, data item names (None if not resolvable from the index), period
    (unix seconds, start ≤ t < end), when it was granted (block timestamp), purpose and legal basis."""

    id: str
    items: list[str] | None
    start: int
    end: int
    granted_at: int
    purpose: str
    basis: str


@dataclass(frozen=True)
class AccessHolder:
    """A department holding at least one active grant on a catalog at some time.

    ``items``: the union of the data item names of its active grants (first-seen order, grants taken
    in the order they were granted); ``grants``: those grants.
    """

    department_id: str
    department_code: str | None
    department_name: str | None
    jurisdiction_code: str | None
    items: list[str]
    grants: list[GrantHeld] = field(default_factory=list)


def request_items(row: SharingRequestRow) -> list[str] | None:
    """The data item names of a request (None when the index could not resolve them)."""
    if row.items is None:
        return None
    names: Any = json.loads(row.items)
    return [str(n) for n in names] if isinstance(names, list) else None


def grant_active(granted_at: int | None, start: int, end: int, ended_at: int | None, at: int) -> bool:
    """Whether a request grants access at unix time ``at`` (see the module docstring for the rule)."""
    if granted_at is None or granted_at > at:
        return False
    if not start <= at < end:
        return False
    return ended_at is None or ended_at > at


def _filtered(
    stmt: Select[Any], requester: str | None, owner: str | None, catalog: str | None, status: str | None
) -> Select[Any]:
    if requester is not None:
        stmt = stmt.where(SharingRequestRow.requester_code == requester)
    if owner is not None:
        stmt = stmt.where(SharingRequestRow.owner_code == owner)
    if catalog is not None:
        stmt = stmt.where(SharingRequestRow.catalog_code == catalog)
    if status is not None:
        stmt = stmt.where(SharingRequestRow.status == status)
    return stmt


def list_requests(
    session: Session,
    *,
    requester: str | None = None,
    owner: str | None = None,
    catalog: str | None = None,
    status: str | None = None,
    grants_only: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SharingRequestRow], int]:
    """Sharing requests matching every given filter, in chain order: ``(page, total matching)``.

    ``requester`` / ``owner``: department codes; ``catalog``: catalog code; ``status``: one of
    :data:`STATUSES`. ``grants_only`` keeps the requests that were granted at some point (status
    ``granted``, ``revoked`` or ``expired``). ``limit`` is capped at :data:`registry.queries.MAX_LIMIT`.
    Raises ValueError for a negative ``limit`` or ``offset``.
    """
    if limit < 0 or offset < 0:
        raise ValueError(f"expected limit and offset >= 0, got limit={limit}, offset={offset}")
    stmt = _filtered(select(SharingRequestRow), requester, owner, catalog, status)
    if grants_only:
        stmt = stmt.where(SharingRequestRow.granted_at.is_not(None))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = (SharingRequestRow.block_number, SharingRequestRow.log_index, SharingRequestRow.id)
    rows = session.scalars(stmt.order_by(*order).limit(min(limit, MAX_LIMIT)).offset(offset)).all()
    return list(rows), int(total)


def get_request(session: Session, request_id: str) -> SharingDetail | None:
    """The request with id ``request_id`` (0x-hex, any case) and its transitions, or None."""
    rid = request_id.lower()
    row = session.get(SharingRequestRow, rid)
    if row is None:
        return None
    transitions = session.scalars(
        select(SharingTransitionRow)
        .where(SharingTransitionRow.request_id == rid)
        .order_by(SharingTransitionRow.block_number, SharingTransitionRow.log_index)
    ).all()
    return SharingDetail(row, list(transitions))


def access_at(session: Session, catalog_code: str, at: int) -> list[AccessHolder]:
    """Departments holding an active grant on catalog ``catalog_code`` at unix time ``at`` (seconds),
    ordered by department code, each with the data items it may use (see :class:`AccessHolder`)."""
    stmt = (
        select(SharingRequestRow, DepartmentRow, JurisdictionRow)
        .outerjoin(DepartmentRow, DepartmentRow.id == SharingRequestRow.requester_id)
        .outerjoin(JurisdictionRow, JurisdictionRow.id == DepartmentRow.jurisdiction_id)
        .where(SharingRequestRow.catalog_code == catalog_code)
        .where(SharingRequestRow.granted_at.is_not(None))
        .where(SharingRequestRow.granted_at <= at)
        .order_by(SharingRequestRow.granted_at, SharingRequestRow.block_number, SharingRequestRow.log_index)
    )
    holders: dict[str, AccessHolder] = {}
    for row, dept, jur in session.execute(stmt):
        if not grant_active(row.granted_at, row.start, row.end, row.ended_at, at):
            continue
        holder = holders.get(row.requester_id)
        if holder is None:
            holder = AccessHolder(
                department_id=row.requester_id,
                department_code=dept.code if dept else row.requester_code,
                department_name=dept.name if dept else None,
                jurisdiction_code=jur.code if jur else None,
                items=[],
            )
            holders[row.requester_id] = holder
        items = request_items(row)
        for name in items or []:
            if name not in holder.items:
                holder.items.append(name)
        assert row.granted_at is not None
        holder.grants.append(
            GrantHeld(row.id, items, row.start, row.end, row.granted_at, row.purpose, row.basis)
        )
    return sorted(holders.values(), key=lambda h: (h.department_code or "", h.department_id))


class Expiring(NamedTuple):
    """A grant due to expire: its request ``id`` (0x-hex) and the directory (``chain_id``, ``directory``) that
    recorded the request."""

    id: str
    chain_id: int
    directory: str


def grants_to_expire(session: Session, now: int, limit: int = 100) -> list[Expiring]:
    """Indexed grants still ``granted`` whose period is over at unix time ``now`` (``end ≤ now``),
    oldest end first, at most ``limit``."""
    stmt = (
        select(SharingRequestRow.id, SharingRequestRow.chain_id, SharingRequestRow.directory)
        .where(SharingRequestRow.status == "granted")
        .where(SharingRequestRow.end <= now)
        .order_by(SharingRequestRow.end, SharingRequestRow.id)
        .limit(limit)
    )
    return [Expiring(*row) for row in session.execute(stmt)]


def counts(session: Session) -> dict[str, int]:
    """Row counts: ``sharing_requests`` (every request) and ``grants`` (requests ever granted)."""
    total = session.scalar(select(func.count()).select_from(SharingRequestRow)) or 0
    grants = session.scalar(
        select(func.count()).select_from(SharingRequestRow).where(SharingRequestRow.granted_at.is_not(None))
    ) or 0
    return {"sharing_requests": int(total), "grants": int(grants)}
