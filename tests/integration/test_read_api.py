"""The read-only replica (``dirchain api --read-only --workers 2``) against the seed's tiered index: its reads equal
the service's API's, and what needs a chain answers 503 problem+json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.artifacts import PROJECT_ROOT
from chain.node import free_port
from tests.integration.conftest import TieredSeed

pytestmark = pytest.mark.integration


@contextmanager
def _serve(database_url: str, home: Path, workers: int) -> Iterator[httpx.Client]:
    """``dirchain api --read-only --workers N --database-url URL`` with ``DIRCHAIN_HOME`` at ``home``; a client."""
    port = free_port()
    env = {**os.environ, "DIRCHAIN_HOME": str(home), "DIRCHAIN_HOST": "127.0.0.1"}
    env.pop("DIRCHAIN_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dirchain", "api", "--read-only", "--workers", str(workers), "--port", str(port),
         "--database-url", database_url],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(0.2)
        yield http
    finally:
        http.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def replica(tiered_seed: TieredSeed) -> Iterator[httpx.Client]:
    """A read-only replica with two worker processes over the tiered seed's index."""
    with _serve(tiered_seed.settings.database_url, tiered_seed.settings.home, workers=2) as http:
        yield http


def test_one_worker_serves_the_index_given_not_the_homes(tiered_seed: TieredSeed, tmp_path: Path) -> None:
    """With one worker uvicorn serves in the CLI's own process: ``--database-url`` must still be the index served,
    not the default one under ``DIRCHAIN_HOME`` (here an empty directory, where none exists)."""
    expected = tiered_seed.client.get("/catalogs", params={"limit": 1}).json()["total"]
    assert expected > 0
    with _serve(tiered_seed.settings.database_url, tmp_path, workers=1) as http:
        reply = http.get("/catalogs", params={"limit": 1})
        assert reply.status_code == 200, reply.text
        assert reply.json()["total"] == expected
        assert http.get("/health").json()["counts"]["catalogs"] == expected


def _same(main: Any, replica: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET ``path`` from both; equal bodies and statuses (retried briefly: the service may index an expiry between
    the two reads)."""
    for _ in range(10):
        a, b = main.get(path, params=params), replica.get(path, params=params)
        if (a.status_code, a.json()) == (b.status_code, b.json()):
            return b.json()
        time.sleep(0.5)
    assert (b.status_code, b.json()) == (a.status_code, a.json()), path
    return None


def test_reads_equal_the_service_api(tiered_seed: TieredSeed, replica: httpx.Client) -> None:
    main = tiered_seed.client
    catalogs = _same(main, replica, "/catalogs", {"limit": 500})["items"]
    systems = _same(main, replica, "/systems", {"limit": 500})["items"]
    assert catalogs and systems
    _same(main, replica, "/catalogs", {"tier": "city", "limit": 500})
    _same(main, replica, "/systems", {"tier": "street", "limit": 500})
    for row in catalogs[:5] + catalogs[-5:]:
        code = row["code"]
        _same(main, replica, f"/catalogs/{code}")
        provenance = _same(main, replica, f"/catalogs/{code}/provenance")
        assert provenance["versions"] and provenance["versions"][0]["custody"]
        _same(main, replica, f"/audit/catalogs/{code}/history")
        _same(main, replica, f"/audit/catalogs/{code}/custody")
        _same(main, replica, f"/audit/catalogs/{code}/access", {"at": "1700000000"})
    for row in systems[:3]:
        _same(main, replica, f"/systems/{row['code']}")
        _same(main, replica, f"/systems/{row['code']}/provenance")
        _same(main, replica, f"/audit/systems/{row['code']}/history")
    for path in ("/jurisdictions", "/departments", "/sharing-requests", "/grants", "/kpis"):
        _same(main, replica, path)
    _same(main, replica, "/audit/changes", {"jurisdiction": "110102", "from": "0", "to": str(2**40)})
    _same(main, replica, "/catalogs/NOPE/provenance")  # the same 404 problem
    health = replica.get("/health").json()
    assert health["read_only"] is True and health["chains"] == [] and health["counts"]["catalogs"] == len(catalogs)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/catalogs", {"action": "register"}),
    ("POST", "/systems/S1/retirement", {}),
    ("POST", "/sharing-requests", {}),
    ("POST", "/audit/verify", {"code": "x"}),
    ("GET", "/eip712", None),
    ("GET", "/audit/drift", None),
    ("GET", "/submissions/0x" + "00" * 32, None),
    ("GET", "/submissions/queued/0x" + "00" * 32, None),
])
def test_what_needs_a_chain_is_a_read_only_problem(replica: httpx.Client, method: str, path: str,
                                                   body: dict[str, Any] | None) -> None:
    reply = replica.request(method, path, json=body)
    assert reply.status_code == 503
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["type"] == "/problems/read-only-replica" and problem["status"] == 503
    assert path in problem["detail"]


def test_bench_audit_times_the_audit_query_on_an_index(tiered_seed: TieredSeed) -> None:
    """``scripts/bench_audit.py INDEX --latency N``: N audit queries in process and N over HTTP (2 read-only worker
    processes, 2 client processes), every one answered 200 (a client raises otherwise)."""
    index = tiered_seed.settings.database_url.removeprefix("sqlite:///")
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "bench_audit.py"), index, "--latency", "40",
         "--workers", "2", "--clients", "2"],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = json.loads(proc.stdout)
    assert figures["requests"] == 40 and figures["events"] > 0
    assert figures["http_server"] == "dirchain api --read-only --workers 2" and figures["http_clients"] == 2
    assert 0 < figures["in_process_p50_ms"] <= figures["in_process_p99_ms"]
    assert 0 < figures["http_p50_ms"] <= figures["http_p99_ms"] and figures["http_rps"] > 0
