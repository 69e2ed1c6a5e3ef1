"""Data sharing through the real service (own anvil + SQLite + indexer + expiry job, in-process API):
every route, every transition allowed and forbidden — a forbidden one is a 4xx problem and writes
nothing — and ``/catalogs/{code}/access?at=T`` just before and after each transition.

The service runs on its own embedded anvil so that the chain's clock can be moved forward
(``evm_mine`` with a timestamp) without touching the session's node."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from dirchain.cli import SEED_FILE
from dirchain.service import Service
from registry.keystore import Keystore
from registry.loader import DirectoryLoader
from registry.models import CatalogRecord
from registry.seed import Directory, read_directory
from tests.integration.service import make_settings, running_service, wait_indexed
from tests.integration.sharing import Sharing, block_timestamp, fresh_nonce, mine_at, variant

pytestmark = pytest.mark.integration

#: A period long enough never to end during the module (seconds).
LONG = 10**8


@dataclass
class World:
    """The running service with the seed directory loaded, and names → codes of the seed."""

    service: Service
    client: TestClient
    sharing: Sharing
    seed: Directory

    def dept(self, name: str) -> str:
        return next(d.code for d in self.seed.departments if d.name == name)

    def catalog(self, name: str) -> CatalogRecord:
        return next(c for c in self.seed.catalogs if c.name == name)

    def now(self) -> int:
        """Timestamp of the chain's latest block (unix seconds)."""
        return block_timestamp(self.service.rpc)

    def head(self) -> int:
        return int(self.service.rpc.call("eth_blockNumber", []), 16)

    def detail(self, request_id: str) -> dict[str, Any]:
        reply = self.client.get(f"/sharing-requests/{request_id}")
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("sharing-api")
    seed = read_directory(SEED_FILE)
    with running_service(make_settings(home, None)) as (service, client):
        keys = Keystore(home / "keys")
        assert DirectoryLoader("http://testserver", keys, http=client).load(seed).ok
        yield World(service, client, Sharing(client, keys), seed)


# seed departments and catalogs used below
# 西城区科技和信息化局 owns 人口基础信息库 (conditional), 法人基础信息库 and 标准地名地址库 (unconditional)
XC_CIVIL = "西城区民政局"  # owns 困难家庭数据库 (conditional)
DX_CIVIL = "大兴区民政局"
YUETAN = "月坛街道办事处"
# 西城区应急管理局 owns 安全生产隐患排查数据 (not_shared)
POPULATION, LEGAL_PERSONS, HAZARDS, ADDRESSES, POOR_FAMILIES = (
    "人口基础信息库", "法人基础信息库", "安全生产隐患排查数据", "标准地名地址库", "困难家庭数据库",
)


def refused(w: World, reply: Response, status: int, error: str | None = None) -> dict[str, Any]:
    """Assert a ``status`` problem+json (with contract error ``error`` when given); returns the problem."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = reply.json()
    assert problem["status"] == status and problem["type"].startswith("/problems/")
    if error is not None:
        assert problem["error"]["name"] == error, problem
    return problem


class Unchanged:
    """Context: nothing reaches the chain or the index inside the block (head, request count, and the
    watched requests' details stay the same)."""

    def __init__(self, w: World, *request_ids: str) -> None:
        self.w = w
        self.ids = request_ids

    def _state(self) -> tuple[Any, ...]:
        total = self.w.client.get("/sharing-requests", params={"limit": 1}).json()["total"]
        return self.w.head(), total, [self.w.detail(rid) for rid in self.ids]

    def __enter__(self) -> None:
        self.before = self._state()

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)  # give a wrongly queued transaction the time to be mined
        assert self._state() == self.before, "a refused submission changed the chain or the index"


# ---------------------------------------------------------------------------------------------- transitions


def test_unconditional_request_is_granted_at_once(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(DX_CIVIL), w.catalog(LEGAL_PERSONS)
    start = w.now()
    accepted = s.accepted(s.request(requester, catalog.code, ["机构名称", "统一社会信用代码"], start, start + LONG))
    rid = accepted["request_id"]
    assert accepted["primary_type"] == "SharingRequest" and accepted["items_mask"] == "3"
    assert accepted["request_url"] == f"/sharing-requests/{rid}"
    detail = w.detail(rid)
    t = detail["granted_at"]
    assert detail["status"] == "granted" and t == detail["decided_at"] == detail["requested_at"]
    assert detail["requester"] == requester and detail["owner"] == catalog.provider_code
    assert detail["items"] == ["统一社会信用代码", "机构名称"]  # catalog order, whatever order was asked
    assert detail["ended_at"] is None and detail["reason"] == "unconditional"
    assert detail["signer"] == w.sharing.keys.address(requester)
    (transition,) = detail["transitions"]
    assert transition["from_status"] == "requested" and transition["to_status"] == "granted"
    assert transition["automatic"] and transition["block_timestamp"] == t
    assert transition["tx_hash"] == detail["tx_hash"] == accepted["tx_hash"]

    assert requester not in s.access(catalog.code, t - 1)
    assert s.access(catalog.code, t)[requester] == {"统一社会信用代码", "机构名称"}
    assert w.client.get(f"/grants/{rid}").json()["id"] == rid
    grants = w.client.get("/grants", params={"requester": requester, "catalog": catalog.code}).json()
    assert [g["id"] for g in grants["items"]] == [rid]


def test_conditional_request_approved_then_revoked(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(XC_CIVIL), w.catalog(POPULATION)
    owner, other = catalog.provider_code, w.dept(DX_CIVIL)
    start = w.now()
    rid = s.accepted(s.request(requester, catalog.code, ["公民身份号码", "姓名"], start, start + LONG))["request_id"]
    detail = w.detail(rid)
    assert detail["status"] == "requested" and detail["granted_at"] is None and detail["decided_at"] is None
    refused(w, w.client.get(f"/grants/{rid}"), 404)
    assert requester not in s.access(catalog.code, w.now())

    with Unchanged(w, rid):  # approval by a department other than the owner; revocation of a request
        refused(w, s.decide(rid, True, other), 403, "SharingNotOwner")
        refused(w, s.decide(rid, True, requester), 403, "SharingNotOwner")
        refused(w, s.revoke(rid, owner), 409, "SharingStatusInvalid")

    granted = s.accepted(s.decide(rid, True, owner, reason="同意"))
    assert granted["primary_type"] == "SharingDecision" and granted["request_id"] == rid
    detail = w.detail(rid)
    t_grant = detail["granted_at"]
    assert detail["status"] == "granted" and detail["decided_at"] == t_grant > detail["requested_at"] - 1
    assert detail["reason"] == "同意"
    assert requester not in s.access(catalog.code, t_grant - 1)
    assert s.access(catalog.code, t_grant)[requester] == {"公民身份号码", "姓名"}

    with Unchanged(w, rid):  # deciding twice, either way; revocation by the requester or a third party
        refused(w, s.decide(rid, True, owner), 409, "SharingStatusInvalid")
        refused(w, s.decide(rid, False, owner), 409, "SharingStatusInvalid")
        refused(w, s.revoke(rid, requester), 403, "SharingNotOwner")
        refused(w, s.revoke(rid, other), 403, "SharingNotOwner")

    mine_at(w.service.rpc, w.now() + 10)  # a visible gap between grant and revocation
    revoked = s.accepted(s.revoke(rid, owner, reason="不再需要"))
    assert revoked["primary_type"] == "SharingRevocation"
    detail = w.detail(rid)
    t_revoke = detail["ended_at"]
    assert detail["status"] == "revoked" and detail["reason"] == "不再需要" and t_revoke > t_grant
    assert s.access(catalog.code, t_revoke - 1)[requester] == {"公民身份号码", "姓名"}
    assert requester not in s.access(catalog.code, t_revoke)
    assert requester not in s.access(catalog.code, t_revoke + 10**6)
    steps = [(x["from_status"], x["to_status"], x["automatic"], x["signer"]) for x in detail["transitions"]]
    owner_key = s.keys.address(owner)
    assert steps == [("requested", "granted", False, owner_key), ("granted", "revoked", False, owner_key)]

    with Unchanged(w, rid):  # nothing further on a revoked grant
        refused(w, s.revoke(rid, owner), 409, "SharingStatusInvalid")
        refused(w, s.decide(rid, True, owner), 409, "SharingStatusInvalid")


def test_conditional_request_rejected(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(YUETAN), w.catalog(POOR_FAMILIES)
    owner = catalog.provider_code
    start = w.now()
    rid = s.accepted(s.request(requester, catalog.code, ["家庭编号"], start, start + LONG))["request_id"]
    s.accepted(s.decide(rid, False, owner, reason="超出最小必要范围"))
    detail = w.detail(rid)
    assert detail["status"] == "rejected" and detail["granted_at"] is None
    assert detail["decided_at"] == detail["transitions"][-1]["block_timestamp"]
    assert detail["reason"] == "超出最小必要范围"
    for at in (detail["decided_at"] - 1, detail["decided_at"], detail["decided_at"] + 1000):
        assert requester not in s.access(catalog.code, at)
    refused(w, w.client.get(f"/grants/{rid}"), 404)
    with Unchanged(w, rid):
        refused(w, s.decide(rid, True, owner), 409, "SharingStatusInvalid")
        refused(w, s.revoke(rid, owner), 409, "SharingStatusInvalid")


def test_not_shared_catalog_is_refused_on_chain(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(XC_CIVIL), w.catalog(HAZARDS)
    start = w.now()
    rid = s.accepted(s.request(requester, catalog.code, ["隐患编号"], start, start + LONG))["request_id"]
    detail = w.detail(rid)
    assert detail["status"] == "refused" and detail["reason"] == "not_shared" and detail["granted_at"] is None
    assert detail["decided_at"] == detail["requested_at"]
    (transition,) = detail["transitions"]
    assert transition["automatic"] and transition["to_status"] == "refused"
    assert requester not in s.access(catalog.code, detail["decided_at"])
    with Unchanged(w, rid):
        refused(w, s.decide(rid, True, catalog.provider_code), 409, "SharingStatusInvalid")
        refused(w, s.revoke(rid, catalog.provider_code), 409, "SharingStatusInvalid")


def test_grant_expires_and_nothing_more_can_happen(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(YUETAN), w.catalog(ADDRESSES)
    owner = catalog.provider_code
    start = w.now()
    end = start + 100
    rid = s.accepted(s.request(requester, catalog.code, ["标准地址"], start, end))["request_id"]
    pending = s.accepted(s.request(requester, w.catalog(POPULATION).code, ["姓名"], start, end))["request_id"]
    granted_at = w.detail(rid)["granted_at"]
    assert s.access(catalog.code, end - 1)[requester] == {"标准地址"}
    assert requester not in s.access(catalog.code, end)  # the period decides, whether marked expired or not

    mine_at(w.service.rpc, end)  # the chain reaches the end of the period
    refused(w, s.decide(pending, True, w.catalog(POPULATION).provider_code), 409, "SharingPeriodOver")
    deadline = time.monotonic() + 30
    while w.detail(rid)["status"] != "expired":  # the service's expiry job marks it
        assert time.monotonic() < deadline, "the expiry job did not expire the grant"
        time.sleep(0.2)
    detail = w.detail(rid)
    assert detail["ended_at"] >= end and detail["reason"] == "period ended"
    assert detail["transitions"][-1]["automatic"] and detail["transitions"][-1]["from_status"] == "granted"
    assert s.access(catalog.code, granted_at)[requester] == {"标准地址"}
    assert requester not in s.access(catalog.code, detail["ended_at"])
    assert w.detail(pending)["status"] == "requested"  # never decided, never expires (it was no grant)
    assert [g["id"] for g in w.client.get("/grants", params={"status": "expired"}).json()["items"]] == [rid]

    with Unchanged(w, rid, pending):  # any action on an expired grant (or an undecided request past its period)
        refused(w, s.revoke(rid, owner), 409, "SharingStatusInvalid")
        refused(w, s.revoke(rid, requester), 409, "SharingStatusInvalid")
        refused(w, s.decide(rid, True, owner), 409, "SharingStatusInvalid")
        refused(w, s.decide(pending, False, w.catalog(POPULATION).provider_code), 409, "SharingPeriodOver")


def test_period_that_lies_ahead(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(YUETAN), w.catalog(LEGAL_PERSONS)
    now = w.now()
    start, end = now + 1000, now + LONG
    rid = s.accepted(s.request(requester, catalog.code, ["住所"], start, end))["request_id"]
    granted_at = w.detail(rid)["granted_at"]
    assert granted_at < start
    assert "住所" not in s.access(catalog.code, granted_at).get(requester, set())
    assert "住所" not in s.access(catalog.code, start - 1).get(requester, set())
    assert "住所" in s.access(catalog.code, start)[requester]
    assert "住所" in s.access(catalog.code, end - 1)[requester]
    assert "住所" not in s.access(catalog.code, end).get(requester, set())


def test_access_unions_the_items_of_a_departments_grants(world: World) -> None:
    w, s = world, world.sharing
    requester = w.dept(DX_CIVIL)
    base = w.catalog(POOR_FAMILIES)
    record = variant(base, base.classification + "/UNION1", "unconditional", ["甲", "乙", "丙"])
    s.register_catalog(record)
    start = w.now()
    s.accepted(s.request(requester, record.code, ["甲"], start, start + LONG))
    t = w.detail(s.accepted(s.request(requester, record.code, ["丙"], start, start + LONG))["request_id"])["granted_at"]
    reply = w.client.get(f"/catalogs/{record.code}/access", params={"at": t}).json()
    (holder,) = reply["holders"]
    assert holder["department"] == requester and holder["name"] == DX_CIVIL and holder["jurisdiction"] == "110115"
    assert holder["items"] == ["甲", "丙"] and len(holder["grants"]) == 2


# ---------------------------------------------------------------------------------------------- refusals


def test_refused_requests_write_nothing(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(XC_CIVIL), w.catalog(LEGAL_PERSONS)
    now = w.now()
    with Unchanged(w):
        problem = refused(w, s.request(requester, catalog.code, ["机构名称", "颜色"], now, now + LONG, mask=3), 422)
        assert problem["type"] == "/problems/unknown-items" and "颜色" in problem["detail"]
        own = w.catalog(POOR_FAMILIES)
        refused(w, s.request(own.provider_code, own.code, ["家庭编号"], now, now + LONG), 422, "SharingSelfRequest")
        refused(w, s.request(requester, catalog.code, ["住所"], now + 10, now + 10), 422, "SharingPeriodInvalid")
        refused(w, s.request(requester, catalog.code, ["住所"], now - 100, now - 1), 422, "SharingPeriodInvalid")
        refused(w, s.request(requester, catalog.code, ["住所"], now, now + LONG, signer=w.dept(DX_CIVIL)), 403,
                "DepartmentAccountNotBound")
        refused(w, s.request(requester, catalog.code, ["住所"], now, now + LONG, deadline=int(time.time()) - 600),
                422, "SubmissionExpired")
        problem = refused(w, s.request(requester, catalog.code, ["住所"], now, now + LONG, version=2), 409)
        assert problem["type"] == "/problems/version-conflict"
        body = s.request_body(requester, catalog.code, ["住所"], now, now + LONG)
        refused(w, w.client.post("/sharing-requests", json={**body, "catalog": "301001/NOPE"}), 422)
        refused(w, w.client.post("/sharing-requests", json={**body, "colour": "red"}), 422)
        refused(w, w.client.post("/sharing-requests", json={**body, "items": []}), 422)
        tampered = {**body, "purpose": "另一用途"}  # the signature no longer matches: another signer, not a key
        refused(w, w.client.post("/sharing-requests", json=tampered), 403, "DepartmentAccountNotBound")
        unknown = "0x" + "ab" * 32
        refused(w, s.decide(unknown, True, requester), 404)
        refused(w, s.revoke(unknown, requester), 404)
        refused(w, w.client.post("/sharing-requests/0x1234/decision", json={}), 422)


def test_a_batch_of_requests_answers_each_and_a_refused_one_writes_nothing(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(YUETAN), w.catalog(ADDRESSES)  # unconditional: granted at once
    item = catalog.data_items[0].name
    now = w.now()
    good = s.request_body(requester, catalog.code, [item], now, now + LONG)
    unknown_item = s.request_body(requester, catalog.code, ["颜色"], now, now + LONG, mask=1)
    total = w.client.get("/sharing-requests", params={"limit": 1}).json()["total"]
    reply = w.client.post("/sharing-requests/batch", json={"submissions": [good, unknown_item]})
    assert reply.status_code == 207, reply.text
    answer = reply.json()
    assert (answer["accepted"], answer["refused"]) == (1, 1)
    first, second = answer["results"]
    assert first["status"] == 202 and first["problem"] is None
    assert second["status"] == 422 and second["accepted"] is None
    assert second["problem"]["type"] == "/problems/unknown-items" and "颜色" in second["problem"]["detail"]
    assert second["problem"]["instance"] == "/sharing-requests/batch#1"
    wait_indexed(w.client, first["accepted"]["tx_hash"])
    detail = w.detail(first["accepted"]["request_id"])
    assert detail["status"] == "granted" and detail["items"] == [item] and detail["requester"] == requester
    assert w.client.get("/sharing-requests", params={"limit": 1}).json()["total"] == total + 1
    # a batch with a malformed request relays none of them
    with Unchanged(w):
        again = s.request_body(requester, catalog.code, [item], now, now + LONG)
        reply = w.client.post("/sharing-requests/batch", json={"submissions": [again, {**again, "colour": "red"}]})
        refused(w, reply, 422)
        assert "submissions.1.colour" in [e["field"] for e in reply.json()["errors"]]


def test_batches_of_decisions_and_revocations_answer_each_and_a_refused_one_writes_nothing(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(DX_CIVIL), w.catalog(POPULATION)  # conditional: awaits the owner's decision
    owner = catalog.provider_code
    start = w.now()
    rids = [s.accepted(s.request(requester, catalog.code, [name], start, start + LONG))["request_id"]
            for name in ("姓名", "公民身份号码")]
    unknown = "0x" + "cd" * 32
    decisions = [{"request_id": rids[0], **s.decision_body(rids[0], True, owner, reason="同意")},
                 {"request_id": unknown, **s.decision_body(unknown, True, owner)},
                 {"request_id": rids[1], **s.decision_body(rids[1], True, requester)}]  # not the owner
    untouched = w.detail(rids[1])
    reply = w.client.post("/sharing-requests/decisions/batch", json={"submissions": decisions})
    assert reply.status_code == 207, reply.text
    answer = reply.json()
    assert (answer["accepted"], answer["refused"]) == (1, 2)
    assert [r["status"] for r in answer["results"]] == [202, 404, 403]
    assert answer["results"][1]["problem"]["instance"] == "/sharing-requests/decisions/batch#1"
    assert answer["results"][2]["problem"]["error"]["name"] == "SharingNotOwner"
    wait_indexed(w.client, answer["results"][0]["accepted"]["tx_hash"])
    assert w.detail(rids[0])["status"] == "granted" and w.detail(rids[1]) == untouched  # the refused wrote nothing

    revocations = [{"request_id": rids[0], **s.revocation_body(rids[0], owner, reason="不再需要")},
                   {"request_id": rids[1], **s.revocation_body(rids[1], owner)}]  # never granted
    reply = w.client.post("/grants/revocations/batch", json={"submissions": revocations})
    assert reply.status_code == 207, reply.text
    results = reply.json()["results"]
    assert [r["status"] for r in results] == [202, 409]
    assert results[1]["problem"]["error"]["name"] == "SharingStatusInvalid"
    wait_indexed(w.client, results[0]["accepted"]["tx_hash"])
    assert w.detail(rids[0])["status"] == "revoked" and w.detail(rids[0])["reason"] == "不再需要"
    assert w.detail(rids[1]) == untouched

    # a batch with a malformed submission (no request id, a bad one) relays none of them
    with Unchanged(w, rids[1]):
        good = {"request_id": rids[1], **s.decision_body(rids[1], True, owner)}
        bad = {**good, "request_id": "0x1234"}
        missing = {k: v for k, v in good.items() if k != "request_id"}
        reply = w.client.post("/sharing-requests/decisions/batch", json={"submissions": [good, bad, missing]})
        refused(w, reply, 422)
        fields = [e["field"] for e in reply.json()["errors"]]
        assert "submissions.1.request_id" in fields and "submissions.2.request_id" in fields
        refused(w, w.client.post("/grants/revocations/batch", json={"submissions": []}), 422)


def test_replayed_request_stale_version_and_changed_catalog(world: World) -> None:
    w, s = world, world.sharing
    requester = w.dept(YUETAN)
    base = w.catalog(POOR_FAMILIES)
    record = variant(base, base.classification + "/STALE1", "conditional", ["甲", "乙"])
    s.register_catalog(record)
    now = w.now()
    body = s.request_body(requester, record.code, ["甲"], now, now + LONG, nonce=fresh_nonce())
    rid = s.accepted(w.client.post("/sharing-requests", json=body))["request_id"]
    with Unchanged(w, rid):
        refused(w, w.client.post("/sharing-requests", json=body), 409, "SubmissionNonceUsed")
    # the catalog moves to version 2: a request naming version 1 is stale
    from registry.canonical import record_json
    from registry.messages import record_message

    updated = record.model_copy(update={"summary": "第二版"})
    msg = record_message(updated, "update", 2, fresh_nonce(), 4_000_000_000)
    reply = w.client.post("/catalogs", json={
        "action": "update", "version": 2, "record": record_json(updated), "nonce": msg.message["nonce"],
        "deadline": 4_000_000_000, "signature": s.sign(s.keys.account(record.provider_code), msg)})
    assert reply.status_code == 202, reply.text
    wait_indexed(w.client, reply.json()["tx_hash"])
    with Unchanged(w, rid):
        refused(w, s.request(requester, record.code, ["甲"], now, now + LONG, version=1), 409, "SharingVersionStale")
        # a request made for version 1 can no longer be approved, only rejected
        refused(w, s.decide(rid, True, record.provider_code), 409, "SharingCatalogChanged")
    s.accepted(s.decide(rid, False, record.provider_code, reason="目录已更新，请按新版本申请"))
    assert w.detail(rid)["status"] == "rejected"


# ---------------------------------------------------------------------------------------------- reads


def test_listings_filter_and_paginate(world: World) -> None:
    w, s = world, world.sharing
    requester, catalog = w.dept(DX_CIVIL), w.catalog(ADDRESSES)
    now = w.now()
    ids = [s.accepted(s.request(requester, catalog.code, ["地址编码"], now, now + LONG))["request_id"]
           for _ in range(3)]
    mine = w.client.get("/sharing-requests", params={"requester": requester, "catalog": catalog.code}).json()
    assert [r["id"] for r in mine["items"]] == ids and mine["total"] == 3
    page = w.client.get("/sharing-requests",
                        params={"requester": requester, "catalog": catalog.code, "limit": 2, "offset": 1}).json()
    assert [r["id"] for r in page["items"]] == ids[1:] and page["total"] == 3 and page["limit"] == 2
    owned = w.client.get("/sharing-requests", params={"owner": catalog.provider_code, "limit": 500}).json()
    assert set(ids) <= {r["id"] for r in owned["items"]}
    assert all(r["owner"] == catalog.provider_code for r in owned["items"])
    for status in ("requested", "granted", "rejected", "refused", "revoked", "expired"):
        items = w.client.get("/sharing-requests", params={"status": status, "limit": 500}).json()["items"]
        assert all(r["status"] == status for r in items)
    grants = w.client.get("/grants", params={"limit": 500}).json()["items"]
    assert grants and all(g["status"] in ("granted", "revoked", "expired") and g["granted_at"] for g in grants)
    assert {r["id"] for r in w.client.get("/grants", params={"status": "revoked"}).json()["items"]}
    refused(w, w.client.get("/grants", params={"status": "requested"}), 422)
    refused(w, w.client.get("/sharing-requests", params={"status": "pending"}), 422)
    refused(w, w.client.get("/sharing-requests/0x" + "cd" * 32), 404)


def test_access_time_formats(world: World) -> None:
    w, s = world, world.sharing
    catalog = w.catalog(LEGAL_PERSONS)
    t = w.detail(w.client.get("/grants", params={"catalog": catalog.code}).json()["items"][0]["id"])["granted_at"]
    iso_utc = datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
    iso_beijing = datetime.fromtimestamp(t, UTC).astimezone().isoformat()
    assert s.access(catalog.code, t) == s.access(catalog.code, iso_utc) == s.access(catalog.code, iso_beijing)
    reply = w.client.get(f"/catalogs/{catalog.code}/access", params={"at": t}).json()
    assert reply["at"] == t and reply["at_iso"] == datetime.fromtimestamp(t, UTC).isoformat()
    assert abs(w.client.get(f"/catalogs/{catalog.code}/access").json()["at"] - time.time()) < 60
    problem = refused(w, w.client.get(f"/catalogs/{catalog.code}/access", params={"at": "next tuesday"}), 422)
    assert problem["type"] == "/problems/invalid-time"
    refused(w, w.client.get("/catalogs/301001/NOPE/access"), 404)
    assert w.client.get(f"/catalogs/{catalog.code}").json()["code"] == catalog.code  # the catalog route still answers


def test_kpis_route(world: World) -> None:
    kpis = world.client.get("/kpis").json()
    assert kpis["targets"] == {"unconditional_share_rate": 0.8, "share_demand_satisfaction_rate": 0.9,
                               "open_department_ratio": 0.95}
    assert "targets_2025" in kpis["targets_source"]
    assert {j["code"] for j in kpis["jurisdictions"]} == {j.code for j in world.seed.jurisdictions}
    decided = world.client.get("/sharing-requests", params={"limit": 500}).json()["items"]
    satisfaction = kpis["overall"]["share_demand_satisfaction_rate"]
    assert satisfaction["numerator"] == sum(1 for r in decided if r["granted_at"] is not None)
    assert satisfaction["denominator"] == sum(1 for r in decided if r["status"] != "requested")
