"""ABI codec for the directory contract: events by topic, custom errors by selector.

Decoding is done with ``eth_abi`` against precomputed tables, which is several times faster than
web3.py's per-log ``process_log`` and is what the indexer's hot path uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from chain.errors import ContractRevert, UnknownRevert


def canonical_type(param: dict[str, Any]) -> str:
    """ABI type string with tuples expanded (``(uint8,string,...)[]``)."""
    t: str = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){t[len('tuple'):]}"
    return t


def signature_of(entry: dict[str, Any]) -> str:
    """``Name(type1,type2)`` signature of an ABI event, error or function entry."""
    return f"{entry['name']}({','.join(canonical_type(p) for p in entry['inputs'])})"


@dataclass(frozen=True)
class EventSpec:
    """One ABI event: its name, topic0, indexed and non-indexed parameters."""

    name: str
    topic0: bytes
    indexed: tuple[tuple[str, str], ...]  # (name, abi type)
    data: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DecodedLog:
    """A log decoded against the contract ABI, with its position on chain.

    ``args`` maps parameter names to Python values (``bytes`` for bytes/bytes32, ``int`` for
    uint/enums, checksummed ``str`` for addresses, ``str`` for strings).
    """

    event: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: str  # 0x-hex
    tx_hash: str  # 0x-hex
    tx_index: int
    log_index: int


class ContractCodec:
    """Decodes logs and revert data of one contract ABI (plus OpenZeppelin's errors it inherits)."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.abi = abi

    @cached_property
    def events(self) -> dict[bytes, EventSpec]:
        """Event specs keyed by topic0 (keccak of the event signature)."""
        specs: dict[bytes, EventSpec] = {}
        for entry in self.abi:
            if entry.get("type") != "event":
                continue
            topic0 = keccak(text=signature_of(entry))
            specs[topic0] = EventSpec(
                name=entry["name"],
                topic0=topic0,
                indexed=tuple((p["name"], canonical_type(p)) for p in entry["inputs"] if p["indexed"]),
                data=tuple((p["name"], canonical_type(p)) for p in entry["inputs"] if not p["indexed"]),
            )
        return specs

    @cached_property
    def topics_by_name(self) -> dict[str, bytes]:
        """topic0 of each event by event name."""
        return {spec.name: topic for topic, spec in self.events.items()}

    @cached_property
    def errors(self) -> dict[bytes, tuple[str, tuple[tuple[str, str], ...]]]:
        """Custom errors keyed by 4-byte selector: (name, ((param, abi type), ...))."""
        table: dict[bytes, tuple[str, tuple[tuple[str, str], ...]]] = {}
        for entry in self.abi:
            if entry.get("type") == "error":
                selector = keccak(text=signature_of(entry))[:4]
                table[selector] = (entry["name"], tuple((p["name"], canonical_type(p)) for p in entry["inputs"]))
        return table

    def decode_log(self, log: dict[str, Any]) -> DecodedLog | None:
        """Decode a raw ``eth_getLogs`` entry (hex strings as the RPC returns them).

        Returns None for a log whose topic0 is not an event of this ABI.
        """
        topics = log["topics"]
        if not topics:
            return None
        spec = self.events.get(_to_bytes(topics[0]))
        if spec is None:
            return None
        args: dict[str, Any] = {}
        for (name, typ), topic in zip(spec.indexed, topics[1:], strict=True):
            args[name] = _checksum(typ, abi_decode([typ], _to_bytes(topic))[0])
        if spec.data:
            values = abi_decode([t for _, t in spec.data], _to_bytes(log["data"]))
            args.update({name: _checksum(t, v) for (name, t), v in zip(spec.data, values, strict=True)})
        return DecodedLog(
            event=spec.name,
            args=args,
            address=_hex_str(log["address"]),
            block_number=_to_int(log["blockNumber"]),
            block_hash=_hex_str(log["blockHash"]),
            tx_hash=_hex_str(log["transactionHash"]),
            tx_index=_to_int(log["transactionIndex"]),
            log_index=_to_int(log["logIndex"]),
        )

    def decode_revert(self, data: bytes) -> ContractRevert | UnknownRevert:
        """Turn revert data into a :class:`ContractRevert` (known custom error) or :class:`UnknownRevert`."""
        entry = self.errors.get(data[:4]) if len(data) >= 4 else None
        if entry is None:
            return UnknownRevert(data)
        name, params = entry
        values = abi_decode([t for _, t in params], data[4:]) if params else ()
        return ContractRevert(name, {p: v for (p, _), v in zip(params, values, strict=True)}, data)


def _checksum(abi_type: str, value: Any) -> Any:
    return to_checksum_address(value) if abi_type == "address" else value


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _to_int(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def _hex_str(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text
