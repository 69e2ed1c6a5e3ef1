"""Serving the read-only API from several uvicorn worker processes, with Nagle's algorithm off.

uvicorn's multi-process supervisor binds the listening socket itself (``Config.bind_socket``) and leaves its
protocol number at 0. Accepted connections inherit it, and asyncio only sets ``TCP_NODELAY`` on a connection whose
socket reports ``IPPROTO_TCP`` — so with ``--workers`` > 1 every keep-alive answer after the first waits for the
client's delayed ACK: ~40 ms on Linux (uvicorn issue #3149, open for 0.54). Measured here on the audit query: p50
44 ms with 2 workers against 2 ms with 1. :func:`tcp_listener` re-wraps the bound socket with its protocol set,
which is all the fix needs.
"""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess


def tcp_listener(config: uvicorn.Config) -> socket.socket:
    """The socket ``config`` binds (``config.bind_socket()``: host, port, ``SO_REUSEADDR``, inheritable), with its
    protocol number set to ``IPPROTO_TCP`` when it is a TCP socket, so that asyncio turns ``TCP_NODELAY`` on for
    every connection accepted on it. Unix-domain sockets are returned as bound. Exits the process (uvicorn's
    startup failure) if the address cannot be bound."""
    bound = config.bind_socket()
    if bound.family not in (socket.AF_INET, socket.AF_INET6) or bound.proto == socket.IPPROTO_TCP:
        return bound
    sock = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    sock.set_inheritable(True)
    return sock


def serve(config: uvicorn.Config) -> None:
    """Run ``config`` until interrupted: in this process with one worker (``uvicorn.Server``), else uvicorn's
    multi-process supervisor with ``config.workers`` processes sharing :func:`tcp_listener`. ``config.app`` must
    be an import string when ``config.workers`` > 1 (each worker imports it)."""
    if config.workers <= 1:
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[tcp_listener(config)]).run()
