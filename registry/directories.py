"""The jurisdictions' directories of one service: which directory a submission goes to, making a jurisdiction's
directory when it is first needed, and registering it at the directories above it.

Every jurisdiction has its own directory, a minimal clone (EIP-1167) made by the DirectoryFactory of its tier's
chain for the service's relayer, so its address is known before it exists (``predictDirectory``). The city's
directory lives on the city chain; districts' and streets' on the district chain (the same chain unless a
second one is configured). A submission goes to (:meth:`Directories.route`):

* a jurisdiction: its parent's directory (the root: its own);
* a department, a department key, a jurisdiction administrator, a catalog or system version or retirement:
  the directory of the jurisdiction it belongs to;
* a sharing request: the directory of the lowest jurisdiction above both the requester and the catalog's owner
  (the first directory holding both, once the tier sync brought them there);
* a sharing decision or revocation: the directory that recorded the request.

A jurisdiction's directory is made on first use (:meth:`Directories.ensure`): cloned, given copies of its home
and the jurisdictions above it (signed by the bureau's administrator key, DEFAULT_ADMIN_ROLE in every
directory), and registered at its parent's directory with ``setChild`` for the relay job's key. A street
directory is also registered at the city (its records reach the city under their street origin) once the city
knows the street — the relay job asks for it (:meth:`Directories.attach`) when it meets the first such record.

With ``single`` the service runs one directory with a zero home serving every jurisdiction (no tiers, no sync).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chain import eip712
from chain.batcher import Batcher
from chain.deploy import create_directory, factory_implementation, predict_directory
from chain.directory import DirectoryClient, to_struct
from chain.node import AnvilNode
from chain.rpc import Rpc
from chain.sender import TxSender
from registry.canonical import code_id
from registry.db import CatalogRow, DepartmentRow, DirectoryRow, JurisdictionRow, SharingRequestRow
from registry.errors import RegistryError
from registry.messages import Message, jurisdiction_message
from registry.models import Jurisdiction, Tier

log = logging.getLogger(__name__)

ZERO32 = b"\x00" * 32
#: How long (seconds) :meth:`Directories.ensure` waits for a jurisdiction to be indexed before giving up.
INDEX_WAIT_S = 30.0


class RouteError(RegistryError):
    """A submission names something the index does not know yet (a jurisdiction, department, catalog or
    request), so its directory cannot be chosen; ``what`` says which."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"cannot choose a directory: {what}")


@dataclass
class TierChain:
    """One chain the service writes to: ``name`` (``city`` or ``district``), its RPC and EIP-155 ``chain_id``,
    ``confirmations`` (blocks) its indexer and the relay jobs reading it stay behind head, the DirectoryFactory
    (``factory``, deployed in block ``start_block``) and three senders: ``relayer`` (makes directories, holds
    RELAYER_ROLE), ``administrator`` (the bureau, DEFAULT_ADMIN_ROLE: ``setChild``), ``sync`` (the relay jobs'
    key on this chain when it is the parent's)."""

    name: str
    rpc: Rpc
    chain_id: int
    confirmations: int
    factory: str
    start_block: int
    relayer: TxSender
    administrator: TxSender
    sync: TxSender
    node: AnvilNode | None = None
    predicted: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    """Where a submission goes: the home ``jurisdiction`` code of the directory (None for the single directory),
    a ``client`` of it with the relayer's sender, and its ``batcher``."""

    jurisdiction: str | None
    client: DirectoryClient
    batcher: Batcher


class Directories:
    """The directories of one service over ``chains`` (``city`` and optionally ``district``), the index behind
    ``sessions`` (to resolve ids to jurisdictions), and the bureau's ``administrator`` key (signs the copies of
    the jurisdictions above a new directory's home). ``deadline_s``: validity (seconds) of those signatures.
    ``single``: one zero-home directory on the city chain for everything (no tiers)."""

    def __init__(
        self,
        chains: dict[str, TierChain],
        sessions: sessionmaker[Session],
        administrator: LocalAccount,
        *,
        single: bool = False,
        deadline_s: int = 3600,
    ) -> None:
        if "city" not in chains:
            raise ValueError(f"expected a 'city' chain, got {sorted(chains)}")
        self.chains = chains
        self.sessions = sessions
        self.administrator = administrator
        self.single = single
        self.deadline_s = deadline_s
        self._targets: dict[tuple[int, str], Target] = {}
        self._by_code: dict[str, Target] = {}  # jurisdiction code → its directory, once made and registered
        self._homes: dict[tuple[str, str], str] = {}  # ("jurisdiction" | "department" | "catalog", key) → code
        # jurisdiction code → its lineage, root first, once indexed up to the root: a jurisdiction's place in the
        # tree never changes (a directory refuses to add an id twice: JurisdictionAlreadyAdded)
        self._lineages: dict[str, tuple[Jurisdiction, ...]] = {}
        self._requests: dict[str, tuple[int, str]] = {}  # sharing request id (0x-hex) → (chain id, directory)
        self._lock = threading.RLock()  # the maps above; never held across a chain round trip
        self._code_locks: dict[str, threading.Lock] = {}
        self._nonce = int(time.time() * 1000) << 64
        self.on_new: Callable[[Target], None] | None = None

    # ------------------------------------------------------------------ chains and addresses

    def chain_of_tier(self, tier: str) -> TierChain:
        """The chain a ``tier``'s directories live on: the city's for ``city``, else the district chain."""
        return self.chains["city"] if tier == "city" else self.chains.get("district", self.chains["city"])

    def chain_by_id(self, chain_id: int) -> TierChain | None:
        """The configured chain with EIP-155 id ``chain_id``, if any."""
        return next((c for c in self.chains.values() if c.chain_id == chain_id), None)

    def predict(self, chain: TierChain, home: bytes) -> str:
        """Checksummed address of the directory the relayer makes (or made) for ``home`` on ``chain``."""
        key = "0x" + home.hex()
        if key not in chain.predicted:
            chain.predicted[key] = predict_directory(chain.rpc, chain.factory, chain.relayer.address, home)
        return chain.predicted[key]

    def _exists(self, chain: TierChain, address: str) -> bool:
        return chain.rpc.call("eth_getCode", [address, "latest"]) not in (None, "0x", "0x0")

    def _target(self, chain: TierChain, address: str, home: str | None) -> Target:
        key = (chain.chain_id, address)
        target = self._targets.get(key)
        if target is None:
            client = DirectoryClient(chain.rpc, address, chain.chain_id, chain.relayer)
            batcher = Batcher(client)
            batcher.start()
            target = self._targets[key] = Target(home, client, batcher)
            if self.on_new is not None:
                self.on_new(target)
        return target

    def targets(self) -> list[Target]:
        """Every directory this service has opened so far."""
        with self._lock:
            return list(self._targets.values())

    def batcher_for(self, chain_id: int, address: str) -> Batcher | None:
        """The batcher of directory ``address`` on chain ``chain_id`` if this service runs it."""
        chain = self.chain_by_id(chain_id)
        if chain is None:
            return None
        with self._lock:
            target = self._targets.get((chain_id, to_checksum_address(address)))
            if target is None and self._is_ours(chain, address):
                target = self._target(chain, to_checksum_address(address), self._home_code(chain, address))
            return None if target is None else target.batcher

    def _is_ours(self, chain: TierChain, address: str) -> bool:
        with self.sessions() as session:
            row = session.get(DirectoryRow, (chain.chain_id, to_checksum_address(address)))
            return row is not None and row.creator == chain.relayer.address

    def _home_code(self, chain: TierChain, address: str) -> str | None:
        with self.sessions() as session:
            row = session.get(DirectoryRow, (chain.chain_id, to_checksum_address(address)))
            j = None if row is None else session.get(JurisdictionRow, row.home_id)
            return None if j is None else j.code

    def close(self) -> None:
        """Stop every batcher."""
        for target in self.targets():
            target.batcher.stop()

    # ------------------------------------------------------------------ the single directory

    def single_target(self) -> Target:
        """The zero-home directory of single mode (made if missing)."""
        chain = self.chains["city"]
        with self._lock:
            address = self.predict(chain, ZERO32)
            if not self._exists(chain, address):
                create_directory(chain.relayer, chain.factory, chain.administrator.address, chain.relayer.address)
            return self._target(chain, address, None)

    # ------------------------------------------------------------------ jurisdictions

    def _jurisdiction(self, session: Session, jid: str) -> JurisdictionRow | None:
        return session.get(JurisdictionRow, jid)

    def _lineage(self, code: str, wait_s: float = INDEX_WAIT_S) -> list[Jurisdiction]:
        """``code``'s jurisdiction and those above it, root first, from the index (waits up to ``wait_s``
        seconds for them to be indexed). Raises :class:`RouteError` if it is not indexed by then. A lineage read
        up to the root is remembered: routing a sharing request needs two or three, and each read is a few
        queries."""
        known = self._lineages.get(code)
        if known is not None:
            return list(known)
        deadline = time.monotonic() + wait_s
        while True:
            with self.sessions() as session:
                chain: list[Jurisdiction] = []
                jid: str | None = "0x" + code_id(code).hex()
                while jid is not None:
                    row = self._jurisdiction(session, jid)
                    if row is None:
                        break
                    parent = None if row.parent_id is None else self._jurisdiction(session, row.parent_id)
                    if row.parent_id is not None and parent is None:
                        break
                    chain.append(Jurisdiction(code=row.code, name=row.name, tier=Tier(row.tier),
                                              parent=None if parent is None else parent.code))
                    jid = row.parent_id
                else:
                    lineage = self._lineages[code] = tuple(reversed(chain))  # reached the root
                    return list(lineage)
            if time.monotonic() >= deadline:
                raise RouteError(f"jurisdiction {code} is not indexed")
            time.sleep(0.1)

    def ensure(self, code: str, tier: str | None = None) -> Target:
        """The directory of jurisdiction ``code``, made, given its copies of the jurisdictions above it and
        registered at its parent's directory if it is not yet. ``tier`` is needed only for a jurisdiction the
        index does not know yet (a root being added). Raises :class:`RouteError` for an unknown jurisdiction,
        and what the chain raises."""
        if self.single:
            return self.single_target()
        ready = self._by_code.get(code)
        if ready is not None:
            return ready
        with self._code_lock(code):  # one maker per jurisdiction; different jurisdictions are made in parallel
            ready = self._by_code.get(code)
            if ready is not None:
                return ready
            lineage = [] if tier == "city" else self._lineage(code)
            own_tier = tier if not lineage else lineage[-1].tier.value
            chain = self.chain_of_tier(str(own_tier))
            address = self.predict(chain, code_id(code))
            if not self._exists(chain, address):
                log.info("making the directory of %s on chain %d", code, chain.chain_id)
                create_directory(chain.relayer, chain.factory, chain.administrator.address, chain.relayer.address,
                                 code_id(code))
            client = DirectoryClient(chain.rpc, address, chain.chain_id, chain.relayer)
            if len(lineage) > 1:
                self._scaffold(client, lineage)
                parent = self.ensure(str(lineage[-2].code))  # locks the parent's code: child → parent order only
                self._set_child(parent.client, lineage[-1], client)
            with self._lock:
                target = self._by_code[code] = self._target(chain, address, code)
            return target

    def _code_lock(self, code: str) -> threading.Lock:
        """The lock serialising the making and registering of jurisdiction ``code``'s directory."""
        with self._lock:
            return self._code_locks.setdefault(code, threading.Lock())

    def _sign(self, client: DirectoryClient, msg: Message) -> tuple[Any, ...]:
        signature = eip712.sign(self.administrator, client.typed_data(msg.primary, msg.message))
        return to_struct(msg.primary, msg.message, signature, msg.record)

    def _next_nonce(self) -> int:
        with self._lock:
            self._nonce += 1
            return self._nonce

    def _scaffold(self, client: DirectoryClient, lineage: list[Jurisdiction]) -> None:
        """Copies of the home and the jurisdictions above it in a new directory (those not there yet)."""
        deadline = int(time.time()) + self.deadline_s
        missing = [j for j in lineage if client.jurisdiction(code_id(j.code))[1] == 0]
        if missing:
            structs = [self._sign(client, jurisdiction_message(j, self._next_nonce(), deadline)) for j in missing]
            client.submit_and_wait("Jurisdiction", structs)

    def _set_child(self, parent: DirectoryClient, home: Jurisdiction, child: DirectoryClient) -> bool:
        """Register ``child`` (serving ``home``) at ``parent`` for the relay key of ``parent``'s chain, unless it
        is; False if ``parent`` does not know ``home`` yet."""
        chain = self.chain_by_id(parent.chain_id)
        assert chain is not None
        _home, relayer = parent.view("child", child.chain_id, child.address)
        if to_checksum_address(relayer) == chain.sync.address:
            return True
        if parent.jurisdiction(code_id(home.code))[1] == 0:
            return False
        admin = DirectoryClient(parent.rpc, parent.address, parent.chain_id, chain.administrator)
        data = admin.encode("setChild", [code_id(home.code), child.chain_id, child.address, chain.sync.address])
        gas = chain.administrator.budget_gas(parent.address, data, 1)
        chain.administrator.wait(chain.administrator.send(parent.address, data, gas, label="setChild"))
        log.info("registered the directory of %s (%d:%s) at %s", home.code, child.chain_id, child.address,
                 parent.address)
        return True

    def attach(self, parent: DirectoryClient, chain_id: int, address: str) -> bool:
        """Register the directory ``address`` on chain ``chain_id`` at ``parent`` (a street's at the city: the
        relay job met a record with that origin); True if it is registered now."""
        chain = self.chain_by_id(chain_id)
        if chain is None:
            return False
        code = self._home_code(chain, address)
        if code is None:
            return False
        lineage = self._lineage(code, wait_s=0)
        with self._code_lock(code):
            return self._set_child(parent, lineage[-1], DirectoryClient(chain.rpc, address, chain_id))

    # ------------------------------------------------------------------ where to sign (no side effects)

    @cached_property
    def types(self) -> eip712.Types:
        """EIP-712 submission types (every directory has the same: read from the implementation's
        ``eip712Types()``)."""
        chain = self.chains["city"]
        return DirectoryClient(chain.rpc, factory_implementation(chain.rpc, chain.factory), chain.chain_id).types

    def locate(self, code: str | None = None, tier: str | None = None) -> tuple[str | None, int, str]:
        """(home code, chain id, address) of jurisdiction ``code``'s directory, made or not yet (its address is
        known in advance). ``tier`` is needed for a jurisdiction not indexed yet (a root being added). Single mode:
        the one directory. Raises :class:`RouteError` for an unknown jurisdiction."""
        if self.single:
            chain = self.chains["city"]
            return None, chain.chain_id, self.predict(chain, ZERO32)
        if code is None:
            raise RouteError("no jurisdiction given")
        own_tier = tier if tier is not None else self._lineage(code, wait_s=0)[-1].tier.value
        chain = self.chain_of_tier(own_tier)
        return code, chain.chain_id, self.predict(chain, code_id(code))

    def locate_sharing(self, catalog: str, requester: str) -> tuple[str | None, int, str]:
        """As :meth:`locate`, for a sharing request by department ``requester`` (code) for ``catalog``."""
        if self.single:
            return self.locate()
        return self.locate(self._common(self._department_home(code_id(requester)), self._catalog_home(catalog)))

    def locate_request(self, rid: bytes) -> tuple[str | None, int, str]:
        """As :meth:`locate`, for a decision or revocation of sharing request ``rid``."""
        if self.single:
            return self.locate()
        target = self._request_directory(rid)
        return target.jurisdiction, target.client.chain_id, target.client.address

    # ------------------------------------------------------------------ routing

    def route(self, msg: Message) -> Target:
        """The directory ``msg`` goes to (see the module docstring). Raises :class:`RouteError`."""
        if self.single:
            return self.single_target()
        m = msg.message
        if msg.primary == "Jurisdiction":
            if m["parent"] == ZERO32:
                return self.ensure(str(m["code"]), tier="city")
            return self.ensure(self._code_of(m["parent"]))
        if msg.primary == "Department" or msg.primary in ("Catalog", "System"):
            return self.ensure(self._code_of(m["jurisdiction"]))
        if msg.primary == "Account":
            if int(m["role"]) == 1:
                return self.ensure(self._code_of(m["scope"]))
            return self.ensure(self._department_home(m["scope"]))
        if msg.primary == "SharingRequest":
            return self.ensure(self._common(self._department_home(m["requester"]), self._catalog_home(m["catalog"])))
        if msg.primary in ("SharingDecision", "SharingRevocation"):
            return self._request_directory(m["request"])
        raise RouteError(f"no route for {msg.primary}")

    def route_known(self, msg: Message) -> Target | None:
        """The directory ``msg`` goes to when routing it needs neither the index nor the chain — a department,
        department key, catalog or system of a jurisdiction whose directory was already routed to; a sharing request
        whose departments' and catalog's homes and lineages are remembered; a decision or revocation of a request
        already routed — else None (then :meth:`route`, which may read the index and make a directory). Never
        blocks: safe on an event loop.
        """
        if self.single:
            return None  # single_target() asks the chain whether the directory exists
        m = msg.message
        if msg.primary in ("Department", "Catalog", "System"):
            code = self._homes.get(("jurisdiction", m["jurisdiction"].hex()))
        elif msg.primary == "Account":
            kind = "jurisdiction" if int(m["role"]) == 1 else "department"
            code = self._homes.get((kind, m["scope"].hex()))
        elif msg.primary == "SharingRequest":
            code = self._known_common(self._homes.get(("department", m["requester"].hex())),
                                      self._homes.get(("catalog", m["catalog"])))
        elif msg.primary in ("SharingDecision", "SharingRevocation"):
            where = self._requests.get("0x" + m["request"].hex())  # (chain id, address): a key of _targets
            return None if where is None else self._targets.get(where)
        else:
            return None
        return None if code is None else self._by_code.get(code)

    def _known_common(self, a: str | None, b: str | None) -> str | None:
        """:meth:`_common` of ``a`` and ``b`` from remembered lineages only (None if either is not remembered)."""
        lineage_a = None if a is None else self._lineages.get(a)
        lineage_b = None if b is None else self._lineages.get(b)
        if a is None or lineage_a is None or lineage_b is None:
            return None
        return self._lowest_common(lineage_a, lineage_b, a)

    def _code_of(self, jid: bytes) -> str:
        key = ("jurisdiction", jid.hex())
        if key not in self._homes:  # a jurisdiction's code never changes: remember it once indexed
            with self.sessions() as session:
                row = self._jurisdiction(session, "0x" + jid.hex())
                if row is None:
                    raise RouteError(f"jurisdiction 0x{jid.hex()} is not indexed")
                self._homes[key] = row.code
        return self._homes[key]

    def _department_home(self, did: bytes) -> str:
        key = ("department", did.hex())
        if key not in self._homes:  # nor a department's jurisdiction
            with self.sessions() as session:
                dept = session.get(DepartmentRow, "0x" + did.hex())
                if dept is None:
                    raise RouteError(f"department 0x{did.hex()} is not indexed")
                home = self._jurisdiction(session, dept.jurisdiction_id)
                if home is None:
                    raise RouteError(f"jurisdiction {dept.jurisdiction_id} of department {dept.code} is not indexed")
                self._homes[key] = home.code
        return self._homes[key]

    def _catalog_home(self, code: str) -> str:
        key = ("catalog", code)
        if key not in self._homes:  # nor a catalog's (its code hash binds it to its department's jurisdiction)
            with self.sessions() as session:
                row = session.get(CatalogRow, code)
                if row is None or row.jurisdiction_code is None:
                    raise RouteError(f"catalog {code} is not indexed")
                self._homes[key] = row.jurisdiction_code
        return self._homes[key]

    def _common(self, a: str, b: str) -> str:
        """The lowest jurisdiction at or above both ``a`` and ``b``."""
        return self._lowest_common(self._lineage(a, wait_s=0), self._lineage(b, wait_s=0), a)

    @staticmethod
    def _lowest_common(lineage_a: Sequence[Jurisdiction], lineage_b: Sequence[Jurisdiction], a: str) -> str:
        above_a = {j.code for j in lineage_a}
        common = a
        for j in lineage_b:
            if j.code in above_a:
                common = j.code
        return common

    def _request_directory(self, rid: bytes) -> Target:
        key = "0x" + rid.hex()
        where = self._requests.get(key)
        if where is None:  # a request stays in the directory that recorded it: remember where once indexed
            with self.sessions() as session:
                row = session.scalars(select(SharingRequestRow).where(SharingRequestRow.id == key)).first()
                if row is None:
                    raise RouteError(f"sharing request {key} is not indexed")
                where = self._requests[key] = (row.chain_id, to_checksum_address(row.directory))
        chain_id, address = where
        chain = self.chain_by_id(chain_id)
        if chain is None:
            raise RouteError(f"sharing request 0x{rid.hex()} was recorded on chain {chain_id}, not served here")
        with self._lock:
            return self._target(chain, to_checksum_address(address), self._home_code(chain, address))
