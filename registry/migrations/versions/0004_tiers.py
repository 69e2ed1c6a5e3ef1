"""Tiers: one index over many directories and chains.

Blocks are keyed by (chain id, number); events, versions and sharing rows record the chain and directory
they were recorded in; ``directories`` lists the jurisdictions' directories (from their factory's
``DirectoryCreated``) and ``relayed_records`` the records a parent holds as relayed from a child.

The index is derived from the chain, so the upgrade empties it and resets the cursors: the indexer rebuilds
every row from the chain (relay checkpoints and failures, which are operational state, are kept).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 (written by hand from registry/db.py; checked by tests/unit/test_store.py)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = 66
ADDRESS = 42

#: Derived tables emptied by the upgrade (children before the tables they refer to).
DERIVED = (
    "catalog_versions",
    "catalogs",
    "system_versions",
    "systems",
    "sharing_transitions",
    "sharing_requests",
    "department_accounts",
    "administrators",
    "departments",
    "jurisdictions",
    "cursors",
)


def upgrade() -> None:
    """Empty the derived index, re-key ``blocks`` by chain, add the chain/directory columns and the tier tables."""
    for table in DERIVED:
        op.execute(sa.text(f"DELETE FROM {table}"))
    op.drop_index(op.f("ix_chain_events_block_number"), table_name="chain_events")
    op.drop_index(op.f("ix_chain_events_event"), table_name="chain_events")
    op.drop_table("chain_events")
    op.drop_table("blocks")
    op.create_table(
        "blocks",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(HASH), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "number", name=op.f("pk_blocks")),
    )
    op.create_table(
        "chain_events",
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(HASH), nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(ADDRESS), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chain_id", "block_number"], ["blocks.chain_id", "blocks.number"],
            name=op.f("fk_chain_events_chain_id_blocks"),
        ),
        sa.PrimaryKeyConstraint("tx_hash", "log_index", name=op.f("pk_chain_events")),
    )
    op.create_index(op.f("ix_chain_events_block_number"), "chain_events", ["block_number"])
    op.create_index(op.f("ix_chain_events_event"), "chain_events", ["event"])
    sqlite = op.get_context().dialect.name == "sqlite"
    for table in ("catalog_versions", "system_versions", "sharing_requests", "sharing_transitions"):
        columns: list[sa.Column[Any]] = [
            sa.Column("chain_id", sa.BigInteger(), nullable=False),
            sa.Column("directory", sa.String(ADDRESS), nullable=False),
        ]
        if sqlite:  # SQLite cannot add a NOT NULL column without a default: copy the (empty) table
            with op.batch_alter_table(table, recreate="always") as batch:
                for column in columns:
                    batch.add_column(column)
        else:
            for column in columns:
                op.add_column(table, column)
    op.create_table(
        "directories",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(ADDRESS), nullable=False),
        sa.Column("home_id", sa.String(HASH), nullable=False),
        sa.Column("factory", sa.String(ADDRESS), nullable=False),
        sa.Column("creator", sa.String(ADDRESS), nullable=False),
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "address", name=op.f("pk_directories")),
    )
    op.create_index(op.f("ix_directories_home_id"), "directories", ["home_id"])
    op.create_table(
        "relayed_records",
        sa.Column("tx_hash", sa.String(HASH), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("directory", sa.String(ADDRESS), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("relayed_log_index", sa.Integer(), nullable=False),
        sa.Column("origin_key", sa.String(HASH), nullable=False),
        sa.Column("origin_chain_id", sa.BigInteger(), nullable=False),
        sa.Column("origin_directory", sa.String(ADDRESS), nullable=False),
        sa.Column("origin_tx_hash", sa.String(HASH), nullable=False),
        sa.Column("origin_block_number", sa.BigInteger(), nullable=False),
        sa.Column("origin_block_hash", sa.String(HASH), nullable=False),
        sa.Column("origin_log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", "log_index", name=op.f("pk_relayed_records")),
    )
    op.create_index(op.f("ix_relayed_records_directory"), "relayed_records", ["directory"])
    op.create_index(op.f("ix_relayed_records_subject"), "relayed_records", ["subject"])
    op.create_index(op.f("ix_relayed_records_origin_key"), "relayed_records", ["origin_key"])


def downgrade() -> None:
    """Back to one directory per index: empty the derived index (re-index from the chain after), drop the tier
    tables and the chain/directory columns, key ``blocks`` by number again."""
    for table in DERIVED:
        op.execute(sa.text(f"DELETE FROM {table}"))
    op.drop_index(op.f("ix_relayed_records_origin_key"), table_name="relayed_records")
    op.drop_index(op.f("ix_relayed_records_subject"), table_name="relayed_records")
    op.drop_index(op.f("ix_relayed_records_directory"), table_name="relayed_records")
    op.drop_table("relayed_records")
    op.drop_index(op.f("ix_directories_home_id"), table_name="directories")
    op.drop_table("directories")
    for table in ("catalog_versions", "system_versions", "sharing_requests", "sharing_transitions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("directory")
            batch.drop_column("chain_id")
    op.drop_index(op.f("ix_chain_events_event"), table_name="chain_events")
    op.drop_index(op.f("ix_chain_events_block_number"), table_name="chain_events")
    op.drop_table("chain_events")
    op.drop_table("blocks")
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
