"""Indexes of the audit queries at scale (a million indexed events and more).

* ``relayed_records (subject, event)``: a record's relayed copies (provenance, custody, history) — the lookup
  by subject alone read every copy of every kind of event about that subject;
* ``chain_events (chain_id, address, block_number)``: what a directory recorded in a time window
  (``/audit/changes``) without scanning every event;
* ``catalog_versions`` / ``system_versions (chain_id, directory)``: the records a directory holds (the ``tier``
  filter of the catalog and system lists).

Only indexes: no row changes, so neither direction touches the derived index's content.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 (written by hand from registry/db.py; checked by tests/unit/test_audit_indexes.py)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, columns) of every index this revision adds, in creation order.
INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("relayed_records", ("subject", "event")),
    ("chain_events", ("chain_id", "address", "block_number")),
    ("catalog_versions", ("chain_id", "directory")),
    ("system_versions", ("chain_id", "directory")),
)


def _name(table: str, columns: tuple[str, ...]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    """Create the audit indexes."""
    for table, columns in INDEXES:
        op.create_index(op.f(_name(table, columns)), table, list(columns))


def downgrade() -> None:
    """Drop the audit indexes (back to 0004's schema)."""
    for table, columns in reversed(INDEXES):
        op.drop_index(op.f(_name(table, columns)), table_name=table)
