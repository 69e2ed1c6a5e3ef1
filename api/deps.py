"""Services the routes depend on, injected with ``Annotated`` dependencies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def get_services(request: Request) -> Services:
    """The app's :class:`Services` (set at app creation). A read-only replica (see
    :func:`api.app.create_read_only_app`) has none: routes that need the chains or the relay answer 503
    :func:`api.problems.read_only` instead."""
    services: Services | None = request.app.state.services
    if services is None:
        raise read_only(request.method, request.url.path)
    return services


def get_optional_services(request: Request) -> Services | None:
    """The app's :class:`Services`, or None on a read-only replica (for routes that answer either way)."""
    services: Services | None = request.app.state.services
    return services


def get_session(request: Request) -> Iterator[Session]:
    """A read session on the index, closed after the request."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
OptionalServicesDep = Annotated[Services | None, Depends(get_optional_services)]
SessionDep = Annotated[Session, Depends(get_session)]
