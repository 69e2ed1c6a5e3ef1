"""``dirchain evidence`` and ``dirchain verify``: an auditor's commands, against a chain RPC alone or offline.

``dirchain evidence CODE --rpc URL --directory ADDRESS [--kind catalog|system] [--version N] [--out FILE]``
writes the evidence bundle of a version (:func:`registry.evidence.build_bundle`); ``dirchain verify FILE
[--trusted-block-hash H] [--rpc URL] [--directory ADDRESS]`` checks a bundle (offline with a trusted block
hash, or anchored in an RPC) or, for a plain record document, whether it is a committed version
(:func:`registry.evidence.verify_document`, needs ``--rpc`` and ``--directory``). Both exit 0 on success,
1 when a check fails (naming the first failed check) and 2 for unusable input. Neither needs the API, the
database or the keystore. :func:`register` adds them to the main Typer app.

``dirchain verify --database URL --chain RPC_URL,FACTORY,CREATOR[,START_BLOCK] [--chain …]`` verifies a whole
index instead: it rebuilds the index from the chains alone (each DirectoryFactory's directories made for
CREATOR, the service's relayer key, from START_BLOCK, default 0) up to the block the database's cursor reached
and compares every derived table row by row (:func:`registry.drift.drift_report`), printing its numbered plan
and exiting 1 with the first finding (``catalog_versions (301001/XC01, 2).digest: expected 0x…, got 0x…``).
Give the city (municipal) chain first: chains are re-read in block-timestamp order, ties in the order given.
It needs the database and the chains' RPC endpoints, not the API or the keystore.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


class RecordKind(StrEnum):
    """Kind of record a bundle or document is about."""

    catalog = "catalog"
    system = "system"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def evidence(
    code: Annotated[str, typer.Argument(help="catalog or system code, e.g. 301001/XC0001")],
    rpc: Annotated[str, typer.Option(help="JSON-RPC endpoint of the directory's chain")],
    directory: Annotated[str, typer.Option(help="address of the Directory contract")],
    kind: Annotated[RecordKind, typer.Option(help="record kind")] = RecordKind.catalog,
    version: Annotated[int | None, typer.Option(help="version (default: the latest event of the code)")] = None,
    retirement: Annotated[bool, typer.Option(help="the retirement event at --version")] = False,
    out: Annotated[Path | None, typer.Option(help="write the bundle here (default: standard output)")] = None,
) -> None:
    """Write the evidence bundle of one catalog or system version, read from the chain RPC alone."""
    from chain.rpc import Rpc
    from registry.evidence import BundleBuildError, build_bundle, dump_bundle

    client = Rpc(rpc)
    try:
        bundle = build_bundle(client, directory, kind.value, code, version, retirement=retirement)
    except BundleBuildError as exc:
        raise _fail(f"evidence: {exc}", 1) from exc
    finally:
        client.close()
    text = dump_bundle(bundle)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        block = int(bundle["block"]["number"], 16)
        typer.echo(f"wrote {out} ({len(text.encode('utf-8'))} bytes): {kind.value} {code} version "
                   f"{bundle['version']}, block {block} {bundle['block']['hash']}", err=True)


def verify(
    path: Annotated[Path | None, typer.Argument(help="an evidence bundle, or a record document (JSON)")] = None,
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC endpoint to anchor in (needed for a document)")] = None,
    directory: Annotated[str | None, typer.Option(help="Directory address (needed for a document)")] = None,
    trusted_block_hash: Annotated[str | None, typer.Option(help="a block hash you trust (0x-hex)")] = None,
    kind: Annotated[RecordKind | None, typer.Option(help="kind of a document (default: from its fields)")] = None,
    database: Annotated[str | None, typer.Option(help="verify a whole index: its SQLAlchemy URL, e.g. "
                                                      "sqlite:///.dirchain/index.sqlite (with --chain)")] = None,
    chain: Annotated[list[str] | None, typer.Option(
        "--chain", help="a chain the index was built from: RPC_URL,FACTORY,CREATOR[,START_BLOCK] (repeat for each "
                        "chain, the city's first)")] = None,
) -> None:
    """Verify an evidence bundle (offline with --trusted-block-hash), whether a document is committed, or (with
    --database and --chain) a whole index against the chains it was built from."""
    from chain.rpc import Rpc

    if database is not None or chain:
        if path is not None:
            raise _fail("verify: give either a FILE or --database with --chain, not both", 2)
        _verify_database(database, chain or [])
        return
    if path is None:
        raise _fail("verify: expected a FILE (bundle or document), or --database URL with --chain", 2)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"verify: cannot read {path} as JSON: {exc}", 2) from exc
    client = Rpc(rpc) if rpc else None
    try:
        if _is_bundle(data):
            _verify_bundle(data, trusted_block_hash, client)
        else:
            if client is None or directory is None:
                raise _fail("verify: a document is checked against the chain: give --rpc and --directory", 2)
            _verify_document(client, directory, kind.value if kind else None, data)
    finally:
        if client is not None:
            client.close()


def _is_bundle(data: Any) -> bool:
    """A bundle (checked by the plan, which rejects a foreign format at check 1) rather than a record document
    (whose own ``format`` field is the resource format: a catalog has one too)."""
    from registry.evidence import FORMAT

    if not isinstance(data, dict):
        return False
    stated = data.get("format")
    family = FORMAT.split("/")[0] + "/"
    return (isinstance(stated, str) and stated.startswith(family)) or ("proof" in data and "block" in data)


def _verify_bundle(bundle: dict[str, Any], trusted: str | None, client: Any) -> None:
    from registry.evidence import verify_bundle

    result = verify_bundle(bundle, trusted_block_hash=trusted, rpc=client)
    for check in result.checks:
        if check.passed:
            typer.echo(f"ok   check {check.number} {check.name}: {check.detail}")
    if result.failure is not None:
        raise _fail(f"FAIL {result.failure}", 1)
    f = result.facts
    typer.echo(f"verified: {f['kind']} {f['code']} version {f['version']} signed by {f['signer']}, tx {f['tx_hash']}, "
               f"block {f['block_number']} {f['block_hash']}, log {f['log_index']} "
               f"({result.elapsed_ms:.1f} ms)")


def _verify_document(client: Any, directory: str, kind: str | None, document: Any) -> None:
    from registry.evidence import verify_document

    result = verify_document(client, directory, kind, document)
    if not result.ok:
        typer.echo(f"FAIL {result.failure}", err=True)
        for diff in result.differences[1:]:
            typer.echo(f"     also {diff}", err=True)
        raise typer.Exit(1)
    typer.echo(f"committed: {result.kind} {result.code} version {result.version} ({result.status}), signed by "
               f"{result.signer}, tx {result.tx_hash}, block {result.block_number} {result.block_hash}, "
               f"log {result.log_index}")


def _parse_chain(spec: str) -> tuple[str, str, str, int]:
    """``RPC_URL,FACTORY,CREATOR[,START_BLOCK]`` → (url, factory, creator, start block); exit 2 if malformed."""
    from eth_utils import is_address, to_checksum_address

    parts = [p.strip() for p in spec.split(",")]
    if len(parts) not in (3, 4) or not parts[0]:
        raise _fail(f"verify: --chain expects RPC_URL,FACTORY,CREATOR[,START_BLOCK], got {spec!r}", 2)
    url, factory, creator = parts[:3]
    for what, value in (("FACTORY", factory), ("CREATOR", creator)):
        if not is_address(value):
            raise _fail(f"verify: --chain {what}: expected a 0x address (20 bytes), got {value!r}", 2)
    start = parts[3] if len(parts) == 4 else "0"
    if not start.isdigit():
        raise _fail(f"verify: --chain START_BLOCK: expected a block number, got {start!r}", 2)
    return url, to_checksum_address(factory), to_checksum_address(creator), int(start)


def _verify_database(database: str | None, specs: list[str]) -> None:
    """``dirchain verify --database URL --chain …``: the drift report's numbered plan, printed; exit 1 with the
    first finding or failed check, 2 for unusable input (see the module docstring)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from chain.rpc import Rpc
    from registry.db import make_engine, session_factory
    from registry.drift import CHECKS, ChainSource, DriftError, drift_report

    if not database:
        raise _fail("verify: a whole index is checked against its chains: give --database URL", 2)
    if not specs:
        raise _fail("verify: check 1 input: expected at least one --chain RPC_URL,FACTORY,CREATOR, got none", 1)
    parsed = [_parse_chain(spec) for spec in specs]
    try:
        url = make_url(database)
    except ArgumentError as exc:
        raise _fail(f"verify: --database: expected an SQLAlchemy URL, got {database!r}", 2) from exc
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).is_file()):
        raise _fail(f"verify: --database: no SQLite database at {url.database or '(memory)'!r}", 2)
    rpcs = [Rpc(u) for u, _, _, _ in parsed]
    engine = make_engine(database)
    try:
        sources = []
        for i, ((_, factory, creator, start), client) in enumerate(zip(parsed, rpcs, strict=True)):
            try:
                chain_id = int(client.call("eth_chainId", []), 16)
            except Exception as exc:
                raise _fail(f"FAIL check 2 chains: chain {i + 1} at {client.url} does not answer: "
                            f"{type(exc).__name__}: {exc}", 1) from exc
            sources.append(ChainSource(client, chain_id, factory, frozenset({creator}), start, f"#{i + 1}"))
        with session_factory(engine)() as session:
            try:
                report = drift_report(session, sources)
            except DriftError as exc:
                for number, name in CHECKS[: exc.number - 1]:
                    typer.echo(f"ok   check {number} {name}")
                raise _fail(f"FAIL {exc}", 1) from exc
    finally:
        engine.dispose()
        for client in rpcs:
            client.close()
    rows = sum(report.tables.values())
    typer.echo(f"ok   check 1 input: {len(sources)} chain(s), database {url.render_as_string(hide_password=True)}")
    typer.echo("ok   check 2 chains: " + "; ".join(f"chain {c.chain_id} head {c.head}" for c in report.chains))
    typer.echo("ok   check 3 index: " + "; ".join(
        f"chain {c.chain_id} cursor {'none' if c.cursor is None else c.cursor}" for c in report.chains))
    typer.echo("ok   check 4 rebuild: " + "; ".join(
        f"chain {c.chain_id} {c.events} events to block {c.rebuilt_to}" for c in report.chains))
    if report.findings:
        first, *rest = report.findings
        typer.echo(f"FAIL check 5 compare: {first}", err=True)
        for finding in rest[:20]:
            typer.echo(f"     also {finding}", err=True)
        if len(rest) > 20:
            typer.echo(f"     and {len(rest) - 20} more findings", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok   check 5 compare: {rows} rows in {len(report.tables)} tables equal the chains'")
    typer.echo(f"verified: no drift ({report.elapsed_ms:.0f} ms)")


def register(app: typer.Typer) -> None:
    """Add the ``evidence`` and ``verify`` commands to ``app``."""
    app.command("evidence")(evidence)
    app.command("verify")(verify)
