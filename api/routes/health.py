"""``/health``, ``/submissions/{tx}``, ``/eip712``: service state, submission state, what to sign."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, SessionDep
from api.schemas import Health, SubmissionStatus
from chain.errors import ChainError
from chain.sender import parse_receipt
from registry import queries, sharing

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
async def health(services: ServicesDep, session: SessionDep) -> Health:
    """Chain head, indexer cursor and lag (blocks), confirmations, queued submissions and index counts
    (directory records, sharing requests and grants, events)."""
    client = services.client
    try:
        head: int | None = int(await run_in_threadpool(client.rpc.call, "eth_blockNumber", []), 16)
    except (ChainError, OSError):
        head = None
    stored = queries.cursor(session, client.chain_id, client.address)
    cursor = stored.block_number if stored is not None else None
    lag = head - cursor if head is not None and cursor is not None else None
    indexer_error = services.indexer_error()
    return Health(
        status="ok" if head is not None and indexer_error is None else "degraded",
        indexer_error=indexer_error,
        chain_id=client.chain_id,
        directory=client.address,
        head=head,
        cursor=cursor,
        lag_blocks=lag,
        confirmations=services.confirmations,
        pending_submissions=services.relay.batcher.pending(),
        counts={**queries.counts(session), **sharing.counts(session)},
    )


@router.get("/submissions/{tx_hash}", response_model=SubmissionStatus)
async def submission(tx_hash: str, services: ServicesDep, session: SessionDep) -> SubmissionStatus:
    """State of a submission transaction: ``pending``, ``mined``, ``indexed`` (the indexer's cursor has
    passed its block), ``reverted``, or ``unknown`` (neither the service nor the chain knows it)."""
    raw = await run_in_threadpool(services.client.rpc.call, "eth_getTransactionReceipt", [tx_hash])
    if raw is None:
        known = services.relay.batcher.outcome(tx_hash)
        pending = known is not None or (
            await run_in_threadpool(services.client.rpc.call, "eth_getTransactionByHash", [tx_hash])
        ) is not None
        return SubmissionStatus(tx_hash=tx_hash, status="pending" if pending else "unknown")
    receipt = parse_receipt(raw)
    if receipt.status != 1:
        return SubmissionStatus(tx_hash=tx_hash, status="reverted", block_number=receipt.block_number,
                                gas_used=receipt.gas_used)
    stored = queries.cursor(session, services.client.chain_id, services.client.address)
    indexed = stored is not None and stored.block_number >= receipt.block_number
    return SubmissionStatus(tx_hash=tx_hash, status="indexed" if indexed else "mined",
                            block_number=receipt.block_number, gas_used=receipt.gas_used)


@router.get("/eip712")
def eip712_types(services: ServicesDep) -> dict[str, Any]:
    """The EIP-712 domain and submission types to sign (read from the contract's ``eip712Types()``)."""
    return {"domain": services.client.domain, "types": services.client.types}
