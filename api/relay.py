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


#: Settled submissions answered 503 a relay keeps for their status URL by default (the latest ones).
KEEP_SETTLED = 10_000


def submission_id(signature: bytes) -> str:
    """The id of a signed submission: 0x-hex keccak256 of its 65-byte signature (one per signed message)."""
    return "0x" + keccak(signature).hex()


class Relay:
    """Relays signed messages to the directory :meth:`Directories.route` chooses, through its batcher;
    ``timeout_s`` bounds the wait for a transaction hash.

    What it holds stays bounded over the service's life: a submission's reservation against duplicates lasts until
    its transaction is final (its batcher's outcome is no longer ``pending``; reservations of final transactions are
    swept out whenever their number doubles, from ``sweep_floor``), and of the submissions answered 503 it keeps
    every one not yet settled and the latest ``keep_settled`` settled ones (sent or refused) for their status URL.
    """

    def __init__(
        self, directories: Directories, timeout_s: float = 60.0, *, keep_settled: int = KEEP_SETTLED,
        sweep_floor: int = 4096,
    ) -> None:
        if keep_settled < 0 or sweep_floor < 1:
            raise ValueError(f"expected keep_settled >= 0 and sweep_floor >= 1, got {keep_settled}, {sweep_floor}")
        self.directories = directories
        self.timeout_s = timeout_s
        self.keep_settled = keep_settled
        self.sweep_floor = sweep_floor
        #: (kind, key) → (tx hash, its batcher) of each reserved submission; ("?", None) until a transaction carries it
        self._inflight: dict[tuple[str, str], tuple[str, Batcher | None]] = {}
        self._sweep_at = sweep_floor
        self._lock = threading.Lock()
        #: submission id → the batcher's future, for each submission answered 503, oldest first
        self._queued: dict[str, Future[str]] = {}
        self._prune_at = max(1, 2 * keep_settled)

    def held(self) -> tuple[int, int]:
        """(reservations, submissions answered 503) this relay holds — what its memory grows with."""
        with self._lock:
            return len(self._inflight), len(self._queued)

    @staticmethod
    def _in_flight(held: tuple[str, Batcher | None]) -> bool:
        """Whether a reservation still stands: its submission has no transaction yet, or its transaction is pending
        (an outcome its batcher has forgotten is a final one: pending outcomes are never forgotten)."""
        tx, batcher = held
        if batcher is None:
            return True
        outcome = batcher.outcome(tx)
        return outcome is not None and outcome.status == "pending"

    def _reserve(self, keys: list[tuple[str, str]]) -> None:
        with self._lock:
            for key in keys:
                held = self._inflight.get(key)
                if held is not None and self._in_flight(held):
                    raise ApiProblem(409, "in-flight", "An identical submission is in flight",
                                     f"{key[0]} {key[1]} is already being submitted ({held[0]})")
            for key in keys:
                self._inflight[key] = ("?", None)
            if len(self._inflight) > self._sweep_at:  # amortised: a sweep at most every doubling
                self._inflight = {k: v for k, v in self._inflight.items() if self._in_flight(v)}
                self._sweep_at = max(self.sweep_floor, 2 * len(self._inflight))

    def _settle(self, keys: list[tuple[str, str]], tx_hash: str | None, batcher: Batcher | None) -> None:
        with self._lock:
            for key in keys:
                if tx_hash is None:
                    self._inflight.pop(key, None)
                else:
                    self._inflight[key] = (tx_hash, batcher)

    def _hold_queued(self, submission: str, future: Future[str]) -> None:
        """Keep a submission answered 503 for :meth:`queued`; past twice ``keep_settled``, forget the oldest settled
        ones down to ``keep_settled`` (unsettled ones are always kept)."""
        with self._lock:
            self._queued[submission] = future
            if len(self._queued) <= self._prune_at:
                return
            settled = [s for s, f in self._queued.items() if f.done()]
            for old in settled[: max(0, len(settled) - self.keep_settled)]:
                del self._queued[old]
            self._prune_at = max(1, 2 * self.keep_settled, 2 * len(self._queued))

    def queued(self, submission: str) -> QueuedSubmission | None:
        """What became of the submission ``submission`` (:func:`submission_id`) answered 503 by this relay; None
        if it was not answered 503 here, or settled long enough ago to be forgotten (see the class). A refusal is the
        problem the submission would have got at once: a mapped contract error (4xx), or 503 ``chain-unavailable``
        when the transaction could not be sent (what the API answers a chain error with,
        :func:`api.problems.chain_problem`)."""
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

    def sending(self, tx_hash: str) -> bool:
        """Whether a batcher of this service sent transaction ``tx_hash`` and is still waiting for its receipt."""
        for target in self.directories.targets():
            outcome = target.batcher.outcome(tx_hash)
            if outcome is not None:
                return outcome.status == "pending"
        return False

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
            self._hold_queued(queued, future)
            raise ApiProblem(
                503, "submission-pending", "The submission is queued but not yet in a transaction",
                f"no transaction carried it within {self.timeout_s:g} s; it stays queued and may still be sent: "
                f"follow it at status_url, which gives its transaction once sent",
                directory=target.client.address, submission=queued, status_url=f"/submissions/queued/{queued}",
            ) from exc
        except (ContractRevert, UnknownRevert) as exc:
            raise revert_problem(exc) from exc
        return tx_hash, signer
