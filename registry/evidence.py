"""Evidence bundles: prove offline that a catalog or system version was committed on chain.

An auditor holds a block hash they trust (from a node they run, a published checkpoint, a newspaper).
:func:`build_bundle` reads, from a chain RPC alone, everything needed to connect one version's event log
to that block: the block header, the transaction and its receipt, and Merkle-Patricia inclusion proofs of
both against the header's ``transactionsRoot`` and ``receiptsRoot`` (:mod:`chain.proofs`). The bundle is
a JSON file (hex strings, sorted keys). :func:`verify_bundle` checks it with the node switched off, as a
numbered plan of checks that stops at the first failure and names it ("check 6 digest of catalog
301001/XC01 version 3: expected 0xab…, got 0xcd…"):

1. **format** — the bundle's shape and format version (:data:`FORMAT`);
2. **header** — the header's RLP hashes to the stated block hash, which equals the trusted hash (or, given
   an RPC, the chain's block at that height); without either anchor the check fails;
3. **receipt** — the receipt JSON re-encodes (EIP-2718/EIP-658) to the value the proof shows at
   ``rlp(transactionIndex)`` under ``receiptsRoot``, and the transaction succeeded;
4. **log** — the receipt's log at the stated position was emitted by the stated directory, with the event's
   topic and ``codeHash`` = keccak(code);
5. **event** — the log decodes (Directory ABI) to the stated event fields, kind, code and version;
6. **digest** — the record is RFC 8785 canonical JSON of the stated code and keccak-256 of it is the event's
   digest (a retirement carries no record);
7. **signature** — the EIP-712 signature in the event recovers the event's signer, under the directory's
   domain, or the origin directory's for a record relayed from a lower tier (named by the ``Relayed`` log
   that follows it in the same receipt);
8. **transaction** — the transaction JSON re-encodes to bytes hashing to its hash, which the proof shows at
   the same index under ``transactionsRoot``; it calls the directory on the bundle's chain.

What the bundle does not prove: that the block is final (the trust anchor's job), the block-level log index
(the node's numbering; the bundle proves the log's position inside its receipt), and that the signer held the
department's role (the contract checked it when it accepted the record; its proof would need state proofs).

:func:`verify_document` answers "is this JSON document a committed version?" against an RPC: which
version, signed by whom, in which transaction, block and log — or, for an altered document, which fields
differ from the nearest committed version of the same code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import rfc8785
from eth_utils import keccak, to_checksum_address

from chain import eip712, proofs
from chain.abi import ContractCodec, DecodedLog
from chain.artifacts import load_artifact
from chain.directory import DirectoryClient
from chain.relay import decode_call, recover_signer, relay_item
from chain.rpc import Rpc, RpcError
from registry.errors import RegistryError

#: Format version of the bundles this module writes and reads.
FORMAT = "dirchain-evidence/1"

Kind = Literal["catalog", "system"]

#: Per kind: (version event, retirement event, EIP-712 primary type).
EVENTS: dict[str, tuple[str, str, str]] = {
    "catalog": ("CatalogVersionRecorded", "CatalogRetired", "Catalog"),
    "system": ("SystemVersionRecorded", "SystemRetired", "System"),
}

#: The numbered plan :func:`verify_bundle` runs, in order.
CHECKS: tuple[tuple[int, str], ...] = (
    (1, "format"),
    (2, "header"),
    (3, "receipt"),
    (4, "log"),
    (5, "event"),
    (6, "digest"),
    (7, "signature"),
    (8, "transaction"),
)

#: Keys of a block JSON kept in a bundle: the header fields and the hash.
_HEADER_KEYS = frozenset(
    [name for name, _ in proofs.HEADER_FIELDS] + [name for name, _ in proofs.HEADER_FORK_FIELDS] + ["hash"]
)


# ---------------------------------------------------------------------------------------- errors


class EvidenceError(RegistryError):
    """Root of this module's errors."""


class BundleBuildError(EvidenceError):
    """A bundle cannot be built: no such version on chain, or the node's data do not add up."""


class CheckFailed(EvidenceError):
    """Check ``number`` (``name``) of :data:`CHECKS` failed for ``subject`` ("catalog 301001/XC01 version 3").

    ``reason`` says what was expected and what was found. ``str()`` is the full sentence:
    ``check 6 digest of catalog 301001/XC01 version 3: expected 0xab…, got 0xcd…``.
    """

    def __init__(self, number: int, name: str, subject: str, reason: str) -> None:
        super().__init__(f"check {number} {name} of {subject}: {reason}")
        self.number = number
        self.name = name
        self.subject = subject
        self.reason = reason


class _Fail(Exception):
    """Raised inside a check; the runner turns it into :class:`CheckFailed`."""


def _expect(ok: bool, what: str, expected: Any, got: Any) -> None:
    if not ok:
        raise _Fail(f"{what}: expected {expected}, got {got}")


# ---------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CheckOutcome:
    """One check of the plan that ran: ``number``, ``name``, ``passed``, and what it established or why not."""

    number: int
    name: str
    passed: bool
    detail: str


@dataclass
class VerificationResult:
    """Outcome of :func:`verify_bundle`.

    ``ok`` only if every check of :data:`CHECKS` passed; ``checks`` are those that ran, in order (the plan
    stops at the first failure, which is ``failure``). ``facts`` hold what was proven: kind, code, version,
    digest, signer, chain id, directory, tx hash, block number and hash, log position and the node's log
    index, and for a relayed record its origin domain. ``elapsed_ms``: wall time of the verification.
    """

    ok: bool
    checks: list[CheckOutcome] = field(default_factory=list)
    failure: CheckFailed | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    def raise_for_failure(self) -> None:
        """Raise :attr:`failure` if the verification failed."""
        if self.failure is not None:
            raise self.failure
        if not self.ok:
            raise EvidenceError("verification did not complete")


@dataclass(frozen=True)
class FieldDifference:
    """One field of a document that differs from a committed record: ``path`` (``data_items[1].name``), the
    committed value (``expected``, ``None`` with ``missing="document"`` when the document lacks it) and the
    document's (``got``, ``None`` with ``missing="record"`` when the record lacks it)."""

    path: str
    expected: Any
    got: Any
    missing: str = ""

    def __str__(self) -> str:
        if self.missing == "document":
            return f"field {self.path}: expected {self.expected!r}, got no such field"
        if self.missing == "record":
            return f"field {self.path}: expected no such field, got {self.got!r}"
        return f"field {self.path}: expected {self.expected!r}, got {self.got!r}"


@dataclass
class DocumentResult:
    """Outcome of :func:`verify_document`.

    ``ok`` when the document's canonical JSON is a committed version of its code and that version's bundle
    verifies against the RPC. ``version``, ``signer``, ``tx_hash``, ``block_number``, ``block_hash``,
    ``log_index``: the matching version (or, when not ok, the nearest one); ``status``: ``current``,
    ``superseded`` or ``retired``. ``differences``: fields that differ from the nearest version (empty when
    ok). ``failure``: why not ok, naming the first differing field. ``bundle``: the verification of the
    matching version's bundle.
    """

    ok: bool
    kind: str
    code: str
    digest: str = ""
    version: int | None = None
    signer: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    log_index: int | None = None
    status: str | None = None
    differences: list[FieldDifference] = field(default_factory=list)
    failure: str | None = None
    bundle: VerificationResult | None = None


# ---------------------------------------------------------------------------------------- JSON helpers


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def _short(value: str, keep: int = 10) -> str:
    return value if len(value) <= 2 * keep + 2 else f"{value[: keep + 2]}…{value[-keep:]}"


def dump_bundle(bundle: Mapping[str, Any]) -> str:
    """The bundle as deterministic JSON text: sorted keys, two-space indent, UTF-8 characters kept, final newline."""
    return json.dumps(bundle, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def subject_of(kind: Any, code: Any, version: Any) -> str:
    """``catalog 301001/XC01 version 3`` (what a check message is about)."""
    return f"{kind} {code} version {version}"


@cache
def _codec() -> ContractCodec:
    return ContractCodec(load_artifact("Directory").abi)


def _type_string(primary: str, types: eip712.Types) -> str:
    return f"{primary}({','.join(m['type'] + ' ' + m['name'] for m in types[primary])})"


# ---------------------------------------------------------------------------------------- reading the chain


def _get_logs(rpc: Rpc, address: str, topics: list[Any], from_block: int, to_block: int) -> list[dict[str, Any]]:
    """``eth_getLogs`` of ``address`` with ``topics`` over a range; halves a range the node refuses."""
    params = [{"address": address, "fromBlock": hex(from_block), "toBlock": hex(to_block), "topics": topics}]
    try:
        result = rpc.call("eth_getLogs", params)
    except RpcError:
        if from_block == to_block:
            raise
        middle = (from_block + to_block) // 2
        return _get_logs(rpc, address, topics, from_block, middle) + _get_logs(
            rpc, address, topics, middle + 1, to_block
        )
    if not isinstance(result, list):
        raise BundleBuildError(f"eth_getLogs: expected a list of logs, got {type(result).__name__}")
    wanted = address.lower()
    return [raw for raw in result if str(raw.get("address", "")).lower() == wanted and not raw.get("removed")]


def record_events(rpc: Rpc, directory_address: str, kind: str, code: str) -> list[DecodedLog]:
    """Every version and retirement event of ``kind`` ``code`` in the directory, decoded, in chain order
    (found by ``codeHash`` = keccak(code), topic 1, from block 0 up to the current head).

    Raises :class:`BundleBuildError` for an unknown kind, :class:`chain.rpc.RpcError` for a node error."""
    if kind not in EVENTS:
        raise BundleBuildError(f"kind: expected catalog or system, got {kind!r}")
    codec = _codec()
    version_event, retired_event, _ = EVENTS[kind]
    topic0s = [_hex(codec.topics_by_name[version_event]), _hex(codec.topics_by_name[retired_event])]
    head = int(rpc.call("eth_blockNumber", []), 16)
    address = to_checksum_address(directory_address)
    raws = _get_logs(rpc, address, [topic0s, _hex(keccak(text=code))], 0, head)
    out = []
    for raw in raws:
        ev = codec.decode_log(raw)
        if ev is not None and ev.event in (version_event, retired_event) and ev.args["code"] == code:
            out.append(ev)
    out.sort(key=lambda e: (e.block_number, e.log_index))
    return out


def _block_receipts(rpc: Rpc, block: Mapping[str, Any]) -> list[dict[str, Any]]:
    hashes = [tx["hash"] for tx in block["transactions"]]
    try:
        receipts = rpc.call("eth_getBlockReceipts", [block["hash"]])
    except RpcError:
        receipts = None
    if not isinstance(receipts, list) or len(receipts) != len(hashes):
        results = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        receipts = []
        for h, r in zip(hashes, results, strict=True):
            if isinstance(r, RpcError) or r is None:
                raise BundleBuildError(f"no receipt for transaction {h}: {r}")
            receipts.append(r)
    receipts.sort(key=lambda r: int(r["transactionIndex"], 16))
    return receipts


def build_bundle(
    rpc: Rpc,
    directory_address: str,
    kind: str,
    code: str,
    version: int | None = None,
    *,
    retirement: bool = False,
) -> dict[str, Any]:
    """The evidence bundle of one version of a catalog or system, read from the chain behind ``rpc`` alone.

    ``kind``: ``catalog`` or ``system``; ``version``: the version (None: the latest event of the code, which
    is its retirement if it was retired); ``retirement``: take the retirement event at ``version`` instead of
    the version event. The bundle (a JSON-ready dict, see :func:`dump_bundle`) holds: ``format``,
    ``chainId``, ``directory``, ``kind``, ``code``, ``version``; ``event`` (name, the node's block-level
    ``logIndex``, the log's ``receiptLogPosition`` and the decoded ``fields`` other than the record); the
    ``record`` (canonical JSON text; null for a retirement); ``eip712`` (primary type, type string and
    domain the signature is checked under); the ``block`` header JSON, the ``transaction`` and its
    ``receipt`` as the node returns them; ``proof`` (``transactionIndex`` and the RLP trie nodes, 0x-hex,
    proving the transaction and the receipt against the header's roots).

    Raises :class:`BundleBuildError` when the version is not on chain or the node's block data do not
    re-encode to the header's roots (e.g. a transaction type :mod:`chain.proofs` does not know),
    :class:`chain.rpc.RpcError` / :class:`chain.rpc.RpcUnavailable` for node errors."""
    address = to_checksum_address(directory_address)
    found = record_events(rpc, address, kind, code)
    version_event, retired_event, primary = EVENTS[kind]
    if version is None:
        if not found:
            raise BundleBuildError(f"no version of {kind} {code} in directory {address}")
        ev = found[-1]
    else:
        wanted = retired_event if retirement else version_event
        matches = [e for e in found if e.event == wanted and int(e.args["version"]) == version]
        if not matches:
            have = ", ".join(f"{e.event} v{e.args['version']}" for e in found) or "none"
            raise BundleBuildError(f"no {wanted} of {kind} {code} version {version} in directory {address} "
                                   f"(on chain: {have})")
        ev = matches[-1]
    chain_id = int(rpc.call("eth_chainId", []), 16)
    block = rpc.call("eth_getBlockByHash", [ev.block_hash, True])
    if block is None:
        raise BundleBuildError(f"block {ev.block_hash} of the event is no longer on the chain")
    header = {k: v for k, v in block.items() if k in _HEADER_KEYS}
    proofs.check_header(header)
    txs = [dict(tx) for tx in block["transactions"]]
    receipts = _block_receipts(rpc, block)
    tx_values = [proofs.encode_transaction(tx) for tx in txs]
    receipt_values = [proofs.encode_receipt(r) for r in receipts]
    for what, values, root in (("transactions", tx_values, "transactionsRoot"), ("receipts", receipt_values,
                                                                                 "receiptsRoot")):
        computed = proofs.trie_root(values)
        if _hex(computed) != str(header[root]).lower():
            raise BundleBuildError(f"the block's {what} do not re-encode to its {root}: expected {header[root]}, "
                                   f"got {_hex(computed)}")
    index = ev.tx_index
    receipt = receipts[index]
    position = next(
        (i for i, lg in enumerate(receipt["logs"]) if int(lg["logIndex"], 16) == ev.log_index), None
    )
    if position is None:
        raise BundleBuildError(f"log {ev.log_index} is not in the receipt of {ev.tx_hash}")
    transaction = rpc.call("eth_getTransactionByHash", [ev.tx_hash])
    client = DirectoryClient(rpc, address, chain_id)
    relayed = _relayed_origin(receipt["logs"], position, address)
    dom_chain, dom_directory = relayed if relayed is not None else (chain_id, address)
    fields = {k: _jsonable(v) for k, v in ev.args.items() if k != "record"}
    record = ev.args.get("record")
    return {
        "format": FORMAT,
        "chainId": chain_id,
        "directory": address,
        "kind": kind,
        "code": code,
        "version": int(ev.args["version"]),
        "event": {"name": ev.event, "logIndex": ev.log_index, "receiptLogPosition": position, "fields": fields},
        "record": None if record is None else bytes(record).decode("utf-8"),
        "eip712": {
            "primaryType": primary,
            "type": _type_string(primary, client.types),
            "domain": eip712.domain(dom_chain, dom_directory),
        },
        "block": header,
        "transaction": transaction,
        "receipt": receipt,
        "proof": {
            "transactionIndex": index,
            "transaction": [_hex(n) for n in proofs.make_proof(tx_values, index)],
            "receipt": [_hex(n) for n in proofs.make_proof(receipt_values, index)],
        },
    }


def _relayed_origin(logs: list[Mapping[str, Any]], position: int, directory: str) -> tuple[int, str] | None:
    """(chain id, directory) of the origin a record log was relayed from: the first ``Relayed`` log of the
    same directory after it in its receipt (the parent emits the relayed call's events, then ``Relayed``);
    None for a local submission."""
    codec = _codec()
    relayed_topic = codec.topics_by_name["Relayed"]
    for raw in logs[position + 1 :]:
        if str(raw["address"]).lower() != directory.lower():
            continue
        topics = raw["topics"]
        if topics and proofs.hex_bytes(topics[0]) == relayed_topic:
            ev = codec.decode_log(_as_log(raw))
            if ev is not None:
                return int(ev.args["chainId"]), to_checksum_address(ev.args["directory"])
    return None


def _as_log(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A receipt log with the position fields :meth:`ContractCodec.decode_log` needs (zero where absent)."""
    log = dict(raw)
    for key in ("blockNumber", "transactionIndex", "logIndex"):
        log.setdefault(key, "0x0")
    for key in ("blockHash", "transactionHash"):
        log.setdefault(key, "0x" + "00" * 32)
    return log


# ---------------------------------------------------------------------------------------- verification


@dataclass
class _Context:
    raw: Any
    bundle: Mapping[str, Any]
    trusted_block_hash: str | None
    rpc: Rpc | None
    facts: dict[str, Any] = field(default_factory=dict)
    block_hash: bytes = b""
    receipt_logs: list[Any] = field(default_factory=list)
    log: Mapping[str, Any] = field(default_factory=dict)
    event: DecodedLog | None = None


def _require(obj: Any, key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise _Fail(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise _Fail(f"{where}.{key}: expected a value, got none")
    value = obj[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise _Fail(f"{where}.{key}: expected {names}, got {type(value).__name__}")
    return value


def _check_format(ctx: _Context) -> str:
    b = ctx.bundle
    if not isinstance(ctx.raw, Mapping) or not ctx.raw:
        raise _Fail(f"bundle: expected a non-empty JSON object, got {ctx.raw!r:.40}")
    _expect(b.get("format") == FORMAT, "format", FORMAT, repr(b.get("format")))
    chain_id = _require(b, "chainId", int, "bundle")
    _expect(chain_id > 0, "chainId", "a positive chain id", chain_id)
    directory = _require(b, "directory", str, "bundle")
    proofs.hex_bytes(directory, "bundle", "directory", 20)
    kind = _require(b, "kind", str, "bundle")
    _expect(kind in EVENTS, "kind", "catalog or system", repr(kind))
    _expect(bool(_require(b, "code", str, "bundle")), "code", "a record code", "an empty string")
    _expect(_require(b, "version", int, "bundle") >= 1, "version", "a version ≥ 1", b["version"])
    event = _require(b, "event", Mapping, "bundle")
    name = _require(event, "name", str, "event")
    _expect(name in EVENTS[kind][:2], "event.name", " or ".join(EVENTS[kind][:2]), repr(name))
    _require(event, "logIndex", int, "event")
    _expect(_require(event, "receiptLogPosition", int, "event") >= 0, "event.receiptLogPosition", "≥ 0",
            event["receiptLogPosition"])
    _require(event, "fields", Mapping, "event")
    if name == EVENTS[kind][0]:
        _require(b, "record", str, "bundle")
    else:
        _expect(b.get("record") is None, "record", "null for a retirement", "a record")
    e712 = _require(b, "eip712", Mapping, "bundle")
    _expect(_require(e712, "primaryType", str, "eip712") == EVENTS[kind][2], "eip712.primaryType",
            EVENTS[kind][2], repr(e712["primaryType"]))
    _require(e712, "type", str, "eip712")
    for key in ("block", "transaction", "receipt", "proof"):
        _require(b, key, Mapping, "bundle")
    proof = b["proof"]
    _expect(_require(proof, "transactionIndex", int, "proof") >= 0, "proof.transactionIndex", "≥ 0",
            proof["transactionIndex"])
    for key in ("transaction", "receipt"):
        nodes = _require(proof, key, list, "proof")
        _expect(bool(nodes), f"proof.{key}", "proof nodes", "none")
        for i, node in enumerate(nodes):
            proofs.hex_bytes(node, "proof", f"{key}[{i}]")
    ctx.facts.update(kind=kind, code=b["code"], version=b["version"], chain_id=chain_id,
                     directory=to_checksum_address(directory), event=name)
    return f"{FORMAT}, {name}"


def _check_header(ctx: _Context) -> str:
    block = ctx.bundle["block"]
    try:
        ctx.block_hash = proofs.check_header(block)
    except proofs.HashMismatch as exc:
        raise _Fail(f"header RLP hash: expected {exc.expected} (the bundle's block hash), got {exc.got}") from exc
    stated = _hex(ctx.block_hash)
    number = proofs.hex_int(block["number"], "block", "number")
    anchors = []
    if ctx.trusted_block_hash is not None:
        try:
            trusted = proofs.hex_bytes(ctx.trusted_block_hash.strip().lower(), "trusted", "block hash", 32)
        except proofs.EncodingError as exc:
            raise _Fail(f"trusted block hash: expected 32 bytes of 0x-hex, got {ctx.trusted_block_hash!r}") from exc
        _expect(trusted == ctx.block_hash, "block hash", f"{_hex(trusted)} (trusted)", stated)
        anchors.append("trusted hash")
    if ctx.rpc is not None:
        chain_id = int(ctx.rpc.call("eth_chainId", []), 16)
        _expect(chain_id == ctx.bundle["chainId"], "chain id of the RPC", ctx.bundle["chainId"], chain_id)
        on_chain = ctx.rpc.call("eth_getBlockByNumber", [hex(number), False])
        chain_hash = "none" if on_chain is None else str(on_chain["hash"]).lower()
        _expect(chain_hash == stated, f"block hash at height {number} on the RPC's chain", chain_hash, stated)
        anchors.append("RPC")
    if not anchors:
        raise _Fail(f"trust anchor of block {number}: expected a trusted block hash or an RPC, got neither")
    ctx.facts.update(block_number=number, block_hash=stated)
    return f"block {number} {_short(stated)} matches the {' and the '.join(anchors)}"


def _check_receipt(ctx: _Context) -> str:
    b = ctx.bundle
    receipt, index = b["receipt"], b["proof"]["transactionIndex"]
    _expect(proofs.hex_int(receipt.get("transactionIndex"), "receipt", "transactionIndex") == index,
            "receipt.transactionIndex", index, receipt.get("transactionIndex"))
    root = proofs.hex_bytes(b["block"]["receiptsRoot"], "block", "receiptsRoot", 32)
    nodes = [proofs.hex_bytes(n) for n in b["proof"]["receipt"]]
    try:
        proven = proofs.verify_proof(root, index, nodes)
    except proofs.InvalidProof as exc:
        raise _Fail(f"receipt proof under receiptsRoot {_hex(root)}: {exc.reason}") from exc
    encoded = proofs.encode_receipt(receipt)
    _expect(proven == encoded, "receipt bytes (keccak)", f"{_hex(keccak(proven))} (proven)",
            f"{_hex(keccak(encoded))} (from the receipt JSON)")
    _expect(receipt.get("status") == "0x1", "receipt.status", "0x1 (success)", receipt.get("status"))
    for key in ("blockHash",):
        if receipt.get(key) is not None:
            _expect(str(receipt[key]).lower() == _hex(ctx.block_hash), f"receipt.{key}", _hex(ctx.block_hash),
                    receipt[key])
    ctx.receipt_logs = list(receipt["logs"])
    return f"receipt of transaction {index} proven under receiptsRoot ({len(nodes)} nodes)"


def _check_log(ctx: _Context) -> str:
    b = ctx.bundle
    position = b["event"]["receiptLogPosition"]
    _expect(position < len(ctx.receipt_logs), "log position", f"< {len(ctx.receipt_logs)} logs in the receipt",
            position)
    log = ctx.receipt_logs[position]
    directory = to_checksum_address(b["directory"])
    _expect(str(log["address"]).lower() == directory.lower(), "log address", directory, log["address"])
    topics = [str(t).lower() for t in log["topics"]]
    topic0 = _hex(_codec().topics_by_name[b["event"]["name"]])
    _expect(bool(topics) and topics[0] == topic0, f"topic0 ({b['event']['name']})", topic0,
            topics[0] if topics else "none")
    code_hash = _hex(keccak(text=b["code"]))
    _expect(len(topics) > 1 and topics[1] == code_hash, "topic1 (codeHash = keccak(code))", code_hash,
            topics[1] if len(topics) > 1 else "none")
    if log.get("logIndex") is not None:
        _expect(proofs.hex_int(log["logIndex"]) == b["event"]["logIndex"], "log index (node's numbering)",
                b["event"]["logIndex"], proofs.hex_int(log["logIndex"]))
    ctx.log = log
    ctx.facts.update(log_position=position, log_index=b["event"]["logIndex"])
    return f"log {position} of the receipt: {b['event']['name']} of {directory}"


def _check_event(ctx: _Context) -> str:
    b = ctx.bundle
    ev = _codec().decode_log(_as_log(ctx.log))
    _expect(ev is not None and ev.event == b["event"]["name"], "decoded event", b["event"]["name"],
            ev.event if ev else "none")
    assert ev is not None
    _expect(ev.args["code"] == b["code"], "event code", repr(b["code"]), repr(ev.args["code"]))
    _expect(int(ev.args["version"]) == b["version"], "event version", b["version"], ev.args["version"])
    stated = b["event"]["fields"]
    decoded = {k: _jsonable(v) for k, v in ev.args.items() if k != "record"}
    for name in sorted(set(decoded) | set(stated)):
        _expect(name in stated, f"event field {name}", repr(decoded.get(name)), "no such field in the bundle")
        _expect(name in decoded, f"event field {name}", "no such field in the event", repr(stated[name]))
        got, want = stated[name], decoded[name]
        same = got.lower() == want.lower() if isinstance(got, str) and isinstance(want, str) else got == want
        _expect(same, f"event field {name}", repr(want), repr(got))
    ctx.event = ev
    ctx.facts.update(signer=ev.args["signer"], nonce=int(ev.args["nonce"]))
    if "digest" in ev.args:
        ctx.facts["digest"] = _hex(bytes(ev.args["digest"]))
    return f"{len(decoded)} fields decoded and equal"


def _check_digest(ctx: _Context) -> str:
    b, ev = ctx.bundle, ctx.event
    assert ev is not None
    if "record" not in ev.args:
        return "retirement: no record"
    digest = bytes(ev.args["digest"])
    record = str(b["record"]).encode("utf-8")
    _expect(keccak(bytes(ev.args["record"])) == digest, "keccak of the event's record", _hex(digest),
            _hex(keccak(bytes(ev.args["record"]))))
    _expect(keccak(record) == digest, "keccak256 of the record", _hex(digest), _hex(keccak(record)))
    try:
        value = json.loads(record)
    except json.JSONDecodeError as exc:
        raise _Fail(f"record: expected JSON, got {exc}") from exc
    canonical = rfc8785.dumps(value)
    _expect(canonical == record, "record", "RFC 8785 canonical JSON", "non-canonical bytes")
    _expect(isinstance(value, dict) and value.get("code") == b["code"], "record code", repr(b["code"]),
            repr(value.get("code") if isinstance(value, dict) else value))
    return f"record of {len(record)} bytes hashes to {_short(_hex(digest))}"


def _check_signature(ctx: _Context) -> str:
    b, ev = ctx.bundle, ctx.event
    assert ev is not None
    chain_id, directory = b["chainId"], to_checksum_address(b["directory"])
    item = relay_item(ev, chain_id)
    if item is None:
        raise _Fail(f"submission: expected a signed submission behind {ev.event}, got none")
    _, args = decode_call(item.call)
    struct = tuple(args[0][0])
    primary = b["eip712"]["primaryType"]
    try:
        types = eip712.parse_types([b["eip712"]["type"]])
    except ValueError as exc:
        raise _Fail(f"eip712.type: {exc}") from exc
    _expect(primary in types, "eip712.type", f"the {primary} type", b["eip712"]["type"])
    if ctx.rpc is not None:
        on_chain = DirectoryClient(ctx.rpc, directory, chain_id).types
        expected_type = _type_string(primary, on_chain)
        _expect(b["eip712"]["type"] == expected_type, "eip712.type", f"{expected_type} (the contract's)",
                b["eip712"]["type"])
    relayed = _relayed_origin(ctx.receipt_logs, b["event"]["receiptLogPosition"], directory)
    dom_chain, dom_directory = relayed if relayed is not None else (chain_id, directory)
    expected_domain = eip712.domain(dom_chain, dom_directory)
    stated_domain = b["eip712"].get("domain")
    if stated_domain is not None:
        _expect(stated_domain == expected_domain, "eip712.domain", expected_domain, stated_domain)
    try:
        recovered = recover_signer(primary, struct, types, dom_chain, dom_directory)
    except KeyError as exc:  # a member the submission does not have
        raise _Fail(f"eip712.type: expected members of the {primary} submission, got unknown member {exc}") from exc
    except Exception as exc:  # SignatureError, or eth-account's errors on garbage
        raise _Fail(f"signer: expected {ev.args['signer']}, got no recoverable signer ({exc})") from exc
    _expect(recovered.lower() == str(ev.args["signer"]).lower(), "signer", ev.args["signer"], recovered)
    where = f"the domain of {dom_directory} on chain {dom_chain}"
    if relayed is not None:
        ctx.facts["relayed_from"] = {"chain_id": dom_chain, "directory": dom_directory}
        where = f"the origin domain (relayed from {dom_directory} on chain {dom_chain})"
    return f"signed by {recovered} under {where}"


def _check_transaction(ctx: _Context) -> str:
    b = ctx.bundle
    tx, index = b["transaction"], b["proof"]["transactionIndex"]
    try:
        encoded = proofs.check_transaction(tx)
    except proofs.HashMismatch as exc:
        raise _Fail(f"transaction hash: expected {exc.expected}, got {exc.got}") from exc
    root = proofs.hex_bytes(b["block"]["transactionsRoot"], "block", "transactionsRoot", 32)
    nodes = [proofs.hex_bytes(n) for n in b["proof"]["transaction"]]
    try:
        proven = proofs.verify_proof(root, index, nodes)
    except proofs.InvalidProof as exc:
        raise _Fail(f"transaction proof under transactionsRoot {_hex(root)}: {exc.reason}") from exc
    tx_hash = str(tx["hash"]).lower()
    _expect(proven == encoded, "transaction at index " + str(index), f"{_hex(keccak(proven))} (proven)", tx_hash)
    receipt_hash = str(b["receipt"].get("transactionHash", "")).lower()
    _expect(receipt_hash == tx_hash, "receipt.transactionHash", tx_hash, receipt_hash or "none")
    directory = to_checksum_address(b["directory"])
    to = tx.get("to")
    _expect(to is not None and str(to).lower() == directory.lower(), "transaction.to", directory, to)
    chain_id = _tx_chain_id(tx)
    if chain_id is not None:
        _expect(chain_id == b["chainId"], "transaction chain id", b["chainId"], chain_id)
    ctx.facts["tx_hash"] = tx_hash
    ctx.facts["transaction_index"] = index
    return f"transaction {_short(tx_hash)} proven at index {index} under transactionsRoot"


def _tx_chain_id(tx: Mapping[str, Any]) -> int | None:
    """Chain id a transaction is signed for: ``chainId`` of a typed one, EIP-155 ``(v - 35) // 2`` of a
    legacy one, None for a pre-EIP-155 legacy transaction (no chain binding)."""
    if proofs.transaction_type(tx) != 0:
        return proofs.hex_int(tx["chainId"], "transaction", "chainId")
    v = proofs.hex_int(tx["v"], "transaction", "v")
    return (v - 35) // 2 if v >= 35 else None


_PLAN: dict[int, Callable[[_Context], str]] = {
    1: _check_format,
    2: _check_header,
    3: _check_receipt,
    4: _check_log,
    5: _check_event,
    6: _check_digest,
    7: _check_signature,
    8: _check_transaction,
}


def verify_bundle(
    bundle: Mapping[str, Any] | None, trusted_block_hash: str | None = None, rpc: Rpc | None = None
) -> VerificationResult:
    """Run the numbered plan of :data:`CHECKS` on a bundle (see the module docstring for each check).

    ``trusted_block_hash``: a 0x-hex block hash the auditor trusts; ``rpc``: a node to anchor the block in
    instead (or as well): the block at the bundle's height must have the bundle's hash, the node's chain id
    must be the bundle's, and the EIP-712 type string must be the contract's. With neither, check 2 fails:
    an unanchored header proves nothing. Nothing else touches the network.

    Never raises for bad input: fails closed. Returns a :class:`VerificationResult` whose ``failure`` is a
    :class:`CheckFailed` naming the first failed check ("check 6 digest of catalog 301001/XC01 version 3:
    expected 0xab…, got 0xcd…"); an unexpected exception inside a check fails that check with its message.
    """
    started = time.perf_counter()
    ctx = _Context(bundle, bundle if isinstance(bundle, Mapping) else {}, trusted_block_hash, rpc)
    result = VerificationResult(ok=False, facts=ctx.facts)
    for number, name in CHECKS:
        b = ctx.bundle
        subject = subject_of(b.get("kind", "record"), b.get("code", "?"), b.get("version", "?")) if (
            number > 1 or ("kind" in b and "code" in b)) else "bundle"
        try:
            detail = _PLAN[number](ctx)
        except _Fail as exc:
            reason = str(exc)
        except Exception as exc:  # fail closed: malformed input surfaces here
            reason = f"{type(exc).__name__}: {exc}"
        else:
            result.checks.append(CheckOutcome(number, name, True, detail))
            continue
        failure = CheckFailed(number, name, subject, reason)
        result.checks.append(CheckOutcome(number, name, False, reason))
        result.failure = failure
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        return result
    result.ok = True
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result


# ---------------------------------------------------------------------------------------- documents


def diff_fields(expected: Any, got: Any, path: str = "") -> list[FieldDifference]:
    """Fields where ``got`` (a document) differs from ``expected`` (a committed record), depth first in key
    order: objects key by key, lists item by item (``data_items[1].name``), scalars by value and JSON type."""
    if isinstance(expected, dict) and isinstance(got, dict):
        out: list[FieldDifference] = []
        for key in sorted(set(expected) | set(got)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in got:
                out.append(FieldDifference(sub, expected[key], None, "document"))
            elif key not in expected:
                out.append(FieldDifference(sub, None, got[key], "record"))
            else:
                out.extend(diff_fields(expected[key], got[key], sub))
        return out
    if isinstance(expected, list) and isinstance(got, list):
        out = []
        for i in range(max(len(expected), len(got))):
            sub = f"{path}[{i}]"
            if i >= len(got):
                out.append(FieldDifference(sub, expected[i], None, "document"))
            elif i >= len(expected):
                out.append(FieldDifference(sub, None, got[i], "record"))
            else:
                out.extend(diff_fields(expected[i], got[i], sub))
        return out
    if type(expected) is not type(got) or expected != got:
        return [FieldDifference(path or "(document)", expected, got)]
    return []


def infer_kind(document: Mapping[str, Any]) -> str:
    """``catalog`` for a document with catalog fields (``data_items``, ``share_type``), else ``system``."""
    return "catalog" if "data_items" in document or "share_type" in document else "system"


def verify_document(
    rpc: Rpc, directory_address: str, kind: str | None, document: Any
) -> DocumentResult:
    """Is ``document`` (a record as JSON) a committed version of its code in the directory?

    Its digest (keccak-256 of its RFC 8785 canonical JSON) is looked up among the code's version events;
    on a match, that version's bundle is built and verified against ``rpc`` (:func:`verify_bundle`), and the
    result names the version, signer, transaction, block and log, and whether the version is current,
    superseded or retired. Otherwise the document is compared field by field with the nearest committed
    version (fewest differing fields; the later version on a tie) and the failure names the first field that
    differs. ``kind``: ``catalog``, ``system`` or None to infer it from the fields.

    Fails closed (``ok`` False with a ``failure``) on an empty or non-object document, a document without a
    code, or a code with no committed version; node errors propagate (:class:`chain.rpc.RpcError`,
    :class:`chain.rpc.RpcUnavailable`)."""
    if not isinstance(document, dict) or not document:
        return DocumentResult(False, kind or "record", "", failure=f"document: expected a non-empty JSON object, "
                                                                   f"got {document!r:.40}")
    kind = kind or infer_kind(document)
    code = document.get("code")
    if not isinstance(code, str) or not code:
        return DocumentResult(False, kind, "", failure=f"document: expected a code field, got {code!r}")
    if kind not in EVENTS:
        return DocumentResult(False, kind, code, failure=f"kind: expected catalog or system, got {kind!r}")
    digest = keccak(rfc8785.dumps(document))
    result = DocumentResult(False, kind, code, digest=_hex(digest))
    found = record_events(rpc, directory_address, kind, code)
    versions = [ev for ev in found if "record" in ev.args]
    if not versions:
        result.failure = f"{kind} {code}: expected a committed version in directory " \
                         f"{to_checksum_address(directory_address)}, got none"
        return result
    latest = max(int(ev.args["version"]) for ev in versions)
    retired = any("record" not in ev.args for ev in found)
    match = next((ev for ev in versions if bytes(ev.args["digest"]) == digest), None)
    if match is None:
        scored = []
        for ev in versions:
            try:
                committed = json.loads(bytes(ev.args["record"]))
            except json.JSONDecodeError:
                continue
            scored.append((len(diff_fields(committed, document)), -int(ev.args["version"]), ev, committed))
        if not scored:
            result.failure = f"{kind} {code}: no committed version holds a JSON record"
            return result
        scored.sort(key=lambda s: (s[0], s[1]))
        _, _, nearest, committed = scored[0]
        _describe(result, nearest, latest, retired)
        result.differences = diff_fields(committed, document)
        first = result.differences[0] if result.differences else f"digest {_hex(digest)}"
        result.failure = (f"{kind} {code}: matches no committed version; nearest is version {result.version} "
                          f"(tx {result.tx_hash}); {first}")
        return result
    _describe(result, match, latest, retired)
    bundle = build_bundle(rpc, directory_address, kind, code, int(match.args["version"]))
    result.bundle = verify_bundle(bundle, rpc=rpc)
    if result.bundle.failure is not None:
        result.failure = str(result.bundle.failure)
        return result
    result.ok = True
    return result


def _describe(result: DocumentResult, ev: DecodedLog, latest: int, retired: bool) -> None:
    version = int(ev.args["version"])
    result.version = version
    result.signer = str(ev.args["signer"])
    result.tx_hash = ev.tx_hash.lower()
    result.block_number = ev.block_number
    result.block_hash = ev.block_hash.lower()
    result.log_index = ev.log_index
    result.status = "superseded" if version < latest else ("retired" if retired else "current")
