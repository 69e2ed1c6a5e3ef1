"""``/health``, ``/submissions/{tx}``, ``/submissions/status``, ``/submissions/queued/{id}``, ``/eip712``: service
state, submission state, what to sign."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session

from api.deps import OptionalServicesDep, Services, ServicesDep, SessionDep
from api.problems import ApiProblem
from api.schemas import (
    ChainHealth,
    ChildLagPublic,
    Health,
    QueuedSubmissionPublic,
    SubmissionStatus,
    SubmissionStatusQuery,
)
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


def _statuses(services: Services, session: Session, tx_hashes: list[str]) -> list[SubmissionStatus]:
    """The state of each of ``tx_hashes`` (see :func:`submission`), in order: each chain is asked for the receipts
    not found yet in one batched request, then for the transactions still unknown (unless a batcher of this
    service sent them and awaits their receipts); the cursors are read once. A failed call raises its
    :class:`chain.rpc.RpcError` (the API answers 503 ``chain-unavailable``)."""
    receipts: dict[str, tuple[TierChain, dict[str, Any]]] = {}
    missing = list(dict.fromkeys(h.lower() for h in tx_hashes))
    for chain in services.chains:
        if not missing:
            break
        answers = chain.rpc.batch_checked([("eth_getTransactionReceipt", [h]) for h in missing])
        receipts.update((h, (chain, raw)) for h, raw in zip(missing, answers, strict=True) if raw is not None)
        missing = [h for h, raw in zip(missing, answers, strict=True) if raw is None]
    pending = {h for h in missing if services.relay.sending(h)}
    for chain in services.chains:
        asked = [h for h in missing if h not in pending]
        if not asked:
            break
        answers = chain.rpc.batch_checked([("eth_getTransactionByHash", [h]) for h in asked])
        pending |= {h for h, tx in zip(asked, answers, strict=True) if tx is not None}
    cursors: dict[int, int | None] = {}
    for chain in services.chains:
        stored = queries.cursor(session, chain.chain_id, chain.factory)
        cursors[chain.chain_id] = None if stored is None else stored.block_number
    out = []
    for tx_hash in tx_hashes:
        found = receipts.get(tx_hash.lower())
        if found is None:
            out.append(SubmissionStatus(tx_hash=tx_hash,
                                        status="pending" if tx_hash.lower() in pending else "unknown"))
            continue
        chain, raw = found
        receipt = parse_receipt(raw)
        cursor = cursors[chain.chain_id]
        status: Literal["reverted", "indexed", "mined"] = (
            "reverted" if receipt.status != 1
            else "indexed" if cursor is not None and cursor >= receipt.block_number else "mined")
        out.append(SubmissionStatus(tx_hash=tx_hash, status=status, block_number=receipt.block_number,
                                    gas_used=receipt.gas_used, chain_id=chain.chain_id))
    return out


@router.get("/submissions/{tx_hash}", response_model=SubmissionStatus)
def submission(tx_hash: Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$")], services: ServicesDep,
               session: SessionDep) -> SubmissionStatus:
    """State of a submission transaction on any of the service's chains: ``pending``, ``mined``, ``indexed`` (the
    indexer's cursor on its chain has passed its block), ``reverted``, or ``unknown`` (neither the service nor
    a chain knows it). 422 for a malformed hash."""
    return _statuses(services, session, [tx_hash])[0]


@router.post("/submissions/status", response_model=list[SubmissionStatus])
def submission_statuses(
    body: SubmissionStatusQuery, services: ServicesDep, session: SessionDep
) -> list[SubmissionStatus]:
    """The state of up to 200 submission transactions at once, in the order asked (each as
    ``GET /submissions/{tx_hash}`` answers it): one batched JSON-RPC request per chain instead of one HTTP request
    per transaction, for clients that follow many (a loader waiting until its transactions are indexed). A read,
    sent as ``POST`` for its body. 422 for a malformed hash, none, or more than 200."""
    return _statuses(services, session, body.tx_hashes)


@router.get("/submissions/queued/{submission}", response_model=QueuedSubmissionPublic)
async def queued_submission(submission: str, services: ServicesDep) -> QueuedSubmissionPublic:
    """What became of a submission answered 503 ``submission-pending`` (its ``status_url``): ``queued``, ``sent``
    with the ``tx_hash`` that carries it, or ``refused`` with the problem it would have been answered with. 404
    for an id this service did not answer 503 (ids are keccak256 of the submission's signature), or answered long
    enough ago that it no longer holds it (it keeps the latest 10,000 settled ones,
    ``api.relay.KEEP_SETTLED``)."""
    found = services.relay.queued(submission)
    if found is None:
        raise ApiProblem(404, "not-found", "No such queued submission",
                         f"this service answered no submission {submission!r} with 503 submission-pending, or it "
                         f"was settled long ago and is no longer held")
    problem = None if found.problem is None else found.problem.body(f"/submissions/queued/{submission}")
    return QueuedSubmissionPublic(submission=found.submission, status=found.status, tx_hash=found.tx_hash,
                                  problem=problem)


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
