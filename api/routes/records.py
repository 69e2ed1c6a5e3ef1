"""Shared shaping of catalog and system rows into API schemas (used by the catalogs and systems routes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from api.schemas import VersionPublic


def parse_record(text: str | None) -> Any:
    """The JSON value of a stored canonical record (None stays None; undecodable text is returned as is)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def versions_public(rows: Sequence[Any]) -> list[VersionPublic]:
    """Version rows (catalog or system) as :class:`VersionPublic`, in the order given."""
    return [
        VersionPublic(
            version=r.version,
            action=r.action,
            digest=r.digest,
            signer=r.signer,
            nonce=str(r.nonce),
            deadline=int(r.deadline),
            tx_hash=r.tx_hash,
            block_number=r.block_number,
            block_hash=r.block_hash,
            log_index=r.log_index,
            block_timestamp=r.block_timestamp,
            valid=r.valid,
            invalid_reason=r.invalid_reason,
            record=parse_record(r.record),
        )
        for r in rows
    ]
