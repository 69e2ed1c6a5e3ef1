"""Fixtures for integration tests: a real anvil node, a fresh Directory per test, a small world of
jurisdictions and departments with their own keys, and record factories."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain import eip712
from chain.deploy import Deployment, deploy_directory
from chain.directory import DirectoryClient, to_struct
from chain.journal import MemoryJournal
from chain.node import AnvilNode
from chain.rpc import Rpc
from chain.sender import TxSender
from registry.messages import Message, account_message, department_message, jurisdiction_message
from registry.models import CatalogRecord, DataItem, Department, Jurisdiction, SystemRecord, Tier

CHAIN_ID = 31337
FUNDS_WEI = 10**24


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """One automining anvil node for the test session."""
    node = AnvilNode(chain_id=CHAIN_ID)
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def rpc(anvil: AnvilNode) -> Rpc:
    """JSON-RPC client of the session's anvil."""
    return Rpc(anvil.rpc_url)


def funded_account(rpc: Rpc) -> LocalAccount:
    """A new random account with 10^6 ETH (anvil_setBalance: test tooling only)."""
    acct: LocalAccount = Account.create()
    rpc.call("anvil_setBalance", [acct.address, hex(FUNDS_WEI)])
    return acct


@dataclass
class Chain:
    """A fresh Directory deployment: the client (relayer-backed), its deployment, the bureau admin key."""

    client: DirectoryClient
    deployment: Deployment
    administrator: LocalAccount
    relayer: LocalAccount
    rpc: Rpc


@pytest.fixture
def chain(rpc: Rpc) -> Chain:
    """A Directory deployed afresh for this test; relayer = a funded random key."""
    return new_chain(rpc)


def new_chain(rpc: Rpc) -> Chain:
    """Deploy a fresh Directory with a random bureau administrator and a funded relayer."""
    administrator: LocalAccount = Account.create()
    relayer = funded_account(rpc)
    sender = TxSender(rpc, relayer, MemoryJournal(), CHAIN_ID, receipt_timeout_s=30)
    dep = deploy_directory(sender, administrator.address, relayer.address)
    client = DirectoryClient(rpc, dep.address, CHAIN_ID, sender)
    return Chain(client, dep, administrator, relayer, rpc)


_nonce_seq = iter(range(1, 10**9))


def next_nonce() -> int:
    """A fresh nonce (unordered nonces: any unused value is valid)."""
    return next(_nonce_seq)


def deadline(seconds: int = 3600) -> int:
    """A deadline ``seconds`` from now (unix seconds)."""
    return int(time.time()) + seconds


def sign(client: DirectoryClient, account: LocalAccount, msg: Message) -> tuple[Any, ...]:
    """Sign ``msg`` with ``account`` and return the ABI struct to submit."""
    sig = eip712.sign(account, client.typed_data(msg.primary, msg.message))
    return to_struct(msg.primary, msg.message, sig, msg.record)


def submit(client: DirectoryClient, account: LocalAccount, msg: Message) -> Any:
    """Sign, submit alone, and wait for the receipt."""
    return client.submit_and_wait(msg.primary, [sign(client, account, msg)])


CITY = Jurisdiction(code="110000", name="北京市", tier=Tier.CITY, gb2260_code="110000")
XICHENG = Jurisdiction(code="110102", name="西城区", tier=Tier.DISTRICT, parent="110000", gb2260_code="110102")
DAXING = Jurisdiction(code="110115", name="大兴区", tier=Tier.DISTRICT, parent="110000", gb2260_code="110115")
YUETAN = Jurisdiction(code="110102/月坛街道", name="月坛街道", tier=Tier.STREET, parent="110102")

DEPARTMENTS = {
    "xc_civil": Department(code="DXC0001", name="西城区民政局", jurisdiction="110102"),
    "xc_health": Department(code="DXC0002", name="西城区卫生健康委员会", jurisdiction="110102"),
    "dx_civil": Department(code="DDX0001", name="大兴区民政局", jurisdiction="110115"),
    "yuetan": Department(code="DYT0001", name="月坛街道办事处", jurisdiction="110102/月坛街道"),
}


@dataclass
class World:
    """A directory with 北京市 → 西城区 → 月坛街道 and 大兴区, four departments each with a bound key."""

    chain: Chain
    keys: dict[str, LocalAccount] = field(default_factory=dict)

    @property
    def client(self) -> DirectoryClient:
        return self.chain.client

    def department(self, name: str) -> Department:
        return DEPARTMENTS[name]


@pytest.fixture
def world(chain: Chain) -> World:
    """Jurisdictions, departments and department keys set up by the bureau administrator."""
    return build_world(chain)


def build_world(chain: Chain) -> World:
    """Add the four jurisdictions and four departments of :data:`DEPARTMENTS` and bind a key to each."""
    admin = chain.administrator
    c = chain.client
    c.submit_and_wait(
        "Jurisdiction",
        [sign(c, admin, jurisdiction_message(j, next_nonce(), deadline())) for j in (CITY, XICHENG, DAXING, YUETAN)],
    )
    c.submit_and_wait(
        "Department", [sign(c, admin, department_message(d, next_nonce(), deadline())) for d in DEPARTMENTS.values()]
    )
    w = World(chain)
    binds = []
    for name, dept in DEPARTMENTS.items():
        w.keys[name] = Account.create()
        binds.append(
            sign(
                c, admin, account_message("department", dept.code, w.keys[name].address, True, next_nonce(), deadline())
            )
        )
    c.submit_and_wait("Account", binds)
    return w


def system_record(dept: Department, code: str = "SXC0001", **overrides: Any) -> SystemRecord:
    """A valid information system owned by ``dept``."""
    data: dict[str, Any] = {
        "code": code,
        "name": "智慧救助平台",
        "owner": dept.name,
        "owner_code": dept.code,
        "jurisdiction": dept.jurisdiction,
        "status": "online",
    }
    data.update(overrides)
    return SystemRecord.model_validate(data)


def catalog_record(dept: Department, code: str = "301001/XC0001", **overrides: Any) -> CatalogRecord:
    """A valid conditional-share catalog owned by ``dept``."""
    data: dict[str, Any] = {
        "code": code,
        "name": "困难家庭数据库",
        "classification": code.split("/")[0],
        "provider": dept.name,
        "provider_code": dept.code,
        "jurisdiction": dept.jurisdiction,
        "summary": "困难家庭救助对象基本信息",
        "format": "database",
        "data_items": [DataItem(name="户主姓名", data_type="string"), DataItem(name="救助类别", data_type="code")],
        "share_type": "conditional",
        "share_conditions": "仅用于社会救助审核",
        "open_type": "none",
        "update_frequency": "monthly",
        "publish_date": date(2021, 1, 1),
        "grade": "3",
    }
    data.update(overrides)
    return CatalogRecord.model_validate(data)


# ---------------------------------------------------------------- contract-test helpers


def decoded_events(client: DirectoryClient, receipt: Any) -> list[Any]:
    """The receipt's logs decoded against the Directory ABI (``chain.abi.DecodedLog``), in log order."""
    return [client.codec.decode_log(log) for log in receipt.logs]


def storage_root(client: DirectoryClient) -> str:
    """Storage root of the Directory at ``latest`` (``eth_getProof``): equal roots, equal storage."""
    return str(client.rpc.call("eth_getProof", [client.address, [], "latest"])["storageHash"])


def with_signature(struct: tuple[Any, ...], signature: bytes) -> tuple[Any, ...]:
    """``struct`` with its last member (the signature) replaced."""
    return (*struct[:-1], signature)


def high_s_twin(signature: bytes) -> bytes:
    """The malleable twin of a 65-byte signature: s' = n − s and v flipped 27 ↔ 28 (recovers the same key)."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (eip712.SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


def same_value(got: Any, want: Any) -> bool:
    """Equality with addresses compared case-insensitively (the ABI decoder yields lowercase hex)."""
    if isinstance(got, str) and isinstance(want, str) and got.startswith("0x") and len(got) == 42:
        return got.lower() == want.lower()
    return bool(got == want)


def expect_revert(
    client: DirectoryClient, primary: str, structs: list[tuple[Any, ...]], error: str | None, **args: Any
) -> Any:
    """Assert the batch reverts with custom error ``error`` (None: with no revert data at all) and ``args``.

    Checks twice: the relayer's gas estimate refuses the batch, and the very batch mined anyway (explicit
    gas) fails with status 0, no log, and the Directory's storage root unchanged. Returns the exception.
    """
    from chain.directory import METHOD_OF

    data = client.encode(METHOD_OF[primary], [structs])
    return _expect_revert(client, lambda: client.submit(primary, structs), data, error, args)


def expect_call_revert(client: DirectoryClient, method: str, call_args: list[Any], error: str, **args: Any) -> Any:
    """:func:`expect_revert` for a relayer method that takes no submission batch (``expireSharing(ids)``)."""
    data = client.encode(method, call_args)
    return _expect_revert(client, lambda: estimate(client, data), data, error, args)


def estimate(client: DirectoryClient, data: bytes) -> int:
    """The relayer's gas estimate of calling the Directory with ``data``; a revert raises it decoded."""
    from chain.errors import UnknownRevert
    from chain.rpc import RpcError

    assert client.sender is not None
    try:
        return client.sender.estimate_gas(client.address, data)
    except RpcError as exc:
        raise (client.codec.decode_revert(exc.data) if exc.data else UnknownRevert(b"", exc.message)) from exc


def call_and_wait(client: DirectoryClient, method: str, call_args: list[Any]) -> Any:
    """Estimate, send and wait for the relayer's call of ``method(call_args)``; returns the receipt."""
    assert client.sender is not None
    data = client.encode(method, call_args)
    gas = estimate(client, data)
    return client.sender.wait(client.sender.send(client.address, data, gas + gas // 5 + 10_000, label=method))


def _expect_revert(client: DirectoryClient, attempt: Any, data: bytes, error: str | None, args: dict[str, Any]) -> Any:
    from chain.errors import ContractRevert, TransactionFailed, UnknownRevert

    assert client.sender is not None
    root = storage_root(client)
    with pytest.raises((ContractRevert, UnknownRevert)) as caught:
        attempt()
    exc = caught.value
    if error is None:
        assert isinstance(exc, UnknownRevert) and exc.data == b"", f"expected an empty revert, got {exc}"
    else:
        assert isinstance(exc, ContractRevert) and exc.name == error, f"expected {error}, got {exc}"
        for key, want in args.items():
            got = exc.args_by_name[key]
            assert same_value(got, want), f"{error}.{key}: expected {want!r}, got {got!r}"
    tx = client.sender.send(client.address, data, 5_000_000)
    with pytest.raises(TransactionFailed):
        client.sender.wait(tx)
    assert client.rpc.call("eth_getTransactionReceipt", [tx])["logs"] == []
    assert storage_root(client) == root, "a reverted batch changed the Directory's storage"
    return exc


def appoint_administrator(chain: Chain, scope: str, signer: LocalAccount | None = None) -> LocalAccount:
    """A new key made administrator of jurisdiction ``scope`` (signed by ``signer``, default the bureau)."""
    acct: LocalAccount = Account.create()
    msg = account_message("administrator", scope, acct.address, True, next_nonce(), deadline())
    submit(chain.client, signer or chain.administrator, msg)
    return acct


def rebound(chain: Chain, poll_s: float = 0.002) -> Chain:
    """The same deployment and keys behind a new relayer sender (it re-reads its nonce from the chain).

    For tests that share one deployment and roll the chain back with :func:`reverting` between them.
    ``poll_s``: receipt poll interval (seconds); anvil mines at once, so polling every 50 ms only waits.
    """
    sender = TxSender(chain.rpc, chain.relayer, MemoryJournal(), CHAIN_ID, receipt_timeout_s=30, poll_s=poll_s)
    client = DirectoryClient(chain.rpc, chain.client.address, CHAIN_ID, sender)
    return Chain(client, chain.deployment, chain.administrator, chain.relayer, chain.rpc)


class reverting:  # lowercase: used like a function, `with reverting(rpc): ...`
    """Run the block on an ``evm_snapshot`` of the chain and ``evm_revert`` to it afterwards (anvil only)."""

    def __init__(self, rpc: Rpc) -> None:
        self.rpc = rpc
        self.snapshot: Any = None

    def __enter__(self) -> None:
        self.snapshot = self.rpc.call("evm_snapshot", [])

    def __exit__(self, *exc: object) -> None:
        assert self.rpc.call("evm_revert", [self.snapshot]), "evm_revert refused the snapshot"


def assert_event(event: Any, event_name: str, /, **fields: Any) -> None:
    """``event`` (a decoded log) is ``event_name`` and each of ``fields`` equals its decoded argument."""
    assert event.event == event_name, f"expected {event_name}, got {event.event}"
    for key, want in fields.items():
        got = event.args[key]
        assert same_value(got, want), f"{event_name}.{key}: expected {want!r}, got {got!r}"


def resign(client: DirectoryClient, key: LocalAccount, msg: Message, **changes: Any) -> tuple[Any, ...]:
    """``msg`` with ``changes`` applied to its EIP-712 message, signed afresh (a fresh nonce unless given)."""
    message = {**msg.message, "nonce": next_nonce(), **changes}
    return sign(client, key, Message(msg.primary, message, msg.record))


# ---------------------------------------------------------------------------------------- two chains, tiered seed

#: Chain ids of the two-chain tests: a district chain (districts' and streets' directories) and a city chain.
DISTRICT_CHAIN_ID, CITY_CHAIN_ID = 31338, 31339


@pytest.fixture(scope="session")
def two_chains() -> Iterator[dict[str, AnvilNode]]:
    """A district chain and a city chain (two automining anvil nodes), by name."""
    nodes = {"district": AnvilNode(chain_id=DISTRICT_CHAIN_ID), "city": AnvilNode(chain_id=CITY_CHAIN_ID)}
    for node in nodes.values():
        node.start()
    yield nodes
    for node in nodes.values():
        node.stop()


@dataclass
class TieredSeed:
    """The per-jurisdiction service on :func:`two_chains` with the seed directory and its sharing requests loaded
    through its API and synced up to the city (read-only for the tests that share it)."""

    service: Any
    client: Any
    summary: Any
    settings: Any
    chains: dict[str, AnvilNode]


@pytest.fixture(scope="session")
def tiered_seed(two_chains: dict[str, AnvilNode], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TieredSeed]:
    from dirchain.cli import SEED_FILE, SEED_SHARING_FILE
    from registry.keystore import Keystore
    from registry.loader import DirectoryLoader, read_sharing
    from registry.seed import read_directory
    from tests.integration.service import make_settings, running_service

    home = tmp_path_factory.mktemp("tiered-seed")
    settings = make_settings(home, two_chains["city"].rpc_url, directories="per-jurisdiction",
                             district_rpc_url=two_chains["district"].rpc_url, sync_interval_s=0.2)
    with running_service(settings) as (service, client):
        loader = DirectoryLoader("http://testserver", Keystore(home / "keys"), http=client, index_timeout_s=120)
        summary = loader.load(read_directory(SEED_FILE), read_sharing(SEED_SHARING_FILE))
        loader.await_synced()
        yield TieredSeed(service, client, summary, settings, two_chains)
