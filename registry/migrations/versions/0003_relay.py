"""Tier relay: per (child, parent) checkpoints and the relay items the parent refused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 (written by hand from registry/db.py; checked by tests/unit/test_store.py)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = 66
ADDRESS = 42


def _pair() -> list[sa.Column[Any]]:
    """The (child, parent) directory pair a relay job serves."""
    return [
        sa.Column("child_chain_id", sa.BigInteger(), nullable=False),
        sa.Column("child_directory", sa.String(ADDRESS), nullable=False),
        sa.Column("parent_chain_id", sa.BigInteger(), nullable=False),
        sa.Column("parent_directory", sa.String(ADDRESS), nullable=False),
    ]


PAIR = ("child_chain_id", "child_directory", "parent_chain_id", "parent_directory")


def upgrade() -> None:
    """Create ``relay_checkpoints`` and ``relay_failures`` (empty)."""
    op.create_table(
        "relay_checkpoints",
        *_pair(),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(HASH), nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*PAIR, name=op.f("pk_relay_checkpoints")),
    )
    op.create_table(
        "relay_failures",
        *_pair(),
        sa.Column("origin_key", sa.String(HASH), nullable=False),
        sa.Column("origin_chain_id", sa.BigInteger(), nullable=False),
        sa.Column("origin_directory", sa.String(ADDRESS), nullable=False),
        sa.Column("origin_tx_hash", sa.String(HASH), nullable=False),
        sa.Column("origin_block_number", sa.BigInteger(), nullable=False),
        sa.Column("origin_block_hash", sa.String(HASH), nullable=False),
        sa.Column("origin_log_index", sa.Integer(), nullable=False),
        sa.Column("via_tx_hash", sa.String(HASH), nullable=True),
        sa.Column("via_log_index", sa.Integer(), nullable=True),
        sa.Column("child_block", sa.BigInteger(), nullable=False),
        sa.Column("child_log_index", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("call", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*PAIR, "origin_key", name=op.f("pk_relay_failures")),
    )


def downgrade() -> None:
    """Drop the relay tables."""
    op.drop_table("relay_failures")
    op.drop_table("relay_checkpoints")
