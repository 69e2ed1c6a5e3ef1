"""Directory contract, sharing side (IDirectorySharing): requests, decisions, revocations and expiry —
every transition allowed and forbidden, every field of every event, every error with its arguments, on anvil.

Reverts go through :func:`expect_revert` / :func:`expect_call_revert` (error name and key arguments; the
call is mined anyway and must fail with no log and the Directory's storage root unchanged).

Time: deadlines and periods are built from the chain's latest block timestamp, never the wall clock, and
tests that move anvil's clock (``evm_setNextBlockTimestamp``) run inside the per-test ``evm_snapshot`` /
``evm_revert`` of the ``world`` fixture, which rolls the clock back too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from chain import eip712
from chain.directory import KIND_CATALOG, SHARING_STATUS, DirectoryClient
from chain.journal import MemoryJournal
from chain.rpc import Rpc
from chain.sender import TxSender
from registry.canonical import code_id
from registry.messages import (
    Message,
    account_message,
    items_mask,
    record_message,
    retire_message,
    sharing_decision_message,
    sharing_request_id,
    sharing_request_message,
    sharing_revocation_message,
)
from registry.models import DataItem
from tests.integration.conftest import (
    CHAIN_ID,
    World,
    assert_event,
    build_world,
    call_and_wait,
    catalog_record,
    decoded_events,
    expect_call_revert,
    expect_revert,
    funded_account,
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

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
STATUS = {name: value for value, name in enumerate(SHARING_STATUS)}  # IDirectorySharing.SharingStatus
NONE, REQUESTED, GRANTED, REJECTED, REFUSED, REVOKED, EXPIRED = (
    STATUS[n] for n in ("none", "requested", "granted", "rejected", "refused", "revoked", "expired")
)
ACTIVE, RETIRED = 1, 2  # IDirectory.RecordStatus
XC, XH, DX, YT = "xc_civil", "xc_health", "dx_civil", "yuetan"
OWNER = code_id("DXC0001")  # 西城区民政局 owns every catalog below
UNCOND, COND, NOSHARE = "301001/XC0101", "301001/XC0102", "301001/XC0103"
SHARE_TYPES = {UNCOND: "unconditional", COND: "conditional", NOSHARE: "not_shared"}
ITEMS = [
    DataItem(name="户主姓名", data_type="string"),
    DataItem(name="身份证号", data_type="string"),
    DataItem(name="救助类别", data_type="code"),
]
PURPOSE, BASIS = "最低生活保障资格核对", "《社会救助暂行办法》第十一条"
DAY = 86_400
METHODS = ("SharingRequest", "SharingDecision", "SharingRevocation")
PRIMARY_OF = {
    "requestSharing": "SharingRequest",
    "decideSharing": "SharingDecision",
    "revokeSharing": "SharingRevocation",
}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base(rpc: Rpc) -> World:
    """The conftest world plus three catalogs of 西城区民政局 (3 data items each), one per share type."""
    world = build_world(new_chain(rpc))
    for code in SHARE_TYPES:
        submit(world.client, world.keys[XC], catalog_message(world, code))
    return world


@pytest.fixture
def world(rpc: Rpc, base: World) -> Iterator[World]:
    """The module's deployment; every change, the clock included, is rolled back after the test (evm_revert)."""
    with reverting(rpc):
        yield World(rebound(base.chain), base.keys)


# ---------------------------------------------------------------- clock


def now(world: World) -> int:
    """Timestamp (unix seconds) of the latest block."""
    return int(world.chain.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def deadline(world: World, seconds: int = 60 * DAY) -> int:
    """A deadline ``seconds`` after the latest block (long enough to outlive the default period)."""
    return now(world) + seconds


def next_block_at(world: World, timestamp: int) -> None:
    """The next block (the next transaction, and a gas estimate before it) gets ``timestamp``."""
    world.chain.rpc.call("evm_setNextBlockTimestamp", [timestamp])


def travel_to(world: World, timestamp: int) -> None:
    """Mine an empty block at ``timestamp``."""
    next_block_at(world, timestamp)
    world.chain.rpc.call("evm_mine", [])
    assert now(world) == timestamp


# ---------------------------------------------------------------- messages


def catalog_message(world: World, code: str, version: int = 1, **overrides: Any) -> Message:
    """西城区民政局 registers (version 1) or updates ``code`` with the share type of :data:`SHARE_TYPES`."""
    fields: dict[str, Any] = {"share_type": SHARE_TYPES.get(code, "conditional"), "data_items": ITEMS, **overrides}
    record = catalog_record(world.department(XC), code, **fields)
    return record_message(record, "register" if version == 1 else "update", version, next_nonce(), deadline(world))


def request_message(
    world: World, catalog: str = COND, who: str = DX, *, items: int = 0b011, version: int = 1,
    start: int | None = None, end: int | None = None, purpose: str = PURPOSE, basis: str = BASIS,
) -> Message:  # fmt: skip
    """Department ``who`` asks for ``items`` of ``catalog``; the period defaults to [now, now + 30 days)."""
    t = now(world)
    return sharing_request_message(
        catalog, version, world.department(who).code, items, purpose, basis,
        t if start is None else start, t + 30 * DAY if end is None else end, next_nonce(), deadline(world),
    )  # fmt: skip


def decision_message(world: World, request: bytes, approve: bool = True, reason: str | None = None) -> Message:
    reason = reason if reason is not None else ("同意，限本次核对使用" if approve else "用途与共享条件不符")
    return sharing_decision_message(request, approve, reason, next_nonce(), deadline(world))


def revocation_message(world: World, request: bytes, reason: str = "核对工作已结束") -> Message:
    return sharing_revocation_message(request, reason, next_nonce(), deadline(world))


def signed(world: World, who: str, msg: Message) -> tuple[Any, ...]:
    return sign(world.client, world.keys[who], msg)


def put(world: World, who: str, msg: Message) -> list[Any]:
    """Submit ``msg`` signed by department ``who``; returns the decoded events."""
    return decoded_events(world.client, submit(world.client, world.keys[who], msg))


def id_of(world: World, who: str, msg: Message) -> bytes:
    """Request id of ``msg`` signed by ``who``'s key: keccak256(abi.encode(signer, nonce))."""
    return sharing_request_id(world.keys[who].address, msg.message["nonce"])


def ask(world: World, catalog: str = COND, who: str = DX, **kwargs: Any) -> tuple[bytes, Message]:
    """Department ``who`` requests ``catalog``; returns the request id and the message."""
    msg = request_message(world, catalog, who, **kwargs)
    put(world, who, msg)
    return id_of(world, who, msg), msg


def decide(world: World, request: bytes, approve: bool = True, who: str = XC) -> None:
    put(world, who, decision_message(world, request, approve))


def revoke(world: World, request: bytes, who: str = XC) -> None:
    put(world, who, revocation_message(world, request))


def expire(world: World, ids: list[bytes]) -> list[Any]:
    return decoded_events(world.client, call_and_wait(world.client, "expireSharing", [ids]))


def status(world: World, request: bytes) -> int:
    return int(world.client.sharing(request)["status"])


# ---------------------------------------------------------------- event checks


def check_requested(world: World, event: Any, msg: Message, struct: tuple[Any, ...], key: LocalAccount) -> bytes:
    """Every field of SharingRequested; its signature re-verifies from the log alone. Returns the id."""
    m = msg.message
    fields = {
        "id": sharing_request_id(key.address, m["nonce"]),
        "catalogHash": keccak(text=m["catalog"]),
        "requester": m["requester"],
        "catalog": m["catalog"],
        "version": m["version"],
        "owner": OWNER,
        "items": m["items"],
        "start": m["start"],
        "end": m["end"],
        "purpose": m["purpose"],
        "basis": m["basis"],
        "signer": key.address,
        "nonce": m["nonce"],
        "deadline": m["deadline"],
        "signature": struct[-1],
    }
    assert_event(event, "SharingRequested", **fields)
    assert set(event.args) == set(fields)
    a = event.args
    rebuilt = {name: a[name] for name in ("catalog", "version", "requester", "items", "purpose", "basis")}
    rebuilt.update({"start": a["start"], "end": a["end"], "nonce": a["nonce"], "deadline": a["deadline"]})
    assert eip712.recover(world.client.typed_data("SharingRequest", rebuilt), a["signature"]) == key.address
    return fields["id"]


def check_changed(
    world: World, event: Any, request: bytes, catalog: str, frm: int, to: int, reason: str,
    msg: Message | None = None, struct: tuple[Any, ...] | None = None, key: LocalAccount | None = None,
) -> None:  # fmt: skip
    """Every field of SharingStatusChanged. Automatic transitions (no ``msg``) carry a zero signer, nonce,
    deadline and an empty signature; signed ones carry the decision/revocation, re-verifiable from the log."""
    fields: dict[str, Any] = {
        "id": request,
        "catalogHash": keccak(text=catalog),
        "from": frm,
        "to": to,
        "reason": reason,
        "signer": ZERO_ADDRESS,
        "nonce": 0,
        "deadline": 0,
        "signature": b"",
    }
    if msg is not None:
        assert struct is not None and key is not None
        fields.update({"signer": key.address, "nonce": msg.message["nonce"], "deadline": msg.message["deadline"]})
        fields["signature"] = struct[-1]
    assert_event(event, "SharingStatusChanged", **fields)
    assert set(event.args) == set(fields)
    if msg is not None and key is not None:
        a = event.args
        if to == REVOKED:
            primary, rebuilt = "SharingRevocation", {"request": a["id"], "reason": a["reason"]}
        else:  # a decision: `to` says whether it approved
            primary, rebuilt = "SharingDecision", {"request": a["id"], "approve": to == GRANTED, "reason": a["reason"]}
        rebuilt.update({"nonce": a["nonce"], "deadline": a["deadline"]})
        assert eip712.recover(world.client.typed_data(primary, rebuilt), a["signature"]) == key.address


def check_view(world: World, request: bytes, msg: Message, expected_status: int) -> None:
    m = msg.message
    assert world.client.sharing(request) == {
        "catalogHash": keccak(text=m["catalog"]),
        "requester": m["requester"],
        "owner": OWNER,
        "items": m["items"],
        "start": m["start"],
        "end": m["end"],
        "version": m["version"],
        "status": expected_status,
    }


# ================================================================ the three share types


def test_unconditional_catalog_is_granted_at_once(world: World) -> None:
    c, key = world.client, world.keys[DX]
    catalog = catalog_record(world.department(XC), UNCOND, share_type="unconditional", data_items=ITEMS)
    msg = request_message(world, UNCOND, items=items_mask(catalog, ["户主姓名", "救助类别"]))
    assert msg.message["items"] == 0b101
    struct = signed(world, DX, msg)
    requested, changed = decoded_events(c, c.submit_and_wait("SharingRequest", [struct]))
    request = check_requested(world, requested, msg, struct, key)
    check_changed(world, changed, request, UNCOND, REQUESTED, GRANTED, "unconditional")
    check_view(world, request, msg, GRANTED)
    assert c.nonce_used(key.address, msg.message["nonce"])


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "rejected"])
def test_conditional_request_waits_for_the_owners_decision(world: World, approve: bool) -> None:
    c = world.client
    msg = request_message(world, COND, YT, items=0b111)  # 月坛街道办事处 asks for all three items
    struct = signed(world, YT, msg)
    (requested,) = decoded_events(c, c.submit_and_wait("SharingRequest", [struct]))
    request = check_requested(world, requested, msg, struct, world.keys[YT])
    check_view(world, request, msg, REQUESTED)

    reason = "同意，限低保核对使用" if approve else "申请用途超出共享条件"
    decision = decision_message(world, request, approve, reason)
    struct = signed(world, XC, decision)
    (changed,) = decoded_events(c, c.submit_and_wait("SharingDecision", [struct]))
    to = GRANTED if approve else REJECTED
    check_changed(world, changed, request, COND, REQUESTED, to, reason, decision, struct, world.keys[XC])
    check_view(world, request, msg, to)


def test_not_shared_catalog_is_refused_at_once_and_cannot_be_decided(world: World) -> None:
    c = world.client
    msg = request_message(world, NOSHARE)
    struct = signed(world, DX, msg)
    requested, changed = decoded_events(c, c.submit_and_wait("SharingRequest", [struct]))
    request = check_requested(world, requested, msg, struct, world.keys[DX])
    check_changed(world, changed, request, NOSHARE, REQUESTED, REFUSED, "not_shared")
    check_view(world, request, msg, REFUSED)
    for approve in (True, False):  # not even the owner can turn a refusal into a grant
        expect_revert(
            c, "SharingDecision", [signed(world, XC, decision_message(world, request, approve))],
            "SharingStatusInvalid", id=request, current=REFUSED, expected=REQUESTED,
        )  # fmt: skip
    expect_revert(
        c, "SharingRevocation", [signed(world, XC, revocation_message(world, request))],
        "SharingStatusInvalid", id=request, current=REFUSED, expected=GRANTED,
    )  # fmt: skip
    assert status(world, request) == REFUSED


@pytest.mark.parametrize("how", ["unconditional", "approved"])
def test_owner_revokes_a_grant(world: World, how: str) -> None:
    c = world.client
    request, msg = ask(world, UNCOND if how == "unconditional" else COND)
    if how == "approved":
        decide(world, request)
    revocation = revocation_message(world, request, "发现超范围使用，撤销授权")
    struct = signed(world, XC, revocation)
    (changed,) = decoded_events(c, c.submit_and_wait("SharingRevocation", [struct]))
    catalog = msg.message["catalog"]
    check_changed(world, changed, request, catalog, GRANTED, REVOKED, "发现超范围使用，撤销授权", revocation, struct,
                  world.keys[XC])  # fmt: skip
    check_view(world, request, msg, REVOKED)


# ================================================================ the state machine: every status × every action


UNKNOWN_ID = keccak(text="no such request")


def reach(world: World, state: str) -> tuple[bytes, int]:
    """A request in ``state`` (its id and period end)."""
    if state == "unknown":
        return UNKNOWN_ID, 0
    catalog = {"granted at once": UNCOND, "refused": NOSHARE, "revoked": UNCOND, "expired": UNCOND}.get(state, COND)
    request, msg = ask(world, catalog)
    end = msg.message["end"]
    if state in ("granted on approval", "rejected"):
        decide(world, request, approve=state == "granted on approval")
    elif state == "revoked":
        revoke(world, request)
    elif state == "expired":
        travel_to(world, end)
        expire(world, [request])
    return request, end


REACHED = {
    "unknown": NONE,
    "requested": REQUESTED,
    "granted at once": GRANTED,
    "granted on approval": GRANTED,
    "rejected": REJECTED,
    "refused": REFUSED,
    "revoked": REVOKED,
    "expired": EXPIRED,
}
#: action: (status it needs, status it leads to)
ACTIONS = {
    "approve": (REQUESTED, GRANTED),
    "reject": (REQUESTED, REJECTED),
    "revoke": (GRANTED, REVOKED),
    "expire": (GRANTED, EXPIRED),  # after the period's end
}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("state", list(REACHED))
def test_every_action_in_every_status(world: World, state: str, action: str) -> None:
    """Requested → Granted | Rejected (owner); Granted → Revoked (owner) | Expired (after the end); nothing else."""
    c = world.client
    request, end = reach(world, state)
    current = REACHED[state]
    assert status(world, request) == current
    needed, leads_to = ACTIONS[action]
    if action == "expire" and state != "expired":
        travel_to(world, max(end, now(world) + 1))
    primary, call = "", []
    if action in ("approve", "reject"):
        primary, call = "SharingDecision", [signed(world, XC, decision_message(world, request, action == "approve"))]
    elif action == "revoke":
        primary, call = "SharingRevocation", [signed(world, XC, revocation_message(world, request))]
    if current != needed:
        if action == "expire":
            expect_call_revert(c, "expireSharing", [[request]], "SharingStatusInvalid",
                               id=request, current=current, expected=needed)  # fmt: skip
        else:
            expect_revert(c, primary, call, "SharingStatusInvalid", id=request, current=current, expected=needed)
        assert status(world, request) == current
        return
    if action == "expire":
        (changed,) = expire(world, [request])
    else:
        (changed,) = decoded_events(c, c.submit_and_wait(primary, call))
    assert_event(changed, "SharingStatusChanged", id=request, **{"from": current, "to": leads_to})
    assert status(world, request) == leads_to


def test_unknown_request_reads_as_none(world: World) -> None:
    assert world.client.sharing(UNKNOWN_ID) == {
        "catalogHash": ZERO32, "requester": ZERO32, "owner": ZERO32, "items": 0, "start": 0, "end": 0,
        "version": 0, "status": NONE,
    }  # fmt: skip


# ================================================================ periods and the clock


def test_grant_expires_at_the_end_of_its_period_and_then_nothing_more_happens(world: World) -> None:
    c = world.client
    t = now(world)
    request, msg = ask(world, UNCOND, start=t, end=t + 1_000)
    end = msg.message["end"]
    next_block_at(world, end - 1)  # the last second of the grant: start ≤ t < end
    expect_call_revert(c, "expireSharing", [[request]], "SharingPeriodNotOver", id=request, end=end, timestamp=end - 1)
    assert status(world, request) == GRANTED

    next_block_at(world, end)
    (changed,) = expire(world, [request])
    check_changed(world, changed, request, UNCOND, GRANTED, EXPIRED, "period ended")
    check_view(world, request, msg, EXPIRED)

    expect_call_revert(c, "expireSharing", [[request]], "SharingStatusInvalid", id=request, current=EXPIRED,
                       expected=GRANTED)  # fmt: skip
    expect_revert(
        c, "SharingRevocation", [signed(world, XC, revocation_message(world, request))],
        "SharingStatusInvalid", id=request, current=EXPIRED, expected=GRANTED,
    )  # fmt: skip
    expect_revert(
        c, "SharingDecision", [signed(world, XC, decision_message(world, request))],
        "SharingStatusInvalid", id=request, current=EXPIRED, expected=REQUESTED,
    )  # fmt: skip


@pytest.mark.parametrize("when", ["last second", "at the end", "a day after"])
def test_grant_can_be_revoked_until_its_period_ends(world: World, when: str) -> None:
    c = world.client
    request, msg = ask(world, UNCOND)
    end = msg.message["end"]
    struct = signed(world, XC, revocation_message(world, request))
    at = {"last second": end - 1, "at the end": end, "a day after": end + DAY}[when]
    next_block_at(world, at)
    if when == "last second":
        (changed,) = decoded_events(c, c.submit_and_wait("SharingRevocation", [struct]))
        assert_event(changed, "SharingStatusChanged", **{"from": GRANTED, "to": REVOKED})
        return
    expect_revert(c, "SharingRevocation", [struct], "SharingPeriodOver", id=request, end=end, timestamp=at)
    assert status(world, request) == GRANTED  # still Granted on chain until someone expires it
    (changed,) = expire(world, [request])
    assert_event(changed, "SharingStatusChanged", **{"from": GRANTED, "to": EXPIRED})


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "reject"])
@pytest.mark.parametrize("when", ["last second", "at the end"])
def test_request_cannot_be_decided_once_its_period_is_over(world: World, when: str, approve: bool) -> None:
    c = world.client
    request, msg = ask(world, COND)
    end = msg.message["end"]
    struct = signed(world, XC, decision_message(world, request, approve))
    at = end - 1 if when == "last second" else end
    next_block_at(world, at)
    if when == "last second":
        c.submit_and_wait("SharingDecision", [struct])
        assert status(world, request) == (GRANTED if approve else REJECTED)
        return
    expect_revert(c, "SharingDecision", [struct], "SharingPeriodOver", id=request, end=end, timestamp=at)
    assert status(world, request) == REQUESTED


@pytest.mark.parametrize(
    ("start", "end"),
    [(10, 10), (20, 10), (-2 * DAY, -DAY), (-DAY, 0), (0, 0)],
    ids=["empty", "reversed", "in the past", "ends now", "empty now"],
)
def test_period_empty_or_over_is_refused(world: World, start: int, end: int) -> None:
    """Offsets from the block that mines the request: start ≥ end, or end ≤ block.timestamp."""
    t = now(world) + 5
    msg = request_message(world, UNCOND, start=t + start, end=t + end)
    next_block_at(world, t)
    expect_revert(
        world.client, "SharingRequest", [signed(world, DX, msg)], "SharingPeriodInvalid",
        start=t + start, end=t + end, timestamp=t,
    )  # fmt: skip
    assert status(world, id_of(world, DX, msg)) == NONE


@pytest.mark.parametrize(("start", "end"), [(-DAY, 1), (0, 1), (DAY, 2 * DAY)], ids=["began", "one second", "later"])
def test_period_may_have_begun_or_lie_ahead(world: World, start: int, end: int) -> None:
    t = now(world) + 5
    next_block_at(world, t)
    request, msg = ask(world, UNCOND, start=t + start, end=t + end)
    check_view(world, request, msg, GRANTED)


# ================================================================ who may act


def _stranger(world: World, who: str) -> LocalAccount:
    """A key that is not one of 西城区民政局's (the owner's)."""
    if who == "unbound key":
        return Account.create()
    if who == "bureau administrator":
        return world.chain.administrator
    if who == "owner's revoked key":
        key = world.keys[XC]
        revoke_key = account_message("department", "DXC0001", key.address, False, next_nonce(), deadline(world))
        submit(world.client, world.chain.administrator, revoke_key)
        return key
    return world.keys[who]


STRANGERS = [DX, XH, YT, "unbound key", "bureau administrator", "owner's revoked key"]
STRANGER_IDS = ["requester", "西城区卫健委", "月坛街道办事处", *STRANGERS[3:]]


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "reject"])
@pytest.mark.parametrize("who", STRANGERS, ids=STRANGER_IDS)
def test_only_the_owning_department_may_decide(world: World, who: str, approve: bool) -> None:
    c = world.client
    request, _ = ask(world, COND)
    key = _stranger(world, who)
    struct = sign(c, key, decision_message(world, request, approve))
    expect_revert(c, "SharingDecision", [struct], "SharingNotOwner", id=request, owner=OWNER, signer=key.address)
    assert status(world, request) == REQUESTED


@pytest.mark.parametrize("who", STRANGERS, ids=STRANGER_IDS)
def test_only_the_owning_department_may_revoke(world: World, who: str) -> None:
    c = world.client
    request, _ = ask(world, UNCOND)
    key = _stranger(world, who)
    struct = sign(c, key, revocation_message(world, request))
    expect_revert(c, "SharingRevocation", [struct], "SharingNotOwner", id=request, owner=OWNER, signer=key.address)
    assert status(world, request) == GRANTED


def test_any_key_of_the_owning_department_may_decide(world: World) -> None:
    """The owner is the department, not the key that registered the catalog."""
    c = world.client
    second = Account.create()
    submit(c, world.chain.administrator, account_message("department", "DXC0001", second.address, True,
                                                         next_nonce(), deadline(world)))  # fmt: skip
    request, _ = ask(world, COND)
    (changed,) = decoded_events(c, submit(c, second, decision_message(world, request)))
    assert_event(changed, "SharingStatusChanged", signer=second.address, to=GRANTED)


@pytest.mark.parametrize(
    "case", ["unbound key", "西城区卫健委 signs for 大兴区民政局", "revoked key", "unknown department", "no department"]
)
def test_request_signed_by_a_key_not_bound_to_the_requester_is_refused(world: World, case: str) -> None:
    c = world.client
    msg = request_message(world, COND, DX)
    requester = code_id("DDX0001")
    if case == "unbound key":
        key = Account.create()
    elif case.startswith("西城区卫健委"):
        key = world.keys[XH]
    elif case == "revoked key":
        key = world.keys[DX]
        revoke_key = account_message("department", "DDX0001", key.address, False, next_nonce(), deadline(world))
        submit(c, world.chain.administrator, revoke_key)
    else:  # the requester field names a department the key is not bound to: unknown, or none with an unbound key
        key = world.keys[DX] if case == "unknown department" else Account.create()
        requester = code_id("DXX9999") if case == "unknown department" else ZERO32
        msg = Message(msg.primary, {**msg.message, "requester": requester})
    expect_revert(
        c, "SharingRequest", [sign(c, key, msg)], "DepartmentAccountNotBound", account=key.address, department=requester
    )
    assert status(world, sharing_request_id(key.address, msg.message["nonce"])) == NONE


@pytest.mark.parametrize("catalog", list(SHARE_TYPES), ids=list(SHARE_TYPES.values()))
def test_department_cannot_request_its_own_catalog(world: World, catalog: str) -> None:
    msg = request_message(world, catalog, XC)
    expect_revert(
        world.client, "SharingRequest", [signed(world, XC, msg)], "SharingSelfRequest",
        catalog=catalog, department=OWNER,
    )  # fmt: skip


# ================================================================ what is requested


@pytest.mark.parametrize(
    "items", [0, 1 << 3, 0b1111, 1 << 255, 2**256 - 1], ids=["none", "4th item", "all and one more", "bit 255", "all"]
)
def test_items_the_catalog_does_not_have_are_refused(world: World, items: int) -> None:
    msg = request_message(world, UNCOND, items=items)
    expect_revert(
        world.client, "SharingRequest", [signed(world, DX, msg)], "SharingItemsUnknown",
        catalog=UNCOND, items=items, itemCount=3,
    )  # fmt: skip


@pytest.mark.parametrize("items", [0b001, 0b010, 0b100, 0b111])
def test_any_non_empty_subset_of_the_items_may_be_requested(world: World, items: int) -> None:
    request, msg = ask(world, UNCOND, items=items)
    check_view(world, request, msg, GRANTED)


@pytest.mark.parametrize(("count", "items", "ok"), [(255, 1 << 254, True), (255, 1 << 255, False),
                                                    (256, 1 << 255, True), (256, 2**256 - 1, True)])  # fmt: skip
def test_item_mask_of_a_catalog_with_255_or_more_items(world: World, count: int, items: int, ok: bool) -> None:
    """The mask is 256 bits and a catalog has at most 256 items: with 256 every bit names an item."""
    many = [DataItem(name=f"信息项{i:03d}", data_type="string") for i in range(count)]
    code = "301001/XC0199"
    put(world, XC, catalog_message(world, code, share_type="unconditional", data_items=many))
    assert world.client.view("record", KIND_CATALOG, code)[0][4] == count
    msg = request_message(world, code, items=items)
    if ok:
        put(world, DX, msg)
        assert status(world, id_of(world, DX, msg)) == GRANTED
    else:
        expect_revert(world.client, "SharingRequest", [signed(world, DX, msg)], "SharingItemsUnknown",
                      catalog=code, items=items, itemCount=count)  # fmt: skip


def test_a_catalog_cannot_have_more_items_than_the_mask_can_name(world: World) -> None:
    """itemCount > 256 is refused at registration (RecordContentInvalid), so every item stays requestable."""
    code = "301001/XC0198"
    msg = catalog_message(world, code, share_type="unconditional")
    for count in (257, 300, 65535):
        struct = resign(world.client, world.keys[XC], msg, itemCount=count)
        expect_revert(world.client, "Catalog", [struct], "RecordContentInvalid", kind=KIND_CATALOG, code=code)


def test_request_must_name_the_current_version_and_its_items(world: World) -> None:
    c = world.client
    put(world, XC, catalog_message(world, COND, 2, data_items=ITEMS[:2]))  # version 2 drops 救助类别
    for got in (1, 3, 0):
        expect_revert(
            c, "SharingRequest", [signed(world, DX, request_message(world, COND, version=got))],
            "SharingVersionStale", catalog=COND, current=2, got=got,
        )  # fmt: skip
    expect_revert(
        c, "SharingRequest", [signed(world, DX, request_message(world, COND, version=2, items=0b100))],
        "SharingItemsUnknown", catalog=COND, items=0b100, itemCount=2,
    )  # fmt: skip
    request, msg = ask(world, COND, version=2, items=0b11)
    check_view(world, request, msg, REQUESTED)


@pytest.mark.parametrize(
    ("catalog", "new_type", "expected"),
    [(COND, "unconditional", GRANTED), (UNCOND, "not_shared", REFUSED), (NOSHARE, "conditional", REQUESTED)],
)
def test_share_type_of_the_current_version_decides(world: World, catalog: str, new_type: str, expected: int) -> None:
    put(world, XC, catalog_message(world, catalog, 2, share_type=new_type))
    request, _ = ask(world, catalog, version=2)
    assert status(world, request) == expected


@pytest.mark.parametrize("case", ["retired", "never registered", "a system's code"])
def test_catalog_not_active_cannot_be_requested(world: World, case: str) -> None:
    c, code, current = world.client, COND, NONE
    if case == "retired":
        dept = world.department(XC)
        put(world, XC, retire_message("catalog", COND, dept.jurisdiction, dept.code, 2, next_nonce(), deadline(world)))
        current = RETIRED
    elif case == "never registered":
        code = "301001/XC0999"
    else:  # catalogs and systems are separate registries
        code = "SXC0001"
        record = system_record(world.department(XC), code)
        put(world, XC, record_message(record, "register", 1, next_nonce(), deadline(world)))
    expect_revert(
        c, "SharingRequest", [signed(world, DX, request_message(world, code))], "RecordStatusInvalid",
        kind=KIND_CATALOG, code=code, current=current, expected=ACTIVE,
    )  # fmt: skip


@pytest.mark.parametrize("change", ["retired", "now not_shared", "updated"])
def test_request_cannot_be_approved_once_the_catalog_changed(world: World, change: str) -> None:
    """Approval needs the catalog still active at the requested version and still shareable; rejection stays allowed."""
    c = world.client
    request, _ = ask(world, COND)
    if change == "retired":
        dept = world.department(XC)
        put(world, XC, retire_message("catalog", COND, dept.jurisdiction, dept.code, 2, next_nonce(), deadline(world)))
        current, share_type = 2, 2
    elif change == "now not_shared":
        put(world, XC, catalog_message(world, COND, 2, share_type="not_shared"))
        current, share_type = 2, 3
    else:
        put(world, XC, catalog_message(world, COND, 2))
        current, share_type = 2, 2
    expect_revert(
        c, "SharingDecision", [signed(world, XC, decision_message(world, request))], "SharingCatalogChanged",
        id=request, requested=1, current=current, shareType=share_type,
    )  # fmt: skip
    assert status(world, request) == REQUESTED
    c.submit_and_wait("SharingDecision", [signed(world, XC, decision_message(world, request, approve=False))])
    assert status(world, request) == REJECTED


# ================================================================ deadline, nonce, signature


def _signed_of_each(world: World, primary: str, **changes: Any) -> tuple[tuple[Any, ...], LocalAccount]:
    """A valid submission of ``primary`` (a request to 西城区民政局, or its decision / revocation)."""
    if primary == "SharingRequest":
        msg, who = request_message(world, COND), DX
    elif primary == "SharingDecision":
        msg, who = decision_message(world, ask(world, COND)[0]), XC
    else:
        msg, who = revocation_message(world, ask(world, UNCOND)[0]), XC
    return resign(world.client, world.keys[who], msg, **changes), world.keys[who]


@pytest.mark.parametrize("primary", METHODS)
def test_expired_deadline_is_refused(world: World, primary: str) -> None:
    t = now(world) + 5
    struct, _ = _signed_of_each(world, primary, deadline=t - 1)
    next_block_at(world, t)
    expect_revert(world.client, primary, [struct], "SubmissionExpired", deadline=t - 1, timestamp=t)


@pytest.mark.parametrize("primary", METHODS)
def test_deadline_is_the_last_second_accepted(world: World, primary: str) -> None:
    t = now(world) + 5
    struct, _ = _signed_of_each(world, primary, deadline=t)
    next_block_at(world, t)
    world.client.submit_and_wait(primary, [struct])


@pytest.mark.parametrize("primary", METHODS)
def test_replayed_submission_is_refused(world: World, primary: str) -> None:
    c = world.client
    struct, key = _signed_of_each(world, primary)
    c.submit_and_wait(primary, [struct])
    expect_revert(c, primary, [struct], "SubmissionNonceUsed", signer=key.address, nonce=struct[-3])


def test_same_request_twice_in_one_batch_is_refused_and_the_first_copy_undone(world: World) -> None:
    c, key = world.client, world.keys[DX]
    msg = request_message(world, UNCOND)
    struct = signed(world, DX, msg)
    expect_revert(c, "SharingRequest", [struct, struct], "SubmissionNonceUsed", signer=key.address,
                  nonce=msg.message["nonce"])  # fmt: skip
    assert status(world, id_of(world, DX, msg)) == NONE
    assert not c.nonce_used(key.address, msg.message["nonce"])


def test_nonce_spent_on_a_revocation_cannot_sign_a_decision(world: World) -> None:
    """Nonces are per signer across the submission types that spend them; a catalog version spends none (its
    version sequence stops replays), so its nonce stays free."""
    c, owner = world.client, world.keys[XC].address
    request, _ = ask(world, COND)
    grant, _ = ask(world, UNCOND)  # granted at once
    spent = next_nonce()
    catalog = catalog_message(world, "301001/XC0198")
    put(world, XC, Message("Catalog", {**catalog.message, "nonce": spent}, catalog.record))
    assert not c.nonce_used(owner, spent)
    revocation = revocation_message(world, grant)
    put(world, XC, Message("SharingRevocation", {**revocation.message, "nonce": spent}))
    assert status(world, grant) == REVOKED and c.nonce_used(owner, spent)
    struct = resign(c, world.keys[XC], decision_message(world, request), nonce=spent)
    expect_revert(c, "SharingDecision", [struct], "SubmissionNonceUsed", signer=owner, nonce=spent)
    assert status(world, request) == REQUESTED


@pytest.mark.parametrize("primary", METHODS)
def test_high_s_twin_of_a_sharing_signature_is_refused(world: World, primary: str) -> None:
    c = world.client
    struct, _ = _signed_of_each(world, primary)
    twin = high_s_twin(struct[-1])
    expect_revert(c, primary, [with_signature(struct, twin)], "ECDSAInvalidSignatureS", s=twin[32:64])
    c.submit_and_wait(primary, [struct])  # the low-s original is still good: the nonce was not spent


# ================================================================ the relayer cannot alter a signed submission


REQUEST_FIELDS = ("catalog", "version", "requester", "items", "purpose", "basis", "start", "end", "nonce", "deadline")
REQUEST_ALTERATIONS: dict[str, Any] = {
    "catalog": lambda v: UNCOND,  # conditional → unconditional: would be granted at once
    "version": lambda v: v + 1,
    "requester": lambda v: code_id("DYT0001"),
    "items": lambda v: 0b111,
    "purpose": lambda v: v + "及其他用途",
    "basis": lambda v: "无",
    "start": lambda v: v - 365 * DAY,
    "end": lambda v: v + 365 * DAY,
    "deadline": lambda v: v + 1,
}


@pytest.mark.parametrize("field", list(REQUEST_ALTERATIONS))
def test_relayer_altering_a_signed_request_changes_the_signer_and_is_refused(world: World, field: str) -> None:
    c, key = world.client, world.keys[DX]
    msg = request_message(world, COND)
    struct = signed(world, DX, msg)
    index = REQUEST_FIELDS.index(field)
    altered = list(struct)
    altered[index] = REQUEST_ALTERATIONS[field](struct[index])
    assert altered[index] != struct[index]
    message = dict(zip(REQUEST_FIELDS, altered[:-1], strict=True))
    recovered = eip712.recover(c.typed_data("SharingRequest", message), struct[-1])
    assert recovered != key.address
    expect_revert(c, "SharingRequest", [tuple(altered)], "DepartmentAccountNotBound", account=recovered,
                  department=message["requester"])  # fmt: skip
    c.submit_and_wait("SharingRequest", [struct])  # the untouched request still goes through
    check_view(world, id_of(world, DX, msg), msg, REQUESTED)


@pytest.mark.parametrize(
    ("primary", "index", "change"),
    [
        ("SharingDecision", 1, lambda v: not v),  # approve ↔ reject
        ("SharingDecision", 2, lambda v: "同意"),  # reason
        ("SharingDecision", 4, lambda v: v + 1),  # deadline
        ("SharingRevocation", 1, lambda v: "到期"),  # reason
        ("SharingRevocation", 3, lambda v: v + 1),  # deadline
    ],
    ids=["approve", "decision reason", "decision deadline", "revocation reason", "revocation deadline"],
)
def test_relayer_altering_a_signed_decision_or_revocation_is_refused(
    world: World, primary: str, index: int, change: Any
) -> None:
    """The altered submission recovers a stranger, who is no key of the owner: SharingNotOwner."""
    c = world.client
    request = ask(world, COND if primary == "SharingDecision" else UNCOND)[0]
    if primary == "SharingDecision":
        msg = decision_message(world, request, False)
    else:
        msg = revocation_message(world, request)
    struct = signed(world, XC, msg)
    altered = list(struct)
    altered[index] = change(struct[index])
    names = list(msg.message)  # member order = struct order (signature last)
    recovered = eip712.recover(c.typed_data(primary, dict(zip(names, altered[:-1], strict=True))), struct[-1])
    assert recovered != world.keys[XC].address
    expect_revert(c, primary, [tuple(altered)], "SharingNotOwner", id=request, owner=OWNER, signer=recovered)
    c.submit_and_wait(primary, [struct])
    assert status(world, request) == (REJECTED if primary == "SharingDecision" else REVOKED)


def test_relayer_pointing_a_decision_at_another_request_is_refused(world: World) -> None:
    c = world.client
    first, second = ask(world, COND)[0], ask(world, COND, YT)[0]
    struct = signed(world, XC, decision_message(world, first))
    altered = (second, *struct[1:])
    expect_revert(c, "SharingDecision", [altered], "SharingNotOwner", id=second, owner=OWNER)
    assert (status(world, first), status(world, second)) == (REQUESTED, REQUESTED)


# ================================================================ batches


def test_batches_of_requests_decisions_revocations_and_expiries(world: World) -> None:
    c = world.client
    t = now(world)
    plan = [(DX, UNCOND), (DX, COND), (YT, COND), (XH, NOSHARE), (YT, UNCOND), (XH, COND)]
    msgs = [(who, request_message(world, catalog, who, end=t + 10 * DAY)) for who, catalog in plan]
    structs = [signed(world, who, m) for who, m in msgs]
    events = decoded_events(c, c.submit_and_wait("SharingRequest", structs))
    ids = [id_of(world, who, m) for who, m in msgs]
    expected = [
        ("SharingRequested", ids[0]), ("SharingStatusChanged", ids[0]),
        ("SharingRequested", ids[1]), ("SharingRequested", ids[2]),
        ("SharingRequested", ids[3]), ("SharingStatusChanged", ids[3]),
        ("SharingRequested", ids[4]), ("SharingStatusChanged", ids[4]),
        ("SharingRequested", ids[5]),
    ]  # fmt: skip
    assert [(e.event, e.args["id"]) for e in events] == expected
    requested = [e for e in events if e.event == "SharingRequested"]
    for event, (who, m), struct in zip(requested, msgs, structs, strict=True):
        check_requested(world, event, m, struct, world.keys[who])
    assert [status(world, i) for i in ids] == [GRANTED, REQUESTED, REQUESTED, REFUSED, GRANTED, REQUESTED]

    decisions = [decision_message(world, ids[1], True), decision_message(world, ids[2], False, "不符合共享条件"),
                 decision_message(world, ids[5], True)]  # fmt: skip
    structs = [signed(world, XC, m) for m in decisions]
    events = decoded_events(c, c.submit_and_wait("SharingDecision", structs))
    for event, m, struct, request, to in zip(events, decisions, structs, [ids[1], ids[2], ids[5]],
                                             [GRANTED, REJECTED, GRANTED], strict=True):  # fmt: skip
        check_changed(world, event, request, COND, REQUESTED, to, m.message["reason"], m, struct, world.keys[XC])

    revocations = [revocation_message(world, ids[0]), revocation_message(world, ids[5])]
    structs = [signed(world, XC, m) for m in revocations]
    events = decoded_events(c, c.submit_and_wait("SharingRevocation", structs))
    assert [(e.args["id"], e.args["from"], e.args["to"]) for e in events] == [(ids[0], GRANTED, REVOKED),
                                                                             (ids[5], GRANTED, REVOKED)]  # fmt: skip

    travel_to(world, t + 10 * DAY)
    events = expire(world, [ids[1], ids[4]])
    for event, request, catalog in zip(events, [ids[1], ids[4]], [COND, UNCOND], strict=True):
        check_changed(world, event, request, catalog, GRANTED, EXPIRED, "period ended")
    assert [status(world, i) for i in ids] == [REVOKED, EXPIRED, REJECTED, REFUSED, EXPIRED, REVOKED]


def test_batch_with_one_bad_submission_changes_nothing(world: World) -> None:
    c = world.client
    good = [request_message(world, UNCOND), request_message(world, COND)]
    bad = request_message(world, COND, items=0)
    expect_revert(c, "SharingRequest", [signed(world, DX, m) for m in (*good, bad)], "SharingItemsUnknown")
    assert [status(world, id_of(world, DX, m)) for m in good] == [NONE, NONE]

    first, second = ask(world, COND)[0], ask(world, COND, YT)[0]
    batch = [signed(world, XC, decision_message(world, first)), signed(world, XC, decision_message(world, first))]
    expect_revert(c, "SharingDecision", batch, "SharingStatusInvalid", id=first, current=GRANTED, expected=REQUESTED)
    assert status(world, first) == REQUESTED  # the first decision of the batch was undone

    decide(world, first)
    decide(world, second)
    revocations = [signed(world, XC, revocation_message(world, r)) for r in (first, second)]
    expect_revert(c, "SharingRevocation", [revocations[0], sign(c, world.keys[DX], revocation_message(world, second))],
                  "SharingNotOwner", id=second, owner=OWNER)  # fmt: skip
    assert (status(world, first), status(world, second)) == (GRANTED, GRANTED)

    t = now(world)
    late, _ = ask(world, UNCOND, end=t + 100)
    early, _ = ask(world, UNCOND, end=t + 10 * DAY)
    travel_to(world, t + 100)
    expect_call_revert(c, "expireSharing", [[late, early]], "SharingPeriodNotOver", id=early, end=t + 10 * DAY)
    assert status(world, late) == GRANTED
    expect_call_revert(c, "expireSharing", [[late, late]], "SharingStatusInvalid", id=late, current=EXPIRED,
                       expected=GRANTED)  # fmt: skip
    assert status(world, late) == GRANTED


# ================================================================ method-level guards


def _call_for(world: World, method: str) -> list[Any]:
    """Arguments of a valid call of ``method``."""
    if method == "expireSharing":
        request, msg = ask(world, UNCOND)
        travel_to(world, msg.message["end"])
        return [[request]]
    struct, _ = _signed_of_each(world, PRIMARY_OF[method])
    return [[struct]]


SHARING_METHODS = ("requestSharing", "decideSharing", "revokeSharing", "expireSharing")


@pytest.mark.parametrize("method", SHARING_METHODS)
def test_caller_without_relayer_role_is_refused(world: World, method: str) -> None:
    args = _call_for(world, method)
    outsider = funded_account(world.chain.rpc)
    sender = TxSender(world.chain.rpc, outsider, MemoryJournal(), CHAIN_ID, receipt_timeout_s=30, poll_s=0.002)
    client = DirectoryClient(world.chain.rpc, world.client.address, CHAIN_ID, sender)
    expect_call_revert(client, method, args, "AccessControlUnauthorizedAccount", account=outsider.address,
                       neededRole=RELAYER_ROLE)  # fmt: skip
    call_and_wait(world.client, method, args)  # the relayer may


@pytest.mark.parametrize("method", SHARING_METHODS)
def test_empty_batch_is_refused(world: World, method: str) -> None:
    expect_call_revert(world.client, method, [[]], "DirectoryBatchEmpty")
