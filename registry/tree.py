"""Read functions for the jurisdiction tree and department keys, shaped for the API (codes, not ids)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from registry.db import DepartmentAccountRow, DepartmentRow, JurisdictionRow

_TIER_ORDER = {"city": 0, "district": 1, "street": 2}


def _jurisdiction_dict(row: JurisdictionRow, parent: str | None) -> dict[str, Any]:
    return {"code": row.code, "name": row.name, "tier": row.tier, "parent": parent, "tx_hash": row.tx_hash,
            "block_number": row.block_number}


def jurisdictions(session: Session) -> list[dict[str, Any]]:
    """Every jurisdiction as ``{code, name, tier, parent (code or None), tx_hash, block_number}``,
    parents before children (by tier, then code)."""
    rows = list(session.scalars(select(JurisdictionRow)))
    code_of = {r.id: r.code for r in rows}
    out = [_jurisdiction_dict(r, code_of.get(r.parent_id) if r.parent_id else None) for r in rows]
    return sorted(out, key=lambda j: (_TIER_ORDER.get(j["tier"], 9), j["code"]))


def jurisdiction(session: Session, code: str) -> dict[str, Any] | None:
    """The jurisdiction ``code`` shaped as in :func:`jurisdictions` (None if not indexed): one indexed point read
    with its parent's code, not a scan of the tree (an API point read)."""
    parent = aliased(JurisdictionRow)
    found = session.execute(
        select(JurisdictionRow, parent.code).outerjoin(parent, parent.id == JurisdictionRow.parent_id)
        .where(JurisdictionRow.code == code)
    ).first()
    return None if found is None else _jurisdiction_dict(found[0], found[1])


def departments(session: Session, jurisdiction: str | None = None, code: str | None = None) -> list[dict[str, Any]]:
    """Departments as ``{code, name, jurisdiction (code), accounts (active keys), tx_hash, block_number}``,
    ordered by code; filtered by jurisdiction code and/or department code when given. A department whose
    jurisdiction is not indexed shows its jurisdiction id. Filtered reads join the jurisdiction and read the keys of
    the departments found only: a point read by ``code`` touches one department, not the tree."""
    jur_code = func.coalesce(JurisdictionRow.code, DepartmentRow.jurisdiction_id)
    stmt = (
        select(DepartmentRow, jur_code)
        .outerjoin(JurisdictionRow, JurisdictionRow.id == DepartmentRow.jurisdiction_id)
        .order_by(DepartmentRow.code)
    )
    if code is not None:
        stmt = stmt.where(DepartmentRow.code == code)
    if jurisdiction is not None:
        stmt = stmt.where(jur_code == jurisdiction)
    rows = [(r, str(jc)) for r, jc in session.execute(stmt)]
    stmt_keys = select(DepartmentAccountRow).where(DepartmentAccountRow.active.is_(True))
    if code is not None or jurisdiction is not None:
        stmt_keys = stmt_keys.where(DepartmentAccountRow.department_id.in_([r.id for r, _ in rows]))
    keys: dict[str, list[str]] = {}
    for k in session.scalars(stmt_keys.order_by(DepartmentAccountRow.account)):
        keys.setdefault(k.department_id, []).append(k.account)
    return [
        {"code": r.code, "name": r.name, "jurisdiction": jc, "accounts": keys.get(r.id, []), "tx_hash": r.tx_hash,
         "block_number": r.block_number}
        for r, jc in rows
    ]
