"""Wiring of the running service: chain (embedded anvil or ``DIRCHAIN_RPC_URL``), contracts, index,
indexer thread, relay, expiry job (:mod:`registry.expiry`), API. ``dirchain up`` runs :class:`Service`
in the foreground."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from eth_utils import to_checksum_address
from sqlalchemy.orm import Session, sessionmaker

from api.deps import Services
from api.relay import Relay
from chain.artifacts import artifact_path, compile_contracts
from chain.batcher import Batcher
from chain.deploy import Deployment, load_or_deploy
from chain.directory import DirectoryClient
from chain.journal import FileJournal
from chain.logs import LogFetcher
from chain.node import AnvilNode
from chain.rpc import Rpc
from chain.sender import TxSender
from dirchain.settings import Settings
from registry.db import make_engine, migrate, session_factory
from registry.expiry import ExpiryJob, latest_block_timestamp
from registry.indexer import Indexer
from registry.keystore import Keystore

log = logging.getLogger(__name__)

#: Balance the embedded chain gives the relayer (wei): anvil dev tooling, not used on real networks.
DEV_FUNDS_WEI = 10**24


@dataclass
class Service:
    """A running directory service; build with :func:`start_service`, end with :meth:`stop`."""

    settings: Settings
    rpc: Rpc
    client: DirectoryClient
    deployment: Deployment
    deployed_now: bool
    sessions: sessionmaker[Session]
    indexer: Indexer
    batcher: Batcher
    node: AnvilNode | None = None
    expiry: ExpiryJob | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _indexer_thread: threading.Thread | None = None
    _expiry_thread: threading.Thread | None = None

    def services(self) -> Services:
        """The dependencies the API routes use."""
        return Services(
            client=self.client,
            sessions=self.sessions,
            relay=Relay(self.client, self.batcher),
            confirmations=self.settings.confirmations,
            indexer_error=self._indexer_error,
        )

    def _indexer_error(self) -> str | None:
        thread = self._indexer_thread
        if thread is not None and not thread.is_alive() and not self._stop.is_set():
            return f"indexer stopped: {self.indexer.last_error}"
        return None

    def stop(self) -> None:
        """Stop the expiry job, the indexer and the batcher, then the embedded node (which saves its state)."""
        self._stop.set()
        if self._expiry_thread is not None:
            self._expiry_thread.join(timeout=10)
        self.batcher.stop()
        if self._indexer_thread is not None:
            self._indexer_thread.join(timeout=10)
        if self.node is not None:
            self.node.stop()
        self.rpc.close()


def start_service(settings: Settings) -> Service:
    """Start (or connect to) the chain, deploy the Directory unless recorded, migrate the index,
    start the indexer, the batcher and the expiry job. Raises ChainError / NodeError if the chain cannot
    be used."""
    settings.home.mkdir(parents=True, exist_ok=True)
    if not artifact_path("Directory").exists():
        compile_contracts()
    node: AnvilNode | None = None
    rpc_url = settings.rpc_url
    if rpc_url is None:
        node = AnvilNode(
            settings.anvil_port, state_path=settings.home / "anvil-state.json", block_time_s=settings.block_time_s
        )
        rpc_url = node.start()
    rpc = Rpc(rpc_url)
    try:
        chain_id = int(rpc.call("eth_chainId", []), 16)
        keystore = Keystore(settings.home / "keys", settings.keystore_password)
        relayer = keystore.account("relayer")
        administrator = keystore.account("administrator")
        if node is not None:
            balance = int(rpc.call("eth_getBalance", [relayer.address, "latest"]), 16)
            if balance < DEV_FUNDS_WEI // 2:
                rpc.call("anvil_setBalance", [relayer.address, hex(DEV_FUNDS_WEI)])
        journal = FileJournal(settings.home / "journal" / f"{chain_id}-{relayer.address}.jsonl")
        sender = TxSender(rpc, relayer, journal, chain_id)
        outcomes = sender.reconcile()
        if outcomes:
            log.info("reconciled %d journaled transactions: %s", len(outcomes), outcomes)
        deployment, fresh = load_or_deploy(sender, settings.home, administrator.address, relayer.address)
        client = DirectoryClient(rpc, deployment.address, chain_id, sender)
        migrate(settings.database_url)
        sessions = session_factory(make_engine(settings.database_url))
        indexer = Indexer(
            LogFetcher.from_rpc(rpc, to_checksum_address(deployment.address)),
            client.codec,
            sessions,
            chain_id,
            deployment.address,
            confirmations=settings.confirmations,
            start_block=deployment.block_number,
        )
        batcher = Batcher(client)
    except BaseException:
        if node is not None:
            node.stop()
        raise
    service = Service(settings, rpc, client, deployment, fresh, sessions, indexer, batcher, node)
    batcher.start()
    service._indexer_thread = threading.Thread(target=indexer.run, args=(service._stop,), name="indexer", daemon=True)
    service._indexer_thread.start()
    service.expiry = ExpiryJob(sessions, batcher, lambda: latest_block_timestamp(rpc),
                               interval_s=settings.expiry_interval_s)
    service._expiry_thread = threading.Thread(target=service.expiry.run, args=(service._stop,), name="expiry",
                                              daemon=True)
    service._expiry_thread.start()
    return service
