"""Group commit of relay batches (registry/relay_sender.py) against real anvil chains: the batches several jobs
hand in while a ``relay`` transaction is in flight go out together in the next, each origin applied once; a
combined transaction that reverts is reported to every batch it carried."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from chain.directory import DirectoryClient
from chain.journal import MemoryJournal
from chain.relay import RelayItem, encode_call, relay_items
from chain.rpc import RpcError
from chain.sender import TxSender
from registry.db import make_engine, migrate, session_factory
from registry.relay_sender import RelaySender, SentBatch
from tests.integration.tiers import (
    CITY_CHAIN_ID,
    DISTRICT_CHAIN_ID,
    Node,
    TierWorld,
    add_catalogs,
    build_world,
    funded,
    logs_of,
    register_departments,
    start_node,
    version_counts,
)

pytestmark = pytest.mark.integration


class GatedSender(TxSender):
    """A sender whose first ``send`` waits for :attr:`release` (and says it :attr:`entered`); with
    :attr:`fail_second`, its second ``send`` raises that error instead of sending."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_second: Exception | None = None
        self.sends = 0

    def send(self, to: str | None, data: bytes, gas: int, label: str = "") -> str:
        self.sends += 1
        if self.sends == 1:
            self.entered.set()
            assert self.release.wait(30), "the test never released the first send"
        if self.sends == 2 and self.fail_second is not None:
            raise self.fail_second
        return super().send(to, data, gas, label)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TierWorld]:
    """Street 月坛街道 with its departments relayed to the district (so its catalogs can follow)."""
    district, city = start_node(DISTRICT_CHAIN_ID), start_node(CITY_CHAIN_ID)
    url = f"sqlite:///{tmp_path_factory.mktemp('relay-sender') / 'relay.db'}"
    migrate(url)
    world = build_world(district, city)
    register_departments(world, "street")
    report = world.job("street", session_factory(make_engine(url))).run_once()
    assert report.added > 0 and not report.failed, report
    yield world
    district.anvil.stop()
    city.anvil.stop()


def new_street_catalogs(world: TierWorld, count: int, tag: str) -> tuple[list[RelayItem], set[str]]:
    """``count`` new catalogs recorded in the street: their relay items for the district (chain order) and codes."""
    head = int(world.street.node.rpc.call("eth_blockNumber", []), 16)
    codes = add_catalogs(world, "street", count, tag)
    events = [ev for ev in logs_of(world.street) if ev.block_number > head]
    items = relay_items(events, DISTRICT_CHAIN_ID).items
    assert len(items) == count, items
    return items, codes


def gated_relay(world: TierWorld, gather_s: float = 0.5) -> tuple[RelaySender, GatedSender]:
    """A relay sender to the district from the street job's relayer, whose first transaction waits for a gate."""
    node: Node = world.district.node
    sender = GatedSender(node.rpc, funded(node.rpc, world.relayers["street"]), MemoryJournal(), DISTRICT_CHAIN_ID,
                         receipt_timeout_s=30, poll_s=0.002)
    parent = DirectoryClient(node.rpc, world.district.address, DISTRICT_CHAIN_ID, sender)
    return RelaySender(parent, max_items=50, gather_s=gather_s), sender


def gas_for(relay: RelaySender, batch: list[RelayItem]) -> int:
    """The gas budget of ``batch`` alone, checked by an ``eth_call`` at the district (as a relay job does)."""
    data = encode_call("relay", [[it.origin.as_tuple() for it in batch], [it.call for it in batch]])
    return relay.sender.budget_gas(relay.parent.address, data, len(batch))


def wait_queued(relay: RelaySender, count: int) -> None:
    """Wait (at most 30 s) until ``count`` batches wait for a transaction."""
    deadline = time.monotonic() + 30
    while relay.waiting() < count:
        assert time.monotonic() < deadline, f"only {relay.waiting()} of {count} batches queued"
        time.sleep(0.005)


def send_behind_a_gate(relay: RelaySender, gate: GatedSender, first: list[RelayItem],
                       others: list[list[RelayItem]]) -> list[SentBatch]:
    """Hand ``first`` in, hold its transaction until every batch of ``others`` waits, then let everything go."""
    with ThreadPoolExecutor(max_workers=1 + len(others)) as pool:
        futures: list[Future[SentBatch]] = [pool.submit(relay.send, first, gas_for(relay, first))]
        assert gate.entered.wait(30)
        futures += [pool.submit(relay.send, batch, 300_000 * len(batch) + 100_000) for batch in others]
        wait_queued(relay, len(others))
        gate.release.set()
        return [f.result(timeout=60) for f in futures]


def test_batches_waiting_behind_a_transaction_go_out_together(world: TierWorld) -> None:
    items, codes = new_street_catalogs(world, 6, "G")
    relay, gate = gated_relay(world)
    first, second, third = send_behind_a_gate(relay, gate, items[:2], [items[2:4], items[4:]])

    assert first.mined and second.mined and third.mined
    assert second.tx_hash == third.tx_hash != first.tx_hash
    assert (first.carried, second.carried, third.carried) == (2, 4, 4)
    assert (first.added, second.added, third.added) == (2, 2, 2)
    assert (relay.transactions, relay.batches) == (2, 3)
    receipt = world.district.node.rpc.call("eth_getTransactionReceipt", [second.tx_hash])
    assert second.gas_used + third.gas_used == int(receipt["gasUsed"], 16)
    # Every origin applied exactly once at the district, the last four by the one combined transaction.
    for it in items:
        assert world.district.client.view("originRelayed", it.origin.key) == (True,)
    relayed = [ev for ev in logs_of(world.district) if ev.event == "Relayed"
               and bytes(ev.args["originKey"]) in {it.origin.key for it in items}]
    assert [ev.tx_hash for ev in relayed] == [first.tx_hash] * 2 + [second.tx_hash] * 4
    counts = version_counts(world.district)
    assert {code: counts[("CatalogVersionRecorded", code, 1)] for code in codes} == dict.fromkeys(codes, 1)


def test_a_combined_transaction_that_reverts_is_reported_to_every_batch(world: TierWorld) -> None:
    items, _codes = new_street_catalogs(world, 4, "R")
    relay, gate = gated_relay(world)
    # The second and third batches carry the same origins: together the parent refuses them (RelayDuplicate).
    first, second, third = send_behind_a_gate(relay, gate, items[:2], [items[2:], items[2:]])

    assert first.mined and first.added == 2
    assert second.tx_hash == third.tx_hash and not second.mined and not third.mined
    assert second.added == third.added == 0
    receipt = world.district.node.rpc.call("eth_getTransactionReceipt", [second.tx_hash])
    assert int(receipt["status"], 16) == 0
    assert world.district.client.view("originRelayed", items[2].origin.key) == (False,)
    # Alone, the batch goes in.
    again = relay.send(items[2:], gas_for(relay, items[2:]))
    assert again.mined and again.added == 2 and again.carried == 2


def test_an_error_while_sending_reaches_every_batch_of_the_transaction(world: TierWorld) -> None:
    items, _codes = new_street_catalogs(world, 4, "E")
    relay, gate = gated_relay(world)
    gate.fail_second = RpcError("eth_sendRawTransaction", -32000, "node is shutting down")
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(relay.send, items[:2], gas_for(relay, items[:2]))
        assert gate.entered.wait(30)
        others = [pool.submit(relay.send, [it], 400_000) for it in items[2:]]
        wait_queued(relay, 2)
        gate.release.set()
        assert first.result(timeout=60).added == 2
        for other in others:
            with pytest.raises(RpcError, match="node is shutting down"):
                other.result(timeout=60)
    assert relay.transactions == 1
    assert world.district.client.view("originRelayed", items[2].origin.key) == (False,)
    # The sender is usable again: the next transaction carries what the failed one did not.
    again = relay.send(items[2:], gas_for(relay, items[2:]))
    assert again.mined and again.added == 2


def test_a_transaction_waits_until_every_job_in_a_pass_has_its_batch_in(world: TierWorld) -> None:
    items, _codes = new_street_catalogs(world, 4, "P")
    relay, gate = gated_relay(world, gather_s=120)  # far beyond the futures' timeouts: only the jobs release it
    gate.release.set()
    joined, go = threading.Event(), threading.Event()

    def late_job() -> SentBatch:
        with relay.participant():
            joined.set()
            assert go.wait(30)
            return relay.send(items[2:], gas_for(relay, items[2:]))

    def early_job() -> SentBatch:
        with relay.participant():
            return relay.send(items[:2], gas_for(relay, items[:2]))

    with ThreadPoolExecutor(max_workers=2) as pool:
        late = pool.submit(late_job)
        assert joined.wait(30)
        early = pool.submit(early_job)
        wait_queued(relay, 1)
        time.sleep(0.2)
        assert relay.waiting() == 1 and relay.transactions == 0  # the early batch waits for the late job
        go.set()
        a, b = early.result(timeout=30), late.result(timeout=30)
    assert a.tx_hash == b.tx_hash and a.carried == b.carried == 4 and (a.added, b.added) == (2, 2)
    assert (relay.transactions, relay.batches) == (1, 2)


def test_a_job_ending_its_pass_without_a_batch_lets_the_transaction_go(world: TierWorld) -> None:
    items, _codes = new_street_catalogs(world, 2, "Q")
    relay, gate = gated_relay(world, gather_s=120)
    gate.release.set()
    joined, leave = threading.Event(), threading.Event()

    def idle_job() -> None:
        with relay.participant():
            joined.set()
            assert leave.wait(30)

    def busy_job() -> SentBatch:
        with relay.participant():
            return relay.send(items, gas_for(relay, items))

    with ThreadPoolExecutor(max_workers=2) as pool:
        idle = pool.submit(idle_job)
        assert joined.wait(30)
        busy = pool.submit(busy_job)
        wait_queued(relay, 1)
        leave.set()
        idle.result(timeout=30)
        sent = busy.result(timeout=30)
    assert sent.mined and sent.added == 2 and sent.carried == 2
