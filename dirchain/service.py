"""Wiring of the running service: chains (embedded anvil or configured RPC endpoints, one for the city and
optionally one for the districts and streets), the DirectoryFactory on each, the jurisdictions' directories
(:mod:`registry.directories`), one indexer per chain (each a process of its own,
:mod:`registry.indexer_process`), the tier sync (:mod:`registry.tiers`), the expiry job (:mod:`registry.expiry`),
the API. ``dirchain up`` runs :class:`Service` in the foreground."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from sqlalchemy.orm import Session, sessionmaker

from api.deps import Services
from api.relay import Relay
from chain.artifacts import artifact_path, compile_contracts
from chain.deploy import Deployment, load_or_deploy, load_or_deploy_factory
from chain.directory import DirectoryClient
from chain.journal import FileJournal
from chain.node import AnvilNode
from chain.rpc import Rpc
from chain.sender import TxSender
from dirchain.settings import Settings
from registry.db import make_engine, migrate, session_factory
from registry.directories import Directories, TierChain
from registry.expiry import ExpiryJob, latest_block_timestamp
from registry.indexer_process import IndexerConfig, IndexerProcess, shareable
from registry.keystore import Keystore
from registry.tiers import ChildLag, TierSync

log = logging.getLogger(__name__)

#: Balance the embedded chains give the service's keys (wei): anvil dev tooling, not used on real networks.
DEV_FUNDS_WEI = 10**24
#: EIP-155 chain ids of the embedded chains.
CITY_CHAIN_ID, DISTRICT_CHAIN_ID = 31337, 31338


@dataclass
class Service:
    """A running directory service; build with :func:`start_service`, end with :meth:`stop`.

    ``chains``: ``city`` and, when configured, ``district``; ``deployment``: the single directory (single mode)
    or None; ``deployed_now``: whether this start deployed the contracts."""

    settings: Settings
    chains: dict[str, TierChain]
    directories: Directories
    sessions: sessionmaker[Session]
    indexers: dict[str, IndexerProcess]
    deployed_now: bool
    deployment: Deployment | None = None
    tiersync: TierSync | None = None
    expiry: ExpiryJob | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _services: Services | None = None

    @property
    def rpc(self) -> Rpc:
        """The city chain's RPC."""
        return self.chains["city"].rpc

    @property
    def client(self) -> DirectoryClient:
        """The single directory's client (single mode only; raises RuntimeError otherwise)."""
        if not self.settings.single:
            raise RuntimeError("a service with a directory per jurisdiction has no single client")
        return self.directories.single_target().client

    @property
    def indexer(self) -> IndexerProcess:
        """The city chain's indexer (a process of its own)."""
        return self.indexers["city"]

    def services(self) -> Services:
        """The dependencies the API routes use: one set per service (built on the first call), so that every app
        built on it relays through one :class:`api.relay.Relay` — whose reservations refuse duplicates service-wide."""
        if self._services is None:
            self._services = Services(
                directories=self.directories,
                sessions=self.sessions,
                relay=Relay(self.directories),
                indexer_error=self._indexer_error,
                lags=self.lags,
                sync_rounds=lambda: 0 if self.tiersync is None else self.tiersync.rounds,
            )
        return self._services

    def lags(self) -> list[ChildLag]:
        """Each child directory's relay lag (empty in single mode)."""
        return [] if self.tiersync is None else self.tiersync.lags()

    def _indexer_error(self) -> str | None:
        for name, indexer in self.indexers.items():
            if indexer.pid is not None and not indexer.is_alive() and not self._stop.is_set():
                return f"indexer of the {name} chain stopped: {indexer.last_error}"
        return None

    def start(self) -> None:
        """Start the indexers (a process each), the tier sync and the expiry job (threads)."""
        for indexer in self.indexers.values():
            indexer.start()
        if self.tiersync is not None:
            self._spawn("tier-sync", self.tiersync.run)
        if self.expiry is not None:
            self._spawn("expiry", self.expiry.run)

    def _spawn(self, name: str, target: object) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop the jobs, the indexers and the batchers, then the embedded nodes (which save their state)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.directories.close()
        for indexer in self.indexers.values():
            indexer.stop(timeout_s=10)
        for chain in self.chains.values():
            if chain.node is not None:
                chain.node.stop()
            chain.rpc.close()


def _open_chain(
    name: str, rpc_url: str | None, node: AnvilNode | None, confirmations: int, settings: Settings, keys: Keystore
) -> tuple[TierChain, bool]:
    """Connect to a chain (starting ``node`` if given), fund the keys on an embedded one, settle the journals
    and deploy (or find) the DirectoryFactory (per-jurisdiction mode; single mode deploys later). The bool
    says whether the factory was deployed now."""
    if node is not None:
        rpc_url = node.start()
    assert rpc_url is not None
    rpc = Rpc(rpc_url)
    chain_id = int(rpc.call("eth_chainId", []), 16)
    senders: dict[str, TxSender] = {}
    for label in ("relayer", "administrator", "sync"):
        account: LocalAccount = keys.account(label)
        if node is not None:
            balance = int(rpc.call("eth_getBalance", [account.address, "latest"]), 16)
            if balance < DEV_FUNDS_WEI // 2:
                rpc.call("anvil_setBalance", [account.address, hex(DEV_FUNDS_WEI)])
        journal = FileJournal(settings.home / "journal" / f"{chain_id}-{account.address}.jsonl")
        sender = TxSender(rpc, account, journal, chain_id)
        outcomes = sender.reconcile()
        if outcomes:
            log.info("reconciled %d journaled transactions of %s on %s: %s", len(outcomes), label, name, outcomes)
        senders[label] = sender
    factory, start_block, fresh = "", 0, False
    if not settings.single:
        dep, fresh = load_or_deploy_factory(senders["relayer"], settings.home)
        factory, start_block = dep.factory, dep.block_number
    chain = TierChain(name, rpc, chain_id, confirmations, factory, start_block, senders["relayer"],
                      senders["administrator"], senders["sync"], node)
    return chain, fresh


def _nodes(settings: Settings) -> tuple[AnvilNode | None, AnvilNode | None]:
    """The embedded anvil nodes to start: the city's unless ``rpc_url``; a district one with ``district_chain``."""
    city = None
    if settings.rpc_url is None:
        city = AnvilNode(settings.anvil_port, state_path=settings.home / "anvil-state.json",
                         block_time_s=settings.block_time_s, chain_id=CITY_CHAIN_ID,
                         state_roots=settings.anvil_state_roots)
    district = None
    if settings.district_rpc_url is None and settings.district_chain:
        district = AnvilNode(settings.anvil_port + 1, state_path=settings.home / "anvil-district-state.json",
                             block_time_s=settings.block_time_s, chain_id=DISTRICT_CHAIN_ID,
                             state_roots=settings.anvil_state_roots)
    return city, district


def start_service(settings: Settings) -> Service:
    """Start (or connect to) the chains, deploy the contracts unless recorded, migrate the index, start the
    indexers, the tier sync and the expiry job. Raises ChainError / NodeError if a chain cannot be used, ValueError
    for an index in memory (the indexers, each a process of its own, could not open it)."""
    if not shareable(settings.database_url):
        raise ValueError("DIRCHAIN_DATABASE_URL: expected a database another process can open (a SQLite file or a "
                         f"server; the indexers run in processes of their own), got {settings.database_url!r}")
    settings.home.mkdir(parents=True, exist_ok=True)
    if not artifact_path("Directory").exists():
        compile_contracts()
    keys = Keystore(settings.home / "keys", settings.keystore_password)
    city_node, district_node = _nodes(settings)
    chains: dict[str, TierChain] = {}
    try:
        chains["city"], fresh = _open_chain("city", settings.rpc_url, city_node, settings.confirmations, settings,
                                            keys)
        if settings.district_rpc_url is not None or district_node is not None:
            depth = settings.district_confirmations
            depth = settings.confirmations if depth is None else depth
            chains["district"], district_fresh = _open_chain("district", settings.district_rpc_url, district_node,
                                                             depth, settings, keys)
            fresh = fresh or district_fresh
        deployment: Deployment | None = None
        if settings.single:
            city = chains["city"]
            deployment, fresh = load_or_deploy(city.relayer, settings.home, city.administrator.address,
                                               city.relayer.address)
            city.factory, city.start_block = deployment.factory, deployment.block_number
        migrate(settings.database_url)
        engine = make_engine(settings.database_url)
        sessions = session_factory(engine)
        writer = session_factory(engine, writer=True)
        directories = Directories(chains, sessions, keys.account("administrator"), single=settings.single,
                                  deadline_s=settings.deadline_s)
        indexers = {
            name: IndexerProcess(name, IndexerConfig(chain.rpc.url, chain.chain_id, chain.factory, chain.start_block,
                                                     chain.confirmations, (chain.relayer.address,),
                                                     settings.database_url))
            for name, chain in chains.items()
        }
        if settings.single:
            directories.single_target()
    except BaseException:
        for chain in chains.values():
            if chain.node is not None:
                chain.node.stop()
        for node in (city_node, district_node):
            if node is not None:
                node.stop()
        raise
    service = Service(settings, chains, directories, sessions, indexers, fresh, deployment)
    if not settings.single:
        service.tiersync = TierSync(directories, writer, interval_s=settings.sync_interval_s)

    def chain_time() -> int:
        return max(latest_block_timestamp(chain.rpc) for chain in chains.values())

    service.expiry = ExpiryJob(sessions, directories.batcher_for, chain_time, interval_s=settings.expiry_interval_s)
    service.start()
    return service


def state_files(home: Path) -> list[Path]:
    """The embedded chains' state files under ``home`` (for tools that reset a demo)."""
    return [home / "anvil-state.json", home / "anvil-district-state.json"]
