"""Client of one deployed ``Directory`` contract: typed data, call encoding, simulation, submission, views.

Submissions travel as EIP-712 *messages* (dicts keyed by the type's member names, see
:mod:`chain.eip712`) plus a signature; :func:`to_struct` turns them into the ABI tuples of
``IDirectory.*Submission``. Reverts are decoded into :class:`chain.errors.ContractRevert`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from chain import eip712
from chain.abi import ContractCodec, canonical_type, signature_of
from chain.artifacts import load_artifact
from chain.errors import ContractRevert, UnknownRevert
from chain.rpc import Rpc, RpcError
from chain.sender import Receipt, TxSender

#: Contract method taking a batch of each primary type.
METHOD_OF = {
    "Jurisdiction": "addJurisdictions",
    "Department": "registerDepartments",
    "Account": "setAccounts",
    "Catalog": "submitCatalogs",
    "System": "submitSystems",
    "SharingRequest": "requestSharing",
    "SharingDecision": "decideSharing",
    "SharingRevocation": "revokeSharing",
}

#: Batch methods whose items are not signed messages, by the batch name the batcher groups them under:
#: ``Expiry`` batches are bare request ids (bytes32) for ``expireSharing`` (no signature: the clock decides).
UNSIGNED_METHOD_OF = {"Expiry": "expireSharing"}


def method_of(primary: str) -> str:
    """Contract method taking a batch of ``primary`` (an EIP-712 primary type or ``Expiry``).

    Raises KeyError for an unknown name."""
    return METHOD_OF[primary] if primary in METHOD_OF else UNSIGNED_METHOD_OF[primary]

#: ``IDirectory.RecordKind`` values.
KIND_CATALOG, KIND_SYSTEM = 0, 1
#: ``IDirectory.RecordAction`` values.
ACTIONS = {"register": 1, "update": 2, "retire": 3}
#: ``IDirectory.AccountRole`` values.
ROLES = {"administrator": 1, "department": 2}
#: ``IDirectorySharing.SharingStatus`` values.
SHARING_STATUS = ("none", "requested", "granted", "rejected", "refused", "revoked", "expired")

ZERO32 = b"\x00" * 32


def to_struct(primary: str, message: dict[str, Any], signature: bytes, record: bytes = b"") -> tuple[Any, ...]:
    """The ABI tuple of a signed submission (member order of ``IDirectory.<X>Submission``).

    For Catalog/System, ``record`` is the canonical JSON whose keccak is ``message["digest"]``.
    """
    m = message
    if primary == "Jurisdiction":
        return (m["code"], m["name"], m["tier"], m["parent"], m["nonce"], m["deadline"], signature)
    if primary == "Department":
        return (m["code"], m["name"], m["jurisdiction"], m["nonce"], m["deadline"], signature)
    if primary == "Account":
        return (m["role"], m["scope"], m["account"], m["active"], m["nonce"], m["deadline"], signature)
    if primary in ("Catalog", "System"):
        return (
            m["action"], m["code"], m["jurisdiction"], m["department"], m["version"], m.get("sourceSystem", ZERO32),
            m.get("shareType", 0), m.get("itemCount", 0), record, m["nonce"], m["deadline"], signature,
        )
    if primary == "SharingRequest":
        return (
            m["catalog"], m["version"], m["requester"], m["items"], m["purpose"], m["basis"], m["start"], m["end"],
            m["nonce"], m["deadline"], signature,
        )
    if primary == "SharingDecision":
        return (m["request"], m["approve"], m["reason"], m["nonce"], m["deadline"], signature)
    if primary == "SharingRevocation":
        return (m["request"], m["reason"], m["nonce"], m["deadline"], signature)
    raise ValueError(f"expected one of {', '.join(METHOD_OF)}, got {primary!r}")


class DirectoryClient:
    """A deployed Directory at ``address`` on the chain behind ``rpc``.

    ``sender`` (optional) is the relayer's :class:`TxSender`; without it the client is read-only
    (an auditor's). ``chain_id`` is the EIP-155 chain id.
    """

    def __init__(self, rpc: Rpc, address: str, chain_id: int, sender: TxSender | None = None) -> None:
        self.rpc = rpc
        self.address = to_checksum_address(address)
        self.chain_id = chain_id
        self.sender = sender
        self.abi = load_artifact("Directory").abi
        self.codec = ContractCodec(self.abi)
        self._functions = {e["name"]: e for e in self.abi if e.get("type") == "function"}

    # ------------------------------------------------------------------ encoding

    def encode(self, method: str, args: list[Any]) -> bytes:
        """Calldata of ``method(args)``: 4-byte selector ‖ ABI-encoded arguments."""
        entry = self._functions[method]
        types = [canonical_type(p) for p in entry["inputs"]]
        return keccak(text=signature_of(entry))[:4] + abi_encode(types, args)

    def _decode_output(self, method: str, data: bytes) -> tuple[Any, ...]:
        entry = self._functions[method]
        return tuple(abi_decode([canonical_type(p) for p in entry["outputs"]], data))

    def view(self, method: str, *args: Any) -> tuple[Any, ...]:
        """``eth_call`` of a view at ``latest``; returns the decoded outputs."""
        raw = self._call({"to": self.address, "data": "0x" + self.encode(method, list(args)).hex()})
        return self._decode_output(method, raw)

    def _call(self, call: dict[str, Any], block: str = "latest") -> bytes:
        try:
            result = self.rpc.call("eth_call", [call, block])
        except RpcError as exc:
            raise self._revert(exc) from exc
        return bytes.fromhex(str(result)[2:])

    def _revert(self, exc: RpcError) -> ContractRevert | UnknownRevert:
        if exc.data:
            return self.codec.decode_revert(exc.data)
        return UnknownRevert(b"", exc.message)

    # ------------------------------------------------------------------ EIP-712

    @cached_property
    def types(self) -> eip712.Types:
        """EIP-712 types of the five submission structs, read from the contract's ``eip712Types()``."""
        (strings,) = self.view("eip712Types")
        return eip712.parse_types(list(strings))

    @cached_property
    def domain(self) -> dict[str, Any]:
        """EIP-712 domain of this deployment."""
        return eip712.domain(self.chain_id, self.address)

    def typed_data(self, primary: str, message: dict[str, Any]) -> dict[str, Any]:
        """Full EIP-712 typed data of a submission message."""
        return eip712.typed_data(self.types, primary, self.domain, message)

    # ------------------------------------------------------------------ submissions

    def simulate(self, primary: str, structs: list[Any]) -> None:
        """``eth_call`` the batch from the relayer at ``latest``; raises ContractRevert if it would revert.

        ``structs``: ABI tuples of signed submissions (see :func:`to_struct`), or request ids (bytes32)
        for ``Expiry``."""
        frm = self.sender.address if self.sender else None
        call: dict[str, Any] = {"to": self.address, "data": "0x" + self.encode(method_of(primary), [structs]).hex()}
        if frm:
            call["from"] = frm
        self._call(call)

    def submit(self, primary: str, structs: list[Any]) -> str:
        """Simulate with a gas budget (:meth:`TxSender.budget_gas`) and send one batch transaction; returns its hash.

        Raises ContractRevert if the batch would revert; needs a sender.
        """
        if self.sender is None:
            raise ValueError("expected a DirectoryClient with a sender, got a read-only one")
        data = self.encode(method_of(primary), [structs])
        try:
            gas = self.sender.budget_gas(self.address, data, len(structs))
        except RpcError as exc:
            raise self._revert(exc) from exc
        label = f"{method_of(primary)}×{len(structs)}"
        return self.sender.send(self.address, data, gas, label=label)

    def submit_and_wait(self, primary: str, structs: list[Any]) -> Receipt:
        """:meth:`submit` then wait for the receipt."""
        assert self.sender is not None
        return self.sender.wait(self.submit(primary, structs))

    # ------------------------------------------------------------------ views

    def record_state(self, kind: int, code: str) -> tuple[bytes, int, int]:
        """(owning department id, latest version, status 0 None/1 Active/2 Retired) of a record."""
        ((department, version, status, _share_type, _item_count),) = self.view("record", kind, code)
        return department, version, status

    def sharing(self, request_id: bytes) -> dict[str, Any]:
        """A sharing request / grant: catalogHash, requester, owner, items (bitmask), start, end (unix
        seconds), version, status (``IDirectorySharing.SharingStatus`` value)."""
        ((catalog_hash, requester, owner, items, start, end, version, status),) = self.view("sharing", request_id)
        return {"catalogHash": catalog_hash, "requester": requester, "owner": owner, "items": items,
                "start": start, "end": end, "version": version, "status": status}

    def record_digest(self, kind: int, code: str, version: int) -> bytes:
        """Digest (32 bytes) committed for a version; zero if none."""
        return bytes(self.view("recordDigest", kind, code, version)[0])

    def nonce_used(self, signer: str, nonce: int) -> bool:
        """Whether ``signer`` has spent ``nonce``."""
        return bool(self.view("nonceUsed", to_checksum_address(signer), nonce)[0])

    def account_department(self, account: str) -> bytes:
        """Department id ``account`` signs for (zero bytes if none)."""
        return bytes(self.view("accountDepartment", to_checksum_address(account))[0])

    def department_jurisdiction(self, department: bytes) -> bytes:
        """Jurisdiction id of a department (zero bytes if unknown)."""
        return bytes(self.view("departmentJurisdiction", department)[0])

    def jurisdiction(self, jurisdiction_id: bytes) -> tuple[bytes, int]:
        """(parent id, tier 0 None/1 City/2 District/3 Street) of a jurisdiction."""
        parent, tier = self.view("jurisdiction", jurisdiction_id)
        return bytes(parent), int(tier)

    def has_role(self, role: bytes, account: str) -> bool:
        """OpenZeppelin AccessControl ``hasRole``."""
        return bool(self.view("hasRole", role, to_checksum_address(account))[0])
