"""Loads a directory file through the public HTTP API, each record signed by its own authority.

Order: jurisdictions (tier by tier), departments, department keys, systems, catalogs, then — when
sharing requests are given (:func:`read_sharing`) — the ``sharing`` phase: requests, the owners'
decisions, the owners' revocations, and a wait until each request has reached the status it is
expected to end in (a short grant until the service's expiry job has marked it expired). Each phase
waits until its transactions are indexed, because the next one refers to it. Jurisdictions,
departments and keys are signed by the bureau's ``administrator`` key; each system, catalog and
sharing request by its department's key (keystore label = department code); decisions and
revocations by the owning department's key.

Loading the same file again changes nothing: a record whose indexed digest equals its digest is
skipped; a changed one is updated. Sharing requests are deterministic: the nonce of a request is the
first 8 bytes of keccak256(utf8(requester code | catalog code | purpose)) (big-endian), so its id
(keccak256(abi.encode(signer, nonce))) is known before sending and an indexed request is skipped; a
decision or revocation is sent only while the request still awaits it, with a nonce derived likewise
from the request id.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chain import eip712
from registry.canonical import digest, record_json
from registry.errors import RegistryError
from registry.keystore import Keystore
from registry.messages import (
    Message,
    account_message,
    department_message,
    items_mask,
    jurisdiction_message,
    record_message,
    sharing_decision_message,
    sharing_request_id,
    sharing_request_message,
    sharing_revocation_message,
)
from registry.models import CatalogRecord, SystemRecord, Tier
from registry.seed import Department, Directory, Jurisdiction

ProgressFn = Callable[[str, int, int], None]
#: A submission ready to POST: (code, API path, JSON body, outcome "added" | "updated").
Post = tuple[str, str, dict[str, Any], str]


@dataclass(frozen=True)
class Refusal:
    """A submission the loader could not prepare: its ``code``, an HTTP-like ``status`` (0: not sent) and why."""

    code: str
    status: int
    detail: str


#: What a job prepared: a :data:`Post`, a :class:`Refusal`, ``"unchanged"`` (already indexed as it is: counted)
#: or ``"skipped"`` (nothing to send now, counted elsewhere).
Prepared = Post | Refusal | Literal["unchanged", "skipped"]
#: Prepares one submission (existence checks, key, signature) in a worker thread.
Job = Callable[[], Prepared]
#: Items per page when the loader reads a whole list (the API's largest page).
LIST_PAGE = 500
UNCHANGED: Literal["unchanged"] = "unchanged"
#: Transactions asked about per ``POST /submissions/status`` (the API's most).
STATUS_BATCH = 200
#: Most submissions per ``POST /catalogs/batch``, ``/systems/batch``, ``/sharing-requests/batch``,
#: ``/sharing-requests/decisions/batch`` or ``/grants/revocations/batch`` (the API's most).
BATCH_SUBMISSIONS = 100
#: Most bytes of submissions per batch request: under the service's default body limit (256 KiB).
BATCH_BYTES = 192 * 1024
#: Seconds a connection may sit idle in the loader's pool before the loader drops it: under the 5 s after which the
#: service (uvicorn's default keep-alive timeout) closes it. At the same 5 s as the server (httpx's default), a
#: request could be written on a connection the server was closing at that moment and be reset
#: (``ReadError: [Errno 104] Connection reset by peer``, seen once in the small-scale bench, 2026-12-06 12:52).
KEEPALIVE_S = 2.0
SKIPPED: Literal["skipped"] = "skipped"


class LoadError(RegistryError):
    """The API could not be used to load the directory (unreachable, or a phase never got indexed), or a
    sharing file is malformed."""


SharingOutcome = Literal["granted", "rejected", "refused", "revoked", "expired"]


class _SharingEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SharingDecisionSeed(_SharingEntry):
    """The owner's decision on a conditional request: ``approve`` and its ``reason``."""

    approve: bool
    reason: str = ""


class SharingRevocationSeed(_SharingEntry):
    """The owner's revocation of the grant, with its ``reason``."""

    reason: str = ""


class SharingSeed(_SharingEntry):
    """One sharing request of a sharing file, by names: the ``requester`` department and the
    ``catalog`` (names as in the directory file), the data ``items`` (names), ``purpose``, legal
    ``basis``, ``period_s`` (seconds from the load; the period starts at the load), the owner's
    ``decision`` and ``revocation`` if any, and the status it must end in (``expect``)."""

    requester: Annotated[str, Field(min_length=1)]
    catalog: Annotated[str, Field(min_length=1)]
    items: Annotated[list[str], Field(min_length=1)]
    purpose: Annotated[str, Field(min_length=1)]
    basis: Annotated[str, Field(min_length=1)]
    period_s: Annotated[int, Field(ge=1)]
    decision: SharingDecisionSeed | None = None
    revocation: SharingRevocationSeed | None = None
    expect: SharingOutcome


def read_sharing(path: Path) -> list[SharingSeed]:
    """The sharing requests of a sharing file (a JSON object whose ``requests`` is a list of
    :class:`SharingSeed` entries; other keys, like ``about``, are documentation).

    Raises :class:`LoadError` naming the entry for a malformed file.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadError(f"{path}: expected a JSON sharing file, got {exc}") from exc
    entries = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise LoadError(f"{path}: expected an object with a list 'requests'")
    seeds = []
    for i, entry in enumerate(entries):
        try:
            seeds.append(SharingSeed.model_validate(entry))
        except ValidationError as exc:
            raise LoadError(f"{path}: requests[{i}]: {exc}") from exc
    return seeds


def sharing_file_for(directory_file: Path) -> Path | None:
    """The sharing file that goes with a directory file, if it exists: ``<name>-sharing.json`` next to
    ``<name>-directory.json`` (or ``<stem>-sharing.json`` next to any other ``<stem>.json``)."""
    stem = directory_file.stem.removesuffix("-directory")
    candidate = directory_file.with_name(f"{stem}-sharing.json")
    return candidate if candidate.exists() else None


def seed_nonce(*parts: str) -> int:
    """A deterministic nonce: the first 8 bytes (big-endian) of keccak256(utf8(parts joined by "|"))."""
    return int.from_bytes(keccak(text="|".join(parts))[:8], "big")


@dataclass
class PhaseSummary:
    """Outcome of one phase: counts of ``added``, ``updated``, ``unchanged`` and ``failed`` records,
    each failure as (code, HTTP status, problem detail), and ``seconds``: wall time of the phase (signing,
    requests and the wait until its transactions are indexed)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class LoadSummary:
    """Per-phase outcome of a load; ``ok`` when nothing failed. ``sync_wait_s``: seconds spent waiting for the
    tier sync to bring the records up before the sharing requests (0 without tiers or sharing)."""

    phases: dict[str, PhaseSummary] = field(default_factory=dict)
    sync_wait_s: float = 0.0
    #: Wall seconds of each step as the progress bar names it (``jurisdictions (street)``, ``sharing decisions``,
    #: ``sharing outcomes``, ``tier sync`` …), in order: the phases in finer grain.
    steps_s: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """``{"ok", "sync_wait_s", "steps_s", "phases": {name: {"added", "updated", "unchanged", "failed",
        "seconds"}}}``, ``failed`` a count (seconds rounded to 0.1)."""
        return {
            "ok": self.ok,
            "sync_wait_s": round(self.sync_wait_s, 1),
            "steps_s": {name: round(v, 1) for name, v in self.steps_s.items()},
            "phases": {name: {"added": p.added, "updated": p.updated, "unchanged": p.unchanged,
                              "failed": len(p.failed), "seconds": round(p.seconds, 1)}
                       for name, p in self.phases.items()},
        }

    @property
    def ok(self) -> bool:
        """True when no submission failed."""
        return all(not p.failed for p in self.phases.values())


def _detail(reply: httpx.Response) -> str:
    """What a failed answer says: its problem's ``detail`` (RFC 9457), else its body, else its reason phrase."""
    if not reply.content:
        return reply.reason_phrase
    try:
        body = reply.json()
    except ValueError:
        return reply.text
    return str(body.get("detail", reply.text)) if isinstance(body, dict) else reply.text


class DirectoryLoader:
    """Client of the API at ``api_url`` that loads a :class:`registry.seed.Directory`.

    ``deadline_s``: validity of each signature (seconds). ``workers``: concurrent POSTs per phase.
    ``index_timeout_s``: longest wait for a phase's transactions to be indexed (seconds), and for a submission the
    service answered 503 ``submission-pending`` (queued, not yet in a transaction) to be sent or refused: such a
    submission is followed at its ``status_url``, not counted as failed.
    ``http``: an httpx client to use instead of its own (e.g. FastAPI's in-process TestClient). Without one, each
    thread of the loader gets its own client (connection pool): one client shared by dozens of threads lost
    sockets under load (``ReadError: [Errno 9] Bad file descriptor`` from httpcore at Beijing scale).
    """

    def __init__(
        self,
        api_url: str,
        keystore: Keystore,
        *,
        deadline_s: int = 3600,
        workers: int = 8,
        index_timeout_s: float = 300.0,
        progress: ProgressFn | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._api_url = api_url
        self._shared = http
        self._local = threading.local()
        self.keystore = keystore
        self.deadline_s = deadline_s
        self.workers = workers
        self._steps: dict[str, float] = {}  # wall seconds per step of the current load (LoadSummary.steps_s)
        # One TLS context for every thread's client: httpx builds one per client otherwise (certificates loaded
        # each time, ~10 ms of CPU), and each phase's threads make their own clients.
        self._tls = ssl.create_default_context()
        self.index_timeout_s = index_timeout_s
        self.progress = progress or (lambda phase, done, total: None)
        self._eip712: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        self._request_homes: dict[str, str] = {}  # request id → jurisdiction of the directory it was signed for

    @property
    def http(self) -> httpx.Client:
        """The HTTP client of the calling thread (the one given, or this thread's own)."""
        if self._shared is not None:
            return self._shared
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(base_url=self._api_url, timeout=120.0, verify=self._tls,
                                                       limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S))
        return client

    # ------------------------------------------------------------------ signing

    def _meta(self, where: dict[str, str]) -> dict[str, Any]:
        """``GET /eip712?<where>``: the domain and types of the directory ``where`` names, and its jurisdiction
        (cached per ``where``)."""
        key = tuple(sorted(where.items()))
        if key not in self._eip712:
            reply = self.http.get("/eip712", params=where)
            reply.raise_for_status()
            self._eip712[key] = reply.json()
        return self._eip712[key]

    def _typed(self, msg: Message, where: dict[str, str]) -> dict[str, Any]:
        """Typed data of ``msg`` for the directory ``GET /eip712?<where>`` names."""
        meta = self._meta(where)
        return eip712.typed_data(meta["types"], msg.primary, meta["domain"], msg.message)

    def _request_where(self, rid: str) -> dict[str, str]:
        """Where to sign a decision or revocation of request ``rid``: the directory that holds the request. For a
        request this loader signed, that directory's jurisdiction (whose answer is cached from the phases before);
        else ``request=rid``, which the service resolves from its index."""
        home = self._request_homes.get(rid)
        return {"jurisdiction": home} if home is not None else {"request": rid}

    def _sign(self, account: LocalAccount, msg: Message, **where: str) -> dict[str, Any]:
        """Nonce, deadline and signature of ``msg`` by ``account`` for the directory it goes to: ``where`` are
        the ``GET /eip712`` parameters naming it (``jurisdiction`` [+ ``tier``], ``catalog`` + ``requester``, or
        ``request``)."""
        signature = eip712.sign(account, self._typed(msg, where))
        return {"nonce": msg.message["nonce"], "deadline": msg.message["deadline"], "signature": "0x" + signature.hex()}

    def _envelope(self) -> tuple[int, int]:
        return secrets.randbits(64), int(time.time()) + self.deadline_s

    # ------------------------------------------------------------------ plumbing

    def _exists(self, path: str) -> dict[str, Any] | None:
        reply = self.http.get(path)
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        result: dict[str, Any] = reply.json()
        return result

    def _indexed(self, path: str) -> dict[str, dict[str, Any]]:
        """Every item of the unpaginated list ``GET path`` (jurisdictions, departments: a few hundred in a city) by
        its code: one request per phase instead of one existence check per item."""
        reply = self.http.get(path)
        reply.raise_for_status()
        return {str(item["code"]): item for item in reply.json()}

    def _listing(self, path: str, key: str = "code") -> dict[str, dict[str, Any]]:
        """Every item of the paginated list ``GET path`` (500 a page) by its ``key``: one request per 500 items
        instead of one existence check per item."""
        out: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            reply = self.http.get(path, params={"limit": LIST_PAGE, "offset": offset})
            reply.raise_for_status()
            page = reply.json()
            for item in page["items"]:
                out[str(item[key])] = item
            offset += len(page["items"])
            if not page["items"] or offset >= int(page["total"]):
                return out

    def _post_all(self, phase: str, jobs: Sequence[Job], summary: PhaseSummary, batch_path: str | None = None
                  ) -> set[str]:
        """Run each job (which checks what is indexed and signs: a :data:`Post`, :data:`UNCHANGED` or a
        :class:`Refusal`) and POST what it prepared, ``workers`` at a time — or, with ``batch_path``, up to
        :data:`BATCH_SUBMISSIONS` at a time to that route (``POST /catalogs/batch``), each answered on its own —,
        then wait until every transaction is indexed; returns the codes posted. Jobs run in the pool so that
        existence checks, key loading and signing overlap the requests instead of preceding them one by one."""
        started = time.monotonic()
        total = len(jobs)
        done = 0
        self.progress(phase, 0, total)
        tx_hashes: set[str] = set()
        posted: set[str] = set()

        def run(job: Job) -> tuple[Prepared, httpx.Response | None]:
            prepared = job()
            if not isinstance(prepared, tuple):
                return prepared, None
            _code, path, body, _outcome = prepared
            return prepared, self._settled(self.http.post(path, json=body))

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            answers = pool.map(run, jobs) if batch_path is None else self._batched(pool, jobs, batch_path)
            for prepared, reply in answers:
                if prepared == UNCHANGED:
                    summary.unchanged += 1
                elif isinstance(prepared, Refusal):
                    summary.failed.append((prepared.code, prepared.status, prepared.detail))
                elif not isinstance(prepared, tuple) or reply is None:
                    pass  # skipped
                elif reply.status_code == 202:
                    code, _path, _body, outcome = prepared
                    posted.add(code)
                    tx_hashes.add(reply.json()["tx_hash"])
                    if outcome == "added":
                        summary.added += 1
                    else:
                        summary.updated += 1
                else:
                    summary.failed.append((prepared[0], reply.status_code, _detail(reply)))
                done += 1
                self.progress(phase, done, total)
        self.await_indexed(phase, tx_hashes)
        summary.seconds += time.monotonic() - started
        self._steps[phase] = time.monotonic() - started
        return posted

    def _batched(self, pool: ThreadPoolExecutor, jobs: Sequence[Job], path: str
                 ) -> Iterator[tuple[Prepared, httpx.Response | None]]:
        """Prepare ``jobs`` in ``pool`` and POST what they prepared to the batch route ``path`` in chunks of at most
        :data:`BATCH_SUBMISSIONS` submissions and :data:`BATCH_BYTES` bytes, ``workers // 8`` chunks at a time
        (a chunk waits until each of its submissions is in a transaction); yields each job's (prepared, answer) in
        the jobs' order, the answer of one submission as the single route would have given it."""
        senders = ThreadPoolExecutor(max_workers=max(1, self.workers // 8))
        chunks: list[Future[list[httpx.Response]]] = []
        order: deque[tuple[Prepared, int, int]] = deque()  # (prepared, chunk, index in it); chunk -1: not sent
        chunk: list[bytes] = []
        size = 0

        def close() -> None:
            nonlocal chunk, size
            if chunk:
                chunks.append(senders.submit(self._post_chunk, path, chunk))
                chunk, size = [], 0

        def answered(wait: bool) -> Iterator[tuple[Prepared, httpx.Response | None]]:
            """The oldest jobs' answers, as far as their chunks have been answered (all of them with ``wait``)."""
            while order:
                prepared, at, index = order[0]
                if at >= 0 and not (at < len(chunks) and (wait or chunks[at].done())):
                    return  # its chunk is still being filled, or not answered yet
                order.popleft()
                yield prepared, (None if at < 0 else chunks[at].result()[index])

        try:
            for prepared in pool.map(lambda job: job(), jobs):
                if not isinstance(prepared, tuple):
                    order.append((prepared, -1, 0))
                    continue
                encoded = json.dumps(prepared[2], ensure_ascii=False, separators=(",", ":")).encode()
                if chunk and (len(chunk) >= BATCH_SUBMISSIONS or size + len(encoded) > BATCH_BYTES):
                    close()
                    yield from answered(wait=False)
                order.append((prepared, len(chunks), len(chunk)))
                chunk.append(encoded)
                size += len(encoded) + 1
            close()
            yield from answered(wait=True)
        finally:
            senders.shutdown(wait=True, cancel_futures=True)

    def _post_chunk(self, path: str, chunk: list[bytes]) -> list[httpx.Response]:
        """POST ``chunk`` (JSON-encoded submissions) to the batch route ``path``; returns one answer per submission:
        the 202 or problem its result carries (a queued one followed, :meth:`_settled`), or — when the batch as a
        whole is refused (422 invalid body, 413, 503 read-only replica …) — that answer for each."""
        content = b'{"submissions":[' + b",".join(chunk) + b"]}"
        reply = self.http.post(path, content=content, headers={"content-type": "application/json"})
        if reply.status_code not in (202, 207):
            return [reply] * len(chunk)
        answers = []
        for result in reply.json()["results"]:
            if result["accepted"] is not None:
                answers.append(httpx.Response(202, json=result["accepted"]))
            else:
                problem = httpx.Response(int(result["status"]), json=result["problem"],
                                         headers={"content-type": "application/problem+json"})
                answers.append(self._settled(problem))
        return answers

    def _settled(self, reply: httpx.Response) -> httpx.Response:
        """``reply``, or — for a 503 ``submission-pending`` (queued, no transaction yet) — what following its
        ``status_url`` ends with (:meth:`_follow_queued`)."""
        problem = reply.headers.get("content-type", "").startswith("application/problem+json")
        if reply.status_code == 503 and problem and "status_url" in reply.json():
            return self._follow_queued(reply)
        return reply

    def _follow_queued(self, pending: httpx.Response) -> httpx.Response:
        """Follow a submission the service answered 503 ``submission-pending`` (queued, no transaction yet) at its
        ``status_url`` until a transaction carries it or the service refuses it, at most ``index_timeout_s``
        seconds; returns the answer the submission would have had: 202 with the ``tx_hash``, the refusal's problem
        (4xx), or ``pending`` itself if it is still queued at the deadline. An error answer of the status URL itself
        (e.g. 404 from a service restarted since, which no longer holds the queue) is returned as it is: the
        submission counts as failed with that problem instead of ending the load."""
        url = str(pending.json()["status_url"])
        deadline = time.monotonic() + self.index_timeout_s
        delay = 0.05
        while time.monotonic() < deadline:
            reply = self.http.get(url)
            if reply.status_code != 200:
                return reply
            state = reply.json()
            if state["status"] == "sent":
                return httpx.Response(202, json={"tx_hash": state["tx_hash"]})
            if state["status"] == "refused":
                problem = state["problem"]
                return httpx.Response(int(problem["status"]), json=problem)
            time.sleep(delay)
            delay = min(1.0, delay * 2)
        return pending

    def await_indexed(self, phase: str, tx_hashes: set[str]) -> None:
        """Wait until every one of ``tx_hashes`` is indexed, asking ``POST /submissions/status`` about
        :data:`STATUS_BATCH` at a time (again after a 503: a chain did not answer). Raises :class:`LoadError` for a
        transaction reverted or unknown, another error answer, or one still not indexed after ``index_timeout_s``
        seconds."""
        deadline = time.monotonic() + self.index_timeout_s
        waiting = sorted(tx_hashes)
        while waiting:
            still: list[str] = []
            for start in range(0, len(waiting), STATUS_BATCH):
                asked = waiting[start : start + STATUS_BATCH]
                reply = self.http.post("/submissions/status", json={"tx_hashes": asked})
                if reply.status_code == 503:  # a chain did not answer: ask again
                    still += asked
                    continue
                if reply.status_code != 200:
                    raise LoadError(f"{phase}: POST /submissions/status answered {reply.status_code}: {_detail(reply)}")
                for state in reply.json():
                    if state["status"] in ("reverted", "unknown"):
                        raise LoadError(f"{phase}: transaction {state['tx_hash']} is {state['status']}")
                    if state["status"] != "indexed":
                        still.append(state["tx_hash"])
            waiting = still
            if waiting:
                if time.monotonic() > deadline:
                    raise LoadError(f"{phase}: {len(waiting)} transactions not indexed after {self.index_timeout_s} s")
                time.sleep(0.05)

    # ------------------------------------------------------------------ phases

    def load(self, directory: Directory, sharing: Sequence[SharingSeed] = ()) -> LoadSummary:
        """Load every jurisdiction, department, department key, system and catalog, then the ``sharing``
        requests (when given); returns the summary.

        Raises :class:`LoadError` if a phase's transactions are not indexed in time.
        """
        self._steps = {}
        summary = LoadSummary(steps_s=self._steps)
        admin = self.keystore.account("administrator")
        jur = summary.phases.setdefault("jurisdictions", PhaseSummary())
        for tier in (Tier.CITY, Tier.DISTRICT, Tier.STREET):
            level = [j for j in directory.jurisdictions if j.tier is tier]
            known = self._indexed("/jurisdictions") if level else {}
            self._post_all(f"jurisdictions ({tier.value})",
                           [partial(self._jurisdiction_job, admin, j, j.code in known) for j in level], jur)
        departments = self._indexed("/departments") if directory.departments else {}
        self._post_all("departments", [partial(self._department_job, admin, d, d.code in departments)
                                       for d in directory.departments],
                       summary.phases.setdefault("departments", PhaseSummary()))
        departments = self._indexed("/departments") if directory.departments else {}
        self._post_all("department keys", [partial(self._key_job, admin, d, departments.get(d.code))
                                           for d in directory.departments],
                       summary.phases.setdefault("department keys", PhaseSummary()))
        self._records("systems", directory.systems, summary)
        self._records("catalogs", directory.catalogs, summary)
        if sharing:
            started = time.monotonic()
            self.await_synced()
            summary.sync_wait_s = self._steps["tier sync"] = time.monotonic() - started
            self._sharing(directory, sharing, summary)
        return summary

    def _jurisdiction_job(self, admin: LocalAccount, j: Jurisdiction, indexed: bool) -> Prepared:
        if indexed:
            return UNCHANGED
        msg = jurisdiction_message(j, *self._envelope())
        where = {"jurisdiction": j.parent} if j.parent else {"jurisdiction": j.code, "tier": "city"}
        body = {"jurisdiction": j.model_dump(mode="json", exclude_none=True), **self._sign(admin, msg, **where)}
        return j.code, "/jurisdictions", body, "added"

    def _department_job(self, admin: LocalAccount, d: Department, indexed: bool) -> Prepared:
        if indexed:
            return UNCHANGED
        msg = department_message(d, *self._envelope())
        return d.code, "/departments", {"department": d.model_dump(mode="json"),
                                        **self._sign(admin, msg, jurisdiction=d.jurisdiction)}, "added"

    def _key_job(self, admin: LocalAccount, d: Department, indexed: dict[str, Any] | None) -> Prepared:
        """Bind the department's key unless ``indexed`` (the department as ``GET /departments`` lists it) has it."""
        address = self.keystore.address(d.code)
        if address in (indexed or {}).get("accounts", []):
            return UNCHANGED
        msg = account_message("department", d.code, address, True, *self._envelope())
        body = {"role": "department", "scope": d.code, "account": address, "active": True,
                **self._sign(admin, msg, jurisdiction=d.jurisdiction)}
        return d.code, "/accounts", body, "added"

    def await_synced(self) -> None:
        """Wait until the tier sync has relayed everything to the top: two complete sync rounds after now, the
        latest pass of every child within its chain's confirmation depth (a sharing request goes to the lowest
        directory holding both departments, which it can only be once the records are there). No-op without
        tiers. Raises :class:`LoadError` after ``index_timeout_s`` seconds."""
        health = self.http.get("/health").json()
        if not health.get("children"):
            return
        first_round = int(health.get("sync_rounds", 0))
        deadline = time.monotonic() + self.index_timeout_s
        while True:
            depth = {c["chain_id"]: c["confirmations"] for c in health.get("chains", [])}
            behind = [c["jurisdiction"] for c in health["children"] if c["blocks"] > depth.get(c["chain_id"], 0)]
            if int(health.get("sync_rounds", 0)) >= first_round + 2 and not behind:
                return
            if time.monotonic() > deadline:
                raise LoadError(f"tier sync: {', '.join(behind) or 'rounds'} not caught up after "
                                f"{self.index_timeout_s} s")
            self.progress("tier sync", 0, 1)
            time.sleep(0.2)
            health = self.http.get("/health").json()

    def _records(self, kind: str, records: list[CatalogRecord] | list[SystemRecord], summary: LoadSummary) -> None:
        indexed = self._listing(f"/{kind}") if records else {}
        self._post_all(kind, [partial(self._record_job, kind, r, indexed.get(r.code)) for r in records],
                       summary.phases.setdefault(kind, PhaseSummary()), batch_path=f"/{kind}/batch")

    def _record_job(self, kind: str, record: CatalogRecord | SystemRecord, indexed: dict[str, Any] | None) -> Prepared:
        """Register ``record`` (not ``indexed``), update it (indexed with another digest) or leave it."""
        owner = record.provider_code if isinstance(record, CatalogRecord) else record.owner_code
        if indexed is None:
            action, version, outcome = "register", 1, "added"
        elif indexed.get("latest_digest") == "0x" + digest(record).hex():
            return UNCHANGED
        else:
            action, version, outcome = "update", int(indexed["latest_version"]) + 1, "updated"
        msg = record_message(record, action, version, *self._envelope())  # type: ignore[arg-type]
        signed = self._sign(self.keystore.account(owner), msg, jurisdiction=record.jurisdiction)
        body = {"action": action, "version": version, "record": record_json(record), **signed}
        return record.code, f"/{kind}", body, outcome

    # ------------------------------------------------------------------ sharing

    def _sharing(self, directory: Directory, seeds: Sequence[SharingSeed], summary: LoadSummary) -> None:
        """Requests, decisions, revocations, then wait for each request's expected status.

        Counts: ``added`` requests sent, ``updated`` decisions and revocations sent, ``unchanged``
        requests already indexed that needed nothing; a request that cannot be resolved or does not end
        in its expected status is a failure.
        """
        phase = summary.phases.setdefault("sharing", PhaseSummary())
        departments = {d.name: d.code for d in directory.departments}
        catalogs = {c.name: c for c in directory.catalogs}
        resolved: list[tuple[SharingSeed, str, str]] = []  # (seed, requester code, request id)
        requests = self._listing("/sharing-requests", key="id") if seeds else {}
        indexed_catalogs = self._listing("/catalogs") if seeds else {}
        jobs: list[Job] = []
        for seed in seeds:
            label = f"{seed.requester} → {seed.catalog}"
            requester, catalog = departments.get(seed.requester), catalogs.get(seed.catalog)
            if requester is None or catalog is None:
                missing = seed.requester if requester is None else seed.catalog
                phase.failed.append((label, 0, f"{missing!r} is not in the directory"))
                continue
            jobs.append(partial(self._request_job, seed, requester, catalog, indexed_catalogs.get(catalog.code),
                                requests, resolved))
        acted = self._post_all("sharing requests", jobs, phase, batch_path="/sharing-requests/batch")
        requests = self._listing("/sharing-requests", key="id") if resolved else {}
        acted |= self._post_all("sharing decisions", [partial(self._decision_job, seed, requests.get(rid))
                                                      for seed, _, rid in resolved], phase,
                                batch_path="/sharing-requests/decisions/batch")
        requests = self._listing("/sharing-requests", key="id") if resolved else {}
        acted |= self._post_all("sharing revocations", [partial(self._revocation_job, seed, requests.get(rid))
                                                        for seed, _, rid in resolved], phase,
                                batch_path="/grants/revocations/batch")
        phase.unchanged += sum(1 for _, _, rid in resolved if rid not in acted)

        started = time.monotonic()
        self._await_outcomes(resolved, phase)
        self._steps["sharing outcomes"] = time.monotonic() - started
        phase.seconds += self._steps["sharing outcomes"]

    def _request_job(self, seed: SharingSeed, requester: str, catalog: CatalogRecord, indexed: dict[str, Any] | None,
                     requests: dict[str, dict[str, Any]], resolved: list[tuple[SharingSeed, str, str]]) -> Prepared:
        """A sharing request of ``seed`` for ``catalog`` (as ``indexed`` in the catalog list), unless it is among
        the indexed ``requests``; appended to ``resolved`` unless it cannot be prepared. The data items are
        resolved against the indexed record: the file's when the indexed digest equals its digest, else the one
        ``GET /catalogs/{code}`` answers."""
        label = f"{seed.requester} → {seed.catalog}"
        nonce = seed_nonce(requester, catalog.code, seed.purpose)
        account = self.keystore.account(requester)
        rid = "0x" + sharing_request_id(account.address, nonce).hex()
        if rid in requests:
            resolved.append((seed, requester, rid))
            return SKIPPED
        record: CatalogRecord | None = None
        if indexed is not None and indexed.get("latest_digest") == "0x" + digest(catalog).hex():
            record = catalog
        else:
            indexed = self._exists(f"/catalogs/{catalog.code}")
            if indexed is not None and indexed.get("record") is not None:
                record = CatalogRecord.model_validate(indexed["record"])
        if indexed is None or record is None:
            return Refusal(label, 0, f"catalog {catalog.code} is not indexed")
        try:
            mask = items_mask(record, seed.items)
        except ValueError as exc:
            return Refusal(label, 0, str(exc))
        version = int(indexed["latest_version"])
        resolved.append((seed, requester, rid))
        start = int(time.time())
        deadline = start + self.deadline_s
        msg = sharing_request_message(catalog.code, version, requester, mask, seed.purpose, seed.basis, start,
                                      start + seed.period_s, nonce, deadline)
        body = {
            "catalog": catalog.code, "version": version, "requester": requester,
            "items": seed.items, "purpose": seed.purpose, "basis": seed.basis, "start": start,
            "end": start + seed.period_s, **self._sign(account, msg, catalog=catalog.code, requester=requester),
        }
        home = self._meta({"catalog": catalog.code, "requester": requester}).get("jurisdiction")
        if isinstance(home, str):
            self._request_homes[rid] = home
        return rid, "/sharing-requests", body, "added"

    def _decision_job(self, seed: SharingSeed, state: dict[str, Any] | None) -> Prepared:
        """The owner's decision of the request indexed as ``state`` if ``seed`` has one and it still awaits it (a
        submission of ``POST /sharing-requests/decisions/batch``: it names its ``request_id``)."""
        if seed.decision is None or state is None or state["status"] != "requested":
            return SKIPPED
        rid = str(state["id"])
        nonce, deadline = seed_nonce("decision", rid), int(time.time()) + self.deadline_s
        msg = sharing_decision_message(bytes.fromhex(rid[2:]), seed.decision.approve, seed.decision.reason, nonce,
                                       deadline)
        body = {"request_id": rid, "approve": seed.decision.approve, "reason": seed.decision.reason,
                **self._sign(self.keystore.account(state["owner"]), msg, **self._request_where(rid))}
        return rid, f"/sharing-requests/{rid}/decision", body, "updated"

    def _revocation_job(self, seed: SharingSeed, state: dict[str, Any] | None) -> Prepared:
        """The owner's revocation of the grant indexed as ``state`` if ``seed`` has one and it is still in force (a
        submission of ``POST /grants/revocations/batch``: it names its ``request_id``)."""
        if seed.revocation is None or state is None or state["status"] != "granted":
            return SKIPPED
        rid = str(state["id"])
        nonce, deadline = seed_nonce("revocation", rid), int(time.time()) + self.deadline_s
        msg = sharing_revocation_message(bytes.fromhex(rid[2:]), seed.revocation.reason, nonce, deadline)
        body = {"request_id": rid, "reason": seed.revocation.reason,
                **self._sign(self.keystore.account(state["owner"]), msg, **self._request_where(rid))}
        return rid, f"/grants/{rid}/revocation", body, "updated"

    def _await_outcomes(self, resolved: list[tuple[SharingSeed, str, str]], phase: PhaseSummary) -> None:
        """Check every request shows its expected status. Only a grant expected to expire is waited for
        (up to ``index_timeout_s``: the service's expiry job marks it once its period is over); any
        other mismatch is recorded as a failure at once."""
        waiting = {rid: seed for seed, _, rid in resolved}
        total = len(waiting)
        deadline = time.monotonic() + self.index_timeout_s
        self.progress("sharing outcomes", 0, total)
        while waiting:
            indexed = self._listing("/sharing-requests", key="id")  # a few pages instead of a GET per request
            for rid, seed in list(waiting.items()):
                state = str((indexed.get(rid) or {}).get("status"))
                pending = state == "granted" and seed.expect == "expired" and time.monotonic() < deadline
                if state == seed.expect or not pending:
                    del waiting[rid]
                if state != seed.expect and not pending:
                    detail = f"{seed.requester} → {seed.catalog}: expected status {seed.expect}, got {state}"
                    phase.failed.append((rid, 0, detail))
            self.progress("sharing outcomes", total - len(waiting), total)
            if waiting:
                time.sleep(0.25)
