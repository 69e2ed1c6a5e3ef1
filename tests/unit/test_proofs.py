"""chain.proofs in-process: header, transaction and receipt encodings, tries and inclusion proofs.

``proofs_anvil_block.json`` is a real anvil 1.7 (Prague) block with three transfers of types 0, 1 and 2, their
transactions and receipts as the node returned them: the encodings must reproduce the node's block hash,
transaction hashes, ``transactionsRoot`` and ``receiptsRoot``. Transactions signed here by eth-account give an
independent encoder to compare with; proofs with one byte altered anywhere must fail.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak

from chain import proofs

FIXTURE = json.loads((Path(__file__).parent / "proofs_anvil_block.json").read_text(encoding="utf-8"))
EMPTY_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
TO = "0x" + "22" * 20


def block() -> dict[str, Any]:
    return copy.deepcopy(FIXTURE["block"])


def flip(hex_str: str, byte: int) -> str:
    """``hex_str`` (0x-hex) with byte ``byte`` XOR 0x01."""
    raw = bytearray.fromhex(hex_str[2:])
    raw[byte] ^= 0x01
    return "0x" + raw.hex()


# ---------------------------------------------------------------------------------------- header


def test_header_of_a_real_anvil_block_hashes_to_its_hash() -> None:
    b = block()
    assert proofs.check_header(b) == bytes.fromhex(b["hash"][2:])
    fields = proofs.header_fields(b)
    # 15 Yellow Paper fields + baseFee, withdrawalsRoot, blobGasUsed, excessBlobGas, parentBeaconRoot, requestsHash
    assert len(fields) == 21
    assert rlp.decode(proofs.encode_header(b))[8] == b"\x01"  # number 1, minimal big-endian


@pytest.mark.parametrize(
    "field", ["parentHash", "stateRoot", "receiptsRoot", "timestamp", "baseFeePerGas", "requestsHash", "logsBloom"]
)
def test_a_header_with_one_altered_field_does_not_hash_to_the_block_hash(field: str) -> None:
    b = block()
    b[field] = flip(b[field], -1) if b[field] != "0x0" else "0x1"
    with pytest.raises(proofs.HashMismatch) as caught:
        proofs.check_header(b)
    assert caught.value.expected == b["hash"]
    assert caught.value.got != b["hash"]


def test_header_fork_fields_are_a_prefix_and_unknown_keys_fail_closed() -> None:
    b = block()
    del b["withdrawalsRoot"]
    with pytest.raises(proofs.EncodingError, match="blobGasUsed: present while the earlier fork field "
                                                   "withdrawalsRoot is missing"):
        proofs.encode_header(b)
    b = block()
    b["someFutureRoot"] = "0x" + "00" * 32
    with pytest.raises(proofs.EncodingError, match="someFutureRoot: unknown key"):
        proofs.encode_header(b)
    b = block()
    del b["mixHash"]
    with pytest.raises(proofs.EncodingError, match=r"block\.mixHash: missing"):
        proofs.encode_header(b)
    b = block()
    b["miner"] = "0x1234"
    with pytest.raises(proofs.EncodingError, match="miner: expected 20 bytes, got 2"):
        proofs.encode_header(b)


def test_a_header_without_fork_fields_is_the_15_field_yellow_paper_list() -> None:
    b = block()
    for name, _ in proofs.HEADER_FORK_FIELDS:
        b.pop(name, None)
    assert len(rlp.decode(proofs.encode_header(b))) == 15


# ---------------------------------------------------------------------------------------- transactions


def test_transactions_of_a_real_block_hash_to_their_hashes_and_root() -> None:
    encoded = [proofs.check_transaction(tx) for tx in FIXTURE["transactions"]]
    assert [e[0] for e in encoded[1:]] == [1, 2]  # EIP-2718 type bytes; the legacy one is a bare RLP list
    assert encoded[0][0] >= 0xC0
    assert proofs.trie_root(encoded) == bytes.fromhex(FIXTURE["block"]["transactionsRoot"][2:])


def _signed_json(tx: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """A transaction signed by eth-account, as the node's JSON (0x-hex) and eth-account's raw bytes."""
    acct = Account.from_key("0x" + "11" * 32)
    signed = acct.sign_transaction(tx)
    out: dict[str, Any] = {"type": hex(tx.get("type", 0)), "hash": "0x" + bytes(signed.hash).hex(),
                           "r": hex(signed.r), "s": hex(signed.s), "v": hex(signed.v),
                           "input": "0x" + bytes(tx.get("data", b"")).hex(), "to": tx["to"]}
    for key in ("chainId", "nonce", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "value"):
        if key in tx:
            out[key] = hex(tx[key])
    if tx.get("type", 0):
        out["yParity"] = hex(signed.v)
        out["accessList"] = tx.get("accessList", [])
    if "authorizationList" in tx:
        out["authorizationList"] = [
            {"chainId": hex(a.chain_id), "address": "0x" + bytes(a.address).hex(), "nonce": hex(a.nonce),
             "yParity": hex(a.y_parity), "r": hex(a.r), "s": hex(a.s)}
            for a in tx["authorizationList"]
        ]
    return out, bytes(signed.raw_transaction)


def _authorization() -> Any:
    return Account.from_key("0x" + "33" * 32).sign_authorization({"chainId": 7, "address": TO, "nonce": 3})


@pytest.mark.parametrize(
    "tx",
    [
        {"nonce": 5, "gasPrice": 10**9, "gas": 21000, "to": TO, "value": 1, "data": b"", "chainId": 7},
        {"type": 1, "nonce": 6, "gasPrice": 10**9, "gas": 40000, "to": TO, "value": 0, "data": b"\xab" * 40,
         "chainId": 7, "accessList": [{"address": TO, "storageKeys": ["0x" + "00" * 31 + "05"]}]},
        {"type": 2, "nonce": 0, "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 1, "gas": 90000, "to": TO,
         "value": 10**18, "data": b"\x01" * 100, "chainId": 7},
        "type4",
    ],
    ids=["legacy-eip155", "eip2930", "eip1559", "eip7702"],
)
def test_transaction_encoding_equals_eth_account_raw_transaction(tx: Any) -> None:
    if tx == "type4":
        tx = {"type": 4, "nonce": 1, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1, "gas": 100000, "to": TO,
              "value": 0, "data": b"", "chainId": 7, "accessList": [], "authorizationList": [_authorization()]}
    as_json, raw = _signed_json(tx)
    assert proofs.encode_transaction(as_json) == raw
    assert proofs.check_transaction(as_json) == raw
    as_json["value"] = hex(int(as_json["value"], 16) + 1)
    with pytest.raises(proofs.HashMismatch):
        proofs.check_transaction(as_json)


def test_unknown_transaction_type_fails_closed() -> None:
    tx = dict(FIXTURE["transactions"][2], type="0x7e")
    with pytest.raises(proofs.EncodingError, match="type: expected an Ethereum transaction type 0-4, got 126"):
        proofs.encode_transaction(tx)


# ---------------------------------------------------------------------------------------- receipts


def test_receipts_of_a_real_block_rebuild_its_receipts_root() -> None:
    encoded = [proofs.encode_receipt(r) for r in FIXTURE["receipts"]]
    assert proofs.trie_root(encoded) == bytes.fromhex(FIXTURE["block"]["receiptsRoot"][2:])
    assert encoded[1][0] == 1 and encoded[2][0] == 2 and encoded[0][0] >= 0xC0


def _receipt(**changes: Any) -> dict[str, Any]:
    base = {
        "type": "0x2",
        "status": "0x1",
        "cumulativeGasUsed": "0x5208",
        "logsBloom": "0x" + "00" * 256,
        "logs": [
            {"address": "0x" + "aa" * 20, "topics": ["0x" + "01" * 32, "0x" + "02" * 32], "data": "0x" + "ff" * 70},
            {"address": "0x" + "bb" * 20, "topics": [], "data": "0x"},
        ],
    }
    base.update(changes)
    return base


def test_receipt_encoding_follows_eip2718_and_eip658() -> None:
    typed = proofs.encode_receipt(_receipt())
    assert typed[0] == 2
    status, gas, bloom, logs = rlp.decode(typed[1:])
    assert (status, int.from_bytes(gas, "big"), bloom) == (b"\x01", 21000, b"\x00" * 256)
    assert logs[0] == [b"\xaa" * 20, [b"\x01" * 32, b"\x02" * 32], b"\xff" * 70]
    assert logs[1] == [b"\xbb" * 20, [], b""]
    legacy = proofs.encode_receipt(_receipt(type="0x0", status="0x0"))
    assert legacy[0] >= 0xC0  # type 0: the bare RLP list, no type byte
    assert rlp.decode(legacy)[0] == b""  # failure: scalar 0 is the empty string
    root = "0x" + "cd" * 32
    pre_byzantium = _receipt(type="0x0", root=root)
    del pre_byzantium["status"]
    assert rlp.decode(proofs.encode_receipt(pre_byzantium))[0] == b"\xcd" * 32
    with pytest.raises(proofs.EncodingError, match="status: expected 0x0 or 0x1"):
        proofs.encode_receipt(_receipt(status="0x2"))
    with pytest.raises(proofs.EncodingError, match="logsBloom: expected 256 bytes"):
        proofs.encode_receipt(_receipt(logsBloom="0x00"))


# ---------------------------------------------------------------------------------------- tries and proofs


def _values(n: int) -> list[bytes]:
    return [proofs.encode_receipt(_receipt(cumulativeGasUsed=hex(21000 * (i + 1)))) for i in range(n)]


def test_trie_keys_and_the_empty_root() -> None:
    assert proofs.trie_key(0) == b"\x80"
    assert proofs.trie_key(1) == b"\x01"
    assert proofs.trie_key(128) == b"\x81\x80"
    assert proofs.trie_root([]) == EMPTY_ROOT == keccak(rlp.encode(b""))


@pytest.mark.parametrize("count", [1, 2, 17, 130])
def test_every_value_round_trips_through_its_proof(count: int) -> None:
    values = _values(count)
    root = proofs.trie_root(values)
    for index in {0, 1, count // 2, count - 1} & set(range(count)):
        proof = proofs.make_proof(values, index)
        assert proofs.verify_proof(root, index, proof) == values[index]
        if count > 16:
            assert len(proof) >= 2  # a branch above the leaf
        if count > 1:
            other = (index + 1) % count
            # the proof of one index does not prove another: it lacks the path or shows another value
            try:
                got = proofs.verify_proof(root, other, proof)
            except proofs.InvalidProof:
                continue
            assert got != values[index] or values[other] == values[index]


@pytest.mark.parametrize("count", [1, 40])
def test_one_altered_byte_in_any_proof_node_fails(count: int) -> None:
    values = _values(count)
    root = proofs.trie_root(values)
    index = count - 1
    proof = proofs.make_proof(values, index)
    for n, node in enumerate(proof):
        for at in (0, len(node) // 2, len(node) - 1):
            altered = bytearray(node)
            altered[at] ^= 0x01
            bad = [*proof[:n], bytes(altered), *proof[n + 1 :]]
            with pytest.raises(proofs.InvalidProof):
                proofs.verify_proof(root, index, bad)


def test_a_proof_against_another_root_or_without_nodes_fails() -> None:
    values = _values(20)
    proof = proofs.make_proof(values, 3)
    other_root = proofs.trie_root(_values(21))
    with pytest.raises(proofs.InvalidProof, match=f"expected a node with hash 0x{other_root.hex()} on the path"):
        proofs.verify_proof(other_root, 3, proof)
    with pytest.raises(proofs.InvalidProof, match="expected proof nodes, got none"):
        proofs.verify_proof(proofs.trie_root(values), 3, [])
    with pytest.raises(proofs.InvalidProof, match="expected a 32-byte root"):
        proofs.verify_proof(b"\x00", 3, proof)
    with pytest.raises(IndexError):
        proofs.make_proof(values, 20)


def test_a_real_receipt_is_proven_under_the_real_receipts_root() -> None:
    encoded = [proofs.encode_receipt(r) for r in FIXTURE["receipts"]]
    root = bytes.fromhex(FIXTURE["block"]["receiptsRoot"][2:])
    for index, value in enumerate(encoded):
        assert proofs.verify_proof(root, index, proofs.make_proof(encoded, index)) == value


def test_hex_helpers_fail_closed() -> None:
    assert proofs.hex_bytes("0x") == b""
    assert proofs.hex_int("0x0") == 0
    for bad in (None, "", "12", "0xzz", 5):
        with pytest.raises(proofs.EncodingError):
            proofs.hex_bytes(bad)
    for bad in (None, "0x", "0xg", -1, True):
        with pytest.raises(proofs.EncodingError):
            proofs.hex_int(bad)
