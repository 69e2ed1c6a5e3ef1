"""Services the routes depend on, injected with ``Annotated`` dependencies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.relay import Relay
from chain.directory import DirectoryClient


@dataclass
class Services:
    """Everything a request may need: the relaying directory client, the index, the relay front, and
    ``indexer_error`` — the indexer's last unrecovered error (None while it is healthy)."""

    client: DirectoryClient
    sessions: sessionmaker[Session]
    relay: Relay
    confirmations: int = 0
    indexer_error: Callable[[], str | None] = lambda: None


def get_services(request: Request) -> Services:
    """The app's :class:`Services` (set at app creation)."""
    services: Services = request.app.state.services
    return services


def get_session(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    """A read session on the index, closed after the request."""
    with services.sessions() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
SessionDep = Annotated[Session, Depends(get_session)]
