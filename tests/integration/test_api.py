"""The seed directory through the real API (anvil + SQLite + indexer), and every rejection writing nothing."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.problems import ApiProblem
from api.relay import QueuedSubmission, Relay
from api.schemas import MAX_BATCH_SUBMISSIONS
from chain import eip712
from chain.batcher import Batcher
from chain.directory import to_struct
from chain.eip712 import SECP256K1_N
from chain.node import AnvilNode
from dirchain.cli import SEED_FILE, SEED_SHARING_FILE
from dirchain.service import Service
from registry.canonical import record_json
from registry.directories import Target
from registry.keystore import Keystore
from registry.loader import DirectoryLoader, LoadSummary, read_sharing
from registry.messages import Message, record_message, retire_message
from registry.models import CatalogRecord
from registry.seed import Directory, read_directory
from tests.integration.conftest import next_nonce
from tests.integration.service import make_settings, running_service, wait_indexed

TX_HASH = re.compile(r"^0x[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def seed() -> Directory:
    return read_directory(SEED_FILE)


@pytest.fixture(scope="module")
def loaded(
    anvil: AnvilNode, tmp_path_factory: pytest.TempPathFactory, seed: Directory
) -> Iterator[tuple[Service, TestClient, LoadSummary]]:
    """A service on the session anvil with the seed directory and its sharing requests loaded through its API."""
    home = tmp_path_factory.mktemp("api")
    with running_service(make_settings(home, anvil.rpc_url)) as (service, client):
        loader = DirectoryLoader("http://testserver", _keystore(home), http=client)
        summary = loader.load(seed, read_sharing(SEED_SHARING_FILE))
        yield service, client, summary


def _keystore(home: Path) -> Keystore:
    return Keystore(home / "keys")


def _head(service: Service) -> int:
    return int(service.rpc.call("eth_blockNumber", []), 16)


def _sign(client: TestClient, account: LocalAccount, msg: Message) -> bytes:
    meta = client.get("/eip712").json()
    return eip712.sign(account, eip712.typed_data(meta["types"], msg.primary, meta["domain"], msg.message))


def _catalog_body(client: TestClient, account: LocalAccount, record: CatalogRecord, **envelope: Any) -> dict[str, Any]:
    nonce = envelope.get("nonce", next_nonce())
    deadline = envelope.get("deadline", int(time.time()) + 3600)
    signature = _sign(client, account, record_message(record, "register", 1, nonce, deadline))
    return {
        "action": "register",
        "version": 1,
        "record": record_json(record),
        "nonce": nonce,
        "deadline": deadline,
        "signature": "0x" + signature.hex(),
    }


def _new_catalog(seed: Directory, district: str, suffix: str) -> tuple[CatalogRecord, str]:
    """A fresh catalog of the first department of ``district`` (not in the seed), and that department's code."""
    dept = next(d for d in seed.departments if d.jurisdiction == district)
    base = seed.catalogs[0]
    record = base.model_copy(
        update={
            "code": f"{base.classification}/T{suffix}",
            "provider": dept.name,
            "provider_code": dept.code,
            "jurisdiction": dept.jurisdiction,
            "source_system": None,
        }
    )
    return CatalogRecord.model_validate(record.model_dump()), dept.code


def _assert_nothing_written(service: Service, client: TestClient, head: int, catalogs: int) -> None:
    assert _head(service) == head, "a rejected submission must not reach the chain"
    assert client.get("/catalogs", params={"limit": 1}).json()["total"] == catalogs


# ---------------------------------------------------------------------------------------------- seed


def test_seed_loads_every_record_through_the_api(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    service, client, summary = loaded
    assert summary.ok, summary
    added = {phase: p.added for phase, p in summary.phases.items()}
    assert added == {
        "jurisdictions": 8, "departments": 28, "department keys": 28, "systems": 69, "catalogs": 22, "sharing": 6
    }
    assert summary.phases["sharing"].updated == 3  # two decisions and a revocation
    health = client.get("/health").json()
    assert health["counts"]["jurisdictions"] == 8
    assert health["counts"]["departments"] == 28
    assert health["counts"]["sharing_requests"] == 6
    assert health["cursor"] >= _head(service) - 0

    catalogs = client.get("/catalogs", params={"limit": 500}).json()
    systems = client.get("/systems", params={"limit": 500}).json()
    assert catalogs["total"] == 22 and len(catalogs["items"]) == 22
    assert systems["total"] == 69 and len(systems["items"]) == 69
    assert {c["name"] for c in catalogs["items"]} == {c.name for c in seed.catalogs}
    assert {s["name"] for s in systems["items"]} == {s.name for s in seed.systems}
    assert all(TX_HASH.match(item["tx_hash"]) for item in catalogs["items"] + systems["items"])

    keys = _keystore(service.settings.home)
    population = next(c for c in seed.catalogs if c.name == "人口基础信息库")
    detail = client.get(f"/catalogs/{population.code}").json()
    assert detail["provider"] == "西城区科技和信息化局（西城区大数据局）"
    assert [i["name"] for i in detail["record"]["data_items"]][:2] == ["公民身份号码", "姓名"]
    (version,) = detail["versions"]
    assert version["signer"] == keys.address(population.provider_code)
    assert TX_HASH.match(version["tx_hash"]) and version["block_number"] > 0 and version["log_index"] >= 0
    assert version["digest"] == detail["latest_digest"]

    jurisdictions = client.get("/jurisdictions").json()
    assert [j["name"] for j in jurisdictions][:1] == ["北京市"]
    streets = client.get("/jurisdictions", params={"tier": "street"}).json()
    assert {s["parent"] for s in streets} == {"110102"}


def test_filters_and_pagination(loaded: tuple[Service, TestClient, LoadSummary], seed: Directory) -> None:
    _, client, _ = loaded
    xicheng = client.get("/catalogs", params={"jurisdiction": "110102", "limit": 500}).json()
    assert xicheng["total"] == sum(1 for c in seed.catalogs if c.jurisdiction == "110102")
    unconditional = client.get("/catalogs", params={"share_type": "unconditional", "limit": 500}).json()
    assert unconditional["total"] == sum(1 for c in seed.catalogs if c.share_type.value == "unconditional")
    assert client.get("/catalogs", params={"text": "人口"}).json()["total"] >= 2
    first = client.get("/catalogs", params={"limit": 5, "offset": 0}).json()["items"]
    second = client.get("/catalogs", params={"limit": 5, "offset": 5}).json()["items"]
    assert len(first) == 5 and not {c["code"] for c in first} & {c["code"] for c in second}
    daxing_systems = client.get("/systems", params={"jurisdiction": "110115", "limit": 500}).json()
    assert daxing_systems["total"] == sum(1 for s in seed.systems if s.jurisdiction == "110115")
    bad = client.get("/catalogs", params={"share_type": "sometimes"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    missing = client.get("/catalogs/301001/NOPE")
    assert missing.status_code == 404 and missing.json()["type"] == "/problems/not-found"


def test_submission_statuses_answer_many_transactions_at_once(loaded: tuple[Service, TestClient, LoadSummary]) -> None:
    """``POST /submissions/status`` gives, in the order asked, what ``GET /submissions/{tx}`` gives for each
    transaction (one batched JSON-RPC request per chain); a bad query is a 422 problem naming what is wrong."""
    _, client, _ = loaded
    codes = [c["code"] for c in client.get("/catalogs", params={"limit": 3}).json()["items"]]
    txs = [client.get(f"/catalogs/{code}").json()["versions"][0]["tx_hash"] for code in codes]
    unknown = "0x" + "0" * 64
    asked = [txs[0], unknown, *txs[1:], txs[0].upper().replace("0X", "0x")]
    reply = client.post("/submissions/status", json={"tx_hashes": asked})
    assert reply.status_code == 200
    states = reply.json()
    assert [s["tx_hash"] for s in states] == asked
    assert states == [client.get(f"/submissions/{tx}").json() for tx in asked]
    assert [s["status"] for s in states] == ["indexed", "unknown", *["indexed"] * (len(txs) - 1), "indexed"]
    assert all(s["block_number"] > 0 and s["chain_id"] for s in states if s["status"] == "indexed")

    for bad, field in (({"tx_hashes": []}, "tx_hashes"), ({"tx_hashes": [unknown] * 201}, "tx_hashes"),
                       ({"tx_hashes": ["0x1234"]}, "tx_hashes.0"), ({"tx_hash": [unknown]}, "tx_hashes")):
        refused = client.post("/submissions/status", json=bad)
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in refused.json()["errors"]], refused.json()
    malformed = client.get("/submissions/0x1234")
    assert malformed.status_code == 422 and malformed.headers["content-type"].startswith("application/problem+json")


def test_loading_the_seed_again_changes_nothing_on_chain(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    service, client, _ = loaded
    head = _head(service)
    again = DirectoryLoader("http://testserver", _keystore(service.settings.home), http=client).load(
        seed, read_sharing(SEED_SHARING_FILE)
    )
    assert again.ok
    assert {p: (s.added, s.updated) for p, s in again.phases.items()} == {p: (0, 0) for p in again.phases}
    assert again.phases["catalogs"].unchanged == 22 and again.phases["systems"].unchanged == 69
    assert again.phases["sharing"].unchanged == 6
    assert _head(service) == head


def test_update_creates_a_new_version_and_keeps_the_old(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, dept = _new_catalog(seed, "110101", "UPD1")
    reply = client.post("/catalogs", json=_catalog_body(client, keys.account(dept), record))
    assert reply.status_code == 202, reply.text
    wait_indexed(client, reply.json()["tx_hash"])
    changed = record.model_copy(update={"summary": "更新后的摘要"})
    nonce, deadline = next_nonce(), int(time.time()) + 600
    sig = _sign(client, keys.account(dept), record_message(changed, "update", 2, nonce, deadline))
    body = {
        "action": "update",
        "version": 2,
        "record": record_json(changed),
        "nonce": nonce,
        "deadline": deadline,
        "signature": "0x" + sig.hex(),
    }
    reply = client.post("/catalogs", json=body)
    assert reply.status_code == 202, reply.text
    wait_indexed(client, reply.json()["tx_hash"])
    detail = client.get(f"/catalogs/{record.code}").json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["versions"][0]["record"]["summary"] == record.summary
    assert detail["record"]["summary"] == "更新后的摘要"
    # the same update again is a version conflict, not a second version
    nonce = next_nonce()
    sig = _sign(client, keys.account(dept), record_message(changed, "update", 2, nonce, deadline))
    reply = client.post("/catalogs", json={**body, "nonce": nonce, "signature": "0x" + sig.hex()})
    assert reply.status_code == 409 and reply.json()["error"]["name"] == "RecordVersionMismatch"


# ---------------------------------------------------------------------------------------------- batches


def test_a_batch_answers_each_submission_and_a_refused_one_writes_nothing(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    first, dept = _new_catalog(seed, "110101", "BATCH1")
    second, _ = _new_catalog(seed, "110101", "BATCH2")
    forged, _ = _new_catalog(seed, "110102", "BATCH3")
    daxing = next(d for d in seed.departments if d.jurisdiction == "110115")
    good = _catalog_body(client, keys.account(dept), first)
    total = client.get("/catalogs").json()["total"]
    submissions = [good, _catalog_body(client, keys.account(daxing.code), forged), good,
                   _catalog_body(client, keys.account(dept), second)]
    reply = client.post("/catalogs/batch", json={"submissions": submissions})
    assert reply.status_code == 207, reply.text
    answer = reply.json()
    assert (answer["accepted"], answer["refused"]) == (2, 2)
    assert [r["index"] for r in answer["results"]] == [0, 1, 2, 3]
    statuses = [r["status"] for r in answer["results"]]
    # the same signed submission twice in one batch: one is accepted, the other refused as in flight
    assert statuses[1] == 403 and statuses[3] == 202 and sorted(statuses[::2]) == [202, 409], statuses
    won, lost = (0, 2) if statuses[0] == 202 else (2, 0)
    refused, duplicate = answer["results"][1]["problem"], answer["results"][lost]["problem"]
    assert refused["error"]["name"] == "DepartmentAccountNotBound" and refused["instance"] == "/catalogs/batch#1"
    assert duplicate["type"] == "/problems/in-flight" and duplicate["instance"] == f"/catalogs/batch#{lost}"
    for result, record in ((answer["results"][won], first), (answer["results"][3], second)):
        accepted = result["accepted"]
        assert TX_HASH.match(accepted["tx_hash"]) and accepted["code"] == record.code
        assert accepted["signer"] == keys.address(dept) and accepted["record_url"] == f"/catalogs/{record.code}"
        wait_indexed(client, accepted["tx_hash"])
    assert client.get("/catalogs").json()["total"] == total + 2
    assert client.get(f"/catalogs/{forged.code}").status_code == 404
    # every one accepted: 202
    third, _ = _new_catalog(seed, "110101", "BATCH4")
    reply = client.post("/catalogs/batch", json={"submissions": [_catalog_body(client, keys.account(dept), third)]})
    assert reply.status_code == 202 and reply.json()["accepted"] == 1, reply.text
    wait_indexed(client, reply.json()["results"][0]["accepted"]["tx_hash"])


def test_a_batch_that_is_not_valid_relays_nothing(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, dept = _new_catalog(seed, "110102", "BATCHBAD")
    good = _catalog_body(client, keys.account(dept), record)
    bad = _catalog_body(client, keys.account(dept), _new_catalog(seed, "110102", "BATCHBAD2")[0])
    del bad["record"]["name"]
    head, total = _head(service), client.get("/catalogs").json()["total"]
    reply = client.post("/catalogs/batch", json={"submissions": [good, bad]})
    assert reply.status_code == 422 and reply.json()["type"] == "/problems/invalid-body"
    assert "submissions.1.record.name" in [e["field"] for e in reply.json()["errors"]], reply.json()
    for submissions in ([], [good] * (MAX_BATCH_SUBMISSIONS + 1)):
        reply = client.post("/catalogs/batch", json={"submissions": submissions})
        assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "submissions", reply.json()
    reply = client.post("/systems/batch", json={"submissions": [good]})  # a catalog is not a system
    assert reply.status_code == 422
    _assert_nothing_written(service, client, head, total)


# ---------------------------------------------------------------------------------------------- rejections


def test_record_signed_by_another_jurisdictions_department_is_refused(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, _ = _new_catalog(seed, "110102", "FORGE1")
    daxing = next(d for d in seed.departments if d.jurisdiction == "110115")
    head, total = _head(service), client.get("/catalogs").json()["total"]
    reply = client.post("/catalogs", json=_catalog_body(client, keys.account(daxing.code), record))
    assert reply.status_code == 403
    problem = reply.json()
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert problem["error"]["name"] == "DepartmentAccountNotBound"
    assert problem["status"] == 403 and "not a key of the named department" in problem["detail"]
    # naming its own department but another jurisdiction
    own = record.model_copy(update={"provider": daxing.name, "provider_code": daxing.code})
    reply = client.post("/catalogs", json=_catalog_body(client, keys.account(daxing.code), own))
    assert reply.status_code == 403 and reply.json()["error"]["name"] == "RecordJurisdictionMismatch"
    _assert_nothing_written(service, client, head, total)


def test_replayed_signature_is_refused(loaded: tuple[Service, TestClient, LoadSummary], seed: Directory) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, dept = _new_catalog(seed, "110102", "REPLAY1")
    body = _catalog_body(client, keys.account(dept), record)
    first = client.post("/catalogs", json=body)
    assert first.status_code == 202, first.text
    wait_indexed(client, first.json()["tx_hash"])
    head, total = _head(service), client.get("/catalogs").json()["total"]
    replay = client.post("/catalogs", json=body)
    assert replay.status_code == 409
    # a record version is applied once by its version sequence (no nonce is spent): the replay finds it registered
    assert replay.json()["error"]["name"] == "RecordStatusInvalid"
    _assert_nothing_written(service, client, head, total)


def test_expired_deadline_is_refused(loaded: tuple[Service, TestClient, LoadSummary], seed: Directory) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, dept = _new_catalog(seed, "110102", "EXP1")
    head, total = _head(service), client.get("/catalogs").json()["total"]
    reply = client.post(
        "/catalogs", json=_catalog_body(client, keys.account(dept), record, deadline=int(time.time()) - 60)
    )
    assert reply.status_code == 422 and reply.json()["error"]["name"] == "SubmissionExpired"
    _assert_nothing_written(service, client, head, total)


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (
            lambda sig: (
                sig[:32] + (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])
            ),
            "high-s",
        ),
        (lambda sig: sig[:64], "expected 65 bytes, got 64"),
        (lambda sig: sig[:64] + bytes([1]), "expected v 27 or 28, got 1"),
    ],
)
def test_malformed_signatures_are_refused(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory, mangle: Any, reason: str
) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, dept = _new_catalog(seed, "110102", "SIG1")
    body = _catalog_body(client, keys.account(dept), record)
    body["signature"] = "0x" + mangle(bytes.fromhex(body["signature"][2:])).hex()
    head, total = _head(service), client.get("/catalogs").json()["total"]
    reply = client.post("/catalogs", json=body)
    assert reply.status_code == 400
    assert reply.json()["type"] == "/problems/invalid-signature" and reason in reply.json()["detail"]
    _assert_nothing_written(service, client, head, total)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda r: r.pop("summary"), "record.summary"),
        (lambda r: r.update(colour="red"), "record.colour"),
        (lambda r: r.update(share_type="sometimes"), "record.share_type"),
        (lambda r: r.update(update_frequency="hourly"), "record.update_frequency"),
        (lambda r: r.update(grade="9"), "record.grade"),
        (lambda r: r.update(data_items=[]), "record.data_items"),
    ],
)
def test_invalid_records_are_refused(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory, change: Any, field: str
) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, dept = _new_catalog(seed, "110102", "BAD1")
    body = _catalog_body(client, keys.account(dept), record)
    change(body["record"])
    head, total = _head(service), client.get("/catalogs").json()["total"]
    reply = client.post("/catalogs", json=body)
    assert reply.status_code == 422
    problem = reply.json()
    assert problem["type"] == "/problems/invalid-body"
    assert field in [e["field"] for e in problem["errors"]], problem
    _assert_nothing_written(service, client, head, total)


def test_unknown_envelope_field_is_refused(loaded: tuple[Service, TestClient, LoadSummary], seed: Directory) -> None:
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, dept = _new_catalog(seed, "110102", "BAD2")
    body = {**_catalog_body(client, keys.account(dept), record), "priority": "high"}
    reply = client.post("/catalogs", json=body)
    assert reply.status_code == 422 and "priority" in [e["field"] for e in reply.json()["errors"]]


def test_oversized_body_is_refused(loaded: tuple[Service, TestClient, LoadSummary], seed: Directory) -> None:
    service, client, _ = loaded
    head, total = _head(service), client.get("/catalogs").json()["total"]
    limit = service.settings.max_body_bytes
    reply = client.post(
        "/catalogs", content=b'{"record": "' + b"x" * (limit + 10) + b'"}', headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413
    assert reply.json()["type"] == "/problems/body-too-large" and str(limit) in reply.json()["detail"]
    _assert_nothing_written(service, client, head, total)


def test_metrics_expose_head_cursor_lag_and_counts(loaded: tuple[Service, TestClient, LoadSummary]) -> None:
    service, client, _ = loaded
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    values: dict[str, float] = {}
    for line in reply.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    labels = f'chain="city",chain_id="{service.client.chain_id}"'
    head = _head(service)
    assert values[f"dirchain_chain_up{{{labels}}}"] == 1
    assert values[f"dirchain_chain_head_block{{{labels}}}"] == head
    cursor = client.get("/health").json()["cursor"]
    assert values[f"dirchain_index_cursor_block{{{labels}}}"] == cursor
    assert values[f"dirchain_index_lag_blocks{{{labels}}}"] == head - cursor
    assert values[f"dirchain_index_lag_seconds{{{labels}}}"] >= 0
    assert values['dirchain_index_rows{kind="catalogs"}'] == client.get("/catalogs").json()["total"]
    assert values["dirchain_submissions_queued"] == 0


@pytest.mark.parametrize("collection", ["catalogs", "systems"])
def test_retirement_through_the_api(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory, collection: str
) -> None:
    """The owner retires a record at its next version; it stays readable, retired, and takes no further version."""
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    if collection == "catalogs":
        record, dept = _new_catalog(seed, "110101", f"RET{collection[:3].upper()}")
        reply = client.post("/catalogs", json=_catalog_body(client, keys.account(dept), record))
    else:
        base = seed.systems[0]
        owner = next(d for d in seed.departments if d.code == base.owner_code)
        record = base.model_copy(update={"code": "SRETIRE01", "name": "待下线系统"})
        nonce, deadline = next_nonce(), int(time.time()) + 600
        sig = _sign(client, keys.account(owner.code), record_message(record, "register", 1, nonce, deadline))
        reply = client.post("/systems", json={"action": "register", "version": 1, "record": record_json(record),
                                              "nonce": nonce, "deadline": deadline, "signature": "0x" + sig.hex()})
        dept = owner.code
    assert reply.status_code == 202, reply.text
    wait_indexed(client, reply.json()["tx_hash"])
    kind = "catalog" if collection == "catalogs" else "system"
    nonce, deadline = next_nonce(), int(time.time()) + 600
    msg = retire_message(kind, record.code, record.jurisdiction, dept, 2, nonce, deadline)
    body = {"version": 2, "jurisdiction": record.jurisdiction, "department": dept, "nonce": nonce,
            "deadline": deadline, "signature": "0x" + _sign(client, keys.account(dept), msg).hex()}
    reply = client.post(f"/{collection}/{record.code}/retirement", json=body)
    assert reply.status_code == 202, reply.text
    accepted = reply.json()
    assert accepted["digest"] is None and accepted["version"] == 2
    assert accepted["record_url"] == f"/{collection}/{record.code}"
    wait_indexed(client, accepted["tx_hash"])
    detail = client.get(f"/{collection}/{record.code}").json()
    assert [v["action"] for v in detail["versions"]] == ["register", "retire"]
    assert detail["status" if collection == "catalogs" else "lifecycle"] == "retired"
    assert detail["record"]["code"] == record.code  # the last committed content stays readable
    # a retired record takes no further version, and the refusal writes nothing
    head = _head(service)
    nonce = next_nonce()
    msg = retire_message(kind, record.code, record.jurisdiction, dept, 3, nonce, deadline)
    again = {**body, "version": 3, "nonce": nonce, "signature": "0x" + _sign(client, keys.account(dept), msg).hex()}
    reply = client.post(f"/{collection}/{record.code}/retirement", json=again)
    assert reply.status_code == 409 and reply.json()["error"]["name"] == "RecordStatusInvalid"
    assert _head(service) == head


# ---------------------------------------------------------------------------------------------- a slow batcher


def test_a_submission_not_sent_in_time_is_503_pending_and_is_sent_later(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    """When no transaction carries a submission within the relay's timeout, the answer is 503 ``submission-pending``
    (not a 500), and the submission is neither cancelled nor released: a duplicate is refused 409 while it waits,
    and once its batcher runs it goes out and is indexed. (Before, the timeout cancelled the batcher's future and
    the batcher's thread died on it.)"""
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    record, dept = _new_catalog(seed, "110102", "PENDING1")
    msg = record_message(record, "register", 1, next_nonce(), int(time.time()) + 3600)
    signature = "0x" + _sign(client, keys.account(dept), msg).hex()
    target = service.services().directories.route(msg)
    stalled = Target(target.jurisdiction, target.client, Batcher(target.client))  # not started: nothing leaves

    class OneTarget:
        def route_known(self, _msg: Message) -> Target | None:
            return None

        def route(self, _msg: Message) -> Target:
            return stalled

        def targets(self) -> list[Target]:
            return [stalled]

    relay = Relay(OneTarget(), timeout_s=0.3)  # type: ignore[arg-type]
    with pytest.raises(ApiProblem) as pending:
        asyncio.run(relay.submit(msg, signature, record.code))
    assert pending.value.status == 503 and pending.value.slug == "submission-pending"
    assert "may still be sent" in pending.value.detail
    queued = pending.value.extra["submission"]
    assert pending.value.extra["status_url"] == f"/submissions/queued/{queued}"
    assert relay.queued(queued) == QueuedSubmission(queued, "queued")
    assert relay.queued("0x" + "00" * 32) is None  # never answered 503 here
    with pytest.raises(ApiProblem) as duplicate:
        asyncio.run(relay.submit(msg, signature, record.code))
    assert duplicate.value.status == 409 and duplicate.value.slug == "in-flight"
    # a second submission queued behind it, which the contract will refuse: version 2 of a catalog not registered
    bad, _ = _new_catalog(seed, "110102", "PENDING2")
    bad_msg = record_message(bad, "update", 2, next_nonce(), int(time.time()) + 3600)
    with pytest.raises(ApiProblem) as bad_pending:
        asyncio.run(relay.submit(bad_msg, "0x" + _sign(client, keys.account(dept), bad_msg).hex(), bad.code))
    assert bad_pending.value.status == 503
    assert stalled.batcher.pending() == 2
    stalled.batcher.start()
    try:
        deadline = time.monotonic() + 30
        while client.get(f"/catalogs/{record.code}").status_code != 200:
            assert time.monotonic() < deadline, "the queued submission was never sent and indexed"
            time.sleep(0.1)
        assert client.get(f"/catalogs/{record.code}").json()["versions"][0]["version"] == 1
        # the queued submission now names the transaction that carried it; the refused one, the problem it got
        sent = relay.queued(queued)
        assert sent is not None and sent.status == "sent" and sent.tx_hash is not None
        assert client.get(f"/submissions/{sent.tx_hash}").json()["status"] in ("mined", "indexed")
        assert client.get(f"/catalogs/{record.code}").json()["versions"][0]["tx_hash"] == sent.tx_hash
        refused = relay.queued(bad_pending.value.extra["submission"])
        assert refused is not None and refused.status == "refused" and refused.problem is not None
        assert refused.problem.status == 409 and refused.problem.extra["error"]["name"] == "RecordStatusInvalid"
        assert client.get(f"/catalogs/{bad.code}").status_code == 404
        with pytest.raises(ApiProblem) as again:  # recorded: the same version again is refused by the contract
            asyncio.run(relay.submit(msg, signature, record.code))
        assert again.value.status == 409 and again.value.extra["error"]["name"] == "RecordStatusInvalid"
    finally:
        stalled.batcher.stop()


def test_the_loader_follows_submissions_answered_503_to_their_transactions(
    anvil: AnvilNode, tmp_path: Path, seed: Directory
) -> None:
    """A service whose relay answers 503 ``submission-pending`` to every submission (no wait for a transaction at
    all) still takes the whole seed through its API: the problem's ``status_url`` says when a transaction carries
    the submission, and the loader follows it there instead of counting a failure."""
    with running_service(make_settings(tmp_path, anvil.rpc_url), relay_timeout_s=0.0) as (_service, client):
        keys = _keystore(tmp_path)
        summary = DirectoryLoader("http://testserver", keys, http=client).load(seed, read_sharing(SEED_SHARING_FILE))
        assert summary.ok, {p: s.failed for p, s in summary.phases.items() if s.failed}
        assert summary.phases["catalogs"].added == 22 and summary.phases["systems"].added == 69
        assert client.get("/catalogs", params={"limit": 1}).json()["total"] == 22
        # one submission by hand: 503 with where to follow it, then its transaction, then the record indexed
        record, dept = _new_catalog(seed, "110101", "QUEUED1")
        msg = record_message(record, "register", 1, next_nonce(), int(time.time()) + 3600)
        body = {"action": "register", "version": 1, "record": record_json(record), "nonce": msg.message["nonce"],
                "deadline": msg.message["deadline"], "signature": "0x" + _sign(client, keys.account(dept), msg).hex()}
        reply = client.post("/catalogs", json=body)
        assert reply.status_code == 503 and reply.json()["type"] == "/problems/submission-pending"
        status_url = reply.json()["status_url"]
        deadline = time.monotonic() + 30
        while (state := client.get(status_url).json())["status"] == "queued":
            assert time.monotonic() < deadline, "the queued submission was never sent"
            time.sleep(0.05)
        assert state["status"] == "sent" and TX_HASH.match(state["tx_hash"]) and state["problem"] is None
        wait_indexed(client, state["tx_hash"])
        assert client.get(f"/catalogs/{record.code}").json()["versions"][0]["tx_hash"] == state["tx_hash"]
        unknown = client.get("/submissions/queued/0x" + "00" * 32)
        assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/not-found"


def test_a_cancelled_submission_is_dropped_and_the_batcher_keeps_working(
    loaded: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    """A future cancelled while queued is never sent, and the batcher's worker goes on with the next one."""
    service, client, _ = loaded
    keys = _keystore(service.settings.home)
    target = service.services().directories.route(
        record_message(_new_catalog(seed, "110102", "CANCEL1")[0], "register", 1, 1, 1))
    batcher = Batcher(target.client)
    futures = []
    codes = []
    for suffix in ("CANCEL1", "CANCEL2"):
        record, dept = _new_catalog(seed, "110102", suffix)
        msg = record_message(record, "register", 1, next_nonce(), int(time.time()) + 3600)
        signature = _sign(client, keys.account(dept), msg)
        futures.append(batcher.submit(msg.primary, to_struct(msg.primary, msg.message, signature, msg.record)))
        codes.append(record.code)
    assert futures[0].cancel()
    batcher.start()
    try:
        tx_hash = futures[1].result(timeout=30)
        assert TX_HASH.match(tx_hash)
        outcome = batcher.outcome(tx_hash)
        assert outcome is not None and outcome.count == 1  # the cancelled one was not in the batch
        deadline = time.monotonic() + 30
        while client.get(f"/catalogs/{codes[1]}").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert batcher.running()
    finally:
        batcher.stop()
    assert not batcher.running()  # idle, the worker blocks on its queue without polling: stop() wakes it
    assert batcher.pending() == 0
    assert client.get(f"/catalogs/{codes[0]}").status_code == 404
