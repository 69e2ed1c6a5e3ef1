"""Plain JSON-RPC over HTTP (libcurl, through pycurl): single calls and batched arrays.

Used where web3.py gets in the way: web3.py retries ``eth_sendRawTransaction`` on timeouts and
refuses it in ``batch_requests``, and hides revert data behind its own exceptions.

The transport is a pool of libcurl handles, each keeping its connection to the node alive, taken by one
thread at a time. The service makes an RPC call for every simulation, batch, receipt poll, log range and relay,
from hundreds of threads, and what each call costs in Python is CPU taken from the API under one GIL: libcurl
parses the HTTP reply in C with the GIL released. Measured against anvil (``eth_blockNumber``, 2,000 calls,
2026-12-06): 42 µs of CPU a call from one thread and 65 µs from 16, against 187 and 336 µs through urllib3's
connection pool (whose reply headers go through ``email.parser``), the transport before.

A request is sent once: a node that drops the connection, answers late or answers something else gives
:class:`RpcUnavailable`, never a second attempt — with one exception libcurl makes by itself: a request written on
a kept-alive connection that the node had closed before any byte of a reply came back is written again on a fresh
one. What this project sends is safe to receive twice (reads, and ``eth_sendRawTransaction``: the same signed
transaction has the same hash, and a node answers the second one "already known").
"""

from __future__ import annotations

import io
import itertools
import json
import queue
import threading
from typing import Any

import pycurl

from chain.errors import ChainError

#: Most connections an :class:`Rpc` keeps open to its node; a thread wanting one more waits for one to be free.
MAX_CONNECTIONS = 100
#: ``Expect:`` empty: no ``Expect: 100-continue`` (and its wait for the node's interim answer) before a body over 1 KiB.
_HEADERS = ["Content-Type: application/json", "Expect:"]


class RpcError(ChainError):
    """A JSON-RPC error object: ``code``, ``message`` and, for reverts, ``data`` (bytes)."""

    def __init__(self, method: str, code: int, message: str, data: bytes = b"") -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class RpcUnavailable(ChainError):
    """The node did not answer ``method`` with a JSON-RPC reply: ``reason`` is the transport error (refused,
    reset, timed out) or the HTTP status and the start of the body it answered instead."""

    def __init__(self, url: str, method: str, reason: str) -> None:
        super().__init__(f"{method}: no JSON-RPC reply from {url}: {reason}")
        self.url = url
        self.method = method
        self.reason = reason


class Rpc:
    """A JSON-RPC endpoint at ``url``, safe to share between threads. ``timeout_s``: the longest one request may
    take, connecting, sending and reading its whole reply (seconds). Raises ValueError for ``timeout_s`` <= 0."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"expected timeout_s > 0, got {timeout_s}")
        self.url = url
        self.timeout_s = timeout_s
        self._idle: queue.LifoQueue[pycurl.Curl] = queue.LifoQueue()  # last used first: its connection is warm
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._ids = itertools.count(1)

    def _handle(self) -> pycurl.Curl:
        """An idle handle (its connection kept alive), or a new one set up for this node."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        handle = pycurl.Curl()
        handle.setopt(pycurl.URL, self.url)
        handle.setopt(pycurl.HTTPHEADER, _HEADERS)
        handle.setopt(pycurl.NOSIGNAL, 1)  # no SIGALRM for timeouts: handles are used from many threads
        handle.setopt(pycurl.PROXY, "")  # straight to the node, whatever http_proxy says
        handle.setopt(pycurl.TIMEOUT_MS, max(1, round(self.timeout_s * 1000)))  # the whole exchange
        return handle

    def _post(self, method: str, body: object) -> Any:
        """POST ``body`` as JSON and return the decoded JSON reply. Raises :class:`RpcUnavailable`."""
        reply = io.BytesIO()
        with self._slots:
            handle = self._handle()
            try:
                handle.setopt(pycurl.POSTFIELDS, json.dumps(body).encode())
                handle.setopt(pycurl.WRITEDATA, reply)
                handle.perform()  # releases the GIL until the reply is in
                status = handle.getinfo(pycurl.RESPONSE_CODE)
            except pycurl.error as exc:
                handle.close()  # its connection's state is unknown: not reused
                code, message = exc.args
                raise RpcUnavailable(self.url, method, f"curl error {code}: {message}") from exc
            handle.setopt(pycurl.WRITEDATA, io.BytesIO())  # drop the reference to this reply
            self._idle.put(handle)
        data = reply.getvalue()
        if status != 200:
            raise RpcUnavailable(self.url, method, f"HTTP {status}: {data[:200]!r}")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise RpcUnavailable(self.url, method, f"expected JSON, got {data[:200]!r}") from exc

    def call(self, method: str, params: list[Any]) -> Any:
        """One request; returns ``result``. Raises :class:`RpcError` for a JSON-RPC error object,
        :class:`RpcUnavailable` when the node does not answer with JSON."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        reply = self._post(method, body)
        if not isinstance(reply, dict):
            raise RpcUnavailable(self.url, method, f"expected a JSON object, got {reply!r:.200}")
        return _result(method, reply)

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
        payload = self._post("batch", body)
        if not isinstance(payload, list):  # the node refused the whole batch with one error object
            if isinstance(payload, dict):
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

    def batch_checked(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """:meth:`batch`, raising the first failed call's :class:`RpcError` instead of returning it among the
        results (for callers that can use the answers only if every call succeeded)."""
        results = self.batch(calls)
        for result in results:
            if isinstance(result, RpcError):
                raise result
        return results

    def close(self) -> None:
        """Close the idle handles and their connections. A call made meanwhile or afterwards still works: it opens a
        new connection, and its handle is kept for the next call (closed with the next :meth:`close`, or when the
        :class:`Rpc` is garbage-collected)."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _result(method: str, item: dict[str, Any]) -> Any:
    if "error" in item and item["error"] is not None:
        err = item["error"]
        data = err.get("data")
        raw = b""
        if isinstance(data, str) and data.startswith("0x"):
            raw = bytes.fromhex(data[2:])
        raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), raw)
    return item.get("result")
