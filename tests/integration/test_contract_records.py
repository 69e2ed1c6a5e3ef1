"""Directory contract, record side: catalogs (数据资源目录) and information systems (信息系统) —
register, update, retire, every field of every event, every revert with its arguments, on anvil; and
the EIP-712 encoding cross-checked against the Solidity source and eth-account.

Reverts go through :func:`expect_revert` (error name and key arguments; the batch is mined anyway and
must fail with no log and the Directory's storage root unchanged).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from chain import eip712
from chain.directory import KIND_CATALOG, KIND_SYSTEM, METHOD_OF, to_struct
from chain.rpc import Rpc
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
from registry.models import DataItem, Department, Jurisdiction, Tier
from tests.integration.conftest import (
    World,
    assert_event,
    build_world,
    catalog_record,
    deadline,
    decoded_events,
    expect_revert,
    high_s_twin,
    new_chain,
    next_nonce,
    rebound,
    resign,
    reverting,
    sign,
    submit,
    system_record,
    with_signature,
)

ROOT = Path(__file__).resolve().parents[2]
ZERO32 = b"\x00" * 32
KINDS = {"Catalog": KIND_CATALOG, "System": KIND_SYSTEM}
PRIMARIES = tuple(KINDS)
NONE, ACTIVE, RETIRED = 0, 1, 2  # IDirectory.RecordStatus
XC, XH, DX, YT = "xc_civil", "xc_health", "dx_civil", "yuetan"
CODES = {"Catalog": "301001/XC0001", "System": "SXC0001"}
# ABI tuple positions of IDirectory.RecordSubmission
ACTION, CODE, JURISDICTION, DEPARTMENT, VERSION, SOURCE, SHARE, ITEMS, RECORD, NONCE, DEADLINE, SIGNATURE = range(12)
UNCONDITIONAL, CONDITIONAL, NOT_SHARED = 1, 2, 3  # RecordSubmission.shareType
#: The members the Catalog type signs and the System type does not (a system must leave them zero).
CATALOG_ONLY = {"sourceSystem": SOURCE, "shareType": SHARE, "itemCount": ITEMS}


@pytest.fixture(scope="module")
def base(rpc: Rpc) -> World:
    """One deployment with the conftest world, shared by the module's tests."""
    return build_world(new_chain(rpc))


@pytest.fixture
def world(rpc: Rpc, base: World) -> Iterator[World]:
    """北京市 → 西城区 → 月坛街道 and 大兴区, four departments with keys; rolled back after the test (evm_revert)."""
    with reverting(rpc):
        yield World(rebound(base.chain), base.keys)


# ---------------------------------------------------------------- helpers


def record_of(world: World, primary: str, who: str = XC, code: str | None = None, **overrides: Any) -> Any:
    """A valid catalog or system of department ``who``."""
    dept = world.department(who)
    if primary == "Catalog":
        return catalog_record(dept, code or CODES["Catalog"], **overrides)
    return system_record(dept, code or CODES["System"], **overrides)


def message(
    world: World, primary: str, action: str, version: int, who: str = XC, code: str | None = None, **overrides: Any
) -> Message:
    """The message department ``who`` signs to register/update (a fresh record) or retire ``code``."""
    if action == "retire":
        dept = world.department(who)
        kind = "catalog" if primary == "Catalog" else "system"
        code = code or CODES[primary]
        return retire_message(kind, code, dept.jurisdiction, dept.code, version, next_nonce(), deadline())
    record = record_of(world, primary, who, code, **overrides)
    return record_message(record, action, version, next_nonce(), deadline())


def signed(world: World, who: str, msg: Message) -> tuple[Any, ...]:
    """``msg`` signed by department ``who``'s key, as the ABI struct."""
    return sign(world.client, world.keys[who], msg)


def put(world: World, who: str, msg: Message) -> Any:
    """Submit ``msg`` signed by department ``who``; returns the receipt."""
    return submit(world.client, world.keys[who], msg)


def steps(world: World, primary: str, history: list[tuple[str, int]], who: str = XC, **overrides: Any) -> None:
    """Apply ``(action, version)`` steps to the default code of ``primary``, as department ``who``."""
    for action, version in history:
        put(world, who, message(world, primary, action, version, who, **overrides))


def message_from_event(primary: str, args: dict[str, Any], retired: bool) -> dict[str, Any]:
    """The EIP-712 message a version/retire event stands for: what a parent tier re-verifies.

    The event has no action member: version 1 is a register, a later version an update, a *Retired event a retire.
    """
    m: dict[str, Any] = {
        "action": 3 if retired else (1 if args["version"] == 1 else 2),
        "code": args["code"],
        "jurisdiction": args["jurisdiction"],
        "department": args["department"],
        "version": args["version"],
    }
    if primary == "Catalog":
        # a retire signs them zero: CatalogRetired does not carry them
        m["sourceSystem"] = ZERO32 if retired else args["sourceSystem"]
        m["shareType"] = 0 if retired else args["shareType"]
        m["itemCount"] = 0 if retired else args["itemCount"]
    m.update({"digest": ZERO32 if retired else args["digest"], "nonce": args["nonce"], "deadline": args["deadline"]})
    return m


def check_recorded(world: World, event: Any, msg: Message, struct: tuple[Any, ...], key: LocalAccount) -> None:
    """Every field of a CatalogVersionRecorded / SystemVersionRecorded event, and its signature re-verifies."""
    m = msg.message
    fields: dict[str, Any] = {
        "codeHash": keccak(text=m["code"]),
        "jurisdiction": m["jurisdiction"],
        "department": m["department"],
        "code": m["code"],
        "version": m["version"],
        "digest": keccak(msg.record),
        "signer": key.address,
        "nonce": m["nonce"],
        "deadline": m["deadline"],
        "signature": struct[SIGNATURE],
        "record": msg.record,
    }
    if msg.primary == "Catalog":
        fields.update({name: m[name] for name in CATALOG_ONLY})
    assert_event(event, f"{msg.primary}VersionRecorded", **fields)
    assert set(event.args) == set(fields)
    assert event.args["digest"] == m["digest"]
    rebuilt = message_from_event(msg.primary, event.args, retired=False)
    assert eip712.recover(world.client.typed_data(msg.primary, rebuilt), event.args["signature"]) == key.address


def check_retired(world: World, event: Any, msg: Message, struct: tuple[Any, ...], key: LocalAccount) -> None:
    """Every field of a CatalogRetired / SystemRetired event, and its signature re-verifies."""
    m = msg.message
    fields = {
        "codeHash": keccak(text=m["code"]),
        "jurisdiction": m["jurisdiction"],
        "department": m["department"],
        "code": m["code"],
        "version": m["version"],
        "signer": key.address,
        "nonce": m["nonce"],
        "deadline": m["deadline"],
        "signature": struct[SIGNATURE],
    }
    assert_event(event, f"{msg.primary}Retired", **fields)
    assert set(event.args) == set(fields)
    rebuilt = message_from_event(msg.primary, event.args, retired=True)
    assert eip712.recover(world.client.typed_data(msg.primary, rebuilt), event.args["signature"]) == key.address


def state(world: World, primary: str, code: str | None = None) -> tuple[bytes, int, int]:
    return world.client.record_state(KINDS[primary], code or CODES[primary])


# ================================================================ happy paths and their events


def test_catalog_register_update_retire_events_and_views(world: World) -> None:
    c, key = world.client, world.keys[XC]
    dept_id, code = code_id("DXC0001"), CODES["Catalog"]

    system_msg = message(world, "System", "register", 1)
    system_struct = signed(world, XC, system_msg)
    (event,) = decoded_events(c, c.submit_and_wait("System", [system_struct]))
    check_recorded(world, event, system_msg, system_struct, key)

    v1 = message(world, "Catalog", "register", 1, source_system="SXC0001")
    s1 = signed(world, XC, v1)
    (event,) = decoded_events(c, c.submit_and_wait("Catalog", [s1]))
    check_recorded(world, event, v1, s1, key)
    assert event.args["sourceSystem"] == code_id("SXC0001")
    assert state(world, "Catalog") == (dept_id, 1, ACTIVE)
    assert c.record_digest(KIND_CATALOG, code, 1) == keccak(v1.record)

    v2 = message(world, "Catalog", "update", 2, source_system="SXC0001", summary="困难家庭救助对象信息（修订）")
    s2 = signed(world, XC, v2)
    (event,) = decoded_events(c, c.submit_and_wait("Catalog", [s2]))
    check_recorded(world, event, v2, s2, key)
    assert keccak(v2.record) != keccak(v1.record)
    assert state(world, "Catalog") == (dept_id, 2, ACTIVE)
    assert c.record_digest(KIND_CATALOG, code, 1) == keccak(v1.record)  # the old version stays readable
    assert c.record_digest(KIND_CATALOG, code, 2) == keccak(v2.record)

    v3 = message(world, "Catalog", "retire", 3)
    s3 = signed(world, XC, v3)
    (event,) = decoded_events(c, c.submit_and_wait("Catalog", [s3]))
    check_retired(world, event, v3, s3, key)
    assert state(world, "Catalog") == (dept_id, 3, RETIRED)
    assert c.record_digest(KIND_CATALOG, code, 3) == ZERO32  # a retire version commits no digest
    assert c.record_digest(KIND_CATALOG, code, 2) == keccak(v2.record)
    assert c.record_digest(KIND_CATALOG, code, 4) == ZERO32
    # record versions spend no nonce (their version sequence stops replays): the nonce is a signed salt
    assert not any(c.nonce_used(key.address, m.message["nonce"]) for m in (system_msg, v1, v2, v3))
    # catalogs and systems are separate registries: the system's code has no catalog
    assert c.record_state(KIND_CATALOG, "SXC0001") == (ZERO32, 0, NONE)


def test_system_register_update_retire_events_and_views(world: World) -> None:
    c, key = world.client, world.keys[YT]  # a street department: 月坛街道办事处
    dept_id, code = code_id("DYT0001"), "SYT0001"
    msgs = [
        message(world, "System", "register", 1, YT, code),
        message(world, "System", "update", 2, YT, code, status="offline"),
        message(world, "System", "retire", 3, YT, code),
    ]
    names = []
    for msg, expected in zip(msgs, [(1, ACTIVE), (2, ACTIVE), (3, RETIRED)], strict=True):
        struct = signed(world, YT, msg)
        (event,) = decoded_events(c, c.submit_and_wait("System", [struct]))
        names.append(event.event)
        if msg.message["action"] == 3:
            check_retired(world, event, msg, struct, key)
        else:
            check_recorded(world, event, msg, struct, key)
            assert event.args["jurisdiction"] == code_id("110102/月坛街道")
        assert c.record_state(KIND_SYSTEM, code) == (dept_id, *expected)
    assert names == ["SystemVersionRecorded", "SystemVersionRecorded", "SystemRetired"]
    assert c.record_digest(KIND_SYSTEM, code, 1) == keccak(msgs[0].record)
    assert c.record_digest(KIND_SYSTEM, code, 2) == keccak(msgs[1].record)
    assert c.record_digest(KIND_SYSTEM, code, 3) == ZERO32


def test_many_records_of_several_departments_in_one_transaction(world: World) -> None:
    c = world.client
    owners = (XC, DX, YT)
    systems = [message(world, "System", "register", 1, who, f"S{who.upper().replace('_', '')}01") for who in owners]
    receipt = c.submit_and_wait("System", [signed(world, who, m) for who, m in zip(owners, systems, strict=True)])
    assert [e.event for e in decoded_events(c, receipt)] == ["SystemVersionRecorded"] * 3

    batch: list[tuple[str, Message]] = []
    for i in range(30):
        who = owners[i % 3]
        source = systems[i % 3].message["code"] if i % 2 == 0 else None
        code = f"30100{i % 10}/C{i:04d}"
        batch.append((who, message(world, "Catalog", "register", 1, who, code, source_system=source)))
    structs = [signed(world, who, m) for who, m in batch]
    receipt = c.submit_and_wait("Catalog", structs)
    events = decoded_events(c, receipt)
    assert len(events) == 30
    assert [int(log["logIndex"], 16) for log in receipt.logs] == list(range(30))
    for event, (who, m), struct in zip(events, batch, structs, strict=True):
        check_recorded(world, event, m, struct, world.keys[who])
        assert c.record_state(KIND_CATALOG, m.message["code"]) == (code_id(world.department(who).code), 1, ACTIVE)

    # a whole lifecycle of one code inside one batch: each submission sees the state the previous one left
    lifecycle = [
        message(world, "Catalog", "register", 1, XC, "302001/LIFE"),
        message(world, "Catalog", "update", 2, XC, "302001/LIFE", grade="2"),
        message(world, "Catalog", "retire", 3, XC, "302001/LIFE"),
    ]
    events = decoded_events(c, c.submit_and_wait("Catalog", [signed(world, XC, m) for m in lifecycle]))
    assert [(e.event, e.args["version"]) for e in events] == [
        ("CatalogVersionRecorded", 1),
        ("CatalogVersionRecorded", 2),
        ("CatalogRetired", 3),
    ]
    assert c.record_state(KIND_CATALOG, "302001/LIFE") == (code_id("DXC0001"), 3, RETIRED)


def test_same_code_registers_once_across_jurisdictions(world: World) -> None:
    """Record codes are global in a directory: a 大兴区 department cannot take a 西城区 catalog's code."""
    put(world, XC, message(world, "Catalog", "register", 1))
    expect_revert(
        world.client, "Catalog", [signed(world, DX, message(world, "Catalog", "register", 1, DX))],
        "RecordStatusInvalid", kind=KIND_CATALOG, code=CODES["Catalog"], current=ACTIVE, expected=NONE,
    )  # fmt: skip


# ================================================================ who may sign


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize(
    "case",
    [
        "unbound key",
        "大兴区民政局 signs for 西城区民政局",
        "西城区卫健委 signs for 西城区民政局",
        "revoked key",
        "unknown department",
        "no department",
    ],
)
def test_signer_not_a_key_of_the_named_department_is_refused(world: World, primary: str, case: str) -> None:
    c = world.client
    msg = message(world, primary, "register", 1)
    department = code_id("DXC0001")
    if case == "unbound key":
        key = Account.create()
    elif case == "revoked key":
        key = world.keys[XC]
        revoke = account_message("department", "DXC0001", key.address, False, next_nonce(), deadline())
        submit(c, world.chain.administrator, revoke)
    elif case in ("unknown department", "no department"):
        key = world.keys[XC] if case == "unknown department" else Account.create()
        department = code_id("DXX9999") if case == "unknown department" else ZERO32
        msg = Message(msg.primary, {**msg.message, "department": department}, msg.record)
    else:
        key = world.keys[DX if case.startswith("大兴区") else XH]
    expect_revert(
        c, primary, [sign(c, key, msg)], "DepartmentAccountNotBound", account=key.address, department=department
    )
    assert state(world, primary) == (ZERO32, 0, NONE)


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize(
    ("who", "named", "home"),
    [
        (XC, "110115", "110102"),  # another district
        (XC, "110000", "110102"),  # the parent city
        (YT, "110102", "110102/月坛街道"),  # a street department naming its district
        (XC, None, "110102"),  # none
    ],
)
def test_record_naming_another_jurisdiction_than_its_departments_is_refused(
    world: World, primary: str, who: str, named: str | None, home: str
) -> None:
    msg = message(world, primary, "register", 1, who)
    got = code_id(named) if named else ZERO32
    struct = resign(world.client, world.keys[who], msg, jurisdiction=got)
    expect_revert(world.client, primary, [struct], "RecordJurisdictionMismatch", expected=code_id(home), got=got)


# ================================================================ the record state machine


STATUS_CASES = {
    # id: (history, attempt, current, expected)
    "register twice": ([("register", 1)], ("register", 1), ACTIVE, NONE),
    "update unknown": ([], ("update", 1), NONE, ACTIVE),
    "retire unknown": ([], ("retire", 1), NONE, ACTIVE),
    "update after retire": ([("register", 1), ("retire", 2)], ("update", 3), RETIRED, ACTIVE),
    "retire after retire": ([("register", 1), ("retire", 2)], ("retire", 3), RETIRED, ACTIVE),
    "register after retire": ([("register", 1), ("retire", 2)], ("register", 1), RETIRED, NONE),
}


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize("case", list(STATUS_CASES))
def test_action_not_allowed_in_the_current_status_is_refused(world: World, primary: str, case: str) -> None:
    history, (action, version), current, expected = STATUS_CASES[case]
    steps(world, primary, history)
    before = state(world, primary)
    expect_revert(
        world.client, primary, [signed(world, XC, message(world, primary, action, version))], "RecordStatusInvalid",
        kind=KINDS[primary], code=CODES[primary], current=current, expected=expected,
    )  # fmt: skip
    assert state(world, primary) == before


VERSION_CASES = {
    # id: (history, attempt, expected, got)
    "register with version 2": ([], ("register", 2), 1, 2),
    "register with version 0": ([], ("register", 0), 1, 0),
    "update skipping a version": ([("register", 1)], ("update", 3), 2, 3),
    "update repeating the version": ([("register", 1)], ("update", 1), 2, 1),
    "retire at the current version": ([("register", 1), ("update", 2)], ("retire", 2), 3, 2),
}


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize("case", list(VERSION_CASES))
def test_version_not_the_next_one_is_refused(world: World, primary: str, case: str) -> None:
    history, (action, version), expected, got = VERSION_CASES[case]
    steps(world, primary, history)
    before = state(world, primary)
    expect_revert(
        world.client, primary, [signed(world, XC, message(world, primary, action, version))], "RecordVersionMismatch",
        kind=KINDS[primary], code=CODES[primary], expected=expected, got=got,
    )  # fmt: skip
    assert state(world, primary) == before


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize(
    ("intruder", "action"),
    [(XH, "update"), (XH, "retire"), (DX, "update"), (YT, "retire")],
    ids=["西城区卫健委 updates", "西城区卫健委 retires", "大兴区民政局 updates", "月坛街道办事处 retires"],
)
def test_another_department_cannot_change_a_record_it_does_not_own(
    world: World, primary: str, intruder: str, action: str
) -> None:
    steps(world, primary, [("register", 1)])
    attempt = message(world, primary, action, 2, intruder, CODES[primary])
    expect_revert(
        world.client, primary, [signed(world, intruder, attempt)], "RecordNotOwner",
        kind=KINDS[primary], code=CODES[primary], owner=code_id("DXC0001"),
        department=code_id(world.department(intruder).code),
    )  # fmt: skip
    assert state(world, primary) == (code_id("DXC0001"), 1, ACTIVE)


# ================================================================ content


def _empty(msg: Message) -> Message:
    """``msg`` committing to an empty record (digest keccak of nothing)."""
    return Message(msg.primary, {**msg.message, "digest": keccak(b"")}, b"")


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize(
    ("history", "attempt"),
    [
        ([], lambda w, p: _empty(message(w, p, "register", 1))),
        ([("register", 1)], lambda w, p: _empty(message(w, p, "update", 2))),
        ([("register", 1)], lambda w, p: Message(p, message(w, p, "retire", 2).message, b'{"retired":true}')),
    ],
    ids=["empty record on register", "empty record on update", "record on retire"],
)
def test_record_bytes_that_do_not_fit_the_action_are_refused(
    world: World, primary: str, history: list[tuple[str, int]], attempt: Any
) -> None:
    steps(world, primary, history)
    before = state(world, primary)
    msg = attempt(world, primary)
    struct = signed(world, XC, msg)
    expect_revert(world.client, primary, [struct], "RecordContentInvalid", kind=KINDS[primary], code=CODES[primary])
    assert state(world, primary) == before


@pytest.mark.parametrize("action", ["register", "update", "retire"])
@pytest.mark.parametrize(
    ("member", "value"), [("sourceSystem", code_id("SXC0002")), ("shareType", 1), ("itemCount", 1)]
)
def test_system_naming_catalog_only_members_is_refused(world: World, action: str, member: str, value: Any) -> None:
    """Systems have no source system, share type or items; the System type does not even sign them, so only the
    relayer could set them — the contract refuses any non-zero one rather than record an unsigned value."""
    if action != "register":
        steps(world, "System", [("register", 1)])
    msg = message(world, "System", action, 1 if action == "register" else 2)
    struct = list(signed(world, XC, msg))
    struct[CATALOG_ONLY[member]] = value
    expect_revert(world.client, "System", [tuple(struct)], "RecordContentInvalid", kind=KIND_SYSTEM, code="SXC0001")


@pytest.mark.parametrize("action", ["register", "update"])
@pytest.mark.parametrize(
    "changes",
    [{"shareType": 0}, {"shareType": 4}, {"shareType": 255}, {"itemCount": 0}, {"shareType": 0, "itemCount": 0}],
    ids=["share type 0", "share type 4", "share type 255", "no items", "neither"],
)
def test_catalog_version_without_a_share_type_or_items_is_refused(
    world: World, action: str, changes: dict[str, int]
) -> None:
    """A catalog version states its share type (1 unconditional, 2 conditional, 3 not_shared) and item count
    (≥ 1): sharing is enforced on chain from them. Signed as given, so the department itself is refused."""
    version = 1 if action == "register" else 2
    if action == "update":
        steps(world, "Catalog", [("register", 1)])
    before = world.client.view("record", KIND_CATALOG, CODES["Catalog"])
    struct = resign(world.client, world.keys[XC], message(world, "Catalog", action, version), **changes)
    expect_revert(world.client, "Catalog", [struct], "RecordContentInvalid", kind=KIND_CATALOG, code=CODES["Catalog"])
    assert world.client.view("record", KIND_CATALOG, CODES["Catalog"]) == before


@pytest.mark.parametrize(
    "share_type", [UNCONDITIONAL, CONDITIONAL, NOT_SHARED], ids=["unconditional", "conditional", "not_shared"]
)
def test_catalog_versions_carry_share_type_and_item_count_to_event_and_view(world: World, share_type: int) -> None:
    c, key, code = world.client, world.keys[XC], CODES["Catalog"]
    name = {UNCONDITIONAL: "unconditional", CONDITIONAL: "conditional", NOT_SHARED: "not_shared"}[share_type]
    items = [DataItem(name=f"信息项{i}", data_type="string") for i in range(7)]
    v1 = message(world, "Catalog", "register", 1, share_type=name, data_items=items)
    assert (v1.message["shareType"], v1.message["itemCount"]) == (share_type, 7)
    s1 = signed(world, XC, v1)
    assert (s1[SHARE], s1[ITEMS]) == (share_type, 7)
    (event,) = decoded_events(c, c.submit_and_wait("Catalog", [s1]))
    check_recorded(world, event, v1, s1, key)  # every field, shareType and itemCount among them
    assert (event.args["shareType"], event.args["itemCount"]) == (share_type, 7)
    ((department, version, status, got_share, got_items),) = c.view("record", KIND_CATALOG, code)
    assert (department, version, status, got_share, got_items) == (code_id("DXC0001"), 1, ACTIVE, share_type, 7)

    # an update restates both: the view follows the latest version
    v2 = message(world, "Catalog", "update", 2, share_type="unconditional", data_items=items[:1])
    s2 = signed(world, XC, v2)
    (event,) = decoded_events(c, c.submit_and_wait("Catalog", [s2]))
    check_recorded(world, event, v2, s2, key)
    assert (event.args["shareType"], event.args["itemCount"]) == (UNCONDITIONAL, 1)
    assert c.view("record", KIND_CATALOG, code) == ((code_id("DXC0001"), 2, ACTIVE, UNCONDITIONAL, 1),)


def test_contract_takes_share_type_and_item_count_as_signed_not_from_the_record(world: World) -> None:
    """The contract does not parse the record: shareType/itemCount are what the department signed. A version
    whose record disagrees is accepted here and marked invalid by the indexer (IDirectory.RecordSubmission)."""
    c = world.client
    msg = message(world, "Catalog", "register", 1)  # the record says conditional, two items
    struct = resign(c, world.keys[XC], msg, shareType=UNCONDITIONAL, itemCount=9)
    (event,) = decoded_events(c, c.submit_and_wait("Catalog", [struct]))
    assert (event.args["shareType"], event.args["itemCount"], event.args["record"]) == (UNCONDITIONAL, 9, msg.record)


def test_system_view_has_no_share_type_or_items(world: World) -> None:
    steps(world, "System", [("register", 1)])
    assert world.client.view("record", KIND_SYSTEM, CODES["System"]) == ((code_id("DXC0001"), 1, ACTIVE, 0, 0),)


@pytest.mark.parametrize("primary", PRIMARIES)
def test_unknown_action_is_refused(world: World, primary: str) -> None:
    msg = message(world, primary, "register", 1)
    struct = resign(world.client, world.keys[XC], msg, action=0)
    expect_revert(world.client, primary, [struct], "RecordActionUnknown", action=0)
    assert state(world, primary) == (ZERO32, 0, NONE)


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize("code", ["", "S" * 65])
def test_record_code_empty_or_longer_than_64_bytes_is_refused(world: World, primary: str, code: str) -> None:
    msg = message(world, primary, "register", 1)
    struct = resign(world.client, world.keys[XC], msg, code=code)
    expect_revert(world.client, primary, [struct], "DirectoryCodeInvalid", code=code)


@pytest.mark.parametrize(
    "case", ["never registered", "retired", "retired before the catalog's update", "a catalog's code"]
)
def test_catalog_naming_a_source_system_not_registered_and_active_is_refused(world: World, case: str) -> None:
    source = "SXX9999" if case == "never registered" else "SXC0001"
    if case == "a catalog's code":  # catalogs and systems are separate registries
        source = "301001/XC0009"
        put(world, XC, message(world, "Catalog", "register", 1, code=source))
    if case.startswith("retired"):
        steps(world, "System", [("register", 1)])
    if case == "retired before the catalog's update":
        steps(world, "Catalog", [("register", 1)], source_system=source)
    if case.startswith("retired"):
        steps(world, "System", [("retire", 2)])
    version = 2 if case == "retired before the catalog's update" else 1
    attempt = message(world, "Catalog", "update" if version == 2 else "register", version)
    # the model refuses a catalog code as source system, so the signed message names it directly
    struct = resign(world.client, world.keys[XC], attempt, sourceSystem=code_id(source))
    expect_revert(
        world.client, "Catalog", [struct], "CatalogSourceSystemUnknown",
        code=CODES["Catalog"], sourceSystem=code_id(source),
    )  # fmt: skip
    assert state(world, "Catalog")[1] == version - 1


# ================================================================ deadline, nonce, signature


@pytest.mark.parametrize("primary", PRIMARIES)
def test_expired_record_is_refused(world: World, primary: str) -> None:
    past = deadline(-60)
    struct = resign(world.client, world.keys[XC], message(world, primary, "register", 1), deadline=past)
    exc = expect_revert(world.client, primary, [struct], "SubmissionExpired", deadline=past)
    assert exc.args_by_name["timestamp"] > past


#: A replayed version (action, version, the record's history before it) and the error it meets: record
#: versions spend no nonce, the version sequence refuses the replay.
REPLAYS = {
    "register": ("register", 1, [], "RecordStatusInvalid"),
    "update": ("update", 2, [("register", 1)], "RecordVersionMismatch"),
    "retire": ("retire", 2, [("register", 1)], "RecordStatusInvalid"),
}
#: What the replay's error names: (current, expected) status, or (expected, got) version.
REPLAY_ARGS = {
    "register": {"current": ACTIVE, "expected": NONE},
    "update": {"expected": 3, "got": 2},
    "retire": {"current": RETIRED, "expected": ACTIVE},
}


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize("case", list(REPLAYS))
def test_replayed_record_is_refused_by_the_version_sequence(world: World, primary: str, case: str) -> None:
    c, key = world.client, world.keys[XC]
    action, version, history, error = REPLAYS[case]
    steps(world, primary, history)
    msg = message(world, primary, action, version)
    struct = signed(world, XC, msg)
    c.submit_and_wait(primary, [struct])
    before = state(world, primary)
    assert before[1] == version
    expect_revert(c, primary, [struct], error, kind=KINDS[primary], code=CODES[primary], **REPLAY_ARGS[case])
    assert state(world, primary) == before
    assert not c.nonce_used(key.address, msg.message["nonce"])


@pytest.mark.parametrize("primary", PRIMARIES)
@pytest.mark.parametrize("case", list(REPLAYS))
def test_record_twice_in_one_batch_is_refused_and_the_first_copy_undone(
    world: World, primary: str, case: str
) -> None:
    c, key = world.client, world.keys[XC]
    action, version, history, error = REPLAYS[case]
    steps(world, primary, history)
    before = state(world, primary)
    msg = message(world, primary, action, version)
    struct = signed(world, XC, msg)
    expect_revert(c, primary, [struct, struct], error, kind=KINDS[primary], code=CODES[primary], **REPLAY_ARGS[case])
    assert state(world, primary) == before
    assert c.record_digest(KINDS[primary], CODES[primary], version) == ZERO32
    assert not c.nonce_used(key.address, msg.message["nonce"])


def test_records_signed_with_the_same_nonce_all_apply(world: World) -> None:
    """A record version's nonce is a signed salt, not spent: two catalogs and a system signed by one key with
    one nonce all go through (in one batch and in separate ones), and the nonce stays free for a submission
    that spends nonces (a sharing request of the same key)."""
    c, key = world.client, world.keys[XC]
    nonce = next_nonce()
    system = resign(c, key, message(world, "System", "register", 1), nonce=nonce)
    (event,) = decoded_events(c, c.submit_and_wait("System", [system]))
    assert_event(event, "SystemVersionRecorded", nonce=nonce, signer=key.address)
    codes = ("301001/XC0001", "301001/XC0002", "301001/XC0003")
    catalogs = [resign(c, key, message(world, "Catalog", "register", 1, code=code), nonce=nonce) for code in codes]
    events = decoded_events(c, c.submit_and_wait("Catalog", catalogs[:2]))
    events += decoded_events(c, c.submit_and_wait("Catalog", catalogs[2:]))
    assert [(e.event, e.args["code"], e.args["nonce"]) for e in events] == [
        ("CatalogVersionRecorded", code, nonce) for code in codes
    ]
    assert [state(world, "Catalog", code) for code in codes] == [(code_id("DXC0001"), 1, ACTIVE)] * 3
    assert not c.nonce_used(key.address, nonce)
    # the same key's sharing request with that nonce spends it
    put(world, XH, message(world, "Catalog", "register", 1, XH, code="301001/XH0001"))
    t0 = int(time.time())
    request = sharing_request_message("301001/XH0001", 1, "DXC0001", 0b1, "核对", "依据", t0, t0 + 86_400, nonce,
                                      deadline())
    (requested, *_) = decoded_events(c, put(world, XC, request))
    assert_event(
        requested, "SharingRequested", id=sharing_request_id(key.address, nonce), owner=code_id("DXC0002"), nonce=nonce
    )
    assert c.nonce_used(key.address, nonce)


@pytest.mark.parametrize("primary", PRIMARIES)
def test_high_s_twin_of_a_record_signature_is_refused(world: World, primary: str) -> None:
    c = world.client
    msg = message(world, primary, "register", 1)
    struct = signed(world, XC, msg)
    twin = high_s_twin(struct[SIGNATURE])
    expect_revert(c, primary, [with_signature(struct, twin)], "ECDSAInvalidSignatureS", s=twin[32:64])
    c.submit_and_wait(primary, [struct])  # the low-s original is still good: the nonce was not spent
    assert state(world, primary)[1] == 1


# ================================================================ the relayer cannot alter a signed record


def _signed_message_of(struct: tuple[Any, ...], primary: str) -> dict[str, Any]:
    """The EIP-712 message the contract hashes for ``struct`` (what the signature is checked against)."""
    retire = struct[ACTION] == 3
    m: dict[str, Any] = {
        "action": struct[ACTION],
        "code": struct[CODE],
        "jurisdiction": struct[JURISDICTION],
        "department": struct[DEPARTMENT],
        "version": struct[VERSION],
    }
    if primary == "Catalog":
        m.update({name: struct[index] for name, index in CATALOG_ONLY.items()})
    m.update({"digest": ZERO32 if retire else keccak(struct[RECORD]), "nonce": struct[NONCE],
              "deadline": struct[DEADLINE]})  # fmt: skip
    return m


ALTERATIONS: dict[str, tuple[int, Any]] = {
    "record bytes swapped": (RECORD, lambda w, p, v: record_message(
        record_of(w, p, name="伪造的名称"), "register", 1, 0, 0).record),
    "one byte of the record": (RECORD, lambda w, p, v: v[:-2] + bytes([v[-2] ^ 1]) + v[-1:]),
    "version": (VERSION, lambda w, p, v: 2),
    "code": (CODE, lambda w, p, v: v[:-1] + "9"),
    "action": (ACTION, lambda w, p, v: 2),
    "deadline": (DEADLINE, lambda w, p, v: v + 1),
    "source system": (SOURCE, lambda w, p, v: code_id("SXC0002")),
    "share type": (SHARE, lambda w, p, v: UNCONDITIONAL),  # conditional → unconditional: granted at once
    "item count": (ITEMS, lambda w, p, v: v + 1),
}  # fmt: skip
#: Alterations of members the System type does not sign (see test_system_naming_catalog_only_members_is_refused).
CATALOG_ALTERATIONS = ("source system", "share type", "item count")


@pytest.mark.parametrize(
    ("primary", "alteration"),
    [(p, a) for p in PRIMARIES for a in ALTERATIONS if p == "Catalog" or a not in CATALOG_ALTERATIONS],
)
def test_relayer_altering_a_signed_record_changes_the_signer_and_is_refused(
    world: World, primary: str, alteration: str
) -> None:
    c, key = world.client, world.keys[XC]
    steps(world, "System", [("register", 1)], code="SXC0002")  # so a changed source system exists and is active
    if primary == "System":  # the default system code is the one under test
        original = message(world, primary, "register", 1)
    else:
        steps(world, "System", [("register", 1)])
        original = message(world, primary, "register", 1, source_system="SXC0001")
    struct = signed(world, XC, original)
    index, change = ALTERATIONS[alteration]
    altered = list(struct)
    altered[index] = change(world, primary, struct[index])
    assert altered[index] != struct[index]
    recovered = eip712.recover(c.typed_data(primary, _signed_message_of(tuple(altered), primary)), struct[SIGNATURE])
    assert recovered != key.address
    expect_revert(
        c, primary, [tuple(altered)], "DepartmentAccountNotBound", account=recovered, department=code_id("DXC0001")
    )
    assert state(world, primary, altered[CODE]) == (ZERO32, 0, NONE)
    c.submit_and_wait(primary, [struct])  # the untouched submission still goes through
    assert c.record_digest(KINDS[primary], CODES[primary], 1) == keccak(original.record)


def test_record_signed_for_another_directory_is_refused(world: World, rpc: Rpc) -> None:
    """The EIP-712 domain names the Directory: a signature for one deployment recovers a stranger on another."""
    key = world.keys[XC]
    other = build_world(new_chain(rpc))  # a second deployment, the same tree, its own keys
    bind = account_message("department", "DXC0001", key.address, True, next_nonce(), deadline())
    submit(other.client, other.chain.administrator, bind)  # … and 西城区民政局's key bound there too
    msg = message(world, "Catalog", "register", 1)
    struct = signed(world, XC, msg)  # signed for `world`'s directory
    recovered = eip712.recover(other.client.typed_data("Catalog", msg.message), struct[SIGNATURE])
    assert recovered != key.address
    expect_revert(
        other.client, "Catalog", [struct], "DepartmentAccountNotBound", account=recovered, department=code_id("DXC0001")
    )
    (event,) = decoded_events(other.client, submit(other.client, key, msg))  # signed for `other`: accepted
    assert_event(event, "CatalogVersionRecorded", signer=key.address)


# ================================================================ retire carries no source system, share type or items


@pytest.mark.parametrize(
    "changes",
    [{"sourceSystem": code_id("SXC0001")}, {"shareType": CONDITIONAL}, {"shareType": 4}, {"itemCount": 2},
     {"shareType": CONDITIONAL, "itemCount": 2}],
    ids=["source system", "share type", "share type 4", "items", "share type and items"],
)  # fmt: skip
def test_catalog_retire_naming_catalog_only_members_is_refused(world: World, changes: dict[str, Any]) -> None:
    """CatalogRetired carries none of them, so a retire must sign them zero (re-verifiable from its log)."""
    steps(world, "System", [("register", 1)])
    steps(world, "Catalog", [("register", 1)], source_system="SXC0001")
    retire = message(world, "Catalog", "retire", 2)
    struct = resign(world.client, world.keys[XC], retire, **changes)  # signed as given: the department's own mistake
    expect_revert(world.client, "Catalog", [struct], "RecordContentInvalid", kind=KIND_CATALOG, code=CODES["Catalog"])
    assert state(world, "Catalog") == (code_id("DXC0001"), 1, ACTIVE)


# ================================================================ EIP-712 encoding


def _sol_type_strings() -> list[str]:
    """The eight ``*_TYPE`` string constants of contracts/libraries/DirectoryTypes.sol, in eip712Types() order."""
    text = (ROOT / "contracts" / "libraries" / "DirectoryTypes.sol").read_text()
    found = dict(re.findall(r'string\s+internal\s+constant\s+(\w+)_TYPE\s*=\s*"([^"]*)"\s*;', text))
    # SharingRequest → SHARING_REQUEST
    order = [re.sub(r"(?<=[a-z])(?=[A-Z])", "_", p).upper() for p in eip712.PRIMARY_TYPES]
    assert len(order) == 8 and sorted(found) == sorted(order), f"expected the constants {order}, found {sorted(found)}"
    return [found[name] for name in order]


def test_eip712_types_of_the_contract_are_those_of_directory_types_sol(world: World) -> None:
    c = world.client
    source = _sol_type_strings()
    (on_chain,) = c.view("eip712Types")
    assert list(on_chain) == source
    assert c.types == eip712.parse_types(source)
    assert tuple(c.types) == eip712.PRIMARY_TYPES
    assert set(METHOD_OF) == set(eip712.PRIMARY_TYPES)
    # each type's members are its submission struct's, with record → digest and without the signature
    for primary, method in METHOD_OF.items():
        (batch,) = next(e["inputs"] for e in c.abi if e.get("type") == "function" and e["name"] == method)
        members = [p["name"] for p in batch["components"] if p["name"] != "signature"]
        members = ["digest" if n == "record" else n for n in members]
        if primary == "System":
            members = [n for n in members if n not in CATALOG_ONLY]
        assert [m["name"] for m in c.types[primary]] == members, primary
    # ERC-5267: the domain the contract reports is the one the client signs with
    _, name, version, chain_id, verifying, _, _ = c.view("eip712Domain")
    assert c.domain == eip712.domain(chain_id, to_checksum_address(verifying), name, version)
    assert (name, version, chain_id) == ("DirectoryChain", "1", world.chain.client.chain_id)


def _message_of(world: World, primary: str) -> tuple[Message, LocalAccount]:
    admin = world.chain.administrator
    if primary == "Jurisdiction":
        street = Jurisdiction(code="110102/展览路街道", name="展览路街道", tier=Tier.STREET, parent="110102")
        return jurisdiction_message(street, next_nonce(), deadline()), admin
    if primary == "Department":
        dept = Department(code="DXC0003", name="西城区教育委员会", jurisdiction="110102")
        return department_message(dept, next_nonce(), deadline()), admin
    if primary == "Account":
        return account_message("department", "DXC0002", Account.create().address, True, next_nonce(), deadline()), admin
    if primary == "Catalog":
        put(world, XC, message(world, "System", "register", 1))
        return message(world, primary, "register", 1, source_system="SXC0001"), world.keys[XC]
    if primary == "System":
        return message(world, primary, "register", 1), world.keys[XC]
    # sharing: 大兴区民政局 asks for 西城区民政局's catalog (conditional; unconditional for a revocation)
    share_type = "unconditional" if primary == "SharingRevocation" else "conditional"
    put(world, XC, message(world, "Catalog", "register", 1, share_type=share_type))
    now = int(time.time())
    request = sharing_request_message(
        CODES["Catalog"], 1, "DDX0001", 0b11, "低保资格核对", "《社会救助暂行办法》第十一条", now, now + 86400,
        next_nonce(), deadline(),
    )  # fmt: skip
    if primary == "SharingRequest":
        return request, world.keys[DX]
    put(world, DX, request)
    request_id = sharing_request_id(world.keys[DX].address, request.message["nonce"])
    if primary == "SharingDecision":
        return sharing_decision_message(request_id, True, "同意", next_nonce(), deadline()), world.keys[XC]
    return sharing_revocation_message(request_id, "用途已完成", next_nonce(), deadline()), world.keys[XC]


@pytest.mark.parametrize("primary", eip712.PRIMARY_TYPES)
def test_eth_account_sign_typed_data_agrees_with_chain_eip712(world: World, primary: str) -> None:
    c = world.client
    msg, key = _message_of(world, primary)
    data = c.typed_data(primary, msg.message)
    ours = eip712.sign(key, data)
    # eth-account's other entry point: domain, types and message given separately (EIP712Domain derived)
    theirs = bytes(
        Account.sign_typed_data(
            key.key, domain_data=c.domain, message_types={primary: c.types[primary]}, message_data=msg.message
        ).signature
    )
    assert theirs == ours  # RFC 6979: same key, same digest, same signature
    assert eip712.recover(data, theirs) == key.address
    # and the contract recovers that signer from the eth-account signature
    (event,) = decoded_events(c, c.submit_and_wait(primary, [to_struct(primary, msg.message, theirs, msg.record)]))
    assert event.args["signer"].lower() == key.address.lower()
