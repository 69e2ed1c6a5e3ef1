"""The loader's handling of answers it cannot use, in process: an httpx transport plays the service's side with
the answers the real API gives (``submission-pending`` with a ``status_url``; 404 ``not-found`` from a service that
no longer holds the queue) and one a proxy in front of it may give (an HTML 502). The loader must count each as that
submission's failure, with what the answer says, and go on with the others."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from registry.keystore import Keystore
from registry.loader import DirectoryLoader, PhaseSummary

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
