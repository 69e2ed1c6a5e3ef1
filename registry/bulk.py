"""Rows of one batch of index writes, held as plain dicts and written with bulk Core statements.

:class:`RowBatch` is the store's working set while it applies a block range: the rows the range can touch are
read up front in a few ``IN`` queries, changed in memory, and written at the end with one ``INSERT`` executemany
per table for the new rows and one ``UPDATE`` executemany per table for the changed ones — no ORM unit of work,
no per-row flush. It goes through the session's connection, so it joins the caller's transaction and never
commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session

from registry.db import Base

#: A row: column name → value (every column of its table present).
Row = dict[str, Any]

_CHUNK = 500

#: Prebuilt ``SELECT … WHERE … IN`` statements by (model, columns, key columns): see :meth:`RowBatch._select_in`.
_SELECTS: dict[tuple[type[Base], tuple[str, ...], tuple[str, ...]], Any] = {}
#: Compiled ``INSERT`` of every column by (table, dialect name): see :func:`_insert_rows`.
_INSERTS: dict[tuple[Table, str], tuple[str, Any]] = {}


def _insert_rows(connection: Connection, table: Table, rows: list[Row]) -> None:
    """``INSERT`` ``rows`` (each with every column of ``table``) into ``table`` with one DBAPI ``executemany``.

    The statement is SQLAlchemy's ``insert(table)`` compiled once per dialect and sent with
    :meth:`~sqlalchemy.engine.Connection.exec_driver_sql`, the parameters built by one C ``itemgetter`` per row
    (a tuple in the compiled order for positional paramstyles, the dict itself otherwise): Core's own
    executemany spends as long turning each row into parameters as SQLite spends writing it. Valid because the
    schema's column types (``String``, ``Text``, ``Integer``, ``BigInteger``, ``Boolean``) need no conversion
    the DBAPI drivers do not do themselves, and every key is natural (no server-side default to leave out).
    """
    key = (table, connection.dialect.name)
    compiled = _INSERTS.get(key)
    if compiled is None:
        statement = insert(table).compile(dialect=connection.dialect)
        order = statement.positiontup if statement.positional else None
        if order is None:
            compiled = (statement.string, None)
        elif len(order) == 1:  # itemgetter of one key gives the value itself, not a 1-tuple
            compiled = (statement.string, lambda row, name=order[0]: (row[name],))
        else:
            compiled = (statement.string, itemgetter(*order))
        _INSERTS[key] = compiled
    sql, values = compiled
    connection.exec_driver_sql(sql, [values(row) for row in rows] if values is not None else rows)


def table_of(model: type[Base]) -> Table:
    """The :class:`~sqlalchemy.Table` of a model."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class RowBatch:
    """The rows of a batch by model and primary key (a value, or a tuple for a composite key).

    :meth:`preload` reads existing rows in bulk; :meth:`get` answers from what was read (None = no such row),
    falling back to one query for a key the preload did not foresee. :meth:`add` registers a new row,
    :meth:`changed` marks a row read from the database as modified (rows are dicts, changed in place);
    :meth:`write` sends it all to the database.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._found: dict[type[Base], dict[Any, Row | None]] = {}
        self._new: dict[type[Base], dict[Any, Row]] = {}
        self._dirty: dict[type[Base], dict[Any, Row]] = {}
        self._meta: dict[type[Base], tuple[Table, list[str], Row]] = {}

    def _info(self, model: type[Base]) -> tuple[Table, list[str], Row]:
        """(table, primary-key column names, row of nulls) of ``model``."""
        info = self._meta.get(model)
        if info is None:
            table = table_of(model)
            info = (table, [c.name for c in table.primary_key.columns], dict.fromkeys(table.columns.keys()))
            self._meta[model] = info
        return info

    def key_of(self, model: type[Base], row: Row) -> Any:
        """Primary key of ``row`` (a value, or a tuple for a composite key)."""
        pk = self._info(model)[1]
        return row[pk[0]] if len(pk) == 1 else tuple(row[name] for name in pk)

    # ------------------------------------------------------------------ reading

    def _select_in(self, model: type[Base], columns: tuple[str, ...], by: tuple[str, ...]) -> Any:
        """``SELECT columns FROM model's table WHERE (by) IN :keys`` (an expanding parameter), built once per class
        and shape: a block range's preload runs a few of these, and under automine a load's ranges are small,
        so building and cache-keying a new statement each time cost about as much as running it."""
        key = (model, columns, by)
        stmt = _SELECTS.get(key)
        if stmt is None:
            table = self._info(model)[0]
            target = table.c[by[0]] if len(by) == 1 else tuple_(*(table.c[name] for name in by))
            stmt = select(*(table.c[name] for name in columns)).where(target.in_(bindparam("keys", expanding=True)))
            _SELECTS[key] = stmt
        return stmt

    def _read_in(self, model: type[Base], columns: tuple[str, ...], by: tuple[str, ...], values: list[Any]) -> None:
        """Read the rows of ``model`` whose ``by`` columns are in ``values`` (a chunk per query) into what is known."""
        found = self._found.setdefault(model, {})
        stmt = self._select_in(model, columns, by)
        connection = self.session.connection()
        for start in range(0, len(values), _CHUNK):
            for values_row in connection.execute(stmt, {"keys": values[start : start + _CHUNK]}):
                row = dict(zip(columns, values_row, strict=True))
                found[self.key_of(model, row)] = row

    def preload(self, model: type[Base], keys: Iterable[Any], *, columns: Iterable[str] | None = None) -> None:
        """Read the rows of ``model`` with primary keys ``keys`` (those not already known), a chunk per query.

        With ``columns``, reads only those columns (for rows only tested for existence, never changed)."""
        table, pk, _ = self._info(model)
        found = self._found.setdefault(model, {})
        wanted = sorted(key for key in set(keys) if key not in found)
        for key in wanted:
            found[key] = None
        if wanted:
            names = tuple(columns) if columns is not None else tuple(table.columns.keys())
            self._read_in(model, names, tuple(pk), wanted)

    def preload_where(self, model: type[Base], column: str, values: Iterable[Any], *, columns: Iterable[str]) -> None:
        """Read every row of ``model`` whose ``column`` is one of ``values`` (only ``columns``, which must include
        the primary key) — e.g. all events of some transactions, by the leading column of their key."""
        self._found.setdefault(model, {})
        wanted = sorted(set(values))
        if wanted:
            self._read_in(model, tuple(columns), (column,), wanted)

    def known(self, model: type[Base], keys: Iterable[Any]) -> None:
        """Record that no row of ``model`` with these keys exists, unless one was read (after a
        :meth:`preload_where` that covered them)."""
        found = self._found.setdefault(model, {})
        for key in keys:
            found.setdefault(key, None)

    def get(self, model: type[Base], key: Any) -> Row | None:
        """The row of ``model`` with primary key ``key`` as the batch sees it, or None."""
        found = self._found.setdefault(model, {})
        if key in found:
            return found[key]
        table, pk, _ = self._info(model)
        values = key if len(pk) > 1 else (key,)
        where = [table.c[name] == value for name, value in zip(pk, values, strict=True)]
        row = self.session.execute(select(table).where(*where)).mappings().first()
        found[key] = None if row is None else dict(row)
        return found[key]

    # ------------------------------------------------------------------ writing

    def add(self, model: type[Base], values: Row) -> Row:
        """Register a new row of ``model`` (columns not in ``values`` are null) and return it."""
        row = {**self._info(model)[2], **values}
        key = self.key_of(model, row)
        self._found.setdefault(model, {})[key] = row
        self._new.setdefault(model, {})[key] = row
        return row

    def changed(self, model: type[Base], row: Row) -> None:
        """Mark ``row`` (returned by :meth:`get`) as modified; a row added in this batch needs no mark."""
        key = self.key_of(model, row)
        if key not in self._new.get(model, {}):
            self._dirty.setdefault(model, {})[key] = row

    def written_models(self) -> set[type[Base]]:
        """Models with rows inserted or updated by :meth:`write`."""
        return {m for m, rows in self._new.items() if rows} | {m for m, rows in self._dirty.items() if rows}

    def write(self) -> None:
        """INSERT the new rows (parents first, in the schema's dependency order) and UPDATE the changed ones,
        one executemany per table and statement."""
        if not self.written_models():
            return
        connection = self.session.connection()
        order = {table: n for n, table in enumerate(Base.metadata.sorted_tables)}
        for model in sorted(self._new, key=lambda m: order[table_of(m)]):
            rows = list(self._new[model].values())
            if rows:
                _insert_rows(connection, table_of(model), rows)
        for model, dirty in self._dirty.items():
            if not dirty:
                continue
            table, pk, blank = self._info(model)
            stmt = (
                update(table)
                .where(*[table.c[name] == bindparam(f"k_{name}") for name in pk])
                .values({name: bindparam(f"v_{name}") for name in blank if name not in pk})
            )
            params = [
                {**{f"k_{name}": row[name] for name in pk}, **{f"v_{n}": row[n] for n in blank if n not in pk}}
                for row in dirty.values()
            ]
            connection.execute(stmt, params)
