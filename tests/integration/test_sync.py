"""The municipal chain integration job across two chains: street → district → city, exactly once, with the
chain of custody, through restarts, kills and reorganisations (see tests/integration/tiers.py for the layout)."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from chain.directory import KIND_CATALOG
from chain.relay import Origin, relay_item
from registry.db import make_engine, migrate, session_factory
from registry.sync import RelayConfigError
from tests.integration.tiers import (
    CITY_CHAIN_ID,
    DISTRICT_CHAIN_ID,
    YUETAN,
    Node,
    TierWorld,
    attach_street_to_city,
    build_world,
    custody,
    local_activity,
    logs_of,
    record_states,
    register_departments,
    relayed_after,
    start_node,
    storage_root,
    version_counts,
    version_events,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Node, Node]]:
    """The district chain and the city chain, each with a DirectoryFactory."""
    district, city = start_node(DISTRICT_CHAIN_ID), start_node(CITY_CHAIN_ID)
    yield district, city
    district.anvil.stop()
    city.anvil.stop()


@pytest.fixture(scope="module")
def reorg_nodes() -> Iterator[tuple[Node, Node]]:
    """:func:`nodes` with state roots, for the tests that reorganise a chain (``anvil_reorg``): anvil 1.7 forked on a
    genesis node — the default, without state roots — drops the replaced blocks but keeps their transactions' effects
    on the state (a transfer's balance stays, its sender's nonce goes back), so only anvil alone reorganises right."""
    district, city = start_node(DISTRICT_CHAIN_ID, state_roots=True), start_node(CITY_CHAIN_ID, state_roots=True)
    yield district, city
    district.anvil.stop()
    city.anvil.stop()


def new_sessions(folder: Path) -> sessionmaker[Session]:
    """A migrated SQLite database of relay checkpoints under ``folder``."""
    url = f"sqlite:///{folder / 'relay.db'}"
    migrate(url)
    return session_factory(make_engine(url))


def populated_world(nodes: tuple[Node, Node], sessions: sessionmaker[Session]) -> TierWorld:
    """A world whose district and street directories hold departments, records and sharing requests."""
    world = build_world(*nodes)
    attach_street_to_city(world, sessions)
    for tier in ("district", "street"):
        register_departments(world, tier)
        local_activity(world, tier)
    return world


@dataclass
class Synced:
    """The module's world after one street → district and one district → city pass: the reports by child (and
    the street pass's ``progress`` calls), and each pass's wall time (seconds)."""

    world: TierWorld
    sessions: sessionmaker[Session]
    reports: dict[str, Any]
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def synced(nodes: tuple[Node, Node], tmp_path_factory: pytest.TempPathFactory) -> Synced:
    sessions = new_sessions(tmp_path_factory.mktemp("synced"))
    world = populated_world(nodes, sessions)
    reports: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    progress: list[tuple[int, int]] = []
    for child in ("street", "district"):
        started = time.monotonic()
        reports[child] = world.job(child, sessions, max_range=7).run_once(
            progress=(lambda done, total: progress.append((done, total))) if child == "street" else None
        )
        seconds[child] = time.monotonic() - started
    reports["progress"] = progress
    return Synced(world, sessions, reports, seconds)


# ---------------------------------------------------------------------------------------- one sync


def test_sync_reports_no_failure(synced: Synced) -> None:
    street, district = synced.reports["street"], synced.reports["district"]
    assert not street.failed and not district.failed, (street.failed, district.failed)
    assert street.added > 0 and district.added > street.added  # the city gets the street's records too
    assert street.lag_blocks == 0 and district.lag_blocks == 0
    progress = synced.reports["progress"]  # street pass in ranges of 7 blocks
    assert len(progress) >= 3 and progress[-1][0] == progress[-1][1]
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    per_record = district.gas_used / district.added
    print(f"\nsync: street→district {street.added} in {synced.seconds['street']:.2f} s, district→city "
          f"{district.added} in {synced.seconds['district']:.2f} s, {len(district.transactions)} tx, "
          f"{per_record:,.0f} gas per relayed submission")


def test_city_holds_every_record_once(synced: Synced) -> None:
    world = synced.world
    for tier in ("street", "district"):
        codes = world.record_codes[tier]
        local = record_states(world.tiers[tier], codes)
        assert all(state[1] > 0 for state in local.values())
        assert record_states(world.city, codes) == local, tier
        if tier == "street":
            assert record_states(world.district, codes) == local
    city_versions = version_counts(world.city)
    street, district = version_counts(world.street), version_counts(world.district)
    assert set(street.values()) == set(district.values()) == set(city_versions.values()) == {1}
    assert street.keys() < district.keys()  # the district holds its own versions and its street's
    assert city_versions == district  # every version once, nothing else


def test_city_holds_every_sharing_request_in_its_state(synced: Synced) -> None:
    world = synced.world
    for tier in ("street", "district"):
        for rid in world.requests[tier]:
            local = world.tiers[tier].client.sharing(rid)
            assert world.city.client.sharing(rid) == local, (tier, rid.hex())
    statuses = Counter(world.city.client.sharing(rid)["status"] for ids in world.requests.values() for rid in ids)
    assert statuses == {5: 2, 3: 2, 2: 2, 4: 2}  # revoked, rejected, granted (unconditional), refused


def test_city_holds_departments_keys_and_the_street(synced: Synced) -> None:
    from registry.canonical import code_id
    from tests.integration.tiers import TIER_DEPARTMENTS

    world = synced.world
    city = world.city.client
    assert city.jurisdiction(code_id(YUETAN.code))[1] == 3
    for tier, depts in TIER_DEPARTMENTS.items():
        for name, dept in depts.items():
            assert city.department_jurisdiction(code_id(dept.code)) == code_id(dept.jurisdiction), (tier, name)
            assert city.account_department(world.keys[name].address) == code_id(dept.code)
    added = [ev for ev in logs_of(world.city) if ev.event == "JurisdictionAdded"]
    assert Counter(ev.args["code"] for ev in added) == {"110000": 1, "110102": 1, YUETAN.code: 1}


def test_chain_of_custody_leads_to_the_origin_transaction(synced: Synced) -> None:
    world = synced.world
    hops: Counter[tuple[str, ...]] = Counter()
    for ev in version_events(world.city):
        path = tuple(hop for hop, _origin in custody(world, ev))
        hops[path] += 1
    street_versions = len(version_events(world.street))
    district_versions = len(version_events(world.district)) - street_versions
    assert hops == {("city", "district", "street"): street_versions, ("city",): district_versions}


def test_second_pass_relays_nothing(synced: Synced) -> None:
    world = synced.world
    roots = {name: storage_root(t) for name, t in world.tiers.items()}
    for child in ("street", "district"):
        job = world.job(child, synced.sessions)
        nonce_before = job.sender.rpc.call("eth_getTransactionCount", [job.sender.address, "latest"])
        report = job.run_once()
        assert report.added == 0 and not report.failed and not report.transactions, report
        assert report.skipped == 0  # the checkpoint is past everything: nothing was even re-read
        assert job.sender.rpc.call("eth_getTransactionCount", [job.sender.address, "latest"]) == nonce_before
    # Without its checkpoint (a lost database), a pass re-reads everything and skips it all.
    for child in ("street", "district"):
        fresh = new_sessions(Path(tempfile.mkdtemp()))
        report = world.job(child, fresh).run_once()
        assert report.added == 0 and not report.failed and not report.transactions
        parent = world.tiers["district" if child == "street" else "city"]
        assert report.skipped == sum(1 for ev in logs_of(parent) if ev.event == "Relayed")
    assert {name: storage_root(t) for name, t in world.tiers.items()} == roots


def test_wrong_relayer_is_refused_before_reading(synced: Synced) -> None:
    world = synced.world
    with pytest.raises(RelayConfigError, match="authorises"):
        world.job("district", synced.sessions, relayer="street").run_once()


def _directory_call(data: bytes) -> bool:
    from chain.relay import decode_call

    try:
        decode_call(data)
    except ValueError:
        return False
    return True


def test_relay_item_rebuilds_the_exact_call(synced: Synced) -> None:
    """Each relayed call carries byte for byte the submission the child's directory received (read back from the
    transaction input), whether rebuilt from the event or from that input."""
    from chain.relay import decode_call

    world = synced.world
    for name in ("street", "district"):
        tier = world.tiers[name]
        types = tier.client.types
        rebuilt = 0
        for ev in logs_of(tier):
            raw = tier.node.rpc.call("eth_getTransactionByHash", [ev.tx_hash])
            tx_input = bytes.fromhex(raw["input"][2:])
            if not _directory_call(tx_input):
                assert relay_item(ev, DISTRICT_CHAIN_ID) is None, ev.event  # the factory's set-up events
                continue
            if decode_call(tx_input)[0] == "relay":
                continue  # an effect of a relay in this directory: its item comes from the Relayed event
            item = relay_item(ev, DISTRICT_CHAIN_ID, tx_input=tx_input, types=types)
            if item is None:
                continue
            assert item.origin == Origin.of_log(ev, DISTRICT_CHAIN_ID) and item.via is None
            method, (batch,) = decode_call(tx_input)
            assert item.method == method
            assert decode_call(item.call)[1][0][0] in [tuple(s) for s in batch], item.describe()
            if len(batch) == 1:
                assert item.call == tx_input, item.describe()
            rebuilt += 1
        assert rebuilt >= 20
    relayed = [ev for ev in logs_of(world.district) if ev.event == "Relayed"]
    for ev in relayed:
        raw = world.district.node.rpc.call("eth_getTransactionByHash", [ev.tx_hash])
        item = relay_item(ev, DISTRICT_CHAIN_ID, tx_input=bytes.fromhex(raw["input"][2:]))
        assert item is not None and item.origin == Origin.of_relayed(ev)
        assert item.origin.directory == world.street.address and item.via == Origin.of_log(ev, DISTRICT_CHAIN_ID)


# ---------------------------------------------------------------------------------------- what the parent refuses


def test_altered_or_misattributed_relays_are_refused(synced: Synced) -> None:
    """The parent verifies each signature itself: the relayer can alter neither content nor origin, and only the
    relayer registered for a child may relay it. A street submission presented with the district's ``Relayed``
    log as its origin is refused too — its signature is bound to the street's EIP-712 domain, which is why the
    district → city job relays street submissions under their street origin."""
    from chain.errors import ContractRevert
    from chain.relay import encode_call

    world = synced.world
    street_catalog = next(ev for ev in logs_of(world.street) if ev.event == "CatalogVersionRecorded")
    raw = world.street.node.rpc.call("eth_getTransactionByHash", [street_catalog.tx_hash])
    item = relay_item(street_catalog, DISTRICT_CHAIN_ID, tx_input=bytes.fromhex(raw["input"][2:]))
    assert item is not None
    job = world.job("district", synced.sessions)
    fresh_tx = Origin(item.origin.chain_id, item.origin.directory, b"\x11" * 32, item.origin.block_number,
                      item.origin.block_hash, item.origin.log_index)  # a new origin key: not a duplicate

    def refusal(origin: Origin, call: bytes, sender: Any = None) -> str:
        sender = sender or job.sender
        data = encode_call("relay", [[origin.as_tuple()], [call]])
        try:
            sender.estimate_gas(world.city.address, data)
        except Exception as exc:
            decoded = world.city.client.codec.decode_revert(exc.data)  # type: ignore[attr-defined]
            assert isinstance(decoded, ContractRevert), decoded
            return decoded.name
        raise AssertionError("the parent accepted it")

    record_at = item.call.find(bytes(street_catalog.args["record"]))
    altered = bytearray(item.call)
    altered[record_at + 2] ^= 0x01  # one byte of the canonical JSON
    assert refusal(fresh_tx, bytes(altered)) == "DepartmentAccountNotBound"  # recovers another signer
    assert refusal(item.origin, item.call) == "RelayDuplicate"
    as_district = Origin.of_log(relayed_after(world.district, street_catalog_at_district(world, street_catalog)),
                                DISTRICT_CHAIN_ID)
    assert refusal(as_district, item.call) == "DepartmentAccountNotBound"  # district domain: another signer
    other_chain = Origin(CITY_CHAIN_ID, *fresh_tx.as_tuple()[1:])
    assert refusal(other_chain, item.call) == "RelayNotAuthorised"
    street_job = world.job("street", synced.sessions)  # the street → district key, not registered at the city
    from tests.integration.tiers import funded, sender_for

    stranger = sender_for(world.city.node.rpc, funded(world.city.node.rpc, street_job.sender.account), CITY_CHAIN_ID)
    assert refusal(fresh_tx, item.call, stranger) == "RelayNotAuthorised"


def street_catalog_at_district(world: TierWorld, street_event: Any) -> Any:
    """The district's copy of a street version event (same signature), an effect of a district relay."""
    return next(ev for ev in logs_of(world.district)
                if ev.event == street_event.event and ev.args["signature"] == street_event.args["signature"])


# ---------------------------------------------------------------------------------------- refusals, kills, reorgs


def test_refused_item_is_reported_and_the_others_go_in(nodes: tuple[Node, Node], tmp_path: Path) -> None:
    """A catalog whose department binding the job never relayed (it predates the job's start block) is refused
    with its origin and reason; the records after it go in; once the history is backfilled, the next pass
    retries it and it goes in too."""
    from eth_account import Account

    from registry.canonical import code_id
    from registry.messages import account_message, department_message, record_message
    from registry.models import Department
    from tests.integration.conftest import catalog_record, deadline, next_nonce

    sessions = new_sessions(tmp_path)
    world = build_world(*nodes)
    register_departments(world, "street")  # 月坛街道办事处 and its key: before the job's start block
    start = int(world.street.node.rpc.call("eth_blockNumber", []), 16) + 1
    late = Department(code="DYT0009", name="月坛街道城市管理办公室", jurisdiction=YUETAN.code)
    late_key = Account.create()
    world.submit("street", world.bureau, department_message(late, next_nonce(), deadline()))
    world.submit("street", world.bureau, account_message("department", late.code, late_key.address, True,
                                                         next_nonce(), deadline()))
    early = world.submit("street", world.keys["yuetan"],
                         record_message(catalog_record(world.department("yuetan"), "301001/YTF01"), "register", 1,
                                        next_nonce(), deadline()))
    world.submit("street", late_key, record_message(catalog_record(late, "301001/YTF02"), "register", 1,
                                                    next_nonce(), deadline()))

    job = world.job("street", sessions, start_block=start)
    report = job.run_once()
    assert report.added == 3  # the late department, its key, its catalog
    assert len(report.failed) == 1, report.failed
    failed = report.failed[0]
    assert failed.origin.tx_hash.hex() == early.tx_hash[2:] and failed.origin.directory == world.street.address
    assert failed.reason.startswith("DepartmentAccountNotBound(") and world.keys["yuetan"].address.lower() in \
        failed.reason.lower()
    assert "301001/YTF01" in failed.what
    assert world.district.client.record_state(KIND_CATALOG, "301001/YTF02")[1:] == (1, 1)
    assert world.district.client.record_state(KIND_CATALOG, "301001/YTF01")[1] == 0
    assert [f.origin for f in job.failures()] == [failed.origin]  # kept in relay_failures

    again = job.run_once()  # still refused, reported again, nothing else happens
    assert [(f.origin, f.attempts) for f in again.failed] == [(failed.origin, 2)] and again.added == 0

    backfill = job.backfill(0, start - 1)  # the street's history: administrator, departments, keys
    assert not backfill.failed and backfill.added == 5  # the street administrator, 2 departments, 2 keys
    final = job.run_once()
    assert final.retried == 1 and final.added == 1 and not final.failed and not job.failures()
    assert world.district.client.record_state(KIND_CATALOG, "301001/YTF01")[0] == code_id("DYT0001")


def _head(rpc: Any) -> int:
    return int(rpc.call("eth_blockNumber", []), 16)


def test_reorg_shallower_than_confirmations_changes_nothing(reorg_nodes: tuple[Node, Node], tmp_path: Path) -> None:
    """With 3 confirmations, a catalog in the last 2 blocks is not relayed; a 2-block reorganisation that takes
    it away leaves the parent untouched and the checkpoint valid; the parent later holds what the child's
    chain finally holds."""
    from tests.integration.tiers import add_catalogs

    sessions = new_sessions(tmp_path)
    world = build_world(*reorg_nodes)
    register_departments(world, "district")
    rpc = world.district.node.rpc
    job = world.job("district", sessions, confirmations=3)
    rpc.call("anvil_mine", ["0x3", "0xa"])  # 3 blocks, 10 s apart
    first = job.run_once()
    assert not first.failed and first.added > 0 and first.lag_blocks == 3 and first.lag_seconds >= 30
    root, checkpoint = storage_root(world.city), job.checkpoint()

    (code,) = add_catalogs(world, "district", 1, "R")
    rpc.call("anvil_mine", ["0x1"])  # the catalog sits 2 blocks deep: unconfirmed
    assert world.district.client.record_state(KIND_CATALOG, code)[1] == 1
    pending = job.run_once()
    assert pending.added == 0 and storage_root(world.city) == root

    rpc.call("anvil_reorg", [2, []])  # the last 2 blocks replaced: the catalog's block is gone
    after = job.run_once()
    assert after.added == 0 and not after.failed and storage_root(world.city) == root
    assert job.checkpoint() is not None and job.checkpoint()[0] >= checkpoint[0]  # type: ignore[index]

    rpc.call("anvil_mine", ["0x4"])
    final = job.run_once()
    assert not final.failed
    child_state = world.district.client.record_state(KIND_CATALOG, code)
    assert world.city.client.record_state(KIND_CATALOG, code) == child_state  # whatever the child finally holds
    print(f"\nafter the shallow reorg the child's catalog state is {child_state[1:]}; relayed {final.added}")


def test_reorg_deeper_than_confirmations_is_reported(reorg_nodes: tuple[Node, Node], tmp_path: Path) -> None:
    """A reorganisation that replaces the checkpoint's block raises ReorgDetected and applies nothing."""
    from registry.errors import ReorgDetected
    from tests.integration.tiers import add_catalogs

    sessions = new_sessions(tmp_path)
    world = build_world(*reorg_nodes)
    register_departments(world, "district")
    rpc = world.district.node.rpc
    job = world.job("district", sessions, confirmations=2)
    add_catalogs(world, "district", 2, "D")
    rpc.call("anvil_mine", ["0x2"])
    assert not job.run_once().failed
    checkpoint = job.checkpoint()
    assert checkpoint is not None and checkpoint[0] == _head(rpc) - 2
    add_catalogs(world, "district", 1, "E")  # new, confirmed below: would be relayed by the next pass
    rpc.call("anvil_mine", ["0x3"])
    root = storage_root(world.city)

    rpc.call("anvil_reorg", [_head(rpc) - checkpoint[0] + 1, []])  # down to and including the checkpoint block
    with pytest.raises(ReorgDetected) as caught:
        job.run_once()
    assert caught.value.block_number == checkpoint[0] and caught.value.expected_hash == checkpoint[1]
    assert storage_root(world.city) == root and job.checkpoint() == checkpoint
    with pytest.raises(ReorgDetected):  # reported again, never silently applied
        job.run_once()
    assert storage_root(world.city) == root
    head, lag_blocks, _lag_s = job.lag()
    assert lag_blocks == head - checkpoint[0]


KILLS = 20


def test_killed_at_random_points_every_record_ends_once_at_every_parent(
    nodes: tuple[Node, Node], tmp_path: Path
) -> None:
    """A relay process (street → district, then district → city; batches of 2) SIGKILLed at a random moment of
    its work, 20 times with a fixed seed, new records arriving between restarts: a last run completes and every
    parent holds each of its children's records exactly once."""
    import json
    import random
    import signal
    import subprocess
    import sys

    from chain.journal import FileJournal
    from tests.integration.tiers import add_catalogs

    sessions = new_sessions(tmp_path)
    world = populated_world(nodes, sessions)
    spec = {
        "database": f"sqlite:///{tmp_path / 'relay.db'}",
        "batch_size": 2,
        "jobs": [
            {"child_rpc": world.street.node.anvil.rpc_url, "child_chain_id": DISTRICT_CHAIN_ID,
             "child_directory": world.street.address, "parent_rpc": world.district.node.anvil.rpc_url,
             "parent_chain_id": DISTRICT_CHAIN_ID, "parent_directory": world.district.address,
             "relayer_key": world.relayers["street"].key.hex(), "journal": str(tmp_path / "street.journal")},
            {"child_rpc": world.district.node.anvil.rpc_url, "child_chain_id": DISTRICT_CHAIN_ID,
             "child_directory": world.district.address, "parent_rpc": world.city.node.anvil.rpc_url,
             "parent_chain_id": CITY_CHAIN_ID, "parent_directory": world.city.address,
             "relayer_key": world.relayers["district"].key.hex(), "journal": str(tmp_path / "district.journal")},
        ],
    }
    config = tmp_path / "relay.json"
    config.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "tests.integration.relay_worker", str(config)]

    rng = random.Random(20251122)
    landed: Counter[str] = Counter()
    unsettled: Counter[str] = Counter()
    for round_ in range(KILLS):
        add_catalogs(world, "street", 4, f"K{round_:02d}")
        add_catalogs(world, "district", 4, f"K{round_:02d}")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()  # the same buffered reader as readline: no line is lost
        proc.wait(timeout=30)
        lines = [line for line in out.splitlines() if line.startswith("pass")]
        if not lines:
            where = "before the first pass"
        elif lines[-1].endswith("start"):
            where = f"inside pass {lines[-1].split()[1]}"
        else:
            where = "after both passes" if len(lines) == 4 else "between passes"
        landed[where] += 1
        for name in ("street", "district"):  # signed and broadcast, receipt not yet seen when killed
            journal = FileJournal(tmp_path / f"{name}.journal")
            unsettled["with a relay transaction unsettled"] += len(journal.unsettled())
    print(f"\nkills landed: {dict(landed)}; {dict(unsettled)}")
    assert landed["inside pass 0"] + landed["inside pass 1"] >= KILLS // 4  # kills interrupted passes

    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    for parent, children in (("district", ("street",)), ("city", ("street", "district"))):
        assert set(version_counts(world.tiers[parent]).values()) == {1}, parent
        for child in children:
            codes = world.record_codes[child]
            assert record_states(world.tiers[parent], codes) == record_states(world.tiers[child], codes)
        keys = [ev.args["originKey"] for ev in logs_of(world.tiers[parent]) if ev.event == "Relayed"]
        assert len(keys) == len(set(keys))
    assert version_counts(world.city) == version_counts(world.district)


def test_street_items_before_the_city_registers_the_street_are_kept_and_retried(
    nodes: tuple[Node, Node], tmp_path: Path
) -> None:
    """The first district → city pass brings 月坛街道 to the city, but the city has not registered the street
    directory yet: each street item is refused (RelayNotAuthorised) and reported, the district's own go in; once
    the bureau registers the street at the city, the next pass retries them in order and they all go in."""
    sessions = new_sessions(tmp_path)
    world = build_world(*nodes)
    register_departments(world, "street")
    local_activity(world, "street")
    assert not world.job("street", sessions).run_once().failed
    job = world.job("district", sessions)
    first = job.run_once()
    street_items = sum(1 for ev in logs_of(world.district) if ev.event == "Relayed")
    assert len(first.failed) == street_items and first.added == 2  # the district administrator, 月坛街道
    assert {f.reason.split("(")[0] for f in first.failed} == {"RelayNotAuthorised"}
    assert all(f.origin.directory == world.street.address for f in first.failed)
    world.set_child("city", "street", YUETAN, relayer="district")
    second = job.run_once()
    assert second.retried == street_items == second.added and not second.failed and not job.failures()
    codes = world.record_codes["street"]
    assert record_states(world.city, codes) == record_states(world.street, codes)
