"""Read side of the derived index, for the API and the CLI. Every function takes an open Session.

Return types: rows are the ORM objects of :mod:`registry.db` (:class:`~registry.db.CatalogRow`,
:class:`~registry.db.SystemRow`, …) — plain column attributes, no relationships, so they stay
readable after the session closes (sessions from :func:`registry.db.session_factory` do not expire
on commit). Records with their history come as :class:`CatalogDetail` / :class:`SystemDetail`.
The API maps these to its own response schemas; nothing here is a wire format.

Pagination: ``limit`` rows from ``offset`` in a stable order (by code), plus the total number of
rows matching the filters. Filters left as None do not filter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Executable, Select, and_, bindparam, func, or_, select, tuple_
from sqlalchemy.orm import Session

from registry.db import (
    Base,
    CatalogRow,
    CatalogVersionRow,
    ChainEvent,
    Cursor,
    DepartmentRow,
    DirectoryRow,
    JurisdictionRow,
    RelayedRecordRow,
    SystemRow,
    SystemVersionRow,
)

ZERO_HOME = "0x" + "00" * 32

#: Largest page :func:`list_catalogs` / :func:`list_systems` return, whatever ``limit`` asks.
MAX_LIMIT = 1000


@dataclass(frozen=True)
class CatalogDetail:
    """A catalog's current state and every version event, oldest first."""

    catalog: CatalogRow
    versions: list[CatalogVersionRow]


@dataclass(frozen=True)
class SystemDetail:
    """A system's current state and every version event, oldest first."""

    system: SystemRow
    versions: list[SystemVersionRow]


def parse_record(text: str | None) -> Any:
    """The JSON value of a stored canonical record (None stays None; undecodable text is returned as is: the
    index keeps what the chain holds, valid or not)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _page(session: Session, stmt: Select[Any], order: Any, limit: int, offset: int) -> tuple[list[Any], int]:
    if limit < 0 or offset < 0:
        raise ValueError(f"expected limit and offset >= 0, got limit={limit}, offset={offset}")
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(order).limit(min(limit, MAX_LIMIT)).offset(offset)).all()
    return list(rows), int(total)


def list_catalogs(
    session: Session,
    *,
    jurisdiction: str | None = None,
    owner: str | None = None,
    share_type: str | None = None,
    open_type: str | None = None,
    tier: str | None = None,
    status: str | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[CatalogRow], int]:
    """Catalogs matching every given filter, ordered by code: ``(page, total matching)``.

    ``jurisdiction``: jurisdiction code (e.g. ``"110102"``); ``owner``: department code (提供方代码);
    ``share_type`` / ``open_type``: the record's vocabulary values; ``tier``: ``city`` / ``district`` /
    ``street`` — the catalogs a directory of that tier holds, recorded there or relayed from below (so ``city``
    is the whole municipal directory once synced; in a single zero-home directory, the catalogs of
    jurisdictions of that tier); ``status``: ``active`` / ``retired``; ``text``: case-insensitive substring of the name,
    summary, provider or data item names (``%`` and ``_`` match literally). ``limit`` is capped at
    :data:`MAX_LIMIT`. Raises ValueError for a negative ``limit`` or ``offset``.
    """
    stmt = select(CatalogRow)
    if jurisdiction is not None:
        stmt = stmt.where(CatalogRow.jurisdiction_code == jurisdiction)
    if owner is not None:
        stmt = stmt.where(CatalogRow.department_code == owner)
    if share_type is not None:
        stmt = stmt.where(CatalogRow.share_type == share_type)
    if open_type is not None:
        stmt = stmt.where(CatalogRow.open_type == open_type)
    if tier is not None:
        stmt = stmt.where(held_at_tier(CatalogRow.code, CatalogRow.tier, CatalogVersionRow,
                                       ("CatalogVersionRecorded", "CatalogRetired"), tier))
    if status is not None:
        stmt = stmt.where(CatalogRow.status == status)
    if text:
        stmt = stmt.where(CatalogRow.search_text.icontains(text, autoescape=True))
    return _page(session, stmt, CatalogRow.code, limit, offset)


def held_at_tier(code: Any, own_tier: Any, versions: type[CatalogVersionRow] | type[SystemVersionRow],
                 events: tuple[str, ...], tier: str) -> Any:
    """SQL condition: the record (``code`` column, its jurisdiction's ``own_tier`` column) is held by a directory
    whose home is of ``tier`` — recorded there (a version in ``versions``) or relayed there (``events`` in
    ``relayed_records``) — or was recorded in a directory with no home (a single zero-home directory, or one the
    index does not know) and is of that tier itself."""
    at_tier = (
        select(DirectoryRow.chain_id, DirectoryRow.address)
        .join(JurisdictionRow, JurisdictionRow.id == DirectoryRow.home_id)
        .where(JurisdictionRow.tier == tier)
    )
    homed = select(DirectoryRow.chain_id, DirectoryRow.address).where(DirectoryRow.home_id != ZERO_HOME)
    recorded = select(versions.code).where(tuple_(versions.chain_id, versions.directory).in_(at_tier))
    relayed = select(RelayedRecordRow.subject).where(
        RelayedRecordRow.event.in_(events), tuple_(RelayedRecordRow.chain_id, RelayedRecordRow.directory).in_(at_tier)
    )
    in_homed = select(versions.code).where(tuple_(versions.chain_id, versions.directory).in_(homed))
    return or_(code.in_(recorded), code.in_(relayed), and_(own_tier == tier, code.not_in(in_homed)))


@cache
def _with_versions(current: type[CatalogRow] | type[SystemRow],
                   versions: type[CatalogVersionRow] | type[SystemVersionRow]) -> Executable:
    """A record's current row joined with each of its versions, oldest first (built once; the record's code is the
    bound parameter ``code``)."""
    return (select(current, versions).outerjoin(versions, versions.code == current.code)
            .where(current.code == bindparam("code")).order_by(versions.version))


def get_catalog(session: Session, code: str) -> CatalogDetail | None:
    """The catalog with resource code ``code`` and its versions ordered by version, or None (one statement)."""
    rows = session.execute(_with_versions(CatalogRow, CatalogVersionRow), {"code": code}).all()
    if not rows:
        return None
    return CatalogDetail(rows[0][0], [version for _, version in rows if version is not None])


def list_systems(
    session: Session,
    *,
    jurisdiction: str | None = None,
    owner: str | None = None,
    status: str | None = None,
    lifecycle: str | None = None,
    tier: str | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SystemRow], int]:
    """Information systems matching every given filter, ordered by code: ``(page, total matching)``.

    ``jurisdiction``: jurisdiction code; ``owner``: department code; ``status``: the record's
    construction status (planned/building/online/offline); ``lifecycle``: ``active``/``retired``;
    ``tier``: the systems a directory of that tier holds (as :func:`list_catalogs`);
    ``text``: case-insensitive substring of name, summary, owner or programme. As :func:`list_catalogs`
    for ``limit`` and ``offset``.
    """
    stmt = select(SystemRow)
    if jurisdiction is not None:
        stmt = stmt.where(SystemRow.jurisdiction_code == jurisdiction)
    if owner is not None:
        stmt = stmt.where(SystemRow.department_code == owner)
    if status is not None:
        stmt = stmt.where(SystemRow.status == status)
    if lifecycle is not None:
        stmt = stmt.where(SystemRow.lifecycle == lifecycle)
    if tier is not None:
        stmt = stmt.where(held_at_tier(SystemRow.code, SystemRow.tier, SystemVersionRow,
                                       ("SystemVersionRecorded", "SystemRetired"), tier))
    if text:
        stmt = stmt.where(SystemRow.search_text.icontains(text, autoescape=True))
    return _page(session, stmt, SystemRow.code, limit, offset)


def get_system(session: Session, code: str) -> SystemDetail | None:
    """The system with code ``code`` and its versions ordered by version, or None (one statement)."""
    rows = session.execute(_with_versions(SystemRow, SystemVersionRow), {"code": code}).all()
    if not rows:
        return None
    return SystemDetail(rows[0][0], [version for _, version in rows if version is not None])


def list_jurisdictions(session: Session) -> list[JurisdictionRow]:
    """Every jurisdiction, ordered by code."""
    return list(session.scalars(select(JurisdictionRow).order_by(JurisdictionRow.code)).all())


def list_departments(session: Session, jurisdiction: str | None = None) -> list[DepartmentRow]:
    """Departments ordered by code; only those of jurisdiction *code* ``jurisdiction`` when given."""
    stmt = select(DepartmentRow)
    if jurisdiction is not None:
        stmt = stmt.join(JurisdictionRow, JurisdictionRow.id == DepartmentRow.jurisdiction_id).where(
            JurisdictionRow.code == jurisdiction
        )
    return list(session.scalars(stmt.order_by(DepartmentRow.code)).all())


def counts(session: Session) -> dict[str, int]:
    """Row counts: ``jurisdictions``, ``departments``, ``systems``, ``catalogs``, ``events`` (all logs)."""
    tables: dict[str, type[Base]] = {
        "jurisdictions": JurisdictionRow,
        "departments": DepartmentRow,
        "systems": SystemRow,
        "catalogs": CatalogRow,
        "events": ChainEvent,
    }
    return {name: int(session.scalar(select(func.count()).select_from(t)) or 0) for name, t in tables.items()}


def cursor(session: Session, chain_id: int, address: str) -> Cursor | None:
    """The indexer's cursor of directory ``address`` (any case) on chain ``chain_id``, or None."""
    return session.get(Cursor, (chain_id, to_checksum_address(address)))


def dump_index(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every index table as tuples (columns in table order), sorted by primary key.

    Keyed by table name; used to prove that re-indexing from the chain reproduces the index.
    """
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in Base.metadata.sorted_tables:
        stmt = select(*table.columns).order_by(*table.primary_key.columns)
        out[table.name] = [tuple(r) for r in session.execute(stmt).all()]
    return out

