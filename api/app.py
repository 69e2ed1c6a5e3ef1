"""The FastAPI application of the directory chain service, and its read-only replica."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from api import problems
from api.deps import Services
from api.routes import audit, catalogs, directory, health, metrics, sharing, systems


def _app(services: Services | None, sessions: sessionmaker[Session], max_body_bytes: int, read_only: bool) -> FastAPI:
    app = FastAPI(
        title="Directory chain" + (" (read-only replica)" if read_only else ""),
        summary="Government data resource catalogs, information systems and their provenance on an EVM chain",
        version="0.1.0",
        # FastAPI's native OpenTelemetry asks the global tracer, meter and logger providers (reading os.environ)
        # on every request to find out whether any is configured: 3.2 % of the service's CPU while registering
        # catalogs (py-spy). The service exports its own metrics (GET /metrics, Prometheus) and no traces.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.sessions = sessions
    app.state.read_only = read_only
    problems.install(app)
    app.include_router(health.router)
    app.include_router(audit.router)
    app.include_router(metrics.router)
    app.include_router(directory.router)
    app.include_router(systems.router)
    app.include_router(sharing.router)  # before catalogs: its GET /catalogs/{code:path} is greedy
    app.include_router(catalogs.router)
    app.add_middleware(problems.BodyLimit, max_bytes=max_body_bytes)
    return app


def create_app(services: Services, max_body_bytes: int = 256 * 1024) -> FastAPI:
    """Build the app around running ``services``; request bodies over ``max_body_bytes`` get 413."""
    return _app(services, services.sessions, max_body_bytes, read_only=False)


def create_read_only_app(sessions: sessionmaker[Session], max_body_bytes: int = 256 * 1024) -> FastAPI:
    """The same routes over the index alone (``sessions``), with no chain, relay or indexer: every read of the
    index (catalogs, systems, provenance, audit history / custody / changes / access, jurisdictions, departments,
    sharing requests, grants, KPIs) answers as the service's API does; what needs a chain or the relay
    (submissions, ``/eip712``, ``/submissions/…``, ``/audit/verify``, ``/audit/drift``, ``/metrics``) answers 503
    ``read-only-replica`` problem+json; ``/health`` reports the index alone (``read_only`` true)."""
    return _app(None, sessions, max_body_bytes, read_only=True)


def read_only_app() -> FastAPI:
    """App factory of a read-only replica worker (``uvicorn api.app:read_only_app --factory``): the index at
    ``DIRCHAIN_DATABASE_URL``, opened by each worker process; the schema is not migrated (a replica never writes)."""
    from dirchain.settings import settings
    from registry.db import make_engine, session_factory

    s = settings()
    return create_read_only_app(session_factory(make_engine(s.database_url)), s.max_body_bytes)
