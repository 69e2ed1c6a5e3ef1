"""The audit API and ``dirchain verify --database`` on a real service: a directory per jurisdiction on two anvil
chains (districts and streets on one, the city on the other) with the seed directory and its sharing requests
loaded and synced, and one street catalog updated to version 2.

Every answer is checked against the chains' own logs, receipts and views, not the index: histories and custody
against the logs at each hop, changes against the directory's logs and block timestamps, access against the
sharing events, verification against the committed record. The index is then tampered with directly in SQL —
a version's digest and a catalog's name edited, a row deleted, a grant inserted — and each is caught both by
``GET /audit/drift`` and by ``dirchain verify --database``, while the untampered index has no finding."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from eth_utils import keccak, to_checksum_address
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from chain import eip712
from chain.node import AnvilNode
from chain.rpc import Rpc
from dirchain.cli import SEED_FILE, SEED_SHARING_FILE, app
from dirchain.service import Service
from registry.canonical import record_json
from registry.db import make_engine, session_factory
from registry.drift import ChainSource, DriftError, chain_sources, drift_report
from registry.indexer import indexer_codec
from registry.keystore import Keystore
from registry.loader import DirectoryLoader, read_sharing
from registry.messages import record_message
from registry.models import CatalogRecord
from registry.seed import Directory, read_directory
from registry.sharing import grant_active
from tests.integration.conftest import next_nonce
from tests.integration.service import make_settings, running_service, wait_indexed

DISTRICT_CHAIN_ID = 31346
CITY_CHAIN_ID = 31347
CODEC = indexer_codec()
TIERS = ("city", "district", "street")
NEVER = 2**40  # a unix time past every block

pytestmark = pytest.mark.integration


@dataclass
class Audited:
    """The running service, its API client, home, chains, the seed, and the street catalog updated to version 2."""

    service: Service
    client: TestClient
    home: Path
    nodes: dict[str, AnvilNode]
    seed: Directory
    street_catalog: str
    drift_ms: list[float]

    @property
    def database(self) -> Path:
        return self.home / "index.sqlite"

    def node_of(self, chain_id: int) -> AnvilNode:
        return self.nodes["city"] if chain_id == CITY_CHAIN_ID else self.nodes["district"]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    nodes = {"district": AnvilNode(chain_id=DISTRICT_CHAIN_ID), "city": AnvilNode(chain_id=CITY_CHAIN_ID)}
    for node in nodes.values():
        node.start()
    home = tmp_path_factory.mktemp("audit")
    seed = read_directory(SEED_FILE)
    try:
        settings = make_settings(home, nodes["city"].rpc_url, directories="per-jurisdiction",
                                 district_rpc_url=nodes["district"].rpc_url, sync_interval_s=0.2)
        with running_service(settings) as (service, client):
            keys = Keystore(home / "keys")
            loader = DirectoryLoader("http://testserver", keys, http=client, index_timeout_s=60)
            summary = loader.load(seed, read_sharing(SEED_SHARING_FILE))
            assert summary.ok, [f for phase in summary.phases.values() for f in phase.failed]
            street = client.get("/catalogs", params={"tier": "street"}).json()["items"]
            code = next(c["code"] for c in street if c["tier"] == "street")
            _update_catalog(client, keys, code)
            DirectoryLoader("http://testserver", keys, http=client).await_synced()
            _wait_until(lambda: client.get(f"/audit/catalogs/{code}/history").json()["versions"][-1]["tiers"]
                        == ["city", "district", "street"])
            yield Audited(service, client, home, nodes, seed, code, [])
    finally:
        for node in nodes.values():
            node.stop()


def _wait_until(check: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def _update_catalog(client: TestClient, keys: Keystore, code: str) -> None:
    """Version 2 of catalog ``code``: a new summary, signed by its department for its jurisdiction's directory."""
    current = client.get(f"/catalogs/{code}").json()
    record = CatalogRecord.model_validate(current["record"])
    record = record.model_copy(update={"summary": record.summary + "（2025年修订）"})
    nonce, deadline = next_nonce(), int(time.time()) + 3600
    msg = record_message(record, "update", 2, nonce, deadline)
    meta = client.get("/eip712", params={"jurisdiction": record.jurisdiction}).json()
    signature = eip712.sign(keys.account(record.provider_code),
                            eip712.typed_data(meta["types"], msg.primary, meta["domain"], msg.message))
    reply = client.post("/catalogs", json={"action": "update", "version": 2, "record": record_json(record),
                                           "nonce": nonce, "deadline": deadline,
                                           "signature": "0x" + signature.hex()})
    assert reply.status_code == 202, reply.text
    wait_indexed(client, reply.json()["tx_hash"])


# ---------------------------------------------------------------------------------------- chain helpers


def _decoded(node: AnvilNode, query: dict[str, Any]) -> list[Any]:
    raw = Rpc(node.rpc_url).call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", **query}])
    return [ev for ev in map(CODEC.decode_log, raw) if ev is not None]


def _log_at(node: AnvilNode, tx_hash: str, log_index: int) -> Any:
    receipt = Rpc(node.rpc_url).call("eth_getTransactionReceipt", [tx_hash])
    assert receipt is not None, f"no transaction {tx_hash} on chain {node.chain_id}"
    return next(CODEC.decode_log(raw) for raw in receipt["logs"] if int(raw["logIndex"], 16) == log_index)


def _timestamps(node: AnvilNode, blocks: set[int]) -> dict[int, int]:
    rpc = Rpc(node.rpc_url)
    return {b: int(rpc.call("eth_getBlockByNumber", [hex(b), False])["timestamp"], 16) for b in blocks}


def _directory_of(audited: Audited, jurisdiction: str) -> tuple[int, str]:
    """(chain id, address) of a jurisdiction's directory, from its factory's DirectoryCreated log on chain."""
    for name, node in audited.nodes.items():
        chain = audited.service.chains[name]
        created = _decoded(node, {"address": chain.factory,
                                  "topics": ["0x" + CODEC.topics_by_name["DirectoryCreated"].hex(),
                                             "0x" + keccak(text=jurisdiction).hex()]})
        if created:
            return node.chain_id, to_checksum_address(created[0].args["directory"])
    raise AssertionError(f"no directory of {jurisdiction} on chain")


def _sources(audited: Audited) -> list[ChainSource]:
    return chain_sources(audited.service.chains[name] for name in ("city", "district"))


def _chain_options(audited: Audited) -> list[str]:
    out = []
    for name in ("city", "district"):
        chain = audited.service.chains[name]
        out += ["--chain", f"{chain.rpc.url},{chain.factory},{chain.relayer.address},{chain.start_block}"]
    return out


def _cli_verify(audited: Audited) -> Any:
    return CliRunner().invoke(app, ["verify", "--database", f"sqlite:///{audited.database}", *_chain_options(audited)])


def _drift(audited: Audited) -> dict[str, Any]:
    reply = audited.client.get("/audit/drift")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    audited.drift_ms.append(body["elapsed_ms"])
    return body


# ---------------------------------------------------------------------------------------- drift


def test_the_untampered_index_has_no_drift(audited: Audited) -> None:
    body = _drift(audited)
    assert body["ok"] is True and body["findings"] == []
    assert {c["chain_id"] for c in body["chains"]} == {CITY_CHAIN_ID, DISTRICT_CHAIN_ID}
    assert all(c["cursor"] is not None and c["rebuilt_to"] == c["cursor"] and c["events"] > 0 for c in body["chains"])
    assert body["tables"]["catalogs"] == 22 and body["tables"]["systems"] == 69
    assert body["tables"]["catalog_versions"] == 23 and body["tables"]["sharing_requests"] == 6
    assert not {"cursors", "relay_checkpoints", "relay_failures"} & set(body["tables"])
    result = _cli_verify(audited)
    assert result.exit_code == 0, result.output
    assert "ok   check 5 compare" in result.output and "verified: no drift" in result.output
    print(f"drift report of the seed: {body['elapsed_ms']:.0f} ms")


@contextmanager
def _tampered(audited: Audited, do: str, undo: str, params: tuple[Any, ...] = (),
              undo_params: tuple[Any, ...] | None = None) -> Iterator[None]:
    """Run SQL ``do`` on the service's SQLite index (as an operator with write access would), ``undo`` after; each
    must touch exactly one row."""
    with sqlite3.connect(audited.database, timeout=30) as conn:
        assert conn.execute(do, params).rowcount == 1
    try:
        yield
    finally:
        with sqlite3.connect(audited.database, timeout=30) as conn:
            assert conn.execute(undo, params if undo_params is None else undo_params).rowcount == 1


def _row(audited: Audited, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any]:
    with sqlite3.connect(audited.database, timeout=30) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute(sql, params).fetchone())


def _caught(audited: Audited, table: str, key: list[Any], kind: str, message: str) -> dict[str, Any]:
    """The drift report and the CLI each name exactly this one finding."""
    body = _drift(audited)
    assert body["ok"] is False
    assert [(f["table"], f["key"], f["kind"]) for f in body["findings"]] == [(table, key, kind)], body["findings"]
    assert body["findings"][0]["message"] == message
    result = _cli_verify(audited)
    assert result.exit_code == 1, result.output
    assert f"FAIL check 5 compare: {message}" in result.output
    finding: dict[str, Any] = body["findings"][0]
    return finding


def test_an_edited_version_digest_is_caught(audited: Audited) -> None:
    code = audited.street_catalog
    digest = _row(audited, "SELECT digest FROM catalog_versions WHERE code = ? AND version = 2", (code,))["digest"]
    forged = "0x" + keccak(b"forged").hex()
    with _tampered(audited, f"UPDATE catalog_versions SET digest = '{forged}' WHERE code = ? AND version = 2",
                   f"UPDATE catalog_versions SET digest = '{digest}' WHERE code = ? AND version = 2", (code,)):
        finding = _caught(audited, "catalog_versions", [code, 2], "changed",
                          f"catalog_versions ({code}, 2).digest: expected {digest!r}, got {forged!r}")
        assert finding["differences"] == [{"column": "digest", "expected": digest, "got": forged}]
    assert _drift(audited)["ok"] is True


def test_an_edited_catalog_name_is_caught(audited: Audited) -> None:
    code = audited.street_catalog
    name = _row(audited, "SELECT name FROM catalogs WHERE code = ?", (code,))["name"]
    with _tampered(audited, "UPDATE catalogs SET name = '篡改的名称' WHERE code = ?",
                   f"UPDATE catalogs SET name = '{name}' WHERE code = ?", (code,)):
        finding = _caught(audited, "catalogs", [code], "changed",
                          f"catalogs ({code}).name: expected {name!r}, got '篡改的名称'")
        assert finding["differences"] == [{"column": "name", "expected": name, "got": "篡改的名称"}]
    assert _drift(audited)["ok"] is True


def test_a_deleted_row_is_caught(audited: Audited) -> None:
    row = _row(audited, "SELECT * FROM sharing_transitions WHERE to_status = 'revoked'")
    columns = ", ".join(row)
    values = ", ".join("?" for _ in row)
    with sqlite3.connect(audited.database, timeout=30) as conn:
        assert conn.execute("DELETE FROM sharing_transitions WHERE tx_hash = ? AND log_index = ?",
                            (row["tx_hash"], row["log_index"])).rowcount == 1
    try:
        finding = _caught(audited, "sharing_transitions", [row["tx_hash"], row["log_index"]], "missing",
                          f"sharing_transitions ({row['tx_hash']}, {row['log_index']}): on chain, missing from the "
                          f"index")
        assert finding["row"]["to_status"] == "revoked" and finding["row"]["request_id"] == row["request_id"]
    finally:
        with sqlite3.connect(audited.database, timeout=30) as conn:
            conn.execute(f"INSERT INTO sharing_transitions ({columns}) VALUES ({values})", tuple(row.values()))
    assert _drift(audited)["ok"] is True


def test_an_inserted_grant_is_caught(audited: Audited) -> None:
    """A forged grant in the index gives a department access the chain never granted: drift names it."""
    row = _row(audited, "SELECT * FROM sharing_requests WHERE status = 'granted' ORDER BY id LIMIT 1")
    at = row["granted_at"] + 1
    before = audited.client.get(f"/audit/catalogs/{row['catalog_code']}/access", params={"at": at}).json()["holders"]
    forged = {**row, "id": "0x" + keccak(b"forged grant").hex(), "requester_id": "0x" + keccak(text="DFORGED").hex(),
              "requester_code": "DFORGED"}
    columns, values = ", ".join(forged), ", ".join("?" for _ in forged)
    with _tampered(audited, f"INSERT INTO sharing_requests ({columns}) VALUES ({values})",
                   "DELETE FROM sharing_requests WHERE id = ?", tuple(forged.values()), (forged["id"],)):
        after = audited.client.get(f"/audit/catalogs/{row['catalog_code']}/access", params={"at": at}).json()
        assert "DFORGED" in [h["department"] for h in after["holders"]]  # the index alone is fooled
        _caught(audited, "sharing_requests", [forged["id"]], "extra",
                f"sharing_requests ({forged['id']}): in the index, not on chain")
    assert audited.client.get(f"/audit/catalogs/{row['catalog_code']}/access",
                              params={"at": at}).json()["holders"] == before
    assert _drift(audited)["ok"] is True


def test_drift_fails_closed(audited: Audited) -> None:
    engine = make_engine(f"sqlite:///{audited.database}")
    try:
        with session_factory(engine)() as session, pytest.raises(DriftError, match="check 1 input"):
            drift_report(session, [])
        dead = ChainSource(Rpc("http://127.0.0.1:9"), CITY_CHAIN_ID, _sources(audited)[0].factory,
                           frozenset(), 0, "city")
        with session_factory(engine)() as session, pytest.raises(DriftError, match="check 2 chains"):
            drift_report(session, [dead])
        wrong_id = ChainSource(_sources(audited)[0].rpc, 1, _sources(audited)[0].factory, frozenset(), 0)
        with session_factory(engine)() as session, pytest.raises(DriftError, match="expected chain id 1"):
            drift_report(session, [wrong_id])
    finally:
        engine.dispose()
    empty = audited.home / "empty.sqlite"
    sqlite3.connect(empty).close()
    city = audited.service.chains["city"]
    spec = f"{city.rpc.url},{city.factory},{city.relayer.address}"
    cases = [
        (["verify", "--database", f"sqlite:///{audited.database}"], 1, "check 1 input"),
        (["verify", "--database", f"sqlite:///{audited.home / 'nothing.sqlite'}", "--chain", spec], 2,
         "no SQLite database"),
        (["verify", "--database", f"sqlite:///{audited.database}", "--chain", "http://x,0x12,0x34"], 2, "FACTORY"),
        (["verify", "--database", f"sqlite:///{audited.database}", "--chain",
          f"http://127.0.0.1:9,{city.factory},{city.relayer.address}"], 1, "check 2 chains"),
        (["verify", "--database", f"sqlite:///{empty}", "--chain", spec], 1, "check 3 index"),
        (["verify"], 2, "expected a FILE"),
    ]
    for args, code, needle in cases:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == code and needle in result.output, (args, result.output)


# ---------------------------------------------------------------------------------------- verify


def test_a_committed_document_verifies_against_the_chain_with_its_tiers(audited: Audited) -> None:
    code, client = audited.street_catalog, audited.client
    versions = client.get(f"/catalogs/{code}").json()["versions"]
    for entry, status in ((versions[0], "superseded"), (versions[1], "current")):
        document = entry["record"]
        reply = client.post("/audit/verify", json=document)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["ok"] is True and body["failure"] is None and body["differences"] == []
        assert body["digest"] == "0x" + keccak(rfc8785.dumps(document)).hex()
        assert body["version"] == entry["version"] and body["status"] == status
        assert [c["passed"] for c in body["checks"]] == [True] * 8
        # the origin named is the street directory's log on the district chain, as the chain says
        assert body["chain_id"] == DISTRICT_CHAIN_ID
        origin = _log_at(audited.node_of(body["chain_id"]), body["tx_hash"], body["log_index"])
        assert to_checksum_address(origin.address) == body["directory"] == _directory_of(audited, document[
            "jurisdiction"])[1]
        assert origin.args["code"] == code and origin.args["version"] == entry["version"]
        assert "0x" + origin.args["digest"].hex() == body["digest"] and origin.args["signer"] == body["signer"]
        assert [h["tier"] for h in body["holders"]] == ["street", "district", "city"]
        assert [h["relayed"] for h in body["holders"]] == [False, True, True]
        assert {h["digest_on_chain"] for h in body["holders"]} == {body["digest"]}
        district = next(j for j in audited.seed.jurisdictions if j.code == document["jurisdiction"]).parent
        assert [h["jurisdiction"] for h in body["holders"]] == [document["jurisdiction"], district, "110000"]
        for holder in body["holders"]:
            log = _log_at(audited.node_of(holder["chain_id"]), holder["tx_hash"], holder["log_index"])
            assert to_checksum_address(log.address) == holder["directory"]
            assert log.args["code"] == code and log.args["version"] == entry["version"]
    system = client.get("/systems", params={"limit": 1}).json()["items"][0]
    reply = client.post("/audit/verify", json=client.get(f"/systems/{system['code']}").json()["record"])
    assert reply.json()["ok"] is True and reply.json()["kind"] == "system" and reply.json()["status"] == "current"


def test_an_altered_document_fails_naming_the_field(audited: Audited) -> None:
    code, client = audited.street_catalog, audited.client
    document = client.get(f"/catalogs/{code}").json()["record"]
    altered = {**document, "name": document["name"] + "（改）"}
    body = client.post("/audit/verify", json=altered).json()
    assert body["ok"] is False and body["version"] == 2 and body["holders"] == []
    assert body["differences"] == [{"path": "name", "expected": document["name"], "got": altered["name"],
                                    "missing": ""}]
    assert "field name" in body["failure"] and body["digest"] == "0x" + keccak(rfc8785.dumps(altered)).hex()
    items = json.loads(json.dumps(document))
    items["data_items"][0]["name"] = "篡改"
    body = client.post("/audit/verify", json=items).json()
    assert body["ok"] is False and [d["path"] for d in body["differences"]] == ["data_items[0].name"]
    unknown = client.post("/audit/verify", json={**document, "code": "999999/NOPE"}).json()
    assert unknown["ok"] is False and "got none" in unknown["failure"] and unknown["version"] is None


@pytest.mark.parametrize(("body", "params", "needle"), [
    ([1, 2], {}, "body"),
    ({}, {}, "non-empty"),
    ({"code": 5, "name": "x"}, {}, "code"),
    ({"code": "X"}, {"kind": "other"}, "kind"),
    ("not json", {}, "body"),
    ({"code": "X", "n": 2**60}, {}, "RFC 8785"),
])
def test_verify_refuses_what_is_not_a_document(audited: Audited, body: Any, params: dict[str, str],
                                               needle: str) -> None:
    if body == "not json":
        reply = audited.client.post("/audit/verify", content=b"{not json", params=params,
                                    headers={"content-type": "application/json"})
    else:
        reply = audited.client.post("/audit/verify", json=body, params=params)
    assert reply.status_code == 422 and reply.headers["content-type"] == "application/problem+json"
    assert needle in reply.text


# ---------------------------------------------------------------------------------------- history and custody


def test_history_is_every_version_as_on_chain(audited: Audited) -> None:
    code, client = audited.street_catalog, audited.client
    body = client.get(f"/audit/catalogs/{code}/history").json()
    assert body["kind"] == "catalog" and body["code"] == code and body["latest_version"] == 2
    assert body["status"] == "active" and [v["version"] for v in body["versions"]] == [1, 2]
    document = client.get(f"/catalogs/{code}").json()["record"]
    assert body["jurisdiction"] == document["jurisdiction"] and body["department"] == document["provider_code"]
    on_chain = _decoded(audited.nodes["district"], {
        "address": _directory_of(audited, document["jurisdiction"])[1],
        "topics": ["0x" + CODEC.topics_by_name["CatalogVersionRecorded"].hex(), "0x" + keccak(text=code).hex()]})
    assert [ev.args["version"] for ev in on_chain] == [1, 2]
    stamps = _timestamps(audited.nodes["district"], {ev.block_number for ev in on_chain})
    for version, ev in zip(body["versions"], on_chain, strict=True):
        assert version["action"] == ("register" if ev.args["version"] == 1 else "update") and version["valid"]
        assert version["digest"] == "0x" + ev.args["digest"].hex() and version["signer"] == ev.args["signer"]
        assert version["nonce"] == str(ev.args["nonce"])
        assert (version["chain_id"], version["directory"]) == (DISTRICT_CHAIN_ID, to_checksum_address(ev.address))
        assert (version["tx_hash"], version["block_number"], version["block_hash"], version["log_index"]) == (
            ev.tx_hash.lower(), ev.block_number, ev.block_hash.lower(), ev.log_index)
        assert version["block_timestamp"] == stamps[ev.block_number]
        assert version["tier"] == "street" and version["jurisdiction"] == document["jurisdiction"]
        assert version["tiers"] == list(TIERS)
        assert version["record"] == json.loads(bytes(ev.args["record"]))
        custody = version["custody"]
        assert [h["tier"] for h in custody] == list(TIERS) and custody[-1]["tx_hash"] == ev.tx_hash.lower()
        for hop in custody[:-1]:
            copy = _log_at(audited.node_of(hop["chain_id"]), hop["tx_hash"], hop["log_index"])
            assert copy.event == "CatalogVersionRecorded" and to_checksum_address(copy.address) == hop["directory"]
            assert all(copy.args[k] == ev.args[k] for k in ("code", "version", "digest", "signer", "signature"))
            relayed = _log_at(audited.node_of(hop["chain_id"]), hop["tx_hash"], hop["relayed_log_index"])
            assert relayed.event == "Relayed" and "0x" + relayed.args["originKey"].hex() == hop["origin_key"]
    system = client.get("/systems", params={"jurisdiction": "110115", "limit": 1}).json()["items"][0]
    history = client.get(f"/audit/systems/{system['code']}/history").json()
    assert history["kind"] == "system" and history["jurisdiction"] == "110115" and len(history["versions"]) == 1
    only = history["versions"][0]
    assert only["tier"] == "district" and only["tiers"] == ["city", "district"]
    assert (only["chain_id"], only["directory"]) == _directory_of(audited, "110115")
    log = _log_at(audited.nodes["district"], only["tx_hash"], only["log_index"])
    assert log.event == "SystemVersionRecorded" and log.args["code"] == system["code"]
    assert log.args["signer"] == only["signer"] and "0x" + log.args["digest"].hex() == only["digest"]
    city_copy = only["custody"][0]
    assert city_copy["tier"] == "city" and city_copy["chain_id"] == CITY_CHAIN_ID
    assert _log_at(audited.nodes["city"], city_copy["tx_hash"], city_copy["log_index"]).args["code"] == system["code"]
    for path in ("/audit/catalogs/999999/NOPE/history", "/audit/systems/NOPE/history", "/audit/catalogs/NOPE/custody"):
        reply = client.get(path)
        assert reply.status_code == 404 and reply.headers["content-type"] == "application/problem+json"


def test_custody_leads_from_the_city_to_the_street_origin(audited: Audited) -> None:
    code, client = audited.street_catalog, audited.client
    body = client.get(f"/audit/catalogs/{code}/custody").json()
    assert body == client.get(f"/catalogs/{code}/provenance").json()
    city_directory = _directory_of(audited, "110000")
    for version in body["versions"]:
        top, origin = version["custody"][0], version["custody"][-1]
        assert (top["chain_id"], top["directory"]) == city_directory and origin == version["origin"]
        key = _log_at(audited.nodes["city"], top["tx_hash"], top["relayed_log_index"]).args["originKey"]
        assert key == keccak(b"".join([
            origin["chain_id"].to_bytes(32, "big"), bytes.fromhex(origin["directory"][2:]).rjust(32, b"\0"),
            bytes.fromhex(origin["tx_hash"][2:]), origin["log_index"].to_bytes(32, "big")]))


# ---------------------------------------------------------------------------------------- changes


def _expected_changes(audited: Audited, jurisdiction: str, start: int, end: int) -> dict[str, set[tuple[Any, ...]]]:
    """(event, tx hash, log index) of every change event the directory's own logs hold in [start, end)."""
    from registry.audit import CHANGE_CATEGORIES

    chain_id, address = _directory_of(audited, jurisdiction)
    logs = [ev for ev in _decoded(audited.node_of(chain_id), {"address": address}) if ev.event in CHANGE_CATEGORIES]
    stamps = _timestamps(audited.node_of(chain_id), {ev.block_number for ev in logs})
    out: dict[str, set[tuple[Any, ...]]] = {c: set() for c in set(CHANGE_CATEGORIES.values())}
    for ev in logs:
        if start <= stamps[ev.block_number] < end:
            out[CHANGE_CATEGORIES[ev.event]].add((ev.event, ev.tx_hash.lower(), ev.log_index))
    return out


def _got_changes(body: dict[str, Any]) -> dict[str, set[tuple[Any, ...]]]:
    return {c: {(x["event"], x["tx_hash"], x["log_index"]) for x in body[c]}
            for c in ("versions", "retirements", "jurisdictions", "departments", "keys", "sharing")}


def test_changes_of_a_district_directory_are_its_logs_in_the_window(audited: Audited) -> None:
    client = audited.client
    body = client.get("/audit/changes", params={"jurisdiction": "110102", "from": 0, "to": NEVER}).json()
    assert body["jurisdiction"] == "110102" and body["tier"] == "district"
    assert body["directories"] == [dict(zip(("chain_id", "address"), _directory_of(audited, "110102"), strict=True))]
    expected = _expected_changes(audited, "110102", 0, NEVER)
    assert _got_changes(body) == expected
    assert len(expected["versions"]) > 0 and len(expected["jurisdictions"]) >= 4 and len(expected["departments"]) > 0
    # the streets' records it holds as relayed name their origin; its own do not
    relayed = [v for v in body["versions"] if v["origin"] is not None]
    assert relayed and all(v["detail"]["jurisdiction"].startswith("110102/") for v in relayed)
    assert any(v["subject"] == audited.street_catalog and v["version"] == 2 for v in relayed)
    for v in relayed:
        origin = _log_at(audited.node_of(v["origin"]["chain_id"]), v["origin"]["tx_hash"], v["origin"]["log_index"])
        assert origin.args["code"] == v["subject"] and origin.args["version"] == v["version"]
    streets = {j.code for j in audited.seed.jurisdictions if j.parent == "110102"}
    assert streets <= {j["subject"] for j in body["jurisdictions"]}
    assert {s["detail"]["to"] for s in body["sharing"]} >= {"requested", "granted"}
    # a window: from the block of the first version to the block of the street catalog's version 2 (exclusive)
    stamps = sorted({v["block_timestamp"] for v in body["versions"]})
    start, end = stamps[0] + 1, max(v["block_timestamp"] for v in body["versions"] if v["version"] == 2)
    window = client.get("/audit/changes", params={"jurisdiction": "110102", "from": start, "to": end}).json()
    assert _got_changes(window) == _expected_changes(audited, "110102", start, end)
    assert all(start <= x["block_timestamp"] < end for c in _got_changes(window) for x in window[c])
    assert not any(v["version"] == 2 and v["subject"] == audited.street_catalog for v in window["versions"])


def test_changes_of_the_city_hold_sharing_and_relayed_records(audited: Audited) -> None:
    body = audited.client.get("/audit/changes", params={"jurisdiction": "110000", "from": 0,
                                                        "to": "2100-01-01T00:00:00Z"}).json()
    assert _got_changes(body) == _expected_changes(audited, "110000", 0, NEVER)
    assert {x["event"] for x in body["sharing"]} == {"SharingRequested", "SharingStatusChanged"}
    assert len({x["subject"] for x in body["sharing"] if x["event"] == "SharingRequested"}) == 6


@pytest.mark.parametrize(("params", "status", "needle"), [
    ({"jurisdiction": "110102", "from": 10, "to": 5}, 422, "from"),
    ({"jurisdiction": "110102", "from": "yesterday", "to": 5}, 422, "ISO 8601"),
    ({"jurisdiction": "110102", "from": 0}, 422, "to"),
    ({"jurisdiction": "119999", "from": 0, "to": 5}, 404, "119999"),
])
def test_changes_refuse_bad_windows(audited: Audited, params: dict[str, Any], status: int, needle: str) -> None:
    reply = audited.client.get("/audit/changes", params=params)
    assert reply.status_code == status and reply.headers["content-type"] == "application/problem+json"
    assert needle in reply.text


# ---------------------------------------------------------------------------------------- access


def _grants_on_chain(audited: Audited) -> dict[str, dict[str, Any]]:
    """Every sharing request on either chain (copies deduplicated): catalog, requester id, period, and the block
    timestamp each status was first reached (the origin's; relayed copies come later)."""
    requests: dict[str, dict[str, Any]] = {}
    topics = ["0x" + CODEC.topics_by_name[e].hex() for e in ("SharingRequested", "SharingStatusChanged")]
    for node in audited.nodes.values():
        logs = _decoded(node, {"topics": [topics]})
        stamps = _timestamps(node, {ev.block_number for ev in logs})
        for ev in sorted(logs, key=lambda e: e.event != "SharingRequested"):
            rid = "0x" + ev.args["id"].hex()
            if ev.event == "SharingRequested":
                requests.setdefault(rid, {"catalog": ev.args["catalog"], "requester": "0x" + ev.args["requester"].hex(),
                                          "start": ev.args["start"], "end": ev.args["end"], "at": {}})
            else:
                at = requests[rid]["at"]
                to = ("none", "requested", "granted", "rejected", "refused", "revoked", "expired")[ev.args["to"]]
                at[to] = min(at.get(to, NEVER), stamps[ev.block_number])
    return requests


def test_access_at_a_time_is_what_the_chain_granted(audited: Audited) -> None:
    requests = _grants_on_chain(audited)
    assert len(requests) == 6
    code_of = {"0x" + keccak(text=d.code).hex(): d.code for d in audited.seed.departments}
    moments = {t + d for r in requests.values() for t in r["at"].values() for d in (-1, 0, 1)} | {int(time.time())}
    revoked = next(r for r in requests.values() if "revoked" in r["at"])
    checked = 0
    for catalog in {r["catalog"] for r in requests.values()}:
        for at in sorted(moments):
            expected = sorted(code_of[r["requester"]] for r in requests.values() if r["catalog"] == catalog and
                              grant_active(r["at"].get("granted"), r["start"], r["end"],
                                           min(r["at"].get("revoked", NEVER), r["at"].get("expired", NEVER)), at))
            reply = audited.client.get(f"/audit/catalogs/{catalog}/access", params={"at": at})
            assert reply.status_code == 200
            assert sorted(h["department"] for h in reply.json()["holders"]) == expected, (catalog, at)
            checked += bool(expected)
    assert checked > 0
    during = revoked["at"]["granted"]
    holders = audited.client.get(f"/audit/catalogs/{revoked['catalog']}/access", params={"at": during}).json()
    if revoked["at"]["revoked"] > during:
        assert [h["department"] for h in holders["holders"]] == [code_of[revoked["requester"]]]
    else:  # granted and revoked in blocks of the same second: at that second the grant is already revoked
        assert holders["holders"] == []
    after = audited.client.get(f"/audit/catalogs/{revoked['catalog']}/access",
                               params={"at": revoked["at"]["revoked"]}).json()
    assert after["holders"] == []
    bad = audited.client.get(f"/audit/catalogs/{revoked['catalog']}/access", params={"at": "soon"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert audited.client.get("/audit/catalogs/NOPE/access").status_code == 404


def test_drift_after_everything_is_still_clean_and_fast(audited: Audited) -> None:
    body = _drift(audited)
    assert body["ok"] is True, body["findings"]
    print(f"drift report times (ms): {[round(ms) for ms in audited.drift_ms]}")


# ---------------------------------------------------------------------------------------- one directory


@pytest.fixture(scope="module")
def single(anvil: AnvilNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, TestClient, Path]]:
    """A single-directory service on the session anvil (shared with other modules' deployments) with the seed's
    records loaded (no sharing requests)."""
    home = tmp_path_factory.mktemp("audit-single")
    with running_service(make_settings(home, anvil.rpc_url)) as (service, client):
        summary = DirectoryLoader("http://testserver", Keystore(home / "keys"), http=client).load(
            read_directory(SEED_FILE), [])
        assert summary.ok, {p: s.failed for p, s in summary.phases.items()}
        yield service, client, home


def test_one_directory_drift_catches_an_edited_signer(single: tuple[Service, TestClient, Path]) -> None:
    service, client, home = single
    assert client.get("/audit/drift").json()["ok"] is True
    chain = service.chains["city"]
    args = ["verify", "--database", f"sqlite:///{home / 'index.sqlite'}",
            "--chain", f"{chain.rpc.url},{chain.factory},{chain.relayer.address},{chain.start_block}"]
    assert CliRunner().invoke(app, args).exit_code == 0
    code = client.get("/systems", params={"limit": 1}).json()["items"][0]["code"]
    with sqlite3.connect(home / "index.sqlite", timeout=30) as conn:
        signer = conn.execute("SELECT signer FROM system_versions WHERE code = ?", (code,)).fetchone()[0]
    forged = to_checksum_address("0x" + "ab" * 20)
    with sqlite3.connect(home / "index.sqlite", timeout=30) as conn:
        conn.execute("UPDATE system_versions SET signer = ? WHERE code = ?", (forged, code))
    try:
        body = client.get("/audit/drift").json()
        message = f"system_versions ({code}, 1).signer: expected {signer!r}, got {forged!r}"
        assert body["ok"] is False and body["findings_total"] == 1 and body["findings"][0]["message"] == message
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and message in result.output
    finally:
        with sqlite3.connect(home / "index.sqlite", timeout=30) as conn:
            conn.execute("UPDATE system_versions SET signer = ? WHERE code = ?", (signer, code))
    assert client.get("/audit/drift").json()["ok"] is True


def test_one_directory_changes_are_the_jurisdictions_own_events(
    single: tuple[Service, TestClient, Path], anvil: AnvilNode
) -> None:
    service, client, _ = single
    from registry.audit import CHANGE_CATEGORIES

    address = service.client.address
    body = client.get("/audit/changes", params={"jurisdiction": "110115", "from": 0, "to": NEVER}).json()
    assert body["directories"] == [{"chain_id": anvil.chain_id, "address": address}]
    jid = keccak(text="110115")
    expected: dict[str, set[tuple[Any, ...]]] = {c: set() for c in set(CHANGE_CATEGORIES.values())}
    for ev in _decoded(anvil, {"address": address}):
        if ev.event not in CHANGE_CATEGORIES:
            continue
        about = (ev.args.get("id"), ev.args.get("parent")) if ev.event == "JurisdictionAdded" else (
            ev.args.get("jurisdiction"),)
        if jid in about:
            expected[CHANGE_CATEGORIES[ev.event]].add((ev.event, ev.tx_hash.lower(), ev.log_index))
    assert _got_changes(body) == expected
    assert len(expected["versions"]) == 7 + 53 and len(expected["jurisdictions"]) == 1
    assert all(v["detail"]["jurisdiction"] == "110115" and v["origin"] is None for v in body["versions"])
