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

import logging
from types import TracebackType
from typing import Any

from web3 import Web3

from chain.errors import ChainError
from chain.rpc import Rpc, RpcError

log = logging.getLogger(__name__)

#: Largest number of calls in one batched JSON-RPC request.
MAX_BATCH = 500


class BlockNotFound(ChainError):
    """The node has no block at height ``number`` (yet, or any more after a reorganisation)."""

    def __init__(self, number: int) -> None:
        super().__init__(f"no block {number} on this chain")
        self.number = number


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

    ``rpc_url`` is the node; ``eth_getLogs`` and the batched ``eth_getBlockByNumber`` go over a
    pooled :class:`chain.rpc.Rpc` (``timeout_s`` seconds per HTTP request), or over ``rpc`` when
    one is handed in (see :meth:`from_rpc`). ``w3``, when given, answers :meth:`head` (so its
    middleware applies); otherwise ``eth_blockNumber`` goes over the same Rpc. ``address`` is the
    contract (any case). With ``topics`` (0x-hex event signatures), the fetcher reads instead every log
    whose first topic is one of them, from any contract — for following the directories a factory makes,
    whose addresses appear as the chain is read; ``address`` then names the factory and the caller filters.

    Errors: :class:`chain.rpc.RpcError` for a JSON-RPC error, :class:`chain.rpc.RpcUnavailable` for a
    transport failure, :class:`BlockRangeError` for a bad range, :class:`BlockNotFound` for a missing
    block. Use as a context manager, or call :meth:`close`, to release the HTTP pool it owns.
    """

    def __init__(
        self,
        w3: Web3 | None,
        address: str,
        rpc_url: str,
        *,
        rpc: Rpc | None = None,
        timeout_s: float = 30.0,
        topics: list[str] | None = None,
    ) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.topics = None if topics is None else sorted({t.lower() for t in topics})
        self.rpc_url = rpc_url
        self._owns_rpc = rpc is None
        self.rpc = rpc if rpc is not None else Rpc(rpc_url, timeout_s=timeout_s)

    @classmethod
    def from_rpc(cls, rpc: Rpc, address: str, topics: list[str] | None = None) -> LogFetcher:
        """A fetcher sharing an existing :class:`chain.rpc.Rpc` (which the caller keeps and closes)."""
        return cls(None, address, rpc.url, rpc=rpc, topics=topics)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the HTTP connection pool if this fetcher created it (idempotent)."""
        if self._owns_rpc:
            self.rpc.close()

    def __enter__(self) -> LogFetcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def head(self) -> int:
        """Number of the latest block (``eth_blockNumber``)."""
        if self.w3 is not None:
            return int(self.w3.eth.block_number)
        return int(self.rpc.call("eth_blockNumber", []), 16)

    def block_hash(self, number: int) -> str:
        """Hash (0x-hex, lowercase) of block ``number``. Raises :class:`BlockNotFound` if there is none."""
        block = self.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            raise BlockNotFound(number)
        return str(block["hash"]).lower()

    def fetch(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """Raw logs of the contract in blocks ``from_block..to_block`` (inclusive), in chain order.

        Each log is the node's JSON object (``address``, ``topics``, ``data``, ``blockNumber``,
        ``blockHash``, ``transactionHash``, ``transactionIndex``, ``logIndex``, … as 0x-hex strings),
        sorted by (block number, log index). Raises :class:`BlockRangeError` if the range is empty
        or negative or ``to_block`` is past the head (the node would silently answer up to head),
        :class:`chain.rpc.RpcError` if the node refuses even a single-block query.
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
        :data:`MAX_BATCH` calls per request; duplicates are asked once. Raises
        :class:`chain.rpc.RpcError` if a call fails, :class:`BlockNotFound` if a block does not exist.
        """
        wanted = sorted(set(numbers))
        out: dict[int, tuple[str, int]] = {}
        for start in range(0, len(wanted), MAX_BATCH):
            chunk = wanted[start : start + MAX_BATCH]
            results = self.rpc.batch_checked([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])
            for number, block in zip(chunk, results, strict=True):
                if block is None:
                    raise BlockNotFound(number)
                out[number] = (str(block["hash"]).lower(), int(block["timestamp"], 16))
        return out

    # ------------------------------------------------------------------ plumbing

    def _get_logs(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """``eth_getLogs`` for the contract (or the topics); splits the range in halves when the node refuses it."""
        query: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block)}
        if self.topics is None:
            query["address"] = self.address
        else:
            query["topics"] = [self.topics]
        params = [query]
        try:
            result = self.rpc.call("eth_getLogs", params)
        except RpcError as exc:
            if to_block == from_block:
                raise
            middle = (from_block + to_block) // 2
            log.info("eth_getLogs %d..%d refused (%s); splitting", from_block, to_block, exc.message)
            return self._get_logs(from_block, middle) + self._get_logs(middle + 1, to_block)
        if not isinstance(result, list):
            raise RpcError("eth_getLogs", 0, f"expected a list of logs, got {type(result).__name__}")
        wanted = self.address.lower()
        return [
            raw
            for raw in result
            if (self.topics is not None or str(raw.get("address", "")).lower() == wanted) and not raw.get("removed")
        ]
