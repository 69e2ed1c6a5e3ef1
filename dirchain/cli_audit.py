"""``dirchain evidence`` and ``dirchain verify``: an auditor's commands, against a chain RPC alone or offline.

``dirchain evidence CODE --rpc URL --directory ADDRESS [--kind catalog|system] [--version N] [--out FILE]``
writes the evidence bundle of a version (:func:`registry.evidence.build_bundle`); ``dirchain verify FILE
[--trusted-block-hash H] [--rpc URL] [--directory ADDRESS]`` checks a bundle (offline with a trusted block
hash, or anchored in an RPC) or, for a plain record document, whether it is a committed version
(:func:`registry.evidence.verify_document`, needs ``--rpc`` and ``--directory``). Both exit 0 on success,
1 when a check fails (naming the first failed check) and 2 for unusable input. Neither needs the API, the
database or the keystore. :func:`register` adds them to the main Typer app.
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
    path: Annotated[Path, typer.Argument(help="an evidence bundle, or a record document (JSON)")],
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC endpoint to anchor in (needed for a document)")] = None,
    directory: Annotated[str | None, typer.Option(help="Directory address (needed for a document)")] = None,
    trusted_block_hash: Annotated[str | None, typer.Option(help="a block hash you trust (0x-hex)")] = None,
    kind: Annotated[RecordKind | None, typer.Option(help="kind of a document (default: from its fields)")] = None,
) -> None:
    """Verify an evidence bundle (offline with --trusted-block-hash) or whether a document is committed."""
    from chain.rpc import Rpc

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


def register(app: typer.Typer) -> None:
    """Add the ``evidence`` and ``verify`` commands to ``app``."""
    app.command("evidence")(evidence)
    app.command("verify")(verify)
