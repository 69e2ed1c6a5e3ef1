"""``dirchain audit-report JURISDICTION``: an auditor's report of one jurisdiction, read from the SQL index.

``dirchain audit-report 西城区 [--database URL] [--out DIR] [--rpc URL …] [--factory ADDRESS …]`` writes
``<DIR>/audit-<slug>.html`` (one self-contained page: inline CSS and SVG charts, no script, renders offline) and
``<DIR>/audit-<slug>.json`` (the same figures) for the jurisdiction (code or name) and every jurisdiction below
it: coverage of the directory per tier, history of changes with a timeline, sharing KPIs against the 2025 targets
and drift findings (:mod:`registry.report`). The database is only read (no migration, no write).

Drift is checked only when chains are given: each ``--rpc`` is one chain (the city's first), rebuilt from its
DirectoryFactory — ``--factory`` in the same position, else the factory the index's cursor names for that chain
(the report says which) — following the directories the index lists as made on that chain, and compared with the
index row by row (:func:`registry.drift.drift_report`). Without ``--rpc`` the report says plainly that drift was
not checked.

Exit status: 0 report written (no drift found, or not checked); 1 report written but drift was found or the drift
check could not be completed; 2 nothing written (unknown or ambiguous jurisdiction, unreadable database).
:func:`register` adds the command to the main Typer app.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _shown_url(url: str) -> str:
    """``url`` without its password (for the report)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL fails later with a proper message
        return url


def _sources(session: Any, rpcs: list[str], factories: list[str]) -> tuple[list[Any], list[dict[str, Any]], str | None]:
    """The :class:`registry.drift.ChainSource` of each ``--rpc`` (with its ``--factory`` by position), their
    description for the report, and an error (None when every chain could be described)."""
    from eth_utils import is_address, to_checksum_address
    from sqlalchemy import select

    from chain.rpc import Rpc
    from registry.db import Cursor, DirectoryRow, JurisdictionRow
    from registry.drift import ChainSource

    sources: list[Any] = []
    described: list[dict[str, Any]] = []
    for i, url in enumerate(rpcs):
        rpc = Rpc(url, timeout_s=30.0)
        try:
            chain_id = int(rpc.call("eth_chainId", []), 16)
        except Exception as exc:
            rpc.close()
            described.append({"rpc": url, "chain_id": None, "name": "", "factory": None, "factory_from": None,
                              "creators": []})
            return sources, described, f"chain at {url} does not answer: {type(exc).__name__}: {exc}"
        rows = session.execute(
            select(DirectoryRow.factory, DirectoryRow.creator, JurisdictionRow.tier)
            .outerjoin(JurisdictionRow, JurisdictionRow.id == DirectoryRow.home_id)
            .where(DirectoryRow.chain_id == chain_id)
        ).all()
        tiers = {tier for _f, _c, tier in rows if tier}
        name = "city" if "city" in tiers else "district" if tiers else ""
        creators = sorted({creator for _f, creator, _t in rows})
        if i < len(factories):
            if not is_address(factories[i]):
                rpc.close()
                return sources, described, f"--factory {factories[i]!r} is not an address"
            factory, origin = to_checksum_address(factories[i]), "given"
        else:
            made_by = {f for f, _c, _t in rows}
            cursors = [c.address for c in session.scalars(select(Cursor).where(Cursor.chain_id == chain_id))]
            named = [a for a in cursors if a in made_by] or cursors
            if len(named) != 1:
                rpc.close()
                described.append({"rpc": url, "chain_id": chain_id, "name": name, "factory": None,
                                  "factory_from": None, "creators": creators})
                return sources, described, (f"the index names {len(named)} factories for chain {chain_id}; give "
                                            "--factory for it")
            factory, origin = named[0], "from the index's cursor"
        described.append({"rpc": url, "chain_id": chain_id, "name": name, "factory": factory,
                          "factory_from": origin, "creators": creators})
        sources.append(ChainSource(rpc, chain_id, factory, frozenset(creators), 0, name))
    return sources, described, None


def audit_report(
    jurisdiction: Annotated[str, typer.Argument(help="jurisdiction code or name, e.g. 110102 or 西城区")],
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the index (default: "
                                                      "DIRCHAIN_DATABASE_URL)")] = None,
    out: Annotated[Path, typer.Option(help="folder to write audit-<jurisdiction>.html and .json into")] = Path("."),
    rpc: Annotated[list[str] | None, typer.Option(help="a chain's JSON-RPC endpoint to check drift against; repeat "
                                                       "per chain, the city's first")] = None,
    factory: Annotated[list[str] | None, typer.Option(help="DirectoryFactory of the --rpc in the same position "
                                                           "(default: the one the index's cursor names)")] = None,
) -> None:
    """Write the audit report (HTML and JSON) of a jurisdiction and those below it, from the SQL index."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from dirchain.settings import settings
    from registry.db import make_engine, session_factory
    from registry.report import ReportError, build_report, render_html, slug

    url = database or settings().database_url
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise _fail(f"audit-report: not a database URL: {url!r}: {exc}", 2) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        raise _fail(f"audit-report: no index at {parsed.database} (give --database or DIRCHAIN_DATABASE_URL)", 2)
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("jurisdictions"):
            raise _fail(f"audit-report: {_shown_url(url)} holds no dirchain index (no table jurisdictions)", 2)
        sessions = session_factory(engine)
        drift: dict[str, Any] | None = None
        if rpc:
            drift = _drift(sessions, list(rpc), list(factory or []))
        with sessions() as session:
            try:
                report = build_report(session, jurisdiction, generated_at=int(time.time()),
                                      database=_shown_url(url), drift=drift)
            except ReportError as exc:
                raise _fail(f"audit-report: {exc}", 2) from exc
    except SQLAlchemyError as exc:
        raise _fail(f"audit-report: cannot read the index {_shown_url(url)}: {type(exc).__name__}: {exc}", 2) from exc
    finally:
        engine.dispose()

    out.mkdir(parents=True, exist_ok=True)
    base = out / f"audit-{slug(report['jurisdiction']['code'])}"
    html_path, json_path = base.with_suffix(".html"), base.with_suffix(".json")
    page = render_html(report)
    html_path.write_text(page, encoding="utf-8")
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    j = report["jurisdiction"]
    typer.echo(f"wrote {html_path} ({len(page.encode('utf-8'))} bytes) and {json_path}: {j['name']} {j['code']}, "
               f"{len(report['scope'])} jurisdictions, {len(report['history']['events'])} events, "
               f"{len(report['coverage']['gaps'])} coverage gaps")
    d = report["drift"]
    if d.get("checked"):
        typer.echo(f"drift: {len(d['findings'])} findings" if d["findings"] else "drift: none found")
        raise typer.Exit(1 if d["findings"] else 0)
    typer.echo(f"drift: {'FAILED' if d.get('failed') else 'not checked'}: {d['reason']}", err=bool(d.get("failed")))
    raise typer.Exit(1 if d.get("failed") else 0)


def _drift(sessions: Any, rpcs: list[str], factories: list[str]) -> dict[str, Any]:
    """The drift section: :func:`registry.drift.drift_report` of the index against the chains ``rpcs``, in a
    session of its own (its transaction is the snapshot compared), or the failure's description."""
    from registry.drift import DriftError, drift_report
    from registry.report import drift_failed, drift_section

    with sessions() as session:
        sources, described, error = _sources(session, rpcs, factories)
    try:
        if error is not None:
            return drift_failed(error, described)
        with sessions() as session:
            try:
                result = drift_report(session, sources)
            except DriftError as exc:
                return drift_failed(str(exc), described)
        return drift_section(result, described)
    finally:
        for src in sources:
            src.rpc.close()


def register(app: typer.Typer) -> None:
    """Add the ``audit-report`` command to ``app``."""
    app.command("audit-report")(audit_report)
