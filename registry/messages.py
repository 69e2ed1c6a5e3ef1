"""EIP-712 messages of directory submissions, built from domain records.

One place maps a record to what its authority signs, so the loader (client side) and the API
(server side) compute the same message — and so the same digest — from the same record.
Ids are ``keccak256(code)`` (:func:`registry.canonical.code_id`); a catalog's ``sourceSystem`` is
the id of its source system's code; the digest is keccak-256 of the RFC 8785 canonical JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from eth_utils import keccak

from registry.canonical import canonical_bytes, code_id
from registry.models import CatalogRecord, Department, Jurisdiction, ShareType, SystemRecord

ZERO32 = b"\x00" * 32
ACTIONS = {"register": 1, "update": 2, "retire": 3}
ROLES = {"administrator": 1, "department": 2}
#: ``RecordSubmission.shareType`` codes.
SHARE_TYPES = {ShareType.UNCONDITIONAL: 1, ShareType.CONDITIONAL: 2, ShareType.NOT_SHARED: 3}

Action = Literal["register", "update", "retire"]


@dataclass(frozen=True)
class Message:
    """A message to sign: EIP-712 ``primary`` type, ``message`` dict, and the ``record`` bytes it commits to
    (canonical JSON; empty for non-record types and retirements)."""

    primary: str
    message: dict[str, Any]
    record: bytes = b""


def jurisdiction_message(j: Jurisdiction, nonce: int, deadline: int) -> Message:
    """``Jurisdiction`` message adding ``j`` (signed by an administrator of its parent)."""
    return Message(
        "Jurisdiction",
        {
            "code": j.code,
            "name": j.name,
            "tier": j.tier.chain_value,
            "parent": code_id(j.parent) if j.parent else ZERO32,
            "nonce": nonce,
            "deadline": deadline,
        },
    )


def department_message(d: Department, nonce: int, deadline: int) -> Message:
    """``Department`` message registering ``d`` (signed by an administrator of its jurisdiction)."""
    return Message(
        "Department",
        {"code": d.code, "name": d.name, "jurisdiction": code_id(d.jurisdiction), "nonce": nonce, "deadline": deadline},
    )


def account_message(
    role: Literal["administrator", "department"], scope: str, account: str, active: bool, nonce: int, deadline: int
) -> Message:
    """``Account`` message granting (``active``) or revoking ``role`` in ``scope`` (a jurisdiction or
    department code) to ``account`` (checksummed address)."""
    return Message(
        "Account",
        {
            "role": ROLES[role],
            "scope": code_id(scope),
            "account": account,
            "active": active,
            "nonce": nonce,
            "deadline": deadline,
        },
    )


def record_message(
    record: CatalogRecord | SystemRecord, action: Action, version: int, nonce: int, deadline: int
) -> Message:
    """``Catalog`` or ``System`` message registering (version 1) or updating ``record``."""
    if action == "retire":
        raise ValueError("expected register or update with a record, got retire (use retire_message)")
    body = canonical_bytes(record)
    if isinstance(record, CatalogRecord):
        message: dict[str, Any] = {
            "action": ACTIONS[action],
            "code": record.code,
            "jurisdiction": code_id(record.jurisdiction),
            "department": code_id(record.provider_code),
            "version": version,
            "sourceSystem": code_id(record.source_system) if record.source_system else ZERO32,
            "shareType": SHARE_TYPES[record.share_type],
            "itemCount": len(record.data_items),
            "digest": keccak(body),
            "nonce": nonce,
            "deadline": deadline,
        }
        return Message("Catalog", message, body)
    message = {
        "action": ACTIONS[action],
        "code": record.code,
        "jurisdiction": code_id(record.jurisdiction),
        "department": code_id(record.owner_code),
        "version": version,
        "digest": keccak(body),
        "nonce": nonce,
        "deadline": deadline,
    }
    return Message("System", message, body)


def retire_message(
    kind: Literal["catalog", "system"],
    code: str,
    jurisdiction: str,
    department: str,
    version: int,
    nonce: int,
    deadline: int,
) -> Message:
    """``Catalog`` or ``System`` message retiring ``code`` at ``version`` (its department signs; zero digest)."""
    message: dict[str, Any] = {
        "action": ACTIONS["retire"],
        "code": code,
        "jurisdiction": code_id(jurisdiction),
        "department": code_id(department),
        "version": version,
    }
    if kind == "catalog":
        message.update({"sourceSystem": ZERO32, "shareType": 0, "itemCount": 0})
    message.update({"digest": ZERO32, "nonce": nonce, "deadline": deadline})
    return Message("Catalog" if kind == "catalog" else "System", message)


def items_mask(catalog: CatalogRecord, items: list[str]) -> int:
    """Bitmask of ``items`` (data item names) over the catalog's ``data_items`` order (bit i = item i).

    Raises ValueError naming an item the catalog does not have, or for an empty list.
    """
    index = {item.name: i for i, item in enumerate(catalog.data_items)}
    unknown = [name for name in items if name not in index]
    if unknown or not items:
        given = ", ".join(unknown) or "none"
        raise ValueError(f"expected data items of {catalog.code} ({', '.join(index)}), got {given}")
    mask = 0
    for name in items:
        mask |= 1 << index[name]
    return mask


def sharing_request_message(
    catalog: str,
    version: int,
    requester: str,
    items: int,
    purpose: str,
    basis: str,
    start: int,
    end: int,
    nonce: int,
    deadline: int,
) -> Message:
    """``SharingRequest`` of department ``requester`` (code) for ``items`` (bitmask, see :func:`items_mask`)
    of ``catalog`` at ``version``, for ``start`` ≤ t < ``end`` (unix seconds)."""
    return Message(
        "SharingRequest",
        {
            "catalog": catalog,
            "version": version,
            "requester": code_id(requester),
            "items": items,
            "purpose": purpose,
            "basis": basis,
            "start": start,
            "end": end,
            "nonce": nonce,
            "deadline": deadline,
        },
    )


def sharing_decision_message(request: bytes, approve: bool, reason: str, nonce: int, deadline: int) -> Message:
    """``SharingDecision`` of the owning department on request id ``request`` (32 bytes)."""
    return Message(
        "SharingDecision",
        {"request": request, "approve": approve, "reason": reason, "nonce": nonce, "deadline": deadline},
    )


def sharing_revocation_message(request: bytes, reason: str, nonce: int, deadline: int) -> Message:
    """``SharingRevocation`` of the owning department on grant ``request`` (32 bytes)."""
    return Message("SharingRevocation", {"request": request, "reason": reason, "nonce": nonce, "deadline": deadline})


def sharing_request_id(signer: str, nonce: int) -> bytes:
    """On-chain id of a sharing request: keccak256(abi.encode(signer address, nonce))."""
    return keccak(bytes.fromhex(signer[2:].rjust(64, "0")) + nonce.to_bytes(32, "big"))

