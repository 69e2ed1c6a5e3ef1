"""Helpers for the tier-sync tests: two anvil chains, a street, a district and a city directory, their keys,
local activity signed in each tier, relay jobs, and what the city should end up holding.

Layout (each jurisdiction its own directory, cloned from a factory on its chain):

* district chain (:data:`DISTRICT_CHAIN_ID`): 西城区 (home 110102) and 月坛街道 (home 110102/月坛街道);
* city chain (:data:`CITY_CHAIN_ID`): 北京市 (home 110000).

One bureau key holds DEFAULT_ADMIN_ROLE in all three. Each directory's local submissions go through its own
service relayer (RELAYER_ROLE); each (child, parent) pair has its own relay-job key, registered at the parent
with ``setChild``. A directory holds copies of the jurisdictions above its home (signed by the bureau in that
directory): the relay job leaves them, and the home itself, where they are.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.abi import ContractCodec, DecodedLog
from chain.deploy import Deployment, create_directory, deploy_factory
from chain.directory import KIND_CATALOG, KIND_SYSTEM, DirectoryClient
from chain.journal import MemoryJournal
from chain.logs import LogFetcher
from chain.node import AnvilNode
from chain.relay import Origin
from chain.rpc import Rpc
from chain.sender import Receipt, TxSender
from registry.canonical import code_id
from registry.messages import (
    Message,
    account_message,
    department_message,
    jurisdiction_message,
    record_message,
    retire_message,
    sharing_decision_message,
    sharing_request_id,
    sharing_request_message,
    sharing_revocation_message,
)
from registry.models import Department, Jurisdiction, ShareType
from registry.sync import RelayJob
from tests.integration.conftest import (
    CITY,
    DEPARTMENTS,
    XICHENG,
    YUETAN,
    catalog_record,
    deadline,
    next_nonce,
    system_record,
)
from tests.integration.conftest import sign as sign_struct

DISTRICT_CHAIN_ID = 31338
CITY_CHAIN_ID = 31339
FUNDS_WEI = 10**24

#: The second street department (月坛街道社区服务中心), next to conftest's 月坛街道办事处.
YT_SERVICE = Department(code="DYT0002", name="月坛街道社区服务中心", jurisdiction=YUETAN.code)

#: Departments per local tier (the two that own and request each other's catalogs).
TIER_DEPARTMENTS = {
    "district": {"xc_civil": DEPARTMENTS["xc_civil"], "xc_health": DEPARTMENTS["xc_health"]},
    "street": {"yuetan": DEPARTMENTS["yuetan"], "yt_service": YT_SERVICE},
}

#: Record-code prefix of each local tier (codes are unique across the municipal directory).
PREFIX = {"district": "XC", "street": "YT"}


# ---------------------------------------------------------------------------------------- chains


@dataclass
class Node:
    """One anvil chain with a DirectoryFactory on it."""

    anvil: AnvilNode
    rpc: Rpc
    chain_id: int
    factory: str


def start_node(chain_id: int, *, state_roots: bool = False) -> Node:
    """Start an automining anvil with ``chain_id`` (with or without ``state_roots``: :class:`chain.node.AnvilNode`)
    and deploy the Directory implementation and factory."""
    anvil = AnvilNode(chain_id=chain_id, state_roots=state_roots)
    anvil.start()
    rpc = Rpc(anvil.rpc_url)
    deployer = sender_for(rpc, funded(rpc), chain_id)
    return Node(anvil, rpc, chain_id, deploy_factory(deployer))


def funded(rpc: Rpc, account: LocalAccount | None = None) -> LocalAccount:
    """``account`` (default a new random key) with 10^6 ETH on the chain behind ``rpc`` (anvil only)."""
    acct: LocalAccount = account or Account.create()
    rpc.call("anvil_setBalance", [acct.address, hex(FUNDS_WEI)])
    return acct


def sender_for(rpc: Rpc, account: LocalAccount, chain_id: int) -> TxSender:
    """A sender for ``account`` polling receipts every 2 ms (anvil mines at once)."""
    return TxSender(rpc, account, MemoryJournal(), chain_id, receipt_timeout_s=30, poll_s=0.002)


# ---------------------------------------------------------------------------------------- directories


@dataclass
class Tier:
    """One jurisdiction's directory: ``client`` submits through the directory's own service relayer."""

    name: str  # street / district / city
    home: Jurisdiction
    node: Node
    client: DirectoryClient
    deployment: Deployment

    @property
    def chain_id(self) -> int:
        return self.node.chain_id

    @property
    def address(self) -> str:
        return self.client.address


@dataclass
class TierWorld:
    """Street 月坛街道 and district 西城区 on the district chain, city 北京市 on the city chain."""

    bureau: LocalAccount
    tiers: dict[str, Tier]
    relayers: dict[str, LocalAccount]  # "street" (street → district job), "district" (district → city job)
    admins: dict[str, LocalAccount] = field(default_factory=dict)  # district / street administrators
    keys: dict[str, LocalAccount] = field(default_factory=dict)  # department keys by DEPARTMENTS name
    requests: dict[str, list[bytes]] = field(default_factory=dict)  # sharing request ids per local tier
    record_codes: dict[str, set[tuple[int, str]]] = field(default_factory=dict)  # (kind, code) per local tier

    @property
    def street(self) -> Tier:
        return self.tiers["street"]

    @property
    def district(self) -> Tier:
        return self.tiers["district"]

    @property
    def city(self) -> Tier:
        return self.tiers["city"]

    def department(self, name: str) -> Department:
        """A department of either local tier by its name in :data:`TIER_DEPARTMENTS`."""
        return {**TIER_DEPARTMENTS["street"], **TIER_DEPARTMENTS["district"]}[name]

    def submit(self, tier: str, key: LocalAccount, *msgs: Message) -> Receipt:
        """Sign ``msgs`` with ``key`` for ``tier``'s directory and submit them as one batch (same type)."""
        client = self.tiers[tier].client
        return client.submit_and_wait(msgs[0].primary, [sign_struct(client, key, m) for m in msgs])

    def set_child(self, parent: str, child: str, home: Jurisdiction, relayer: str | None = None) -> Receipt:
        """The bureau registers ``child``'s directory at ``parent`` (``relayer``: the job key, default ``child``'s)."""
        p, c = self.tiers[parent], self.tiers[child]
        sender = sender_for(p.node.rpc, funded(p.node.rpc, self.bureau), p.chain_id)
        bureau = DirectoryClient(p.node.rpc, p.address, p.chain_id, sender)
        data = bureau.encode("setChild", [code_id(home.code), c.chain_id, c.address,
                                          self.relayers[relayer or child].address])
        gas = sender.estimate_gas(p.address, data)
        return sender.wait(sender.send(p.address, data, gas * 2, label="setChild"))

    def job(self, child: str, sessions: Any, *, relayer: str | None = None, **kwargs: Any) -> RelayJob:
        """The relay job of ``child`` → its parent (street → district, district → city), state in ``sessions``."""
        parent = {"street": "district", "district": "city"}[child]
        c, p = self.tiers[child], self.tiers[parent]
        key = self.relayers[relayer or child]
        sender = sender_for(p.node.rpc, key, p.chain_id)
        codec = ContractCodec(c.client.abi)
        fetcher = LogFetcher.from_rpc(c.node.rpc, c.address)
        return RelayJob(fetcher, codec, c.chain_id, c.address, DirectoryClient(p.node.rpc, p.address, p.chain_id,
                                                                                 sender), sessions, **kwargs)


def new_directory(node: Node, name: str, home: Jurisdiction, bureau: LocalAccount) -> Tier:
    """Clone a directory for ``home`` on ``node`` (bureau: DEFAULT_ADMIN_ROLE; a fresh funded service relayer)."""
    service = funded(node.rpc)
    sender = sender_for(node.rpc, service, node.chain_id)
    dep = create_directory(sender, node.factory, bureau.address, service.address, code_id(home.code))
    return Tier(name, home, node, DirectoryClient(node.rpc, dep.address, node.chain_id, sender), dep)


def build_world(district_node: Node, city_node: Node) -> TierWorld:
    """Directories, scaffolding and administrators of the three tiers; the district registered at the city.

    City: 北京市, 西城区 (bureau; 西城区 is what ``setChild`` needs). District: copies of 北京市 and 西城区
    (bureau), the district administrator (bureau), 月坛街道 (district administrator). Street: copies of
    北京市, 西城区, 月坛街道 (bureau), the street administrator (bureau). The district's 月坛街道 is synced to the
    city and the city registers the street directory for the district → city job, whose relays carry street
    origins (the street's signatures verify only under the street's EIP-712 domain).
    """
    bureau: LocalAccount = Account.create()
    tiers = {
        "city": new_directory(city_node, "city", CITY, bureau),
        "district": new_directory(district_node, "district", XICHENG, bureau),
        "street": new_directory(district_node, "street", YUETAN, bureau),
    }
    world = TierWorld(bureau, tiers, {"street": funded(district_node.rpc), "district": funded(city_node.rpc)})
    world.admins = {"district": Account.create(), "street": Account.create()}
    jm = jurisdiction_message
    world.submit("city", bureau, jm(CITY, next_nonce(), deadline()), jm(XICHENG, next_nonce(), deadline()))
    world.submit("district", bureau, jm(CITY, next_nonce(), deadline()), jm(XICHENG, next_nonce(), deadline()))
    world.submit("street", bureau, *(jm(j, next_nonce(), deadline()) for j in (CITY, XICHENG, YUETAN)))
    world.submit("district", bureau, account_message("administrator", XICHENG.code, world.admins["district"].address,
                                                     True, next_nonce(), deadline()))
    world.submit("district", world.admins["district"], jm(YUETAN, next_nonce(), deadline()))
    world.submit("street", bureau, account_message("administrator", YUETAN.code, world.admins["street"].address,
                                                   True, next_nonce(), deadline()))
    world.set_child("city", "district", XICHENG)
    world.set_child("district", "street", YUETAN)
    return world


def attach_street_to_city(world: TierWorld, sessions: Any) -> None:
    """Sync the district to the city (bringing 月坛街道 there), then register the street directory at the city
    for the district → city job (``setChild`` needs the street's jurisdiction known at the city)."""
    report = world.job("district", sessions).run_once()
    assert not report.failed, report.failed
    world.set_child("city", "street", YUETAN, relayer="district")


def register_departments(world: TierWorld, tier: str) -> None:
    """The tier's administrator registers its two departments and binds a fresh key to each."""
    admin = world.admins[tier]
    depts = TIER_DEPARTMENTS[tier]
    world.submit(tier, admin, *(department_message(d, next_nonce(), deadline()) for d in depts.values()))
    binds = []
    for name, dept in depts.items():
        world.keys[name] = Account.create()
        binds.append(account_message("department", dept.code, world.keys[name].address, True, next_nonce(),
                                     deadline()))
    world.submit(tier, admin, *binds)


def sharing_period() -> tuple[int, int]:
    """(start, end) of a sharing period: now to 30 days ahead (unix seconds)."""
    now = int(time.time())
    return now - 60, now + 30 * 86400


def local_activity(world: TierWorld, tier: str, tag: str = "") -> None:
    """Systems, catalogs (with an update and retirements) and sharing requests signed in ``tier``.

    Department A (first) owns system S1, catalogs C1 (conditional, produced by S1; updated to v2) and C3
    (not shared; retired); department B owns system S2 (retired) and catalog C2 (unconditional). Sharing: B asks
    for C1 v2 (approved, then revoked) and again (rejected); A asks for C2 (granted at once); B asks for C3
    (refused at once). ``tag`` makes the codes unique for a second round.
    """
    (a_name, a), (b_name, b) = TIER_DEPARTMENTS[tier].items()
    ka, kb = world.keys[a_name], world.keys[b_name]
    p = PREFIX[tier] + tag
    s1, s2 = f"S{p}01", f"S{p}02"
    c1, c2, c3 = f"301001/{p}01", f"301002/{p}02", f"301003/{p}03"
    codes = world.record_codes.setdefault(tier, set())
    codes.update({(KIND_SYSTEM, s1), (KIND_SYSTEM, s2), (KIND_CATALOG, c1), (KIND_CATALOG, c2), (KIND_CATALOG, c3)})
    rm = record_message
    world.submit(tier, ka, rm(system_record(a, s1), "register", 1, next_nonce(), deadline()))
    world.submit(tier, kb, rm(system_record(b, s2, name="网格化管理系统"), "register", 1, next_nonce(), deadline()))
    cat1 = catalog_record(a, c1, source_system=s1)
    world.submit(tier, ka, rm(cat1, "register", 1, next_nonce(), deadline()))
    cat1_v2 = catalog_record(a, c1, source_system=s1, summary="困难家庭救助对象基本信息（2025 修订）")
    world.submit(tier, ka, rm(cat1_v2, "update", 2, next_nonce(), deadline()))
    cat2 = catalog_record(b, c2, name="社区服务设施", share_type=ShareType.UNCONDITIONAL, share_conditions=None)
    cat3 = catalog_record(a, c3, name="个人隐私档案", share_type=ShareType.NOT_SHARED,
                          share_conditions="涉及个人隐私")
    world.submit(tier, kb, rm(cat2, "register", 1, next_nonce(), deadline()))
    world.submit(tier, ka, rm(cat3, "register", 1, next_nonce(), deadline()))

    start, end = sharing_period()
    ids = world.requests.setdefault(tier, [])

    def request(key: LocalAccount, requester: Department, catalog: str, version: int) -> bytes:
        nonce = next_nonce()
        msg = sharing_request_message(catalog, version, requester.code, 1, "社会救助审核", "《社会救助暂行办法》",
                                      start, end, nonce, deadline())
        world.submit(tier, key, msg)
        rid = sharing_request_id(key.address, nonce)
        ids.append(rid)
        return rid

    approved = request(kb, b, c1, 2)
    world.submit(tier, ka, sharing_decision_message(approved, True, "同意", next_nonce(), deadline()))
    rejected = request(kb, b, c1, 2)
    world.submit(tier, ka, sharing_decision_message(rejected, False, "用途不符", next_nonce(), deadline()))
    request(ka, a, c2, 1)  # unconditional: granted at once (automatic transition, not relayed)
    request(kb, b, c3, 1)  # not shared: refused at once
    world.submit(tier, ka, sharing_revocation_message(approved, "停止使用", next_nonce(), deadline()))
    world.submit(tier, ka, retire_message("catalog", c3, a.jurisdiction, a.code, 2, next_nonce(), deadline()))
    world.submit(tier, kb, retire_message("system", s2, b.jurisdiction, b.code, 2, next_nonce(), deadline()))


def add_catalogs(world: TierWorld, tier: str, count: int, tag: str) -> set[str]:
    """``count`` new catalogs of the tier's first department in one batch; returns their codes."""
    (a_name, a), _ = TIER_DEPARTMENTS[tier].items()
    codes = {f"302{i:03d}/{PREFIX[tier]}{tag}{i:03d}" for i in range(count)}
    msgs = [record_message(catalog_record(a, code), "register", 1, next_nonce(), deadline()) for code in sorted(codes)]
    world.submit(tier, world.keys[a_name], *msgs)
    world.record_codes.setdefault(tier, set()).update((KIND_CATALOG, c) for c in codes)
    return codes


# ---------------------------------------------------------------------------------------- what the chain holds


def logs_of(tier: Tier, topics: list[Any] | None = None) -> list[DecodedLog]:
    """Every log of ``tier``'s directory (optionally filtered by topics), decoded, in chain order."""
    params: dict[str, Any] = {"address": tier.address, "fromBlock": "0x0", "toBlock": "latest"}
    if topics is not None:
        params["topics"] = topics
    codec = tier.client.codec
    decoded = [codec.decode_log(raw) for raw in tier.node.rpc.call("eth_getLogs", [params])]
    return [ev for ev in decoded if ev is not None]


VERSION_EVENTS = ("CatalogVersionRecorded", "CatalogRetired", "SystemVersionRecorded", "SystemRetired")


def version_events(tier: Tier) -> list[DecodedLog]:
    """The tier's catalog and system version and retirement events."""
    return [ev for ev in logs_of(tier) if ev.event in VERSION_EVENTS]


def version_counts(tier: Tier) -> Counter[tuple[str, str, int]]:
    """How many times ``tier``'s directory recorded each (event, code, version)."""
    return Counter((ev.event, ev.args["code"], ev.args["version"]) for ev in version_events(tier))


def record_states(tier: Tier, codes: set[tuple[int, str]]) -> dict[tuple[int, str], tuple[bytes, int, int]]:
    """(department, version, status) of each (kind, code) in ``tier``'s directory."""
    return {key: tier.client.record_state(*key) for key in codes}


def storage_root(tier: Tier) -> str:
    """Storage root of ``tier``'s directory (``eth_getProof``): equal roots, equal storage."""
    return str(tier.node.rpc.call("eth_getProof", [tier.address, [], "latest"])["storageHash"])


def relayed_after(tier: Tier, ev: DecodedLog) -> DecodedLog:
    """The ``Relayed`` event that follows ``ev`` in its transaction (the relay ``ev`` is an effect of)."""
    receipt = tier.node.rpc.call("eth_getTransactionReceipt", [ev.tx_hash])
    for raw in receipt["logs"]:
        decoded = tier.client.codec.decode_log(raw)
        if decoded is not None and decoded.event == "Relayed" and decoded.log_index > ev.log_index:
            return decoded
    raise AssertionError(f"{ev.event} at {ev.tx_hash}#{ev.log_index} is not followed by a Relayed event")


def log_at(tier: Tier, tx_hash: bytes, log_index: int) -> DecodedLog:
    """The decoded log ``log_index`` of transaction ``tx_hash`` on ``tier``'s chain (asserts it exists)."""
    receipt = tier.node.rpc.call("eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
    assert receipt is not None, f"no transaction 0x{tx_hash.hex()} on chain {tier.chain_id}"
    for raw in receipt["logs"]:
        if int(raw["logIndex"], 16) == log_index:
            decoded = tier.client.codec.decode_log(raw)
            assert decoded is not None
            return decoded
    raise AssertionError(f"no log {log_index} in 0x{tx_hash.hex()}")


def same_record_event(a: DecodedLog, b: DecodedLog) -> bool:
    """Whether two version events record the same thing (event, code, version, signer, nonce, signature)."""
    keys = ("code", "version", "signer", "nonce", "signature")
    return a.event == b.event and all(a.args[k] == b.args[k] for k in keys)


def custody(world: TierWorld, ev: DecodedLog) -> Iterator[tuple[str, Origin]]:
    """Follow a city version event down to its origin; yields (hop, origin) pairs and asserts each hop.

    City event → the city's ``Relayed`` after it → origin. A district origin must hold the same event, recorded
    locally. A street origin must have a district ``Relayed`` with the same origin key (the district's copy,
    same event just before it), and the street transaction must hold the same event at the origin's log.
    """
    city_relayed = relayed_after(world.city, ev)
    origin = Origin.of_relayed(city_relayed)
    assert "0x" + origin.key.hex() == "0x" + bytes(city_relayed.args["originKey"]).hex()
    yield "city", origin
    assert origin.chain_id == DISTRICT_CHAIN_ID
    if origin.directory == world.district.address:
        there = log_at(world.district, origin.tx_hash, origin.log_index)
        assert same_record_event(there, ev), (there, ev)
        assert there.block_hash == "0x" + origin.block_hash.hex() and there.block_number == origin.block_number
        return
    assert origin.directory == world.street.address, origin
    relayed_topic = "0x" + world.district.client.codec.topics_by_name["Relayed"].hex()
    hops = logs_of(world.district, [relayed_topic, "0x" + origin.key.hex()])
    assert len(hops) == 1, f"expected one district Relayed for {origin}, got {len(hops)}"
    assert Origin.of_relayed(hops[0]) == origin
    via = Origin.of_log(hops[0], DISTRICT_CHAIN_ID)
    yield "district", via
    receipt = world.district.node.rpc.call("eth_getTransactionReceipt", [hops[0].tx_hash])
    copies = [world.district.client.codec.decode_log(raw) for raw in receipt["logs"]]
    assert any(c is not None and c.log_index < hops[0].log_index and same_record_event(c, ev) for c in copies)
    there = log_at(world.street, origin.tx_hash, origin.log_index)
    assert same_record_event(there, ev), (there, ev)
    yield "street", origin


def decode_relay_input(tx_input: bytes) -> tuple[list[Any], list[bytes]]:
    """(origins, calls) of a ``relay`` transaction input."""
    origins, calls = abi_decode(["(uint256,address,bytes32,uint64,bytes32,uint32)[]", "bytes[]"], tx_input[4:])
    return list(origins), list(calls)
