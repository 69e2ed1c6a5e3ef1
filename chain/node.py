"""The local anvil node (npm ``@foundry-rs/anvil``) used by ``dirchain up`` and the tests.

anvil is dev tooling: production runs against a permissioned network (Hyperledger Besu, QBFT) given
by ``DIRCHAIN_RPC_URL``; nothing outside this module and the tests relies on anvil-only RPC methods.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from chain.artifacts import PROJECT_ROOT
from chain.errors import NodeError

#: anvil's first deterministic dev account (mnemonic "test test ... junk"), funded with 10,000 ETH.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


#: Recent blocks' states an embedded anvil keeps (``--prune-history``; see :class:`AnvilNode`).
HISTORY_STATES = 10
#: Seconds between the periodic dumps of an embedded anvil's state to its ``--state`` file (see :class:`AnvilNode`).
STATE_INTERVAL_S = 60


def anvil_binary() -> Path:
    """Path of the anvil executable: ``$DIRCHAIN_ANVIL``, the npm platform package, or ``anvil`` on PATH.

    Raises :class:`NodeError` when none is found (run ``npm ci``).
    """
    override = os.environ.get("DIRCHAIN_ANVIL")
    if override:
        return Path(override)
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    system = platform.system().lower()
    candidate = PROJECT_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if candidate.exists():
        return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise NodeError(f"expected anvil at {candidate} (npm package @foundry-rs/anvil), found none: run `npm ci`")


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _await_answer(process: subprocess.Popen[bytes], url: str, started: float, timeout_s: float) -> None:
    """Wait until the anvil ``process`` answers ``eth_chainId`` at ``url``, at most until ``timeout_s`` seconds after
    ``started`` (``time.monotonic``).

    Raises :class:`NodeError` if it exits first (with its stderr) or does not answer in time."""
    while time.monotonic() < started + timeout_s:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise NodeError(f"anvil exited with {process.returncode}: {err.strip()}")
        try:
            r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise NodeError(f"anvil did not answer on {url} within {timeout_s} s")


class AnvilNode:
    """A child anvil process on 127.0.0.1 (two without state roots: see ``state_roots``).

    ``state_path``: file anvil loads at start and dumps on exit (SIGINT, :meth:`stop`) and every
    ``state_interval_s`` seconds (blocks, transactions and logs survive a restart; a crash of anvil itself loses the
    blocks mined since the last dump). Each dump writes the whole chain — state, blocks, transactions, receipts —
    however little changed: ``anvil_dumpState`` took 310 ms of anvil's CPU on a medium-scale chain of 5,797 events
    (a 45 MB state file), and it grows with the chain, so a dump every second (the former default) kept anvil
    busy dumping at Beijing scale; the default is :data:`STATE_INTERVAL_S`. ``block_time_s``: seconds per block (None =
    automine, one block per transaction). ``gas_limit``: block gas limit (gas). ``history_states``: how many
    recent blocks' states anvil keeps (``--prune-history``), in memory only: enough to roll back a reorganisation
    deeper than any confirmation depth used here, and no more. Without a bound anvil keeps every block's state and
    writes the overflow to ``~/.foundry/anvil/tmp``, never removed when it is killed: a Beijing-scale run left
    32 GB there. At Beijing scale each kept state costs ~15 MiB of RSS: 256 states peaked at 4.9 GiB and 64 at
    1.9 GiB; :data:`HISTORY_STATES` are kept (the deepest reorganisation the tests make is 7 blocks); at the medium
    scale 32 states peaked at 146 MiB against 526 MiB keeping anvil's default in memory (``--max-persisted-states
    0``).
    Blocks, transactions, receipts and logs are all kept either way.

    ``state_roots``: whether blocks carry a state root. anvil 1.7 computes it by rebuilding the whole state trie —
    every account and every storage slot, however few a block changed — on every block: an empty block cost 75–80 ms
    of anvil's CPU at the state a Beijing-scale load leaves (4,178 blocks), and that fixed cost per block was most
    of anvil's CPU in the load (a node that keeps its trie, as Besu or geth do, pays for the slots a block changes).
    Without state roots (the default) the node mines on top of a **genesis node** — a second, idle anvil that is
    never sent a transaction — as a fork of its block 0 (``--fork-url``): anvil computes no state root for a forked
    database, so each block's ``stateRoot`` is zero and the same empty block costs 2.5–4.5 ms. Everything else
    is the same chain (transactions executed alike, receipts, logs, ``transactionsRoot`` and ``receiptsRoot``,
    hash-linked headers, ``evm_snapshot``/``evm_revert``, ``--state`` persistence). Nothing in this project reads a
    state root — an auditor's evidence proves a log against the header's receipts root (:mod:`chain.proofs`) — so
    what it gives up is checking an ``eth_getProof`` account proof against the header (the call still answers, with
    each account's storage root, which the tests compare). Block 0 is the genesis node's, a new one on each
    start: after a restart block 1's ``parentHash`` no longer names it (the index never reads block 0). One anvil
    test method also differs: ``anvil_reorg`` drops the replaced blocks but keeps their transactions' effects on the
    state, so the tests that reorganise a chain run with state roots (a real network rolls its state back with its
    blocks). ``DIRCHAIN_ANVIL_STATE_ROOTS=1`` (``state_roots=True``) runs anvil alone, with state roots.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        state_path: Path | None = None,
        state_interval_s: int = STATE_INTERVAL_S,
        block_time_s: float | None = None,
        chain_id: int = 31337,
        gas_limit: int = 300_000_000,
        history_states: int = HISTORY_STATES,
        state_roots: bool = False,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.state_path = state_path
        self.state_interval_s = state_interval_s
        self.block_time_s = block_time_s
        self.chain_id = chain_id
        self.gas_limit = gas_limit
        self.history_states = history_states
        self.state_roots = state_roots
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        #: the idle anvil whose block 0 this node forks when it runs without state roots (None until started)
        self.genesis: subprocess.Popen[bytes] | None = None
        self.genesis_port: int | None = None

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC endpoint of the node."""
        return f"http://127.0.0.1:{self.port}"

    def genesis_command(self, port: int) -> list[str]:
        """The command line of the genesis node on ``port`` (see the class docstring): an anvil with this node's
        chain id and block gas limit that mines nothing (``--no-mining``), so it stays at block 0."""
        return [
            str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(self.chain_id),
            "--gas-limit", str(self.gas_limit), "--no-mining", "--silent",
        ]

    def command(self) -> list[str]:
        """The anvil command line this node runs (after :meth:`start` has chosen the genesis node's port, when it
        runs without state roots)."""
        cmd = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--gas-limit", str(self.gas_limit),
            "--prune-history", str(self.history_states),
            "--silent",
        ]
        if not self.state_roots:
            if self.genesis_port is None:
                raise NodeError("expected the genesis node's port (start() chooses it), got none")
            # --no-storage-caching: anvil would otherwise cache what it reads from the fork under ~/.foundry/cache
            cmd += ["--fork-url", f"http://127.0.0.1:{self.genesis_port}", "--fork-block-number", "0",
                    "--no-storage-caching"]
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--state", str(self.state_path), "--state-interval", str(self.state_interval_s)]
        if self.block_time_s is not None:
            cmd += ["--block-time", str(self.block_time_s)]
        return cmd + self.extra_args

    def start(self, timeout_s: float = 20.0) -> str:
        """Start anvil (after its genesis node, without state roots) and wait until it answers ``eth_chainId``;
        returns the RPC URL.

        Raises :class:`NodeError` if either exits or does not answer within ``timeout_s`` seconds.
        """
        started = time.monotonic()
        try:
            if not self.state_roots:
                self.genesis_port = free_port()
                self.genesis = subprocess.Popen(self.genesis_command(self.genesis_port), stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE)
                _await_answer(self.genesis, f"http://127.0.0.1:{self.genesis_port}", started, timeout_s)
            self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _await_answer(self.process, self.rpc_url, started, timeout_s)
            if not self.state_roots:
                self._align_clock()
        except NodeError:
            self.stop()
            raise
        return self.rpc_url

    def _align_clock(self) -> None:
        """Set a forked node's clock to the wall clock (``evm_setTime``, whole seconds) just after a second begins.

        A fork starts its clock at its block 0's timestamp, a whole second taken when the genesis node started: when
        this node starts in a later second its blocks run a second behind the wall clock (measured: 1.13–1.16 s with
        the genesis node started late in a second), and a sharing request signed to start "now" would land in a
        block stamped before its start. Waits up to a second. Raises :class:`NodeError` if the node refuses."""
        time.sleep(1.0 - time.time() % 1.0 + 0.005)
        try:
            reply = httpx.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_setTime",
                                                   "params": [int(time.time())]}, timeout=5).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise NodeError(f"anvil at {self.rpc_url} did not set its clock: {exc}") from exc
        if "error" in reply:
            raise NodeError(f"anvil at {self.rpc_url} refused evm_setTime: {reply['error']}")

    def stop(self, timeout_s: float = 120.0) -> None:
        """Stop anvil with SIGINT (it dumps its state first), then SIGKILL after ``timeout_s`` seconds (a dump of
        a large chain takes seconds; a kill during it loses what was mined since the last periodic dump), and then
        the genesis node, which has nothing to save."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.genesis is not None and self.genesis.poll() is None:
            self.genesis.kill()
            self.genesis.wait()

    def __enter__(self) -> AnvilNode:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
