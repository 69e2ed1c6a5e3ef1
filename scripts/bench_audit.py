"""A large index for the audit benchmark, grown through the indexer's own write path (no chain).

Putting a million events on anvil is not feasible on one machine (anvil keeps everything in memory), so
:func:`grow_index` copies a real index (the benchmark's, built from its chains) and grows the copy to the wanted
number of rows in ``chain_events`` by applying synthetic decoded events through
:func:`registry.store.apply_events` — the function the indexer calls for every block range.

The synthetic events are the source index's own events (every log it indexed, in chain order), replayed once per
*copy* ``k`` = 1, 2, … on synthetic chains, with:

* chain ids ``SYNTHETIC_CHAIN_BASE + k·100,000 + source chain id``; block numbers and timestamps kept, block and
  transaction hashes re-derived (keccak of a tag, ``k`` and the original), so nothing collides with the source or
  another copy;
* fresh record codes: catalog ``<classification>/<suffix>X<k>``, system ``<code>-X<k>`` (a catalog's
  ``source_system`` follows its system); every record re-serialised as RFC 8785 canonical JSON with its new
  code, its digest, ``codeHash`` and ``sourceSystem`` recomputed — so record validation and the digest check
  pass exactly as for the original (a record invalid in the source stays as it was, and stays invalid);
* sharing request ids re-derived, with their catalog's new code and hash;
* ``Relayed`` events pointing at the copied origin (chain id, transaction and block hash mapped, origin key
  recomputed as the contract does), so every relayed copy keeps its chain of custody;
* jurisdictions, departments and keys unchanged (the same ids: their copies are stored as events, the existing
  jurisdiction and department rows are kept, key rows move to the copy's log as a later event would);
* signatures copied as they were: the indexer does not check them (the contract does), so they are **not**
  valid signatures of the new content.

Run on its own: ``python scripts/bench_audit.py SOURCE.sqlite TARGET.sqlite --events 1000000``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import rfc8785
from eth_utils import keccak

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chain.abi import DecodedLog  # noqa: E402
from chain.artifacts import load_artifact  # noqa: E402
from chain.relay import origin_key  # noqa: E402
from registry.canonical import code_id  # noqa: E402
from registry.db import make_engine, migrate, session_factory  # noqa: E402
from registry.store import apply_events  # noqa: E402

#: Synthetic chain ids start here (far from any real chain id).
SYNTHETIC_CHAIN_BASE = 9_000_000_000
#: How the report names the method.
METHOD = "grown to {events:,} events by applying synthetic events through the indexer's store (no chain)"
#: Events per ``apply_events`` call (one transaction each), rounded up to whole chain transactions.
BATCH_EVENTS = 4000

_ZERO32 = b"\x00" * 32
_RECORD_EVENTS = ("CatalogVersionRecorded", "CatalogRetired", "SystemVersionRecorded", "SystemRetired")


@dataclass(frozen=True)
class Growth:
    """What :func:`grow_index` did: ``source_events`` rows in the copied index's ``chain_events``, ``events``
    after growing, ``copies`` of the source events applied, ``synthetic_events`` applied, ``seconds`` spent
    (wall), the grower's peak RSS (``peak_rss_mib``, MiB, of the process that ran it) and ``method``."""

    source_events: int
    events: int
    copies: int
    synthetic_events: int
    seconds: float
    events_per_s: float
    peak_rss_mib: float
    method: str


@dataclass(frozen=True)
class _Template:
    """One source event: its chain, the decoded log and its block's timestamp (unix seconds)."""

    chain_id: int
    log: DecodedLog
    timestamp: int


@cache
def _abi_types() -> dict[str, dict[str, str]]:
    """ABI type of each parameter of each event of the Directory and DirectoryFactory contracts."""
    out: dict[str, dict[str, str]] = {}
    for name in ("DirectoryFactory", "Directory"):
        for entry in load_artifact(name).abi:
            if entry.get("type") == "event":
                out[entry["name"]] = {p["name"]: p["type"] for p in entry["inputs"]}
    return out


def _from_json(abi_type: str | None, value: Any) -> Any:
    """Inverse of the store's ``args_json`` for one value: 0x-hex → bytes, decimal strings → int."""
    if abi_type is None or value is None:
        return value
    if abi_type.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    if abi_type.startswith(("uint", "int")):
        return int(value)
    return value


def decoded_args(event: str, args_text: str) -> dict[str, Any]:
    """The decoded arguments of a ``chain_events.args`` text (canonical JSON), as the ABI decoder gives them:
    bytes as ``bytes``, integers as ``int``, addresses and strings as ``str``."""
    types = _abi_types().get(event, {})
    return {name: _from_json(types.get(name), value) for name, value in json.loads(args_text).items()}


def read_templates(path: Path) -> list[_Template]:
    """Every event of the SQLite index at ``path`` with its block timestamp, in chain order (chain id, block,
    transaction, log)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT e.chain_id, e.event, e.args, e.address, e.block_number, e.block_hash, e.tx_hash, e.tx_index, "
            "e.log_index, b.timestamp FROM chain_events e JOIN blocks b ON b.chain_id = e.chain_id "
            "AND b.number = e.block_number ORDER BY e.chain_id, e.block_number, e.tx_index, e.log_index"
        ).fetchall()
    finally:
        conn.close()
    return [
        _Template(chain_id, DecodedLog(event, decoded_args(event, args), address, block_number, block_hash, tx_hash,
                                       tx_index, log_index), timestamp)
        for chain_id, event, args, address, block_number, block_hash, tx_hash, tx_index, log_index, timestamp in rows
    ]


class _Copy:
    """The rewriting of copy ``k``: chain ids, hashes, codes, records and sharing ids."""

    def __init__(self, k: int, catalogs: dict[bytes, str]) -> None:
        self.k = k
        self.catalogs = catalogs  # code hash → code of the source's catalogs
        self.salt = b"dirchain-bench-audit" + k.to_bytes(4, "big")
        self._hashes: dict[str, str] = {}

    def chain_id(self, chain_id: int) -> int:
        return SYNTHETIC_CHAIN_BASE + self.k * 100_000 + chain_id

    def hash32(self, value: str) -> str:
        """A fresh 0x-hex hash for a transaction or block hash of the source."""
        found = self._hashes.get(value)
        if found is None:
            found = "0x" + keccak(self.salt + bytes.fromhex(value.removeprefix("0x"))).hex()
            self._hashes[value] = found
        return found

    def bytes32(self, value: bytes) -> bytes:
        return bytes.fromhex(self.hash32("0x" + value.hex())[2:])

    def catalog_code(self, code: str) -> str:
        new = f"{code}X{self.k}"
        if len(new.split("/", 1)[-1]) > 40:
            raise ValueError(f"catalog code {code!r} is too long to copy")
        return new

    def system_code(self, code: str) -> str:
        new = f"{code}-X{self.k}"
        if len(new.encode()) > 64:
            raise ValueError(f"system code {code!r} is too long to copy")
        return new

    def record(self, raw: bytes, kind: str, code: str) -> bytes:
        """The record bytes with the new code (and source system), canonical again; bytes that are not a JSON
        object naming ``code`` are returned unchanged (an invalid record stays invalid)."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return raw
        if not isinstance(data, dict) or data.get("code") != code or rfc8785.dumps(data) != raw:
            return raw
        if kind == "catalog":
            data["code"] = self.catalog_code(code)
            if data.get("source_system"):
                data["source_system"] = self.system_code(data["source_system"])
        else:
            data["code"] = self.system_code(code)
        return rfc8785.dumps(data)

    def args(self, event: str, a: dict[str, Any]) -> dict[str, Any]:
        """The arguments of ``event`` in this copy."""
        a = dict(a)
        if event in _RECORD_EVENTS:
            kind = "catalog" if event.startswith("Catalog") else "system"
            old = a["code"]
            a["code"] = self.catalog_code(old) if kind == "catalog" else self.system_code(old)
            a["codeHash"] = code_id(a["code"])
            if "record" in a:
                a["record"] = self.record(bytes(a["record"]), kind, old)
                a["digest"] = keccak(a["record"])
            if a.get("sourceSystem") not in (None, _ZERO32):
                record = _json_object(a["record"])
                named = record.get("source_system") if record is not None else None
                a["sourceSystem"] = code_id(named) if named else self.bytes32(a["sourceSystem"])
        elif event == "SharingRequested":
            a["id"] = self.bytes32(a["id"])
            a["catalog"] = self.catalog_code(a["catalog"])
            a["catalogHash"] = code_id(a["catalog"])
        elif event == "SharingStatusChanged":
            a["id"] = self.bytes32(a["id"])
            known = self.catalogs.get(a["catalogHash"])
            a["catalogHash"] = code_id(self.catalog_code(known)) if known else self.bytes32(a["catalogHash"])
        elif event == "Relayed":
            chain_id = self.chain_id(int(a["chainId"]))
            tx_hash = self.bytes32(a["txHash"])
            a["chainId"] = chain_id
            a["txHash"] = tx_hash
            a["blockHash"] = self.bytes32(a["blockHash"])
            a["originKey"] = origin_key(chain_id, a["directory"], tx_hash, int(a["logIndex"]))
        elif event == "ChildSet":
            a["chainId"] = self.chain_id(int(a["chainId"]))
        return a

    def log(self, ev: DecodedLog) -> DecodedLog:
        return DecodedLog(ev.event, self.args(ev.event, ev.args), ev.address, ev.block_number,
                          self.hash32(ev.block_hash), self.hash32(ev.tx_hash), ev.tx_index, ev.log_index)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _batches(templates: list[_Template], copy: _Copy) -> Iterator[tuple[int, list[tuple[DecodedLog, int]]]]:
    """``(synthetic chain id, [(event, timestamp)])`` batches of about :data:`BATCH_EVENTS`, each ending at a
    transaction boundary of one chain (``apply_events`` pairs a relay's effects with its ``Relayed``)."""
    batch: list[tuple[DecodedLog, int]] = []
    chain: int | None = None
    last_tx: tuple[int, str] | None = None
    for t in templates:
        tx = (t.chain_id, t.log.tx_hash)
        if batch and tx != last_tx and (t.chain_id != chain or len(batch) >= BATCH_EVENTS):
            assert chain is not None
            yield copy.chain_id(chain), batch
            batch = []
        chain, last_tx = t.chain_id, tx
        batch.append((copy.log(t.log), t.timestamp))
    if batch and chain is not None:
        yield copy.chain_id(chain), batch


def copy_index(source: Path, target: Path) -> None:
    """Copy the SQLite database at ``source`` to ``target`` (SQLite's online backup; ``target`` replaced)."""
    target.unlink(missing_ok=True)
    src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _count_events(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM chain_events").scalar() or 0)
    finally:
        engine.dispose()


def grow_index(source: Path, target: Path, events: int,
               progress: Callable[[int, int], None] | None = None) -> Growth:
    """Copy the SQLite index at ``source`` to ``target``, migrate it to the latest schema and grow it to at least
    ``events`` rows in ``chain_events`` by applying whole synthetic copies of the source's events through
    :func:`registry.store.apply_events` (see the module docstring); a source already that large is only copied.

    ``progress(events so far, events wanted)`` is called after every batch. Memory: the source's events once
    (decoded) plus one batch. Raises ValueError for an empty source or a code too long to copy."""
    started = time.monotonic()
    copy_index(source, target)
    url = f"sqlite:///{target}"
    migrate(url)
    source_events = _count_events(url)
    total, copies, applied = source_events, 0, 0
    if total < events:
        templates = read_templates(source)
        if not templates:
            raise ValueError(f"{source}: no events to copy")
        catalogs = {code_id(t.log.args["code"]): t.log.args["code"] for t in templates
                    if t.log.event.startswith("Catalog") and isinstance(t.log.args.get("code"), str)}
        engine = make_engine(url)
        writer = session_factory(engine, writer=True)
        try:
            while total < events:
                copies += 1
                copy = _Copy(copies, catalogs)
                for chain_id, batch in _batches(templates, copy):
                    with writer() as session:
                        n = apply_events(session, batch, chain_id=chain_id)
                        session.commit()
                    applied += n
                    total += n
                    if progress is not None:
                        progress(total, events)
        finally:
            engine.dispose()
    seconds = time.monotonic() - started
    return Growth(source_events=source_events, events=total, copies=copies, synthetic_events=applied,
                  seconds=round(seconds, 1), events_per_s=round(applied / seconds) if seconds else 0.0,
                  peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  method=METHOD.format(events=total))


def audit_latencies(url: str, codes: list[str], warmup: int = 200) -> list[float]:
    """The audit query — :func:`registry.queries.get_catalog` and :func:`registry.provenance.provenance` of a
    catalog, each code in its own session — on the index at ``url``, once per code in turn after ``warmup``
    untimed queries; latencies in ms. Run it in a process of its own to measure the query alone."""
    from registry import provenance, queries

    sessions = session_factory(make_engine(url))
    out: list[float] = []
    for i, code in enumerate([*codes[:warmup], *codes]):
        t0 = time.perf_counter()
        with sessions() as session:
            found = queries.get_catalog(session, code)
            custody = provenance.provenance(session, "catalog", code)
        if i >= min(warmup, len(codes)):
            out.append((time.perf_counter() - t0) * 1000)
        if found is None or custody is None:
            raise LookupError(f"catalog {code!r} is not in {url}")
    return out


def sample_codes(url: str, count: int) -> list[str]:
    """``count`` catalog codes spread over every catalog of the index at ``url`` (deterministic: every 7919th
    modulo the number of catalogs, ordered by code), so real and synthetic catalogs are asked alike."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            codes = [str(c) for (c,) in conn.exec_driver_sql("SELECT code FROM catalogs ORDER BY code")]
    finally:
        engine.dispose()
    if not codes:
        raise ValueError(f"{url}: no catalogs")
    return [codes[(i * 7919) % len(codes)] for i in range(count)]


@dataclass(frozen=True)
class HttpLatency:
    """Audit latency over HTTP: ``latencies_ms`` of every timed request (ms), ``wall_s`` seconds for all of them,
    the ``server`` command line, ``workers`` server processes and ``clients`` client processes."""

    latencies_ms: list[float]
    wall_s: float
    server: str
    workers: int
    clients: int


@contextmanager
def read_only_api(url: str, home: Path, workers: int) -> Iterator[str]:
    """``dirchain api --read-only --workers N --database-url URL`` on a free loopback port, waited for until its
    ``/health`` answers 200 (at most 60 s); yields its base URL and stops it after. ``home``: its
    ``DIRCHAIN_HOME``. Raises RuntimeError if it does not start."""
    from chain.node import free_port

    port = free_port()
    env = {**os.environ, "DIRCHAIN_HOME": str(home), "DIRCHAIN_HOST": "127.0.0.1", "DIRCHAIN_PORT": str(port)}
    api = subprocess.Popen([sys.executable, "-m", "dirchain", "api", "--read-only", "--workers", str(workers),
                            "--database-url", url], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(base, "/health")[0] == 200:
                    break
            except OSError:
                pass
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the read-only API did not start (exit {api.poll()})")
            time.sleep(0.2)
        yield base
    finally:
        api.terminate()
        try:
            api.wait(timeout=30)
        except subprocess.TimeoutExpired:
            api.kill()


def _get(base: str, path: str) -> tuple[int, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def http_client(base: str, codes: list[str]) -> list[float]:
    """One HTTP client (run it in its own process): ``GET /catalogs/{code}/provenance`` for each code in turn
    over one keep-alive connection (the standard library's ``http.client``: the lightest client, so that the
    clients take as little as possible of the CPU the server needs); latencies in ms. Raises RuntimeError on
    any answer but 200."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    out = []
    try:
        for code in codes:
            t0 = time.perf_counter()
            conn.request("GET", f"/catalogs/{quote(code, safe='/')}/provenance")
            reply = conn.getresponse()
            body = reply.read()
            out.append((time.perf_counter() - t0) * 1000)
            if reply.status != 200:
                raise RuntimeError(f"GET /catalogs/{code}/provenance: HTTP {reply.status}: {body[:300]!r}")
    finally:
        conn.close()
    return out


def http_latencies(url: str, home: Path, codes: list[str], workers: int = 2, clients: int = 8) -> HttpLatency:
    """The audit query over HTTP: :func:`read_only_api` with ``workers`` processes on the index at ``url``, and
    ``clients`` client processes (spawned, :func:`http_client`) sharing ``codes`` — after one untimed warm-up
    pass of ``clients`` codes each."""
    spawn = multiprocessing.get_context("spawn")
    with read_only_api(url, home, workers) as base, ProcessPoolExecutor(max_workers=clients, mp_context=spawn) as pool:
        list(pool.map(http_client, [base] * clients, [codes[:clients]] * clients))  # warm up, start the processes
        started = time.monotonic()
        shares = list(pool.map(http_client, [base] * clients, [codes[i::clients] for i in range(clients)]))
        wall = time.monotonic() - started
    return HttpLatency(latencies_ms=[ms for share in shares for ms in share], wall_s=wall,
                       server=f"dirchain api --read-only --workers {workers}", workers=workers, clients=clients)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grow a copy of an index with synthetic events (no chain); "
                                                 "or, with --latency, time the audit query on an index.")
    parser.add_argument("source", type=Path, help="SQLite index to copy (with --latency: the index to time)")
    parser.add_argument("target", type=Path, nargs="?", help="SQLite file to write (replaced)")
    parser.add_argument("--events", type=int, default=1_000_000, help="rows wanted in chain_events")
    parser.add_argument("--json", type=Path, default=None, help="also write what was done as JSON to this file")
    parser.add_argument("--latency", type=int, metavar="REQUESTS", default=None,
                        help="time REQUESTS audit queries on SOURCE, in process and over HTTP; grow nothing")
    parser.add_argument("--workers", type=int, default=2, help="read-only API processes (with --latency)")
    parser.add_argument("--clients", type=int, default=8, help="HTTP client processes (with --latency)")
    args = parser.parse_args(argv)
    if args.latency is not None:
        return _latency_main(args.source, args.latency, args.workers, args.clients)
    if args.target is None:
        parser.error("TARGET is required unless --latency is given")
    last = [0.0]

    def report(done: int, wanted: int) -> None:
        if time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            print(f"{done:,} / {wanted:,} events", flush=True)

    growth = grow_index(args.source, args.target, args.events, report)
    print(json.dumps(asdict(growth), indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(growth)), encoding="utf-8")
    return 0


def _latency_main(index: Path, requests: int, workers: int, clients: int) -> int:
    url = f"sqlite:///{index.resolve()}"
    codes = sample_codes(url, requests)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        local = pool.submit(audit_latencies, url, codes).result()
    with tempfile.TemporaryDirectory(prefix="dirchain-audit-") as home:
        remote = http_latencies(url, Path(home), codes, workers, clients)
    print(json.dumps({
        "events": _count_events(url), "requests": requests,
        "in_process_p50_ms": round(statistics.median(local), 2),
        "in_process_p99_ms": round(_percentile(local, 0.99), 2),
        "http_server": remote.server, "http_clients": remote.clients,
        "http_p50_ms": round(statistics.median(remote.latencies_ms), 2),
        "http_p99_ms": round(_percentile(remote.latencies_ms, 0.99), 2),
        "http_rps": round(len(remote.latencies_ms) / remote.wall_s),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
