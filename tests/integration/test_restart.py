"""Interrupting everything and starting again loses nothing: the README's `dirchain up --demo` twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chain.node import free_port
from registry.db import make_engine, session_factory
from registry.queries import dump_index
from tests.integration.service import make_settings, running_service

DIRCHAIN = [sys.executable, "-m", "dirchain"]


def _wait_for_load(api: str, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dirchain up exited with {proc.returncode}"
        try:
            health = httpx.get(f"{api}/health", timeout=2).json()
            loaded = health["counts"]["catalogs"] == 22 and health["counts"]["sharing_requests"] == 6
            expired = httpx.get(f"{api}/grants", params={"status": "expired"}, timeout=2).json()["total"] == 1
            if loaded and expired and health["lag_blocks"] == 0 and health["pending_submissions"] == 0:
                return _settled(api, dict(health), deadline)
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError("the seed directory and its sharing requests were not loaded in time")


def _settled(api: str, health: dict[str, object], deadline: float, quiet_s: float = 3.0) -> dict[str, object]:
    """``health`` once the chain head and the index have not moved for ``quiet_s`` seconds (the demo load's
    last steps — the expiry job's transaction, the loader's final checks — are over)."""
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = httpx.get(f"{api}/health", timeout=2).json()
        if (now["head"], now["cursor"], now["counts"]) != (health["head"], health["cursor"], health["counts"]):
            health, stable_since = dict(now), time.monotonic()
        elif time.monotonic() - stable_since >= quiet_s:
            return health
    raise AssertionError("the chain head did not settle")


def _up(home: Path, port: int, anvil_port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "DIRCHAIN_HOME": str(home), "DIRCHAIN_PORT": str(port), "DIRCHAIN_ANVIL_PORT": str(anvil_port)}
    env.pop("DIRCHAIN_RPC_URL", None)
    env.pop("DIRCHAIN_DATABASE_URL", None)
    return subprocess.Popen(
        [*DIRCHAIN, "up", "--demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _interrupt(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def test_up_demo_twice_keeps_every_record_once(tmp_path: Path) -> None:
    port, anvil_port = free_port(), free_port()
    api = f"http://127.0.0.1:{port}"
    proc = _up(tmp_path, port, anvil_port)
    try:
        first = _wait_for_load(api, proc)
        catalogs = httpx.get(f"{api}/catalogs", params={"limit": 500}).json()["items"]
        systems = httpx.get(f"{api}/systems", params={"limit": 500}).json()["items"]
        status = subprocess.run([*DIRCHAIN, "status", "--api", api], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "COLUMNS": "200"})
    finally:
        out = _interrupt(proc)
    assert "load summary" in out
    assert status.returncode == 0, status.stderr
    lines = {" ".join(line.replace("│", " ").split()) for line in status.stdout.splitlines()}
    city = f"city chain 31337 head {first['head']}, indexed to {first['cursor']} (lag 0 blocks, 0 confirmations)"
    assert city in lines, lines
    # the lag per child: 东城区, 西城区, 大兴区 (→ city) and 西城区's four streets (→ 西城区), all caught up
    children = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("110")}
    assert len(children) == 7 and all(c[2:4] == ["0", "0"] for c in children.values()), children
    assert children["110102/月坛街道"][:2] == ["street", "31337"]
    assert "count: catalogs 22" in lines and "count: systems 69" in lines and "count: departments 28" in lines
    assert len(catalogs) == 22 and len(systems) == 69

    proc = _up(tmp_path, port, anvil_port)
    try:
        second = _wait_for_load(api, proc)
        catalogs_again = httpx.get(f"{api}/catalogs", params={"limit": 500}).json()["items"]
        systems_again = httpx.get(f"{api}/systems", params={"limit": 500}).json()["items"]
    finally:
        out = _interrupt(proc)
    # the same records, same transactions, no duplicates; the second demo load changed nothing on chain
    assert catalogs_again == catalogs and systems_again == systems
    assert second["counts"] == first["counts"]
    assert second["head"] == first["head"], "the second load must not send a transaction"
    assert "already deployed" in out


def test_restart_resumes_from_the_cursor_and_reindex_reproduces_rows(tmp_path: Path) -> None:
    """Stop the service (embedded anvil saves its state), start again: the indexer resumes from its
    cursor, nothing is lost or duplicated; then a fresh database re-indexed from block 0 is identical —
    sharing requests and every transition (approval, rejection, refusal, revocation, expiry) included."""
    from dirchain.cli import SEED_FILE, SEED_SHARING_FILE
    from registry.keystore import Keystore
    from registry.loader import DirectoryLoader, read_sharing
    from registry.seed import read_directory

    settings = make_settings(tmp_path, None)
    with running_service(settings) as (_, client):
        assert (
            DirectoryLoader("http://testserver", Keystore(tmp_path / "keys"), http=client)
            .load(read_directory(SEED_FILE), read_sharing(SEED_SHARING_FILE))
            .ok
        )
        cursor_before = client.get("/health").json()["cursor"]
    with make_engine(settings.database_url).connect() as conn:
        before = dump_index(session_factory(conn.engine)())
    assert len(before["sharing_requests"]) == 6 and len(before["sharing_transitions"]) == 8
    with running_service(settings) as (service, client):
        health = client.get("/health").json()
        assert health["cursor"] >= cursor_before
        assert health["counts"]["catalogs"] == 22 and health["counts"]["systems"] == 69
        assert health["counts"]["sharing_requests"] == 6
        with service.sessions() as session:
            assert dump_index(session) == before
    fresh = make_settings(tmp_path, None)
    object.__setattr__(fresh, "database_url", f"sqlite:///{tmp_path / 'reindexed.sqlite'}")
    with running_service(fresh) as (service, client):
        deadline = time.monotonic() + 60
        while client.get("/health").json()["cursor"] is None or client.get("/health").json()["lag_blocks"] > 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with service.sessions() as session:
            assert dump_index(session) == before


@pytest.fixture(autouse=True)
def _no_external_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIRCHAIN_RPC_URL", raising=False)
