"""Data sharing: requests / grants and their status transitions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 (written by hand from registry/db.py; checked by tests/unit/test_store.py)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = 66
ADDRESS = 42


def upgrade() -> None:
    """Create ``sharing_requests`` and ``sharing_transitions`` (empty)."""
    op.create_table(
        "sharing_requests",
        sa.Column("id", sa.String(HASH), nullable=False),
        sa.Column("catalog_code", sa.String(64), nullable=False),
        sa.Column("catalog_hash", sa.String(HASH), nullable=False),
        sa.Column("catalog_version", sa.Integer(), nullable=False),
        sa.Column("requester_id", sa.String(HASH), nullable=False),
        sa.Column("requester_code", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.String(HASH), nullable=False),
        sa.Column("owner_code", sa.Text(), nullable=True),
        sa.Column("items_mask", sa.String(80), nullable=False),
        sa.Column("items", sa.Text(), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("granted_at", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("signer", sa.String(ADDRESS), nullable=False),
        sa.Column("nonce", sa.String(80), nullable=False),
        sa.Column("deadline", sa.String(80), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_requests")),
    )
    for column in ("catalog_code", "requester_code", "owner_code", "status"):
        op.create_index(op.f(f"ix_sharing_requests_{column}"), "sharing_requests", [column])
    op.create_table(
        "sharing_transitions",
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(HASH), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("signer", sa.String(ADDRESS), nullable=False),
        sa.Column("nonce", sa.String(80), nullable=False),
        sa.Column("deadline", sa.String(80), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", "log_index", name=op.f("pk_sharing_transitions")),
    )
    op.create_index(op.f("ix_sharing_transitions_request_id"), "sharing_transitions", ["request_id"])


def downgrade() -> None:
    """Drop the sharing tables."""
    op.drop_table("sharing_transitions")
    op.drop_table("sharing_requests")
