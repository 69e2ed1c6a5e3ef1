"""Consensus encodings and Merkle-Patricia inclusion proofs: what lets an auditor check a log offline.

Everything here works on the JSON objects a node returns (``eth_getBlockByHash(hash, false)``,
``eth_getTransactionByHash``, ``eth_getTransactionReceipt``: 0x-hex strings) and turns them back into
the bytes the block commits to:

* the **block header** RLP, whose keccak-256 is the block hash (Ethereum Yellow Paper §4.3, plus the
  fields later forks append: EIP-1559, EIP-4895, EIP-4844, EIP-4788, EIP-7685);
* a **transaction** in its EIP-2718 envelope (legacy, EIP-2930, EIP-1559, EIP-4844, EIP-7702), whose
  keccak-256 is the transaction hash and which is the value of the block's transactions trie;
* a **receipt** in its EIP-2718 envelope (EIP-658 status, cumulative gas, bloom, logs), the value of
  the block's receipts trie;
* the **tries** themselves (key ``rlp(transactionIndex)``, Yellow Paper §4.4.1 and Appendix D) and
  inclusion proofs of one value against the header's ``transactionsRoot`` / ``receiptsRoot``.

The tries are py-trie's :class:`trie.HexaryTrie` (``get_proof`` / ``HexaryTrie.get_from_proof``), RLP is
the ``rlp`` package. No SQL, no registry imports, no network: the caller fetches the JSON.

Not covered: consensus engines that hash a header other than the plain RLP (Besu IBFT 2.0 / QBFT compute
the block hash with the commit seals removed from ``extraData``), and non-Ethereum transaction types
(e.g. OP-stack deposits, type 0x7e). Both raise :class:`EncodingError` or fail the hash comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import rlp
from eth_utils import keccak
from trie import HexaryTrie
from trie.exceptions import BadTrieProof

from chain.errors import ChainError

# ---------------------------------------------------------------------------------------- errors


class ProofError(ChainError):
    """Root of this module's errors: an encoding that cannot be built or a proof that does not hold."""


class EncodingError(ProofError):
    """A JSON object cannot be encoded: ``field`` is missing or malformed (``reason`` says how)."""

    def __init__(self, what: str, field: str, reason: str) -> None:
        super().__init__(f"{what}.{field}: {reason}")
        self.what = what
        self.field = field
        self.reason = reason


class HashMismatch(ProofError):
    """Encoded bytes do not hash to the hash the JSON states (``expected`` / ``got``: 0x-hex)."""

    def __init__(self, what: str, expected: str, got: str) -> None:
        super().__init__(f"{what}: expected hash {expected}, got {got}")
        self.what = what
        self.expected = expected
        self.got = got


class InvalidProof(ProofError):
    """A Merkle-Patricia proof does not prove a value at ``key`` under ``root`` (``reason`` says why)."""

    def __init__(self, root: bytes, key: bytes, reason: str) -> None:
        super().__init__(f"proof of key 0x{key.hex()} under root 0x{root.hex()}: {reason}")
        self.root = root
        self.key = key
        self.reason = reason


# ---------------------------------------------------------------------------------------- JSON → values


def hex_bytes(value: Any, what: str = "value", field: str = "?", length: int | None = None) -> bytes:
    """Bytes of a 0x-hex string (``"0x"`` is empty bytes). ``length``: required size in bytes, if any.

    Raises :class:`EncodingError` for a non-string, a missing ``0x`` prefix, odd or non-hex digits, or the
    wrong size."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise EncodingError(what, field, f"expected a 0x-hex string, got {value!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise EncodingError(what, field, f"expected a 0x-hex string, got {value!r}") from exc
    if length is not None and len(raw) != length:
        raise EncodingError(what, field, f"expected {length} bytes, got {len(raw)}")
    return raw


def hex_int(value: Any, what: str = "value", field: str = "?") -> int:
    """Non-negative integer of a 0x-hex quantity (``"0x0"``, ``"0x1b"``); a JSON integer is accepted as is.

    Raises :class:`EncodingError` for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3:
        raise EncodingError(what, field, f"expected a 0x-hex quantity, got {value!r}")
    try:
        return int(value[2:], 16)
    except ValueError as exc:
        raise EncodingError(what, field, f"expected a 0x-hex quantity, got {value!r}") from exc


def _get(obj: Mapping[str, Any], what: str, field: str) -> Any:
    if not isinstance(obj, Mapping):
        raise EncodingError(what, field, f"expected a JSON object, got {type(obj).__name__}")
    if field not in obj or obj[field] is None:
        raise EncodingError(what, field, "missing")
    return obj[field]


# ---------------------------------------------------------------------------------------- block header

#: Field kinds: ``int`` (RLP scalar, minimal big-endian, zero = empty string), ``bytes`` (any length),
#: or a fixed byte length.
_Kind = str | int

#: The 15 header fields of the Yellow Paper (§4.3, in RLP order) by their JSON-RPC names:
#: parentHash Hp, sha3Uncles Ho (ommersHash), miner Hc (beneficiary), stateRoot Hr, transactionsRoot Ht,
#: receiptsRoot He, logsBloom Hb (256 bytes), difficulty Hd, number Hi, gasLimit Hl, gasUsed Hg,
#: timestamp Hs, extraData Hx, mixHash Hm (prevRandao since EIP-4399), nonce Hn (8 bytes).
HEADER_FIELDS: tuple[tuple[str, _Kind], ...] = (
    ("parentHash", 32),
    ("sha3Uncles", 32),
    ("miner", 20),
    ("stateRoot", 32),
    ("transactionsRoot", 32),
    ("receiptsRoot", 32),
    ("logsBloom", 256),
    ("difficulty", "int"),
    ("number", "int"),
    ("gasLimit", "int"),
    ("gasUsed", "int"),
    ("timestamp", "int"),
    ("extraData", "bytes"),
    ("mixHash", 32),
    ("nonce", 8),
)

#: Fields later forks append, in RLP order; a header carries a prefix of this list, never a gap:
#: baseFeePerGas (EIP-1559, London), withdrawalsRoot (EIP-4895, Shanghai), blobGasUsed and excessBlobGas
#: (EIP-4844, Cancun), parentBeaconBlockRoot (EIP-4788, Cancun), requestsHash (EIP-7685, Prague),
#: blockAccessListHash (EIP-7928) and slotNumber (EIP-7843) (Amsterdam, drafts at the time of writing).
HEADER_FORK_FIELDS: tuple[tuple[str, _Kind], ...] = (
    ("baseFeePerGas", "int"),
    ("withdrawalsRoot", 32),
    ("blobGasUsed", "int"),
    ("excessBlobGas", "int"),
    ("parentBeaconBlockRoot", 32),
    ("requestsHash", 32),
    ("blockAccessListHash", 32),
    ("slotNumber", "int"),
)

#: Keys of ``eth_getBlockByHash`` JSON that are not header fields (body, derived or informational).
BLOCK_NON_HEADER_KEYS = frozenset(
    {"hash", "size", "totalDifficulty", "transactions", "uncles", "withdrawals", "sealFields", "author"}
)


def _value(obj: Mapping[str, Any], what: str, field: str, kind: _Kind) -> int | bytes:
    raw = _get(obj, what, field)
    if kind == "int":
        return hex_int(raw, what, field)
    if kind == "bytes":
        return hex_bytes(raw, what, field)
    assert isinstance(kind, int)
    return hex_bytes(raw, what, field, kind)


def header_fields(block: Mapping[str, Any]) -> list[int | bytes]:
    """The header's RLP items, in order, from ``eth_getBlockByHash(hash, false)`` JSON.

    The 15 Yellow Paper fields must all be present; the fork fields of :data:`HEADER_FORK_FIELDS` are taken
    while present and must form a prefix of that list (EIP-1559 … EIP-7685 each append one or two).
    Raises :class:`EncodingError` for a missing or malformed field, a fork field after a gap, or a key that
    is neither a known header field nor a known non-header key (a header field of a fork this code does not
    know would otherwise be silently left out)."""
    what = "block"
    items: list[int | bytes] = [_value(block, what, name, kind) for name, kind in HEADER_FIELDS]
    gap: str | None = None
    for name, kind in HEADER_FORK_FIELDS:
        if block.get(name) is None:
            gap = gap or name
            continue
        if gap is not None:
            raise EncodingError(what, name, f"present while the earlier fork field {gap} is missing")
        items.append(_value(block, what, name, kind))
    known = {n for n, _ in HEADER_FIELDS} | {n for n, _ in HEADER_FORK_FIELDS} | BLOCK_NON_HEADER_KEYS
    unknown = sorted(k for k in block if k not in known)
    if unknown:
        raise EncodingError(what, unknown[0], "unknown key: cannot tell whether it is a header field")
    return items


def encode_header(block: Mapping[str, Any]) -> bytes:
    """RLP of the block header (Yellow Paper §4.3 and the fork fields, see :func:`header_fields`).

    ``block``: ``eth_getBlockByHash(hash, false)`` / ``eth_getBlockByNumber(n, false)`` JSON.
    Raises :class:`EncodingError` (see :func:`header_fields`)."""
    return rlp.encode(header_fields(block))


def header_hash(block: Mapping[str, Any]) -> bytes:
    """keccak-256 of :func:`encode_header` (32 bytes): the block hash, computed rather than read."""
    return keccak(encode_header(block))


def check_header(block: Mapping[str, Any]) -> bytes:
    """Check that the header JSON hashes to its own ``hash``; returns the hash (32 bytes).

    Raises :class:`HashMismatch` ("expected <JSON hash>, got <computed>") or :class:`EncodingError`."""
    stated = hex_bytes(_get(block, "block", "hash"), "block", "hash", 32)
    computed = header_hash(block)
    if computed != stated:
        raise HashMismatch("block header", "0x" + stated.hex(), "0x" + computed.hex())
    return stated


# ---------------------------------------------------------------------------------------- transactions


def _address_or_empty(value: Any, what: str, field: str) -> bytes:
    return b"" if value is None else hex_bytes(value, what, field, 20)


def _access_list(tx: Mapping[str, Any], what: str) -> list[list[Any]]:
    entries = tx.get("accessList") or []
    if not isinstance(entries, list):
        raise EncodingError(what, "accessList", f"expected a list, got {entries!r}")
    return [
        [
            hex_bytes(_get(e, what, "address"), what, "accessList.address", 20),
            [hex_bytes(k, what, "accessList.storageKeys", 32) for k in e.get("storageKeys") or []],
        ]
        for e in entries
    ]


def _authorization_list(tx: Mapping[str, Any], what: str) -> list[list[Any]]:
    entries = _get(tx, what, "authorizationList")
    if not isinstance(entries, list):
        raise EncodingError(what, "authorizationList", f"expected a list, got {entries!r}")
    out = []
    for e in entries:
        parity = e.get("yParity", e.get("v"))
        out.append(
            [
                hex_int(_get(e, what, "chainId"), what, "authorizationList.chainId"),
                hex_bytes(_get(e, what, "address"), what, "authorizationList.address", 20),
                hex_int(_get(e, what, "nonce"), what, "authorizationList.nonce"),
                hex_int(parity, what, "authorizationList.yParity"),
                hex_int(_get(e, what, "r"), what, "authorizationList.r"),
                hex_int(_get(e, what, "s"), what, "authorizationList.s"),
            ]
        )
    return out


def transaction_type(tx: Mapping[str, Any]) -> int:
    """EIP-2718 type of a transaction or receipt JSON (``type``; absent = 0, legacy)."""
    raw = tx.get("type")
    return 0 if raw is None else hex_int(raw, "transaction", "type")


def encode_transaction(tx: Mapping[str, Any]) -> bytes:
    """The signed transaction as the block's transactions trie holds it, from ``eth_getTransactionByHash``.

    Legacy (type 0): ``rlp([nonce, gasPrice, gas, to, value, input, v, r, s])`` (Yellow Paper §4.2,
    EIP-155 ``v``). Typed (EIP-2718): ``type ‖ rlp(payload)`` with payload
    ``[chainId, nonce, gasPrice, gas, to, value, input, accessList, yParity, r, s]`` (EIP-2930, type 1),
    ``[chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value, input, accessList, yParity, r,
    s]`` (EIP-1559, type 2), the same with ``maxFeePerBlobGas, blobVersionedHashes`` before ``yParity``
    (EIP-4844, type 3) or with ``authorizationList`` there (EIP-7702, type 4). ``to`` null (contract
    creation) encodes as the empty string. keccak-256 of the result is the transaction hash.
    Raises :class:`EncodingError` for a missing field or an unknown type."""
    what = "transaction"
    kind = transaction_type(tx)

    def i(name: str) -> int:
        return hex_int(_get(tx, what, name), what, name)

    to = _address_or_empty(tx.get("to"), what, "to")
    data = hex_bytes(_get(tx, what, "input"), what, "input")
    if kind == 0:
        return rlp.encode([i("nonce"), i("gasPrice"), i("gas"), to, i("value"), data, i("v"), i("r"), i("s")])
    parity = hex_int(tx["yParity"] if tx.get("yParity") is not None else _get(tx, what, "v"), what, "yParity")
    signature = [parity, i("r"), i("s")]
    if kind == 1:
        payload: list[Any] = [i("chainId"), i("nonce"), i("gasPrice"), i("gas"), to, i("value"), data,
                              _access_list(tx, what)]
    elif kind in (2, 3, 4):
        payload = [i("chainId"), i("nonce"), i("maxPriorityFeePerGas"), i("maxFeePerGas"), i("gas"), to,
                   i("value"), data, _access_list(tx, what)]
        if kind == 3:
            hashes = _get(tx, what, "blobVersionedHashes")
            payload += [i("maxFeePerBlobGas"), [hex_bytes(h, what, "blobVersionedHashes", 32) for h in hashes]]
        elif kind == 4:
            payload.append(_authorization_list(tx, what))
    else:
        raise EncodingError(what, "type", f"expected an Ethereum transaction type 0-4, got {kind}")
    return bytes([kind]) + rlp.encode(payload + signature)


def check_transaction(tx: Mapping[str, Any]) -> bytes:
    """Check that the transaction JSON encodes to bytes hashing to its ``hash``; returns the encoding.

    Raises :class:`HashMismatch` or :class:`EncodingError`."""
    encoded = encode_transaction(tx)
    stated = hex_bytes(_get(tx, "transaction", "hash"), "transaction", "hash", 32)
    computed = keccak(encoded)
    if computed != stated:
        raise HashMismatch("transaction", "0x" + stated.hex(), "0x" + computed.hex())
    return encoded


# ---------------------------------------------------------------------------------------- receipts


def encode_log(log: Mapping[str, Any]) -> list[Any]:
    """RLP item of one log: ``[address (20 bytes), [topic (32 bytes) …], data]`` (Yellow Paper §4.3.1).

    ``log``: one entry of a receipt's ``logs`` (its position fields are ignored). Raises :class:`EncodingError`."""
    what = "log"
    topics = _get(log, what, "topics")
    if not isinstance(topics, list):
        raise EncodingError(what, "topics", f"expected a list, got {topics!r}")
    return [
        hex_bytes(_get(log, what, "address"), what, "address", 20),
        [hex_bytes(t, what, "topics", 32) for t in topics],
        hex_bytes(_get(log, what, "data"), what, "data"),
    ]


def encode_receipt(receipt: Mapping[str, Any]) -> bytes:
    """The receipt as the block's receipts trie holds it, from ``eth_getTransactionReceipt`` JSON.

    Payload ``rlp([status, cumulativeGasUsed, logsBloom (256 bytes), logs])`` where status is the EIP-658
    outcome (1 success, 0 failure; scalar, so 0 is the empty string) or, before Byzantium, the 32-byte
    post-state ``root``; logs as :func:`encode_log`. Type 0 receipts are the bare RLP; typed receipts
    (EIP-2718, types 1-4) are ``type ‖ rlp(payload)``. Raises :class:`EncodingError`."""
    what = "receipt"
    kind = transaction_type(receipt)
    if receipt.get("status") is not None:
        outcome: int | bytes = hex_int(receipt["status"], what, "status")
        if outcome not in (0, 1):
            raise EncodingError(what, "status", f"expected 0x0 or 0x1 (EIP-658), got {receipt['status']!r}")
    else:
        outcome = hex_bytes(_get(receipt, what, "root"), what, "root", 32)
    logs = _get(receipt, what, "logs")
    if not isinstance(logs, list):
        raise EncodingError(what, "logs", f"expected a list, got {logs!r}")
    body = rlp.encode(
        [
            outcome,
            hex_int(_get(receipt, what, "cumulativeGasUsed"), what, "cumulativeGasUsed"),
            hex_bytes(_get(receipt, what, "logsBloom"), what, "logsBloom", 256),
            [encode_log(log) for log in logs],
        ]
    )
    if kind == 0:
        return body
    if kind > 4:
        raise EncodingError(what, "type", f"expected an Ethereum receipt type 0-4, got {kind}")
    return bytes([kind]) + body


# ---------------------------------------------------------------------------------------- tries and proofs


def trie_key(index: int) -> bytes:
    """Key of the ``index``-th transaction / receipt in its block's trie: ``rlp(index)`` (Yellow Paper
    §4.4.1; ``rlp(0)`` is ``0x80``). Raises ValueError for a negative index."""
    if index < 0:
        raise ValueError(f"expected a transaction index ≥ 0, got {index}")
    return rlp.encode(index)


def build_trie(values: Sequence[bytes]) -> HexaryTrie:
    """The index-keyed trie of a block's encoded transactions or receipts (``values[i]`` at ``rlp(i)``).

    Its ``root_hash`` (32 bytes) is the header's ``transactionsRoot`` / ``receiptsRoot``; an empty block
    gives keccak(rlp(b"")) = 0x56e81f…b421."""
    trie = HexaryTrie({})
    with trie.squash_changes() as batch:
        for index, value in enumerate(values):
            batch[trie_key(index)] = value
    return trie


def trie_root(values: Sequence[bytes]) -> bytes:
    """Root hash (32 bytes) of :func:`build_trie` of ``values``."""
    return bytes(build_trie(values).root_hash)


def make_proof(values: Sequence[bytes], index: int) -> list[bytes]:
    """Inclusion proof of ``values[index]`` in the index-keyed trie: the RLP-encoded nodes from the root
    down to the leaf (py-trie's ``HexaryTrie.get_proof``, each node re-encoded with RLP).

    Raises IndexError for an index outside ``values``."""
    if not 0 <= index < len(values):
        raise IndexError(f"expected an index in 0..{len(values) - 1}, got {index}")
    trie = build_trie(values)
    return [rlp.encode(node) for node in trie.get_proof(trie_key(index))]


def verify_proof(root: bytes, index: int, proof: Sequence[bytes]) -> bytes:
    """The value the proof shows at key ``rlp(index)`` under ``root`` (py-trie's ``get_from_proof``).

    ``proof``: RLP-encoded trie nodes as :func:`make_proof` returns them. Raises :class:`InvalidProof` if
    a node is not valid RLP, a node the path needs is missing (a node altered in any byte no longer hashes
    to the reference its parent holds), or the proof shows no value at the key."""
    key = trie_key(index)
    if len(root) != 32:
        raise InvalidProof(root, key, f"expected a 32-byte root, got {len(root)} bytes")
    if not proof:
        raise InvalidProof(root, key, "expected proof nodes, got none")
    try:
        nodes = [rlp.decode(node) for node in proof]
    except rlp.exceptions.DecodingError as exc:
        raise InvalidProof(root, key, f"a proof node is not valid RLP ({exc})") from exc
    try:
        value = HexaryTrie.get_from_proof(root, key, nodes)
    except BadTrieProof as exc:
        missing = getattr(exc.__cause__, "missing_node_hash", None)
        wanted = f"a node with hash 0x{bytes(missing).hex()}" if missing is not None else "the nodes of the path"
        raise InvalidProof(root, key, f"expected {wanted} on the path to the key, got none in the proof "
                                      "(a node was altered or left out)") from exc
    except Exception as exc:  # py-trie raises ValidationError / InvalidNode / ... on malformed nodes
        raise InvalidProof(root, key, f"malformed proof node ({type(exc).__name__}: {exc})") from exc
    if not value:
        raise InvalidProof(root, key, "the proof shows no value at the key")
    return bytes(value)
