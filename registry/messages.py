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
from registry.models import CatalogRecord, Department, Jurisdiction, SystemRecord

ZERO32 = b"\x00" * 32
ACTIONS = {"register": 1, "update": 2, "retire": 3}
ROLES = {"administrator": 1, "department": 2}

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
        message["sourceSystem"] = ZERO32
    message.update({"digest": ZERO32, "nonce": nonce, "deadline": deadline})
    return Message("Catalog" if kind == "catalog" else "System", message)
