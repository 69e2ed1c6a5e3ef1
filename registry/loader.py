"""Loads a directory file through the public HTTP API, each record signed by its own authority.

Order: jurisdictions (tier by tier), departments, department keys, systems, catalogs — each phase
waits until its transactions are indexed, because the next one refers to it. Jurisdictions,
departments and keys are signed by the bureau's ``administrator`` key; each system and catalog by
its department's key (keystore label = department code). Loading the same file again changes
nothing: a record whose indexed digest equals its digest is skipped; a changed one is updated.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from chain import eip712
from registry.canonical import digest, record_json
from registry.errors import RegistryError
from registry.keystore import Keystore
from registry.messages import Message, account_message, department_message, jurisdiction_message, record_message
from registry.models import CatalogRecord, SystemRecord, Tier
from registry.seed import Directory

ProgressFn = Callable[[str, int, int], None]


class LoadError(RegistryError):
    """The API could not be used to load the directory (unreachable, or a phase never got indexed)."""


@dataclass
class PhaseSummary:
    """Outcome of one phase: counts of ``added``, ``updated``, ``unchanged`` and ``failed`` records,
    and each failure as (code, HTTP status, problem detail)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass
class LoadSummary:
    """Per-phase outcome of a load; ``ok`` when nothing failed."""

    phases: dict[str, PhaseSummary] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no submission failed."""
        return all(not p.failed for p in self.phases.values())


class DirectoryLoader:
    """Client of the API at ``api_url`` that loads a :class:`registry.seed.Directory`.

    ``deadline_s``: validity of each signature (seconds). ``workers``: concurrent POSTs per phase.
    ``index_timeout_s``: longest wait for a phase's transactions to be indexed (seconds).
    ``http``: an httpx client to use instead of a new one (e.g. FastAPI's in-process TestClient).
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
        self.http = http or httpx.Client(base_url=api_url, timeout=120.0)
        self.keystore = keystore
        self.deadline_s = deadline_s
        self.workers = workers
        self.index_timeout_s = index_timeout_s
        self.progress = progress or (lambda phase, done, total: None)
        self._eip712: dict[str, Any] | None = None

    # ------------------------------------------------------------------ signing

    def _typed(self, msg: Message) -> dict[str, Any]:
        if self._eip712 is None:
            reply = self.http.get("/eip712")
            reply.raise_for_status()
            self._eip712 = reply.json()
        return eip712.typed_data(self._eip712["types"], msg.primary, self._eip712["domain"], msg.message)

    def _sign(self, account: LocalAccount, msg: Message) -> dict[str, Any]:
        signature = eip712.sign(account, self._typed(msg))
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

    def _post_all(self, phase: str, posts: list[tuple[str, str, dict[str, Any], str]], summary: PhaseSummary) -> None:
        """POST (code, path, body, outcome) concurrently, then wait until every transaction is indexed."""
        total = len(posts)
        done = 0
        self.progress(phase, 0, total)
        tx_hashes: set[str] = set()

        def post(item: tuple[str, str, dict[str, Any], str]) -> tuple[str, str, httpx.Response]:
            code, path, body, outcome = item
            return code, outcome, self.http.post(path, json=body)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for code, outcome, reply in pool.map(post, posts):
                if reply.status_code == 202:
                    tx_hashes.add(reply.json()["tx_hash"])
                    if outcome == "added":
                        summary.added += 1
                    else:
                        summary.updated += 1
                else:
                    detail = reply.json().get("detail", reply.text) if reply.content else reply.reason_phrase
                    summary.failed.append((code, reply.status_code, str(detail)))
                done += 1
                self.progress(phase, done, total)
        self._await_indexed(phase, tx_hashes)

    def _await_indexed(self, phase: str, tx_hashes: set[str]) -> None:
        deadline = time.monotonic() + self.index_timeout_s
        waiting = set(tx_hashes)
        while waiting:
            for tx in list(waiting):
                state = self.http.get(f"/submissions/{tx}").json().get("status")
                if state == "indexed":
                    waiting.discard(tx)
                elif state in ("reverted", "unknown"):
                    raise LoadError(f"{phase}: transaction {tx} is {state}")
            if waiting:
                if time.monotonic() > deadline:
                    raise LoadError(f"{phase}: {len(waiting)} transactions not indexed after {self.index_timeout_s} s")
                time.sleep(0.05)

    # ------------------------------------------------------------------ phases

    def load(self, directory: Directory) -> LoadSummary:
        """Load every jurisdiction, department, department key, system and catalog; returns the summary.

        Raises :class:`LoadError` if a phase's transactions are not indexed in time.
        """
        summary = LoadSummary()
        admin = self.keystore.account("administrator")
        jur = summary.phases.setdefault("jurisdictions", PhaseSummary())
        for tier in (Tier.CITY, Tier.DISTRICT, Tier.STREET):
            posts = []
            for j in directory.jurisdictions:
                if j.tier is not tier:
                    continue
                if self._exists(f"/jurisdictions/{j.code}") is not None:
                    jur.unchanged += 1
                    continue
                msg = jurisdiction_message(j, *self._envelope())
                body = {"jurisdiction": j.model_dump(mode="json", exclude_none=True), **self._sign(admin, msg)}
                posts.append((j.code, "/jurisdictions", body, "added"))
            self._post_all(f"jurisdictions ({tier.value})", posts, jur)

        deps = summary.phases.setdefault("departments", PhaseSummary())
        posts = []
        for d in directory.departments:
            if self._exists(f"/departments/{d.code}") is not None:
                deps.unchanged += 1
                continue
            msg = department_message(d, *self._envelope())
            posts.append((d.code, "/departments", {"department": d.model_dump(mode="json"), **self._sign(admin, msg)},
                          "added"))
        self._post_all("departments", posts, deps)

        keys = summary.phases.setdefault("department keys", PhaseSummary())
        posts = []
        for d in directory.departments:
            address = self.keystore.address(d.code)
            indexed = self._exists(f"/departments/{d.code}") or {}
            if address in indexed.get("accounts", []):
                keys.unchanged += 1
                continue
            msg = account_message("department", d.code, address, True, *self._envelope())
            body = {"role": "department", "scope": d.code, "account": address, "active": True, **self._sign(admin, msg)}
            posts.append((d.code, "/accounts", body, "added"))
        self._post_all("department keys", posts, keys)

        self._records("systems", directory.systems, summary)
        self._records("catalogs", directory.catalogs, summary)
        return summary

    def _records(self, kind: str, records: list[CatalogRecord] | list[SystemRecord], summary: LoadSummary) -> None:
        phase = summary.phases.setdefault(kind, PhaseSummary())
        posts = []
        for record in records:
            indexed = self._exists(f"/{kind}/{record.code}")
            owner = record.provider_code if isinstance(record, CatalogRecord) else record.owner_code
            if indexed is None:
                action, version, outcome = "register", 1, "added"
            elif indexed.get("latest_digest") == "0x" + digest(record).hex():
                phase.unchanged += 1
                continue
            else:
                action, version, outcome = "update", int(indexed["latest_version"]) + 1, "updated"
            msg = record_message(record, action, version, *self._envelope())  # type: ignore[arg-type]
            signed = self._sign(self.keystore.account(owner), msg)
            body = {"action": action, "version": version, "record": record_json(record), **signed}
            posts.append((record.code, f"/{kind}", body, outcome))
        self._post_all(kind, posts, phase)
