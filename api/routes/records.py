"""Shared shaping of catalog and system rows into API schemas (used by the catalogs and systems routes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Response
from sqlalchemy.orm import Session

from api.deps import Services
from api.problems import ApiProblem
from api.routes.batches import answer_batch
from api.schemas import (
    BatchAccepted,
    CatalogCreate,
    Provenance,
    SubmissionAccepted,
    SystemCreate,
    VersionProvenancePublic,
    VersionPublic,
)
from registry import provenance as registry_provenance
from registry.messages import Message, record_message
from registry.queries import parse_record


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


async def relay_record(
    services: Services, msg: Message, signature: str, code: str, version: int, collection: str
) -> SubmissionAccepted:
    """Relay a signed catalog or system message and answer 202: the transaction hash, the signer, the digest
    (register/update), where to follow the submission and where the record appears once indexed
    (``/{collection}/{code}``). Raises the relay's ApiProblem (4xx) when the submission is refused."""
    tx_hash, signer = await services.relay.submit(msg, signature, code)
    digest = msg.message.get("digest", b"")
    return SubmissionAccepted(
        tx_hash=tx_hash,
        signer=signer,
        primary_type=msg.primary,
        code=code,
        version=version,
        digest="0x" + digest.hex() if msg.record else None,
        status_url=f"/submissions/{tx_hash}",
        record_url=f"/{collection}/{code}",
    )



async def relay_batch(
    services: Services, submissions: Sequence[CatalogCreate] | Sequence[SystemCreate], collection: str,
    response: Response,
) -> BatchAccepted[SubmissionAccepted]:
    """Relay each signed record version of a batch as :func:`relay_record` does and answer each
    (:func:`api.routes.batches.answer_batch`)."""

    async def one(body: CatalogCreate | SystemCreate) -> SubmissionAccepted:
        msg = record_message(body.record, body.action, body.version, body.nonce, body.deadline)
        return await relay_record(services, msg, body.signature, body.record.code, body.version, collection)

    return await answer_batch([one(body) for body in submissions], f"/{collection}/batch", response)


def provenance_public(session: Session, kind: str, code: str) -> Provenance:
    """The chain of custody of every version of a ``kind`` record (404 if ``code`` is not indexed)."""
    found = registry_provenance.provenance(session, kind, code)
    if found is None:
        raise ApiProblem(404, "not-found", f"No such {kind}", f"no {kind} with code {code!r} is indexed")
    return Provenance(kind=kind, code=code,  # type: ignore[arg-type]
                      versions=[VersionProvenancePublic.model_validate(v, from_attributes=True) for v in found])
