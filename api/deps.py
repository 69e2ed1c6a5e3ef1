"""Services the routes depend on, injected with ``Annotated`` dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.problems import read_only
from api.relay import Relay
from registry.directories import Directories, TierChain
from registry.tiers import ChildLag


@dataclass
class Services:
    """Everything a request may need: the service's ``directories`` (routing, clients, batchers, chains), the
    index, the relay front, ``indexer_error`` — the indexers' last unrecovered error (None while healthy) — and
    ``lags`` — each child directory's relay lag (empty without tiers) — and ``sync_rounds`` — tier-sync rounds
    completed."""

    directories: Directories
    sessions: sessionmaker[Session]
    relay: Relay
    indexer_error: Callable[[], str | None] = lambda: None
    lags: Callable[[], list[ChildLag]] = field(default=lambda: [])
    sync_rounds: Callable[[], int] = lambda: 0

    @property
    def chains(self) -> list[TierChain]:
        """The chains the service writes to and indexes, the city's first."""
        return sorted(self.directories.chains.values(), key=lambda c: c.name != "city")

    def pending(self) -> int:
        """Submissions queued in every directory's batcher, not yet in a transaction."""
        return sum(t.batcher.pending() for t in self.directories.targets())


async def get_services(request: Request) -> Services:
    """The app's :class:`Services` (set at app creation). A read-only replica (see
    :func:`api.app.create_read_only_app`) has none: routes that need the chains or the relay answer 503
    :func:`api.problems.read_only` instead. ``async``, as :func:`get_session`: a sync dependency costs every
    request a hop to the thread pool and back."""
    services: Services | None = request.app.state.services
    if services is None:
        raise read_only(request.method, request.url.path)
    return services


async def get_optional_services(request: Request) -> Services | None:
    """The app's :class:`Services`, or None on a read-only replica (for routes that answer either way)."""
    services: Services | None = request.app.state.services
    return services


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A read session on the index, closed after the request.

    ``async`` so that FastAPI opens and closes it on the event loop: a sync generator dependency runs its two
    halves in the thread pool, and those two thread hand-offs, with the route's own, cost more CPU than a point
    read of the index (1.47 against 0.62 ms a ``GET /catalogs/{code}/provenance`` measured through the ASGI app
    with the route ``async`` too). The session connects lazily, so a sync route still runs its SQL in the pool.
    Point reads by key (a record, its provenance or history, a department, a sharing request) are ``async``
    routes for the same reason; scans, lists and reports stay sync and run in the pool, off the event loop."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
OptionalServicesDep = Annotated[Services | None, Depends(get_optional_services)]
SessionDep = Annotated[Session, Depends(get_session)]
