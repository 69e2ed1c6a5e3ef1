"""The expiry job: marks grants whose period is over as ``Expired`` on chain (``expireSharing``).

A grant stops giving access at its ``end`` whatever the chain says (the access rule reads the period),
but the contract only records the end once someone calls ``expireSharing`` — no signature needed, the
clock decides. Every ``interval_s`` seconds the job reads the indexed grants still ``granted`` whose
``end`` ≤ now and hands their ids to the batcher of the directory that recorded the request (batch name
``Expiry``). Copies of the grant relayed to parent directories are not expired there (``expireSharing`` is
not relayable): their access still ends with the period, which every access query reads.

"now" is the later of the latest block's timestamp and the wall clock (unix seconds): the chain's time
is what the contract checks, but an idle development chain that mines only on demand (anvil automine)
has a stale latest block, and the transaction that expires the grant is mined in a new block stamped
with the current time. Either way the contract is the judge: an attempt it would refuse
(``SharingPeriodNotOver``, or ``SharingStatusInvalid`` when the grant was revoked or expired meanwhile)
is refused at simulation, writes nothing, and is retried after ``retry_s`` seconds if the index still
lists the grant.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from sqlalchemy.orm import Session, sessionmaker

from chain.batcher import Batcher
from chain.rpc import Rpc
from registry.sharing import grants_to_expire

log = logging.getLogger(__name__)

#: Batch name of expiries (``chain.directory.UNSIGNED_METHOD_OF``).
EXPIRY = "Expiry"


def latest_block_timestamp(rpc: Rpc) -> int:
    """Timestamp (unix seconds) of the chain's latest block."""
    block = rpc.call("eth_getBlockByNumber", ["latest", False])
    return int(block["timestamp"], 16)


#: The batcher of a directory (chain id, checksummed address), None for a directory this service does not run.
BatcherFor = Callable[[int, str], Batcher | None]


class ExpiryJob:
    """Expires ended grants of the index behind ``sessions`` through the batcher ``batcher_for`` gives for the
    directory that recorded each request.

    ``chain_time``: returns the chain's time (unix seconds), e.g. :func:`latest_block_timestamp`;
    ``clock``: the wall clock (unix seconds, float). ``interval_s``: seconds between rounds;
    ``retry_s``: seconds before a grant whose expiry was refused, failed or sent but not yet indexed
    is tried again; ``batch``: most grants handed over per round.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        batcher_for: BatcherFor,
        chain_time: Callable[[], int],
        *,
        interval_s: float = 2.0,
        retry_s: float = 10.0,
        batch: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0 or retry_s < 0 or batch < 1:
            raise ValueError(f"expected interval_s > 0, retry_s >= 0, batch >= 1, got {interval_s}, {retry_s}, {batch}")
        self.sessions = sessions
        self.batcher_for = batcher_for
        self.chain_time = chain_time
        self.interval_s = interval_s
        self.retry_s = retry_s
        self.batch = batch
        self.clock = clock
        self.expired_sent = 0
        self.last_error: BaseException | None = None
        self._attempts: dict[str, tuple[Future[str], float]] = {}

    def now(self) -> int:
        """The time grants are judged against: max(chain time, wall clock), unix seconds."""
        return max(self.chain_time(), int(self.clock()))

    def _due(self, request_id: str) -> bool:
        attempt = self._attempts.get(request_id)
        if attempt is None:
            return True
        future, sent_at = attempt
        if not future.done():
            return False
        return time.monotonic() - sent_at >= self.retry_s

    def run_once(self) -> list[str]:
        """One round: hand every indexed grant due to expire to the batcher; returns the ids handed over
        (0x-hex). Raises what the RPC or the database raise."""
        now = self.now()
        with self.sessions() as session:
            candidates = grants_to_expire(session, now, self.batch)
        live = {c.id for c in candidates}
        for stale in [rid for rid in self._attempts if rid not in live]:
            del self._attempts[stale]
        sent = []
        for rid, chain_id, directory in candidates:
            batcher = self.batcher_for(chain_id, directory)
            if batcher is None or not self._due(rid):
                continue
            future = batcher.submit(EXPIRY, bytes.fromhex(rid[2:]))
            future.add_done_callback(functools.partial(self._settled, rid))
            self._attempts[rid] = (future, time.monotonic())
            sent.append(rid)
        self.expired_sent += len(sent)
        return sent

    @staticmethod
    def _settled(request_id: str, future: Future[str]) -> None:
        exc = future.exception()
        if exc is not None:
            log.info("expiry of %s refused or failed (will retry if still due): %s", request_id, exc)
        else:
            log.info("expiry of %s sent in %s", request_id, future.result())

    def run(self, stop: threading.Event) -> None:
        """Run rounds every ``interval_s`` seconds until ``stop`` is set (a thread's target). Errors are
        logged, kept in :attr:`last_error` and the round is tried again at the next interval."""
        while not stop.is_set():
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:
                self.last_error = exc
                log.warning("expiry round failed, retrying in %.1f s: %s", self.interval_s, exc)
            stop.wait(self.interval_s)
