"""A relay process the kill test SIGKILLs: ``python -m tests.integration.relay_worker CONFIG.json``.

Runs one pass of each (child, parent) relay job listed in the config, in order (street → district, then
district → city), with the relayer's transactions journalled in a file (so a restarted process reconciles what
a killed one signed). Prints ``ready`` once imported and set up, ``pass <n> start`` / ``pass <n> done <summary>``
around each pass (flushed), so the test can tell where a kill landed.

Config: ``{"database": url, "batch_size": n, "jobs": [{"child_rpc", "child_chain_id", "child_directory",
"parent_rpc", "parent_chain_id", "parent_directory", "relayer_key", "journal"}, ...]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from eth_account import Account

from chain.abi import ContractCodec
from chain.artifacts import load_artifact
from chain.directory import DirectoryClient
from chain.journal import FileJournal
from chain.logs import LogFetcher
from chain.rpc import Rpc
from chain.sender import TxSender
from registry.db import make_engine, session_factory
from registry.sync import RelayJob


def build_job(spec: dict[str, Any], sessions: Any, batch_size: int) -> RelayJob:
    """The relay job a config entry describes."""
    child_rpc, parent_rpc = Rpc(spec["child_rpc"]), Rpc(spec["parent_rpc"])
    sender = TxSender(parent_rpc, Account.from_key(spec["relayer_key"]), FileJournal(Path(spec["journal"])),
                      spec["parent_chain_id"], receipt_timeout_s=30, poll_s=0.002)
    parent = DirectoryClient(parent_rpc, spec["parent_directory"], spec["parent_chain_id"], sender)
    fetcher = LogFetcher.from_rpc(child_rpc, spec["child_directory"])
    codec = ContractCodec(load_artifact("Directory").abi)
    return RelayJob(fetcher, codec, spec["child_chain_id"], spec["child_directory"], parent, sessions,
                    batch_size=batch_size)


def main(argv: list[str]) -> int:
    """Run one pass of every job in the config file ``argv[0]``."""
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    sessions = session_factory(make_engine(config["database"]))
    jobs = [build_job(spec, sessions, int(config.get("batch_size", 50))) for spec in config["jobs"]]
    print("ready", flush=True)
    for n, job in enumerate(jobs):
        print(f"pass {n} start", flush=True)
        report = job.run_once()
        print(f"pass {n} done {report.summary()}", flush=True)
        if report.failed:
            print(f"failed: {report.failed}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
