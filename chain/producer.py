"""Group-commit block production for an embedded anvil started with ``--no-mining``.

anvil's automine mines one block per transaction, however many arrive together: 50 raw transactions sent in one
JSON-RPC batch give 50 blocks, and 20 senders sending 20 transactions each (waiting for each receipt) give 398.
Every block costs anvil a fixed amount of work that grows with the chain's state (it rebuilds its tries and
copies the state it keeps for history), ~43 ms of CPU per block at Beijing scale (BENCHMARKS.md), so under load
the transactions of hundreds of directories queue behind each other's blocks.

:class:`BlockProducer` mines on demand instead, the way a database group-commits: it subscribes to the node's
``newPendingTransactions`` (``eth_subscribe`` over WebSocket) and, whenever transactions are pending, mines one
block (``evm_mine``) that takes all of them. An idle node mines a transaction as soon as it arrives, as automine
does; a busy one puts everything that arrived during a block into the next block. The same 20 × 20 transactions
give 57 blocks. A block is mined only when ``txpool_status`` shows a pending transaction: no empty blocks.

:class:`~chain.node.AnvilNode` runs it as a process of its own (``python -m chain.producer RPC_URL``): a thread in
the service's process waits for the GIL behind the API, the indexers and the tier sync, and every transaction's
block waited with it (Beijing scale, one run each: the load took 321.8 s against 298.4 s with automine).

anvil-only (``evm_mine``, ``txpool_status``): production networks (Besu QBFT) produce their own blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import threading

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from chain.errors import ChainError
from chain.rpc import Rpc

log = logging.getLogger(__name__)


class BlockProducer:
    """A thread mining the pending transactions of the node at ``rpc_url`` (HTTP; its WebSocket is the same
    port) into one block whenever there are any.

    ``check_s``: seconds between checks of the pool without a notification (a safety net: notifications are not
    lost while the subscription holds). ``blocks`` counts the blocks it mined.
    """

    def __init__(self, rpc_url: str, *, check_s: float = 1.0) -> None:
        self.rpc = Rpc(rpc_url)
        self.ws_url = "ws://" + rpc_url.split("://", 1)[1]
        self.check_s = check_s
        self.blocks = 0
        self._stop = threading.Event()
        self._ws: ClientConnection | None = None
        self._thread = threading.Thread(target=self._run, name="block-producer", daemon=True)

    def start(self) -> None:
        """Start the thread (it subscribes, then mines whatever is already pending)."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the block being mined, waiting up to ``timeout_s`` seconds."""
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.close()  # wakes the thread out of its wait for a notification
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def mine_pending(self) -> int:
        """Mine blocks until no transaction is pending (one block takes every pending transaction up to the block
        gas limit); returns how many blocks. Raises :class:`~chain.errors.ChainError` if the node does not answer."""
        mined = 0
        while int(self.rpc.call("txpool_status", [])["pending"], 16) > 0:
            self.rpc.call("evm_mine", [])
            mined += 1
        self.blocks += mined
        return mined

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # no keep-alive pings: on loopback a lost connection shows as an error, and a node busy dumping its
                # state (seconds at Beijing scale) must not be taken for a dead one
                with connect(self.ws_url, open_timeout=5, close_timeout=1, max_size=None, ping_interval=None) as ws:
                    self._ws = ws
                    ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                        "params": ["newPendingTransactions"]}))
                    ws.recv(timeout=5)  # the subscription id
                    self._produce(ws)
            except (OSError, TimeoutError, WebSocketException, ChainError) as exc:
                if not self._stop.is_set():
                    log.warning("block producer for %s: %s; reconnecting", self.ws_url, exc)
                    self._stop.wait(0.5)

    def _produce(self, ws: ClientConnection) -> None:
        self.mine_pending()  # sent before the subscription
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                ws.recv(timeout=self.check_s)
            # Notifications of transactions that arrived together (or during the last block) are one block's worth.
            with contextlib.suppress(TimeoutError):
                while True:
                    ws.recv(timeout=0)
            self.mine_pending()


def main(argv: list[str] | None = None) -> int:
    """``python -m chain.producer RPC_URL``: mine ``RPC_URL``'s pending transactions on demand until SIGTERM or
    SIGINT, or until the process that started this one is gone (checked every second)."""
    parser = argparse.ArgumentParser(description="Mine an anvil node's pending transactions on demand.")
    parser.add_argument("rpc_url", help="the node's HTTP JSON-RPC URL (its WebSocket is the same port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parent = os.getppid()
    producer = BlockProducer(args.rpc_url)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    producer.start()
    while not done.wait(1.0) and os.getppid() == parent:
        pass
    producer.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
