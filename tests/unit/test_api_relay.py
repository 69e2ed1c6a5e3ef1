"""api.relay.Relay's and chain.batcher.Batcher's bookkeeping without a chain: what they hold for a submission is let
go once its transaction is final, so a service running for months holds a bounded amount, while a submission still in
flight keeps refusing its duplicates. The directory client is a stand-in that sends at once and mines when told."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from api.problems import ApiProblem
from api.relay import Relay
from chain import eip712
from chain.batcher import Batcher
from chain.sender import Receipt
from registry.directories import Target
from registry.messages import Message
from tests.unit.test_relay import types

CHAIN = 31337
DIRECTORY = "0x00000000000000000000000000000000000000D1"
ADMIN: LocalAccount = Account.from_key(b"\x07" * 32)


class StandInClient:
    """What the relay and the batcher use of a :class:`chain.directory.DirectoryClient`: each batch is 'sent' as the
    next transaction hash, and its receipt arrives once ``mined`` is set."""

    def __init__(self, mined: threading.Event) -> None:
        self.address = DIRECTORY
        self.mined = mined
        self.sent: list[str] = []
        self.sender = SimpleNamespace(wait=self._wait)

    def typed_data(self, primary: str, message: dict[str, Any]) -> dict[str, Any]:
        return eip712.typed_data(types(), primary, eip712.domain(CHAIN, DIRECTORY), message)

    def submit(self, _primary: str, _structs: list[Any]) -> str:
        self.sent.append(f"0x{len(self.sent) + 1:064x}")
        return self.sent[-1]

    def _wait(self, tx_hash: str) -> Receipt:
        self.mined.wait()
        return Receipt(tx_hash, len(self.sent), "0x" + "bb" * 32, 1, 50_000, [])


class OneDirectory:
    """The part of :class:`registry.directories.Directories` the relay uses, with one target."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def route_known(self, _msg: Message) -> Target:
        return self.target

    def targets(self) -> list[Target]:
        return [self.target]


def _setup(mined: threading.Event, *, start: bool = True, **relay_kwargs: Any) -> tuple[Relay, Batcher, StandInClient]:
    client = StandInClient(mined)
    batcher = Batcher(client, window_s=0.0, linger_s=0.0, keep_final=4)  # type: ignore[arg-type]
    if start:
        batcher.start()
    relay = Relay(OneDirectory(Target("110000", client, batcher)), **relay_kwargs)  # type: ignore[arg-type]
    return relay, batcher, client


def _submit(relay: Relay, n: int) -> tuple[str, str]:
    """Submit the ``n``-th distinct signed Jurisdiction message (its own code and nonce); returns (tx hash, signer)."""
    message = {"code": f"J{n}", "name": f"jurisdiction {n}", "tier": 2, "parent": keccak(text="110000"), "nonce": n,
               "deadline": 10**10}
    msg = Message("Jurisdiction", message)
    signature = eip712.sign(ADMIN, eip712.typed_data(types(), "Jurisdiction", eip712.domain(CHAIN, DIRECTORY),
                                                     message))
    return asyncio.run(relay.submit(msg, "0x" + signature.hex(), f"J{n}"))


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "the batcher never got there"
        time.sleep(0.01)


def test_reservations_and_outcomes_of_final_transactions_are_let_go() -> None:
    """40 submissions mined one after another: the relay holds a handful of reservations (it held all 80, two per
    submission, before), and the batcher the outcomes of its last 4 transactions."""
    mined = threading.Event()
    mined.set()
    relay, batcher, client = _setup(mined, sweep_floor=8)
    try:
        for n in range(40):
            _submit(relay, n)
        _until(lambda: (o := batcher.outcome(client.sent[-1])) is not None and o.status == "mined")
        assert len(client.sent) == 40
        assert relay.held()[0] <= 16  # at most twice the sweep floor between sweeps
        remembered = [tx for tx in client.sent if batcher.outcome(tx) is not None]
        assert remembered == client.sent[-4:]
        # a submission whose transaction is final and forgotten is not reserved any more: relayed, not refused 409
        assert _submit(relay, 3)[0] == client.sent[-1] != client.sent[3]
    finally:
        batcher.stop()


def test_a_submission_in_flight_keeps_refusing_its_duplicate_through_sweeps() -> None:
    """Its transaction's receipt has not arrived; the sweeps run by later submissions (answered 503, queued behind
    it) keep its reservation, so the duplicate is still refused; once mined, a sweep lets it go."""
    mined = threading.Event()
    relay, batcher, client = _setup(mined, timeout_s=0.05, sweep_floor=2)
    try:
        tx_hash, _ = _submit(relay, 0)
        _until(lambda: batcher.outcome(tx_hash) is not None)
        for n in range(1, 6):
            with pytest.raises(ApiProblem) as pending:
                _submit(relay, n)
            assert pending.value.status == 503
        with pytest.raises(ApiProblem) as duplicate:
            _submit(relay, 0)
        assert duplicate.value.status == 409 and tx_hash in duplicate.value.detail
        mined.set()
        _until(lambda: len(client.sent) == 6 and all(batcher.outcome(tx).status == "mined"  # type: ignore[union-attr]
                                                     for tx in client.sent[-4:]))
        for n in range(6, 14):  # their reservations' sweeps find every earlier transaction final
            _submit(relay, n)
        assert relay.held()[0] <= 6
    finally:
        mined.set()
        batcher.stop()


def test_settled_submissions_answered_503_are_forgotten_oldest_first() -> None:
    """With ``keep_settled`` 2: of three submissions answered 503 and sent since, the oldest is forgotten once more
    are answered 503; the two latest settled ones and every unsettled one still answer their status URL."""
    mined = threading.Event()
    mined.set()
    relay, batcher, _ = _setup(mined, start=False, timeout_s=0.05, keep_settled=2)
    ids = []
    for n in range(3):
        with pytest.raises(ApiProblem) as pending:
            _submit(relay, n)
        ids.append(pending.value.extra["submission"])
    batcher.start()
    _until(lambda: all(relay.queued(i).status == "sent" for i in ids))  # type: ignore[union-attr]
    batcher.stop()  # from here on nothing is sent: every later submission stays queued
    for n in range(3, 9):
        with pytest.raises(ApiProblem) as pending:
            _submit(relay, n)
        ids.append(pending.value.extra["submission"])
    assert relay.queued(ids[0]) is None
    assert [relay.queued(i).status for i in ids[1:]] == ["sent"] * 2 + ["queued"] * 6  # type: ignore[union-attr]
    assert relay.held()[1] == 8


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="keep_settled >= 0"):
        _setup(threading.Event(), start=False, keep_settled=-1)
    with pytest.raises(ValueError, match="keep_final >= 0"):
        Batcher(SimpleNamespace(sender=object()), keep_final=-1)  # type: ignore[arg-type]
