"""Migration 0005 (the audit queries' indexes): up and down, the models agree, and SQLite uses them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from registry.db import Base, alembic_config, make_engine, migrate

NEW = {
    "ix_relayed_records_subject_event",
    "ix_chain_events_chain_id_address_block_number",
    "ix_catalog_versions_chain_id_directory",
    "ix_system_versions_chain_id_directory",
}


def _indexes(url: str) -> set[str]:
    eng = make_engine(url)
    with eng.connect() as conn:
        names = {row[0] for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))}
    eng.dispose()
    return names


def test_audit_indexes_go_down_to_0004_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    migrate(url)
    assert _indexes(url) >= NEW
    command.downgrade(alembic_config(url), "0004")
    assert not NEW & _indexes(url)
    assert "ix_relayed_records_subject" in _indexes(url)  # 0004's own indexes stay
    migrate(url)
    assert _indexes(url) >= NEW
    eng = make_engine(url)
    with eng.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    eng.dispose()


def test_provenance_and_changes_queries_use_the_indexes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    migrate(url)
    eng = make_engine(url)
    with eng.connect() as conn:
        def plan(sql: str) -> str:
            return " | ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))

        copies = plan("SELECT * FROM relayed_records WHERE subject = 'x' AND event IN ('CatalogVersionRecorded', "
                      "'CatalogRetired')")
        assert "ix_relayed_records_subject_event" in copies, copies
        window = plan("SELECT * FROM chain_events WHERE chain_id = 1 AND address = '0x' AND block_number > 5")
        assert "ix_chain_events_chain_id_address_block_number" in window, window
    eng.dispose()
