"""What an anvil block costs as the chain's state grows: ``python scripts/bench_anvil_blocks.py``.

Automine makes one block per transaction, and anvil recomputes the state root of the whole state for each block
unless it runs without state roots (:class:`chain.node.AnvilNode`, ``state_roots``). This script measures that cost
alone: a fresh embedded anvil, one account given N storage slots (``anvil_setStorageAt``, no transactions), then the
wall time of ``anvil_mine`` per **empty** block, for several state sizes, several ``--prune-history`` settings
(states kept) and with state roots on and off, with anvil's resident memory. It prints one line per setting and,
with ``--json``, writes the figures. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chain.node import AnvilNode  # noqa: E402
from chain.rpc import Rpc  # noqa: E402

#: The account whose storage is filled (any address: anvil lets its storage be set directly).
HOLDER = "0x" + "11" * 20
#: Slots set per JSON-RPC batch.
BATCH = 2000


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def block_cost(slots: int, history: int, state_roots: bool, blocks: int = 10, rounds: int = 3) -> dict[str, Any]:
    """Milliseconds per empty block (median of ``rounds`` ``anvil_mine`` calls of ``blocks`` blocks each) on a fresh
    anvil keeping ``history`` states, with or without ``state_roots``, whose state holds ``slots`` storage slots;
    and anvil's RSS in MiB after."""
    node = AnvilNode(history_states=history, state_roots=state_roots)
    rpc = Rpc(node.start())
    try:
        rpc.call("anvil_setCode", [HOLDER, "0x00"])
        for start in range(0, slots, BATCH):
            rpc.batch([("anvil_setStorageAt", [HOLDER, hex(i), "0x%064x" % (i + 1)])
                       for i in range(start, min(slots, start + BATCH))])
        per_block = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            rpc.call("anvil_mine", [hex(blocks)])
            per_block.append((time.perf_counter() - t0) * 1000 / blocks)
        assert node.process is not None
        return {"slots": slots, "history_states": history, "state_roots": state_roots,
                "ms_per_empty_block": round(statistics.median(per_block), 1),
                "anvil_rss_mib": round(_rss_mib(node.process.pid), 1)}
    finally:
        rpc.close()
        node.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[50_000, 200_000], help="state sizes (storage slots)")
    parser.add_argument("--history", type=int, nargs="+", default=[1, 16, 64], help="--prune-history settings")
    parser.add_argument("--state-roots", choices=["on", "off"], nargs="+", default=["on", "off"],
                        help="with state roots (anvil alone), without (on a genesis node), or both")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    figures = []
    for slots in args.slots:
        for history in args.history:
            for roots in args.state_roots:
                row = block_cost(slots, history, roots == "on")
                figures.append(row)
                print(json.dumps(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
