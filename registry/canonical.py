"""Canonical JSON (RFC 8785, JCS) and the digest the chain commits to (keccak-256 of it)."""

from __future__ import annotations

from typing import Any

import rfc8785
from eth_utils import keccak
from pydantic import BaseModel


def record_json(record: BaseModel) -> dict[str, Any]:
    """The JSON value of a record: ``model_dump(mode="json", exclude_none=True)`` (absent = null)."""
    return record.model_dump(mode="json", exclude_none=True)


def canonical_bytes(value: BaseModel | dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of a record (UTF-8, sorted keys, no insignificant whitespace)."""
    data = record_json(value) if isinstance(value, BaseModel) else value
    return rfc8785.dumps(data)


def digest(value: BaseModel | dict[str, Any] | bytes) -> bytes:
    """keccak-256 (32 bytes) of the canonical JSON of a record, or of already-canonical bytes."""
    return keccak(value if isinstance(value, bytes) else canonical_bytes(value))


def code_id(code: str) -> bytes:
    """On-chain id of a jurisdiction, department, catalog or system code: keccak256(utf8(code))."""
    return keccak(text=code)
