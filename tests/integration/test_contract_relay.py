"""Directory contract, tier side (DirectoryFactory, IDirectoryRelay): one directory per jurisdiction as a
minimal clone, its home jurisdiction, child directories, and relays of a child's signed submissions to its
parent — every field of every event, every error with its arguments, nothing written on a revert; on one
anvil and across two anvil nodes with different chain ids.

Reverts go through :func:`expect_call_revert` (error name and key arguments; the call is mined anyway and
must fail with no log and the contract's storage root unchanged).

The tiers of the module (one anvil, one factory, created by the service account): 北京市 (city), 西城区 and
its streets 月坛街道 and 展览路街道, each its own directory. Every directory knows the tree (北京市 → 西城区 →
月坛街道, 展览路街道; 大兴区) and the four conftest departments with their keys, set up locally and signed by the
bureau administrator, who holds DEFAULT_ADMIN_ROLE in all of them. Children: 月坛街道 and 展览路街道 of 西城区,
西城区 of 北京市, each with its own sync relayer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from chain import eip712
from chain.abi import ContractCodec, DecodedLog, canonical_type, signature_of
from chain.artifacts import load_artifact
from chain.deploy import _deploy, deploy_factory
from chain.directory import KIND_CATALOG, KIND_SYSTEM, METHOD_OF, DirectoryClient, to_struct
from chain.journal import MemoryJournal
from chain.node import AnvilNode
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
from registry.models import Department, Jurisdiction, Tier
from tests.integration.conftest import (
    CHAIN_ID,
    CITY,
    DAXING,
    DEPARTMENTS,
    FUNDS_WEI,
    XICHENG,
    YUETAN,
    assert_event,
    call_and_wait,
    catalog_record,
    decoded_events,
    expect_call_revert,
    funded_account,
    next_nonce,
    reverting,
    same_value,
    sign,
    storage_root,
    system_record,
)

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
DEFAULT_ADMIN_ROLE = ZERO32
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
DAY = 86_400
ACTIVE, RETIRED = 1, 2  # IDirectory.RecordStatus
REQUESTED, GRANTED, REVOKED = 1, 2, 5  # IDirectorySharing.SharingStatus
XC, XH, DX, YT = "xc_civil", "xc_health", "dx_civil", "yuetan"

ZHANLANLU = Jurisdiction(code="110102/展览路街道", name="展览路街道", tier=Tier.STREET, parent="110102")
XINJIEKOU = Jurisdiction(code="110102/新街口街道", name="新街口街道", tier=Tier.STREET, parent="110102")
TREE = (CITY, XICHENG, DAXING, YUETAN, ZHANLANLU)
YT_SERVICE = Department(code="DYT0002", name="月坛街道社区服务中心", jurisdiction="110102/月坛街道")
ZL_OFFICE = Department(code="DZL0001", name="展览路街道办事处", jurisdiction="110102/展览路街道")
XC_EDU = Department(code="DXC0003", name="西城区教育委员会", jurisdiction="110102")

CITY_ID, XC_ID, DX_ID = code_id(CITY.code), code_id(XICHENG.code), code_id(DAXING.code)
YT_ID, ZL_ID = code_id(YUETAN.code), code_id(ZHANLANLU.code)
#: Each directory of the module and its home jurisdiction.
HOMES = {"city": CITY_ID, "xicheng": XC_ID, "yuetan": YT_ID, "zhanlan": ZL_ID}
#: child directory → its parent directory.
PARENT = {"yuetan": "xicheng", "zhanlan": "xicheng", "xicheng": "city"}

#: EIP-1167 runtime code of a minimal clone of ``implementation``: prefix ‖ implementation ‖ suffix.
CLONE_PREFIX, CLONE_SUFFIX = "363d3d373d3d3d363d73", "5af43d82803e903d91602b57fd5bf3"
#: ERC-7201 slot of OpenZeppelin's Initializable storage (`_initialized` in its low 64 bits).
INITIALIZABLE_SLOT = "0xf0c57e16840df040f15088dc2f81fe391c3923bec73e23a9662efc9c229c6a00"

DIRECTORY_ABI = load_artifact("Directory").abi
FUNCTIONS = {e["name"]: e for e in DIRECTORY_ABI if e.get("type") == "function"}


def selector(method: str) -> bytes:
    """4-byte selector of a Directory function."""
    return keccak(text=signature_of(FUNCTIONS[method]))[:4]


# ---------------------------------------------------------------- factory client


class FactoryClient:
    """A deployed DirectoryFactory: encodes calls, reads views, decodes its events and reverts (the
    Directory's errors too: ``createDirectory`` runs the clone's ``initialize``). Duck-types the parts of
    DirectoryClient that conftest's ``call_and_wait`` / ``expect_call_revert`` use."""

    def __init__(self, rpc: Rpc, address: str, chain_id: int, sender: TxSender | None = None) -> None:
        self.rpc = rpc
        self.address = to_checksum_address(address)
        self.chain_id = chain_id
        self.sender = sender
        abi = load_artifact("DirectoryFactory").abi
        self.codec = ContractCodec(abi + [e for e in DIRECTORY_ABI if e.get("type") == "error"])
        self._functions = {e["name"]: e for e in abi if e.get("type") == "function"}

    def encode(self, method: str, args: list[Any]) -> bytes:
        entry = self._functions[method]
        return keccak(text=signature_of(entry))[:4] + abi_encode([canonical_type(p) for p in entry["inputs"]], args)

    def view(self, method: str, *args: Any) -> Any:
        entry = self._functions[method]
        raw = self.rpc.call(
            "eth_call", [{"to": self.address, "data": "0x" + self.encode(method, list(args)).hex()}, "latest"]
        )
        (value,) = abi_decode([canonical_type(p) for p in entry["outputs"]], bytes.fromhex(raw[2:]))
        return to_checksum_address(value) if entry["outputs"][0]["type"] == "address" else value


# ---------------------------------------------------------------- the tiers


def sender_of(rpc: Rpc, account: LocalAccount, chain_id: int) -> TxSender:
    return TxSender(rpc, account, MemoryJournal(), chain_id, receipt_timeout_s=30, poll_s=0.002)


@dataclass
class Tiers:
    """Directories on one chain made by one factory; clients are built per test (fresh senders)."""

    rpc: Rpc
    chain_id: int
    factory: str
    bureau: LocalAccount  # DEFAULT_ADMIN_ROLE in every directory
    service: LocalAccount  # RELAYER_ROLE in every directory; creates them through the factory
    keys: dict[str, LocalAccount]  # department keys, bound in every directory
    sync: dict[str, LocalAccount]  # child directory name → the relayer the parent authorised for it
    address: dict[str, str] = field(default_factory=dict)  # directory name → address
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _senders: dict[str, TxSender] = field(default_factory=dict)

    def sender(self, account: LocalAccount) -> TxSender:
        """The one sender of ``account`` (one nonce counter per account)."""
        if account.address not in self._senders:
            self._senders[account.address] = sender_of(self.rpc, account, self.chain_id)
        return self._senders[account.address]

    def client(self, name: str, account: LocalAccount | None = None) -> DirectoryClient:
        """Client of directory ``name`` whose transactions come from ``account`` (default the service)."""
        acct = account or self.service
        key = (name, acct.address)
        if key not in self._clients:
            self._clients[key] = DirectoryClient(self.rpc, self.address[name], self.chain_id, self.sender(acct))
        client: DirectoryClient = self._clients[key]
        return client

    def relayer(self, child: str) -> DirectoryClient:
        """Client of ``child``'s parent directory sending as the relayer authorised for ``child``."""
        return self.client(PARENT[child], self.sync[child])

    def admin(self, name: str) -> DirectoryClient:
        """Client of directory ``name`` sending as the bureau administrator."""
        return self.client(name, self.bureau)

    def factory_client(self, account: LocalAccount | None = None) -> FactoryClient:
        return FactoryClient(self.rpc, self.factory, self.chain_id, self.sender(account or self.service))

    def fresh(self) -> Tiers:
        return dataclasses.replace(self, _clients={}, _senders={})


def now(rpc: Rpc) -> int:
    """Timestamp (unix seconds) of the latest block."""
    return int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def far(rpc: Rpc) -> int:
    """A deadline 60 days after the latest block."""
    return now(rpc) + 60 * DAY


def travel_to(rpc: Rpc, timestamp: int) -> None:
    """Mine an empty block at ``timestamp`` (anvil; rolled back by the test's evm_revert)."""
    rpc.call("evm_setNextBlockTimestamp", [timestamp])
    rpc.call("evm_mine", [])


def set_up_directory(t: Tiers, name: str) -> None:
    """The tree, the four departments and their keys in directory ``name``, signed by the bureau."""
    c, bureau, dl = t.client(name), t.bureau, far(t.rpc)
    c.submit_and_wait("Jurisdiction", [sign(c, bureau, jurisdiction_message(j, next_nonce(), dl)) for j in TREE])
    c.submit_and_wait(
        "Department", [sign(c, bureau, department_message(d, next_nonce(), dl)) for d in DEPARTMENTS.values()]
    )
    binds = [
        account_message("department", DEPARTMENTS[n].code, k.address, True, next_nonce(), dl) for n, k in t.keys.items()
    ]
    c.submit_and_wait("Account", [sign(c, bureau, m) for m in binds])


def set_child(t: Tiers, child: str, relayer: str | None = None, home: bytes | None = None) -> Receipt:
    """The bureau authorises ``relayer`` (default ``t.sync[child]``) for ``child`` at its parent."""
    args = [home or HOMES[child], t.chain_id, t.address[child], relayer or t.sync[child].address]
    return call_and_wait(t.admin(PARENT[child]), "setChild", args)


def build_tiers(
    rpc: Rpc,
    chain_id: int = CHAIN_ID,
    factory: str | None = None,
    names: tuple[str, ...] = tuple(HOMES),
    bureau: LocalAccount | None = None,
    service: LocalAccount | None = None,
    keys: dict[str, LocalAccount] | None = None,
    link: bool = True,
) -> Tiers:
    """Deploy (or reuse) a factory, create directories ``names``, set each one up and (``link``) authorise each
    child's sync relayer at its parent."""
    service = service or funded_account(rpc)
    bureau = bureau or Account.create()
    rpc.call("anvil_setBalance", [bureau.address, hex(FUNDS_WEI)])
    factory = factory or deploy_factory(sender_of(rpc, funded_account(rpc), chain_id))
    t = Tiers(
        rpc,
        chain_id,
        factory,
        bureau,
        service,
        keys=keys or {n: Account.create() for n in DEPARTMENTS},
        sync={child: funded_account(rpc) for child in PARENT},
    )
    for name in names:
        call_and_wait(t.factory_client(), "createDirectory", [HOMES[name], bureau.address, service.address])
        t.address[name] = t.factory_client().view("predictDirectory", service.address, HOMES[name])
        set_up_directory(t, name)
    for child, parent in PARENT.items():
        if link and child in names and parent in names:
            set_child(t, child)
    return t.fresh()


@pytest.fixture(scope="module")
def base(rpc: Rpc) -> Tiers:
    return build_tiers(rpc)


@pytest.fixture
def t(rpc: Rpc, base: Tiers) -> Iterator[Tiers]:
    """The module's tiers; every change, the clock included, is rolled back after the test (evm_revert)."""
    with reverting(rpc):
        yield base.fresh()


# ---------------------------------------------------------------- origins, calls, relays


Origin = tuple[int, str, bytes, int, bytes, int]  # IDirectoryRelay.Origin


def origin_of(event: DecodedLog, chain_id: int) -> Origin:
    """The origin of a submission: the log of its event in the child directory."""
    return (
        chain_id,
        to_checksum_address(event.address),
        bytes.fromhex(event.tx_hash[2:]),
        event.block_number,
        bytes.fromhex(event.block_hash[2:]),
        event.log_index,
    )


def invented_origin(t: Tiers, child: str, log_index: int = 0, chain_id: int | None = None) -> Origin:
    """An origin the relayer made up (a random transaction of ``child``): the parent cannot tell."""
    return (chain_id or t.chain_id, t.address[child], os.urandom(32), 7, os.urandom(32), log_index)


def origin_key(origin: Origin) -> bytes:
    """keccak256(abi.encode(chainId, directory, txHash, logIndex))."""
    chain_id, directory, tx_hash, _, _, log_index = origin
    return keccak(abi_encode(["uint256", "address", "bytes32", "uint32"], [chain_id, directory, tx_hash, log_index]))


def call_of(child: DirectoryClient, primary: str, struct: tuple[Any, ...]) -> bytes:
    """The single-submission call the child received: ``<method>([struct])``."""
    return child.encode(METHOD_OF[primary], [[struct]])


def relay(parent: DirectoryClient, origins: list[Origin], calls: list[bytes]) -> tuple[Receipt, list[DecodedLog]]:
    receipt = call_and_wait(parent, "relay", [origins, calls])
    return receipt, decoded_events(parent, receipt)


def relayed(parent: DirectoryClient, origin: Origin) -> bool:
    return bool(parent.view("originRelayed", origin_key(origin))[0])


def check_relayed(event: DecodedLog, origin: Origin, call: bytes) -> None:
    """Every field of a Relayed event."""
    chain_id, directory, tx_hash, block_number, block_hash, log_index = origin
    fields = {
        "originKey": origin_key(origin),
        "chainId": chain_id,
        "directory": directory,
        "txHash": tx_hash,
        "blockNumber": block_number,
        "blockHash": block_hash,
        "logIndex": log_index,
        "selector": call[:4],
    }
    assert_event(event, "Relayed", **fields)
    assert set(event.args) == set(fields)


def check_applied(
    parent: DirectoryClient,
    applied: list[list[DecodedLog]],
    events: list[DecodedLog],
    origins: list[Origin],
    calls: list[bytes],
) -> None:
    """The parent's events are, per relayed call, the very events the child emitted for it (same name, every
    field equal), emitted by the parent, then Relayed with the call's origin; and each origin is now spent."""
    position = 0
    for child_events, origin, call in zip(applied, origins, calls, strict=True):
        for child_event in child_events:
            event = events[position]
            assert (event.event, event.args) == (child_event.event, child_event.args)
            assert same_value(event.address, parent.address)
            position += 1
        check_relayed(events[position], origin, call)
        assert same_value(events[position].address, parent.address)
        position += 1
        assert relayed(parent, origin)
    assert position == len(events)


@dataclass
class Hop:
    """A submission applied in a child and relayed to its parent."""

    struct: tuple[Any, ...]
    origin: Origin
    call: bytes
    child_events: list[DecodedLog]
    parent_events: list[DecodedLog]
    receipt: Receipt  # the relay's


def submit_local(child: DirectoryClient, key: LocalAccount, msg: Message) -> tuple[tuple[Any, ...], Receipt]:
    struct = sign(child, key, msg)
    return struct, child.submit_and_wait(msg.primary, [struct])


def propagate(child: DirectoryClient, parent: DirectoryClient, key: LocalAccount, msg: Message) -> Hop:
    """Submit ``msg`` signed by ``key`` to ``child``, then relay it to ``parent`` with the origin of its first
    event; checks the parent's events (see :func:`check_applied`)."""
    struct, receipt = submit_local(child, key, msg)
    child_events = decoded_events(child, receipt)
    origin = origin_of(child_events[0], child.chain_id)
    call = call_of(child, msg.primary, struct)
    relay_receipt, events = relay(parent, [origin], [call])
    check_applied(parent, [child_events], events, [origin], [call])
    return Hop(struct, origin, call, child_events, events, relay_receipt)


def same(child: DirectoryClient, parent: DirectoryClient, view: str, *args: Any) -> Any:
    """The view answers the same in child and parent; returns the answer."""
    answer = child.view(view, *args)
    assert parent.view(view, *args) == answer, view
    return answer


def catalog_of(who: str, code: str = "301001/YT0001", **overrides: Any) -> Any:
    return catalog_record(DEPARTMENTS[who], code, **overrides)


def register(record: Any, rpc: Rpc, version: int = 1) -> Message:
    return record_message(record, "register" if version == 1 else "update", version, next_nonce(), far(rpc))


def request_msg(
    rpc: Rpc, catalog: str, requester: str = "DDX0001", *, end: int | None = None, version: int = 1
) -> Message:
    """``requester`` asks for the first two items of ``catalog`` at ``version`` for [now, ``end`` or 30 days)."""
    t0 = now(rpc)
    return sharing_request_message(
        catalog,
        version,
        requester,
        0b11,
        "最低生活保障资格核对",
        "《社会救助暂行办法》第十一条",
        t0,
        end or t0 + 30 * DAY,
        next_nonce(),
        far(rpc),
    )


# ================================================================ the factory


def test_factory_clones_one_directory_per_creator_and_home(t: Tiers) -> None:
    creator, other = funded_account(t.rpc), funded_account(t.rpc)
    factory = t.factory_client(creator)
    administrator, service = Account.create(), Account.create()
    home = code_id("110115/西红门镇")
    predicted = factory.view("predictDirectory", creator.address, home)
    assert t.rpc.call("eth_getCode", [predicted, "latest"]) == "0x"

    receipt = call_and_wait(factory, "createDirectory", [home, administrator.address, service.address])
    logs = receipt.logs
    assert [log["address"].lower() for log in logs] == [predicted.lower()] * 4 + [t.factory.lower()]
    clone = DirectoryClient(t.rpc, predicted, t.chain_id)
    events = [clone.codec.decode_log(log) for log in logs[:4]]
    assert_event(events[0], "RoleGranted", role=DEFAULT_ADMIN_ROLE, account=administrator.address, sender=t.factory)
    assert_event(events[1], "RoleGranted", role=RELAYER_ROLE, account=service.address, sender=t.factory)
    assert_event(
        events[2], "DirectoryInitialized", home=home, administrator=administrator.address, relayer=service.address
    )
    assert set(events[2].args) == {"home", "administrator", "relayer"}
    assert_event(events[3], "Initialized", version=1)
    created = factory.codec.decode_log(logs[4])
    assert_event(created, "DirectoryCreated", home=home, directory=predicted, creator=creator.address)
    assert set(created.args) == {"home", "directory", "creator"}

    implementation = factory.view("IMPLEMENTATION")
    code = t.rpc.call("eth_getCode", [predicted, "latest"])
    assert code == "0x" + CLONE_PREFIX + implementation[2:].lower() + CLONE_SUFFIX  # EIP-1167, 45 bytes
    assert clone.view("homeJurisdiction") == (home,)
    assert clone.has_role(DEFAULT_ADMIN_ROLE, administrator.address) and clone.has_role(RELAYER_ROLE, service.address)
    assert not clone.has_role(DEFAULT_ADMIN_ROLE, creator.address) and not clone.has_role(RELAYER_ROLE, creator.address)
    # the clone has its own EIP-712 domain (ERC-5267): its own address, not the implementation's
    _, name, version, chain_id, verifying, _, _ = clone.view("eip712Domain")
    assert (name, version, chain_id, to_checksum_address(verifying)) == ("DirectoryChain", "1", t.chain_id, predicted)

    # the same creator cannot make a second directory for the home; nothing changes
    root = storage_root(clone)
    expect_call_revert(
        factory, "createDirectory", [home, Account.create().address, creator.address], "FailedDeployment"
    )
    assert storage_root(clone) == root and t.rpc.call("eth_getCode", [predicted, "latest"]) == code
    # another creator gets its own directory for that home; the same creator one for another home
    for who, their_home in ((other, home), (creator, code_id("110115"))):
        address = factory.view("predictDirectory", who.address, their_home)
        assert address != predicted
        made = call_and_wait(
            t.factory_client(who), "createDirectory", [their_home, administrator.address, service.address]
        )
        assert_event(
            factory.codec.decode_log(made.logs[-1]),
            "DirectoryCreated",
            home=their_home,
            directory=address,
            creator=who.address,
        )
    # the address depends on creator and home only, never on administrator or relayer
    assert factory.view("predictDirectory", creator.address, home) == predicted


def test_initialize_cannot_be_called_twice(t: Tiers) -> None:
    stranger = funded_account(t.rpc)
    for account in (stranger, t.bureau, t.service):
        c = t.client("yuetan", account)
        expect_call_revert(c, "initialize", [stranger.address, stranger.address, ZERO32], "InvalidInitialization")
    c = t.client("yuetan")
    assert c.view("homeJurisdiction") == (YT_ID,)
    assert not c.has_role(DEFAULT_ADMIN_ROLE, stranger.address) and not c.has_role(RELAYER_ROLE, stranger.address)
    assert c.has_role(DEFAULT_ADMIN_ROLE, t.bureau.address)


def test_the_implementation_cannot_be_initialised(t: Tiers) -> None:
    stranger = funded_account(t.rpc)
    implementation = t.factory_client().view("IMPLEMENTATION")
    c = DirectoryClient(t.rpc, implementation, t.chain_id, sender_of(t.rpc, stranger, t.chain_id))
    # the constructor disabled initialisers: `_initialized` is type(uint64).max
    assert int(t.rpc.call("eth_getStorageAt", [implementation, INITIALIZABLE_SLOT, "latest"]), 16) == 2**64 - 1
    expect_call_revert(c, "initialize", [stranger.address, stranger.address, ZERO32], "InvalidInitialization")
    assert not c.has_role(DEFAULT_ADMIN_ROLE, stranger.address)
    assert c.view("homeJurisdiction") == (ZERO32,)
    # with no role holder, nobody can submit to it
    struct = sign(c, stranger, jurisdiction_message(CITY, next_nonce(), far(t.rpc)))
    expect_call_revert(
        c,
        "addJurisdictions",
        [[struct]],
        "AccessControlUnauthorizedAccount",
        account=stranger.address,
        neededRole=RELAYER_ROLE,
    )


def test_gas_of_adding_a_jurisdictions_directory(t: Tiers, capsys: pytest.CaptureFixture[str]) -> None:
    """Measures (prints) the gas of the factory path; asserts only that each directory works."""
    deployer = funded_account(t.rpc)
    sender = sender_of(t.rpc, deployer, t.chain_id)
    implementation, impl_tx = _deploy(sender, "Directory", [], [])
    factory_address, factory_tx = _deploy(sender, "DirectoryFactory", ["address"], [implementation])
    deploy_gas = [sender.wait(tx).gas_used for tx in (impl_tx, factory_tx)]
    factory = FactoryClient(t.rpc, factory_address, t.chain_id, t.sender(t.service))
    assert factory.view("IMPLEMENTATION") == implementation

    gas: dict[str, int] = {}
    for label, home in (
        ("city 北京市", CITY_ID),
        ("district 西城区", XC_ID),
        ("street 月坛街道", YT_ID),
        ("zero home (all)", ZERO32),
    ):
        receipt = call_and_wait(factory, "createDirectory", [home, t.bureau.address, t.service.address])
        gas[label] = receipt.gas_used
        address = factory.view("predictDirectory", t.service.address, home)
        assert DirectoryClient(t.rpc, address, t.chain_id).view("homeJurisdiction") == (home,)

    # one catalog registration of 月坛街道办事处: local in the street directory, then relayed to 西城区
    msg = register(catalog_of(YT), t.rpc)
    struct, local = submit_local(t.client("yuetan"), t.keys[YT], msg)
    origin = origin_of(decoded_events(t.client("yuetan"), local)[0], t.chain_id)
    receipt, events = relay(t.relayer("yuetan"), [origin], [call_of(t.client("yuetan"), "Catalog", struct)])
    assert [e.event for e in events] == ["CatalogVersionRecorded", "Relayed"]
    with capsys.disabled():
        print(f"\n[gas] Directory implementation deploy {deploy_gas[0]:,}; DirectoryFactory deploy {deploy_gas[1]:,}")
        for label, used in gas.items():
            print(f"[gas] createDirectory ({label}): {used:,}")
        print(f"[gas] catalog register: local submitCatalogs×1 {local.gas_used:,}; relay×1 {receipt.gas_used:,}")


# ================================================================ home jurisdiction


@pytest.mark.parametrize("primary", ["Catalog", "System"])
def test_directory_of_a_district_accepts_its_own_records_only(t: Tiers, primary: str) -> None:
    c = t.client("xicheng")
    assert c.view("homeJurisdiction") == (XC_ID,)
    make = catalog_record if primary == "Catalog" else system_record
    own = register(make(DEPARTMENTS[XC], "301001/XC0001" if primary == "Catalog" else "SXC0001"), t.rpc)
    (event,) = decoded_events(c, submit_local(c, t.keys[XC], own)[1])
    assert_event(event, f"{primary}VersionRecorded", jurisdiction=XC_ID, department=code_id("DXC0001"))
    # another district's department, and a department of a street below 西城区: not this directory's home
    for who, jurisdiction in ((DX, DX_ID), (YT, YT_ID)):
        tag = who.upper().replace("_", "")
        code = f"301001/{tag}" if primary == "Catalog" else f"S{tag}"
        msg = register(make(DEPARTMENTS[who], code), t.rpc)
        expect_call_revert(
            c,
            METHOD_OF[primary],
            [[sign(c, t.keys[who], msg)]],
            "DirectoryNotHome",
            home=XC_ID,
            jurisdiction=jurisdiction,
        )
        assert c.record_state(KIND_CATALOG if primary == "Catalog" else KIND_SYSTEM, code)[1] == 0
    # the refusal holds for updates and retirements too (a record can never have got in, but the check is first)
    kind = "catalog" if primary == "Catalog" else "system"
    retire = retire_message(kind, "X", DAXING.code, "DDX0001", 2, next_nonce(), far(t.rpc))
    expect_call_revert(
        c, METHOD_OF[primary], [[sign(c, t.keys[DX], retire)]], "DirectoryNotHome", home=XC_ID, jurisdiction=DX_ID
    )


def test_directory_of_a_street_accepts_the_streets_records_only(t: Tiers) -> None:
    c = t.client("yuetan")
    (event,) = decoded_events(c, submit_local(c, t.keys[YT], register(catalog_of(YT), t.rpc))[1])
    assert_event(event, "CatalogVersionRecorded", jurisdiction=YT_ID)
    msg = register(catalog_of(XC, "301001/XC0001"), t.rpc)  # the street's own district
    expect_call_revert(
        c, "submitCatalogs", [[sign(c, t.keys[XC], msg)]], "DirectoryNotHome", home=YT_ID, jurisdiction=XC_ID
    )


# ================================================================ children


def test_set_child_emits_child_set_and_a_zero_relayer_withdraws_it(t: Tiers) -> None:
    city, yuetan = t.admin("city"), t.address["yuetan"]
    relayer = funded_account(t.rpc)
    assert city.view("child", t.chain_id, yuetan) == (ZERO32, ZERO_ADDRESS)
    (event,) = decoded_events(city, call_and_wait(city, "setChild", [YT_ID, t.chain_id, yuetan, relayer.address]))
    fields = {"home": YT_ID, "chainId": t.chain_id, "directory": yuetan, "relayer": relayer.address}
    assert_event(event, "ChildSet", **fields)
    assert set(event.args) == set(fields)
    assert city.view("child", t.chain_id, yuetan) == (YT_ID, relayer.address.lower())
    assert city.view("child", t.chain_id + 1, yuetan) == (ZERO32, ZERO_ADDRESS)  # keyed by chain id too

    # the street's records go straight to the city under that relayer …
    msg = register(catalog_of(YT), t.rpc)
    propagate(t.client("yuetan"), t.client("city", relayer), t.keys[YT], msg)
    # … until the bureau withdraws it
    (event,) = decoded_events(city, call_and_wait(city, "setChild", [YT_ID, t.chain_id, yuetan, ZERO_ADDRESS]))
    assert_event(event, "ChildSet", home=YT_ID, chainId=t.chain_id, directory=yuetan, relayer=ZERO_ADDRESS)
    assert city.view("child", t.chain_id, yuetan) == (YT_ID, ZERO_ADDRESS)
    struct, receipt = submit_local(t.client("yuetan"), t.keys[YT], register(catalog_of(YT, "301001/YT0002"), t.rpc))
    origin = origin_of(decoded_events(t.client("yuetan"), receipt)[0], t.chain_id)
    expect_call_revert(
        t.client("city", relayer),
        "relay",
        [[origin], [call_of(t.client("yuetan"), "Catalog", struct)]],
        "RelayNotAuthorised",
        chainId=t.chain_id,
        directory=yuetan,
        sender=relayer.address,
    )


def test_set_child_replaces_the_relayer(t: Tiers) -> None:
    xicheng, yuetan = t.admin("xicheng"), t.address["yuetan"]
    successor = funded_account(t.rpc)
    (event,) = decoded_events(xicheng, set_child(t, "yuetan", successor.address))
    assert_event(event, "ChildSet", home=YT_ID, chainId=t.chain_id, directory=yuetan, relayer=successor.address)
    assert xicheng.view("child", t.chain_id, yuetan) == (YT_ID, successor.address.lower())
    struct, receipt = submit_local(t.client("yuetan"), t.keys[YT], register(catalog_of(YT), t.rpc))
    origin = origin_of(decoded_events(t.client("yuetan"), receipt)[0], t.chain_id)
    call = call_of(t.client("yuetan"), "Catalog", struct)
    expect_call_revert(
        t.relayer("yuetan"),
        "relay",
        [[origin], [call]],
        "RelayNotAuthorised",
        chainId=t.chain_id,
        directory=yuetan,
        sender=t.sync["yuetan"].address,
    )
    relay(t.client("xicheng", successor), [origin], [call])
    assert relayed(xicheng, origin)


@pytest.mark.parametrize("who", ["service relayer", "sync relayer", "jurisdiction administrator", "stranger"])
def test_only_the_default_admin_sets_children(t: Tiers, who: str) -> None:
    if who == "jurisdiction administrator":  # 西城区's directory administrator: not an AccessControl admin
        account = funded_account(t.rpc)
        appoint = account_message("administrator", XICHENG.code, account.address, True, next_nonce(), far(t.rpc))
        submit_local(t.client("xicheng"), t.bureau, appoint)
        assert t.client("xicheng").view("isAdministrator", XC_ID, account.address) == (True,)
    else:
        account = {"service relayer": t.service, "sync relayer": t.sync["yuetan"]}.get(who) or funded_account(t.rpc)
    c = t.client("xicheng", account)
    expect_call_revert(
        c,
        "setChild",
        [YT_ID, t.chain_id, t.address["yuetan"], account.address],
        "AccessControlUnauthorizedAccount",
        account=account.address,
        neededRole=DEFAULT_ADMIN_ROLE,
    )
    assert c.view("child", t.chain_id, t.address["yuetan"]) == (YT_ID, t.sync["yuetan"].address.lower())


@pytest.mark.parametrize("home", ["110199", None], ids=["unknown code", "zero"])
def test_child_of_an_unknown_home_is_refused(t: Tiers, home: str | None) -> None:
    home_id = code_id(home) if home else ZERO32
    directory = Account.create().address
    expect_call_revert(
        t.admin("xicheng"),
        "setChild",
        [home_id, t.chain_id, directory, t.sync["yuetan"].address],
        "JurisdictionUnknown",
        id=home_id,
    )
    assert t.client("xicheng").view("child", t.chain_id, directory) == (ZERO32, ZERO_ADDRESS)


# ================================================================ relays that apply


def test_relay_of_a_system_and_a_catalog_register_update_retire(t: Tiers) -> None:
    child, parent, key, rpc = t.client("yuetan"), t.relayer("yuetan"), t.keys[YT], t.rpc
    code = "301001/YT0001"
    steps = [
        register(system_record(DEPARTMENTS[YT], "SYT0001"), rpc),
        register(catalog_of(YT, source_system="SYT0001"), rpc),
        register(catalog_of(YT, source_system="SYT0001", summary="困难家庭救助对象信息（修订）"), rpc, version=2),
        retire_message("catalog", code, YUETAN.code, "DYT0001", 3, next_nonce(), far(rpc)),
        retire_message("system", "SYT0001", YUETAN.code, "DYT0001", 2, next_nonce(), far(rpc)),
    ]
    names = []
    for msg in steps:
        hop = propagate(child, parent, key, msg)
        names.append([e.event for e in hop.parent_events])
        assert hop.parent_events[0].args["signer"] == key.address
        assert hop.call[:4] == selector(METHOD_OF[msg.primary])
        # record versions spend no nonce, neither in the child nor relayed (the version sequence stops replays)
        assert not parent.nonce_used(key.address, msg.message["nonce"])
        assert not child.nonce_used(key.address, msg.message["nonce"])
    assert names == [
        ["SystemVersionRecorded", "Relayed"],
        ["CatalogVersionRecorded", "Relayed"],
        ["CatalogVersionRecorded", "Relayed"],
        ["CatalogRetired", "Relayed"],
        ["SystemRetired", "Relayed"],
    ]
    assert same(child, parent, "record", KIND_CATALOG, code)[0][:3] == (code_id("DYT0001"), 3, RETIRED)
    assert same(child, parent, "record", KIND_SYSTEM, "SYT0001")[0][:3] == (code_id("DYT0001"), 2, RETIRED)
    for version in (1, 2, 3):
        same(child, parent, "recordDigest", KIND_CATALOG, code, version)
    assert parent.record_digest(KIND_CATALOG, code, 2) == keccak(steps[2].record)


def test_relay_of_a_department_an_administrator_and_a_key_binding(t: Tiers) -> None:
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    street_admin, clerk = Account.create(), Account.create()
    # the parent registers a department of its own first, so parent and child number their departments apart
    submit_local(t.client("xicheng"), t.bureau, department_message(XC_EDU, next_nonce(), far(rpc)))
    # the bureau registers a department of the street and appoints its administrator; that one binds a key
    propagate(child, parent, t.bureau, department_message(YT_SERVICE, next_nonce(), far(rpc)))
    propagate(
        child,
        parent,
        t.bureau,
        account_message("administrator", YUETAN.code, street_admin.address, True, next_nonce(), far(rpc)),
    )
    hop = propagate(
        child,
        parent,
        street_admin,
        account_message("department", YT_SERVICE.code, clerk.address, True, next_nonce(), far(rpc)),
    )
    assert_event(
        hop.parent_events[0],
        "DepartmentAccountSet",
        department=code_id(YT_SERVICE.code),
        account=clerk.address,
        jurisdiction=YT_ID,
        active=True,
        signer=street_admin.address,
    )
    assert same(child, parent, "departmentJurisdiction", code_id(YT_SERVICE.code)) == (YT_ID,)
    assert same(child, parent, "isAdministrator", YT_ID, street_admin.address) == (True,)
    assert same(child, parent, "accountDepartment", clerk.address) == (code_id(YT_SERVICE.code),)
    # the relayed key signs the department's catalog, which is relayed too
    propagate(child, parent, clerk, register(catalog_record(YT_SERVICE, "301002/YT0101"), rpc))
    assert same(child, parent, "record", KIND_CATALOG, "301002/YT0101")[0][:3] == (code_id("DYT0002"), 1, ACTIVE)
    # and the key's revocation follows it up
    propagate(
        child,
        parent,
        street_admin,
        account_message("department", YT_SERVICE.code, clerk.address, False, next_nonce(), far(rpc)),
    )
    assert same(child, parent, "accountDepartment", clerk.address) == (ZERO32,)


def test_relay_of_a_jurisdiction_from_a_district_to_the_city(t: Tiers) -> None:
    child, parent = t.client("xicheng"), t.relayer("xicheng")
    hop = propagate(child, parent, t.bureau, jurisdiction_message(XINJIEKOU, next_nonce(), far(t.rpc)))
    assert_event(
        hop.parent_events[0],
        "JurisdictionAdded",
        id=code_id(XINJIEKOU.code),
        parent=XC_ID,
        tier=3,
        code=XINJIEKOU.code,
        name=XINJIEKOU.name,
        signer=t.bureau.address,
    )
    assert same(child, parent, "jurisdiction", code_id(XINJIEKOU.code)) == (XC_ID, 3)
    # and a district record up to the city
    propagate(child, parent, t.keys[XC], register(catalog_of(XC, "301001/XC0001"), t.rpc))
    assert same(child, parent, "record", KIND_CATALOG, "301001/XC0001")[0][:3] == (code_id("DXC0001"), 1, ACTIVE)


def test_relay_of_sharing_requests_decisions_and_revocations(t: Tiers) -> None:
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    conditional, unconditional = "301001/YT0001", "301001/YT0002"
    propagate(child, parent, t.keys[YT], register(catalog_of(YT, conditional), rpc))
    propagate(
        child,
        parent,
        t.keys[YT],
        register(catalog_of(YT, unconditional, share_type="unconditional", share_conditions=None), rpc),
    )

    # 大兴区民政局 asks for the conditional catalog; 月坛街道办事处 approves, then revokes
    ask = request_msg(rpc, conditional)
    hop = propagate(child, parent, t.keys[DX], ask)
    request = sharing_request_id(t.keys[DX].address, ask.message["nonce"])
    assert [e.event for e in hop.parent_events] == ["SharingRequested", "Relayed"]
    assert_event(hop.parent_events[0], "SharingRequested", id=request, owner=code_id("DYT0001"))
    assert same(child, parent, "sharing", request)[0][-1] == REQUESTED
    hop = propagate(child, parent, t.keys[YT], sharing_decision_message(request, True, "同意", next_nonce(), far(rpc)))
    assert_event(hop.parent_events[0], "SharingStatusChanged", id=request, to=GRANTED, signer=t.keys[YT].address)
    assert same(child, parent, "sharing", request)[0][-1] == GRANTED
    hop = propagate(child, parent, t.keys[YT], sharing_revocation_message(request, "核对结束", next_nonce(), far(rpc)))
    assert_event(hop.parent_events[0], "SharingStatusChanged", id=request, to=REVOKED)
    assert same(child, parent, "sharing", request)[0][-1] == REVOKED

    # an unconditional catalog: the automatic grant happens in the parent as it did in the child
    ask = request_msg(rpc, unconditional, "DXC0002")
    hop = propagate(child, parent, t.keys[XH], ask)
    request = sharing_request_id(t.keys[XH].address, ask.message["nonce"])
    assert [e.event for e in hop.parent_events] == ["SharingRequested", "SharingStatusChanged", "Relayed"]
    assert_event(hop.parent_events[1], "SharingStatusChanged", id=request, to=GRANTED, reason="unconditional")
    assert same(child, parent, "sharing", request)[0][-1] == GRANTED


def test_deadline_passed_at_relay_time_is_accepted(t: Tiers) -> None:
    """The deadline was met at the origin; relays may lag behind it (catching up, restarts)."""
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    soon = now(rpc) + 120
    msgs = [
        record_message(catalog_of(YT), "register", 1, next_nonce(), soon),
        department_message(YT_SERVICE, next_nonce(), soon),
    ]
    submitted = [(m, *submit_local(child, key, m)) for m, key in zip(msgs, (t.keys[YT], t.bureau), strict=True)]
    travel_to(rpc, soon + DAY)
    for msg, struct, receipt in submitted:
        origin = origin_of(decoded_events(child, receipt)[0], t.chain_id)
        relay_receipt, events = relay(parent, [origin], [call_of(child, msg.primary, struct)])
        stamp = int(rpc.call("eth_getBlockByNumber", [hex(relay_receipt.block_number), False])["timestamp"], 16)
        assert stamp > msg.message["deadline"]
        check_applied(parent, [decoded_events(child, receipt)], events, [origin], [call_of(child, msg.primary, struct)])
    # the same deadline in a local submission is refused, as it always was
    late = sign(parent, t.bureau, department_message(XC_EDU, next_nonce(), soon))
    expect_call_revert(t.client("xicheng"), "registerDepartments", [[late]], "SubmissionExpired", deadline=soon)


def test_batch_of_relays_applies_each_with_its_origin(t: Tiers) -> None:
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    msgs = [
        register(system_record(DEPARTMENTS[YT], "SYT0001"), rpc),
        register(catalog_of(YT), rpc),
        register(catalog_of(YT, grade="2"), rpc, version=2),
    ]
    structs, applied, origins = [], [], []
    for msg in msgs:
        struct, receipt = submit_local(child, t.keys[YT], msg)
        structs.append(struct)
        applied.append(decoded_events(child, receipt))
        origins.append(origin_of(applied[-1][0], t.chain_id))
    calls = [call_of(child, m.primary, s) for m, s in zip(msgs, structs, strict=True)]
    _, events = relay(parent, origins, calls)
    assert [e.event for e in events] == [
        "SystemVersionRecorded",
        "Relayed",
        "CatalogVersionRecorded",
        "Relayed",
        "CatalogVersionRecorded",
        "Relayed",
    ]
    check_applied(parent, applied, events, origins, calls)
    assert same(child, parent, "record", KIND_CATALOG, "301001/YT0001")[0][:3] == (code_id("DYT0001"), 2, ACTIVE)


def test_relay_batch_is_atomic(t: Tiers) -> None:
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    good = [register(system_record(DEPARTMENTS[YT], "SYT0001"), rpc), register(catalog_of(YT), rpc)]
    origins, calls = [], []
    for msg in good:
        struct, receipt = submit_local(child, t.keys[YT], msg)
        origins.append(origin_of(decoded_events(child, receipt)[0], t.chain_id))
        calls.append(call_of(child, msg.primary, struct))
    outside = sign(child, t.keys[DX], register(catalog_of(DX, "301001/DX0001"), rpc))  # a 大兴区 record
    bad_origin = invented_origin(t, "yuetan")
    expect_call_revert(
        parent,
        "relay",
        [[*origins, bad_origin], [*calls, call_of(child, "Catalog", outside)]],
        "RelayOutsideChild",
        home=YT_ID,
        jurisdiction=DX_ID,
    )
    assert not any(relayed(parent, o) for o in (*origins, bad_origin))
    assert parent.record_state(KIND_SYSTEM, "SYT0001")[1] == 0
    assert parent.record_state(KIND_CATALOG, "301001/YT0001")[1] == 0
    # a bad call in the middle: the first is undone too
    expect_call_revert(
        parent,
        "relay",
        [[origins[0], bad_origin, origins[1]], [calls[0], b"", calls[1]]],
        "RelayCallInvalid",
        selector=bytes(4),
    )
    assert not relayed(parent, origins[0])
    _, events = relay(parent, origins, calls)  # without the bad one, the same batch goes through
    assert [e.event for e in events] == ["SystemVersionRecorded", "Relayed", "CatalogVersionRecorded", "Relayed"]


def test_relayed_nonces_are_per_child(t: Tiers) -> None:
    """A signer's nonce is spent per EIP-712 domain: the same nonce signed in two children and in the parent
    itself is three different nonces at the parent."""
    rpc, nonce, bureau = t.rpc, next_nonce(), t.bureau
    yuetan, zhanlan = t.client("yuetan"), t.client("zhanlan")
    in_yuetan = department_message(YT_SERVICE, nonce, far(rpc))
    in_zhanlan = department_message(ZL_OFFICE, nonce, far(rpc))
    hop = propagate(yuetan, t.relayer("yuetan"), bureau, in_yuetan)
    assert not t.client("xicheng").nonce_used(bureau.address, nonce)
    propagate(zhanlan, t.relayer("zhanlan"), bureau, in_zhanlan)
    (event,) = decoded_events(
        t.client("xicheng"), submit_local(t.client("xicheng"), bureau, department_message(XC_EDU, nonce, far(rpc)))[1]
    )
    assert_event(event, "DepartmentRegistered", id=code_id(XC_EDU.code), nonce=nonce)
    assert t.client("xicheng").nonce_used(bureau.address, nonce)
    # within one child's space it is spent
    expect_call_revert(
        t.relayer("yuetan"),
        "relay",
        [[invented_origin(t, "yuetan")], [hop.call]],
        "SubmissionNonceUsed",
        signer=bureau.address,
        nonce=nonce,
    )


# ================================================================ relays refused


@pytest.mark.parametrize(
    "who", ["service relayer", "bureau administrator", "stranger", "relayer of another child", "relayer of the parent"]
)
def test_relay_from_an_account_not_authorised_for_the_child_is_refused(t: Tiers, who: str) -> None:
    accounts = {
        "service relayer": t.service,
        "bureau administrator": t.bureau,
        "relayer of another child": t.sync["zhanlan"],
        "relayer of the parent": t.sync["xicheng"],
    }
    account = accounts.get(who) or funded_account(t.rpc)
    struct, receipt = submit_local(t.client("yuetan"), t.keys[YT], register(catalog_of(YT), t.rpc))
    origin = origin_of(decoded_events(t.client("yuetan"), receipt)[0], t.chain_id)
    call = call_of(t.client("yuetan"), "Catalog", struct)
    expect_call_revert(
        t.client("xicheng", account),
        "relay",
        [[origin], [call]],
        "RelayNotAuthorised",
        chainId=t.chain_id,
        directory=t.address["yuetan"],
        sender=account.address,
    )
    assert not relayed(t.client("xicheng"), origin)
    relay(t.relayer("yuetan"), [origin], [call])  # the authorised relayer may


@pytest.mark.parametrize(
    "claim", ["another child", "the child on another chain", "an unknown directory", "the parent itself"]
)
def test_child_relayer_relaying_for_a_directory_it_is_not_authorised_for_is_refused(t: Tiers, claim: str) -> None:
    chain_id, directory = {
        "another child": (t.chain_id, t.address["zhanlan"]),
        "the child on another chain": (t.chain_id + 1, t.address["yuetan"]),
        "an unknown directory": (t.chain_id, Account.create().address),
        "the parent itself": (t.chain_id, t.address["xicheng"]),
    }[claim]
    struct = sign(t.client("yuetan"), t.keys[YT], register(catalog_of(YT), t.rpc))
    origin = (chain_id, directory, os.urandom(32), 1, os.urandom(32), 0)
    expect_call_revert(
        t.relayer("yuetan"),
        "relay",
        [[origin], [call_of(t.client("yuetan"), "Catalog", struct)]],
        "RelayNotAuthorised",
        chainId=chain_id,
        directory=directory,
        sender=t.sync["yuetan"].address,
    )


def test_same_origin_twice_is_refused(t: Tiers) -> None:
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    hop = propagate(child, parent, t.keys[YT], register(catalog_of(YT), rpc))
    key = origin_key(hop.origin)
    expect_call_revert(parent, "relay", [[hop.origin], [hop.call]], "RelayDuplicate", originKey=key)
    # the key is the event (chain, directory, transaction, log index), whatever call comes with it …
    other = sign(child, t.keys[YT], register(system_record(DEPARTMENTS[YT], "SYT0001"), rpc))
    expect_call_revert(
        parent, "relay", [[hop.origin], [call_of(child, "System", other)]], "RelayDuplicate", originKey=key
    )
    # … and whatever block it claims (a block number and hash are provenance, not identity)
    moved = (*hop.origin[:3], hop.origin[3] + 1, os.urandom(32), hop.origin[5])
    assert origin_key(moved) == key
    expect_call_revert(parent, "relay", [[moved], [hop.call]], "RelayDuplicate", originKey=key)
    assert parent.record_state(KIND_SYSTEM, "SYT0001")[1] == 0


def test_same_origin_twice_in_one_batch_is_refused(t: Tiers) -> None:
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    struct, receipt = submit_local(child, t.keys[YT], register(catalog_of(YT), rpc))
    origin = origin_of(decoded_events(child, receipt)[0], t.chain_id)
    call = call_of(child, "Catalog", struct)
    other = call_of(child, "System", sign(child, t.keys[YT], register(system_record(DEPARTMENTS[YT], "SYT0001"), rpc)))
    for calls in ([call, call], [call, other]):
        expect_call_revert(parent, "relay", [[origin, origin], calls], "RelayDuplicate", originKey=origin_key(origin))
        assert not relayed(parent, origin)
        assert parent.record_state(KIND_CATALOG, "301001/YT0001")[1] == 0


@pytest.mark.parametrize("version", [1, 2])
def test_same_record_under_another_origin_is_refused_by_the_version_sequence(t: Tiers, version: int) -> None:
    """A relayed record version spends no nonce: relayed again under another origin key (made up, or the next log
    of the transaction) it meets the record it already made — register: RecordStatusInvalid; update:
    RecordVersionMismatch — and writes nothing."""
    child, parent, rpc, key = t.client("yuetan"), t.relayer("yuetan"), t.rpc, t.keys[YT]
    code = "301001/YT0001"
    if version == 2:
        propagate(child, parent, key, register(catalog_of(YT), rpc))
    msg = register(catalog_of(YT, summary="困难家庭救助对象信息（修订）"), rpc, version=version)
    hop = propagate(child, parent, key, msg)
    before = parent.view("record", KIND_CATALOG, code)
    errors = {
        1: ("RecordStatusInvalid", {"current": ACTIVE, "expected": 0}),
        2: ("RecordVersionMismatch", {"expected": 3, "got": 2}),
    }
    error, args = errors[version]
    for other in (invented_origin(t, "yuetan"), (*hop.origin[:5], hop.origin[5] + 1)):
        assert origin_key(other) != origin_key(hop.origin)
        expect_call_revert(parent, "relay", [[other], [hop.call]], error, kind=KIND_CATALOG, code=code, **args)
        assert not relayed(parent, other)
    assert parent.view("record", KIND_CATALOG, code) == before
    assert before[0][:3] == (code_id("DYT0001"), version, ACTIVE)
    assert not parent.nonce_used(key.address, msg.message["nonce"])


def test_records_signed_with_one_nonce_relay_and_apply(t: Tiers) -> None:
    """Two catalogs of the child signed with the same nonce both apply in the child and both relay."""
    child, parent, rpc, key, nonce = t.client("yuetan"), t.relayer("yuetan"), t.rpc, t.keys[YT], next_nonce()
    codes = ("301001/YT0001", "301001/YT0002")
    for code in codes:
        msg = record_message(catalog_of(YT, code), "register", 1, nonce, far(rpc))
        hop = propagate(child, parent, key, msg)
        assert_event(hop.parent_events[0], "CatalogVersionRecorded", code=code, nonce=nonce, signer=key.address)
    for code in codes:
        assert same(child, parent, "record", KIND_CATALOG, code)[0][:3] == (code_id("DYT0001"), 1, ACTIVE)


def _two_submissions(t: Tiers) -> list[tuple[Any, ...]]:
    rpc = t.rpc
    return [sign(t.client("yuetan"), t.keys[YT], register(catalog_of(YT, f"301001/YT000{i}"), rpc)) for i in (1, 2)]


INVALID_CALLS: dict[str, tuple[Any, bytes]] = {
    # name: (call factory (t, parent) -> bytes, the selector RelayCallInvalid names)
    "expireSharing": (lambda t, p: p.encode("expireSharing", [[os.urandom(32)]]), selector("expireSharing")),
    "relay itself": (
        lambda t, p: p.encode(
            "relay", [[invented_origin(t, "yuetan")], [call_of(t.client("yuetan"), "Catalog", _two_submissions(t)[0])]]
        ),
        selector("relay"),
    ),
    "setChild": (
        lambda t, p: p.encode("setChild", [YT_ID, t.chain_id, t.address["yuetan"], t.sync["yuetan"].address]),
        selector("setChild"),
    ),
    "grantRole": (lambda t, p: p.encode("grantRole", [RELAYER_ROLE, t.sync["yuetan"].address]), selector("grantRole")),
    "initialize": (
        lambda t, p: p.encode("initialize", [t.sync["yuetan"].address] * 2 + [ZERO32]),
        selector("initialize"),
    ),
    "a 2-item batch": (
        lambda t, p: t.client("yuetan").encode("submitCatalogs", [_two_submissions(t)]),
        selector("submitCatalogs"),
    ),
    # malformed encodings of a relayable call: refused before any submission is read (the call is applied in the
    # relay's own frame, its array read where it lies in the relay's calldata: _relayedArray)
    "a bare selector": (lambda t, p: selector("submitCatalogs"), selector("submitCatalogs")),
    "an array offset past the call": (
        lambda t, p: selector("submitCatalogs") + (0x1000).to_bytes(32, "big") + (1).to_bytes(32, "big"),
        selector("submitCatalogs"),
    ),
    "a length with no element head": (
        lambda t, p: selector("requestSharing") + (0x20).to_bytes(32, "big") + (1).to_bytes(32, "big"),
        selector("requestSharing"),
    ),
    "an unknown selector": (lambda t, p: bytes.fromhex("deadbeef") + bytes(96), bytes.fromhex("deadbeef")),
    "an empty call": (lambda t, p: b"", bytes(4)),
    "3 bytes": (lambda t, p: selector("submitCatalogs")[:3], bytes(4)),
}


@pytest.mark.parametrize("case", INVALID_CALLS)
def test_call_that_is_not_one_relayable_submission_is_refused(t: Tiers, case: str) -> None:
    parent = t.relayer("yuetan")
    make, named = INVALID_CALLS[case]
    origin = invented_origin(t, "yuetan")
    expect_call_revert(parent, "relay", [[origin], [make(t, parent)]], "RelayCallInvalid", selector=named)
    assert not relayed(parent, origin)


def test_relayed_empty_batch_is_refused_and_nothing_relayed(t: Tiers) -> None:
    parent = t.relayer("yuetan")
    origin = invented_origin(t, "yuetan")
    empty = t.client("yuetan").encode("submitCatalogs", [[]])
    expect_call_revert(parent, "relay", [[origin], [empty]], "DirectoryBatchEmpty")
    assert not relayed(parent, origin)


@pytest.mark.parametrize("case", ["itself", "the city above it", "its own home"])
def test_set_child_refuses_itself_and_homes_not_below_it(t: Tiers, case: str) -> None:
    """西城区's directory takes as children only other directories serving a jurisdiction strictly below 西城区."""
    admin = t.admin("xicheng")
    home = {"itself": YT_ID, "the city above it": code_id("110000"), "its own home": XC_ID}[case]
    directory = admin.address if case == "itself" else Account.create().address
    expect_call_revert(
        admin, "setChild", [home, t.chain_id, directory, t.sync["yuetan"].address], "ChildInvalid",
        chainId=t.chain_id, directory=directory, home=home,
    )  # fmt: skip
    assert t.client("xicheng").view("child", t.chain_id, directory) == (ZERO32, ZERO_ADDRESS)


@pytest.mark.parametrize(("origins", "calls"), [(2, 1), (0, 1), (1, 0), (1, 3)])
def test_origins_and_calls_of_different_lengths_are_refused(t: Tiers, origins: int, calls: int) -> None:
    struct = _two_submissions(t)[0]
    call = call_of(t.client("yuetan"), "Catalog", struct)
    expect_call_revert(
        t.relayer("yuetan"),
        "relay",
        [[invented_origin(t, "yuetan", i) for i in range(origins)], [call] * calls],
        "RelayLengthMismatch",
        origins=origins,
        calls=calls,
    )


def test_empty_relay_is_refused(t: Tiers) -> None:
    expect_call_revert(t.relayer("yuetan"), "relay", [[], []], "DirectoryBatchEmpty")


@pytest.mark.parametrize("primary", ["Catalog", "System"])
@pytest.mark.parametrize(("who", "jurisdiction"), [(DX, DX_ID), (XC, XC_ID)], ids=["大兴区", "西城区 (the parent)"])
def test_record_outside_the_childs_subtree_is_refused(t: Tiers, primary: str, who: str, jurisdiction: bytes) -> None:
    """A record signed under the 月坛 child's domain by a key the parent knows, of another jurisdiction."""
    make = catalog_record if primary == "Catalog" else system_record
    msg = register(make(DEPARTMENTS[who], "301001/OUT" if primary == "Catalog" else "SOUT"), t.rpc)
    struct = sign(t.client("yuetan"), t.keys[who], msg)
    origin = invented_origin(t, "yuetan")
    expect_call_revert(
        t.relayer("yuetan"),
        "relay",
        [[origin], [call_of(t.client("yuetan"), primary, struct)]],
        "RelayOutsideChild",
        home=YT_ID,
        jurisdiction=jurisdiction,
    )
    assert not relayed(t.client("xicheng"), origin)


def test_record_below_the_childs_home_is_accepted(t: Tiers) -> None:
    """The subtree rule: a 西城区 child may carry a 月坛街道 record (below its home) to the city. (The city cannot
    tell whether 西城区 applied it: its own directory would refuse it, DirectoryNotHome — the parent trusts the
    relayer for inclusion, and checks the signature, the subtree and its own state.)"""
    msg = register(catalog_of(YT), t.rpc)
    struct = sign(t.client("xicheng"), t.keys[YT], msg)
    origin = invented_origin(t, "xicheng")
    call = call_of(t.client("xicheng"), "Catalog", struct)
    _, events = relay(t.relayer("xicheng"), [origin], [call])
    assert_event(events[0], "CatalogVersionRecorded", jurisdiction=YT_ID, signer=t.keys[YT].address)
    check_relayed(events[1], origin, call)


def _with_record(msg: Message, record: bytes) -> Message:
    """``msg`` carrying ``record`` instead (the contract hashes what it gets: the digest follows)."""
    return Message(msg.primary, {**msg.message, "digest": keccak(record)}, record)


def _with(msg: Message, **changes: Any) -> Message:
    return Message(msg.primary, {**msg.message, **changes}, msg.record)


FORGED = record_message(catalog_of(YT, name="伪造的名称"), "register", 1, 0, 0).record
#: name: (primary, who signs, the message, the relayer's change to it, the error the parent answers)
ALTERATIONS: dict[str, tuple[str, str, Any, Any, str]] = {
    "record bytes": (
        "Catalog", YT, lambda rpc: register(catalog_of(YT), rpc), lambda m: _with_record(m, FORGED),
        "DepartmentAccountNotBound",
    ),
    "one byte of the record": (
        "System", YT, lambda rpc: register(system_record(DEPARTMENTS[YT], "SYT0001"), rpc),
        lambda m: _with_record(m, m.record[:-2] + b"!}"), "DepartmentAccountNotBound",
    ),
    "version": (
        "Catalog", YT, lambda rpc: register(catalog_of(YT), rpc), lambda m: _with(m, version=2),
        "DepartmentAccountNotBound",
    ),
    "share type": (
        "Catalog", YT, lambda rpc: register(catalog_of(YT), rpc), lambda m: _with(m, shareType=1),
        "DepartmentAccountNotBound",
    ),
    "requested items": (
        "SharingRequest", DX, lambda rpc: request_msg(rpc, "301001/YT0009"), lambda m: _with(m, items=0b1),
        "DepartmentAccountNotBound",
    ),
    "department name": (
        "Department", "bureau", lambda rpc: department_message(YT_SERVICE, next_nonce(), far(rpc)),
        lambda m: _with(m, name="冒名的部门"), "JurisdictionNotAdministrator",
    ),
}  # fmt: skip


def _error_args(error: str, msg: Message, recovered: str) -> dict[str, Any]:
    if error == "JurisdictionNotAdministrator":
        return {"jurisdiction": msg.message["jurisdiction"], "signer": recovered}
    department = msg.message.get("department", msg.message.get("requester"))
    return {"account": recovered, "department": department}


@pytest.mark.parametrize("alteration", ALTERATIONS)
def test_relayer_altering_signed_content_is_refused(t: Tiers, alteration: str) -> None:
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    primary, who, make, alter, error = ALTERATIONS[alteration]
    key = t.bureau if who == "bureau" else t.keys[who]
    if primary == "SharingRequest":  # the catalog asked for is in the parent already
        propagate(child, parent, t.keys[YT], register(catalog_of(YT, "301001/YT0009"), rpc))
    msg = make(rpc)
    struct, receipt = submit_local(child, key, msg)
    origin = origin_of(decoded_events(child, receipt)[0], t.chain_id)
    altered = alter(msg)
    recovered = eip712.recover(child.typed_data(primary, altered.message), struct[-1])
    assert recovered != key.address
    forged = to_struct(primary, altered.message, struct[-1], altered.record)
    expect_call_revert(
        parent, "relay", [[origin], [call_of(child, primary, forged)]], error, **_error_args(error, msg, recovered)
    )
    assert not relayed(parent, origin)
    relay(parent, [origin], [call_of(child, primary, struct)])  # the untouched call still goes through


@pytest.mark.parametrize("change", ["chain id", "directory"])
def test_relayer_altering_the_origin_chain_or_directory_is_refused(t: Tiers, change: str) -> None:
    """The signature is bound to the child's domain (chain id, directory): another origin recovers another
    signer. Unless the relayer is authorised for the other origin too, it is refused before that."""
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    msg = register(catalog_of(YT), rpc)
    struct, receipt = submit_local(child, t.keys[YT], msg)
    origin = origin_of(decoded_events(child, receipt)[0], t.chain_id)
    chain_id, directory = (t.chain_id + 1, origin[1]) if change == "chain id" else (t.chain_id, t.address["zhanlan"])
    forged = (chain_id, directory, *origin[2:])
    call = call_of(child, "Catalog", struct)
    if change == "chain id":
        expect_call_revert(
            parent,
            "relay",
            [[forged], [call]],
            "RelayNotAuthorised",
            chainId=chain_id,
            directory=directory,
            sender=t.sync["yuetan"].address,
        )
    # the bureau authorises the same relayer for that origin too, with the same home: the signature decides
    call_and_wait(t.admin("xicheng"), "setChild", [YT_ID, chain_id, directory, t.sync["yuetan"].address])
    typed = eip712.typed_data(child.types, "Catalog", eip712.domain(chain_id, directory), msg.message)
    recovered = eip712.recover(typed, struct[-1])
    assert recovered != t.keys[YT].address
    expect_call_revert(
        parent,
        "relay",
        [[forged], [call]],
        "DepartmentAccountNotBound",
        account=recovered,
        department=code_id("DYT0001"),
    )
    relay(parent, [origin], [call])


# ================================================================ three tiers


def test_street_record_reaches_the_city_under_its_street_origin(t: Tiers) -> None:
    """A relayed submission stays bound to the street's domain: the city accepts it from the street directory
    (a child of the city too), never as if 西城区 had received it; both tiers key it by the same origin."""
    street, district, rpc = t.client("yuetan"), t.client("xicheng"), t.rpc
    msg = register(catalog_of(YT), rpc)
    hop = propagate(street, t.relayer("yuetan"), t.keys[YT], msg)
    as_district = origin_of(hop.parent_events[0], t.chain_id)  # the log 西城区 emitted
    city = t.relayer("xicheng")
    recovered = eip712.recover(district.typed_data("Catalog", msg.message), hop.struct[-1])
    assert recovered != t.keys[YT].address
    expect_call_revert(
        city,
        "relay",
        [[as_district], [hop.call]],
        "DepartmentAccountNotBound",
        account=recovered,
        department=code_id("DYT0001"),
    )
    # the bureau makes the street directory a child of the city too (the district's sync relayer carries it)
    call_and_wait(t.admin("city"), "setChild", [YT_ID, t.chain_id, t.address["yuetan"], t.sync["xicheng"].address])
    _, events = relay(city, [hop.origin], [hop.call])
    check_applied(city, [hop.child_events], events, [hop.origin], [hop.call])
    assert events[-1].args["originKey"] == hop.parent_events[-1].args["originKey"]
    assert same(street, city, "record", KIND_CATALOG, "301001/YT0001") == district.view(
        "record", KIND_CATALOG, "301001/YT0001"
    )


# ================================================================ two chains


def test_relay_across_two_chains() -> None:
    """月坛街道's directory on a district chain, 西城区's on a city chain (two anvil nodes, two chain ids).

    One deployer makes the factory on both (same address), and the service creates a 月坛街道 directory on
    both: the same address on two chains, told apart by the chain id in the EIP-712 domain alone."""
    with AnvilNode(chain_id=1102) as district_node, AnvilNode(chain_id=1100) as city_node:
        district, city = Rpc(district_node.rpc_url), Rpc(city_node.rpc_url)
        deployer, service, bureau = Account.create(), Account.create(), Account.create()
        keys = {n: Account.create() for n in DEPARTMENTS}
        factories = []
        for rpc, chain_id in ((district, 1102), (city, 1100)):
            for acct in (deployer, service):
                rpc.call("anvil_setBalance", [acct.address, hex(FUNDS_WEI)])
            factories.append(deploy_factory(sender_of(rpc, deployer, chain_id)))
        assert factories[0] == factories[1]
        low = build_tiers(district, 1102, factories[0], ("yuetan",), bureau, service, keys)
        high = build_tiers(city, 1100, factories[1], ("xicheng", "yuetan"), bureau, service, keys, link=False)
        assert low.address["yuetan"] == high.address["yuetan"]  # same factory, creator and home
        sync = funded_account(city)
        child, parent = low.client("yuetan"), high.client("xicheng", sync)
        (event,) = decoded_events(
            parent, call_and_wait(high.admin("xicheng"), "setChild", [YT_ID, 1102, low.address["yuetan"], sync.address])
        )
        assert_event(event, "ChildSet", home=YT_ID, chainId=1102, directory=low.address["yuetan"], relayer=sync.address)

        clerk = Account.create()
        steps: list[tuple[LocalAccount, Message]] = [
            (bureau, department_message(YT_SERVICE, next_nonce(), far(district))),
            (bureau, account_message("department", YT_SERVICE.code, clerk.address, True, next_nonce(), far(district))),
            (keys[YT], register(system_record(DEPARTMENTS[YT], "SYT0001"), district)),
            (keys[YT], register(catalog_of(YT, source_system="SYT0001"), district)),
            (keys[YT], register(catalog_of(YT, source_system="SYT0001", grade="2"), district, version=2)),
            (
                clerk,
                register(
                    catalog_record(YT_SERVICE, "301002/YT0101", share_type="unconditional", share_conditions=None),
                    district,
                ),
            ),
        ]
        for key, msg in steps:
            hop = propagate(child, parent, key, msg)
            assert hop.origin[0] == 1102 and hop.parent_events[-1].args["chainId"] == 1102
        ask = request_msg(district, "301001/YT0001", version=2)
        propagate(child, parent, keys[DX], ask)
        request = sharing_request_id(keys[DX].address, ask.message["nonce"])
        propagate(child, parent, keys[YT], sharing_decision_message(request, True, "同意", next_nonce(), far(district)))
        propagate(child, parent, keys[YT], sharing_revocation_message(request, "核对结束", next_nonce(), far(district)))
        auto = request_msg(district, "301002/YT0101", "DXC0001")
        hop = propagate(child, parent, keys[XC], auto)
        assert [e.event for e in hop.parent_events] == ["SharingRequested", "SharingStatusChanged", "Relayed"]
        propagate(
            child,
            parent,
            keys[YT],
            retire_message("catalog", "301001/YT0001", YUETAN.code, "DYT0001", 3, next_nonce(), far(district)),
        )

        assert same(child, parent, "record", KIND_CATALOG, "301001/YT0001")[0][:3] == (code_id("DYT0001"), 3, RETIRED)
        for code in ("301001/YT0001", "301002/YT0101"):
            for version in (1, 2):
                same(child, parent, "recordDigest", KIND_CATALOG, code, version)
        same(child, parent, "record", KIND_CATALOG, "301002/YT0101")
        same(child, parent, "record", KIND_SYSTEM, "SYT0001")
        assert same(child, parent, "sharing", request)[0][-1] == REVOKED
        same(child, parent, "sharing", sharing_request_id(keys[XC].address, auto.message["nonce"]))
        assert same(child, parent, "accountDepartment", clerk.address) == (code_id(YT_SERVICE.code),)

        # the relayer claims the submission came from the 月坛街道 directory of the city chain (same address)
        msg = register(catalog_of(YT, "301001/YT0002"), district)
        struct, receipt = submit_local(child, keys[YT], msg)
        origin = origin_of(decoded_events(child, receipt)[0], 1102)
        call = call_of(child, "Catalog", struct)
        forged = (1100, *origin[1:])
        expect_call_revert(
            parent,
            "relay",
            [[forged], [call]],
            "RelayNotAuthorised",
            chainId=1100,
            directory=origin[1],
            sender=sync.address,
        )
        call_and_wait(high.admin("xicheng"), "setChild", [YT_ID, 1100, origin[1], sync.address])
        # the city chain's 月坛街道 directory, at the same address: the domain the signature is not for
        same_address = high.client("yuetan")
        recovered = eip712.recover(same_address.typed_data("Catalog", msg.message), struct[-1])
        assert recovered != keys[YT].address
        expect_call_revert(
            parent,
            "relay",
            [[forged], [call]],
            "DepartmentAccountNotBound",
            account=recovered,
            department=code_id("DYT0001"),
        )
        relay(parent, [origin], [call])
        same(child, parent, "record", KIND_CATALOG, "301001/YT0002")


# ================================================================ relay scope and encoding (bugs found, now fixed)


def test_non_canonical_encoding_cannot_smuggle_a_batch_under_one_origin(t: Tiers) -> None:
    """``_relayOne`` checks ``call[36:68] == 1``, the length word *if* the array's offset is 0x20. With offset
    0x40 that word is padding the decoder skips, and the real array (2 items) sits after it: both submissions
    are applied and one Relayed names one origin for both — the second's provenance is lost and its own origin
    can never be relayed (its nonce is spent). The count is now read where the array's offset points, as the
    relayed function reads it (``_relayedArray``), and more than one submission is ``RelayCallInvalid``."""
    structs = _two_submissions(t)
    canonical = t.client("yuetan").encode("submitCatalogs", [structs])
    array = canonical[4 + 32 :]  # length ‖ items, offsets inside relative to the array
    smuggled = canonical[:4] + (0x40).to_bytes(32, "big") + (1).to_bytes(32, "big") + array
    expect_call_revert(
        t.relayer("yuetan"),
        "relay",
        [[invented_origin(t, "yuetan")], [smuggled]],
        "RelayCallInvalid",
        selector=selector("submitCatalogs"),
    )


def test_sharing_request_id_cannot_be_taken_twice_across_nonce_spaces(t: Tiers) -> None:
    """Relayed nonces live in the child's nonce space, local ones in the parent's, but the request id is
    keccak256(abi.encode(signer, nonce)) in both: 大兴区民政局's key, having used nonce N for a request in 月坛街道
    (relayed to 西城区), can use N again for a local request in 西城区 — same id, and ``_recordRequest`` overwrites
    the relayed request (catalog, owner, items, period, status; a revoked grant comes back as a new request, the
    child's later decision on it is judged against the other catalog's owner). Proposed fix: refuse an id that
    exists, ``_requireSharingStatus(id, _sharing[id].status, SharingStatus.None)`` before ``_recordRequest``
    (→ SharingStatusInvalid(id, current, None)), which keeps ids equal across tiers."""
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    propagate(child, parent, t.keys[YT], register(catalog_of(YT), rpc))
    ask = request_msg(rpc, "301001/YT0001")
    propagate(child, parent, t.keys[DX], ask)
    request = sharing_request_id(t.keys[DX].address, ask.message["nonce"])
    xicheng = t.client("xicheng")
    submit_local(
        xicheng,
        t.keys[XC],
        register(catalog_of(XC, "301001/XC0001", share_type="unconditional", share_conditions=None), rpc),
    )
    again = request_msg(rpc, "301001/XC0001").message | {"nonce": ask.message["nonce"]}
    struct = sign(xicheng, t.keys[DX], Message("SharingRequest", again))
    expect_call_revert(
        xicheng, "requestSharing", [[struct]], "SharingStatusInvalid", id=request, current=REQUESTED, expected=0
    )


def test_sharing_request_for_a_catalog_outside_the_childs_subtree_is_refused(t: Tiers) -> None:
    """Catalog codes are unique per directory, not across them. 西城区 holds a catalog of its own under code K
    (unconditional); 月坛街道 registered another K (conditional) — whose relay fails, RecordStatusInvalid — and
    大兴区民政局 asks for 月坛街道's K in the street (Requested there). Relayed, the request names K and
    applies to 西城区's K: granted at once, owner 西城区民政局, while the child says Requested, owner
    月坛街道办事处. Proposed fix: in relay mode, requestSharing checks the catalog's owner is in the child's
    subtree (``_requireServed(_departmentJurisdiction[catalog.department])`` → RelayOutsideChild), and
    decideSharing / revokeSharing check ``r.owner`` the same way."""
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    code = "301001/K0001"
    submit_local(
        t.client("xicheng"),
        t.keys[XC],
        register(catalog_of(XC, code, share_type="unconditional", share_conditions=None), rpc),
    )
    submit_local(child, t.keys[YT], register(catalog_of(YT, code), rpc))
    ask = request_msg(rpc, code)
    struct, receipt = submit_local(child, t.keys[DX], ask)
    origin = origin_of(decoded_events(child, receipt)[0], t.chain_id)
    expect_call_revert(
        parent,
        "relay",
        [[origin], [call_of(child, "SharingRequest", struct)]],
        "RelayOutsideChild",
        home=YT_ID,
        jurisdiction=XC_ID,
    )


@pytest.mark.parametrize("primary", ["SharingRequest", "SharingDecision", "SharingRevocation"])
def test_sharing_relayed_after_its_period_ended_is_accepted(t: Tiers, primary: str) -> None:
    """Like the deadline, the period was checked at the origin. A relay that lags (catching up after a restart,
    a first sync of history) meets ``end <= block.timestamp`` at the parent: SharingPeriodInvalid for a request,
    SharingPeriodOver for a decision or a revocation — the record never propagates. Proposed fix: in relay mode
    skip the clock half of those checks (keep ``start < end``); the parent expires the grant itself with
    ``expireSharing``."""
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    share = {"share_type": "unconditional", "share_conditions": None} if primary == "SharingRevocation" else {}
    propagate(child, parent, t.keys[YT], register(catalog_of(YT, **share), rpc))
    end = now(rpc) + DAY
    ask = request_msg(rpc, "301001/YT0001", end=end)
    request = sharing_request_id(t.keys[DX].address, ask.message["nonce"])
    if primary == "SharingRequest":
        key, msg = t.keys[DX], ask
    else:
        propagate(child, parent, t.keys[DX], ask)
        key = t.keys[YT]
        msg = (
            sharing_decision_message(request, True, "同意", next_nonce(), far(rpc))
            if primary == "SharingDecision"
            else sharing_revocation_message(request, "核对结束", next_nonce(), far(rpc))
        )
    struct, receipt = submit_local(child, key, msg)
    travel_to(rpc, end + DAY)
    origin = origin_of(decoded_events(child, receipt)[0], t.chain_id)
    _, events = relay(parent, [origin], [call_of(child, primary, struct)])
    check_applied(parent, [decoded_events(child, receipt)], events, [origin], [call_of(child, primary, struct)])
    same(child, parent, "sharing", request)


@pytest.mark.parametrize("case", ["key revocation", "department", "administrator"])
def test_access_submission_outside_the_childs_subtree_is_refused(t: Tiers, case: str) -> None:
    """Each directory holds the tree and keys it needs, set up locally: 月坛街道's directory binds 大兴区民政局's key,
    say, so its staff can ask for the street's catalogs. When the street's bureau revokes that key *in the street
    directory*, the relayed revocation passes every check at 西城区 (the bureau administers 大兴区 there too) and
    revokes the key in 西城区's directory as well; a department or an administrator of 大兴区 registered in the
    street likewise lands in 西城区 as if the street had authority over 大兴区. Proposed fix: in relay mode hold
    access submissions to the child's subtree like records — ``_requireServed`` of a department's jurisdiction
    (registerDepartments; setAccounts, department role), of the scope (setAccounts, administrator role) and of
    the new jurisdiction's parent (addJurisdictions) → RelayOutsideChild(home, jurisdiction)."""
    child, parent, rpc = t.client("yuetan"), t.relayer("yuetan"), t.rpc
    dx_key = t.keys[DX].address
    msg = {
        "key revocation": account_message("department", "DDX0001", dx_key, False, next_nonce(), far(rpc)),
        "department": department_message(
            Department(code="DDX0002", name="大兴区卫生健康委员会", jurisdiction=DAXING.code), next_nonce(), far(rpc)
        ),
        "administrator": account_message(
            "administrator", DAXING.code, Account.create().address, True, next_nonce(), far(rpc)
        ),
    }[case]
    struct, receipt = submit_local(child, t.bureau, msg)
    origin = origin_of(decoded_events(child, receipt)[0], t.chain_id)
    expect_call_revert(
        parent,
        "relay",
        [[origin], [call_of(child, msg.primary, struct)]],
        "RelayOutsideChild",
        home=YT_ID,
        jurisdiction=DX_ID,
    )
    assert parent.account_department(dx_key) == code_id("DDX0001")
