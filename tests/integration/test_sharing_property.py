"""Property: for random sequences of sharing requests, decisions, revocations and clock advances, the
service's ``GET /catalogs/{code}/access?at=T`` answers what a plain Python model of the rules answers,
at times just before and after each transition (and at each period's bounds), and every submission
is accepted or refused as the model says.

The service runs on a dedicated anvil whose clock the test drives: each example starts at a fresh
time and ``Advance`` steps mine a block ``100·k`` seconds later. The model's clock stays ≡ 50 (mod 100)
while every period bound is a multiple of 100, so the few seconds a submission takes to be mined never
carry it across a bound — the model can tell in advance whether the contract accepts it. The times of
the transitions themselves are read from the chain (the block of each accepted transaction).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chain.node import AnvilNode
from chain.rpc import Rpc
from dirchain.cli import SEED_FILE
from registry.keystore import Keystore
from registry.loader import DirectoryLoader
from registry.models import CatalogRecord
from registry.seed import read_directory
from tests.integration.service import make_settings, running_service
from tests.integration.sharing import Sharing, block_timestamp, mine_at, variant

pytestmark = pytest.mark.integration

ITEMS = ["甲", "乙", "丙", "丁"]
SHARE_TYPES = ("unconditional", "conditional", "not_shared")
OWNER = "西城区民政局"
REQUESTERS = ("大兴区民政局", "月坛街道办事处", "西城区卫生健康委员会")


# ---------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Request:
    catalog: int  # index into the example's catalogs (one per share type)
    requester: int  # index into REQUESTERS
    items: frozenset[int]  # indexes into ITEMS
    start: int  # hundreds of seconds from the current hundred (may be negative)
    length: int  # hundreds of seconds


@dataclass(frozen=True)
class Decide:
    request: int  # index (mod the number of candidates)
    approve: bool
    by_owner: bool
    pending_only: bool  # candidates: requests awaiting a decision (if any), else every request


@dataclass(frozen=True)
class Revoke:
    request: int
    by_owner: bool
    granted_only: bool  # candidates: current grants (if any), else every request


@dataclass(frozen=True)
class Advance:
    hundreds: int


Action = Request | Decide | Revoke | Advance

# Weighted towards what leads somewhere in 15 examples: grantable catalogs, approvals, owners acting.
mostly = st.sampled_from([True, True, True, False])
requests = st.builds(
    Request,
    st.sampled_from([0, 0, 1, 1, 2]),
    st.integers(0, len(REQUESTERS) - 1),
    st.frozensets(st.integers(0, len(ITEMS) - 1), min_size=1),
    st.integers(-2, 2),
    st.integers(1, 5),
)
decisions = st.builds(Decide, st.integers(0, 20), mostly, mostly, mostly)
revocations = st.builds(Revoke, st.integers(0, 20), mostly, mostly)
actions = st.one_of(requests, decisions, revocations, decisions, revocations, st.builds(Advance, st.integers(1, 4)))
#: A sequence: one to three requests, then anything.
sequences = st.tuples(st.lists(requests, min_size=1, max_size=3), st.lists(actions, min_size=1, max_size=8)).map(
    lambda parts: [*parts[0], *parts[1]]
)


# ---------------------------------------------------------------------------------------------- the model


@dataclass
class ModelRequest:
    """The model's view of one recorded request; times are unix seconds read from the chain."""

    id: str
    catalog: int
    requester: str
    items: frozenset[str]
    start: int
    end: int
    status: str
    granted_at: int | None = None
    revoked_at: int | None = None


@dataclass
class Model:
    """The rules of data sharing, written plainly: who may do what when, and who holds access at T."""

    share_types: tuple[str, ...]
    now: int  # the model's clock: ≡ 50 (mod 100)
    requests: list[ModelRequest] = field(default_factory=list)

    def request_outcome(self, catalog: int, start: int, end: int) -> str | None:
        """Status a new request ends in, or None if the contract refuses it (period empty or over)."""
        if start >= end or end <= self.now:
            return None
        return {"unconditional": "granted", "conditional": "requested", "not_shared": "refused"}[
            self.share_types[catalog]
        ]

    def decision_status(self, r: ModelRequest, by_owner: bool) -> int:
        """HTTP status of a decision: 202, or the 4xx the contract's first failing check maps to."""
        if r.status != "requested" or self.now >= r.end:
            return 409
        return 202 if by_owner else 403

    def revocation_status(self, r: ModelRequest, by_owner: bool) -> int:
        """HTTP status of a revocation (a grant whose period is over may already be marked expired: 409 either way)."""
        if r.status != "granted" or self.now >= r.end:
            return 409
        return 202 if by_owner else 403

    def access(self, catalog: int, at: int) -> dict[str, set[str]]:
        """Department → items it may use at ``at``: granted at or before ``at``, ``start ≤ at < end``, not
        revoked at or before ``at`` (an expiry happens at or after ``end``, which the period already covers)."""
        holders: dict[str, set[str]] = {}
        for r in self.requests:
            if r.catalog != catalog or r.granted_at is None or r.granted_at > at:
                continue
            if not r.start <= at < r.end:
                continue
            if r.revoked_at is not None and r.revoked_at <= at:
                continue
            holders.setdefault(r.requester, set()).update(r.items)
        return holders

    def check_times(self) -> set[int]:
        """Just before and at every transition and period bound."""
        times: set[int] = set()
        for r in self.requests:
            for t in (r.granted_at, r.revoked_at, r.start, r.end):
                if t is not None:
                    times.update({t - 1, t})
        return times


# ---------------------------------------------------------------------------------------------- fixture


@dataclass
class Env:
    rpc: Rpc
    client: TestClient
    sharing: Sharing
    owner: str
    requesters: tuple[str, ...]
    base: CatalogRecord
    counter: Iterator[int]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A service on a dedicated anvil (its clock is ours to move) with the seed directory loaded."""
    home: Path = tmp_path_factory.mktemp("sharing-property")
    seed = read_directory(SEED_FILE)
    node = AnvilNode()
    node.start()
    try:
        with running_service(make_settings(home, node.rpc_url)) as (service, client):
            keys = Keystore(home / "keys")
            assert DirectoryLoader("http://testserver", keys, http=client).load(seed).ok
            codes = {d.name: d.code for d in seed.departments}
            base = next(c for c in seed.catalogs if c.provider == OWNER)
            yield Env(service.rpc, client, Sharing(client, keys), codes[OWNER],
                      tuple(codes[n] for n in REQUESTERS), base, itertools.count(1))
    finally:
        node.stop()


# ---------------------------------------------------------------------------------------------- property


def pick(requests: list[ModelRequest], index: int, status: str | None) -> ModelRequest:
    """The ``index``-th (mod) request of those in ``status`` — of all requests if none is (or no status)."""
    candidates = [r for r in requests if r.status == status] or requests
    return candidates[index % len(candidates)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences)
def test_access_matches_the_model(env: Env, steps: list[Action]) -> None:
    s, rpc = env.sharing, env.rpc
    example = next(env.counter)
    catalogs = []
    for i, share_type in enumerate(SHARE_TYPES):
        record = variant(env.base, f"{env.base.classification}/P{example:04d}{i}", share_type, ITEMS)
        s.register_catalog(record)
        catalogs.append(record.code)

    # a fresh start of the clock for this example, ≡ 50 (mod 100)
    now = (block_timestamp(rpc) // 100 + 2) * 100 + 50
    mine_at(rpc, now)
    model = Model(SHARE_TYPES, now)

    for step in steps:
        if isinstance(step, Advance):
            model.now += 100 * step.hundreds
            mine_at(rpc, model.now)
        elif isinstance(step, Request):
            start = model.now - 50 + 100 * step.start
            end = start + 100 * step.length
            requester = env.requesters[step.requester]
            names = [ITEMS[i] for i in sorted(step.items)]
            reply = s.request(requester, catalogs[step.catalog], names, start, end)
            outcome = model.request_outcome(step.catalog, start, end)
            if outcome is None:
                assert reply.status_code == 422 and reply.json()["error"]["name"] == "SharingPeriodInvalid", reply.text
                continue
            accepted = s.accepted(reply)
            t = block_timestamp(rpc, accepted["block_number"])
            r = ModelRequest(accepted["request_id"], step.catalog, requester, frozenset(names), start, end, outcome)
            if outcome == "granted":
                r.granted_at = t
            model.requests.append(r)
        elif isinstance(step, Decide) and model.requests:
            r = pick(model.requests, step.request, "requested" if step.pending_only else None)
            signer = env.owner if step.by_owner else r.requester
            reply = s.decide(r.id, step.approve, signer)
            expected = model.decision_status(r, step.by_owner)
            assert reply.status_code == expected, (expected, reply.text)
            if expected == 202:
                t = block_timestamp(rpc, s.accepted(reply)["block_number"])
                r.status = "granted" if step.approve else "rejected"
                r.granted_at = t if step.approve else None
        elif isinstance(step, Revoke) and model.requests:
            r = pick(model.requests, step.request, "granted" if step.granted_only else None)
            signer = env.owner if step.by_owner else r.requester
            reply = s.revoke(r.id, signer)
            expected = model.revocation_status(r, step.by_owner)
            assert reply.status_code == expected, (expected, reply.text)
            if expected == 202:
                r.revoked_at = block_timestamp(rpc, s.accepted(reply)["block_number"])
                r.status = "revoked"

    granted = sum(r.granted_at is not None for r in model.requests)
    event(f"grants: {min(granted, 3)}{'+' if granted >= 3 else ''}")
    event(f"revocations: {sum(r.revoked_at is not None for r in model.requests)}")
    for at in sorted(model.check_times()):
        for i, code in enumerate(catalogs):
            assert s.access(code, at) == model.access(i, at), f"catalog {SHARE_TYPES[i]} at {at}"
