"""registry.bulk: rows written with one DBAPI executemany read back as written."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, create_engine, select

from registry.bulk import _insert_rows


def test_insert_rows_writes_every_column_as_given() -> None:
    """Booleans, nulls and text (non-ASCII) land as Core's own insert would store them; a table of one column
    (whose parameters are 1-tuples, not the bare value) too."""
    metadata = MetaData()
    wide = Table("wide", metadata, Column("id", Integer, primary_key=True), Column("name", String(20)),
                 Column("active", Boolean), Column("note", String(20), nullable=True))
    narrow = Table("narrow", metadata, Column("code", String(20), primary_key=True))
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    rows = [{"id": 1, "name": "西城区", "active": True, "note": None},
            {"id": 2, "name": "b", "active": False, "note": "x"}]
    with engine.begin() as connection:
        _insert_rows(connection, wide, rows)
        _insert_rows(connection, narrow, [{"code": "301001/XC0001"}, {"code": "301001/XC0002"}])
        core = Table("wide_core", metadata, *(Column(c.name, c.type, primary_key=c.primary_key) for c in wide.c))
        core.create(connection)
        connection.execute(core.insert(), rows)  # what SQLAlchemy Core writes for the same rows
        got = connection.execute(select(wide).order_by(wide.c.id)).all()
        assert [tuple(r) for r in got] == [(1, "西城区", True, None), (2, "b", False, "x")]
        raw = "SELECT id, name, active, note FROM {} ORDER BY id"
        assert (connection.exec_driver_sql(raw.format("wide")).all()
                == connection.exec_driver_sql(raw.format("wide_core")).all())
        assert connection.execute(select(narrow.c.code).order_by(narrow.c.code)).scalars().all() == [
            "301001/XC0001", "301001/XC0002"]
