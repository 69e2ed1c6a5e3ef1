"""Initial schema of the derived index: raw events, blocks, cursors, directory and record tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 (written by hand from registry/db.py; checked by tests/unit/test_store.py)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = 66
ADDRESS = 42


def _provenance() -> list[sa.Column[Any]]:
    """signer, tx_hash, log_index, block_number: where a directory row comes from."""
    return [
        sa.Column("signer", sa.String(ADDRESS), nullable=False),
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
    ]


def _version_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(HASH), nullable=True),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("signer", sa.String(ADDRESS), nullable=False),
        sa.Column("nonce", sa.String(80), nullable=False),
        sa.Column("deadline", sa.String(80), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(HASH), nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
    ]


def _record_head() -> list[sa.Column[Any]]:
    """Columns shared by the current-state tables ``catalogs`` and ``systems``."""
    return [
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(HASH), nullable=False),
        sa.Column("jurisdiction_id", sa.String(HASH), nullable=False),
        sa.Column("jurisdiction_code", sa.Text(), nullable=True),
        sa.Column("tier", sa.String(16), nullable=True),
        sa.Column("department_id", sa.String(HASH), nullable=False),
        sa.Column("department_code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
    ]


def _record_tail() -> list[sa.Column[Any]]:
    return [
        sa.Column("record_version", sa.Integer(), nullable=True),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=True),
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    """Create every table of the index (empty)."""
    op.create_table(
        "blocks",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(HASH), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_blocks")),
    )
    op.create_table(
        "chain_events",
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(HASH), nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(ADDRESS), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["block_number"], ["blocks.number"], name=op.f("fk_chain_events_block_number_blocks")),
        sa.PrimaryKeyConstraint("tx_hash", "log_index", name=op.f("pk_chain_events")),
    )
    op.create_index(op.f("ix_chain_events_block_number"), "chain_events", ["block_number"])
    op.create_index(op.f("ix_chain_events_event"), "chain_events", ["event"])
    op.create_table(
        "cursors",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(ADDRESS), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(HASH), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "address", name=op.f("pk_cursors")),
    )

    op.create_table(
        "jurisdictions",
        sa.Column("id", sa.String(HASH), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(HASH), nullable=True),
        *_provenance(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jurisdictions")),
        sa.UniqueConstraint("code", name=op.f("uq_jurisdictions_code")),
    )
    op.create_index(op.f("ix_jurisdictions_parent_id"), "jurisdictions", ["parent_id"])
    op.create_table(
        "departments",
        sa.Column("id", sa.String(HASH), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("jurisdiction_id", sa.String(HASH), nullable=False),
        *_provenance(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_departments")),
        sa.UniqueConstraint("code", name=op.f("uq_departments_code")),
    )
    op.create_index(op.f("ix_departments_jurisdiction_id"), "departments", ["jurisdiction_id"])
    op.create_table(
        "administrators",
        sa.Column("jurisdiction_id", sa.String(HASH), nullable=False),
        sa.Column("account", sa.String(ADDRESS), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_provenance(),
        sa.PrimaryKeyConstraint("jurisdiction_id", "account", name=op.f("pk_administrators")),
    )
    op.create_table(
        "department_accounts",
        sa.Column("account", sa.String(ADDRESS), nullable=False),
        sa.Column("department_id", sa.String(HASH), nullable=False),
        sa.Column("jurisdiction_id", sa.String(HASH), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_provenance(),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_department_accounts")),
    )
    op.create_index(op.f("ix_department_accounts_department_id"), "department_accounts", ["department_id"])

    op.create_table(
        "catalogs",
        *_record_head(),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("share_type", sa.String(32), nullable=True),
        sa.Column("open_type", sa.String(32), nullable=True),
        sa.Column("update_frequency", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("latest_digest", sa.String(HASH), nullable=True),
        sa.Column("source_system", sa.String(64), nullable=True),
        *_record_tail(),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_catalogs")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_catalogs_code_hash")),
    )
    for column in ("jurisdiction_code", "tier", "department_code", "share_type", "open_type", "status"):
        op.create_index(op.f(f"ix_catalogs_{column}"), "catalogs", [column])
    op.create_table(
        "catalog_versions",
        *_version_columns(),
        sa.ForeignKeyConstraint(["code"], ["catalogs.code"], name=op.f("fk_catalog_versions_code_catalogs")),
        sa.PrimaryKeyConstraint("code", "version", name=op.f("pk_catalog_versions")),
    )

    op.create_table(
        "systems",
        *_record_head(),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("latest_digest", sa.String(HASH), nullable=True),
        *_record_tail(),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_systems")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_systems_code_hash")),
    )
    for column in ("jurisdiction_code", "tier", "department_code", "status", "lifecycle"):
        op.create_index(op.f(f"ix_systems_{column}"), "systems", [column])
    op.create_table(
        "system_versions",
        *_version_columns(),
        sa.ForeignKeyConstraint(["code"], ["systems.code"], name=op.f("fk_system_versions_code_systems")),
        sa.PrimaryKeyConstraint("code", "version", name=op.f("pk_system_versions")),
    )


def downgrade() -> None:
    """Drop every table of the index (children first)."""
    for table in (
        "system_versions",
        "systems",
        "catalog_versions",
        "catalogs",
        "department_accounts",
        "administrators",
        "departments",
        "jurisdictions",
        "cursors",
        "chain_events",
        "blocks",
    ):
        op.drop_table(table)
