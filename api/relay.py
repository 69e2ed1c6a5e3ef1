"""The API's submission front: check the signature, simulate, reserve, hand to the batcher.

Nothing reaches the chain unless its simulation passes, so a rejected submission writes nothing;
two identical submissions in flight at once are refused (409) before either is simulated.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.problems import ApiProblem, revert_problem
from chain import eip712
from chain.batcher import Batcher
from chain.directory import DirectoryClient, to_struct
from chain.errors import ContractRevert, SignatureError, UnknownRevert
from registry.messages import Message


class Relay:
    """Relays signed messages through ``batcher``; ``timeout_s`` bounds the wait for a transaction hash."""

    def __init__(self, client: DirectoryClient, batcher: Batcher, timeout_s: float = 60.0) -> None:
        self.client = client
        self.batcher = batcher
        self.timeout_s = timeout_s
        self._inflight: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def _reserve(self, keys: list[tuple[str, str]]) -> None:
        with self._lock:
            for key in keys:
                tx = self._inflight.get(key)
                if tx is not None:
                    outcome = self.batcher.outcome(tx) if tx != "?" else None
                    if tx == "?" or outcome is None or outcome.status == "pending":
                        raise ApiProblem(409, "in-flight", "An identical submission is in flight",
                                         f"{key[0]} {key[1]} is already being submitted ({tx})")
            for key in keys:
                self._inflight[key] = "?"

    def _settle(self, keys: list[tuple[str, str]], tx_hash: str | None) -> None:
        with self._lock:
            for key in keys:
                if tx_hash is None:
                    self._inflight.pop(key, None)
                else:
                    self._inflight[key] = tx_hash

    async def submit(self, msg: Message, signature_hex: str, code_key: str) -> tuple[str, str]:
        """Relay one signed message; returns (transaction hash, signer address).

        Raises :class:`ApiProblem`: 400 for a malformed signature, 409 for a duplicate in flight,
        4xx mapped from the contract's custom error when the simulation reverts.
        """
        signature = bytes.fromhex(signature_hex[2:])
        try:
            signer = eip712.recover(self.client.typed_data(msg.primary, msg.message), signature)
        except SignatureError as exc:
            raise ApiProblem(400, "invalid-signature", "The signature is not acceptable", exc.reason) from exc
        struct: tuple[Any, ...] = to_struct(msg.primary, msg.message, signature, msg.record)
        keys = [("nonce", f"{signer}:{msg.message['nonce']}"), (msg.primary, code_key)]
        self._reserve(keys)
        tx_hash: str | None = None
        try:
            await run_in_threadpool(self.client.simulate, msg.primary, [struct])
            future = self.batcher.submit(msg.primary, struct)
            tx_hash = await asyncio.wait_for(asyncio.wrap_future(future), timeout=self.timeout_s)
        except (ContractRevert, UnknownRevert) as exc:
            raise revert_problem(exc) from exc
        finally:
            self._settle(keys, tx_hash)
        return tx_hash, signer
