"""Sharing pieces of the service that need no chain: the expiry job's rounds (with a stand-in batcher),
the access time parser, the revert → HTTP map, the loader's sharing file and deterministic nonces,
and the KPI targets' source."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.problems import REVERTS, ApiProblem
from api.routes.sharing import parse_time
from chain.artifacts import load_artifact
from chain.directory import UNSIGNED_METHOD_OF, method_of
from dirchain.cli import SEED_FILE, SEED_SHARING_FILE
from registry.db import Base, SharingRequestRow, make_engine, session_factory
from registry.expiry import ExpiryJob
from registry.kpis import TARGETS_2025
from registry.loader import LoadError, read_sharing, seed_nonce, sharing_file_for
from registry.seed import read_directory

# ---------------------------------------------------------------------------------------------- expiry


class FakeBatcher:
    """Records what is handed over; each future stays pending until the test settles it."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, Any, Future[str]]] = []

    def submit(self, primary: str, struct: Any) -> Future[str]:
        future: Future[str] = Future()
        self.submitted.append((primary, struct, future))
        return future


def _grant(rid: str, end: int, status: str = "granted") -> SharingRequestRow:
    return SharingRequestRow(
        id=rid, catalog_code="301001/X", catalog_hash="0x", catalog_version=1, requester_id="0x", owner_id="0x",
        items_mask="1", purpose="p", basis="b", start=0, end=end, status=status, requested_at=0, signer="0x",
        nonce="1", deadline="1", signature="0x", chain_id=31337, directory="0x" + "11" * 20, tx_hash="0x", log_index=0,
        block_number=1,
    )


@pytest.fixture
def sessions() -> sessionmaker[Session]:
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    factory = session_factory(engine)
    with factory.begin() as session:
        session.add_all([
            _grant("0x" + "01" * 32, 100),
            _grant("0x" + "02" * 32, 200),
            _grant("0x" + "03" * 32, 150, "revoked"),
            _grant("0x" + "04" * 32, 1000),
        ])
    return factory


def test_expiry_job_hands_over_grants_whose_period_is_over(sessions: sessionmaker[Session]) -> None:
    batcher = FakeBatcher()
    chain_time = [150]
    job = ExpiryJob(sessions, lambda _c, _d: batcher, lambda: chain_time[0], clock=lambda: 0.0, retry_s=0.05)  # type: ignore[arg-type]
    assert job.run_once() == ["0x" + "01" * 32]
    primary, struct, future = batcher.submitted[0]
    assert primary == "Expiry" and struct == bytes.fromhex("01" * 32)
    assert job.run_once() == []  # in flight: not handed over twice
    chain_time[0] = 200
    assert job.run_once() == ["0x" + "02" * 32]
    future.set_exception(RuntimeError("SharingPeriodNotOver"))
    assert job.run_once() == []  # refused: retried only after retry_s
    time.sleep(0.06)
    assert job.run_once() == ["0x" + "01" * 32]
    assert job.expired_sent == 3


def test_expiry_job_uses_the_later_of_chain_time_and_wall_clock(sessions: sessionmaker[Session]) -> None:
    batcher = FakeBatcher()
    job = ExpiryJob(sessions, lambda _c, _d: batcher, lambda: 0, clock=lambda: 1000.5)  # type: ignore[arg-type]
    assert job.now() == 1000
    assert sorted(job.run_once()) == ["0x" + "01" * 32, "0x" + "02" * 32, "0x" + "04" * 32]
    with pytest.raises(ValueError):
        ExpiryJob(sessions, lambda _c, _d: batcher, lambda: 0, interval_s=0)  # type: ignore[arg-type]


def test_expiry_is_a_batch_of_bare_ids() -> None:
    assert method_of("Expiry") == "expireSharing" == UNSIGNED_METHOD_OF["Expiry"]
    assert method_of("SharingDecision") == "decideSharing"
    with pytest.raises(KeyError):
        method_of("Nope")


# ---------------------------------------------------------------------------------------------- API pieces


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1751256000", 1751256000),
        ("2025-06-30T12:00:00+08:00", 1751256000),
        ("2025-06-30T04:00:00Z", 1751256000),
        ("2025-06-30T04:00:00", 1751256000),  # no offset: UTC
        ("2025-06-30", 1751241600),
    ],
)
def test_parse_time(raw: str, expected: int) -> None:
    assert parse_time(raw) == expected


def test_parse_time_default_and_errors() -> None:
    assert abs(parse_time(None) - time.time()) < 5
    for bad in ("yesterday", "2025-13-01", "-5", "1e9"):
        with pytest.raises(ApiProblem) as caught:
            parse_time(bad)
        assert caught.value.status == 422 and caught.value.slug == "invalid-time"


def test_every_sharing_error_of_the_contract_has_an_http_status() -> None:
    errors = {e["name"] for e in load_artifact("Directory").abi if e.get("type") == "error"}
    sharing = {e for e in errors if e.startswith("Sharing")}
    assert sharing and sharing <= set(REVERTS), sorted(sharing - set(REVERTS))
    assert REVERTS["SharingNotOwner"][0] == 403 and REVERTS["SharingStatusInvalid"][0] == 409
    assert {REVERTS[e][0] for e in ("SharingItemsUnknown", "SharingSelfRequest", "SharingPeriodInvalid")} == {422}


# ---------------------------------------------------------------------------------------------- loader, targets


def test_seed_sharing_file_covers_every_path_and_resolves_against_the_seed() -> None:
    seeds = read_sharing(SEED_SHARING_FILE)
    assert sorted(s.expect for s in seeds) == ["expired", "granted", "granted", "refused", "rejected", "revoked"]
    directory = read_directory(SEED_FILE)
    departments = {d.name for d in directory.departments}
    catalogs = {c.name: c for c in directory.catalogs}
    for s in seeds:
        assert s.requester in departments and s.catalog in catalogs
        record = catalogs[s.catalog]
        assert set(s.items) <= {i.name for i in record.data_items}
        assert record.provider != s.requester
        expected_type = {"refused": "not_shared", "rejected": "conditional"}.get(s.expect)
        if expected_type:
            assert record.share_type.value == expected_type
        assert (s.decision is not None) == (record.share_type.value == "conditional")
        assert (s.revocation is not None) == (s.expect == "revoked")
    assert sharing_file_for(SEED_FILE) == SEED_SHARING_FILE


def test_read_sharing_names_the_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "x-sharing.json"
    path.write_text(json.dumps({"requests": [{"requester": "a", "catalog": "b", "items": [], "purpose": "p",
                                              "basis": "b", "period_s": 1, "expect": "granted"}]}))
    with pytest.raises(LoadError, match=r"requests\[0\]"):
        read_sharing(path)
    path.write_text("[]")
    with pytest.raises(LoadError, match="requests"):
        read_sharing(path)
    assert sharing_file_for(tmp_path / "x.json") == path
    assert sharing_file_for(tmp_path / "y-directory.json") is None


def test_seed_nonce_is_deterministic_and_64_bits() -> None:
    a = seed_nonce("D1", "301001/X", "用途")
    assert a == seed_nonce("D1", "301001/X", "用途") != seed_nonce("D1", "301001/X", "另一用途")
    assert 0 <= a < 2**64


def test_targets_are_those_of_the_seed_file() -> None:
    targets = json.loads(SEED_FILE.read_text(encoding="utf-8"))["aggregate_figures"]["targets_2025"]
    assert targets == {
        "unconditional_share_rate_min": TARGETS_2025.unconditional_share_rate,
        "share_demand_satisfaction_rate_min": TARGETS_2025.share_demand_satisfaction_rate,
        "open_department_ratio_min": TARGETS_2025.open_department_ratio,
    }
