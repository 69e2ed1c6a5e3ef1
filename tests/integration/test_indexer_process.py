"""Each chain's indexer in a process of its own (:mod:`registry.indexer_process`), against a real anvil: the service's
index is written by that process, a reorganisation stops it and the service's health says so with the error it
stopped with, and a process whose parent is gone stops by itself."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chain.artifacts import PROJECT_ROOT
from chain.node import AnvilNode
from chain.rpc import Rpc
from dirchain.cli import SEED_FILE
from registry.db import migrate
from registry.keystore import Keystore
from registry.loader import DirectoryLoader
from registry.seed import Directory, read_directory
from tests.integration.conftest import CHAIN_ID
from tests.integration.service import make_settings, running_service

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (no such process, or a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_index_is_written_by_a_process_that_reports_the_reorganisation_it_stopped_at(tmp_path: Path) -> None:
    node = AnvilNode(chain_id=CHAIN_ID)
    node.start()
    rpc = Rpc(node.rpc_url)
    try:
        with running_service(make_settings(tmp_path, node.rpc_url)) as (service, client):
            indexer = service.indexer
            assert indexer.pid is not None and indexer.pid != os.getpid() and indexer.is_alive()
            snapshot = rpc.call("evm_snapshot", [])
            seed = read_directory(SEED_FILE)
            only_jurisdictions = Directory(jurisdictions=seed.jurisdictions, departments=[], systems=[], catalogs=[])
            summary = DirectoryLoader("http://testserver", Keystore(tmp_path / "keys"), http=client).load(
                only_jurisdictions)
            assert summary.ok and summary.phases["jurisdictions"].added == 8
            health = client.get("/health").json()
            assert health["status"] == "ok" and health["indexer_error"] is None
            assert health["counts"]["jurisdictions"] == 8 and indexer.ranges_indexed >= 1

            rpc.call("evm_revert", [snapshot])  # the blocks the index holds are gone: the process stops, loudly
            deadline = time.monotonic() + 30
            while indexer.is_alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not indexer.is_alive()
            assert indexer.last_error is not None and indexer.last_error.startswith("ReorgDetected: ")
            health = client.get("/health").json()
            assert health["status"] != "ok"
            assert health["indexer_error"] == f"indexer of the city chain stopped: {indexer.last_error}"
    finally:
        rpc.close()
        node.stop()


def test_an_indexer_process_whose_parent_is_gone_stops(tmp_path: Path, anvil: AnvilNode) -> None:
    """A parent killed outright (no clean-up) leaves its indexer process to notice it was orphaned and stop."""
    with running_service(make_settings(tmp_path, anvil.rpc_url)) as (service, _client):
        config = dataclasses.asdict(service.indexer.config) | {"creators": list(service.indexer.config.creators)}
    config["database_url"] = f"sqlite:///{tmp_path / 'orphan.sqlite'}"  # from the start: it has ranges to commit
    migrate(config["database_url"])
    script = ("import json, os, sys, time\n"
              "from registry.indexer_process import IndexerConfig, IndexerProcess\n"
              "config = json.loads(sys.argv[1])\n"
              "process = IndexerProcess('orphan', IndexerConfig(**config | {'creators': tuple(config['creators'])}))\n"
              "process.start()\n"
              "deadline = time.monotonic() + 30\n"
              "while process.ranges_indexed < 1 and time.monotonic() < deadline:\n"
              "    time.sleep(0.05)\n"
              "print(process.pid, process.ranges_indexed, process.is_alive(), flush=True)\n"
              "os._exit(0)  # no clean-up: the child is orphaned while it runs\n")
    parent = subprocess.run([sys.executable, "-c", script, json.dumps(config)], capture_output=True, text=True,
                            timeout=60, cwd=PROJECT_ROOT)
    assert parent.returncode == 0, parent.stderr
    pid, ranges, alive = parent.stdout.split()
    assert int(ranges) >= 1 and alive == "True", parent.stdout  # it was indexing when its parent went
    child = int(pid)
    deadline = time.monotonic() + 20
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child), f"indexer process {child} outlived its parent"
