"""Read functions for the jurisdiction tree and department keys, shaped for the API (codes, not ids)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import DepartmentAccountRow, DepartmentRow, JurisdictionRow

_TIER_ORDER = {"city": 0, "district": 1, "street": 2}


def jurisdictions(session: Session) -> list[dict[str, Any]]:
    """Every jurisdiction as ``{code, name, tier, parent (code or None), tx_hash, block_number}``,
    parents before children (by tier, then code)."""
    rows = list(session.scalars(select(JurisdictionRow)))
    code_of = {r.id: r.code for r in rows}
    out = [
        {
            "code": r.code,
            "name": r.name,
            "tier": r.tier,
            "parent": code_of.get(r.parent_id) if r.parent_id else None,
            "tx_hash": r.tx_hash,
            "block_number": r.block_number,
        }
        for r in rows
    ]
    return sorted(out, key=lambda j: (_TIER_ORDER.get(j["tier"], 9), j["code"]))


def departments(session: Session, jurisdiction: str | None = None, code: str | None = None) -> list[dict[str, Any]]:
    """Departments as ``{code, name, jurisdiction (code), accounts (active keys), tx_hash, block_number}``,
    ordered by code; filtered by jurisdiction code and/or department code when given."""
    jur_code = {r.id: r.code for r in session.scalars(select(JurisdictionRow))}
    stmt = select(DepartmentRow).order_by(DepartmentRow.code)
    if code is not None:
        stmt = stmt.where(DepartmentRow.code == code)
    rows = list(session.scalars(stmt))
    keys: dict[str, list[str]] = {}
    stmt_keys = select(DepartmentAccountRow).where(DepartmentAccountRow.active.is_(True))
    if code is not None and rows:
        stmt_keys = stmt_keys.where(DepartmentAccountRow.department_id == rows[0].id)
    for k in session.scalars(stmt_keys.order_by(DepartmentAccountRow.account)):
        keys.setdefault(k.department_id, []).append(k.account)
    out = []
    for r in rows:
        jc = jur_code.get(r.jurisdiction_id, r.jurisdiction_id)
        if jurisdiction is not None and jc != jurisdiction:
            continue
        out.append(
            {
                "code": r.code,
                "name": r.name,
                "jurisdiction": jc,
                "accounts": keys.get(r.id, []),
                "tx_hash": r.tx_hash,
                "block_number": r.block_number,
            }
        )
    return out
