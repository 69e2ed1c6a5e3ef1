"""``dirchain.serving``: the listener handed to uvicorn's worker processes gives accepted connections
``TCP_NODELAY`` (uvicorn's own leaves Nagle's algorithm on: uvicorn issue #3149)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from chain.node import free_port
from dirchain.serving import tcp_listener


def _accepted_nodelay(listener: socket.socket) -> int:
    """Serve one connection on ``listener`` with asyncio (as uvicorn's workers do) and return the accepted
    socket's ``TCP_NODELAY`` option (0 = Nagle's algorithm on)."""
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Probe, sock=listener)
        host, port = listener.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen, "no connection was accepted"
    return seen[0]


def _config() -> uvicorn.Config:
    return uvicorn.Config("api.app:read_only_app", factory=True, host="127.0.0.1", port=free_port(), workers=2)


def test_uvicorns_own_listener_leaves_nagle_on() -> None:
    """The defect worked around: if uvicorn fixes it, this fails and the work-around can go."""
    listener = _config().bind_socket()
    assert listener.proto == 0
    assert _accepted_nodelay(listener) == 0


def test_tcp_listener_turns_nagle_off_for_accepted_connections() -> None:
    config = _config()
    listener = tcp_listener(config)
    assert listener.proto == socket.IPPROTO_TCP
    assert listener.get_inheritable() is True
    assert listener.getsockname() == ("127.0.0.1", config.port)
    assert _accepted_nodelay(listener) != 0
