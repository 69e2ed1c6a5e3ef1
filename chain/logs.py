"""Log fetcher: the raw material of the indexer (logs of one contract, block hashes and timestamps).

Everything here speaks plain JSON-RPC and returns what the node returns (0x-hex strings), so the
indexer decodes with :class:`chain.abi.ContractCodec` and never depends on web3.py's formatters.
This module never touches SQL.

Two node behaviours it guards against (DESIGN §4): ``eth_getLogs`` with ``toBlock`` past head
silently answers up to head — :meth:`LogFetcher.fetch` refuses such a range instead, so a caller
can never advance a cursor past what it actually read; and nodes cap the size of a log query
(Besu, Geth: a result or range limit) — a range the node rejects is split in halves and retried.
"""

from __future__ import annotations

import itertools
import logging
from types import TracebackType
from typing import Any

import httpx
from web3 import Web3

from chain.errors import ChainError

log = logging.getLogger(__name__)

#: Largest number of calls in one batched JSON-RPC request.
MAX_BATCH = 500


class RpcError(ChainError):
    """A JSON-RPC call failed: transport error, HTTP error status, or an ``error`` member.

    ``method`` is the JSON-RPC method, ``code`` the JSON-RPC error code (None for a transport or
    HTTP failure), ``message`` the node's message.
    """

    def __init__(self, method: str, message: str, code: int | None = None) -> None:
        super().__init__(f"{method} failed: {message}" + (f" (code {code})" if code is not None else ""))
        self.method = method
        self.code = code
        self.message = message


class BlockRangeError(ChainError):
    """A block range is empty, negative, or reaches past the chain head (``head``, block number)."""

    def __init__(self, from_block: int, to_block: int, head: int | None = None) -> None:
        detail = f" (head is {head})" if head is not None else ""
        super().__init__(f"invalid block range {from_block}..{to_block}{detail}")
        self.from_block = from_block
        self.to_block = to_block
        self.head = head


class LogFetcher:
    """Reads the logs of one contract and the blocks they sit in from one JSON-RPC endpoint.

    ``w3`` answers the head and single-block questions; ``rpc_url`` (the same node) serves the raw
    ``eth_getLogs`` and batched ``eth_getBlockByNumber`` requests over one pooled :mod:`httpx`
    client (``timeout_s`` seconds per request). ``address`` is the contract (any case).
    Errors: :class:`RpcError` for a failing call, :class:`BlockRangeError` for a bad range.
    Use as a context manager, or call :meth:`close`, to release the HTTP connection pool.
    """

    def __init__(self, w3: Web3, address: str, rpc_url: str, *, timeout_s: float = 30.0) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.rpc_url = rpc_url
        self._http = httpx.Client(timeout=timeout_s)
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the HTTP connection pool (idempotent)."""
        self._http.close()

    def __enter__(self) -> LogFetcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def head(self) -> int:
        """Number of the latest block (``eth_blockNumber``)."""
        try:
            return int(self.w3.eth.block_number)
        except Exception as exc:  # web3 raises a zoo of transport and value errors
            raise RpcError("eth_blockNumber", str(exc)) from exc

    def block_hash(self, number: int) -> str:
        """Hash (0x-hex, lowercase) of block ``number``. Raises :class:`RpcError` if there is no such block."""
        block = self._call("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            raise RpcError("eth_getBlockByNumber", f"no block {number}")
        return str(block["hash"]).lower()

    def fetch(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """Raw logs of the contract in blocks ``from_block..to_block`` (inclusive), in chain order.

        Each log is the node's JSON object (``address``, ``topics``, ``data``, ``blockNumber``,
        ``blockHash``, ``transactionHash``, ``transactionIndex``, ``logIndex``, … as 0x-hex strings),
        sorted by (block number, log index). Raises :class:`BlockRangeError` if the range is empty
        or negative or ``to_block`` is past the head (the node would silently answer up to head),
        :class:`RpcError` if the node fails even for a single-block query.
        """
        if from_block < 0 or to_block < from_block:
            raise BlockRangeError(from_block, to_block)
        head = self.head()
        if to_block > head:
            raise BlockRangeError(from_block, to_block, head)
        logs = self._get_logs(from_block, to_block)
        logs.sort(key=lambda raw: (int(raw["blockNumber"], 16), int(raw["logIndex"], 16)))
        return logs

    def block_timestamps(self, numbers: list[int]) -> dict[int, tuple[str, int]]:
        """Block hash (0x-hex, lowercase) and timestamp (unix seconds) of each block in ``numbers``.

        Sent as batched JSON-RPC requests (a JSON array of ``eth_getBlockByNumber(n, false)``), at most
        :data:`MAX_BATCH` calls per request; duplicates are asked once. Raises :class:`RpcError` if a
        call fails or a block does not exist.
        """
        wanted = sorted(set(numbers))
        out: dict[int, tuple[str, int]] = {}
        for start in range(0, len(wanted), MAX_BATCH):
            chunk = wanted[start : start + MAX_BATCH]
            results = self._batch("eth_getBlockByNumber", [[hex(n), False] for n in chunk])
            for number, block in zip(chunk, results, strict=True):
                if block is None:
                    raise RpcError("eth_getBlockByNumber", f"no block {number}")
                out[number] = (str(block["hash"]).lower(), int(block["timestamp"], 16))
        return out

    # ------------------------------------------------------------------ JSON-RPC plumbing

    def _get_logs(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """``eth_getLogs`` for the contract; splits the range in halves when the node refuses it."""
        params = [{"address": self.address, "fromBlock": hex(from_block), "toBlock": hex(to_block)}]
        try:
            result = self._call("eth_getLogs", params)
        except RpcError as exc:
            if exc.code is None or to_block == from_block:
                raise
            middle = (from_block + to_block) // 2
            log.info("eth_getLogs %d..%d refused (%s); splitting", from_block, to_block, exc.message)
            return self._get_logs(from_block, middle) + self._get_logs(middle + 1, to_block)
        if not isinstance(result, list):
            raise RpcError("eth_getLogs", f"expected a list, got {type(result).__name__}")
        wanted = self.address.lower()
        return [raw for raw in result if str(raw.get("address", "")).lower() == wanted and not raw.get("removed")]

    def _post(self, method: str, payload: Any) -> Any:
        try:
            response = self._http.post(self.rpc_url, json=payload)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RpcError(method, f"{type(exc).__name__}: {exc}") from exc

    def _call(self, method: str, params: list[Any]) -> Any:
        body = self._post(method, {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        return _result(method, body)

    def _batch(self, method: str, param_lists: list[list[Any]]) -> list[Any]:
        """One HTTP request carrying ``len(param_lists)`` calls of ``method``; results in input order."""
        ids = [next(self._ids) for _ in param_lists]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in zip(ids, param_lists, strict=True)
        ]
        body = self._post(method, payload)
        if not isinstance(body, list):  # a node rejecting the whole batch answers with one error object
            _result(method, body)
            raise RpcError(method, "expected a JSON array answering the batch")
        by_id = {item.get("id"): item for item in body if isinstance(item, dict)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise RpcError(method, f"batch answer lacks {len(missing)} of {len(ids)} responses")
        return [_result(method, by_id[i]) for i in ids]


def _result(method: str, body: Any) -> Any:
    """The ``result`` of one JSON-RPC response object, or :class:`RpcError` for its ``error``."""
    if not isinstance(body, dict):
        raise RpcError(method, f"malformed response {body!r:.200}")
    error = body.get("error")
    if error is not None:
        if isinstance(error, dict):
            raise RpcError(method, str(error.get("message", error)), error.get("code"))
        raise RpcError(method, str(error))
    if "result" not in body:
        raise RpcError(method, f"response without result {body!r:.200}")
    return body["result"]
