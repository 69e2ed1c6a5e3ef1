"""Sharing in the derived index (registry.store's sharing handlers, registry.sharing, registry.kpis) on an
in-process SQLite database, fed synthetic DecodedLog objects shaped like the contract's events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from chain.abi import DecodedLog
from registry import queries, sharing
from registry.canonical import canonical_bytes, code_id
from registry.db import Base, SharingRequestRow, make_engine, session_factory
from registry.kpis import (
    CatalogFact,
    DepartmentFact,
    JurisdictionFact,
    KpiFacts,
    RequestFact,
    compute_kpis,
    facts_from_events,
    facts_from_index,
    kpis_from_index,
)
from registry.messages import sharing_request_id
from registry.store import apply_event, apply_events, item_names
from tests.unit.test_store import (
    CHAIN_ID,
    DX_CIVIL,
    KEY_DX,
    KEY_XC,
    XC_CIVIL,
    XICHENG,
    Chain,
    catalog,
    record_event,
    retire_event,
    sig,
    timestamp_of,
    world_events,
)

ZERO_ADDRESS = "0x" + "0" * 40
STATUS = {"none": 0, "requested": 1, "granted": 2, "rejected": 3, "refused": 4, "revoked": 5, "expired": 6}
POOR = catalog()  # 301001/XC0001 of 西城区民政局: conditional, items 户主姓名, 救助类别
OPEN = catalog(code="301001/XC0002", name="公开名录", share_type="unconditional", share_conditions=None,
               open_type="unconditional")


def requested(
    c: Chain, nonce: int, code: str = POOR.code, *, version: int = 1, items: int = 0b10, start: int = 0,
    end: int = 2**40, requester: str = DX_CIVIL, owner: str = XC_CIVIL, signer: str = KEY_DX,
) -> tuple[DecodedLog, str]:
    """A ``SharingRequested`` event and its request id (0x-hex)."""
    rid = sharing_request_id(signer, nonce)
    args = {
        "id": rid, "catalogHash": code_id(code), "requester": code_id(requester), "catalog": code,
        "version": version, "owner": code_id(owner), "items": items, "start": start, "end": end,
        "purpose": "救助审核", "basis": "社会救助暂行办法", "signer": signer, "nonce": nonce,
        "deadline": 2**255, "signature": sig(nonce),
    }
    return c.log("SharingRequested", args), "0x" + rid.hex()


def changed(
    c: Chain, rid: str, frm: str, to: str, reason: str = "", *, signer: str = ZERO_ADDRESS, nonce: int = 0,
    code: str = POOR.code,
) -> DecodedLog:
    """A ``SharingStatusChanged`` event (automatic when ``signer`` is the zero address)."""
    args = {
        "id": bytes.fromhex(rid[2:]), "catalogHash": code_id(code), "from": STATUS.get(frm, 9),
        "to": STATUS.get(to, 9), "reason": reason, "signer": signer, "nonce": nonce,
        "deadline": 0 if signer == ZERO_ADDRESS else 2**40, "signature": b"" if signer == ZERO_ADDRESS else sig(nonce),
    }
    return c.log("SharingStatusChanged", args)


def directory(c: Chain) -> list[DecodedLog]:
    """World set-up and two catalogs of 西城区民政局 (conditional POOR, unconditional and open OPEN)."""
    evs = world_events(c)
    c.next_block()
    evs += [record_event(c, "Catalog", r.code, 1, canonical_bytes(r)) for r in (POOR, OPEN)]
    return evs


@pytest.fixture
def session() -> Iterator[Session]:
    eng = make_engine("sqlite://")
    Base.metadata.create_all(eng)
    with session_factory(eng)() as s:
        yield s
    eng.dispose()


def apply_all(session: Session, events: list[DecodedLog]) -> None:
    for ev in events:
        apply_event(session, ev, timestamp_of(ev.block_number), chain_id=CHAIN_ID)


# ---------------------------------------------------------------------------------------------- store


def test_request_decision_and_revocation_fill_the_rows(session: Session) -> None:
    c = Chain()
    apply_all(session, directory(c))
    c.next_block()
    ev, rid = requested(c, 7, items=0b11, start=100, end=10**12)
    apply_all(session, [ev])
    c.next_block()
    apply_all(session, [changed(c, rid, "requested", "granted", "同意", signer=KEY_XC, nonce=8)])
    c.next_block()
    apply_all(session, [changed(c, rid, "granted", "revoked", "不再需要", signer=KEY_XC, nonce=9)])

    found = sharing.get_request(session, rid.upper().replace("0X", "0x"))
    assert found is not None
    r = found.request
    assert r.id == rid and r.catalog_code == POOR.code and r.catalog_version == 1
    assert (r.requester_code, r.owner_code) == (DX_CIVIL, XC_CIVIL)
    assert r.items_mask == "3" and json.loads(r.items or "") == ["户主姓名", "救助类别"]
    assert (r.start, r.end, r.purpose, r.basis) == (100, 10**12, "救助审核", "社会救助暂行办法")
    assert r.status == "revoked" and r.reason == "不再需要"
    assert r.requested_at == timestamp_of(4) and r.granted_at == r.decided_at == timestamp_of(5)
    assert r.ended_at == timestamp_of(6)
    assert r.signer == KEY_DX and r.nonce == "7" and r.deadline == str(2**255)
    assert [(t.from_status, t.to_status, t.signer, t.block_timestamp) for t in found.transitions] == [
        ("requested", "granted", KEY_XC, timestamp_of(5)),
        ("granted", "revoked", KEY_XC, timestamp_of(6)),
    ]


def test_automatic_grant_and_refusal_happen_at_request_time(session: Session) -> None:
    c = Chain()
    apply_all(session, directory(c))
    c.next_block()
    ev1, granted = requested(c, 1, OPEN.code, items=0b01)
    ev2, refused = requested(c, 2)
    apply_all(session, [ev1, changed(c, granted, "requested", "granted", "unconditional", code=OPEN.code),
                        ev2, changed(c, refused, "requested", "refused", "not_shared")])
    g, r = session.get(SharingRequestRow, granted), session.get(SharingRequestRow, refused)
    assert g is not None and r is not None
    assert g.status == "granted" and g.granted_at == g.decided_at == g.requested_at and g.reason == "unconditional"
    assert r.status == "refused" and r.granted_at is None and r.decided_at == r.requested_at
    detail = sharing.get_request(session, granted)
    assert detail is not None and detail.transitions[0].signer == ZERO_ADDRESS
    assert detail.transitions[0].nonce == "0" and detail.transitions[0].signature == "0x"


def test_odd_chain_content_is_stored_never_raised(session: Session) -> None:
    c = Chain()
    apply_all(session, directory(c))
    c.next_block()
    orphan = "0x" + keccak(text="never requested").hex()
    ev_big, big = requested(c, 3, items=0b100, end=2**64 - 1)  # names a third item the record lacks
    ev_unknown, unknown = requested(c, 4, "301001/NOWHERE", version=5, requester="DNOBODY", owner="DNOONE")
    apply_all(session, [
        changed(c, orphan, "requested", "granted"),  # a transition of a request the index never saw
        ev_big, ev_unknown,
        changed(c, big, "requested", "weird"),  # a status value the contract does not define
    ])
    assert session.get(SharingRequestRow, orphan) is None
    assert [t.to_status for t in sharing.get_request(session, big).transitions] == ["unknown(9)"]  # type: ignore[union-attr]
    b, u = session.get(SharingRequestRow, big), session.get(SharingRequestRow, unknown)
    assert b is not None and u is not None
    assert b.items is None and b.end == 2**63 - 1 and b.status == "unknown(9)"
    assert u.items is None and u.requester_code is None and u.owner_code is None
    dump = queries.dump_index(session)
    assert len(dump["sharing_transitions"]) == 2 and len(dump["sharing_requests"]) == 2


def test_items_of_an_invalid_catalog_version_are_not_resolved(session: Session) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    c.next_block()
    bad = canonical_bytes(POOR).replace(b'","', b'", "', 1)  # not canonical: the index marks it invalid
    apply_all(session, [record_event(c, "Catalog", POOR.code, 1, bad)])
    c.next_block()
    ev, rid = requested(c, 5)
    apply_all(session, [ev])
    row = session.get(SharingRequestRow, rid)
    assert row is not None and row.items is None and row.items_mask == "2"


def test_item_names() -> None:
    record = canonical_bytes(POOR).decode()
    assert item_names(record, 0b01) == ["户主姓名"] and item_names(record, 0b11) == ["户主姓名", "救助类别"]
    assert item_names(record, 0b100) is None and item_names(record, 0) is None
    assert item_names(None, 1) is None and item_names("{not json", 1) is None and item_names('{"x": 1}', 1) is None


# ---------------------------------------------------------------------------------------------- reads


def _scenario() -> list[DecodedLog]:
    """Set-up, two catalogs, requests through every path, a catalog update and a retirement."""
    c = Chain()
    evs = directory(c)
    c.next_block()
    r1, a = requested(c, 11, items=0b11, start=0, end=timestamp_of(7))  # approved, then expires at block 7
    r2, b = requested(c, 12, OPEN.code, items=0b01)  # unconditional, then revoked
    r3, d = requested(c, 13)  # rejected
    r4, _ = requested(c, 14, requester=XC_CIVIL, owner=DX_CIVIL, signer=KEY_XC)  # stays requested
    evs += [r1, r2, changed(c, b, "requested", "granted", "unconditional", code=OPEN.code), r3, r4]
    c.next_block()
    evs += [changed(c, a, "requested", "granted", "ok", signer=KEY_XC, nonce=21),
            changed(c, d, "requested", "rejected", "no", signer=KEY_XC, nonce=22)]
    c.next_block()
    evs += [changed(c, b, "granted", "revoked", "done", signer=KEY_XC, nonce=23, code=OPEN.code),
            record_event(c, "Catalog", POOR.code, 2, canonical_bytes(catalog(name="第二版")))]
    c.next_block()
    evs += [changed(c, a, "granted", "expired", "period ended"), retire_event(c, "Catalog", OPEN.code, 2)]
    return evs


SCENARIO = _scenario()


def test_listing_filters(session: Session) -> None:
    apply_all(session, SCENARIO)
    rows, total = sharing.list_requests(session)
    assert total == 4 and [r.status for r in rows] == ["expired", "revoked", "rejected", "requested"]
    assert sharing.list_requests(session, requester=XC_CIVIL)[1] == 1
    assert sharing.list_requests(session, owner=XC_CIVIL)[1] == 3
    assert sharing.list_requests(session, catalog=OPEN.code)[1] == 1
    assert sharing.list_requests(session, status="rejected")[1] == 1
    grants, n = sharing.list_requests(session, grants_only=True)
    assert n == 2 and {g.status for g in grants} == {"expired", "revoked"}
    page, n = sharing.list_requests(session, limit=1, offset=1)
    assert n == 4 and [r.status for r in page] == ["revoked"]
    with pytest.raises(ValueError):
        sharing.list_requests(session, limit=-1)


def test_access_at_applies_the_rule(session: Session) -> None:
    apply_all(session, SCENARIO)
    # blocks: 4 requests (OPEN granted at once), 5 approval and rejection, 6 revocation, 7 expiry
    t4, t5, t6 = timestamp_of(4), timestamp_of(5), timestamp_of(6)
    assert sharing.access_at(session, POOR.code, t5 - 1) == []  # requested, not yet approved
    (holder,) = sharing.access_at(session, POOR.code, t5)
    assert holder.department_code == DX_CIVIL and holder.department_name == "大兴区民政局"
    assert holder.jurisdiction_code == "110115" and holder.items == ["户主姓名", "救助类别"]
    assert sharing.access_at(session, POOR.code, timestamp_of(7) - 1)[0].items == ["户主姓名", "救助类别"]
    assert sharing.access_at(session, POOR.code, timestamp_of(7)) == []  # end of the period, marked expired
    assert sharing.access_at(session, OPEN.code, t4 - 1) == []
    assert [h.items for h in sharing.access_at(session, OPEN.code, t4)] == [["户主姓名"]]
    assert [h.items for h in sharing.access_at(session, OPEN.code, t6 - 1)] == [["户主姓名"]]
    assert sharing.access_at(session, OPEN.code, t6) == []  # revoked at t6
    assert sharing.access_at(session, "301001/NOWHERE", t5) == []


@pytest.mark.parametrize(
    "granted_at, start, end, ended_at, at, active",
    [
        (None, 0, 10, None, 5, False),
        (6, 0, 10, None, 5, False),
        (5, 0, 10, None, 5, True),
        (1, 5, 10, None, 4, False),
        (1, 5, 10, None, 9, True),
        (1, 5, 10, None, 10, False),
        (1, 0, 10, 7, 6, True),
        (1, 0, 10, 7, 7, False),
    ],
)
def test_grant_active(
    granted_at: int | None, start: int, end: int, ended_at: int | None, at: int, active: bool
) -> None:
    assert sharing.grant_active(granted_at, start, end, ended_at, at) is active


@st.composite
def replays(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """(prefix of the scenario, an application order of it with duplicates and batch cuts)."""
    n = draw(st.integers(1, len(SCENARIO)))
    order: list[int] = []
    for i in range(n):
        order.append(i)
        order += draw(st.lists(st.integers(0, i), max_size=2))
    return list(range(n)), order


def _dump(order: list[int], cuts: set[int]) -> dict[str, list[tuple[Any, ...]]]:
    eng = make_engine("sqlite://")
    Base.metadata.create_all(eng)
    with session_factory(eng)() as session:
        batch: list[tuple[DecodedLog, int]] = []
        for n, i in enumerate(order):
            batch.append((SCENARIO[i], timestamp_of(SCENARIO[i].block_number)))
            if n in cuts or n == len(order) - 1:
                apply_events(session, batch, chain_id=CHAIN_ID)
                batch = []
                session.commit()
        dump = queries.dump_index(session)
    eng.dispose()
    return dump


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replays(), st.sets(st.integers(0, 60), max_size=6))
def test_reapplying_sharing_events_changes_nothing(case: tuple[list[int], list[int]], cuts: set[int]) -> None:
    prefix, order = case
    assert _dump(order, cuts) == _dump(prefix, set())


# ---------------------------------------------------------------------------------------------- KPIs


def test_facts_from_the_chain_alone_equal_the_index(session: Session) -> None:
    apply_all(session, SCENARIO)
    facts = facts_from_events(SCENARIO)
    assert facts == facts_from_index(session)
    assert compute_kpis(facts) == kpis_from_index(session)
    poor = next(c for c in facts.catalogs if c.code == POOR.code)
    assert poor.active and poor.share_type == "conditional"
    assert not next(c for c in facts.catalogs if c.code == OPEN.code).active
    assert {r.status: r.ever_granted for r in facts.requests} == {
        "expired": True, "revoked": True, "rejected": False, "requested": False
    }


def test_facts_keep_the_last_valid_record() -> None:
    c = Chain()
    evs = directory(c)
    c.next_block()
    evs.append(record_event(c, "Catalog", OPEN.code, 2, b"{}"))  # invalid update: keeps version 1's types
    eng = make_engine("sqlite://")
    Base.metadata.create_all(eng)
    with session_factory(eng)() as session:
        apply_all(session, evs)
        assert facts_from_events(evs) == facts_from_index(session)
    open_ = next(c for c in facts_from_events(evs).catalogs if c.code == OPEN.code)
    assert (open_.share_type, open_.open_type) == ("unconditional", "unconditional")


J_CITY, J_A, J_B = (JurisdictionFact(f"0x{i}", code, name, tier) for i, code, name, tier in
                    ((1, "110000", "市", "city"), (2, "A", "甲区", "district"), (3, "B", "乙区", "district")))


def test_compute_kpis_by_hand() -> None:
    facts = KpiFacts.of(
        [J_B, J_A, J_CITY],
        [DepartmentFact("d1", "D1", J_A.id), DepartmentFact("d2", "D2", J_A.id), DepartmentFact("d3", "D3", J_B.id)],
        [
            CatalogFact("c1", "d1", J_A.id, True, "unconditional", "none"),
            CatalogFact("c2", "d1", J_A.id, True, "conditional", "conditional"),  # d1 opens data
            CatalogFact("c3", "d2", J_A.id, False, "unconditional", "unconditional"),  # retired: counts nowhere
            CatalogFact("c4", "d3", J_B.id, True, None, None),  # no valid record: left out
            CatalogFact("c5", "d3", J_B.id, True, "not_shared", "none"),
            CatalogFact("c6", "dX", J_B.id, True, "unconditional", "unconditional"),  # unregistered owner
        ],
        [
            RequestFact("r1", "d1", "granted", True),
            RequestFact("r2", "d1", "revoked", True),
            RequestFact("r3", "d1", "expired", True),
            RequestFact("r4", "d1", "rejected", False),
            RequestFact("r5", "d3", "refused", False),
            RequestFact("r6", "d3", "requested", False),  # undecided: counts nowhere
        ],
    )
    report = compute_kpis(facts)
    overall = report.overall
    assert (overall.unconditional_share_rate.numerator, overall.unconditional_share_rate.denominator) == (2, 4)
    assert (overall.share_demand_satisfaction_rate.numerator, overall.share_demand_satisfaction_rate.denominator) == (
        3, 5)
    assert (overall.open_department_ratio.numerator, overall.open_department_ratio.denominator) == (1, 3)
    assert overall.unconditional_share_rate.value == 0.5 and overall.unconditional_share_rate.met is False
    assert [j.code for j in report.jurisdictions] == ["110000", "A", "B"]
    city, a, b = (j.figures for j in report.jurisdictions)
    assert city.unconditional_share_rate.value is None and city.unconditional_share_rate.met is None
    assert city.open_department_ratio.denominator == 0
    assert (a.unconditional_share_rate.numerator, a.unconditional_share_rate.denominator) == (1, 2)
    assert (a.share_demand_satisfaction_rate.numerator, a.share_demand_satisfaction_rate.denominator) == (3, 4)
    assert (a.open_department_ratio.numerator, a.open_department_ratio.denominator) == (1, 2)
    assert (b.unconditional_share_rate.numerator, b.unconditional_share_rate.denominator) == (1, 2)
    assert (b.share_demand_satisfaction_rate.numerator, b.share_demand_satisfaction_rate.denominator) == (0, 1)
    assert b.open_department_ratio.value == 0.0 and b.open_department_ratio.met is False
    doc = report.as_dict()
    assert doc["overall"]["share_demand_satisfaction_rate"] == {
        "value": 0.6, "numerator": 3, "denominator": 5, "target": 0.9, "met": False
    }
    assert doc["jurisdictions"][1]["code"] == "A" and "open_department_ratio" in doc["jurisdictions"][1]


def test_a_ratio_meets_its_target_at_equality() -> None:
    facts = KpiFacts.of([], [DepartmentFact(f"d{i}", f"D{i}", "j") for i in range(20)],
                        [CatalogFact(f"c{i}", f"d{i}", "j", True, "unconditional", "conditional") for i in range(19)],
                        [])
    ratio = compute_kpis(facts).overall.open_department_ratio
    assert (ratio.numerator, ratio.denominator, ratio.value, ratio.met) == (19, 20, 0.95, True)


def test_requests_count_in_the_owners_jurisdiction() -> None:
    """Requests are attributed to the owner's jurisdiction, not the requester's."""
    c = Chain()
    evs = directory(c)
    c.next_block()
    ev, _ = requested(c, 31)
    evs.append(ev)
    report = compute_kpis(facts_from_events(evs))
    by_code = {j.code: j.figures for j in report.jurisdictions}
    assert by_code[XICHENG].share_demand_satisfaction_rate.denominator == 0  # still undecided
    assert by_code[XICHENG].unconditional_share_rate.denominator == 2
