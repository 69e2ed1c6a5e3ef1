"""Evidence bundles against a real anvil, verified after the node is stopped.

One anvil node of this module's own: a directory with the conftest world, a seed-sized catalog registered
(version 1) and updated (version 2) in a block of 21 transactions, a second catalog retired. Everything that
needs the node — the bundles, ``dirchain evidence``, documents checked with :func:`verify_document`, real
block JSON — is gathered first; then the node is **stopped** and every bundle check runs offline, with only
the trusted block hash.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from chain import proofs
from chain.node import AnvilNode
from chain.rpc import Rpc
from dirchain.cli import app
from registry.canonical import record_json
from registry.evidence import (
    CHECKS,
    FORMAT,
    DocumentResult,
    VerificationResult,
    build_bundle,
    dump_bundle,
    verify_bundle,
    verify_document,
)
from registry.messages import record_message, retire_message
from registry.models import CatalogRecord
from registry.seed import read_directory
from tests.integration.conftest import (
    CHAIN_ID,
    catalog_record,
    deadline,
    new_chain,
    next_nonce,
    sign,
    submit,
)
from tests.integration.conftest import build_world as build_conftest_world

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FILLERS = 20  # other registrations mined in the same block as version 2


def seed_catalog(dept: Any) -> CatalogRecord:
    """The largest catalog of the shipped seed directory, owned by ``dept`` (no source system on this chain)."""
    catalogs = read_directory(ROOT / "data" / "beijing-seed-directory.json").catalogs
    largest = max(catalogs, key=lambda c: len(json.dumps(record_json(c), ensure_ascii=False)))
    data = {**record_json(largest), "provider": dept.name, "provider_code": dept.code,
            "jurisdiction": dept.jurisdiction}
    data.pop("source_system", None)
    return CatalogRecord.model_validate(data)


@dataclass
class Gathered:
    """What was read from the chain before the node stopped."""

    rpc_url: str
    directory: str
    code: str
    signer: str
    v1: CatalogRecord
    v2: CatalogRecord
    bundle: dict[str, Any]
    bundle_v1: dict[str, Any]
    retirement: dict[str, Any]
    retired_code: str
    cli_text: str
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)  # label → block JSON with full txs
    receipts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    documents: dict[str, DocumentResult] = field(default_factory=dict)
    online: VerificationResult | None = None
    online_wrong_chain: VerificationResult | None = None


def _block(rpc: Rpc, number: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    blk = rpc.call("eth_getBlockByNumber", [hex(number), True])
    return blk, [rpc.call("eth_getTransactionReceipt", [tx["hash"]]) for tx in blk["transactions"]]


@pytest.fixture(scope="module")
def gathered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gathered]:
    node = AnvilNode(chain_id=CHAIN_ID)
    node.start()
    try:
        rpc = Rpc(node.rpc_url)
        chain = new_chain(rpc)
        world = build_conftest_world(chain)
        client, dept, key = world.client, world.department("xc_civil"), world.keys["xc_civil"]
        v1 = seed_catalog(dept)
        submit(client, key, record_message(v1, "register", 1, next_nonce(), deadline()))
        retired = catalog_record(dept, code="301001/XC0900")
        submit(client, key, record_message(retired, "register", 1, next_nonce(), deadline()))
        submit(client, key, retire_message("catalog", retired.code, dept.jurisdiction, dept.code, 2, next_nonce(),
                                           deadline()))
        # version 2 in the middle of a block of 21 transactions: a receipts trie with branch nodes
        v2 = CatalogRecord.model_validate({**record_json(v1), "summary": v1.summary + "（2025年修订）",
                                           "share_type": "unconditional", "share_conditions": None})
        rpc.call("evm_setAutomine", [False])
        hashes = []
        for i in range(FILLERS + 1):
            if i == FILLERS // 2:
                msg = record_message(v2, "update", 2, next_nonce(), deadline())
            else:
                msg = record_message(catalog_record(dept, code=f"301001/XC{i + 1:04d}"), "register", 1,
                                     next_nonce(), deadline())
            hashes.append(client.submit(msg.primary, [sign(client, key, msg)]))
        rpc.call("evm_mine", [])
        rpc.call("evm_setAutomine", [True])
        assert client.sender is not None
        receipts = [client.sender.wait(h) for h in hashes]
        assert len({r.block_number for r in receipts}) == 1, "expected the 21 transactions in one block"
        rpc.call("evm_mine", [])  # an empty block on top

        bundle = build_bundle(rpc, client.address, "catalog", v1.code, 2)
        g = Gathered(
            rpc_url=node.rpc_url, directory=client.address, code=v1.code, signer=key.address, v1=v1, v2=v2,
            bundle=bundle,
            bundle_v1=build_bundle(rpc, client.address, "catalog", v1.code, 1),
            retirement=build_bundle(rpc, client.address, "catalog", retired.code),
            retired_code=retired.code,
            cli_text="",
        )
        out = tmp_path_factory.mktemp("evidence") / "bundle.json"
        run = CliRunner().invoke(app, ["evidence", v1.code, "--version", "2", "--rpc", node.rpc_url,
                                       "--directory", client.address, "--out", str(out)])
        assert run.exit_code == 0, run.output
        g.cli_text = out.read_text(encoding="utf-8")
        head = int(rpc.call("eth_blockNumber", []), 16)
        for label, number in (("genesis", 0), ("deployment", 1), ("busy", receipts[0].block_number),
                              ("empty", head)):
            g.blocks[label], g.receipts[label] = _block(rpc, number)
        docs = {
            "v2": record_json(v2),
            "v1": record_json(v1),
            "altered": {**record_json(v2), "summary": record_json(v2)["summary"] + "。"},
            "altered_item": _altered_item(record_json(v2)),
            "missing_field": {k: v for k, v in record_json(v2).items() if k != "update_frequency"},
            "unknown_code": {**record_json(v2), "code": "301001/XC9999"},
            "empty": {},
        }
        g.documents = {name: verify_document(rpc, client.address, None, doc) for name, doc in docs.items()}
        g.online = verify_bundle(bundle, rpc=rpc)
        g.online_wrong_chain = verify_bundle({**bundle, "chainId": CHAIN_ID + 1}, rpc=rpc)
        rpc.close()
    finally:
        node.stop()
    with pytest.raises(httpx.HTTPError):  # the node is gone: everything below is offline
        httpx.post(node.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
    yield g


def _altered_item(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["data_items"][1]["name"] += "X"
    return doc


def trusted(g: Gathered, bundle: dict[str, Any] | None = None) -> str:
    return str((bundle or g.bundle)["block"]["hash"])


def assert_fails(result: VerificationResult, number: int, name: str, subject: str, *needles: str) -> str:
    """The plan stopped at check ``number`` (``name``) after every earlier check passed; returns the message."""
    assert not result.ok
    assert result.failure is not None, "expected a failure"
    message = str(result.failure)
    assert (result.failure.number, result.failure.name) == (number, name), message
    assert message.startswith(f"check {number} {name} of {subject}: "), message
    assert "expected" in message and "got" in message, message
    assert [c.number for c in result.checks] == list(range(1, number + 1))
    assert all(c.passed for c in result.checks[:-1]) and not result.checks[-1].passed
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# ---------------------------------------------------------------------------------------- the bundle


def test_bundle_of_version_2_verifies_offline_with_the_trusted_block_hash(gathered: Gathered) -> None:
    g = gathered
    result = verify_bundle(json.loads(dump_bundle(g.bundle)), trusted_block_hash=trusted(g))
    assert result.ok, result.failure
    assert [(c.number, c.name, c.passed) for c in result.checks] == [(n, name, True) for n, name in CHECKS]
    f = result.facts
    assert (f["kind"], f["code"], f["version"], f["signer"]) == ("catalog", g.code, 2, g.signer)
    assert f["tx_hash"] == g.bundle["transaction"]["hash"] and f["block_hash"] == trusted(g)
    assert f["transaction_index"] == FILLERS // 2
    assert len(g.bundle["proof"]["receipt"]) >= 2 and len(g.bundle["proof"]["transaction"]) >= 2
    assert json.loads(g.bundle["record"]) == record_json(g.v2)
    assert g.bundle["format"] == FORMAT and g.bundle["version"] == 2
    size = len(dump_bundle(g.bundle).encode("utf-8"))
    print(f"\nbundle of a seed-sized catalog (record {len(g.bundle['record'].encode())} B): {size} bytes; "
          f"verified offline in {result.elapsed_ms:.1f} ms")
    assert size < 64 * 1024
    assert result.elapsed_ms < 2000


def test_bundle_is_deterministic_and_the_cli_writes_the_same_file(gathered: Gathered) -> None:
    assert gathered.cli_text == dump_bundle(gathered.bundle)
    assert dump_bundle(json.loads(gathered.cli_text)) == gathered.cli_text


def test_version_1_and_a_retirement_verify_too(gathered: Gathered) -> None:
    g = gathered
    v1 = verify_bundle(g.bundle_v1, trusted_block_hash=trusted(g, g.bundle_v1))
    assert v1.ok, v1.failure
    assert v1.facts["version"] == 1 and json.loads(g.bundle_v1["record"]) == record_json(g.v1)
    r = verify_bundle(g.retirement, trusted_block_hash=trusted(g, g.retirement))
    assert r.ok, r.failure
    assert g.retirement["event"]["name"] == "CatalogRetired" and g.retirement["record"] is None
    assert r.checks[5].detail == "retirement: no record"


def test_online_anchor_and_a_chain_id_mismatch(gathered: Gathered) -> None:
    assert gathered.online is not None and gathered.online.ok, gathered.online.failure
    assert "RPC" in gathered.online.checks[1].detail
    assert gathered.online_wrong_chain is not None
    assert_fails(gathered.online_wrong_chain, 2, "header", f"catalog {gathered.code} version 2",
                 "chain id of the RPC: expected 31338, got 31337")


# ---------------------------------------------------------------------------------------- one flipped byte


def _flip_hex(value: str, at: int) -> str:
    raw = bytearray.fromhex(value[2:])
    raw[at] ^= 0x01
    return "0x" + raw.hex()


def _flip_text(text: str, at: int) -> str:
    raw = bytearray(text.encode("utf-8"))
    assert raw[at] < 0x80, "flip an ASCII byte so the text stays UTF-8"
    raw[at] ^= 0x01
    return raw.decode("utf-8")


def _check(g: Gathered, mutate: Any) -> VerificationResult:
    bundle = copy.deepcopy(g.bundle)
    mutate(bundle)
    return verify_bundle(bundle, trusted_block_hash=trusted(g))


def test_a_flipped_record_byte_fails_the_digest_check(gathered: Gathered) -> None:
    g = gathered
    digest = g.bundle["event"]["fields"]["digest"]
    for at in (2, len(g.bundle["record"].encode()) - 3):
        result = _check(g, lambda b, at=at: b.update(record=_flip_text(b["record"], at)))
        assert_fails(result, 6, "digest", f"catalog {g.code} version 2",
                               f"keccak256 of the record: expected {digest}, got 0x")


def test_a_flipped_signature_byte_fails_the_event_check(gathered: Gathered) -> None:
    g = gathered

    def mutate(b: dict[str, Any]) -> None:
        b["event"]["fields"]["signature"] = _flip_hex(b["event"]["fields"]["signature"], 40)

    assert_fails(_check(g, mutate), 5, "event", f"catalog {g.code} version 2", "event field signature")


def test_altered_eip712_types_fail_the_signature_check(gathered: Gathered) -> None:
    g = gathered

    def retyped(b: dict[str, Any]) -> None:
        b["eip712"]["type"] = b["eip712"]["type"].replace("uint256 deadline", "uint128 deadline")

    message = assert_fails(_check(g, retyped), 7, "signature", f"catalog {g.code} version 2",
                           f"signer: expected {g.signer}, got 0x")
    assert message.count(g.signer) == 1

    def renamed(b: dict[str, Any]) -> None:
        b["eip712"]["type"] = b["eip712"]["type"].replace("uint256 deadline", "uint256 expiry")

    assert_fails(_check(g, renamed), 7, "signature", f"catalog {g.code} version 2",
                 "eip712.type: expected members of the Catalog submission, got unknown member 'expiry'")


@pytest.mark.parametrize("which", ["root", "leaf"])
def test_a_flipped_receipt_proof_node_fails_the_receipt_check(gathered: Gathered, which: str) -> None:
    g = gathered
    n = 0 if which == "root" else len(g.bundle["proof"]["receipt"]) - 1

    def mutate(b: dict[str, Any]) -> None:
        node = b["proof"]["receipt"][n]
        b["proof"]["receipt"][n] = _flip_hex(node, (len(node) - 2) // 4)

    assert_fails(_check(g, mutate), 3, "receipt", f"catalog {g.code} version 2",
                 f"receipt proof under receiptsRoot {g.bundle['block']['receiptsRoot']}")


def test_a_flipped_transaction_proof_node_fails_the_transaction_check(gathered: Gathered) -> None:
    g = gathered

    def mutate(b: dict[str, Any]) -> None:
        b["proof"]["transaction"][-1] = _flip_hex(b["proof"]["transaction"][-1], 30)

    assert_fails(_check(g, mutate), 8, "transaction", f"catalog {g.code} version 2",
                 "transaction proof under transactionsRoot")


@pytest.mark.parametrize("field_name", ["stateRoot", "receiptsRoot", "parentBeaconBlockRoot", "logsBloom"])
def test_a_flipped_header_byte_fails_the_header_check(gathered: Gathered, field_name: str) -> None:
    g = gathered
    result = _check(g, lambda b: b["block"].update({field_name: _flip_hex(b["block"][field_name], 5)}))
    assert_fails(result, 2, "header", f"catalog {g.code} version 2",
                 f"header RLP hash: expected {trusted(g)} (the bundle's block hash), got 0x")


def test_a_consistent_forged_header_fails_against_the_trusted_hash(gathered: Gathered) -> None:
    """Altering receiptsRoot and recomputing the hash makes a self-consistent header the auditor does not trust."""
    g = gathered
    forged = copy.deepcopy(g.bundle)
    forged["block"]["receiptsRoot"] = _flip_hex(forged["block"]["receiptsRoot"], 0)
    forged["block"]["hash"] = "0x" + proofs.header_hash(forged["block"]).hex()
    result = verify_bundle(forged, trusted_block_hash=trusted(g))
    assert_fails(result, 2, "header", f"catalog {g.code} version 2",
                 f"block hash: expected {trusted(g)} (trusted), got {forged['block']['hash']}")


def test_other_alterations_name_their_check(gathered: Gathered) -> None:
    g = gathered
    subject = f"catalog {g.code} version 2"

    def log_data(b: dict[str, Any]) -> None:
        log = b["receipt"]["logs"][b["event"]["receiptLogPosition"]]
        log["data"] = _flip_hex(log["data"], 100)

    assert_fails(_check(g, log_data), 3, "receipt", subject, "receipt bytes (keccak): expected")
    assert_fails(_check(g, lambda b: b.update(code="301001/XC0002")), 4, "log", "catalog 301001/XC0002 version 2",
                 "topic1 (codeHash = keccak(code))")
    assert_fails(_check(g, lambda b: b.update(version=1)), 5, "event", f"catalog {g.code} version 1",
                 "event version: expected 1, got 2")
    assert_fails(_check(g, lambda b: b["transaction"].update(value="0x1")), 8, "transaction", subject,
                 f"transaction hash: expected {g.bundle['transaction']['hash']}, got 0x")
    assert_fails(_check(g, lambda b: b["event"].update(receiptLogPosition=7)), 4, "log", subject,
                 "log position: expected < 1 logs in the receipt, got 7")


def test_wrong_trusted_hash_and_no_anchor_fail_the_header_check(gathered: Gathered) -> None:
    g = gathered
    other = trusted(g, g.bundle_v1)
    assert_fails(verify_bundle(g.bundle, trusted_block_hash=other), 2, "header", f"catalog {g.code} version 2",
                 f"block hash: expected {other} (trusted), got {trusted(g)}")
    assert_fails(verify_bundle(g.bundle), 2, "header", f"catalog {g.code} version 2",
                 "expected a trusted block hash or an RPC, got neither")


@pytest.mark.parametrize(
    ("bundle", "needle"),
    [
        (None, "bundle: expected a non-empty JSON object, got None"),
        ({}, "bundle: expected a non-empty JSON object, got {}"),
        ([1, 2], "bundle: expected a non-empty JSON object"),
        ({"format": "dirchain-evidence/0"}, f"format: expected {FORMAT}, got 'dirchain-evidence/0'"),
    ],
)
def test_empty_or_foreign_input_fails_closed_at_check_1(bundle: Any, needle: str, gathered: Gathered) -> None:
    result = verify_bundle(bundle, trusted_block_hash=trusted(gathered))
    assert_fails(result, 1, "format", "bundle", needle)


def test_missing_pieces_fail_check_1(gathered: Gathered) -> None:
    for key in ("block", "receipt", "proof", "record", "eip712"):
        bundle = copy.deepcopy(gathered.bundle)
        del bundle[key]
        result = verify_bundle(bundle, trusted_block_hash=trusted(gathered))
        assert_fails(result, 1, "format", f"catalog {gathered.code} version 2", f"bundle.{key}: expected")
    bundle = copy.deepcopy(gathered.bundle)
    bundle["proof"]["receipt"] = []
    assert_fails(verify_bundle(bundle, trusted_block_hash=trusted(gathered)), 1, "format",
                 f"catalog {gathered.code} version 2", "proof.receipt: expected proof nodes, got none")


# ---------------------------------------------------------------------------------------- real headers


@pytest.mark.parametrize("label", ["genesis", "deployment", "busy", "empty"])
def test_header_rlp_of_real_anvil_blocks_hashes_to_the_block_hash(gathered: Gathered, label: str) -> None:
    blk = gathered.blocks[label]
    header = {k: v for k, v in blk.items() if k != "transactions"}
    assert proofs.check_header(header) == bytes.fromhex(blk["hash"][2:])
    txs = [proofs.check_transaction(tx) for tx in blk["transactions"]]
    receipts = [proofs.encode_receipt(r) for r in gathered.receipts[label]]
    assert proofs.trie_root(txs).hex() == blk["transactionsRoot"][2:]
    assert proofs.trie_root(receipts).hex() == blk["receiptsRoot"][2:]
    expected = {"genesis": 0, "deployment": 1, "busy": FILLERS + 1, "empty": 0}[label]
    assert len(txs) == expected
    assert blk.get("requestsHash") is not None  # a Prague header: every fork field down to EIP-7685


# ---------------------------------------------------------------------------------------- documents


def test_the_committed_documents_are_found_with_their_provenance(gathered: Gathered) -> None:
    g = gathered
    v2, v1 = g.documents["v2"], g.documents["v1"]
    assert v2.ok, v2.failure
    assert (v2.version, v2.status, v2.signer) == (2, "current", g.signer)
    assert v2.tx_hash == g.bundle["transaction"]["hash"] and v2.block_hash == trusted(g)
    assert v2.log_index == g.bundle["event"]["logIndex"] and v2.differences == []
    assert v2.bundle is not None and v2.bundle.ok
    assert v1.ok, v1.failure
    assert (v1.version, v1.status) == (1, "superseded")


def test_an_altered_field_fails_naming_the_field(gathered: Gathered) -> None:
    g = gathered
    altered = g.documents["altered"]
    assert not altered.ok and altered.version == 2
    assert [d.path for d in altered.differences] == ["summary"]
    assert altered.failure is not None
    assert "nearest is version 2" in altered.failure
    assert f"field summary: expected {g.v2.summary!r}, got {(g.v2.summary + '。')!r}" in altered.failure
    item = g.documents["altered_item"]
    assert not item.ok and [d.path for d in item.differences] == ["data_items[1].name"]
    missing = g.documents["missing_field"]
    assert not missing.ok and [d.path for d in missing.differences] == ["update_frequency"]
    assert missing.failure is not None
    assert f"field update_frequency: expected {g.v2.update_frequency.value!r}, got no such field" in missing.failure


def test_unknown_and_empty_documents_fail_closed(gathered: Gathered) -> None:
    unknown, empty = gathered.documents["unknown_code"], gathered.documents["empty"]
    assert not unknown.ok and unknown.failure is not None
    assert "catalog 301001/XC9999: expected a committed version in directory" in unknown.failure
    assert not empty.ok and empty.failure == "document: expected a non-empty JSON object, got {}"


# ---------------------------------------------------------------------------------------- command line


def test_cli_verify_passes_offline_and_names_the_first_failed_check(gathered: Gathered, tmp_path: Path) -> None:
    g = gathered
    good = tmp_path / "good.json"
    good.write_text(dump_bundle(g.bundle), encoding="utf-8")
    run = CliRunner().invoke(app, ["verify", str(good), "--trusted-block-hash", trusted(g)])
    assert run.exit_code == 0, run.output
    assert "ok   check 8 transaction" in run.output
    assert f"verified: catalog {g.code} version 2 signed by {g.signer}" in run.output
    bad = copy.deepcopy(g.bundle)
    bad["record"] = _flip_text(bad["record"], 5)
    bad_path = tmp_path / "bad.json"
    bad_path.write_text(dump_bundle(bad), encoding="utf-8")
    run = CliRunner().invoke(app, ["verify", str(bad_path), "--trusted-block-hash", trusted(g)])
    assert run.exit_code == 1
    assert f"FAIL check 6 digest of catalog {g.code} version 2: keccak256 of the record: expected" in run.output
    run = CliRunner().invoke(app, ["verify", str(good)])
    assert run.exit_code == 1 and "check 2 header" in run.output and "got neither" in run.output
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(record_json(g.v2), ensure_ascii=False), encoding="utf-8")
    run = CliRunner().invoke(app, ["verify", str(doc)])
    assert run.exit_code == 2 and "give --rpc and --directory" in run.output
