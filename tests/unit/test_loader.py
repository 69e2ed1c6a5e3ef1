"""The loader's handling of answers it cannot use, in process: an httpx transport plays the service's side with
the answers the real API gives (``submission-pending`` with a ``status_url``; 404 ``not-found`` from a service that
no longer holds the queue) and one a proxy in front of it may give (an HTML 502). The loader must count each as that
submission's failure, with what the answer says, and go on with the others."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_utils import keccak

from chain.node import free_port
from registry.keystore import Keystore
from registry.loader import (
    BATCH_BYTES,
    BATCH_SUBMISSIONS,
    KEEPALIVE_S,
    UNCHANGED,
    DirectoryLoader,
    Job,
    PhaseSummary,
    Refusal,
)

PROBLEM = {"content-type": "application/problem+json"}
QUEUED = "/submissions/queued/0x" + "ab" * 32
TX = "0x" + "cd" * 32


def _service(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content) if request.content else {}
    if request.method == "POST" and request.url.path == "/submissions/status":
        return httpx.Response(200, json=[{"tx_hash": tx, "status": "indexed"} for tx in body["tx_hashes"]])
    if request.method == "POST" and body.get("code") == "QUEUED-FORGOTTEN":
        return httpx.Response(503, headers=PROBLEM, json={
            "type": "/problems/submission-pending", "title": "The submission is queued but not yet in a transaction",
            "status": 503, "detail": "no transaction carried it within 0 s", "submission": "0x" + "ab" * 32,
            "status_url": QUEUED})
    if request.method == "POST" and body.get("code") == "BEHIND-PROXY":
        return httpx.Response(502, headers={"content-type": "text/html"}, text="<html>502 Bad Gateway</html>")
    if request.method == "POST":
        return httpx.Response(202, json={"tx_hash": TX})
    if request.url.path == QUEUED:  # a restarted service: the queue it answered about is gone
        return httpx.Response(404, headers=PROBLEM, json={
            "type": "/problems/not-found", "title": "No such queued submission", "status": 404,
            "detail": "no submission 0xabab… is queued here"})
    return httpx.Response(404)


def test_a_submission_whose_status_url_fails_counts_as_failed_and_the_phase_goes_on(tmp_path: Path) -> None:
    http = httpx.Client(base_url="http://service", transport=httpx.MockTransport(_service))
    loader = DirectoryLoader("http://service", Keystore(tmp_path / "keys"), http=http, index_timeout_s=5)
    jobs = [(lambda code=code: (code, "/catalogs", {"code": code}, "added"))
            for code in ("QUEUED-FORGOTTEN", "BEHIND-PROXY", "FINE")]
    summary = PhaseSummary()
    posted = loader._post_all("catalogs", jobs, summary)
    assert posted == {"FINE"} and summary.added == 1
    assert sorted(summary.failed) == [
        ("BEHIND-PROXY", 502, "<html>502 Bad Gateway</html>"),
        ("QUEUED-FORGOTTEN", 404, "no submission 0xabab… is queued here"),
    ]


def _batch_service(chunks: list[int], sizes: list[int]) -> httpx.MockTransport:
    """The batch route's side: each submission answered on its own (202 with a transaction per code; 403 for a
    ``REFUSED`` code; the forgotten ``submission-pending`` for ``QUEUED-FORGOTTEN``), 422 for a whole batch holding
    a ``MALFORMED`` one; each chunk's size (submissions, bytes) noted in ``chunks`` and ``sizes``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/submissions/status":
            body = json.loads(request.content)
            return httpx.Response(200, json=[{"tx_hash": tx, "status": "indexed"} for tx in body["tx_hashes"]])
        if request.url.path == QUEUED:
            return httpx.Response(404, headers=PROBLEM, json={"status": 404, "detail": "no such queued submission"})
        submissions = json.loads(request.content)["submissions"]
        chunks.append(len(submissions))
        sizes.append(len(request.content))
        if any(s["code"] == "MALFORMED" for s in submissions):
            return httpx.Response(422, headers=PROBLEM, json={"status": 422, "detail": "submissions.0.record: bad"})
        results = []
        for index, s in enumerate(submissions):
            if s["code"].startswith("REFUSED"):
                results.append({"index": index, "status": 403, "accepted": None,
                                "problem": {"status": 403, "detail": f"{s['code']} is not yours"}})
            elif s["code"] == "QUEUED-FORGOTTEN":
                results.append({"index": index, "status": 503, "accepted": None, "problem": {
                    "status": 503, "detail": "queued", "status_url": QUEUED}})
            else:
                tx = "0x" + keccak(text=s["code"]).hex()
                results.append({"index": index, "status": 202, "accepted": {"tx_hash": tx}, "problem": None})
        refused = sum(1 for r in results if r["accepted"] is None)
        return httpx.Response(207 if refused else 202, json={"accepted": len(results) - refused,
                                                               "refused": refused, "results": results})

    return httpx.MockTransport(handle)


def test_batched_submissions_are_chunked_by_count_and_bytes_and_each_answer_reaches_its_own(tmp_path: Path) -> None:
    chunks: list[int] = []
    sizes: list[int] = []
    http = httpx.Client(base_url="http://service", transport=_batch_service(chunks, sizes))
    loader = DirectoryLoader("http://service", Keystore(tmp_path / "keys"), http=http, index_timeout_s=5, workers=16)
    codes = [f"C{i:03d}" for i in range(230)] + ["REFUSED-1", "QUEUED-FORGOTTEN"] + [f"BIG{i}" for i in range(8)]
    jobs: list[Job] = []
    for code in codes:
        pad = "x" * (40_000 if code.startswith("BIG") else 10)  # eight 40-kB submissions: chunked by bytes
        jobs.append(lambda code=code, pad=pad: (code, "/catalogs", {"code": code, "pad": pad}, "added"))
    jobs.insert(5, lambda: UNCHANGED)
    jobs.insert(7, lambda: Refusal("LOCAL", 0, "not prepared"))
    summary = PhaseSummary()
    posted = loader._post_all("catalogs", jobs, summary, batch_path="/catalogs/batch")
    accepted = {c for c in codes if c.startswith(("C", "BIG"))}
    assert posted == accepted and summary.added == len(accepted) and summary.unchanged == 1
    assert sorted(summary.failed) == [("LOCAL", 0, "not prepared"),
                                      ("QUEUED-FORGOTTEN", 404, "no such queued submission"),
                                      ("REFUSED-1", 403, "REFUSED-1 is not yours")]
    assert sum(chunks) == len(codes) and max(chunks) <= BATCH_SUBMISSIONS and len(chunks) >= 4
    assert max(sizes) <= BATCH_BYTES + 100  # the wrapper's few bytes besides the submissions


def test_a_batch_refused_as_a_whole_fails_each_of_its_submissions(tmp_path: Path) -> None:
    http = httpx.Client(base_url="http://service", transport=_batch_service([], []))
    loader = DirectoryLoader("http://service", Keystore(tmp_path / "keys"), http=http, index_timeout_s=5)
    jobs: list[Job] = [lambda code=code: (code, "/catalogs", {"code": code}, "added") for code in ("A", "MALFORMED")]
    summary = PhaseSummary()
    assert loader._post_all("catalogs", jobs, summary, batch_path="/catalogs/batch") == set()
    assert summary.failed == [("A", 422, "submissions.0.record: bad"), ("MALFORMED", 422, "submissions.0.record: bad")]


def test_the_loader_drops_an_idle_connection_before_the_service_closes_it(tmp_path: Path) -> None:
    """A connection idle for longer than :data:`KEEPALIVE_S` (but not the service's keep-alive timeout, uvicorn's
    default) is not reused: the next request comes on a new one, never on one the service may be closing as it is
    written (a reset request). httpx's own default (5 s, the server's) would reuse it, as the second client shows."""
    peers: list[tuple[str, int]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        peers.append(scope["client"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off")
    assert config.timeout_keep_alive > KEEPALIVE_S  # the service closes idle connections after this (5 s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{config.port}"
        loader = DirectoryLoader(url, Keystore(tmp_path / "keys"))
        with httpx.Client(base_url=url) as default_client:
            for client in (loader.http, default_client):
                client.get("/health")
            time.sleep(KEEPALIVE_S + 0.5)  # idle: past the loader's expiry, within the server's 5 s
            for client in (loader.http, default_client):
                client.get("/health")
        loader_first, default_first, loader_again, default_again = peers
        assert loader_again != loader_first  # dropped by the loader, a new connection
        assert default_again == default_first  # reused at httpx's default expiry
    finally:
        server.should_exit = True
        thread.join(timeout=10)
