"""The FastAPI application of the directory chain service."""

from __future__ import annotations

from fastapi import FastAPI

from api import problems
from api.deps import Services
from api.routes import audit, catalogs, directory, health, metrics, sharing, systems


def create_app(services: Services, max_body_bytes: int = 256 * 1024) -> FastAPI:
    """Build the app around running ``services``; request bodies over ``max_body_bytes`` get 413."""
    app = FastAPI(
        title="Directory chain",
        summary="Government data resource catalogs, information systems and their provenance on an EVM chain",
        version="0.1.0",
    )
    app.state.services = services
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
