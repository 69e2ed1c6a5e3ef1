"""The indexer against a real anvil: a deployed Directory with jurisdictions, departments, catalogs
and systems is indexed into SQLite; the index never passes head, honours confirmations, resumes from
its cursor, detects reorganisations, and — the key property — dropping the database and re-indexing
from block 0 reproduces every row."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from web3 import Web3

from chain.abi import ContractCodec
from chain.artifacts import load_artifact
from chain.logs import MAX_BATCH, BlockRangeError, LogFetcher
from chain.node import AnvilNode
from chain.rpc import Rpc, RpcUnavailable
from chain.sender import Receipt
from registry import queries
from registry.canonical import canonical_bytes
from registry.db import make_engine, migrate, session_factory
from registry.errors import ReorgDetected
from registry.indexer import FIRST_SPAN, Indexer
from registry.messages import Message, record_message, retire_message
from tests.integration.conftest import (
    CHAIN_ID,
    DEPARTMENTS,
    World,
    build_world,
    catalog_record,
    deadline,
    new_chain,
    next_nonce,
    sign,
    submit,
    system_record,
)

pytestmark = pytest.mark.integration

CODEC = ContractCodec(load_artifact("Directory").abi)


# ---------------------------------------------------------------------------------------- helpers


@dataclass
class Index:
    """A SQLite index file plus the pieces to build indexers over it."""

    url: str
    path: Path

    def sessions(self) -> Any:
        return session_factory(make_engine(self.url))

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        engine = make_engine(self.url)
        try:
            with session_factory(engine)() as s:
                return queries.dump_index(s)
        finally:
            engine.dispose()


def new_index(tmp_path: Path, name: str = "index.db") -> Index:
    path = tmp_path / name
    url = f"sqlite:///{path}"
    migrate(url)
    return Index(url, path)


def fetcher_for(rpc_url: str, address: str) -> LogFetcher:
    return LogFetcher(Web3(Web3.HTTPProvider(rpc_url)), address, rpc_url)


def indexer_for(index: Index, rpc_url: str, address: str, **kw: Any) -> Indexer:
    return Indexer(fetcher_for(rpc_url, address), CODEC, index.sessions(), CHAIN_ID, address, **kw)


def head(rpc: Rpc) -> int:
    return int(rpc.call("eth_blockNumber", []), 16)


def populate(world: World) -> dict[str, Receipt]:
    """Systems and catalogs: registers (two in one transaction), an update, a retire, a street's
    catalog, and a record whose bytes are not canonical JSON (accepted by the contract, invalid
    for the index)."""
    c, keys = world.client, world.keys
    xc, dx, yt = DEPARTMENTS["xc_civil"], DEPARTMENTS["dx_civil"], DEPARTMENTS["yuetan"]
    receipts: dict[str, Receipt] = {}
    sys1 = system_record(xc, "SXC0001")
    receipts["system"] = submit(c, keys["xc_civil"], record_message(sys1, "register", 1, next_nonce(), deadline()))
    cat1 = catalog_record(xc, "301001/XC0001", source_system="SXC0001")
    cat2 = catalog_record(dx, "301001/DX0001", name="低保对象名册", share_type="unconditional", share_conditions=None)
    receipts["pair"] = c.submit_and_wait(
        "Catalog",
        [
            sign(c, keys["xc_civil"], record_message(cat1, "register", 1, next_nonce(), deadline())),
            sign(c, keys["dx_civil"], record_message(cat2, "register", 1, next_nonce(), deadline())),
        ],
    )
    cat1b = catalog_record(xc, "301001/XC0001", source_system="SXC0001", name="困难家庭数据库（2022版）")
    receipts["update"] = submit(c, keys["xc_civil"], record_message(cat1b, "update", 2, next_nonce(), deadline()))
    receipts["retire"] = submit(
        c,
        keys["dx_civil"],
        retire_message("catalog", cat2.code, dx.jurisdiction, dx.code, 2, next_nonce(), deadline()),
    )
    cat3 = catalog_record(yt, "301001/YT0001", name="街道网格事件")
    receipts["street"] = submit(c, keys["yuetan"], record_message(cat3, "register", 1, next_nonce(), deadline()))
    good = record_message(catalog_record(yt, "301001/YT0002"), "register", 1, next_nonce(), deadline())
    bad = canonical_bytes(catalog_record(yt, "301001/YT0002")).replace(b'","', b'", "', 1)
    receipts["invalid"] = submit(c, keys["yuetan"], Message(good.primary, {**good.message, "digest": keccak(bad)}, bad))
    return receipts


@pytest.fixture
def populated(world: World) -> tuple[World, dict[str, Receipt]]:
    return world, populate(world)


@pytest.fixture
def own_node() -> Iterator[tuple[AnvilNode, Rpc]]:
    """A private anvil for tests that rewrite history (snapshot / revert)."""
    node = AnvilNode(chain_id=CHAIN_ID)
    node.start()
    rpc = Rpc(node.rpc_url)
    yield node, rpc
    rpc.close()
    node.stop()


# ---------------------------------------------------------------------------------------- fetcher


def test_fetcher_refuses_ranges_past_head(world: World, anvil: AnvilNode) -> None:
    with fetcher_for(anvil.rpc_url, world.chain.deployment.address) as fetcher:
        h = fetcher.head()
        with pytest.raises(BlockRangeError):
            fetcher.fetch(h, h + 1)
        with pytest.raises(BlockRangeError):
            fetcher.fetch(5, 4)
        logs = fetcher.fetch(world.chain.deployment.block_number, h)
        assert logs and all(lg["address"].lower() == world.chain.deployment.address.lower() for lg in logs)
        positions = [(int(lg["blockNumber"], 16), int(lg["logIndex"], 16)) for lg in logs]
        assert positions == sorted(positions)


def test_block_timestamps_batches_over_chunks(anvil: AnvilNode, rpc: Rpc, world: World) -> None:
    if head(rpc) < MAX_BATCH + 20:
        rpc.call("anvil_mine", [hex(MAX_BATCH + 20)])
    fetcher = LogFetcher.from_rpc(rpc, world.chain.deployment.address)
    numbers = [*range(0, MAX_BATCH + 10), 3, 3]
    stamps = fetcher.block_timestamps(numbers)
    assert sorted(stamps) == list(range(0, MAX_BATCH + 10))
    for n in (0, 1, MAX_BATCH - 1, MAX_BATCH, MAX_BATCH + 9):
        assert stamps[n][0] == fetcher.block_hash(n)
    assert all(stamps[n][1] <= stamps[n + 1][1] for n in range(MAX_BATCH + 9))
    assert fetcher.block_timestamps([]) == {}


# ---------------------------------------------------------------------------------------- indexing


def test_indexes_a_directory(populated: tuple[World, dict[str, Receipt]], anvil: AnvilNode, tmp_path: Path) -> None:
    world, receipts = populated
    address = world.chain.deployment.address
    index = new_index(tmp_path)
    indexer = indexer_for(index, anvil.rpc_url, address, start_block=world.chain.deployment.block_number)
    applied = indexer.run_once()
    assert applied > 0
    assert indexer.cursor() == head(world.chain.rpc)
    assert indexer.run_once() == 0  # caught up

    with index.sessions()() as s:
        assert queries.counts(s) == {
            "jurisdictions": 4,
            "departments": 4,
            "systems": 1,
            "catalogs": 4,
            "events": applied,
        }
        tiers = {j.code: j.tier for j in queries.list_jurisdictions(s)}
        assert tiers == {"110000": "city", "110102": "district", "110115": "district", "110102/月坛街道": "street"}

        cat1 = queries.get_catalog(s, "301001/XC0001")
        assert cat1 is not None
        assert (cat1.catalog.name, cat1.catalog.latest_version, cat1.catalog.status) == (
            "困难家庭数据库（2022版）",
            2,
            "active",
        )
        assert cat1.catalog.source_system == "SXC0001"
        assert [v.tx_hash for v in cat1.versions] == [receipts["pair"].tx_hash, receipts["update"].tx_hash]
        assert all(v.valid for v in cat1.versions)
        assert cat1.versions[0].signer == world.keys["xc_civil"].address
        assert cat1.versions[0].block_hash == receipts["pair"].block_hash.lower()

        cat2 = queries.get_catalog(s, "301001/DX0001")
        assert cat2 is not None and cat2.catalog.status == "retired"
        assert [v.action for v in cat2.versions] == ["register", "retire"]

        street, _ = queries.list_catalogs(s, tier="street")
        assert {r.code for r in street} == {"301001/YT0001", "301001/YT0002"}
        invalid = queries.get_catalog(s, "301001/YT0002")
        assert invalid is not None and not invalid.versions[0].valid
        assert "canonical" in (invalid.versions[0].invalid_reason or "")
        assert invalid.catalog.record is None and invalid.catalog.latest_version == 1

        system = queries.get_system(s, "SXC0001")
        assert system is not None and system.system.status == "online" and system.system.lifecycle == "active"

        cur = queries.cursor(s, CHAIN_ID, address)
        assert cur is not None and cur.block_hash == fetcher_for(anvil.rpc_url, address).block_hash(cur.block_number)

        dump = queries.dump_index(s)
    event_blocks = {r[2] for r in dump["chain_events"]}
    assert {r[0] for r in dump["blocks"]} == event_blocks  # only blocks holding logs


def test_confirmations_are_respected(
    populated: tuple[World, dict[str, Receipt]], anvil: AnvilNode, tmp_path: Path
) -> None:
    world, _ = populated
    rpc = world.chain.rpc
    index = new_index(tmp_path)
    indexer = indexer_for(index, anvil.rpc_url, world.chain.deployment.address, confirmations=3)
    h = head(rpc)
    indexer.run_once()
    assert indexer.cursor() == h - 3
    with index.sessions()() as s:
        assert queries.get_catalog(s, "301001/YT0002") is None  # its block has < 3 confirmations
    rpc.call("anvil_mine", [hex(3)])
    indexer.run_once()
    assert indexer.cursor() == h
    with index.sessions()() as s:
        assert queries.get_catalog(s, "301001/YT0002") is not None


def test_never_passes_head_and_resumes_after_restart(world: World, anvil: AnvilNode, tmp_path: Path) -> None:
    address = world.chain.deployment.address
    index = new_index(tmp_path)
    first = indexer_for(index, anvil.rpc_url, address, max_range=2)
    first.run_once()
    assert first.cursor() == head(world.chain.rpc)
    before = index.dump()

    receipts = populate(world)  # more blocks after the cursor
    second = indexer_for(index, anvil.rpc_url, address, max_range=2)  # a restart: new instance, same DB
    assert second.cursor() == first.cursor()
    applied = second.run_once()
    assert second.cursor() == head(world.chain.rpc) == receipts["invalid"].block_number
    after = index.dump()
    assert set(before["chain_events"]) <= set(after["chain_events"])
    assert applied == len(after["chain_events"]) - len(before["chain_events"])


def test_reindex_from_scratch_reproduces_identical_rows(world: World, anvil: AnvilNode, tmp_path: Path) -> None:
    """Index incrementally (small ranges, interleaved with submissions), dump every table, drop the
    database, re-index from block 0 in large ranges and compare."""
    address = world.chain.deployment.address
    index = new_index(tmp_path)
    live = indexer_for(index, anvil.rpc_url, address, max_range=3)
    live.run_once()
    populate_steps = populate(world)
    live.run_once()
    xc = DEPARTMENTS["xc_civil"]
    submit(
        world.client,
        world.keys["xc_civil"],
        record_message(system_record(xc, "SXC0001", status="offline"), "update", 2, next_nonce(), deadline()),
    )
    live.run_once()
    first = index.dump()
    assert live.cursor() == head(world.chain.rpc)
    assert len(first["catalog_versions"]) == 6 and len(first["system_versions"]) == 2
    assert populate_steps["invalid"].block_number <= live.cursor()  # type: ignore[operator]

    index.path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(index.path) + suffix).unlink(missing_ok=True)
    migrate(index.url)
    assert all(not rows for rows in index.dump().values())
    rebuilt = indexer_for(index, anvil.rpc_url, address, max_range=2000, start_block=0)
    rebuilt.run_once()
    second = index.dump()
    assert second == first


def test_reorg_is_detected_and_nothing_is_written(own_node: tuple[AnvilNode, Rpc], tmp_path: Path) -> None:
    node, rpc = own_node
    chain = new_chain(rpc)
    world = build_world(chain)
    snapshot = rpc.call("evm_snapshot", [])
    xc = DEPARTMENTS["xc_civil"]
    receipt = submit(
        world.client,
        world.keys["xc_civil"],
        record_message(catalog_record(xc), "register", 1, next_nonce(), deadline()),
    )
    index = new_index(tmp_path)
    indexer = indexer_for(index, node.rpc_url, chain.deployment.address)
    indexer.run_once()
    assert indexer.cursor() == receipt.block_number
    before = index.dump()

    rpc.call("evm_revert", [snapshot])  # the catalog's block is gone ...
    with pytest.raises(ReorgDetected) as info:
        indexer.run_once()
    assert info.value.block_number == receipt.block_number and info.value.got_hash.startswith("none")
    rpc.call("anvil_mine", [hex(2)])  # ... and a different block takes its height
    with pytest.raises(ReorgDetected) as info:
        indexer.run_once()
    assert info.value.block_number == receipt.block_number
    assert info.value.expected_hash == receipt.block_hash.lower() != info.value.got_hash
    assert index.dump() == before

    stop = threading.Event()
    with pytest.raises(ReorgDetected):  # the background loop stops loudly on a reorg
        indexer.run(stop, poll_s=0.01)
    assert isinstance(indexer.last_error, ReorgDetected)


# ---------------------------------------------------------------------------------------- background


def test_background_thread_follows_the_chain(world: World, anvil: AnvilNode, tmp_path: Path) -> None:
    index = new_index(tmp_path)
    indexer = indexer_for(index, anvil.rpc_url, world.chain.deployment.address)
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run, args=(stop, 0.02), daemon=True)
    thread.start()
    try:
        receipts = populate(world)
        deadline_s = time.monotonic() + 20
        while (indexer.cursor() or -1) < receipts["invalid"].block_number and time.monotonic() < deadline_s:
            time.sleep(0.05)
        assert (indexer.cursor() or -1) >= receipts["invalid"].block_number
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive() and indexer.last_error is None
    with index.sessions()() as s:
        assert queries.counts(s)["catalogs"] == 4


def test_background_thread_retries_rpc_errors(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    indexer = Indexer(LogFetcher(None, address, dead, timeout_s=1), CODEC, index.sessions(), CHAIN_ID, address)
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run, args=(stop, 0.01), daemon=True)
    thread.start()
    deadline_s = time.monotonic() + 10
    while indexer.last_error is None and time.monotonic() < deadline_s:
        time.sleep(0.01)
    assert indexer.last_error is not None  # recorded, logged, retried — not dead
    time.sleep(0.1)
    assert thread.is_alive()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert indexer.cursor() is None


@pytest.mark.parametrize("max_range", [2000, 2])
def test_a_cursor_moved_by_another_writer_is_read_again(
    world: World, anvil: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture, max_range: int
) -> None:
    """The indexer keeps its cursor in memory between ranges, but moves the stored one only from where it
    read it: a second writer that went further is noticed, and its ranges are not committed twice. With small
    ranges the refused range has the next one being read ahead, which is dropped."""
    address = world.chain.deployment.address
    index = new_index(tmp_path)
    first = indexer_for(index, anvil.rpc_url, address, max_range=max_range)
    first.run_once()
    before, committed = first.cursor(), first.ranges_indexed
    populate(world)
    second = indexer_for(index, anvil.rpc_url, address)  # another writer of the same index
    second.run_once()
    assert second.cursor() == head(world.chain.rpc) > (before or 0) + 2  # first's next range is not the last
    rows = index.dump()

    with caplog.at_level("WARNING", logger="registry.indexer"):
        assert first.run_once() == 0
    assert any("another writer" in r.getMessage() for r in caplog.records)
    assert first.ranges_indexed == committed  # none more: it went on from the cursor the other one left
    assert first.cursor() == head(world.chain.rpc)
    assert index.dump() == rows
    assert not _reading_ahead()


# ---------------------------------------------------------------------------------------- read-ahead


def _reading_ahead() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "indexer-read-ahead" and t.is_alive()]


def _indexed_in_one_go(anvil: AnvilNode, address: str, tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of a fresh index of ``address`` built by one indexer in one run_once, its ranges the default."""
    whole = new_index(tmp_path, "whole.db")
    indexer_for(whole, anvil.rpc_url, address, max_range=2000).run_once()
    return whole.dump()


def _watch_reads(indexer: Indexer, fail_on: int | None = None) -> list[tuple[str, int, int, int]]:
    """Record (thread name, from block, to block, logs) of each log read of ``indexer``; its ``fail_on``-th read
    (counted from 1) fails as a node dropping the connection would instead (logs -1)."""
    seen: list[tuple[str, int, int, int]] = []
    real = indexer.fetcher.fetch

    def fetch(from_block: int, to_block: int) -> list[dict[str, Any]]:
        if len(seen) + 1 == fail_on:
            seen.append((threading.current_thread().name, from_block, to_block, -1))
            raise RpcUnavailable("http://anvil", "eth_getLogs", "connection reset by peer")
        logs = real(from_block, to_block)
        seen.append((threading.current_thread().name, from_block, to_block, len(logs)))
        return logs

    indexer.fetcher.fetch = fetch  # type: ignore[method-assign]
    return seen


def test_ranges_read_ahead_give_the_rows_of_one_range(
    populated: tuple[World, dict[str, Receipt]], anvil: AnvilNode, tmp_path: Path
) -> None:
    """One block per range: the first range is read by the caller, every later one in a read-ahead thread while
    the range before it is written, and the rows are those of indexing everything in one go."""
    world, _ = populated
    address = world.chain.deployment.address
    small = new_index(tmp_path, "small.db")
    indexer = indexer_for(small, anvil.rpc_url, address, max_range=1)
    reads = _watch_reads(indexer)
    indexer.run_once()
    end = head(world.chain.rpc)
    assert [(a, b) for _, a, b, _ in reads] == [(n, n) for n in range(end + 1)]  # each block once, in order
    assert reads[0][0] == threading.current_thread().name
    assert {name for name, _, _, _ in reads[1:]} == {"indexer-read-ahead"}
    assert indexer.ranges_indexed == end + 1 and not _reading_ahead()

    assert small.dump() == _indexed_in_one_go(anvil, address, tmp_path)


def test_ranges_are_sized_by_the_logs_they_hold(
    populated: tuple[World, dict[str, Receipt]], anvil: AnvilNode, tmp_path: Path
) -> None:
    """With max_logs 3: the first range reads FIRST_SPAN blocks; a range that held more than 3 logs is followed by
    one of as many blocks as held 3 at its density (at least one), any other by at most twice its blocks; the
    ranges follow each other without gap or overlap, and the rows are those of indexing everything in one go."""
    world, _ = populated
    address = world.chain.deployment.address
    index = new_index(tmp_path)
    indexer = indexer_for(index, anvil.rpc_url, address, max_logs=3)
    reads = _watch_reads(indexer)
    indexer.run_once()
    ranges = [(start, end, logs) for _, start, end, logs in reads]
    assert ranges[0][:2] == (0, min(head(world.chain.rpc), FIRST_SPAN - 1))
    assert any(logs > 3 for _, _, logs in ranges)  # the world's blocks hold more than 3 logs somewhere
    for (start, end, logs), (after, last, _) in itertools.pairwise(ranges):
        blocks, next_blocks = end - start + 1, last - after + 1
        assert next_blocks <= (max(1, blocks * 3 // logs) if logs > 3 else 2 * blocks)
    assert [start for start, _, _ in ranges] == [0] + [end + 1 for _, end, _ in ranges[:-1]]  # no gap, no overlap
    assert index.dump() == _indexed_in_one_go(anvil, address, tmp_path)


def _two_blocks_a_range(
    populated: tuple[World, dict[str, Receipt]], anvil: AnvilNode, tmp_path: Path
) -> tuple[World, str, Index, Indexer]:
    """(world, directory address, an empty index, its indexer reading two blocks a range)."""
    world, _ = populated
    address = world.chain.deployment.address
    index = new_index(tmp_path)
    return world, address, index, indexer_for(index, anvil.rpc_url, address, max_range=2)


def test_a_failed_write_drops_the_range_read_ahead(
    populated: tuple[World, dict[str, Receipt]], anvil: AnvilNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails while the next range is read ahead: run_once raises the write's error after the read-ahead
    ended (no thread left using the fetcher), the cursor stays at the last range committed, and the next run goes
    on from it to the rows of an index built in one go."""
    import registry.indexer

    world, address, index, indexer = _two_blocks_a_range(populated, anvil, tmp_path)
    real = registry.indexer.apply_events
    writes: list[int] = []

    def apply_events(session: Any, items: Any, *, chain_id: int) -> int:
        writes.append(len(writes))
        if len(writes) == 3:
            raise OSError("disk I/O error")
        return real(session, items, chain_id=chain_id)

    monkeypatch.setattr(registry.indexer, "apply_events", apply_events)
    with pytest.raises(OSError, match="disk I/O error"):
        indexer.run_once()
    assert not _reading_ahead()
    stopped_at = indexer.cursor()
    assert stopped_at is not None and 3 <= stopped_at < head(world.chain.rpc)
    with index.sessions()() as s:  # nothing of the failed range: no event past the cursor
        assert all(row[3] <= stopped_at for row in queries.dump_index(s)["chain_events"])

    monkeypatch.setattr(registry.indexer, "apply_events", real)
    indexer.run_once()
    assert indexer.cursor() == head(world.chain.rpc)
    assert index.dump() == _indexed_in_one_go(anvil, address, tmp_path)


def test_a_failed_read_ahead_is_raised_after_the_range_before_it_is_committed(
    populated: tuple[World, dict[str, Receipt]], anvil: AnvilNode, tmp_path: Path
) -> None:
    """The node failing a range read ahead: the range being written when it failed is committed, then run_once
    raises the node's error; the next run reads that range again and goes on."""
    world, address, index, indexer = _two_blocks_a_range(populated, anvil, tmp_path)
    reads = _watch_reads(indexer, fail_on=3)  # the third range, read ahead while the second is written
    with pytest.raises(RpcUnavailable, match="connection reset"):
        indexer.run_once()
    assert [start for _, start, _, _ in reads] == [0, 2, 4] and reads[2][3] == -1
    assert indexer.cursor() == 3 and indexer.ranges_indexed == 2 and not _reading_ahead()
    indexer.run_once()
    assert reads[3][1] == 4 and indexer.cursor() == head(world.chain.rpc)
    assert index.dump() == _indexed_in_one_go(anvil, address, tmp_path)

