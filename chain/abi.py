"""ABI codec for the directory contract: events by topic, custom errors by selector.

Decoding is done against precomputed tables, which is several times faster than web3.py's per-log
``process_log`` and is what the indexer's hot path uses. Each event's parameter list gets a decoder
(:func:`fast_decoder`) that reads the canonical ABI encoding of the simple types events use — ``uintN``,
``bool``, ``address``, ``bytesN``, ``bytes``, ``string`` — directly from the bytes; anything else (another
type, a non-canonical or malformed encoding) goes to ``eth_abi``, so the values, and the errors, are always
``eth_abi``'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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


_UINT = re.compile(r"^uint(\d{0,3})$")
_BYTES_N = re.compile(r"^bytes(\d{1,2})$")
_ZERO = bytes(32)
#: Kinds of parameter :func:`fast_decoder` reads itself.
_K_UINT, _K_BOOL, _K_ADDRESS, _K_BYTES_N, _K_BYTES, _K_STRING = range(6)


def _plan(abi_type: str) -> tuple[int, int] | None:
    """(kind, size) of a type :func:`fast_decoder` reads itself (size: bits of a uint, length of a bytesN), or None."""
    if abi_type == "bool":
        return _K_BOOL, 0
    if abi_type == "address":
        return _K_ADDRESS, 0
    if abi_type == "bytes":
        return _K_BYTES, 0
    if abi_type == "string":
        return _K_STRING, 0
    match = _UINT.match(abi_type)
    if match:
        bits = int(match.group(1) or 256)
        return (_K_UINT, bits) if 8 <= bits <= 256 and bits % 8 == 0 else None
    match = _BYTES_N.match(abi_type)
    if match:
        size = int(match.group(1))
        return (_K_BYTES_N, size) if 1 <= size <= 32 else None
    return None


def fast_decoder(types: Sequence[str]) -> Callable[[bytes], tuple[Any, ...]]:
    """A function decoding ABI-encoded ``types`` from bytes, returning what ``eth_abi.decode(types, data)`` returns.

    Reads the canonical encoding of ``uintN``/``bool``/``address``/``bytesN``/``bytes``/``string`` itself
    (strictly: zero padding, in-range values, offsets where a canonical encoder puts them, valid UTF-8, no
    trailing bytes) and hands any other input, or any other type list, to ``eth_abi`` — so the result and any
    error are exactly ``eth_abi``'s, only faster for the encodings a contract emits.
    """
    types = tuple(types)
    steps = [_plan(t) for t in types]
    if any(step is None for step in steps):
        return lambda data: tuple(abi_decode(types, data))
    plan = [step for step in steps if step is not None]
    head = 32 * len(plan)

    def decode(data: bytes) -> tuple[Any, ...]:
        fast = _read(plan, head, data)
        return fast if fast is not None else tuple(abi_decode(types, data))

    return decode


def word_decoder(abi_type: str) -> Callable[[bytes], Any]:
    """A function decoding one ABI word — an indexed event parameter's topic — of ``abi_type``, returning what
    ``eth_abi.decode([abi_type], word)[0]`` returns.

    Reads a canonical 32-byte word of a static type :func:`fast_decoder` reads (``uintN``, ``bool``, ``address``,
    ``bytesN``) itself, without :func:`fast_decoder`'s general loop; anything else goes to ``eth_abi``, so the
    value, and the error, are ``eth_abi``'s.
    """
    types = [abi_type]
    step = _plan(abi_type)
    kind, arg = step if step is not None else (_K_BYTES, 0)

    def decode(word: bytes) -> Any:
        if len(word) == 32:
            if kind == _K_BYTES_N:
                if arg == 32 or word[arg:] == _ZERO[arg:]:
                    return word[:arg]
            elif kind == _K_UINT:
                value = int.from_bytes(word, "big")
                if not value >> arg:
                    return value
            elif kind == _K_ADDRESS:
                if word[:12] == _ZERO[:12]:
                    return "0x" + word[12:].hex()
            elif kind == _K_BOOL:
                value = int.from_bytes(word, "big")
                if value <= 1:
                    return value == 1
        return abi_decode(types, word)[0]  # dynamic types, other types, non-canonical words

    return decode


def _read(plan: list[tuple[int, int]], head: int, data: bytes) -> tuple[Any, ...] | None:
    """Values of a canonical encoding of ``plan`` in ``data``, or None when it is not one (or not this plan's)."""
    size = len(data)
    if size < head:
        return None
    out: list[Any] = []
    tail = head  # where the next dynamic value must start
    at = 0
    for kind, arg in plan:
        word = data[at : at + 32]
        at += 32
        if kind == _K_BYTES_N:
            if word[arg:] != _ZERO[arg:]:
                return None
            out.append(word[:arg])
        elif kind == _K_UINT:
            value = int.from_bytes(word, "big")
            if value >> arg:
                return None
            out.append(value)
        elif kind == _K_ADDRESS:
            if word[:12] != _ZERO[:12]:
                return None
            out.append("0x" + word[12:].hex())
        elif kind == _K_BOOL:
            value = int.from_bytes(word, "big")
            if value > 1:
                return None
            out.append(value == 1)
        else:  # bytes, string
            if int.from_bytes(word, "big") != tail or tail + 32 > size:
                return None
            length = int.from_bytes(data[tail : tail + 32], "big")
            start = tail + 32
            end = start + length
            tail = start + (length + 31) // 32 * 32
            if tail > size or data[end:tail] != _ZERO[: tail - end]:
                return None
            raw = data[start:end]
            if kind == _K_BYTES:
                out.append(raw)
            else:
                try:
                    out.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    return None
    if tail != size:
        return None
    return tuple(out)


@dataclass(frozen=True)
class EventSpec:
    """One ABI event: its name, topic0, indexed and non-indexed parameters."""

    name: str
    topic0: bytes
    indexed: tuple[tuple[str, str], ...]  # (name, abi type)
    data: tuple[tuple[str, str], ...]

    @cached_property
    def decoders(self) -> tuple[tuple[Callable[[bytes], Any], ...], Callable[[bytes], tuple[Any, ...]]]:
        """(a decoder per indexed parameter's topic, :func:`word_decoder`; the decoder of the data,
        :func:`fast_decoder`)."""
        return tuple(word_decoder(t) for _, t in self.indexed), fast_decoder([t for _, t in self.data])

    @cached_property
    def addresses(self) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
        """Whether each indexed parameter, and each data parameter, is an ``address`` (checksummed when decoded)."""
        return tuple(t == "address" for _, t in self.indexed), tuple(t == "address" for _, t in self.data)


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

    @cached_property
    def _by_topic_text(self) -> dict[str, EventSpec]:
        """Event specs keyed by topic0 as the JSON-RPC writes it (``0x`` + lowercase hex), so a log's event is
        found without converting its topic."""
        return {"0x" + topic.hex(): spec for topic, spec in self.events.items()}

    def decode_log(self, log: dict[str, Any]) -> DecodedLog | None:
        """Decode a raw ``eth_getLogs`` entry (hex strings as the RPC returns them; bytes and ints are taken too).

        Returns None for a log whose topic0 is not an event of this ABI. Raises ValueError when the log's
        topic count is not its event's, and ``eth_abi``'s errors for topics or data that do not decode.
        """
        topics = log["topics"]
        if not topics:
            return None
        first = topics[0]
        spec = self._by_topic_text.get(first) if type(first) is str else None
        if spec is None:
            spec = self.events.get(_to_bytes(first))
            if spec is None:
                return None
        args: dict[str, Any] = {}
        topic_decoders, data_decoder = spec.decoders
        topic_addresses, data_addresses = spec.addresses
        for (name, _), decode, is_address, topic in zip(
            spec.indexed, topic_decoders, topic_addresses, topics[1:], strict=True
        ):
            value = decode(_to_bytes(topic))
            args[name] = checksummed(value) if is_address else value
        if spec.data:
            values = data_decoder(_to_bytes(log["data"]))
            for (name, _), is_address, value in zip(spec.data, data_addresses, values, strict=True):
                args[name] = checksummed(value) if is_address else value
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


#: Addresses seen, in any case → their EIP-55 form: see :func:`checksummed`.
_CHECKSUMMED: dict[str, str] = {}
#: Entries :data:`_CHECKSUMMED` holds before it starts again (two per address).
_CHECKSUMMED_MAX = 65536


def checksummed(address: str) -> str:
    """EIP-55 checksummed form of an address given as 0x-hex in any case (``eth_utils.to_checksum_address``).

    Remembered for the address as given and for its checksummed form — a log's directory comes lowercase from the
    node, its decoded addresses already checksummed, and the same few accounts and directories recur in every log
    — so each address is hashed once however the indexer meets it. Raises ValueError for a string that is not an
    address.
    """
    known = _CHECKSUMMED.get(address)
    if known is None:
        known = to_checksum_address(address)
        if len(_CHECKSUMMED) >= _CHECKSUMMED_MAX:
            _CHECKSUMMED.clear()
        _CHECKSUMMED[address] = _CHECKSUMMED[known] = known
    return known


def _to_bytes(value: Any) -> bytes:
    if type(value) is str and value[:2] == "0x":  # what the JSON-RPC returns
        return bytes.fromhex(value[2:])
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _to_int(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def _hex_str(value: Any) -> str:
    if type(value) is str and value[:2] == "0x":  # what the JSON-RPC returns
        return value
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text
