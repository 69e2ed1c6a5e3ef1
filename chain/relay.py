"""Relay items: a child directory's events turned back into the signed submissions the child received.

The municipal chain integration job (:class:`registry.sync.RelayJob`) re-submits each signed submission a
child directory recorded to the parent directory's ``relay(Origin[] origins, bytes[] calls)``. The parent
re-verifies each signature under the child's EIP-712 domain, so a call must be the *exact* single-submission
call the child received: ``addJurisdictions([s])``, ``submitCatalogs([s])``, …. This module rebuilds those
calls; it speaks no SQL and sends nothing.

Where each submission comes from:

* events that carry the whole signed submission (catalog and system versions and retirements, sharing
  requests, decisions and revocations) are rebuilt from the event alone;
* events that do not carry the deadline and signature (``JurisdictionAdded``, ``DepartmentRegistered``,
  ``AdministratorSet``, ``DepartmentAccountSet``) are read from the origin transaction's input: the batch is
  decoded and the element whose fields, nonce and (when the EIP-712 types are given) recovered signer match
  the event is picked;
* a submission the child itself received through ``relay`` (from one of *its* children: street → district)
  is identified by the child's ``Relayed`` event; its call is taken verbatim from the child's ``relay``
  transaction input and its origin is the one that event names (the street's log), because the parent can
  only verify the signature under the domain of the directory the department signed for. ``RelayItem.via``
  keeps the child's ``Relayed`` log: the hop in the chain of custody. The record events that precede a
  ``Relayed`` event in the same transaction are its effects and yield no item of their own.

Automatic sharing transitions (zero signer: unconditional grant, not-shared refusal, expiry) are not relayed:
the parent derives them itself. Role, initialisation and child-registration events are not relayed either.

A child directory also holds copies of the jurisdictions above its home (a street directory needs the city
and its district as parents of its own jurisdiction): :class:`JurisdictionScope` keeps those scaffolding
copies, and the home jurisdiction itself (which the parent must know before it can register the child), from
being relayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from chain import eip712
from chain.abi import DecodedLog, canonical_type, signature_of
from chain.artifacts import load_artifact
from chain.directory import METHOD_OF
from chain.errors import ChainError, SignatureError

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20

#: ``IDirectorySharing.SharingStatus`` values a signed transition can reach.
STATUS_GRANTED, STATUS_REJECTED, STATUS_REVOKED = 2, 3, 5

#: EIP-712 primary type of each relayable contract method (inverse of :data:`chain.directory.METHOD_OF`).
PRIMARY_OF = {method: primary for primary, method in METHOD_OF.items()}

#: Events whose submission is rebuilt from the origin transaction's input (they lack deadline and signature).
FROM_INPUT = frozenset({"JurisdictionAdded", "DepartmentRegistered", "AdministratorSet", "DepartmentAccountSet"})

#: Events rebuilt from the event alone.
FROM_EVENT = frozenset(
    {
        "CatalogVersionRecorded",
        "CatalogRetired",
        "SystemVersionRecorded",
        "SystemRetired",
        "SharingRequested",
        "SharingStatusChanged",
    }
)


class RelayBuildError(ChainError):
    """The submission behind a child's ``event`` could not be rebuilt (``origin``: the child's log; ``reason``)."""

    def __init__(self, origin: Origin, reason: str, event: str = "") -> None:
        super().__init__(f"{origin}: {reason}")
        self.origin = origin
        self.reason = reason
        self.event = event


# ---------------------------------------------------------------------------------------- origin and item


@dataclass(frozen=True)
class Origin:
    """Where a submission was first recorded: the log of its event in a directory (``IDirectoryRelay.Origin``).

    ``chain_id`` EIP-155 chain id; ``directory`` checksummed address; ``tx_hash`` and ``block_hash`` 32 bytes;
    ``block_number`` and ``log_index`` as on that chain.
    """

    chain_id: int
    directory: str
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    log_index: int

    @classmethod
    def of_log(cls, ev: DecodedLog, chain_id: int) -> Origin:
        """The origin a log of a directory on chain ``chain_id`` is."""
        return cls(
            chain_id=chain_id,
            directory=to_checksum_address(ev.address),
            tx_hash=_b32(ev.tx_hash),
            block_number=ev.block_number,
            block_hash=_b32(ev.block_hash),
            log_index=ev.log_index,
        )

    @classmethod
    def of_relayed(cls, ev: DecodedLog) -> Origin:
        """The origin a ``Relayed`` event names (where the relayed submission was first recorded)."""
        a = ev.args
        return cls(
            chain_id=int(a["chainId"]),
            directory=to_checksum_address(a["directory"]),
            tx_hash=bytes(a["txHash"]),
            block_number=int(a["blockNumber"]),
            block_hash=bytes(a["blockHash"]),
            log_index=int(a["logIndex"]),
        )

    def as_tuple(self) -> tuple[int, str, bytes, int, bytes, int]:
        """The ABI tuple of ``IDirectoryRelay.Origin``."""
        return (self.chain_id, self.directory, self.tx_hash, self.block_number, self.block_hash, self.log_index)

    @cached_property
    def key(self) -> bytes:
        """The parent's at-most-once key: keccak256(abi.encode(chainId, directory, txHash, logIndex)). Computed
        once per origin: the tier sync asks it several times per item (held at the parent, seen in the pass,
        applied by the transaction), and each time cost an ABI encoding and a keccak."""
        return origin_key(self.chain_id, self.directory, self.tx_hash, self.log_index)

    def __str__(self) -> str:
        return f"chain {self.chain_id} {self.directory} tx 0x{self.tx_hash.hex()} log {self.log_index}"


def origin_key(chain_id: int, directory: str, tx_hash: bytes, log_index: int) -> bytes:
    """keccak256(abi.encode(uint256 chainId, address directory, bytes32 txHash, uint32 logIndex))."""
    encoded = abi_encode(["uint256", "address", "bytes32", "uint32"], [chain_id, directory, tx_hash, log_index])
    return keccak(encoded)


@dataclass(frozen=True)
class RelayItem:
    """One submission to relay to the parent: its ``origin``, the ``call`` (an ABI-encoded single-submission
    call of ``method``, exactly as the child received it), and for reporting the ``event`` it was read from
    (``Relayed`` for a submission the child got from its own child), the EIP-712 ``primary`` type and a
    ``code`` (the record, jurisdiction or department code, a sharing request's id or catalog).

    ``via`` is the child's ``Relayed`` log when ``origin`` lies further down (street → district → city),
    else None; ``position`` is the (block number, log index) of the child log the item was read from.
    """

    origin: Origin
    call: bytes
    method: str
    primary: str
    event: str
    code: str
    via: Origin | None = None
    position: tuple[int, int] = field(default=(0, 0))

    def describe(self) -> str:
        """``submitCatalogs 301001/XC0001 (CatalogVersionRecorded)``."""
        return f"{self.method} {self.code} ({self.event})"


# ---------------------------------------------------------------------------------------- ABI of calls


@dataclass(frozen=True)
class _Function:
    name: str
    selector: bytes
    types: tuple[str, ...]
    fields: tuple[str, ...]  # member names of the batch struct (relayable methods), else ()


@cache
def _functions() -> dict[str, _Function]:
    table: dict[str, _Function] = {}
    for entry in load_artifact("Directory").abi:
        if entry.get("type") != "function":
            continue
        inputs = entry["inputs"]
        members = tuple(c["name"] for c in inputs[0].get("components", ())) if inputs else ()
        table[entry["name"]] = _Function(
            name=entry["name"],
            selector=keccak(text=signature_of(entry))[:4],
            types=tuple(canonical_type(p) for p in inputs),
            fields=members,
        )
    return table


@cache
def _by_selector() -> dict[bytes, _Function]:
    return {f.selector: f for f in _functions().values()}


def encode_call(method: str, args: list[Any]) -> bytes:
    """Calldata of Directory ``method(args)`` (same bytes as :meth:`chain.directory.DirectoryClient.encode`)."""
    fn = _functions()[method]
    return fn.selector + abi_encode(list(fn.types), args)


@lru_cache(maxsize=64)
def decode_call(call: bytes) -> tuple[str, tuple[Any, ...]]:
    """(method, decoded arguments) of Directory calldata. Raises ValueError for an unknown selector.

    Memoised (the result is immutable: eth-abi decodes arrays and structs as tuples): every event of a batch
    transaction is rebuilt from the same input, and decoding a 200-submission batch once per event made relaying
    a batch quadratic (~68 ms per relayed item at Beijing scale)."""
    fn = _by_selector().get(call[:4])
    if fn is None:
        raise ValueError(f"expected calldata of a Directory function, got selector 0x{call[:4].hex()}")
    return fn.name, tuple(abi_decode(list(fn.types), call[4:]))


def single_call(method: str, struct: tuple[Any, ...]) -> bytes:
    """The single-submission call ``method([struct])`` the parent's ``relay`` accepts."""
    return encode_call(method, [[struct]])


def describe_submission(primary: str, struct: tuple[Any, ...]) -> str:
    """A short human reference of a submission: its code, or what it names."""
    if primary in ("Jurisdiction", "Department"):
        return str(struct[0])
    if primary in ("Catalog", "System"):
        return f"{struct[1]} v{struct[4]}"
    if primary == "Account":
        role = {1: "administrator", 2: "department key"}.get(int(struct[0]), f"role {struct[0]}")
        active = "" if struct[3] else " (revoked)"
        return f"{role} {to_checksum_address(struct[2])} of 0x{bytes(struct[1]).hex()[:12]}…{active}"
    if primary == "SharingRequest":
        return f"request for {struct[0]} v{struct[1]}"
    return f"request 0x{bytes(struct[0]).hex()}"


def message_of(primary: str, struct: tuple[Any, ...], types: eip712.Types) -> dict[str, Any]:
    """The EIP-712 message a submission's signature covers (a record's digest is keccak of its record,
    zero for a retirement)."""
    fields = _functions()[METHOD_OF[primary]].fields
    by_name = dict(zip(fields, struct, strict=True))
    message: dict[str, Any] = {}
    for member in types[primary]:
        name = member["name"]
        if name == "digest":
            message[name] = ZERO32 if int(by_name["action"]) == 3 else keccak(bytes(by_name["record"]))
        else:
            message[name] = by_name[name]
    return message


def recover_signer(
    primary: str, struct: tuple[Any, ...], types: eip712.Types, chain_id: int, directory: str
) -> str:
    """Checksummed address that signed a submission under the directory's EIP-712 domain.

    Raises :class:`chain.errors.SignatureError` for a malformed or unrecoverable signature."""
    data = eip712.typed_data(types, primary, eip712.domain(chain_id, directory), message_of(primary, struct, types))
    return eip712.recover(data, bytes(struct[-1]))


# ---------------------------------------------------------------------------------------- events → items


def needs_input(ev: DecodedLog) -> bool:
    """Whether :func:`relay_item` needs the origin transaction's input to rebuild ``ev``'s submission."""
    return ev.event in FROM_INPUT or ev.event == "Relayed"


def relay_item(
    ev: DecodedLog,
    chain_id: int,
    *,
    tx_input: bytes | None = None,
    types: eip712.Types | None = None,
) -> RelayItem | None:
    """The relay item of one event of a child directory on chain ``chain_id``, or None if it carries nothing
    to relay (role events, ``DirectoryInitialized``, ``ChildSet``, automatic sharing transitions).

    ``tx_input``: input of the transaction that emitted ``ev`` (needed when :func:`needs_input` says so);
    ``types``: the EIP-712 types (``DirectoryClient.types``); given, a submission read from the input must
    recover to the event's signer. A ``Relayed`` event yields the submission it relayed, with the origin it
    names. The record events a ``Relayed`` event follows in its transaction are its effects: pass the ``Relayed``
    event, not them (:func:`relay_items` does; see :func:`relay_effects`). Raises :class:`RelayBuildError` when
    the submission cannot be rebuilt.
    """
    here = Origin.of_log(ev, chain_id)
    position = (ev.block_number, ev.log_index)
    a = ev.args
    if ev.event == "Relayed":
        return _from_relay_input(ev, here, tx_input)
    if ev.event in FROM_INPUT:
        method, match = _input_match(ev)
        struct = _from_input(ev, here, method, match, tx_input, types, chain_id)
        primary = PRIMARY_OF[method]
        return RelayItem(here, single_call(method, struct), method, primary, ev.event,
                         describe_submission(primary, struct), None, position)
    if ev.event not in FROM_EVENT:
        return None
    if ev.event == "SharingStatusChanged" and a["signer"] == ZERO_ADDRESS:
        return None  # automatic: the parent derives it
    primary, struct = _from_event(ev, here)
    method = METHOD_OF[primary]
    return RelayItem(here, single_call(method, struct), method, primary, ev.event,
                     describe_submission(primary, struct), None, position)


def _from_event(ev: DecodedLog, here: Origin) -> tuple[str, tuple[Any, ...]]:
    a = ev.args
    name = ev.event
    if name in ("CatalogVersionRecorded", "SystemVersionRecorded"):
        version = int(a["version"])
        action = 1 if version == 1 else 2
        catalog = name == "CatalogVersionRecorded"
        struct: tuple[Any, ...] = (
            action, a["code"], a["jurisdiction"], a["department"], version,
            a["sourceSystem"] if catalog else ZERO32, a["shareType"] if catalog else 0,
            a["itemCount"] if catalog else 0, a["record"], a["nonce"], a["deadline"], a["signature"],
        )
        if keccak(bytes(a["record"])) != bytes(a["digest"]):
            raise RelayBuildError(here, f"{name}: record does not hash to the event's digest")
        return ("Catalog" if catalog else "System"), struct
    if name in ("CatalogRetired", "SystemRetired"):
        struct = (
            3, a["code"], a["jurisdiction"], a["department"], int(a["version"]), ZERO32, 0, 0, b"",
            a["nonce"], a["deadline"], a["signature"],
        )
        return ("Catalog" if name == "CatalogRetired" else "System"), struct
    if name == "SharingRequested":
        struct = (
            a["catalog"], a["version"], a["requester"], a["items"], a["purpose"], a["basis"], a["start"],
            a["end"], a["nonce"], a["deadline"], a["signature"],
        )
        return "SharingRequest", struct
    # SharingStatusChanged with a signer: a decision or a revocation
    to = int(a["to"])
    if to in (STATUS_GRANTED, STATUS_REJECTED):
        return "SharingDecision", (a["id"], to == STATUS_GRANTED, a["reason"], a["nonce"], a["deadline"],
                                   a["signature"])
    if to == STATUS_REVOKED:
        return "SharingRevocation", (a["id"], a["reason"], a["nonce"], a["deadline"], a["signature"])
    raise RelayBuildError(here, f"SharingStatusChanged to status {to} with a signer: no relayable submission")


def _input_match(ev: DecodedLog) -> tuple[str, dict[str, Any]]:
    """(method, {batch struct member: value the event says}) for an event rebuilt from the input."""
    a = ev.args
    if ev.event == "JurisdictionAdded":
        return "addJurisdictions", {"code": a["code"], "name": a["name"], "tier": a["tier"], "parent": a["parent"],
                                    "nonce": a["nonce"]}
    if ev.event == "DepartmentRegistered":
        return "registerDepartments", {"code": a["code"], "name": a["name"], "jurisdiction": a["jurisdiction"],
                                       "nonce": a["nonce"]}
    if ev.event == "AdministratorSet":
        return "setAccounts", {"role": 1, "scope": a["jurisdiction"], "account": a["account"],
                               "active": a["active"], "nonce": a["nonce"]}
    return "setAccounts", {"role": 2, "scope": a["department"], "account": a["account"], "active": a["active"],
                           "nonce": a["nonce"]}


def _same(got: Any, want: Any) -> bool:
    if isinstance(got, str) and isinstance(want, str) and got.startswith("0x") and want.startswith("0x"):
        return got.lower() == want.lower()
    if isinstance(got, bytes | bytearray) and isinstance(want, bytes | bytearray):
        return bytes(got) == bytes(want)
    return bool(got == want)


def _from_input(
    ev: DecodedLog,
    here: Origin,
    method: str,
    match: dict[str, Any],
    tx_input: bytes | None,
    types: eip712.Types | None,
    chain_id: int,
) -> tuple[Any, ...]:
    if tx_input is None:
        raise RelayBuildError(here, f"{ev.event} carries no signature and the origin transaction input is missing")
    try:
        called, args = decode_call(tx_input)
    except Exception as exc:
        raise RelayBuildError(here, f"origin transaction input is not a Directory call ({exc})") from exc
    if called != method:
        raise RelayBuildError(here, f"origin transaction calls {called}, expected {method} for {ev.event}")
    fields = _functions()[method].fields
    candidates = []
    for struct in args[0]:
        by_name = dict(zip(fields, struct, strict=True))
        if all(_same(by_name[k], v) for k, v in match.items()):
            candidates.append(tuple(struct))
    if types is not None:
        primary = PRIMARY_OF[method]
        signer = ev.args["signer"]
        verified = []
        for struct in candidates:
            try:
                if _same(recover_signer(primary, struct, types, chain_id, ev.address), signer):
                    verified.append(struct)
            except SignatureError:
                continue
        candidates = verified
    if not candidates:
        raise RelayBuildError(here, f"no element of the origin {method} batch matches {ev.event}")
    if len(candidates) > 1 and any(c != candidates[0] for c in candidates[1:]):
        raise RelayBuildError(here, f"{len(candidates)} different elements of the origin batch match {ev.event}")
    return candidates[0]


def _from_relay_input(ev: DecodedLog, here: Origin, tx_input: bytes | None) -> RelayItem:
    origin = Origin.of_relayed(ev)
    if tx_input is None:
        raise RelayBuildError(here, "Relayed: the child's relay transaction input is missing")
    try:
        called, args = decode_call(tx_input)
    except Exception as exc:
        raise RelayBuildError(here, f"Relayed: origin transaction input is not a Directory call ({exc})") from exc
    if called != "relay":
        raise RelayBuildError(here, f"Relayed: origin transaction calls {called}, expected relay")
    origins, calls = args
    for o, call in zip(origins, calls, strict=True):
        chain_id, directory, tx_hash, _block, _hash, log_index = o
        if (
            int(chain_id) == origin.chain_id
            and _same(directory, origin.directory)
            and bytes(tx_hash) == origin.tx_hash
            and int(log_index) == origin.log_index
        ):
            call = bytes(call)
            if call[:4] != bytes(ev.args["selector"]):
                raise RelayBuildError(here, "Relayed: the relayed call's selector differs from the event's")
            method, (batch,) = decode_call(call)
            primary = PRIMARY_OF[method]
            code = describe_submission(primary, tuple(batch[0]))
            return RelayItem(origin, call, method, primary, "Relayed", code, here, (ev.block_number, ev.log_index))
    raise RelayBuildError(here, f"Relayed: the relay transaction carries no call for origin {origin}")


# ---------------------------------------------------------------------------------------- scope


class JurisdictionScope:
    """The jurisdictions a child directory answers for upward: its ``home`` and everything below it.

    ``parent_of(id)`` gives a jurisdiction's parent id (zero bytes for the city) or None if unknown — e.g.
    the child directory's ``jurisdiction(id)`` view; answers are cached (a jurisdiction's parent never
    changes). A zero ``home`` (a directory serving every jurisdiction) contains everything.
    """

    #: Most parent steps followed (city → district → street is 2).
    MAX_DEPTH = 8

    def __init__(self, home: bytes, parent_of: Callable[[bytes], bytes | None]) -> None:
        self.home = bytes(home)
        self._parent_of = parent_of
        self._parents: dict[bytes, bytes | None] = {}

    def contains(self, jurisdiction: bytes) -> bool:
        """Whether ``jurisdiction`` is the home or lies below it."""
        if self.home == ZERO32:
            return True
        cursor: bytes | None = bytes(jurisdiction)
        for _ in range(self.MAX_DEPTH):
            if cursor == self.home:
                return True
            if cursor is None or cursor == ZERO32:
                return False
            if cursor not in self._parents:
                self._parents[cursor] = self._parent_of(cursor)
            cursor = self._parents[cursor]
        return False

    def relays(self, ev: DecodedLog) -> bool:
        """Whether ``ev`` belongs to the child's subtree: a jurisdiction strictly below home (home and the
        jurisdictions above it are scaffolding copies), a department, key or administrator in home or below.
        Other events are not the scope's business (True)."""
        a = ev.args
        if ev.event == "JurisdictionAdded":
            return self.home == ZERO32 or self.contains(bytes(a["parent"]))
        if ev.event in ("DepartmentRegistered", "DepartmentAccountSet", "AdministratorSet"):
            return self.contains(bytes(a["jurisdiction"]))
        return True


# ---------------------------------------------------------------------------------------- a range of events


@dataclass
class BuildResult:
    """Relay items of a range of child events, in chain order; ``failed`` the events whose submission could not
    be rebuilt; ``ignored`` events with nothing to relay (automatic, role and set-up events, relay effects,
    scaffolding outside the child's subtree)."""

    items: list[RelayItem] = field(default_factory=list)
    failed: list[RelayBuildError] = field(default_factory=list)
    ignored: int = 0


def relay_effects(events: Iterable[DecodedLog]) -> set[tuple[str, int]]:
    """(tx hash, log index) of the events that are effects of a ``relay`` in the child: those preceding a
    ``Relayed`` event in the same transaction (their submission is relayed through that ``Relayed`` event)."""
    last_relayed: dict[str, int] = {}
    evs = list(events)
    for ev in evs:
        if ev.event == "Relayed":
            key = ev.tx_hash.lower()
            last_relayed[key] = max(last_relayed.get(key, -1), ev.log_index)
    return {
        (ev.tx_hash.lower(), ev.log_index)
        for ev in evs
        if ev.event != "Relayed" and ev.log_index < last_relayed.get(ev.tx_hash.lower(), -1)
    }


def relay_items(
    events: Iterable[DecodedLog],
    chain_id: int,
    *,
    inputs: Mapping[str, bytes] | None = None,
    scope: JurisdictionScope | None = None,
    types: eip712.Types | None = None,
) -> BuildResult:
    """Relay items of a child's decoded events (any order; the result is in chain order).

    ``inputs`` maps a transaction hash (0x-hex, any case) to its input, for the events :func:`needs_input`
    names; ``scope`` filters scaffolding out (None: relay everything); ``types`` as in :func:`relay_item`.
    """
    evs = sorted(events, key=lambda e: (e.block_number, e.log_index))
    effects = relay_effects(evs)
    by_hash = {k.lower(): v for k, v in (inputs or {}).items()}
    result = BuildResult()
    for ev in evs:
        if (ev.tx_hash.lower(), ev.log_index) in effects or (scope is not None and not scope.relays(ev)):
            result.ignored += 1
            continue
        try:
            item = relay_item(ev, chain_id, tx_input=by_hash.get(ev.tx_hash.lower()), types=types)
        except RelayBuildError as exc:
            exc.event = exc.event or ev.event
            result.failed.append(exc)
            continue
        if item is None:
            result.ignored += 1
        else:
            result.items.append(item)
    return result


def _b32(hex_str: str) -> bytes:
    raw = bytes.fromhex(hex_str[2:] if hex_str.startswith("0x") else hex_str)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes of hex, got {len(raw)}")
    return raw
