"""Alembic environment of the index database (run through :func:`registry.db.migrate`).

The database URL comes from ``config.attributes["url"]`` (set by :func:`registry.db.alembic_config`)
or the ``sqlalchemy.url`` option; an open connection may be handed in as
``config.attributes["connection"]``. SQLite gets batch mode so ALTERs work.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.pool import NullPool

from registry.db import Base, _is_memory_sqlite, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set config.attributes['url'] or sqlalchemy.url")
    return str(url)


def _configure(**kwargs: Any) -> None:
    context.configure(target_metadata=target_metadata, render_as_batch=True, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    """Emit the SQL of the migrations without a database (``alembic upgrade --sql``)."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the connection handed in, or on a new engine for the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = _url()
    engine = make_engine(url) if _is_memory_sqlite(url) else make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
