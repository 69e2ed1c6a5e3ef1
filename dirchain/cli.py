"""``dirchain``: the one command-line entry point (Typer).

``dirchain up [--demo]`` runs chain, contracts, indexer and API in the foreground;
``dirchain api --read-only --workers N`` serves the index's reads from N processes;
``dirchain load PATH`` registers a directory file (and its sharing requests) through the API;
``dirchain status`` prints chain head, indexer cursor and counts; ``dirchain kpis`` prints the
sharing KPIs against the 2025 targets, from the API or from a chain RPC endpoint alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from functools import partial
from pathlib import Path
from typing import Annotated

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from chain.artifacts import PROJECT_ROOT
from dirchain.serving import serve
from dirchain.settings import settings

app = typer.Typer(help="Directory chain: data resource catalogs and information systems on an EVM chain.",
                  no_args_is_help=True, add_completion=False)
console = Console()

#: The real input shipped with the project (a copy of shared/data/beijing-seed-directory.json).
SEED_FILE = PROJECT_ROOT / "data" / "beijing-seed-directory.json"
#: The seed's sharing requests (every path of the sharing workflow), loaded after the seed.
SEED_SHARING_FILE = PROJECT_ROOT / "data" / "beijing-seed-sharing.json"


def _load(path: Path, api_url: str, sharing_path: Path | None = None, workers: int = 8,
          summary_json: Path | None = None) -> bool:
    """Load ``path`` and then the sharing requests of ``sharing_path`` (default: the sharing file next to
    ``path``, see :func:`registry.loader.sharing_file_for`) through the API at ``api_url`` with a
    progress bar; prints the summary (and writes it as JSON to ``summary_json``, see
    :meth:`registry.loader.LoadSummary.as_json`); True if all went in."""
    from registry.keystore import Keystore
    from registry.loader import DirectoryLoader, read_sharing, sharing_file_for
    from registry.seed import directory_counts, read_directory

    s = settings()
    directory = read_directory(path)
    sharing_path = sharing_path or sharing_file_for(path)
    sharing = read_sharing(sharing_path) if sharing_path is not None else []
    counts = [f"{v} {k}" for k, v in directory_counts(directory).items()]
    if sharing:
        counts.append(f"{len(sharing)} sharing requests ({sharing_path.name if sharing_path else ''})")
    console.print(f"loading {path.name}: " + ", ".join(counts))
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=max(total, 1))
            progress.update(tasks[phase], completed=done if total else 1, total=max(total, 1))

        loader = DirectoryLoader(api_url, Keystore(s.home / "keys", s.keystore_password), deadline_s=s.deadline_s,
                                 workers=workers, progress=on_progress)
        summary = loader.load(directory, sharing)
    table = Table("phase", "added", "updated", "unchanged", "failed", "seconds", title="load summary")
    for phase, p in summary.phases.items():
        table.add_row(phase, str(p.added), str(p.updated), str(p.unchanged), str(len(p.failed)), f"{p.seconds:.1f}")
        if phase == "catalogs" and summary.sync_wait_s:
            table.add_row("(tier sync before sharing)", "", "", "", "", f"{summary.sync_wait_s:.1f}")
    console.print(table)
    if summary_json is not None:
        summary_json.write_text(json.dumps(summary.as_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    for phase, p in summary.phases.items():
        for code, status, detail in p.failed:
            console.print(f"[red]{phase} {code}: HTTP {status}: {detail}[/red]")
    return summary.ok


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="also load the shipped Beijing seed directory through the API")] = False,
    district_chain: Annotated[bool, typer.Option(help="run the districts' and streets' directories on a second "
                                                      "embedded anvil (port DIRCHAIN_ANVIL_PORT + 1)")] = False,
) -> None:
    """Start the chains (embedded anvil unless DIRCHAIN_RPC_URL / DIRCHAIN_DISTRICT_RPC_URL), deploy the
    contracts if needed, run the indexers and the tier sync and serve the API on DIRCHAIN_HOST:DIRCHAIN_PORT
    until interrupted (Ctrl-C)."""
    from api.app import create_app
    from dirchain.service import start_service

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    s = settings()
    if district_chain:
        s = dataclasses.replace(s, district_chain=True)
    service = start_service(s)
    for chain in service.chains.values():
        where = "embedded anvil" if chain.node is not None else chain.rpc.url
        console.print(f"{chain.name} chain {chain.chain_id} ({where}): DirectoryFactory at {chain.factory}")
    mode = "one directory for every jurisdiction" if s.single else "a directory per jurisdiction, synced up"
    console.print(f"{mode}; contracts {'deployed now' if service.deployed_now else 'already deployed'}; "
                  f"index {s.database_url}")
    server = uvicorn.Server(uvicorn.Config(create_app(service.services(), s.max_body_bytes), host=s.host,
                                           port=s.port, log_level="warning"))
    if demo:
        def run_demo() -> None:
            while not server.started:
                threading.Event().wait(0.05)
            try:
                _load(SEED_FILE, s.api_url)
            except Exception as exc:
                console.print(f"[red]demo load failed: {exc}[/red]")
            console.print(f"API on {s.api_url} (docs at {s.api_url}/docs); Ctrl-C to stop")

        threading.Thread(target=run_demo, name="demo-load", daemon=True).start()
    else:
        console.print(f"API on {s.api_url} (docs at {s.api_url}/docs); Ctrl-C to stop")
    try:
        server.run()
    finally:
        service.stop()
        console.print("stopped; chain state and index kept under " + str(s.home))


@app.command()
def api(
    read_only: Annotated[bool, typer.Option("--read-only", help="serve the reads of the index only (required: the "
                                                               "full API runs inside `dirchain up`)")] = False,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="uvicorn worker processes (default "
                                                                   "DIRCHAIN_API_WORKERS, else 1)")] = None,
    database_url: Annotated[str | None, typer.Option(help="the index to serve (default DIRCHAIN_DATABASE_URL)")]
    = None,
    host: Annotated[str | None, typer.Option(help="listen address (default DIRCHAIN_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (default DIRCHAIN_PORT)")] = None,
) -> None:
    """Serve a read-only replica of the API from an index: catalogs, systems, provenance, audit history /
    custody / changes / access, jurisdictions, departments, sharing requests, grants and KPIs, with ``--workers``
    uvicorn processes and no chain connection. Submissions and what needs a chain answer 503 problem+json
    (``read-only-replica``). Runs until interrupted (Ctrl-C)."""
    import os

    if not read_only:
        console.print("[red]`dirchain api` serves a read-only replica: give --read-only (the full API, with "
                      "submissions, runs inside `dirchain up`)[/red]")
        raise typer.Exit(2)
    if database_url is not None:
        os.environ["DIRCHAIN_DATABASE_URL"] = database_url  # read by every worker process's app factory
        settings.cache_clear()  # and by this process's, which serves alone with one worker
    s = settings()
    count = workers if workers is not None else s.api_workers
    where_host, where_port = host or s.host, port or s.port
    console.print(f"read-only API on http://{where_host}:{where_port} with {count} worker(s); index "
                  f"{database_url or s.database_url}; Ctrl-C to stop")
    serve(uvicorn.Config("api.app:read_only_app", factory=True, host=where_host, port=where_port, workers=count,
                         log_level="warning"))


@app.command()
def load(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="directory file shaped like the seed")],
    api: Annotated[str | None, typer.Option(help="API base URL (default http://DIRCHAIN_HOST:DIRCHAIN_PORT)")] = None,
    sharing: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                 help="sharing requests file (default: <name>-sharing.json next to "
                                                      "<name>-directory.json, if any)")] = None,
    workers: Annotated[int, typer.Option(min=1, max=256, help="concurrent API requests")] = 8,
    summary_json: Annotated[Path | None, typer.Option(dir_okay=False, help="also write the summary (counts and "
                                                      "seconds per phase) as JSON to this file")] = None,
) -> None:
    """Register a directory file through the API — jurisdictions, departments, keys, systems, catalogs,
    then its sharing requests — each record signed by its department's key from the keystore under
    DIRCHAIN_HOME."""
    ok = _load(path, api or settings().api_url, sharing, workers, summary_json)
    raise typer.Exit(0 if ok else 1)


@app.command()
def status(
    api: Annotated[str | None, typer.Option(help="API base URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw health document")] = False,
) -> None:
    """Print chain head, indexer cursor, lag and record counts of a running service."""
    url = api or settings().api_url
    try:
        health = httpx.get(f"{url}/health", timeout=10).json()
    except httpx.HTTPError as exc:
        console.print(f"[red]no service at {url}: {exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        console.print_json(json.dumps(health))
        return
    table = Table("field", "value", title=f"dirchain at {url}")
    for key in ("status", "indexer_error", "pending_submissions"):
        table.add_row(key, str(health.get(key)))
    for chain in health.get("chains", []):
        table.add_row(f"{chain['name']} chain {chain['chain_id']}",
                      f"head {chain['head']}, indexed to {chain['cursor']} (lag {chain['lag_blocks']} blocks, "
                      f"{chain['confirmations']} confirmations)")
    for key, value in health.get("counts", {}).items():
        table.add_row(f"count: {key}", str(value))
    console.print(table)
    children = health.get("children", [])
    if children:
        lag = Table("child directory", "tier", "chain", "lag (blocks)", "lag (s)", "relayed", "failing", "error",
                    title="tier sync: lag per child")
        for c in children:
            lag.add_row(c["jurisdiction"], c["tier"], str(c["chain_id"]), str(c["blocks"]), str(c["seconds"]),
                        str(c["relayed"]), str(c["failing"]), c["error"] or "")
        console.print(lag)


def _percent(ratio: dict[str, object]) -> str:
    value = ratio.get("value")
    text = "—" if not isinstance(value, int | float) else f"{value * 100:.1f} %"
    met = ratio.get("met")
    mark = "" if met is None else ("[green]met[/green]" if met else "[red]not met[/red]")
    return f"{text} ({ratio['numerator']}/{ratio['denominator']}) {mark}".strip()


@app.command()
def kpis(
    api: Annotated[str | None, typer.Option(help="API base URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw KPI document")] = False,
    rpc: Annotated[str | None, typer.Option(help="compute from this chain RPC endpoint alone (no API, no database)")]
    = None,
    directory: Annotated[str | None, typer.Option(help="with --rpc: the Directory contract address")] = None,
    from_block: Annotated[int, typer.Option(help="with --rpc: first block to read (the deployment block)")] = 0,
) -> None:
    """Print the sharing KPIs — unconditional-share rate, share-demand satisfaction rate, open-department
    ratio — overall and per jurisdiction, each against its 2025 target (met / not met).

    By default asks a running service (GET /kpis, computed from its index); with --rpc and --directory
    folds the Directory's logs from the chain itself, as an auditor would."""
    from registry.kpis import KPI_NAMES

    if rpc is not None:
        if directory is None:
            console.print("[red]--rpc needs --directory ADDRESS[/red]")
            raise typer.Exit(2)
        from chain.abi import ContractCodec
        from chain.artifacts import load_artifact
        from chain.logs import LogFetcher
        from chain.rpc import Rpc
        from registry.kpis import kpis_from_chain

        client = Rpc(rpc)
        try:
            fetcher = LogFetcher.from_rpc(client, directory)
            report = kpis_from_chain(fetcher, ContractCodec(load_artifact("Directory").abi), from_block=from_block)
        finally:
            client.close()
        doc = report.as_dict()
        where = f"chain {rpc}, Directory {directory}"
    else:
        url = api or settings().api_url
        try:
            reply = httpx.get(f"{url}/kpis", timeout=30)
            reply.raise_for_status()
        except httpx.HTTPError as exc:
            console.print(f"[red]no KPIs from {url}: {exc}[/red]")
            raise typer.Exit(2) from exc
        doc = reply.json()
        where = url
    if as_json:
        console.print_json(json.dumps(doc, ensure_ascii=False))
        return
    titles = {"unconditional_share_rate": "unconditional share", "share_demand_satisfaction_rate": "demand satisfied",
              "open_department_ratio": "open departments"}
    targets = doc["targets"]
    heads = [f"{titles[n]} (≥ {float(targets[n]) * 100:.0f} %)" for n in KPI_NAMES]
    table = Table("scope", *heads, title=f"sharing KPIs, 2025 targets ({where})")
    table.add_row("overall", *(_percent(doc["overall"][n]) for n in KPI_NAMES))
    for j in doc["jurisdictions"]:
        table.add_row(f"{j['code']} {j['name']} ({j['tier']})", *(_percent(j[n]) for n in KPI_NAMES))
    console.print(table)
    console.print(f"targets: {doc['targets_source']}")


@app.command()
def sync(
    child_rpc: Annotated[str, typer.Option(help="JSON-RPC URL of the child directory's chain")],
    child_directory: Annotated[str, typer.Option(help="address of the child directory")],
    parent_rpc: Annotated[str, typer.Option(help="JSON-RPC URL of the parent directory's chain")],
    parent_directory: Annotated[str, typer.Option(help="address of the parent directory")],
    confirmations: Annotated[int, typer.Option(help="child blocks left unread below its head")] = 0,
    start_block: Annotated[int, typer.Option(help="first child block when there is no checkpoint")] = 0,
    follow: Annotated[bool, typer.Option(help="keep relaying until interrupted")] = False,
    interval: Annotated[float, typer.Option(help="seconds between passes with --follow")] = 2.0,
    relayer: Annotated[str, typer.Option(help="keystore label of the relayer key the parent authorised")] = "sync",
) -> None:
    """Relay a child directory's confirmed records to its parent (the municipal chain integration job): one pass,
    or continuously with --follow. Checkpoints live in DIRCHAIN_DATABASE_URL; a refused record is reported
    with its origin and reason and does not stop the others. Exits 1 if any record was refused."""
    import time

    from eth_utils import to_checksum_address

    from chain.directory import DirectoryClient
    from chain.journal import FileJournal
    from chain.logs import LogFetcher
    from chain.rpc import Rpc
    from chain.sender import TxSender
    from registry.db import make_engine, migrate, session_factory
    from registry.errors import ReorgDetected
    from registry.keystore import Keystore
    from registry.sync import RelayJob

    s = settings()
    child_rpc_client, parent_rpc_client = Rpc(child_rpc), Rpc(parent_rpc)
    child_chain = int(child_rpc_client.call("eth_chainId", []), 16)
    parent_chain = int(parent_rpc_client.call("eth_chainId", []), 16)
    account = Keystore(s.home / "keys", s.keystore_password).account(relayer)
    journal = FileJournal(s.home / "journal" / f"{parent_chain}-{account.address}.jsonl")
    parent = DirectoryClient(parent_rpc_client, parent_directory, parent_chain,
                             TxSender(parent_rpc_client, account, journal, parent_chain))
    migrate(s.database_url)
    job = RelayJob(LogFetcher.from_rpc(child_rpc_client, to_checksum_address(child_directory)), parent.codec,
                   child_chain, child_directory, parent, session_factory(make_engine(s.database_url)),
                   confirmations=confirmations, start_block=start_block)
    console.print(f"relaying {child_chain}:{job.directory} → {parent_chain}:{parent.address} as {account.address}")
    refused = False
    while True:
        try:
            with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
                task = bar.add_task("child blocks", total=None)
                report = job.run_once(progress=partial(_advance, bar, task))
        except ReorgDetected as exc:
            console.print(f"[red]reorganisation deeper than {confirmations} confirmations: {exc}; "
                          "nothing applied[/red]")
            raise typer.Exit(2) from exc
        console.print(report.summary())
        for item in report.failed:
            refused = True
            console.print(f"[red]refused {item.what} from {item.origin}: {item.reason} (attempt {item.attempts})[/red]")
        if not follow:
            break
        time.sleep(interval)
    raise typer.Exit(1 if refused else 0)


def _advance(bar: Progress, task: TaskID, done: int, total: int) -> None:
    bar.update(task, completed=done, total=max(total, 1))


# Commands kept in their own modules (audit evidence and verification; the Beijing-scale generator).
from dirchain.cli_audit import register as _register_audit  # noqa: E402
from dirchain.cli_generate import register as _register_generate  # noqa: E402

_register_audit(app)
_register_generate(app)
from dirchain.cli_report import register as _register_report  # noqa: E402

_register_report(app)
