"""A chain's :class:`registry.indexer.Indexer` in a process of its own.

The service is one Python process: its API, batchers, tier sync and indexers share one GIL, so under load it uses one
core while the machine has more. The indexer needs nothing of the rest but the chain's JSON-RPC endpoint and the
index's database — it is the only writer of the index's rows, and SQLite's ``BEGIN IMMEDIATE`` with a busy timeout
(:func:`registry.db.session_factory`) already orders its transactions against the tier sync's between processes — so
it runs in a child process (``spawn``: nothing of the parent's threads or connections is inherited) and the parent
keeps only what its health and the benchmark ask: whether it runs, the error it stopped with, and how many ranges it
committed. A database only a process can see (in-memory SQLite) cannot be shared; :func:`shareable` says which.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from sqlalchemy.engine import make_url

from chain.logs import LogFetcher
from chain.rpc import Rpc
from registry.db import make_engine, session_factory
from registry.indexer import Indexer, indexer_codec

__all__ = ["IndexerConfig", "IndexerProcess", "shareable"]

log = logging.getLogger(__name__)

#: Bytes of the error message a stopped indexer process leaves for its parent (longer ones are cut).
ERROR_BYTES = 2048


@dataclass(frozen=True)
class IndexerConfig:
    """What an indexer process needs (picklable): the chain's ``rpc_url`` and EIP-155 ``chain_id``, the ``factory``
    it follows for ``creators`` from ``start_block``, ``confirmations`` (blocks it stays behind head) and the index's
    ``database_url``."""

    rpc_url: str
    chain_id: int
    factory: str
    start_block: int
    confirmations: int
    creators: tuple[str, ...]
    database_url: str

    def indexer(self) -> Indexer:
        """A new :class:`Indexer` of this configuration, on its own RPC client and database engine."""
        codec = indexer_codec()
        topics = ["0x" + topic.hex() for topic in codec.events]
        fetcher = LogFetcher.from_rpc(Rpc(self.rpc_url), self.factory, topics=topics)
        writer = session_factory(make_engine(self.database_url), writer=True)
        return Indexer(fetcher, codec, writer, self.chain_id, self.factory, confirmations=self.confirmations,
                       start_block=self.start_block, creators=self.creators)


def shareable(database_url: str) -> bool:
    """Whether another process can open the index at ``database_url`` (all but in-memory SQLite)."""
    url = make_url(database_url)
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


class _Stop:
    """The child's stop signal: its parent's ``event`` set, or the parent gone (the child was orphaned: a parent
    killed outright runs no clean-up)."""

    def __init__(self, event: Any, parent: int) -> None:
        self.event = event
        self.parent = parent

    def is_set(self) -> bool:
        return bool(self.event.is_set()) or os.getppid() != self.parent

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self.event.wait(timeout)) or self.is_set()


def _main(config: IndexerConfig, stop: Any, parent: int, ranges: Synchronized[int], error: Any) -> None:
    """The child process: run ``config``'s indexer (:meth:`Indexer.run`) until ``stop`` is set or the ``parent``
    process is gone, counting its committed ranges in ``ranges``; an error that stops it (a reorganisation) is left
    in ``error``, then re-raised. Ctrl-C is its parent's to handle (which then sets ``stop``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        indexer = config.indexer()

        def committed(_indexer: Indexer) -> None:
            ranges.value += 1

        indexer.on_commit = committed
        indexer.run(_Stop(stop, parent))  # type: ignore[arg-type]  # is_set() and wait(), as a threading.Event
    except BaseException as exc:
        error.value = f"{type(exc).__name__}: {exc}".encode()[: ERROR_BYTES - 1]
        raise


class IndexerProcess:
    """``config``'s indexer in a child process (see the module). :meth:`start` it once; :meth:`stop` sets its stop
    event and waits ``timeout_s`` seconds for it to finish its range, then terminates it."""

    def __init__(self, name: str, config: IndexerConfig) -> None:
        context = multiprocessing.get_context("spawn")
        self.name = name
        self.config = config
        self._stop = context.Event()
        self._ranges: Synchronized[int] = context.Value("q", 0)
        self._error: Any = context.Array("c", ERROR_BYTES)  # a SynchronizedString (its .value is bytes)
        self._process = context.Process(target=_main, name=f"indexer-{name}", daemon=True,
                                        args=(config, self._stop, os.getpid(), self._ranges, self._error))

    @property
    def pid(self) -> int | None:
        """The child's process id (None before :meth:`start`)."""
        return self._process.pid

    @property
    def ranges_indexed(self) -> int:
        """Ranges the child has committed (each one database transaction)."""
        return int(self._ranges.value)

    @property
    def last_error(self) -> str | None:
        """``Type: message`` of the error the child stopped with; None while it runs or if it stopped without one."""
        raw = bytes(self._error.value)
        return raw.decode(errors="replace") if raw else None

    def start(self) -> None:
        """Start the child process."""
        self._process.start()

    def is_alive(self) -> bool:
        """Whether the child runs."""
        return self._process.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the child to stop, wait up to ``timeout_s`` seconds, then terminate it if it still runs."""
        self._stop.set()
        if self._process.pid is None:
            return
        self._process.join(timeout=timeout_s)
        if self._process.is_alive():
            log.warning("indexer process %s did not stop in %.0f s: terminating it", self.name, timeout_s)
            self._process.terminate()
            self._process.join(timeout=timeout_s)
