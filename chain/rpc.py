"""Plain JSON-RPC over HTTP (httpx): single calls and batched arrays.

Used where web3.py gets in the way: web3.py retries ``eth_sendRawTransaction`` on timeouts and
refuses it in ``batch_requests``, and hides revert data behind its own exceptions.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from chain.errors import ChainError


class RpcError(ChainError):
    """A JSON-RPC error object: ``code``, ``message`` and, for reverts, ``data`` (bytes)."""

    def __init__(self, method: str, code: int, message: str, data: bytes = b"") -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class Rpc:
    """A JSON-RPC endpoint. ``timeout_s``: per-request HTTP timeout in seconds."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_s)
        self._ids = itertools.count(1)

    def call(self, method: str, params: list[Any]) -> Any:
        """One request; returns ``result`` or raises :class:`RpcError`. Network errors raise httpx errors."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        reply = self._client.post(self.url, json=body)
        reply.raise_for_status()
        return _result(method, reply.json())

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any | RpcError]:
        """One HTTP request carrying a JSON array of calls; returns results (or RpcError) in call order."""
        if not calls:
            return []
        first = next(self._ids)
        body = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        for _ in range(len(calls) - 1):
            next(self._ids)
        reply = self._client.post(self.url, json=body)
        reply.raise_for_status()
        payload = reply.json()
        if not isinstance(payload, list):  # the node refused the whole batch with one error object
            _result("batch", payload)
            raise RpcError("batch", 0, f"expected a JSON array of {len(calls)} replies, got {payload!r}")
        by_id = {item.get("id"): item for item in payload}
        out: list[Any | RpcError] = []
        for i, (method, _) in enumerate(calls):
            item = by_id.get(first + i)
            if item is None:
                out.append(RpcError(method, 0, f"no reply for request id {first + i} in the batch"))
                continue
            try:
                out.append(_result(method, item))
            except RpcError as exc:
                out.append(exc)
        return out

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _result(method: str, item: dict[str, Any]) -> Any:
    if "error" in item and item["error"] is not None:
        err = item["error"]
        data = err.get("data")
        raw = b""
        if isinstance(data, str) and data.startswith("0x"):
            raw = bytes.fromhex(data[2:])
        raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), raw)
    return item.get("result")
