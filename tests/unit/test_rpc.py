"""``chain.rpc.Rpc`` over a local HTTP server standing in for a node: replies, JSON-RPC errors, batches, and a node
that does not answer with JSON-RPC — :class:`RpcUnavailable`, after sending the request exactly once (no retry
that could re-broadcast a transaction)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chain.errors import ChainError
from chain.node import free_port
from chain.rpc import Rpc, RpcError, RpcUnavailable

#: What the stand-in node does with a request body: (HTTP status, reply bytes), or None to drop the connection.
Behaviour = Callable[[bytes], tuple[int, bytes] | None]


class _Node:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.bodies: list[bytes] = []
        self.peers: set[tuple[str, int]] = set()  # client ends of the connections the requests came on


@pytest.fixture
def node() -> Iterator[tuple[str, _Node]]:
    state = _Node(lambda body: (200, b"{}"))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.bodies.append(body)
            state.peers.add(self.client_address)
            answer = state.behaviour(body)
            if answer is None:
                self.close_connection = True
                self.connection.close()
                return
            status, reply = answer
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def _echo_result(body: bytes) -> tuple[int, bytes]:
    request = json.loads(body)
    error = {"code": 3, "message": "execution reverted", "data": "0x08c379a0"}
    if isinstance(request, list):
        replies = [{"jsonrpc": "2.0", "id": r["id"], "error": error} if r["method"] == "eth_fail"
                   else {"jsonrpc": "2.0", "id": r["id"], "result": r["method"]} for r in request]
        return 200, json.dumps(replies).encode()
    if request["method"] == "eth_fail":
        return 200, json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode()
    return 200, json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": request["params"]}).encode()


def test_call_batch_and_json_rpc_errors(node: tuple[str, _Node]) -> None:
    url, state = node
    state.behaviour = _echo_result
    rpc = Rpc(url)
    assert rpc.call("eth_echo", [1, "0x2"]) == [1, "0x2"]
    with pytest.raises(RpcError) as reverted:
        rpc.call("eth_fail", [])
    assert reverted.value.code == 3 and reverted.value.data == bytes.fromhex("08c379a0")
    assert rpc.batch([("eth_a", []), ("eth_b", [])]) == ["eth_a", "eth_b"]
    sent = [json.loads(b) for b in state.bodies]
    assert sent[0] == {"jsonrpc": "2.0", "id": 1, "method": "eth_echo", "params": [1, "0x2"]}
    assert [r["id"] for r in sent[2]] == [3, 4]  # ids never reused across calls and batches
    mixed = rpc.batch([("eth_a", []), ("eth_fail", []), ("eth_b", [])])
    assert mixed[0] == "eth_a" and isinstance(mixed[1], RpcError) and mixed[1].code == 3 and mixed[2] == "eth_b"
    assert rpc.batch_checked([("eth_a", []), ("eth_b", [])]) == ["eth_a", "eth_b"]
    with pytest.raises(RpcError) as failed:
        rpc.batch_checked([("eth_a", []), ("eth_fail", [])])
    assert failed.value.code == 3 and failed.value.method == "eth_fail"
    rpc.close()


@pytest.mark.parametrize(("behaviour", "reason"), [
    (lambda body: (500, b"internal"), "HTTP 500"),
    (lambda body: (200, b"<html>not json</html>"), "expected JSON"),
    (lambda body: (200, b"[1, 2]"), "expected a JSON object"),
    (lambda body: None, "Empty reply from server"),
])
def test_a_node_not_answering_json_rpc_is_unavailable_after_one_attempt(
    node: tuple[str, _Node], behaviour: Behaviour, reason: str
) -> None:
    url, state = node
    state.behaviour = behaviour
    with pytest.raises(RpcUnavailable) as caught:
        Rpc(url, timeout_s=5).call("eth_sendRawTransaction", ["0x01"])
    assert isinstance(caught.value, ChainError)
    assert caught.value.method == "eth_sendRawTransaction" and reason in caught.value.reason, caught.value.reason
    assert len(state.bodies) == 1  # sent once: a transaction is never re-broadcast behind the caller's back


def test_a_refused_connection_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RpcUnavailable) as caught:
        Rpc(url, timeout_s=5).call("eth_chainId", [])
    assert caught.value.url == url and "connect" in caught.value.reason.lower(), caught.value.reason


def test_a_node_silent_past_the_timeout_is_unavailable(node: tuple[str, _Node]) -> None:
    url, state = node

    def silent(body: bytes) -> tuple[int, bytes]:
        time.sleep(3)
        return _echo_result(body)

    state.behaviour = silent
    with pytest.raises(RpcUnavailable) as caught:
        Rpc(url, timeout_s=1).call("eth_blockNumber", [])
    assert "curl error 28" in caught.value.reason, caught.value.reason  # CURLE_OPERATION_TIMEDOUT
    assert len(state.bodies) == 1


def test_connections_are_kept_alive_and_shared_between_threads(node: tuple[str, _Node]) -> None:
    url, state = node
    state.behaviour = _echo_result
    rpc = Rpc(url)
    assert [rpc.call("eth_echo", [i]) for i in range(50)] == [[i] for i in range(50)]
    assert len(state.peers) == 1  # one thread, one connection, kept alive for all 50 calls
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: rpc.call("eth_echo", [i]), range(200)))
    assert answers == [[i] for i in range(200)]
    assert len(state.bodies) == 250
    # kept alive: at most one connection per thread at once, each reused (without keep-alive, one per call: 250)
    assert len(state.peers) <= 8, len(state.peers)
    rpc.close()
    with pytest.raises(ValueError, match="timeout_s"):
        Rpc(url, timeout_s=0)
