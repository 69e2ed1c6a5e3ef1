"""The service with a directory per jurisdiction on two anvil chains — a district chain carrying the district
and street directories and a city chain: the seed directory is loaded at its own tiers through the API, the
service's tier sync brings it up, and the city directory holds every record exactly once, each with a chain of
custody that leads back to its origin transaction (checked against both chains' receipts, not the index)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from chain.abi import ContractCodec
from chain.artifacts import load_artifact
from chain.logs import LogFetcher
from chain.node import AnvilNode
from chain.rpc import Rpc
from dirchain.cli import SEED_FILE, app
from dirchain.service import Service
from registry import queries
from registry.db import make_engine, migrate, session_factory
from registry.indexer import Indexer, indexer_codec
from registry.loader import LoadSummary
from registry.messages import (
    record_message,
    sharing_decision_message,
    sharing_request_message,
    sharing_revocation_message,
)
from registry.seed import Directory, read_directory
from tests.integration.conftest import CITY_CHAIN_ID, DISTRICT_CHAIN_ID, TieredSeed

CODEC = ContractCodec(load_artifact("Directory").abi)
VERSION_EVENTS = ("CatalogVersionRecorded", "CatalogRetired", "SystemVersionRecorded", "SystemRetired")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chains(tiered_seed: TieredSeed) -> dict[str, AnvilNode]:
    return tiered_seed.chains


@pytest.fixture(scope="module")
def seed() -> Directory:
    return read_directory(SEED_FILE)


@pytest.fixture(scope="module")
def tiered(tiered_seed: TieredSeed) -> tuple[Service, TestClient, LoadSummary]:
    """The per-jurisdiction service on the two chains, with the seed and its sharing requests loaded and synced."""
    return tiered_seed.service, tiered_seed.client, tiered_seed.summary


def _logs(node: AnvilNode, address: str) -> list[Any]:
    raw = Rpc(node.rpc_url).call("eth_getLogs", [{"address": address, "fromBlock": "0x0", "toBlock": "latest"}])
    return [ev for ev in map(CODEC.decode_log, raw) if ev is not None]


def _log_at(node: AnvilNode, tx_hash: str, log_index: int) -> Any:
    receipt = Rpc(node.rpc_url).call("eth_getTransactionReceipt", [tx_hash])
    assert receipt is not None, f"no transaction {tx_hash} on chain {node.chain_id}"
    for raw in receipt["logs"]:
        if int(raw["logIndex"], 16) == log_index:
            return CODEC.decode_log(raw)
    raise AssertionError(f"no log {log_index} in {tx_hash}")


def _city_directory(service: Service) -> str:
    return service.directories.predict(service.chains["city"], keccak(text="110000"))


def test_seed_loads_at_its_own_tiers_on_two_chains(tiered: tuple[Service, TestClient, LoadSummary]) -> None:
    service, client, summary = tiered
    assert summary.ok, {p: s.failed for p, s in summary.phases.items()}
    assert {p: s.added for p, s in summary.phases.items()} == {
        "jurisdictions": 8, "departments": 28, "department keys": 28, "systems": 69, "catalogs": 22, "sharing": 6,
    }
    assert set(service.chains) == {"city", "district"}
    assert service.chains["city"].chain_id == CITY_CHAIN_ID and service.chains["district"].chain_id == DISTRICT_CHAIN_ID
    # every catalog was first recorded in its own jurisdiction's directory, on its tier's chain
    for item in client.get("/catalogs", params={"limit": 500}).json()["items"]:
        origin = client.get(f"/catalogs/{item['code']}/provenance").json()["versions"][0]["origin"]
        assert origin["jurisdiction"] == item["jurisdiction"] and origin["tier"] == item["tier"]
        assert origin["chain_id"] == (CITY_CHAIN_ID if item["tier"] == "city" else DISTRICT_CHAIN_ID)


def test_city_directory_holds_every_record_exactly_once(
    tiered: tuple[Service, TestClient, LoadSummary], chains: dict[str, AnvilNode], seed: Directory
) -> None:
    service, client, _ = tiered
    city_logs = _logs(chains["city"], _city_directory(service))
    versions = Counter((ev.event, ev.args["code"], ev.args["version"]) for ev in city_logs
                       if ev.event in VERSION_EVENTS)
    assert versions and set(versions.values()) == {1}
    expected = set()
    for kind, event in (("catalogs", "CatalogVersionRecorded"), ("systems", "SystemVersionRecorded")):
        for item in client.get(f"/{kind}", params={"limit": 500}).json()["items"]:
            for v in client.get(f"/{kind}/{item['code']}").json()["versions"]:
                expected.add((event if v["action"] != "retire" else event.replace("VersionRecorded", "Retired"),
                              item["code"], v["version"]))
    assert set(versions) == expected and len(expected) == 22 + 69
    added = Counter(ev.args["code"] for ev in city_logs if ev.event == "JurisdictionAdded")
    assert set(added) == {j.code for j in seed.jurisdictions} and set(added.values()) == {1}
    registered = Counter(ev.args["code"] for ev in city_logs if ev.event == "DepartmentRegistered")
    assert set(registered) == {d.code for d in seed.departments} and set(registered.values()) == {1}
    requested = Counter(ev.args["id"] for ev in city_logs if ev.event == "SharingRequested")
    assert len(requested) == 6 and set(requested.values()) == {1}
    # the read side: the municipal directory is everything, the street tier only the streets' own
    assert client.get("/catalogs", params={"tier": "city"}).json()["total"] == 22
    assert client.get("/systems", params={"tier": "city", "limit": 1}).json()["total"] == 69
    streets = client.get("/catalogs", params={"tier": "street"}).json()["items"]
    assert streets and {c["tier"] for c in streets} == {"street"}


def test_provenance_leads_from_the_city_to_the_origin_transaction(
    tiered: tuple[Service, TestClient, LoadSummary], chains: dict[str, AnvilNode]
) -> None:
    service, client, _ = tiered
    node_of = {CITY_CHAIN_ID: chains["city"], DISTRICT_CHAIN_ID: chains["district"]}
    hops_by_tier: Counter[str] = Counter()
    for kind in ("catalogs", "systems"):
        for item in client.get(f"/{kind}", params={"limit": 500}).json()["items"]:
            reply = client.get(f"/{kind}/{item['code']}/provenance")
            assert reply.status_code == 200
            for version in reply.json()["versions"]:
                origin, custody = version["origin"], version["custody"]
                assert custody[-1] == origin and custody[0]["tier"] == "city"
                assert custody[0]["directory"] == _city_directory(service)
                assert [h["tier"] for h in custody] == sorted((h["tier"] for h in custody),
                                                             key=["city", "district", "street"].index)
                at_origin = _log_at(node_of[origin["chain_id"]], origin["tx_hash"], origin["log_index"])
                assert to_checksum_address(at_origin.address) == origin["directory"]
                assert at_origin.args["code"] == item["code"]
                assert at_origin.args["version"] == version["version"] and at_origin.block_hash == origin["block_hash"]
                key = keccak(abi_encode(["uint256", "address", "bytes32", "uint32"], [
                    origin["chain_id"], to_checksum_address(origin["directory"]),
                    bytes.fromhex(origin["tx_hash"][2:]), origin["log_index"]]))
                for hop in custody[:-1]:
                    hops_by_tier[hop["tier"]] += 1
                    node = node_of[hop["chain_id"]]
                    copy = _log_at(node, hop["tx_hash"], hop["log_index"])
                    assert copy.event == at_origin.event and to_checksum_address(copy.address) == hop["directory"]
                    assert all(copy.args[k] == at_origin.args[k] for k in ("code", "version", "signer", "signature"))
                    relayed = _log_at(node, hop["tx_hash"], hop["relayed_log_index"])
                    assert relayed.event == "Relayed" and relayed.args["originKey"] == key
                    assert hop["origin_key"] == "0x" + key.hex()
                    assert "0x" + relayed.args["txHash"].hex() == origin["tx_hash"]
                    assert relayed.args["chainId"] == origin["chain_id"]
    assert hops_by_tier["city"] == 22 + 69 - _city_origin_count(client)
    assert hops_by_tier["district"] > 0  # the streets' records went through their district


def _city_origin_count(client: TestClient) -> int:
    return sum(
        client.get(f"/{kind}", params={"jurisdiction": "110000", "limit": 1}).json()["total"]
        for kind in ("catalogs", "systems")
    )


def test_lag_per_child_in_health_metrics_and_status(
    tiered: tuple[Service, TestClient, LoadSummary], monkeypatch: pytest.MonkeyPatch
) -> None:
    _service, client, _ = tiered
    health = client.get("/health").json()
    children = {c["jurisdiction"]: c for c in health["children"]}
    assert set(children) == {"110101", "110102", "110115", "110102/大栅栏街道", "110102/月坛街道", "110102/德胜街道",
                             "110102/新街口街道"}
    assert all(c["blocks"] == 0 and c["failing"] == 0 and c["error"] is None for c in children.values())
    assert children["110102/月坛街道"]["parent_chain_id"] == DISTRICT_CHAIN_ID
    assert children["110102"]["parent_chain_id"] == CITY_CHAIN_ID and children["110102"]["relayed"] > 0
    assert {c["name"] for c in health["chains"]} == {"city", "district"}

    metrics = client.get("/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith("dirchain_relay_lag_blocks{") and "月坛街道" in x)
    assert line.endswith(" 0.0") and 'tier="street"' in line and f'chain_id="{DISTRICT_CHAIN_ID}"' in line
    assert sum(x.startswith("dirchain_relay_lag_seconds{") for x in metrics.splitlines()) == 7

    def get(url: str, timeout: float) -> httpx.Response:
        return client.get(url.removeprefix("http://api"))

    monkeypatch.setattr(httpx, "get", get)
    result = CliRunner().invoke(app, ["status", "--api", "http://api"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "lag per child" in result.output and "月坛街道" in result.output and "district chain" in result.output
    as_json = CliRunner().invoke(app, ["status", "--api", "http://api", "--json"])
    assert len(json.loads(as_json.output)["children"]) == 7


def test_eip712_names_the_directory_a_submission_goes_to(tiered: tuple[Service, TestClient, LoadSummary]) -> None:
    service, client, _ = tiered
    street = client.get("/eip712", params={"jurisdiction": "110102/月坛街道"}).json()
    assert street["domain"]["chainId"] == DISTRICT_CHAIN_ID and street["jurisdiction"] == "110102/月坛街道"
    city = client.get("/eip712", params={"jurisdiction": "110000"}).json()
    assert city["domain"]["verifyingContract"] == _city_directory(service)
    assert client.get("/eip712").status_code == 400
    unknown = client.get("/eip712", params={"jurisdiction": "110999"})
    assert unknown.status_code == 422 and "110999" in unknown.json()["detail"]


def test_known_routes_are_answered_from_memory(
    tiered: tuple[Service, TestClient, LoadSummary], seed: Directory
) -> None:
    """``route_known`` (what the API answers on its event loop, without the index or the chain) gives the very
    directory ``route`` gives for every record of a jurisdiction already routed to, and None where routing needs the
    index: a sharing decision (the request's directory) or a jurisdiction never seen."""
    directories = tiered[0].services().directories
    for record in [*seed.catalogs, *seed.systems]:
        msg = record_message(record, "update", 2, 1, 1)
        known = directories.route_known(msg)
        assert known is not None and known is directories.route(msg), record.code
    assert directories.route_known(sharing_decision_message(b"\x01" * 32, True, "", 1, 1)) is None
    elsewhere = seed.catalogs[0].model_copy(update={"jurisdiction": "110999"})
    assert directories.route_known(record_message(elsewhere, "update", 2, 1, 1)) is None


def test_sharing_routes_are_answered_from_memory_once_routed(tiered: tuple[Service, TestClient, LoadSummary]) -> None:
    """Once a sharing request's departments, catalog and request id have been routed (the loader did, for the
    seed's requests), ``route_known`` names the directory ``route`` names — for a request whose departments sit in
    different districts, the city's — and so does it for a decision or revocation once its request was routed
    (the directory that recorded the request); a department never routed still goes to ``route``."""
    service, client, _ = tiered
    directories = service.services().directories
    requests = client.get("/sharing-requests", params={"limit": 500}).json()["items"]
    homes = set()
    for r in requests:
        ask = sharing_request_message(r["catalog"], r["catalog_version"], r["requester"], int(r["items_mask"]),
                                      r["purpose"], r["basis"], r["start"], r["end"], 1, 1)
        known = directories.route_known(ask)
        assert known is not None and known is directories.route(ask), r["id"]
        homes.add(known.jurisdiction)
        rid = bytes.fromhex(r["id"][2:])
        for msg in (sharing_decision_message(rid, True, "", 1, 1), sharing_revocation_message(rid, "", 1, 1)):
            routed = directories.route(msg)
            assert directories.route_known(msg) is routed, r["id"]
        assert routed.client.sharing(rid)["status"] != 0  # the directory on chain holds the request
    assert len(requests) == 6 and "110000" in homes and len(homes) > 1, homes
    stranger = sharing_request_message(requests[0]["catalog"], 1, "NOT-A-DEPARTMENT", 1, "p", "b", 0, 1, 1, 1)
    assert directories.route_known(stranger) is None


@pytest.mark.parametrize("order", [("city", "district"), ("district", "city")])
def test_reindexing_both_chains_in_either_order_rebuilds_the_same_rows(
    tiered: tuple[Service, TestClient, LoadSummary], tmp_path: Path, order: tuple[str, str]
) -> None:
    """Dropping the index and re-indexing the two chains from block zero — one chain entirely before the other,
    either way round — gives the service's rows exactly (operational tables aside): a record indexed before the
    jurisdiction or department it names, recorded on the other chain, is completed when that one is indexed."""
    service, _client, _ = tiered
    url = f"sqlite:///{tmp_path / 'again.sqlite'}"
    migrate(url)
    writer = session_factory(make_engine(url), writer=True)
    codec = indexer_codec()
    topics = ["0x" + t.hex() for t in codec.events]
    heads = {}
    with service.sessions() as session:
        for name, chain in service.chains.items():
            stored = queries.cursor(session, chain.chain_id, chain.factory)
            assert stored is not None
            heads[name] = stored.block_number
    for name in order:
        chain = service.chains[name]
        fetcher = LogFetcher.from_rpc(chain.rpc, chain.factory, topics=topics)
        indexer = Indexer(fetcher, codec, writer, chain.chain_id, chain.factory, creators={chain.relayer.address},
                          confirmations=fetcher.head() - heads[name])
        assert indexer.run_once() > 0
    operational = ("cursors", "relay_checkpoints", "relay_failures")
    with writer() as session:
        again = {k: v for k, v in queries.dump_index(session).items() if k not in operational}
    with service.sessions() as session:
        served = {k: v for k, v in queries.dump_index(session).items() if k not in operational}
    assert again.keys() == served.keys()
    for table in served:
        assert again[table] == served[table], table
