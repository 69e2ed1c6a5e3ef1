"""Directory contract, access side: jurisdictions, departments, administrators, department keys and
OpenZeppelin roles — every event with its decoded fields and every revert with its arguments, on anvil.

Each revert goes through :func:`expect_revert`: the error name and key arguments are asserted, then the
same batch is mined anyway and must fail with no log and the Directory's storage root unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from chain.directory import DirectoryClient
from chain.errors import ContractRevert
from chain.journal import MemoryJournal
from chain.rpc import Rpc, RpcError
from chain.sender import TxSender
from registry.canonical import code_id
from registry.messages import (
    Message,
    account_message,
    department_message,
    jurisdiction_message,
    record_message,
)
from registry.models import Department, Jurisdiction, Tier
from tests.integration.conftest import (
    CHAIN_ID,
    CITY,
    DAXING,
    FUNDS_WEI,
    XICHENG,
    YUETAN,
    Chain,
    World,
    appoint_administrator,
    assert_event,
    build_world,
    catalog_record,
    deadline,
    decoded_events,
    expect_revert,
    funded_account,
    high_s_twin,
    new_chain,
    next_nonce,
    rebound,
    resign,
    reverting,
    same_value,
    sign,
    storage_root,
    submit,
    system_record,
    with_signature,
)

ZERO32 = b"\x00" * 32
DEFAULT_ADMIN_ROLE = ZERO32
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
TIER_NONE, TIER_CITY, TIER_DISTRICT, TIER_STREET = 0, 1, 2, 3

ACCESS = ("Jurisdiction", "Department", "Account")
ALL_METHODS = (*ACCESS, "Catalog", "System")

ZHANLANLU = Jurisdiction(code="110102/展览路街道", name="展览路街道", tier=Tier.STREET, parent="110102")
XC_EDU = Department(code="DXC0003", name="西城区教育委员会", jurisdiction="110102")
YT_SERVICE = Department(code="DYT0002", name="月坛街道社区服务中心", jurisdiction="110102/月坛街道")
XC_CIVIL_ID = code_id("DXC0001")
XC_HEALTH_ID = code_id("DXC0002")


@pytest.fixture(scope="module")
def bases(rpc: Rpc) -> tuple[Chain, World]:
    """One bare deployment and one deployment with the world, shared by the module's tests."""
    return new_chain(rpc), build_world(new_chain(rpc))


@pytest.fixture
def chain(rpc: Rpc, bases: tuple[Chain, World]) -> Iterator[Chain]:
    """A Directory with no jurisdiction yet; every change the test makes is rolled back (evm_revert)."""
    with reverting(rpc):
        yield rebound(bases[0])


@pytest.fixture
def world(rpc: Rpc, bases: tuple[Chain, World]) -> Iterator[World]:
    """The conftest world (北京市 → 西城区 → 月坛街道, 大兴区, four departments with keys), rolled back after."""
    with reverting(rpc):
        yield World(rebound(bases[1].chain), bases[1].keys)


def valid_message(world: World, primary: str) -> tuple[Message, LocalAccount]:
    """A submission of type ``primary`` that would succeed in ``world``, and the key that must sign it."""
    admin = world.chain.administrator
    if primary == "Jurisdiction":
        return jurisdiction_message(ZHANLANLU, next_nonce(), deadline()), admin
    if primary == "Department":
        return department_message(XC_EDU, next_nonce(), deadline()), admin
    if primary == "Account":
        fresh = Account.create().address
        return account_message("department", "DXC0002", fresh, True, next_nonce(), deadline()), admin
    dept = world.department("xc_civil")
    record = catalog_record(dept) if primary == "Catalog" else system_record(dept)
    return record_message(record, "register", 1, next_nonce(), deadline()), world.keys["xc_civil"]


def _account(role: Any, scope: str, account: str | None = None, active: bool = True) -> Message:
    """Account message: ``role`` in ``scope`` for ``account`` (default a fresh address)."""
    return account_message(role, scope, account or Account.create().address, active, next_nonce(), deadline())


def outsider_client(chain: Chain) -> tuple[DirectoryClient, LocalAccount]:
    """A client of the same Directory whose transactions come from a funded key without RELAYER_ROLE."""
    outsider = funded_account(chain.rpc)
    sender = TxSender(chain.rpc, outsider, MemoryJournal(), CHAIN_ID, receipt_timeout_s=30, poll_s=0.002)
    return DirectoryClient(chain.rpc, chain.client.address, CHAIN_ID, sender), outsider


def admin_sender(chain: Chain) -> TxSender:
    """The bureau administrator's own transaction sender (funded with anvil_setBalance: test tooling)."""
    chain.rpc.call("anvil_setBalance", [chain.administrator.address, hex(FUNDS_WEI)])
    return TxSender(chain.rpc, chain.administrator, MemoryJournal(), CHAIN_ID, receipt_timeout_s=30, poll_s=0.002)


def is_administrator(client: DirectoryClient, scope: str, account: str) -> bool:
    return bool(client.view("isAdministrator", code_id(scope), account)[0])


# ================================================================ happy paths and their events


def test_add_jurisdictions_emits_jurisdiction_added_and_stores_the_tree(chain: Chain) -> None:
    c, admin = chain.client, chain.administrator
    msgs = [jurisdiction_message(j, next_nonce(), deadline()) for j in (CITY, XICHENG, DAXING, YUETAN)]
    root = storage_root(c)
    receipt = c.submit_and_wait("Jurisdiction", [sign(c, admin, m) for m in msgs])

    assert storage_root(c) != root  # the storage probe used by expect_revert does see writes
    events = decoded_events(c, receipt)
    assert [e.event for e in events] == ["JurisdictionAdded"] * 4
    for event, j, msg in zip(events, (CITY, XICHENG, DAXING, YUETAN), msgs, strict=True):
        parent = code_id(j.parent) if j.parent else ZERO32
        assert_event(
            event, "JurisdictionAdded",
            id=code_id(j.code), parent=parent, tier=j.tier.chain_value, code=j.code, name=j.name,
            signer=admin.address, nonce=msg.message["nonce"],
        )  # fmt: skip
        assert c.jurisdiction(code_id(j.code)) == (parent, j.tier.chain_value)
        assert c.nonce_used(admin.address, msg.message["nonce"])
    assert c.jurisdiction(code_id("120000")) == (ZERO32, TIER_NONE)


def test_jurisdiction_code_may_be_64_bytes_of_utf8(world: World) -> None:
    code = "110102/" + "街" * 19  # 7 + 57 = 64 bytes, the longest code the contract accepts
    j = Jurisdiction(code=code, name="长名街道", tier=Tier.STREET, parent="110102")
    receipt = submit(world.client, world.chain.administrator, jurisdiction_message(j, next_nonce(), deadline()))
    (event,) = decoded_events(world.client, receipt)
    assert_event(event, "JurisdictionAdded", id=code_id(code), code=code, tier=TIER_STREET)


def test_register_departments_emits_department_registered(world: World) -> None:
    c, admin = world.client, world.chain.administrator
    msgs = [department_message(d, next_nonce(), deadline()) for d in (XC_EDU, YT_SERVICE)]
    receipt = c.submit_and_wait("Department", [sign(c, admin, m) for m in msgs])

    events = decoded_events(c, receipt)
    for event, d, msg in zip(events, (XC_EDU, YT_SERVICE), msgs, strict=True):
        assert_event(
            event, "DepartmentRegistered",
            id=code_id(d.code), jurisdiction=code_id(d.jurisdiction), code=d.code, name=d.name,
            signer=admin.address, nonce=msg.message["nonce"],
        )  # fmt: skip
        assert c.department_jurisdiction(code_id(d.code)) == code_id(d.jurisdiction)
    assert len(events) == 2
    assert c.department_jurisdiction(code_id("DXX9999")) == ZERO32


def test_administrator_set_grants_and_revokes_a_jurisdiction_administrator(world: World) -> None:
    c, admin = world.client, world.chain.administrator
    appointee = Account.create()
    grant = account_message("administrator", "110102", appointee.address, True, next_nonce(), deadline())
    (event,) = decoded_events(c, submit(c, admin, grant))
    assert_event(
        event, "AdministratorSet",
        jurisdiction=code_id("110102"), account=appointee.address, active=True,
        signer=admin.address, nonce=grant.message["nonce"],
    )  # fmt: skip
    assert is_administrator(c, "110102", appointee.address)
    assert not is_administrator(c, "110102/月坛街道", appointee.address)  # the view does not consult ancestors

    # the appointee now administers 西城区 …
    (registered,) = decoded_events(c, submit(c, appointee, department_message(XC_EDU, next_nonce(), deadline())))
    assert_event(registered, "DepartmentRegistered", id=code_id(XC_EDU.code), signer=appointee.address)

    revoke = account_message("administrator", "110102", appointee.address, False, next_nonce(), deadline())
    (event,) = decoded_events(c, submit(c, admin, revoke))
    assert_event(
        event, "AdministratorSet",
        jurisdiction=code_id("110102"), account=appointee.address, active=False,
        signer=admin.address, nonce=revoke.message["nonce"],
    )  # fmt: skip
    assert not is_administrator(c, "110102", appointee.address)

    # … and after the revocation no longer does
    again = department_message(YT_SERVICE, next_nonce(), deadline())
    expect_revert(
        c, "Department", [sign(c, appointee, again)], "JurisdictionNotAdministrator",
        jurisdiction=code_id(YUETAN.code), signer=appointee.address,
    )  # fmt: skip


def test_department_account_set_binds_and_revokes_a_signing_key(world: World) -> None:
    c, admin = world.client, world.chain.administrator
    key = Account.create()
    bind = account_message("department", "DXC0002", key.address, True, next_nonce(), deadline())
    (event,) = decoded_events(c, submit(c, admin, bind))
    assert_event(
        event, "DepartmentAccountSet",
        department=XC_HEALTH_ID, account=key.address, jurisdiction=code_id("110102"), active=True,
        signer=admin.address, nonce=bind.message["nonce"],
    )  # fmt: skip
    assert c.account_department(key.address) == XC_HEALTH_ID

    # the new key signs for its department: a record it signs is accepted
    record = system_record(world.department("xc_health"), code="SXC0101")
    (recorded,) = decoded_events(c, submit(c, key, record_message(record, "register", 1, next_nonce(), deadline())))
    assert_event(recorded, "SystemVersionRecorded", department=XC_HEALTH_ID, signer=key.address)

    revoke = account_message("department", "DXC0002", key.address, False, next_nonce(), deadline())
    (event,) = decoded_events(c, submit(c, admin, revoke))
    assert_event(
        event, "DepartmentAccountSet",
        department=XC_HEALTH_ID, account=key.address, jurisdiction=code_id("110102"), active=False,
        signer=admin.address, nonce=revoke.message["nonce"],
    )  # fmt: skip
    assert c.account_department(key.address) == ZERO32

    # a revoked key signs for nobody …
    update = record_message(record, "update", 2, next_nonce(), deadline())
    expect_revert(
        c, "System", [sign(c, key, update)], "DepartmentAccountNotBound", account=key.address, department=XC_HEALTH_ID
    )
    # … and is free to be bound again, even to a department of another jurisdiction
    rebind = account_message("department", "DDX0001", key.address, True, next_nonce(), deadline())
    (event,) = decoded_events(c, submit(c, admin, rebind))
    assert_event(event, "DepartmentAccountSet", department=code_id("DDX0001"), jurisdiction=code_id("110115"))
    assert c.account_department(key.address) == code_id("DDX0001")


def test_role_granted_and_revoked_by_the_bureau_administrator(chain: Chain) -> None:
    c, admin, relayer = chain.client, chain.administrator, chain.relayer
    # the factory's createDirectory (sent by the relayer) initialised the clone, which granted both roles
    factory = chain.deployment.factory
    deployed = chain.rpc.call("eth_getTransactionReceipt", [chain.deployment.tx_hash])
    assert same_value(deployed["to"], factory) and same_value(deployed["from"], relayer.address)
    logs = deployed["logs"]
    assert [log["address"].lower() for log in logs] == [c.address.lower()] * 4 + [factory.lower()]
    granted = [c.codec.decode_log(log) for log in logs[:4]]
    assert_event(granted[0], "RoleGranted", role=DEFAULT_ADMIN_ROLE, account=admin.address, sender=factory)
    assert_event(granted[1], "RoleGranted", role=RELAYER_ROLE, account=relayer.address, sender=factory)
    assert_event(granted[2], "DirectoryInitialized", home=ZERO32, administrator=admin.address, relayer=relayer.address)
    assert_event(granted[3], "Initialized", version=1)
    assert c.codec.decode_log(logs[4]) is None  # DirectoryCreated is the factory's event (see test_contract_relay)

    bureau = admin_sender(chain)
    newcomer_client, newcomer = outsider_client(chain)
    receipt = bureau.wait(bureau.send(c.address, c.encode("grantRole", [RELAYER_ROLE, newcomer.address]), 200_000))
    (event,) = decoded_events(c, receipt)
    assert_event(event, "RoleGranted", role=RELAYER_ROLE, account=newcomer.address, sender=admin.address)
    assert c.has_role(RELAYER_ROLE, newcomer.address)

    # the new relayer's batches are accepted
    (added,) = decoded_events(c, submit(newcomer_client, admin, jurisdiction_message(CITY, next_nonce(), deadline())))
    assert_event(added, "JurisdictionAdded", id=code_id(CITY.code))

    receipt = bureau.wait(bureau.send(c.address, c.encode("revokeRole", [RELAYER_ROLE, newcomer.address]), 200_000))
    (event,) = decoded_events(c, receipt)
    assert_event(event, "RoleRevoked", role=RELAYER_ROLE, account=newcomer.address, sender=admin.address)
    assert not c.has_role(RELAYER_ROLE, newcomer.address)

    # and once revoked, refused
    late = sign(c, admin, jurisdiction_message(XICHENG, next_nonce(), deadline()))
    expect_revert(
        newcomer_client, "Jurisdiction", [late], "AccessControlUnauthorizedAccount",
        account=newcomer.address, neededRole=RELAYER_ROLE,
    )  # fmt: skip


def test_only_the_default_admin_grants_roles(chain: Chain) -> None:
    c, relayer = chain.client, chain.relayer
    assert chain.client.sender is not None
    with pytest.raises(RpcError) as caught:
        chain.client.sender.estimate_gas(c.address, c.encode("grantRole", [RELAYER_ROLE, Account.create().address]))
    exc = c.codec.decode_revert(caught.value.data)
    assert isinstance(exc, ContractRevert)
    assert exc.name == "AccessControlUnauthorizedAccount"
    assert same_value(exc.args_by_name["account"], relayer.address)
    assert exc.args_by_name["neededRole"] == DEFAULT_ADMIN_ROLE


SCOPES = {"city": CITY.code, "西城区": XICHENG.code, "月坛街道": YUETAN.code}


@pytest.mark.parametrize(
    ("actor", "primary", "target"),
    [
        ("city", "Jurisdiction", "street under 西城区"),
        ("city", "Department", "in 月坛街道"),
        ("city", "Account", "key of 月坛街道办事处"),
        ("city", "Account", "admin of 西城区"),
        ("city", "Account", "admin of 月坛街道"),
        ("西城区", "Jurisdiction", "street under 西城区"),
        ("西城区", "Department", "in 月坛街道"),
        ("西城区", "Account", "key of 月坛街道办事处"),
        ("西城区", "Account", "admin of 月坛街道"),
        ("月坛街道", "Department", "in 月坛街道"),
        ("月坛街道", "Account", "key of 月坛街道办事处"),
    ],
)
def test_administrators_of_a_jurisdiction_or_its_ancestors_may_act(
    world: World, actor: str, primary: str, target: str
) -> None:
    c = world.client
    admin = appoint_administrator(world.chain, SCOPES[actor])
    fresh = Account.create().address
    msg = {
        "street under 西城区": lambda: jurisdiction_message(ZHANLANLU, next_nonce(), deadline()),
        "in 月坛街道": lambda: department_message(YT_SERVICE, next_nonce(), deadline()),
        "key of 月坛街道办事处": lambda: _account("department", "DYT0001", fresh),
        "admin of 西城区": lambda: _account("administrator", "110102", fresh),
        "admin of 月坛街道": lambda: _account("administrator", YUETAN.code, fresh),
    }[target]()
    assert msg.primary == primary
    (event,) = decoded_events(c, submit(c, admin, msg))
    assert same_value(event.args["signer"], admin.address)
    assert event.event in {"JurisdictionAdded", "DepartmentRegistered", "DepartmentAccountSet", "AdministratorSet"}


def test_street_admin_cannot_appoint_its_co_admin_but_the_district_admin_can(world: World) -> None:
    c = world.client
    street_admin = appoint_administrator(world.chain, YUETAN.code)
    district_admin = appoint_administrator(world.chain, XICHENG.code)
    co_admin = Account.create().address
    msg = account_message("administrator", YUETAN.code, co_admin, True, next_nonce(), deadline())
    # an administrator is appointed from above: the signer must administer the parent (西城区) or higher
    expect_revert(
        c, "Account", [sign(c, street_admin, msg)], "JurisdictionNotAdministrator",
        jurisdiction=code_id(XICHENG.code), signer=street_admin.address,
    )  # fmt: skip
    assert not is_administrator(c, YUETAN.code, co_admin)
    (event,) = decoded_events(c, submit(c, district_admin, msg))
    assert_event(event, "AdministratorSet", jurisdiction=code_id(YUETAN.code), account=co_admin, active=True)
    assert is_administrator(c, YUETAN.code, co_admin)


# ================================================================ method-level guards (all five methods)


@pytest.mark.parametrize("primary", ALL_METHODS)
def test_caller_without_relayer_role_is_refused(world: World, primary: str) -> None:
    msg, key = valid_message(world, primary)
    client, outsider = outsider_client(world.chain)
    expect_revert(
        client, primary, [sign(world.client, key, msg)], "AccessControlUnauthorizedAccount",
        account=outsider.address, neededRole=RELAYER_ROLE,
    )  # fmt: skip
    assert not world.client.nonce_used(key.address, msg.message["nonce"])


@pytest.mark.parametrize("primary", ALL_METHODS)
def test_empty_batch_is_refused(chain: Chain, primary: str) -> None:
    expect_revert(chain.client, primary, [], "DirectoryBatchEmpty")


# ================================================================ submission checks (deadline, nonce, signature)


@pytest.mark.parametrize(
    ("primary", "code"),
    [
        ("Jurisdiction", ""),
        ("Jurisdiction", "1" * 65),
        ("Jurisdiction", "110102/a" + "街" * 19),  # 8 + 57 = 65 bytes, 27 characters
        ("Department", ""),
        ("Department", "D" * 65),
    ],
)
def test_code_empty_or_longer_than_64_bytes_is_refused(world: World, primary: str, code: str) -> None:
    msg, key = valid_message(world, primary)
    struct = resign(world.client, key, msg, code=code)
    expect_revert(world.client, primary, [struct], "DirectoryCodeInvalid", code=code)
    assert world.client.jurisdiction(code_id(code)) == (ZERO32, TIER_NONE)
    assert world.client.department_jurisdiction(code_id(code)) == ZERO32


@pytest.mark.parametrize("primary", ACCESS)
def test_expired_submission_is_refused(world: World, primary: str) -> None:
    msg, key = valid_message(world, primary)
    past = deadline(-60)
    exc = expect_revert(world.client, primary, [resign(world.client, key, msg, deadline=past)], "SubmissionExpired")
    assert exc.args_by_name["deadline"] == past
    assert exc.args_by_name["timestamp"] > past


@pytest.mark.parametrize("primary", ACCESS)
def test_replayed_submission_is_refused(world: World, primary: str) -> None:
    msg, key = valid_message(world, primary)
    struct = sign(world.client, key, msg)
    world.client.submit_and_wait(primary, [struct])
    expect_revert(
        world.client, primary, [struct], "SubmissionNonceUsed", signer=key.address, nonce=msg.message["nonce"]
    )


@pytest.mark.parametrize("primary", ACCESS)
def test_duplicate_inside_one_batch_is_refused_and_the_first_copy_undone(world: World, primary: str) -> None:
    c = world.client
    msg, key = valid_message(world, primary)
    struct = sign(c, key, msg)
    expect_revert(c, primary, [struct, struct], "SubmissionNonceUsed", signer=key.address, nonce=msg.message["nonce"])
    assert not c.nonce_used(key.address, msg.message["nonce"])
    assert c.jurisdiction(code_id(ZHANLANLU.code)) == (ZERO32, TIER_NONE)
    assert c.department_jurisdiction(code_id(XC_EDU.code)) == ZERO32
    if primary == "Account":
        assert c.account_department(msg.message["account"]) == ZERO32


@pytest.mark.parametrize("primary", ACCESS)
def test_another_submission_reusing_a_spent_nonce_is_refused(world: World, primary: str) -> None:
    c, admin = world.client, world.chain.administrator
    spent = next_nonce()
    submit(c, admin, jurisdiction_message(ZHANLANLU, spent, deadline()))  # spends `spent`
    msg, key = valid_message(world, primary)
    if primary == "Jurisdiction":
        msg = jurisdiction_message(ZHANLANLU.model_copy(update={"code": "110102/新街口街道"}), 0, deadline())
    struct = resign(c, key, msg, nonce=spent)
    expect_revert(c, primary, [struct], "SubmissionNonceUsed", signer=admin.address, nonce=spent)


def test_nonces_are_unordered_per_signer(world: World) -> None:
    c = world.client
    admin, other = (appoint_administrator(world.chain, XICHENG.code) for _ in range(2))  # no nonce spent yet
    codes = [f"110102/街道{i}" for i in range(4)]
    nonces = [2**256 - 1, 300, 0, 255]  # any order, any word of the bitmap
    for code, nonce in zip(codes, nonces, strict=True):
        j = Jurisdiction(code=code, name=code, tier=Tier.STREET, parent="110102")
        submit(c, admin, jurisdiction_message(j, nonce, deadline()))
    assert all(c.nonce_used(admin.address, n) for n in nonces)
    assert not any(c.nonce_used(admin.address, n) for n in (1, 254, 256, 2**256 - 2))
    # the same nonce of another signer is a different nonce
    assert not c.nonce_used(other.address, 300)
    submit(c, other, department_message(XC_EDU, 300, deadline()))
    assert c.nonce_used(other.address, 300)


def _v(sig: bytes, v: int) -> bytes:
    return sig[:64] + bytes([v])


@pytest.mark.parametrize("primary", ACCESS)
@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda sig: _v(sig, sig[64] - 27), id="v 0/1"),
        pytest.param(lambda sig: _v(sig, 29), id="v 29"),
        pytest.param(lambda sig: bytes(64) + sig[64:], id="r and s zero"),
    ],
)
def test_unrecoverable_signature_is_refused(world: World, primary: str, mangle: Any) -> None:
    msg, key = valid_message(world, primary)
    struct = sign(world.client, key, msg)
    expect_revert(world.client, primary, [with_signature(struct, mangle(struct[-1]))], "ECDSAInvalidSignature")
    assert not world.client.nonce_used(key.address, msg.message["nonce"])


@pytest.mark.parametrize("primary", ACCESS)
def test_high_s_twin_is_refused(world: World, primary: str) -> None:
    c = world.client
    msg, key = valid_message(world, primary)
    struct = sign(c, key, msg)
    twin = high_s_twin(struct[-1])
    # eth-account alone accepts the twin: it recovers the same signer, so only EIP-2 rejects it
    signable = encode_typed_data(full_message=c.typed_data(msg.primary, msg.message))
    assert Account.recover_message(signable, signature=twin) == key.address
    expect_revert(c, primary, [with_signature(struct, twin)], "ECDSAInvalidSignatureS", s=twin[32:64])
    assert not c.nonce_used(key.address, msg.message["nonce"])


def _compact(sig: bytes) -> bytes:
    """EIP-2098 form r ‖ (v−27)·2²⁵⁵ + s: 64 bytes."""
    vs = int.from_bytes(sig[32:64], "big") | ((sig[64] - 27) << 255)
    return sig[:32] + vs.to_bytes(32, "big")


@pytest.mark.parametrize("primary", ACCESS)
@pytest.mark.parametrize(
    ("mangle", "length"),
    [
        pytest.param(lambda sig: sig[:64], 64, id="r‖s without v"),
        pytest.param(_compact, 64, id="EIP-2098 compact"),
        pytest.param(lambda sig: sig + b"\x00", 66, id="66 bytes"),
        pytest.param(lambda sig: b"", 0, id="empty"),
    ],
)
def test_signature_not_65_bytes_is_refused(world: World, primary: str, mangle: Any, length: int) -> None:
    msg, key = valid_message(world, primary)
    struct = sign(world.client, key, msg)
    bad = with_signature(struct, mangle(struct[-1]))
    expect_revert(world.client, primary, [bad], "ECDSAInvalidSignatureLength", length=length)


# ================================================================ jurisdictions


@pytest.mark.parametrize(
    ("primary", "changes", "unknown"),
    [
        ("Jurisdiction", {"parent": code_id("110199")}, "110199"),
        ("Department", {"jurisdiction": code_id("110199")}, "110199"),
        ("Account", {"role": 1, "scope": code_id("110199")}, "110199"),
    ],
    ids=["parent of a jurisdiction", "jurisdiction of a department", "scope of an administrator"],
)
def test_unknown_jurisdiction_is_refused(world: World, primary: str, changes: dict[str, Any], unknown: str) -> None:
    msg, key = valid_message(world, primary)
    expect_revert(
        world.client, primary, [resign(world.client, key, msg, **changes)], "JurisdictionUnknown", id=code_id(unknown)
    )


@pytest.mark.parametrize("j", [CITY, XICHENG, YUETAN], ids=lambda j: j.name)
def test_jurisdiction_added_twice_is_refused(world: World, j: Jurisdiction) -> None:
    c = world.client
    struct = sign(c, world.chain.administrator, jurisdiction_message(j, next_nonce(), deadline()))
    expect_revert(c, "Jurisdiction", [struct], "JurisdictionAlreadyAdded", id=code_id(j.code))


def test_same_jurisdiction_twice_in_one_batch_is_refused(world: World) -> None:
    c, admin = world.client, world.chain.administrator
    batch = [sign(c, admin, jurisdiction_message(ZHANLANLU, next_nonce(), deadline())) for _ in range(2)]
    expect_revert(c, "Jurisdiction", batch, "JurisdictionAlreadyAdded", id=code_id(ZHANLANLU.code))
    assert c.jurisdiction(code_id(ZHANLANLU.code)) == (ZERO32, TIER_NONE)


@pytest.mark.parametrize(
    ("tier", "parent", "parent_tier"),
    [
        pytest.param(TIER_CITY, CITY.code, TIER_CITY, id="city with a parent"),
        pytest.param(TIER_DISTRICT, None, TIER_NONE, id="district without a parent"),
        pytest.param(TIER_STREET, CITY.code, TIER_CITY, id="street under the city"),
        pytest.param(TIER_STREET, None, TIER_NONE, id="street without a parent"),
        pytest.param(TIER_DISTRICT, XICHENG.code, TIER_DISTRICT, id="district under a district"),
        pytest.param(TIER_STREET, YUETAN.code, TIER_STREET, id="street under a street"),
        pytest.param(TIER_NONE, XICHENG.code, TIER_DISTRICT, id="tier None under a district"),
        pytest.param(TIER_NONE, None, TIER_NONE, id="tier None without a parent"),
    ],
)
def test_tier_that_does_not_fit_its_parent_is_refused(
    world: World, tier: int, parent: str | None, parent_tier: int
) -> None:
    c = world.client
    parent_id = code_id(parent) if parent else ZERO32
    # the model refuses these shapes, so the EIP-712 message is built by hand (signed by the bureau)
    message = {"code": "110199", "name": "试验区", "tier": tier, "parent": parent_id, "nonce": next_nonce(),
               "deadline": deadline()}  # fmt: skip
    struct = sign(c, world.chain.administrator, Message("Jurisdiction", message))
    expect_revert(
        c, "Jurisdiction", [struct], "JurisdictionParentInvalid", parent=parent_id, parentTier=parent_tier, tier=tier
    )
    assert c.jurisdiction(code_id("110199")) == (ZERO32, TIER_NONE)


@pytest.fixture
def admins(world: World) -> dict[str, LocalAccount]:
    """Administrators of 北京市, 西城区, 大兴区 and 月坛街道, appointed by the bureau in one batch."""
    c, bureau = world.client, world.chain.administrator
    keys = {scope: Account.create() for scope in ("city", "西城区", "大兴区", "月坛街道")}
    codes = {"city": CITY.code, "西城区": XICHENG.code, "大兴区": DAXING.code, "月坛街道": YUETAN.code}
    c.submit_and_wait(
        "Account",
        [
            sign(c, bureau, account_message("administrator", codes[s], k.address, True, next_nonce(), deadline()))
            for s, k in keys.items()
        ],
    )
    return keys


def _street(code: str) -> Message:
    """Message adding street ``code`` ("<district code>/<name>") under its district."""
    parent = code.rsplit("/", 1)[0]
    street = Jurisdiction(code=code, name=code.rsplit("/", 1)[1], tier=Tier.STREET, parent=parent)
    return jurisdiction_message(street, next_nonce(), deadline())


def _tianjin() -> Message:
    """Message adding a second city (天津市) at the root."""
    return jurisdiction_message(Jurisdiction(code="120000", name="天津市", tier=Tier.CITY), next_nonce(), deadline())


def _revoke_xc_civil_key(world: World) -> Message:
    return _account("department", "DXC0001", world.keys["xc_civil"].address, active=False)


# (signer, message factory, jurisdiction the error names: None for the root); signers are the `admins` fixture's,
# a department key of the world, or a stranger
NOT_ADMIN_CASES = [
    pytest.param("stranger", lambda w: _street("110102/新街道"), XICHENG.code, id="stranger adds a street"),
    pytest.param("stranger", lambda w: _tianjin(), None, id="stranger adds a city"),
    pytest.param("city", lambda w: _tianjin(), None, id="city admin adds a second city (bureau only)"),
    pytest.param(
        "city", lambda w: _account("administrator", CITY.code), CITY.code, id="city admin appoints a city admin"
    ),
    pytest.param(
        "西城区", lambda w: _account("administrator", CITY.code), CITY.code, id="district admin appoints a city admin"
    ),
    pytest.param(
        "西城区", lambda w: _account("administrator", "110102"), CITY.code, id="district admin appoints its co-admin"
    ),
    pytest.param(
        "西城区", lambda w: _account("administrator", "110115"), CITY.code, id="西城区 admin appoints a 大兴区 admin"
    ),
    pytest.param(
        "大兴区",
        lambda w: department_message(XC_EDU, next_nonce(), deadline()),
        XICHENG.code,
        id="大兴区 admin registers a 西城区 department",
    ),
    pytest.param("大兴区", lambda w: _street("110102/新街道"), XICHENG.code, id="大兴区 admin adds a street to 西城区"),
    pytest.param(
        "大兴区",
        lambda w: _account("department", "DXC0001"),
        XICHENG.code,
        id="大兴区 admin binds a key of a 西城区 department",
    ),
    pytest.param(
        "大兴区", _revoke_xc_civil_key, XICHENG.code, id="大兴区 admin revokes the key of a 西城区 department"
    ),
    pytest.param(
        "大兴区",
        lambda w: _account("administrator", YUETAN.code),
        XICHENG.code,
        id="大兴区 admin appoints a 月坛街道 admin",
    ),
    pytest.param(
        "月坛街道",
        lambda w: department_message(XC_EDU, next_nonce(), deadline()),
        XICHENG.code,
        id="street admin registers a department of its district",
    ),
    pytest.param("月坛街道", lambda w: _street("110102/新街道"), XICHENG.code, id="street admin adds a sibling street"),
    pytest.param("月坛街道", _revoke_xc_civil_key, XICHENG.code, id="street admin revokes a key of its district"),
    pytest.param(
        "xc_civil",
        lambda w: department_message(XC_EDU, next_nonce(), deadline()),
        XICHENG.code,
        id="department key registers a department",
    ),
]


@pytest.mark.parametrize(("who", "factory", "scope"), NOT_ADMIN_CASES)
def test_signer_who_administers_neither_the_jurisdiction_nor_an_ancestor_is_refused(
    world: World, admins: dict[str, LocalAccount], who: str, factory: Any, scope: str | None
) -> None:
    c = world.client
    signer = admins.get(who) or world.keys.get(who) or Account.create()
    msg = factory(world)
    expect_revert(
        c, msg.primary, [sign(c, signer, msg)], "JurisdictionNotAdministrator",
        jurisdiction=code_id(scope) if scope else ZERO32, signer=signer.address,
    )  # fmt: skip
    assert c.account_department(world.keys["xc_civil"].address) == XC_CIVIL_ID


# ================================================================ departments and department keys


@pytest.mark.parametrize("active", [True, False], ids=["bind", "revoke"])
def test_key_of_an_unknown_department_is_refused(world: World, active: bool) -> None:
    c = world.client
    msg = account_message("department", "DXX9999", Account.create().address, active, next_nonce(), deadline())
    expect_revert(c, "Account", [sign(c, world.chain.administrator, msg)], "DepartmentUnknown", id=code_id("DXX9999"))


@pytest.mark.parametrize("jurisdiction", ["110102", "110115"], ids=["same jurisdiction", "another jurisdiction"])
def test_department_registered_twice_is_refused(world: World, jurisdiction: str) -> None:
    c = world.client
    again = Department(code="DXC0001", name="西城区民政局（重复）", jurisdiction=jurisdiction)
    struct = sign(c, world.chain.administrator, department_message(again, next_nonce(), deadline()))
    expect_revert(c, "Department", [struct], "DepartmentAlreadyRegistered", id=XC_CIVIL_ID)
    assert c.department_jurisdiction(XC_CIVIL_ID) == code_id("110102")


@pytest.mark.parametrize("target", ["DXC0002", "DXC0001"], ids=["another department", "the same department"])
def test_key_already_bound_is_refused(world: World, target: str) -> None:
    c = world.client
    key = world.keys["xc_civil"].address
    msg = account_message("department", target, key, True, next_nonce(), deadline())
    expect_revert(
        c, "Account", [sign(c, world.chain.administrator, msg)], "DepartmentAccountTaken",
        account=key, department=XC_CIVIL_ID,
    )  # fmt: skip
    assert c.account_department(key) == XC_CIVIL_ID


@pytest.mark.parametrize("bound", [False, True], ids=["unbound key", "key of another department"])
def test_revoking_a_key_not_bound_to_the_department_is_refused(world: World, bound: bool) -> None:
    c = world.client
    key = world.keys["xc_civil"].address if bound else Account.create().address
    msg = account_message("department", "DXC0002", key, False, next_nonce(), deadline())
    expect_revert(
        c, "Account", [sign(c, world.chain.administrator, msg)], "DepartmentAccountNotBound",
        account=key, department=XC_HEALTH_ID,
    )  # fmt: skip
    assert c.account_department(key) == (XC_CIVIL_ID if bound else ZERO32)


def test_account_role_none_is_refused(world: World) -> None:
    c = world.client
    msg = account_message("department", "DXC0002", Account.create().address, True, next_nonce(), deadline())
    struct = resign(c, world.chain.administrator, msg, role=0)
    expect_revert(c, "Account", [struct], "AccountRoleUnknown", role=0)


def test_enum_codes_out_of_range_die_in_abi_decoding(world: World) -> None:
    """AccountRole 3 (and Tier 4, RecordAction 4) never reach AccountRoleUnknown/RecordActionUnknown.

    The struct members are Solidity enums; the first read of ``s.role`` from calldata runs the ABI
    decoder's range check, which reverts with *empty* revert data — not Panic(0x21), which is what
    an explicit ``AccountRole(3)`` conversion would raise. So AccountRoleUnknown can only ever report
    ``AccountRole.None`` (role 0, tested above), and a client sees an error it cannot decode.
    """
    c, admin = world.client, world.chain.administrator
    account, nonce, dl = Account.create().address, next_nonce(), deadline()
    message = {"role": 3, "scope": XC_HEALTH_ID, "account": account, "active": True, "nonce": nonce, "deadline": dl}
    signature = sign(c, admin, Message("Account", message))[-1]  # role is `uint8` in the EIP-712 type: 3 signs
    raw = (3, XC_HEALTH_ID, account, True, nonce, dl, signature)  # the ABI tuple, by hand
    expect_revert(c, "Account", [raw], None)

    street, _ = valid_message(world, "Jurisdiction")
    expect_revert(c, "Jurisdiction", [resign(c, admin, street, tier=4)], None)
    rec, key = valid_message(world, "Catalog")
    expect_revert(c, "Catalog", [resign(c, key, rec, action=4)], None)
    assert not c.nonce_used(admin.address, nonce)


# ================================================================ atomicity


ORPHAN = Department(code="DXX0009", name="孤儿局", jurisdiction="110199")  # its jurisdiction does not exist

ATOMIC_BAD = {  # primary: (error, a submission that fails it, signed by the bureau)
    "Jurisdiction": ("JurisdictionUnknown", lambda w: _street("110199/孤儿街道")),
    "Department": ("JurisdictionUnknown", lambda w: department_message(ORPHAN, next_nonce(), deadline())),
    "Account": (  # bind 西城区民政局's key to 西城区卫健委
        "DepartmentAccountTaken",
        lambda w: _account("department", "DXC0002", w.keys["xc_civil"].address),
    ),
}


@pytest.mark.parametrize("primary", ACCESS)
def test_batch_with_one_bad_submission_changes_nothing(world: World, primary: str) -> None:
    c, admin = world.client, world.chain.administrator
    fresh = [Account.create().address for _ in range(2)]
    good = {
        "Jurisdiction": [_street("110102/甲街道"), _street("110102/乙街道")],
        "Department": [department_message(d, next_nonce(), deadline()) for d in (XC_EDU, YT_SERVICE)],
        "Account": [account_message("department", "DXC0002", a, True, next_nonce(), deadline()) for a in fresh],
    }[primary]
    error, factory = ATOMIC_BAD[primary]
    bad = factory(world)
    batch = [sign(c, admin, m) for m in (*good, bad)]
    expect_revert(c, primary, batch, error)  # mined too: status 0, no event, storage root unchanged
    for m in good:
        assert not c.nonce_used(admin.address, m.message["nonce"])
    assert c.jurisdiction(code_id("110102/甲街道")) == (ZERO32, TIER_NONE)
    assert c.department_jurisdiction(code_id(XC_EDU.code)) == ZERO32
    assert all(c.account_department(a) == ZERO32 for a in fresh)
    # without the bad one, the same signed submissions go through
    receipt = c.submit_and_wait(primary, batch[:2])
    assert len(decoded_events(c, receipt)) == 2
