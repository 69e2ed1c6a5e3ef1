"""The API's submission front: choose the directory, check the signature, reserve, hand to the directory's
batcher, answer with the transaction hash or the refusal.

A submission that no transaction carries within the relay's timeout gets 503 ``submission-pending`` with a
``status_url`` (``/submissions/queued/{id}``, the id keccak256 of its signature): it stays queued, and
:meth:`Relay.queued` tells whether it was sent since (and in which transaction) or refused (and why).

The batcher simulates each batch (one ``eth_call``) before sending it and, if the batch would revert, each of
its submissions alone: a refused submission gets its decoded custom error (a 4xx here) and never reaches the
chain, so a rejected submission writes nothing. Two identical submissions in flight at once are refused (409)
before either is queued.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from eth_utils import keccak
from starlette.concurrency import run_in_threadpool

from api.problems import ApiProblem, chain_problem, revert_problem
from chain import eip712
from chain.batcher import Batcher
from chain.directory import to_struct
from chain.errors import ContractRevert, SignatureError, UnknownRevert
from registry.directories import Directories, RouteError, Target
from registry.messages import Message


def _sent(future: Future[str]) -> str | None:
    """The transaction hash a resolved batcher future carries, or None if it failed or was cancelled."""
    if future.cancelled() or future.exception() is not None:
        return None
    return future.result()


@dataclass(frozen=True)
class QueuedSubmission:
    """What became of a submission answered 503 ``submission-pending``: ``status`` ``queued`` (no transaction yet),
    ``sent`` (``tx_hash`` carries it: follow it at ``/submissions/{tx_hash}``) or ``refused`` (``problem``: the 4xx
    it would have been answered with)."""

    submission: str
    status: Literal["queued", "sent", "refused"]
    tx_hash: str | None = None
    problem: ApiProblem | None = None


def submission_id(signature: bytes) -> str:
    """The id of a signed submission: 0x-hex keccak256 of its 65-byte signature (one per signed message)."""
    return "0x" + keccak(signature).hex()


class Relay:
    """Relays signed messages to the directory :meth:`Directories.route` chooses, through its batcher;
    ``timeout_s`` bounds the wait for a transaction hash."""

    def __init__(self, directories: Directories, timeout_s: float = 60.0) -> None:
        self.directories = directories
        self.timeout_s = timeout_s
        self._inflight: dict[tuple[str, str], tuple[str, Batcher | None]] = {}
        self._lock = threading.Lock()
        #: submission id → the batcher's future, for each submission answered 503 (kept for the service's life: one
        #: small entry per submission that waited longer than ``timeout_s``)
        self._queued: dict[str, Future[str]] = {}

    def _reserve(self, keys: list[tuple[str, str]]) -> None:
        with self._lock:
            for key in keys:
                held = self._inflight.get(key)
                if held is not None:
                    tx, batcher = held
                    outcome = batcher.outcome(tx) if batcher is not None else None
                    if batcher is None or outcome is None or outcome.status == "pending":
                        raise ApiProblem(409, "in-flight", "An identical submission is in flight",
                                         f"{key[0]} {key[1]} is already being submitted ({tx})")
            for key in keys:
                self._inflight[key] = ("?", None)

    def _settle(self, keys: list[tuple[str, str]], tx_hash: str | None, batcher: Batcher | None) -> None:
        with self._lock:
            for key in keys:
                if tx_hash is None:
                    self._inflight.pop(key, None)
                else:
                    self._inflight[key] = (tx_hash, batcher)

    def queued(self, submission: str) -> QueuedSubmission | None:
        """What became of the submission ``submission`` (:func:`submission_id`) answered 503 by this relay; None
        if it was not answered 503 here. A refusal is the problem the submission would have got at once: a mapped
        contract error (4xx), or 503 ``chain-unavailable`` when the transaction could not be sent (what the API answers
        a chain error with, :func:`api.problems.chain_problem`)."""
        with self._lock:
            future = self._queued.get(submission.lower())
        if future is None:
            return None
        if not future.done():
            return QueuedSubmission(submission, "queued")
        if future.cancelled():
            return QueuedSubmission(submission, "refused", problem=ApiProblem(
                409, "cancelled", "The submission was cancelled", "the queued submission was dropped unsent"))
        exc = future.exception()
        if exc is None:
            return QueuedSubmission(submission, "sent", tx_hash=future.result())
        if isinstance(exc, (ContractRevert, UnknownRevert)):
            return QueuedSubmission(submission, "refused", problem=revert_problem(exc))
        return QueuedSubmission(submission, "refused", problem=chain_problem(exc))

    def outcome_known(self, tx_hash: str) -> bool:
        """Whether a batcher of this service sent (or is sending) transaction ``tx_hash``."""
        return any(t.batcher.outcome(tx_hash) is not None for t in self.directories.targets())

    async def route(self, msg: Message) -> Target:
        """The directory ``msg`` goes to; 422 ``unknown-reference`` if it names something not indexed.

        Answered on the event loop when the directory is already known (:meth:`Directories.route_known`, the
        common case: a hop to the thread pool and back costs more CPU than the lookup), otherwise in the pool
        (routing may read the index and make a directory on the chain)."""
        known = self.directories.route_known(msg)
        if known is not None:
            return known
        try:
            return await run_in_threadpool(self.directories.route, msg)
        except RouteError as exc:
            raise ApiProblem(422, "unknown-reference", "The submission names something the directory does not hold",
                             str(exc)) from exc

    async def submit(self, msg: Message, signature_hex: str, code_key: str) -> tuple[str, str]:
        """Relay one signed message; returns (transaction hash, signer address).

        Raises :class:`ApiProblem`: 400 for a malformed signature, 409 for a duplicate in flight, 422 when the
        directory cannot be chosen, 4xx mapped from the contract's custom error when the batcher's simulation of
        the submission reverts, 503 ``submission-pending`` when no transaction carried it within ``timeout_s``
        seconds (it stays queued, reserved against duplicates until the batcher sends or refuses it; the problem's
        ``status_url`` follows it, see :meth:`queued`).
        """
        signature = bytes.fromhex(signature_hex[2:])
        target = await self.route(msg)
        client = target.client
        try:
            signer = eip712.recover(client.typed_data(msg.primary, msg.message), signature)
        except SignatureError as exc:
            raise ApiProblem(400, "invalid-signature", "The signature is not acceptable", exc.reason) from exc
        struct: tuple[Any, ...] = to_struct(msg.primary, msg.message, signature, msg.record)
        keys = [("nonce", f"{client.address}:{signer}:{msg.message['nonce']}"), (msg.primary, code_key)]
        self._reserve(keys)
        try:
            future = target.batcher.submit(msg.primary, struct)
        except BaseException:
            self._settle(keys, None, None)
            raise
        # The reservation lasts as long as the submission: released or pinned to its transaction when the batcher
        # resolves the future, even if this request has stopped waiting.
        future.add_done_callback(lambda done: self._settle(keys, _sent(done), target.batcher))
        try:
            # shield: a timeout or a client gone away must not cancel a submission the batcher may already hold
            tx_hash = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout=self.timeout_s)
        except TimeoutError as exc:
            queued = submission_id(signature)
            with self._lock:
                self._queued[queued] = future
            raise ApiProblem(
                503, "submission-pending", "The submission is queued but not yet in a transaction",
                f"no transaction carried it within {self.timeout_s:g} s; it stays queued and may still be sent: "
                f"follow it at status_url, which gives its transaction once sent",
                directory=target.client.address, submission=queued, status_url=f"/submissions/queued/{queued}",
            ) from exc
        except (ContractRevert, UnknownRevert) as exc:
            raise revert_problem(exc) from exc
        return tx_hash, signer
