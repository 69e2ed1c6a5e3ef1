"""``/health``, ``/submissions/{tx}``, ``/submissions/queued/{id}``, ``/eip712``: service state, submission state,
what to sign."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import OptionalServicesDep, Services, ServicesDep, SessionDep
from api.problems import ApiProblem
from api.schemas import ChainHealth, ChildLagPublic, Health, QueuedSubmissionPublic, SubmissionStatus
from chain import eip712
from chain.errors import ChainError
from chain.sender import parse_receipt
from registry import queries, sharing
from registry.directories import RouteError, TierChain

router = APIRouter(tags=["service"])


def _head(chain: TierChain) -> int | None:
    try:
        return int(chain.rpc.call("eth_blockNumber", []), 16)
    except (ChainError, OSError):
        return None


@router.get("/health", response_model=Health)
def health(services: OptionalServicesDep, session: SessionDep) -> Health:
    """Per chain: head, indexer cursor and lag (blocks), confirmations; per child directory: its relay lag
    (blocks and seconds of its chain); queued submissions and index counts. The top-level chain fields are the
    city chain's. On a read-only replica: the index counts alone (``read_only`` true; no chain is asked).

    A plain ``def``, run in the thread pool: the counts scan whole tables (``COUNT(*)`` over every indexed event)
    and the heads are RPC round trips, neither of which may hold up the event loop that serves the point reads."""
    if services is None:
        return Health(status="ok", read_only=True, chain_id=None, head=None, cursor=None, lag_blocks=None,
                      confirmations=None, chains=[], children=[], sync_rounds=0, pending_submissions=0,
                      counts={**queries.counts(session), **sharing.counts(session)})
    chains = []
    for chain in services.chains:
        head = _head(chain)
        stored = queries.cursor(session, chain.chain_id, chain.factory)
        cursor = stored.block_number if stored is not None else None
        chains.append(ChainHealth(name=chain.name, chain_id=chain.chain_id, factory=chain.factory, head=head,
                                  cursor=cursor, lag_blocks=None if head is None or cursor is None else head - cursor,
                                  confirmations=chain.confirmations))
    indexer_error = services.indexer_error()
    city = chains[0]
    children = [ChildLagPublic.model_validate(lag, from_attributes=True) for lag in services.lags()]
    ok = all(c.head is not None for c in chains) and indexer_error is None
    return Health(
        status="ok" if ok else "degraded",
        indexer_error=indexer_error,
        chain_id=city.chain_id,
        head=city.head,
        cursor=city.cursor,
        lag_blocks=city.lag_blocks,
        confirmations=city.confirmations,
        chains=chains,
        children=children,
        sync_rounds=services.sync_rounds(),
        pending_submissions=services.pending(),
        counts={**queries.counts(session), **sharing.counts(session)},
    )


def _find_receipt(services: Services, tx_hash: str) -> tuple[TierChain, dict[str, Any]] | None:
    for chain in services.chains:
        raw = chain.rpc.call("eth_getTransactionReceipt", [tx_hash])
        if raw is not None:
            return chain, raw
    return None


def _known(services: Services, tx_hash: str) -> bool:
    if services.relay.outcome_known(tx_hash):
        return True
    return any(chain.rpc.call("eth_getTransactionByHash", [tx_hash]) is not None for chain in services.chains)


@router.get("/submissions/queued/{submission}", response_model=QueuedSubmissionPublic)
async def queued_submission(submission: str, services: ServicesDep) -> QueuedSubmissionPublic:
    """What became of a submission answered 503 ``submission-pending`` (its ``status_url``): ``queued``, ``sent``
    with the ``tx_hash`` that carries it, or ``refused`` with the problem it would have been answered with. 404
    for an id this service did not answer 503 (ids are keccak256 of the submission's signature)."""
    found = services.relay.queued(submission)
    if found is None:
        raise ApiProblem(404, "not-found", "No such queued submission",
                         f"this service answered no submission {submission!r} with 503 submission-pending")
    problem = None if found.problem is None else found.problem.body(f"/submissions/queued/{submission}")
    return QueuedSubmissionPublic(submission=found.submission, status=found.status, tx_hash=found.tx_hash,
                                  problem=problem)


@router.get("/submissions/{tx_hash}", response_model=SubmissionStatus)
async def submission(tx_hash: str, services: ServicesDep, session: SessionDep) -> SubmissionStatus:
    """State of a submission transaction on any of the service's chains: ``pending``, ``mined``, ``indexed`` (the
    indexer's cursor on its chain has passed its block), ``reverted``, or ``unknown`` (neither the service nor
    a chain knows it)."""
    found = await run_in_threadpool(_find_receipt, services, tx_hash)
    if found is None:
        pending = await run_in_threadpool(_known, services, tx_hash)
        return SubmissionStatus(tx_hash=tx_hash, status="pending" if pending else "unknown")
    chain, raw = found
    receipt = parse_receipt(raw)
    if receipt.status != 1:
        return SubmissionStatus(tx_hash=tx_hash, status="reverted", block_number=receipt.block_number,
                                gas_used=receipt.gas_used, chain_id=chain.chain_id)
    stored = queries.cursor(session, chain.chain_id, chain.factory)
    indexed = stored is not None and stored.block_number >= receipt.block_number
    return SubmissionStatus(tx_hash=tx_hash, status="indexed" if indexed else "mined",
                            block_number=receipt.block_number, gas_used=receipt.gas_used, chain_id=chain.chain_id)


@router.get("/eip712")
def eip712_types(
    services: ServicesDep,
    jurisdiction: Annotated[str | None, Query(description="the directory of this jurisdiction (code)")] = None,
    tier: Annotated[str | None, Query(description="its tier, for a jurisdiction not added yet (the root)")] = None,
    catalog: Annotated[str | None, Query(description="with requester: the directory for a sharing request")] = None,
    requester: Annotated[str | None, Query(description="the requesting department's code")] = None,
    request: Annotated[str | None, Query(description="a sharing request id: for its decision or revocation")] = None,
) -> dict[str, Any]:
    """The EIP-712 domain of the directory a submission goes to, and the submission types (read from the
    contract's ``eip712Types()``). Sign a jurisdiction for its parent's directory (the root for its own, with
    ``tier=city``); a department, key, administrator, catalog or system for its jurisdiction's; a sharing
    request with ``catalog`` and ``requester``; a decision or revocation with ``request``. With one directory
    for everything (single mode) no parameter is needed."""
    directories = services.directories
    try:
        if catalog is not None and requester is not None:
            home, chain_id, address = directories.locate_sharing(catalog, requester)
        elif request is not None:
            home, chain_id, address = directories.locate_request(bytes.fromhex(request.removeprefix("0x")))
        elif jurisdiction is not None or directories.single:
            home, chain_id, address = directories.locate(jurisdiction, tier)
        else:
            raise ApiProblem(400, "missing-parameter", "Which directory?",
                             "give jurisdiction (and tier=city for a new root), catalog and requester, or request")
    except RouteError as exc:
        raise ApiProblem(422, "unknown-reference", "The directory cannot be chosen", str(exc)) from exc
    except ValueError as exc:
        raise ApiProblem(422, "invalid-parameter", "The request id is not hex", str(exc)) from exc
    return {"domain": eip712.domain(chain_id, address), "types": directories.types, "jurisdiction": home}
