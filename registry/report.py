"""Audit report of one jurisdiction (审计报告): gathered from the SQL index into a JSON-able dict, rendered as one
self-contained HTML page (inline CSS and inline SVG charts; no script, no network: it renders offline).

The report covers a jurisdiction and every jurisdiction below it (its *scope*; for 西城区 110102: the district and
its streets) and has four sections:

* **coverage** — per jurisdiction of the scope and per kind (catalogs, systems, departments): how many records it
  recorded, and how many of them a directory of each tier holds, from the record's own tier up to the city. A
  record is *held* at a tier when a directory whose home is of that tier recorded it or holds a relayed copy of
  it (``relayed_records``) — the rule of ``GET /catalogs?tier=`` (:func:`registry.queries.held_at_tier`), so the
  counts equal that endpoint's totals; it is *current* there when that directory holds its latest version event.
  Records not held (or not current) at a tier that should hold them are listed as ``gaps``.
* **history** — every version event (register / update / retire) of the scope's catalogs and systems, and every
  sharing event (request, then each status transition) of a request whose owning or requesting department is in
  the scope, with chain id, block, transaction, log index and block timestamp (unix seconds), oldest first, and a
  timeline of their counts by block (by day, hour or month when there are too many blocks to draw).
* **kpis** — the sharing KPIs against the 2025 targets, computed by :func:`registry.kpis.compute_kpis` over
  :func:`registry.kpis.facts_from_index` (the very functions behind ``GET /kpis``): the whole directory, the scope
  rolled up (the same function over the scope's facts only) and each jurisdiction of the scope (not rolled up,
  exactly as ``GET /kpis``).
* **drift** — findings of a comparison of the index with the chain (:mod:`registry.drift`) when one was run;
  otherwise the section says plainly that drift was *not checked* and why.

:func:`build_report` gathers (Session → dict); :func:`render_html` renders (dict → str). Times in the dict are
unix seconds (block timestamps) with an ISO 8601 companion in China Standard Time (UTC+8); ratios are in [0, 1].
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import (
    Block,
    CatalogRow,
    CatalogVersionRow,
    ChainEvent,
    Cursor,
    DepartmentRow,
    DirectoryRow,
    JurisdictionRow,
    RelayedRecordRow,
    SharingRequestRow,
    SharingTransitionRow,
    SystemRow,
    SystemVersionRow,
)
from registry.kpis import KPI_NAMES, KpiFacts, compute_kpis, facts_from_index

#: Identifies the JSON's shape.
FORMAT = "dirchain-audit-report/1"
#: Tiers top first, and their rank (0 = city).
TIERS = ("city", "district", "street")
_RANK = {t: i for i, t in enumerate(TIERS)}
#: Record kinds of the coverage section, with their version / copy events in ``relayed_records.event``.
KINDS = ("catalogs", "systems", "departments")
_COPY_EVENTS = {
    "catalogs": ("CatalogVersionRecorded", "CatalogRetired"),
    "systems": ("SystemVersionRecorded", "SystemRetired"),
    "departments": ("DepartmentRegistered",),
}
#: China Standard Time, in which days of the timeline are counted.
CST = timezone(timedelta(hours=8), "UTC+8")
#: Most buckets the timeline draws (by block, else by minute, hour, day — by month however many).
MAX_BUCKETS = 60
#: Time buckets of the timeline, finest first: granularity and ``strftime`` label (UTC+8).
_TIME_BUCKETS = (("minute", "%Y-%m-%d %H:%M"), ("hour", "%Y-%m-%d %H:00"), ("day", "%Y-%m-%d"), ("month", "%Y-%m"))
#: Most history rows and gap rows the HTML page lists (the JSON holds them all).
MAX_HTML_ROWS = 400
ZERO_HOME = "0x" + "00" * 32
ZERO_ADDRESS = "0x" + "00" * 20

KPI_LABELS = {
    "unconditional_share_rate": "Unconditional-share rate 无条件共享比例",
    "share_demand_satisfaction_rate": "Share-demand satisfaction rate 共享需求满足率",
    "open_department_ratio": "Open-department ratio 开放数据部门比例",
}
KIND_LABELS = {"catalogs": "Catalogs 数据资源目录", "systems": "Systems 信息系统", "departments": "Departments 部门"}


class ReportError(ValueError):
    """The report cannot be made: unknown or ambiguous jurisdiction, or an index without it."""


def iso(ts: int | None) -> str | None:
    """ISO 8601 of unix seconds ``ts`` in China Standard Time (UTC+8), None for None."""
    return None if ts is None else datetime.fromtimestamp(ts, CST).isoformat()


def slug(code: str) -> str:
    """File-name form of a jurisdiction code: runs of characters other than letters (any script), digits, ``.``,
    ``_`` and ``-`` become one ``-`` (``110102/月坛街道`` → ``110102-月坛街道``)."""
    return re.sub(r"[^\w.-]+", "-", code).strip("-") or "jurisdiction"


# ---------------------------------------------------------------------------------------- gathering


def resolve_jurisdiction(session: Session, text: str) -> JurisdictionRow:
    """The indexed jurisdiction whose code is ``text`` (``110102``), else whose name is (``西城区``, ``月坛街道``).
    Raises :class:`ReportError` naming the known jurisdictions when none or several match."""
    rows = list(session.scalars(select(JurisdictionRow)))
    wanted = text.strip()
    for r in rows:
        if r.code == wanted:
            return r
    named = [r for r in rows if r.name == wanted]
    if len(named) == 1:
        return named[0]
    known = ", ".join(f"{r.code} {r.name}" for r in sorted(rows, key=lambda r: (_RANK.get(r.tier, 9), r.code)))
    if named:
        raise ReportError(f"jurisdiction {text!r} is ambiguous: {', '.join(r.code for r in named)}; give the code")
    raise ReportError(f"no jurisdiction {text!r} in the index (known: {known or 'none'})")


def _scope(session: Session, root: JurisdictionRow) -> list[JurisdictionRow]:
    """``root`` and every jurisdiction below it: root first, then by tier (top first) and code."""
    rows = list(session.scalars(select(JurisdictionRow)))
    children: dict[str | None, list[JurisdictionRow]] = defaultdict(list)
    for r in rows:
        children[r.parent_id].append(r)
    found, todo, seen = [], [root], {root.id}
    while todo:
        node = todo.pop()
        found.append(node)
        for child in children.get(node.id, []):
            if child.id not in seen:  # the tree is the contract's, but never loop on a bad index
                seen.add(child.id)
                todo.append(child)
    rest = sorted(found[1:], key=lambda r: (_RANK.get(r.tier, 9), r.code))
    return [root, *rest]


def _ancestors(session: Session, row: JurisdictionRow) -> list[dict[str, str]]:
    """``{code, name, tier}`` of the jurisdictions above ``row``, top first."""
    out: list[dict[str, str]] = []
    seen = {row.id}
    parent_id = row.parent_id
    while parent_id is not None and parent_id not in seen:
        seen.add(parent_id)
        parent = session.get(JurisdictionRow, parent_id)
        if parent is None:
            break
        out.append({"code": parent.code, "name": parent.name, "tier": parent.tier})
        parent_id = parent.parent_id
    return out[::-1]


@dataclass(frozen=True)
class _Record:
    """One record of the coverage section: kind, code, name, jurisdiction code and tier, latest version (1 for a
    department), and per tier the versions a directory of that tier holds."""

    kind: str
    code: str
    name: str | None
    jurisdiction: str
    tier: str
    latest: int
    held: dict[str, set[int]]


def _directory_tiers(session: Session) -> dict[tuple[int, str], str | None]:
    """(chain id, address) → tier of the directory's home (None for a zero-home directory or an unknown home)."""
    rows = session.execute(
        select(DirectoryRow.chain_id, DirectoryRow.address, DirectoryRow.home_id, JurisdictionRow.tier)
        .outerjoin(JurisdictionRow, JurisdictionRow.id == DirectoryRow.home_id)
    ).all()
    return {(c, a): (None if home == ZERO_HOME else tier) for c, a, home, tier in rows}


def _coverage_records(session: Session, scope: list[JurisdictionRow]) -> list[_Record]:
    """Every catalog, system and department of the scope with the tiers holding each of its versions."""
    tiers = _directory_tiers(session)
    tier_of = {j.code: j.tier for j in scope}
    code_of = {j.id: j.code for j in scope}
    records: dict[tuple[str, str], _Record] = {}

    def hold(kind: str, code: str, version: int, where: tuple[int, str], own_tier: str) -> None:
        rec = records.get((kind, code))
        if rec is None:
            return
        # a directory without a home (single mode, or one the index does not know) holds at the record's own tier
        tier = tiers.get(where) or own_tier
        rec.held.setdefault(tier, set()).add(version)

    catalogs = session.scalars(select(CatalogRow).where(CatalogRow.jurisdiction_code.in_(list(tier_of)))).all()
    for c in catalogs:
        records[("catalogs", c.code)] = _Record("catalogs", c.code, c.name, c.jurisdiction_code or "",
                                                tier_of[c.jurisdiction_code or ""], c.latest_version, {})
    systems = session.scalars(select(SystemRow).where(SystemRow.jurisdiction_code.in_(list(tier_of)))).all()
    for s in systems:
        records[("systems", s.code)] = _Record("systems", s.code, s.name, s.jurisdiction_code or "",
                                               tier_of[s.jurisdiction_code or ""], s.latest_version, {})
    departments = session.scalars(select(DepartmentRow).where(DepartmentRow.jurisdiction_id.in_(list(code_of)))).all()
    for d in departments:
        code = code_of[d.jurisdiction_id]
        records[("departments", d.code)] = _Record("departments", d.code, d.name, code, tier_of[code], 1, {})

    for kind, versions in (("catalogs", CatalogVersionRow), ("systems", SystemVersionRow)):
        for code, version, chain_id, directory in session.execute(
            select(versions.code, versions.version, versions.chain_id, versions.directory)
        ).all():
            rec = records.get((kind, code))
            if rec is not None:
                hold(kind, code, version, (chain_id, directory), rec.tier)
    # a department's own row is the one indexed where it was registered: its log says which directory that is
    for d_code, chain_id, address in session.execute(
        select(DepartmentRow.code, ChainEvent.chain_id, ChainEvent.address)
        .join(ChainEvent, (ChainEvent.tx_hash == DepartmentRow.tx_hash)
              & (ChainEvent.log_index == DepartmentRow.log_index))
    ).all():
        rec = records.get(("departments", d_code))
        if rec is not None:
            hold("departments", d_code, 1, (chain_id, address), rec.tier)
    events = {ev: kind for kind, evs in _COPY_EVENTS.items() for ev in evs}
    for event, subject, copy_version, chain_id, directory in session.execute(
        select(RelayedRecordRow.event, RelayedRecordRow.subject, RelayedRecordRow.version, RelayedRecordRow.chain_id,
               RelayedRecordRow.directory).where(RelayedRecordRow.event.in_(list(events)))
    ).all():
        kind = events[event]
        rec = records.get((kind, subject))
        if rec is not None:
            # a department has one event (its "version" 1); a version copy without a version number matches none
            version = 1 if kind == "departments" else -1 if copy_version is None else copy_version
            hold(kind, subject, version, (chain_id, directory), rec.tier)
    return sorted(records.values(), key=lambda r: (KINDS.index(r.kind), r.code))


def _coverage(scope: list[JurisdictionRow], records: list[_Record]) -> dict[str, Any]:
    """The coverage section (see :func:`build_report` for its shape)."""
    lowest = max((_RANK.get(j.tier, 2) for j in scope), default=0)
    tiers = [t for t in reversed(TIERS) if _RANK[t] <= lowest]  # bottom-up: street, district, city

    def cell(recs: list[_Record], tier: str) -> dict[str, int]:
        applicable = [r for r in recs if _RANK.get(r.tier, 2) >= _RANK[tier]]
        return {
            "expected": len(applicable),
            "held": sum(1 for r in applicable if r.held.get(tier)),
            "current": sum(1 for r in applicable if r.latest in r.held.get(tier, set())),
        }

    def figures(recs: list[_Record], own_tier: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in KINDS:
            of_kind = [r for r in recs if r.kind == kind]
            out[kind] = {
                "recorded": len(of_kind),
                "tiers": {
                    t: (None if own_tier is not None and _RANK[t] > _RANK.get(own_tier, 2) else cell(of_kind, t))
                    for t in tiers
                },
            }
        return out

    by_jurisdiction: dict[str, list[_Record]] = defaultdict(list)
    for r in records:
        by_jurisdiction[r.jurisdiction].append(r)
    rows = [{"code": j.code, "name": j.name, "tier": j.tier, **figures(by_jurisdiction[j.code], j.tier)}
            for j in scope]
    gaps = []
    for r in records:
        for t in tiers:
            if _RANK[t] > _RANK.get(r.tier, 2):
                continue
            versions = r.held.get(t, set())
            if r.latest not in versions:
                gaps.append({"kind": r.kind, "code": r.code, "name": r.name, "jurisdiction": r.jurisdiction,
                             "tier": t, "latest_version": r.latest,
                             "held_versions": sorted(versions), "state": "stale" if versions else "missing"})
    return {"tiers": tiers, "rows": rows, "total": figures(records, None), "gaps": gaps}


def _history(session: Session, scope: list[JurisdictionRow]) -> list[dict[str, Any]]:
    """Version events of the scope's catalogs and systems and sharing events touching its departments, in time
    order (block timestamp, chain id, block, log index)."""
    codes = [j.code for j in scope]
    events: list[dict[str, Any]] = []
    tables: tuple[tuple[str, type[CatalogRow] | type[SystemRow], type[CatalogVersionRow] | type[SystemVersionRow]],
                  ...] = (("catalog", CatalogRow, CatalogVersionRow), ("system", SystemRow, SystemVersionRow))
    v: CatalogVersionRow | SystemVersionRow
    for kind, current, versions in tables:
        rows = session.execute(
            select(versions, current.name, current.jurisdiction_code)
            .join(current, current.code == versions.code)
            .where(current.jurisdiction_code.in_(codes))
        ).all()
        for row, name, jurisdiction in rows:
            v = cast("CatalogVersionRow | SystemVersionRow", row)
            events.append({
                "time": v.block_timestamp, "chain_id": v.chain_id, "block_number": v.block_number,
                "tx_hash": v.tx_hash, "log_index": v.log_index, "kind": kind, "action": v.action,
                "code": v.code, "name": name, "version": v.version, "jurisdiction": jurisdiction,
                "signer": v.signer, "valid": v.valid,
                "detail": v.invalid_reason or "", "digest": v.digest,
            })
    scope_ids = {j.id for j in scope}
    departments = list(session.scalars(select(DepartmentRow)))
    dept_ids = {d.id for d in departments if d.jurisdiction_id in scope_ids}
    dept = {d.id: d for d in departments}
    jcode = {j.id: j.code for j in session.scalars(select(JurisdictionRow))}
    requests = [r for r in session.scalars(select(SharingRequestRow))
                if r.owner_id in dept_ids or r.requester_id in dept_ids]
    by_id = {r.id: r for r in requests}
    catalog_names: dict[str, str | None] = {}
    if requests:
        for code, name in session.execute(select(CatalogRow.code, CatalogRow.name)
                                          .where(CatalogRow.code.in_({r.catalog_code for r in requests}))):
            catalog_names[code] = name

    def who(department_id: str, code: str | None) -> str:
        d = dept.get(department_id)
        return f"{d.name} ({d.code})" if d is not None else str(code or department_id)

    def sharing_event(r: SharingRequestRow, **kw: Any) -> dict[str, Any]:
        side = [s for s, did in (("owner", r.owner_id), ("requester", r.requester_id)) if did in dept_ids]
        owner = dept.get(r.owner_id)
        return {
            "kind": "sharing", "code": r.id, "name": catalog_names.get(r.catalog_code), "version": r.catalog_version,
            "jurisdiction": jcode.get(owner.jurisdiction_id) if owner is not None else None, "digest": None,
            "catalog": r.catalog_code, "requester": r.requester_code, "owner": r.owner_code, "side": "+".join(side),
            **kw,
        }

    for r in requests:
        events.append(sharing_event(
            r, time=r.requested_at, chain_id=r.chain_id, block_number=r.block_number, tx_hash=r.tx_hash,
            log_index=r.log_index, action="requested", signer=r.signer, valid=True,
            detail=f"{who(r.requester_id, r.requester_code)} asks {who(r.owner_id, r.owner_code)} for catalog "
                   f"{r.catalog_code} v{r.catalog_version}: {r.purpose}",
        ))
    if by_id:
        for t in session.scalars(select(SharingTransitionRow).where(SharingTransitionRow.request_id.in_(list(by_id)))):
            r = by_id[t.request_id]
            events.append(sharing_event(
                r, time=t.block_timestamp, chain_id=t.chain_id, block_number=t.block_number, tx_hash=t.tx_hash,
                log_index=t.log_index, action=t.to_status,
                signer="automatic" if t.signer.lower() == ZERO_ADDRESS else t.signer, valid=True,
                detail=f"{t.from_status} → {t.to_status}" + (f": {t.reason}" if t.reason else ""),
            ))
    events.sort(key=lambda e: (e["time"], e["chain_id"], e["block_number"], e["log_index"]))
    for e in events:
        e["time_iso"] = iso(e["time"])
    return events


#: Series of the timeline: the version actions, then every sharing event.
SERIES = ("register", "update", "retire", "sharing")


def _series(event: dict[str, Any]) -> str:
    return "sharing" if event["kind"] == "sharing" else str(event["action"])


def timeline(events: Sequence[dict[str, Any]], max_buckets: int = MAX_BUCKETS) -> dict[str, Any]:
    """Counts of ``events`` per bucket and series (:data:`SERIES`): by block — one bucket per (chain id, block), in
    time order — when there are at most ``max_buckets`` blocks, else by the finest of minute, hour, day and month
    (UTC+8) that gives at most ``max_buckets`` buckets (by month however many there are). Shape: ``{granularity:
    block|minute|hour|day|month, series: [...], buckets: [{label, start, end (unix seconds of the first and last
    event), counts: {series: n}, total}]}``, buckets in time order."""
    keyed: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    granularity = "block"
    for e in events:
        keyed[(e["chain_id"], e["block_number"])].append(e)
    if len(keyed) > max_buckets:
        for name, fmt in _TIME_BUCKETS:
            granularity, keyed = name, defaultdict(list)
            for e in events:
                keyed[datetime.fromtimestamp(e["time"], CST).strftime(fmt)].append(e)
            if len(keyed) <= max_buckets:
                break
    buckets = []
    for key, evs in keyed.items():
        counts = Counter(_series(e) for e in evs)
        label = f"{key[0]}#{key[1]}" if granularity == "block" else str(key)
        buckets.append({
            "label": label, "start": min(e["time"] for e in evs), "end": max(e["time"] for e in evs),
            "counts": {s: counts.get(s, 0) for s in SERIES}, "total": len(evs),
        })
    buckets.sort(key=lambda b: (b["start"], b["label"]))
    return {"granularity": granularity, "series": list(SERIES), "buckets": buckets}


def _kpis(facts: KpiFacts, scope: list[JurisdictionRow]) -> dict[str, Any]:
    """The KPI section: :func:`compute_kpis` of every fact (``overall`` and per jurisdiction, as ``GET /kpis``),
    and of the scope's facts only (``scope``: catalogs, requests and departments owned in the scope)."""
    report = compute_kpis(facts)
    ids = {j.id for j in scope}
    codes = [j.code for j in scope]
    home = {d.id: d.jurisdiction_id for d in facts.departments}
    scoped = KpiFacts.of(
        (j for j in facts.jurisdictions if j.id in ids),
        (d for d in facts.departments if d.jurisdiction_id in ids),
        (c for c in facts.catalogs if home.get(c.department_id, c.jurisdiction_id) in ids),
        (r for r in facts.requests if home.get(r.owner_id) in ids),
    )
    per = {j.code: j for j in report.jurisdictions}
    return {
        "targets": {name: getattr(report.targets, name) for name in KPI_NAMES},
        "targets_source": report.targets_source,
        "overall": report.overall.as_dict(),
        "scope": compute_kpis(scoped).overall.as_dict(),
        "jurisdictions": [
            {"code": c, "name": per[c].name, "tier": per[c].tier, **per[c].figures.as_dict()} for c in codes if c in per
        ],
    }


def _index_state(session: Session) -> list[dict[str, Any]]:
    """Per chain: the furthest indexer cursor (block) and the latest indexed block with its timestamp."""
    out: dict[int, dict[str, Any]] = {}
    for c in session.scalars(select(Cursor)):
        entry = out.setdefault(c.chain_id, {"chain_id": c.chain_id, "cursor_block": c.block_number})
        entry["cursor_block"] = max(entry["cursor_block"], c.block_number)
    for b in session.scalars(select(Block).order_by(Block.number.desc())):
        entry = out.setdefault(b.chain_id, {"chain_id": b.chain_id, "cursor_block": None})
        if "last_block" not in entry:
            entry.update(last_block=b.number, last_block_time=b.timestamp, last_block_time_iso=iso(b.timestamp))
    tiers = _directory_tiers(session)
    for (chain_id, _address), tier in tiers.items():
        if chain_id in out and tier:
            out[chain_id].setdefault("tiers", set()).add(tier)
    result = []
    for entry in sorted(out.values(), key=lambda e: e["chain_id"]):
        entry["tiers"] = sorted(entry.get("tiers", set()), key=lambda t: _RANK.get(t, 9))
        entry.setdefault("last_block", None)
        entry.setdefault("last_block_time", None)
        entry.setdefault("last_block_time_iso", None)
        result.append(entry)
    return result


#: The drift section when no chain was given.
DRIFT_NOT_CHECKED = {"checked": False, "reason": "no chain given (run with --rpc to compare the index with the chain)"}


def build_report(
    session: Session,
    jurisdiction: str,
    *,
    generated_at: int | None = None,
    database: str | None = None,
    drift: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit report of ``jurisdiction`` (a code such as ``110102`` or a name such as ``西城区``) from the index
    open in ``session``, as a JSON-able dict. Raises :class:`ReportError` for an unknown or ambiguous jurisdiction.

    ``generated_at``: unix seconds the report was made (None: left out, the dict is then a pure function of the
    index); ``database``: the index's URL as shown in the report (pass it without a password); ``drift``: the drift
    section (:func:`drift_section`), default :data:`DRIFT_NOT_CHECKED`. Shape::

        {format, generated_at, generated_at_iso, database,
         jurisdiction: {code, name, tier, parents: [{code, name, tier}] top first},
         scope: [{code, name, tier}]                     # the jurisdiction first, then those below
         index: [{chain_id, tiers, cursor_block, last_block, last_block_time, last_block_time_iso}],
         coverage: {tiers: [bottom-up tier names],
                    rows: [{code, name, tier, <kind>: {recorded, tiers: {<tier>: cell | None}}}],
                    total: {<kind>: {recorded, tiers: {<tier>: cell | None}}},
                    gaps: [{kind, code, name, jurisdiction, tier, latest_version, held_versions, state}]},
         history: {events: [{time, time_iso, chain_id, block_number, tx_hash, log_index, kind (catalog|system|
                   sharing), action, code, name, version, jurisdiction, signer, valid, detail, …}],
                   counts: {kind: {action: n}}, timeline: see :func:`timeline`},
         kpis: {targets: {name: ratio}, targets_source, overall, scope, jurisdictions: [{code, name, tier, **figures}]},
         drift: {checked: false, reason} | {checked: true, …}}

    where ``<kind>`` is catalogs / systems / departments, a cell is ``{expected, held, current}`` — records that a
    directory of that tier should hold (those of that tier or below), those it holds (any version), those whose
    latest version it holds — and None where the tier lies below the row's own; figures are
    :meth:`registry.kpis.KpiFigures.as_dict` (``{name: {value, numerator, denominator, target, met}}``).
    """
    root = resolve_jurisdiction(session, jurisdiction)
    scope = _scope(session, root)
    records = _coverage_records(session, scope)
    events = _history(session, scope)
    counts: dict[str, dict[str, int]] = {}
    for e in events:
        counts.setdefault(e["kind"], {}).setdefault(e["action"], 0)
        counts[e["kind"]][e["action"]] += 1
    return {
        "format": FORMAT,
        "generated_at": generated_at,
        "generated_at_iso": iso(generated_at),
        "database": database,
        "jurisdiction": {"code": root.code, "name": root.name, "tier": root.tier,
                         "parents": _ancestors(session, root)},
        "scope": [{"code": j.code, "name": j.name, "tier": j.tier} for j in scope],
        "index": _index_state(session),
        "coverage": _coverage(scope, records),
        "history": {"events": events, "counts": counts, "timeline": timeline(events)},
        "kpis": _kpis(facts_from_index(session), scope),
        "drift": dict(drift) if drift is not None else dict(DRIFT_NOT_CHECKED),
    }


# ---------------------------------------------------------------------------------------- SVG charts

_PALETTE = {"register": "#2b6cb0", "update": "#38a169", "retire": "#c53030", "sharing": "#d69e2e",
            "expected": "#cbd5e0", "held": "#2b6cb0", "current": "#2f855a", "met": "#2f855a", "missed": "#c05621",
            "target": "#1a202c"}
_FONT = "font-family=\"'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',sans-serif\""


def _e(text: Any) -> str:
    """HTML/XML-escaped text of ``text`` (quotes too, so it is safe in an attribute)."""
    return html.escape("" if text is None else str(text), quote=True)


def _text_width(text: str, size: float) -> float:
    """Rough rendered width in px of ``text`` at font size ``size`` px (wide characters count 1 em, others 0.6)."""
    return sum(size if ord(ch) > 0x2E80 else 0.6 * size for ch in text)


def _count_axis_max(value: float) -> int:
    """A round maximum ≥ ``value`` for an axis of counts with 4 intervals: 4 × the smallest whole tick step ≥
    ``value``/4 among 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × a power of ten (4, 8, 12, …, 24, 32, 40, 60, 80, 100 …)."""
    need = max(value, 1) / 4
    power = 1
    while True:
        for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
            step = m * power
            if step >= need and step == int(step):
                return int(4 * step)
        power *= 10


def _svg_open(chart_id: str, title: str, width: float, height: float, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{_e(chart_id)}" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-labelledby="{_e(chart_id)}-t" '
        f'{_FONT} font-size="12">',
        f'<title id="{_e(chart_id)}-t">{_e(title)}</title><desc>{_e(desc)}</desc>',
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
        f'<text class="chart-title" x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{_e(title)}</text>',
    ]


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    out = []
    for label, colour in items:
        out.append(f'<rect class="legend" x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16:.1f}" y="{y:.1f}">{_e(label)}</text>')
        x += 16 + _text_width(label, 12) + 18
    return out


def ratio_chart(chart_id: str, title: str, rows: Sequence[tuple[str, dict[str, Any]]], target: float) -> str:
    """Horizontal bar chart of ratios: one bar per ``(label, ratio)`` (``ratio`` as
    :meth:`registry.kpis.Ratio.as_dict`: value in [0, 1] or None, numerator, denominator), x axis 0–100 %, with a
    dashed line at ``target`` (a ratio). Each bar is labelled ``value % (numerator/denominator)``, or
    ``no data (0/0)`` without a bar. Returns the ``<svg>`` element."""
    label_w = max([_text_width(label, 12) for label, _ in rows] + [60.0]) + 16
    plot_w, bar_h, gap = 460.0, 22.0, 10.0
    left, top = label_w, 44.0
    plot_h = len(rows) * (bar_h + gap) + gap
    width, height = left + plot_w + 150, top + plot_h + 50
    out = _svg_open(chart_id, title, width, height,
                    f"bars: ratio per scope; dashed line: target {target:.0%}")
    for tick in range(0, 101, 20):  # x axis grid and ticks
        x = left + plot_w * tick / 100
        out.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{top + plot_h:.1f}" stroke="#e2e8f0"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 16:.1f}" text-anchor="middle">{tick}%</text>')
    out.append(f'<line class="axis" x1="{left:.1f}" y1="{top + plot_h:.1f}" x2="{left + plot_w:.1f}" '
               f'y2="{top + plot_h:.1f}" stroke="#4a5568"/>')
    out.append(f'<line class="axis" x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{top + plot_h:.1f}" '
               f'stroke="#4a5568"/>')
    for i, (label, ratio) in enumerate(rows):
        y = top + gap + i * (bar_h + gap)
        out.append(f'<text class="category" x="{left - 8:.1f}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">'
                   f'{_e(label)}</text>')
        value = ratio.get("value")
        fraction = f'{ratio.get("numerator", 0)}/{ratio.get("denominator", 0)}'
        if value is None:
            out.append(f'<text class="value" x="{left + 6:.1f}" y="{y + bar_h * 0.7:.1f}" fill="#718096">'
                       f'no data ({_e(fraction)})</text>')
            continue
        w = plot_w * max(0.0, min(1.0, float(value)))
        colour = _PALETTE["met"] if value >= target else _PALETTE["missed"]
        out.append(f'<rect class="bar" x="{left:.1f}" y="{y:.1f}" width="{max(w, 1.0):.1f}" height="{bar_h:.1f}" '
                   f'fill="{colour}"><title>{_e(label)}: {value:.1%} ({_e(fraction)})</title></rect>')
        out.append(f'<text class="value" x="{left + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}">'
                   f'{value:.1%} ({_e(fraction)})</text>')
    tx = left + plot_w * target
    out.append(f'<line class="target" x1="{tx:.1f}" y1="{top - 6:.1f}" x2="{tx:.1f}" y2="{top + plot_h:.1f}" '
               f'stroke="{_PALETTE["target"]}" stroke-width="2" stroke-dasharray="6 4"/>')
    out.append(f'<text class="target-label" x="{tx:.1f}" y="{top - 9:.1f}" text-anchor="middle" font-weight="bold">'
               f'target {target:.0%}</text>')
    out.append(f'<text class="axis-label" x="{left + plot_w / 2:.1f}" y="{height - 10:.1f}" text-anchor="middle">'
               f'{_e("ratio (%) — green: target met, orange: not met")}</text>')
    out.append(f'<text class="axis-label" x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">scope</text>')
    out.append("</svg>")
    return "\n".join(out)


def grouped_chart(
    chart_id: str,
    title: str,
    groups: Sequence[tuple[str, Sequence[tuple[str, int]]]],
    x_label: str,
    y_label: str,
    colours: dict[str, str],
) -> str:
    """Vertical grouped bar chart: for each ``(group label, [(series, count), …])`` one bar per series, coloured by
    ``colours[series]``, each labelled with its count; y axis from 0 to a round maximum. Returns the ``<svg>``."""
    series = [s for s, _ in groups[0][1]] if groups else []
    bar_w, inner, outer = 34.0, 4.0, 30.0
    group_w = len(series) * (bar_w + inner) + outer
    left, top, plot_h = 60.0, 68.0, 200.0
    plot_w = max(len(groups) * group_w + outer, 260.0)
    width, height = left + plot_w + 20, top + plot_h + 64
    peak = _count_axis_max(max([c for _, bars in groups for _, c in bars] + [1]))
    out = _svg_open(chart_id, title, width, height, f"{y_label} per {x_label}")
    out += _legend([(s, colours[s]) for s in series], left, 40)
    out += _count_grid(left, top, plot_w, plot_h, peak)
    for g, (group, bars) in enumerate(groups):
        gx = left + outer + g * group_w
        for b, (name, count) in enumerate(bars):
            x = gx + b * (bar_w + inner)
            h = plot_h * count / peak
            out.append(f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                       f'height="{h:.1f}" fill="{colours[name]}"><title>{_e(group)} — {_e(name)}: {count}</title>'
                       "</rect>")
            out.append(f'<text class="value" x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 4:.1f}" '
                       f'text-anchor="middle">{count}</text>')
        cx = gx + (len(bars) * (bar_w + inner) - inner) / 2
        out.append(f'<text class="category" x="{cx:.1f}" y="{top + plot_h + 18:.1f}" text-anchor="middle">'
                   f'{_e(group)}</text>')
    out.append(f'<text class="axis-label" x="{left + plot_w / 2:.1f}" y="{height - 12:.1f}" text-anchor="middle">'
               f'{_e(x_label)}</text>')
    out.append(f'<text class="axis-label" x="16" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {top + plot_h / 2:.1f})">{_e(y_label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _count_grid(left: float, top: float, plot_w: float, plot_h: float, peak: float) -> list[str]:
    """SVG of a count chart's frame: five horizontal grid lines labelled 0 … ``peak`` (counts), the x and y axes;
    positions in SVG user units."""
    out = []
    for k in range(5):
        v = peak * k / 4
        y = top + plot_h - plot_h * k / 4
        out.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{left + plot_w:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        out.append(f'<text class="tick" x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    out.append(f'<line class="axis" x1="{left:.1f}" y1="{top + plot_h:.1f}" x2="{left + plot_w:.1f}" '
               f'y2="{top + plot_h:.1f}" stroke="#4a5568"/>')
    out.append(f'<line class="axis" x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{top + plot_h:.1f}" '
               f'stroke="#4a5568"/>')
    return out


def timeline_chart(chart_id: str, title: str, line: dict[str, Any]) -> str:
    """Stacked vertical bars of :func:`timeline`'s buckets (one bar per bucket, one segment per series with events),
    x axis the buckets in time order (labels thinned to at most ~30), y axis the number of events, each bar topped
    by its total. Returns the ``<svg>``."""
    buckets = line["buckets"]
    series = line["series"]
    n = max(len(buckets), 1)
    left, top, plot_h = 60.0, 68.0, 220.0
    slot = max(8.0, min(40.0, 900.0 / n))
    plot_w = max(n * slot, 300.0)
    label_room = 80.0
    width, height = left + plot_w + 30, top + plot_h + label_room + 30
    peak = _count_axis_max(max([b["total"] for b in buckets] + [1]))
    unit = {"block": "block (chain id#number), in time order", "minute": "minute (UTC+8)", "hour": "hour (UTC+8)",
            "day": "day (UTC+8)", "month": "month (UTC+8)"}[line["granularity"]]
    out = _svg_open(chart_id, title, width, height, f"events per {unit}")
    out += _legend([(s, _PALETTE[s]) for s in series], left, 40)
    out += _count_grid(left, top, plot_w, plot_h, peak)
    every = max(1, math.ceil(len(buckets) / 30))
    bar_w = slot * 0.7
    for i, b in enumerate(buckets):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for s in series:
            count = b["counts"].get(s, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                       f'fill="{_PALETTE[s]}"><title>{_e(b["label"])} ({_e(iso(b["start"]))}): {count} {_e(s)}'
                       f'</title></rect>')
        out.append(f'<text class="value" x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                   f'font-size="10">{b["total"]}</text>')
        if i % every == 0:
            lx, ly = x + bar_w / 2, top + plot_h + 10
            out.append(f'<text class="category" x="{lx:.1f}" y="{ly:.1f}" text-anchor="end" font-size="10" '
                       f'transform="rotate(-50 {lx:.1f} {ly:.1f})">{_e(b["label"])}</text>')
    if not buckets:
        out.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle">'
                   f'no events</text>')
    out.append(f'<text class="axis-label" x="{left + plot_w / 2:.1f}" y="{height - 10:.1f}" text-anchor="middle">'
               f'{_e(unit)}</text>')
    out.append(f'<text class="axis-label" x="16" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {top + plot_h / 2:.1f})">events</text>')
    out.append("</svg>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',system-ui,sans-serif;
 margin:0 auto;max-width:1200px;padding:24px;color:#1a202c;background:#f7fafc;line-height:1.45}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #2b6cb0;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 6px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:4px 20px 16px;margin-bottom:16px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #cbd5e0;padding:3px 8px;
 text-align:left;vertical-align:top}th{background:#edf2f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.met{color:#2f855a;font-weight:bold}.missed{color:#c05621;font-weight:bold}.na{color:#718096}
.gap{color:#c53030;font-weight:bold}.note{color:#4a5568;font-size:13px}
.warning{background:#fffaf0;border:2px solid #dd6b20;padding:10px 14px;border-radius:6px;font-weight:bold}
.ok{background:#f0fff4;border:2px solid #2f855a;padding:10px 14px;border-radius:6px}
.charts{display:flex;flex-wrap:wrap;gap:16px}svg.chart{border:1px solid #e2e8f0;max-width:100%;height:auto}
code{font-size:12px}.nowrap,code.h{white-space:nowrap}table.wrap code{overflow-wrap:anywhere}
"""


def _short(value: Any) -> str:
    """``<code>`` of a value; a 0x-hex string longer than 14 characters shortened to ``0x1234…abcd`` with the whole
    value in its ``title`` (hover)."""
    text = "" if value is None else str(value)
    if text.startswith("0x") and len(text) > 14:
        return f'<code class="h" title="{_e(text)}">{_e(text[:6])}…{_e(text[-4:])}</code>'
    return f"<code>{_e(text)}</code>"


def _pct(ratio: dict[str, Any]) -> str:
    value = ratio.get("value")
    fraction = f'{ratio.get("numerator", 0)}/{ratio.get("denominator", 0)}'
    if value is None:
        return f'<span class="na">no data ({_e(fraction)})</span>'
    cls = "met" if ratio.get("met") else "missed"
    word = "met" if ratio.get("met") else "not met"
    return f'<span class="{cls}">{value:.1%}</span> ({_e(fraction)}, {word})'


def _cell(cell: dict[str, int] | None) -> str:
    if cell is None:
        return '<td class="num na">—</td>'
    text = f'{cell["current"]}/{cell["expected"]}'
    extra = ""
    if cell["held"] != cell["current"]:
        extra = f' <span class="gap">({cell["held"] - cell["current"]} stale)</span>'
    cls = "num" if cell["current"] == cell["expected"] else "num gap"
    return f'<td class="{cls}">{_e(text)}{extra}</td>'


def _coverage_html(report: dict[str, Any]) -> str:
    cov = report["coverage"]
    tiers = cov["tiers"]
    scope_name = report["jurisdiction"]["name"]
    out = ['<section id="coverage"><h2>1. Coverage of the directory per tier 目录覆盖</h2>',
           '<p class="note">For each jurisdiction: the records it recorded, and how many of them a directory of each '
           'tier holds at their latest version (<i>held/should hold</i>; a record is held at a tier when a directory '
           'of that tier recorded it or holds a relayed copy). “—”: that tier lies below the jurisdiction. Red: a '
           'directory above is missing records or holds an older version.</p>']
    charts = []
    for kind in KINDS:
        total = cov["total"][kind]
        groups = []
        for t in tiers:
            c = total["tiers"].get(t)
            if c is not None:
                groups.append((t, [("should hold", c["expected"]), ("holds (latest version)", c["current"])]))
        charts.append(grouped_chart(f"chart-coverage-{kind}", f"{KIND_LABELS[kind]} held per tier — {scope_name}",
                                    groups, "tier of the holding directory", "records",
                                    {"should hold": _PALETTE["expected"],
                                     "holds (latest version)": _PALETTE["current"]}))
    out.append('<div class="charts">' + "".join(charts) + "</div>")
    head = "".join(f"<th>held at {_e(t)}</th>" for t in tiers)
    for kind in KINDS:
        out.append(f"<h3>{_e(KIND_LABELS[kind])}</h3><table><tr><th>jurisdiction</th><th>tier</th><th>recorded</th>"
                   f"{head}</tr>")
        for row in cov["rows"]:
            fig = row[kind]
            cells = "".join(_cell(fig["tiers"].get(t)) for t in tiers)
            out.append(f'<tr><td>{_e(row["name"])} <code>{_e(row["code"])}</code></td><td>{_e(row["tier"])}</td>'
                       f'<td class="num">{fig["recorded"]}</td>{cells}</tr>')
        fig = cov["total"][kind]
        cells = "".join(_cell(fig["tiers"].get(t)) for t in tiers)
        out.append(f'<tr><th>all of {_e(scope_name)}</th><th></th><th class="num">{fig["recorded"]}</th>{cells}</tr>'
                   "</table>")
    gaps = cov["gaps"]
    if gaps:
        out.append(f'<h3 class="gap">{len(gaps)} gaps: records a tier should hold but does not (at their latest '
                   "version)</h3><table><tr><th>kind</th><th>code</th><th>name</th><th>jurisdiction</th>"
                   "<th>tier</th><th>latest version</th><th>versions held there</th><th>state</th></tr>")
        for g in gaps[:MAX_HTML_ROWS]:
            out.append(f'<tr><td>{_e(g["kind"])}</td><td><code>{_e(g["code"])}</code></td><td>{_e(g["name"])}</td>'
                       f'<td><code>{_e(g["jurisdiction"])}</code></td><td>{_e(g["tier"])}</td>'
                       f'<td class="num">{g["latest_version"]}</td>'
                       f'<td>{_e(", ".join(map(str, g["held_versions"])) or "none")}</td>'
                       f'<td class="gap">{_e(g["state"])}</td></tr>')
        out.append("</table>")
        if len(gaps) > MAX_HTML_ROWS:
            out.append(f'<p class="note">first {MAX_HTML_ROWS} of {len(gaps)} gaps shown; all are in the JSON.</p>')
    else:
        out.append('<p class="ok">No gaps: every tier that should hold a record of this scope holds its latest '
                   "version.</p>")
    out.append("</section>")
    return "\n".join(out)


def _history_html(report: dict[str, Any]) -> str:
    hist = report["history"]
    events = hist["events"]
    line = hist["timeline"]
    name = report["jurisdiction"]["name"]
    out = ['<section id="history"><h2>2. History of changes 变更历史</h2>',
           '<p class="note">Version events (register / update / retire) of the catalogs and systems of the scope, and '
           "sharing events (request, then each status transition) of requests whose owning or requesting department "
           "is in the scope. Times are block timestamps in China Standard Time (UTC+8).</p>"]
    out.append(timeline_chart("chart-timeline", f"Changes over time — {name} and below", line))
    out.append('<table><tr><th>kind</th><th>action</th><th class="num">events</th></tr>')
    for kind, actions in sorted(hist["counts"].items()):
        for action, n in sorted(actions.items()):
            out.append(f'<tr><td>{_e(kind)}</td><td>{_e(action)}</td><td class="num">{n}</td></tr>')
    out.append(f'<tr><th colspan="2">all</th><th class="num">{len(events)}</th></tr></table>')
    shown = events[-MAX_HTML_ROWS:]
    if len(events) > len(shown):
        out.append(f'<p class="note">latest {len(shown)} of {len(events)} events shown; all are in the JSON.</p>')
    out.append("<table><tr><th>time (UTC+8)</th><th>chain#block</th><th>kind</th><th>action</th><th>code</th>"
               "<th>version</th><th>name / detail</th><th>digest</th><th>signer</th><th>tx:log</th></tr>")
    for e in shown:
        label = e.get("name") or ""
        detail = e.get("detail") or ""
        text = f"{label} — {detail}" if label and detail else label or detail
        valid = "" if e.get("valid", True) else ' <span class="gap">INVALID</span>'
        out.append(f'<tr><td class="nowrap">{_e(e["time_iso"])}</td><td>{e["chain_id"]}#{e["block_number"]}</td>'
                   f'<td>{_e(e["kind"])}</td><td>{_e(e["action"])}{valid}</td><td>{_short(e["code"])}</td>'
                   f'<td class="num">{_e(e.get("version"))}</td><td>{_e(text)}</td><td>{_short(e.get("digest"))}</td>'
                   f'<td>{_short(e["signer"])}</td>'
                   f'<td>{_short(e["tx_hash"])}:{e["log_index"]}</td></tr>')
    out.append("</table></section>")
    return "\n".join(out)


def _kpi_html(report: dict[str, Any]) -> str:
    k = report["kpis"]
    name = report["jurisdiction"]["name"]
    scopes: list[tuple[str, dict[str, Any]]] = [("Beijing, whole directory 全市", k["overall"]),
                                                 (f"{name} and below (rolled up)", k["scope"])]
    scopes += [(f'{j["name"]} ({j["tier"]})', j) for j in k["jurisdictions"]]
    out = ['<section id="kpis"><h2>3. Sharing KPIs against the 2025 targets 共享指标</h2>',
           '<p class="note">Computed by <code>registry.kpis.compute_kpis</code> over the index (as <code>GET /kpis'
           "</code>). Per jurisdiction, catalogs, requests and departments count where the owning department sits "
           f"(not rolled up); “{_e(name)} and below” applies the same function to the scope's facts only. Targets: "
           f'{_e(k["targets_source"])}.</p><div class="charts">']
    for kpi in KPI_NAMES:
        rows = [(label, figs[kpi]) for label, figs in scopes]
        out.append(ratio_chart(f"chart-kpi-{kpi}", f"{KPI_LABELS[kpi]} (target ≥ {k['targets'][kpi]:.0%})", rows,
                               float(k["targets"][kpi])))
    out.append("</div><table><tr><th>scope</th>" + "".join(f"<th>{_e(KPI_LABELS[n])}</th>" for n in KPI_NAMES)
               + "</tr>")
    for label, figs in scopes:
        out.append(f"<tr><td>{_e(label)}</td>" + "".join(f"<td>{_pct(figs[n])}</td>" for n in KPI_NAMES) + "</tr>")
    out.append("</table></section>")
    return "\n".join(out)


def _drift_html(report: dict[str, Any]) -> str:
    d = report["drift"]
    out = ['<section id="drift"><h2>4. Drift between the index and the chain 索引与链上数据一致性</h2>']
    sources = d.get("sources", [])
    if sources:
        out.append('<table class="wrap"><tr><th>chain</th><th>RPC endpoint</th><th>DirectoryFactory</th>'
                   "<th>directories made by</th></tr>")
        for src in sources:
            out.append(f'<tr><td>{_e(src.get("name"))} {_e(src.get("chain_id"))}</td><td><code>{_e(src.get("rpc"))}'
                       f'</code></td><td><code>{_e(src.get("factory"))}</code> ({_e(src.get("factory_from"))})</td>'
                       f'<td><code>{_e(", ".join(src.get("creators", [])))}</code></td></tr>')
        out.append("</table>")
    if not d.get("checked"):
        word = "FAILED — drift is UNKNOWN" if d.get("failed") else "NOT CHECKED"
        out.append(f'<p class="warning">Drift {word}: {_e(d.get("reason", "no chain given"))}. This report is read '
                   "from the SQL index alone; it does not show that the index matches the chain.</p></section>")
        return "\n".join(out)
    findings = d.get("findings", [])
    out.append('<p class="note">The whole index was rebuilt from the chains alone, each up to the block its cursor '
               f'reached, and compared row by row ({sum(d.get("tables", {}).values())} rows in '
               f'{len(d.get("tables", {}))} tables, {d.get("elapsed_ms", 0):.0f} ms).</p>')
    out.append("<table><tr><th>chain</th><th>head</th><th>index cursor</th><th>rebuilt to</th><th>events re-applied"
               "</th></tr>")
    for c in d.get("chains", []):
        out.append(f'<tr><td>{_e(c["name"])} {c["chain_id"]}</td><td class="num">{_e(c["head"])}</td>'
                   f'<td class="num">{_e(c["cursor"])}</td><td class="num">{_e(c["rebuilt_to"])}</td>'
                   f'<td class="num">{_e(c["events"])}</td></tr>')
    out.append("</table>")
    if not findings:
        out.append('<p class="ok">No drift: every compared row of the index equals the row rebuilt from the chain.</p>')
    else:
        counts = Counter(f"{f['kind']} in {f['table']}" for f in findings)
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        out.append(f'<p class="warning">DRIFT: {len(findings)} findings ({_e(summary)}).</p>')
        out.append('<table class="wrap"><tr><th>table</th><th>key</th><th>kind</th><th>differences (column: index → '
                   "chain) or row</th></tr>")
        for f in findings[:MAX_HTML_ROWS]:
            if f["columns"]:
                what = "; ".join(f'{c["column"]}: {c["index"]!r} → {c["chain"]!r}' for c in f["columns"])
            else:
                what = ", ".join(f"{k}={v!r}" for k, v in (f.get("row") or {}).items())
            out.append(f'<tr><td>{_e(f["table"])}</td><td><code>{_e(", ".join(map(str, f["key"])))}</code></td>'
                       f'<td class="gap">{_e(f["kind"])}</td><td><code>{_e(what)}</code></td></tr>')
        out.append("</table>")
        if len(findings) > MAX_HTML_ROWS:
            out.append(f'<p class="note">first {MAX_HTML_ROWS} of {len(findings)} findings shown; all are in the '
                       "JSON.</p>")
    out.append("</section>")
    return "\n".join(out)


def _summary_html(report: dict[str, Any]) -> str:
    cov = report["coverage"]
    total = cov["total"]
    top = cov["tiers"][-1]
    parts = []
    for kind in KINDS:
        c = total[kind]["tiers"].get(top)
        held = f'{c["current"]}/{c["expected"]}' if c else "—"
        parts.append(f"<li>{_e(KIND_LABELS[kind])}: {total[kind]['recorded']} recorded, {held} held at the {top}</li>")
    k = report["kpis"]["scope"]
    met = sum(1 for n in KPI_NAMES if k[n]["met"])
    parts.append(f"<li>KPIs of the scope: {met} of {len(KPI_NAMES)} 2025 targets met</li>")
    parts.append(f'<li>History: {len(report["history"]["events"])} events</li>')
    d = report["drift"]
    drift = ("<b>check failed — unknown</b>" if d.get("failed") else "<b>not checked</b>" if not d.get("checked")
             else "none found" if not d.get("findings") else f'<b class="gap">{len(d["findings"])} findings</b>')
    parts.append(f"<li>Drift: {drift}</li>")
    parts.append(f'<li>Coverage gaps: {len(cov["gaps"])}</li>')
    return "<ul>" + "".join(parts) + "</ul>"


def render_html(report: dict[str, Any]) -> str:
    """The report dict of :func:`build_report` as one self-contained HTML page (UTF-8 text): inline CSS and SVG,
    no script and no external resource, every text escaped with :func:`html.escape`."""
    j = report["jurisdiction"]
    path = " › ".join([*(p["name"] for p in j["parents"]), j["name"]])
    scope = ", ".join(f'{s["name"]} ({s["tier"]})' for s in report["scope"])
    index_rows = "".join(
        f'<tr><td class="num">{c["chain_id"]}</td><td>{_e(", ".join(c["tiers"]))}</td>'
        f'<td class="num">{_e(c["cursor_block"])}</td><td class="num">{_e(c["last_block"])}</td>'
        f'<td>{_e(c["last_block_time_iso"])}</td></tr>'
        for c in report["index"]
    )
    generated = report.get("generated_at_iso") or "—"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<title>Audit report — {_e(j["name"])} {_e(j["code"])}</title>',
        f"<style>{_CSS}</style></head><body>",
        f'<header><h1>Audit report 审计报告 — {_e(j["name"])} <code>{_e(j["code"])}</code></h1>',
        f'<p class="note">{_e(path)} · tier {_e(j["tier"])} · scope: {_e(scope)}</p>',
        f'<p class="note">Generated {_e(generated)} from the index <code>{_e(report.get("database") or "—")}</code> '
        f'(format {_e(report["format"])}).</p>',
        "<table><tr><th>chain id</th><th>tiers</th><th>indexed up to block</th><th>latest indexed block with events"
        f"</th><th>its time (UTC+8)</th></tr>{index_rows}</table>",
        _summary_html(report),
        "</header>",
        _coverage_html(report),
        _history_html(report),
        _kpi_html(report),
        _drift_html(report),
        "</body></html>",
        "",
    ])


def _plain(value: Any) -> Any:
    """``value`` as JSON: None, bool, int, float and str as they are, bytes as 0x-hex, anything else as ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    return str(value)


def drift_section(drift: Any, sources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The drift section of a :class:`registry.drift.DriftReport` ``drift``, computed from the chains described by
    ``sources`` (``[{rpc, chain_id, name, factory, factory_from, creators}]``, as the command built them). Shape:
    ``{checked: true, ok, scope: "whole index", sources, chains: [{chain_id, name, factory, head, cursor,
    rebuilt_to, events}], tables: {table: rows compared}, elapsed_ms, findings: [{table, key: [...], kind:
    changed|missing|extra, columns: [{column, index, chain}], row}]}`` — ``index`` is the value in the index,
    ``chain`` the value rebuilt from the chain; ``row`` the whole row of a missing (chain's) or extra (index's)
    row."""
    return {
        "checked": True,
        "ok": bool(drift.ok),
        "scope": "whole index",
        "sources": [dict(s) for s in sources],
        "chains": [
            {"chain_id": c.chain_id, "name": c.name, "factory": c.factory, "head": c.head, "cursor": c.cursor,
             "rebuilt_to": c.rebuilt_to, "events": c.events}
            for c in drift.chains
        ],
        "tables": dict(drift.tables),
        "elapsed_ms": round(float(drift.elapsed_ms), 1),
        "findings": [
            {
                "table": f.table,
                "key": [_plain(k) for k in f.key],
                "kind": f.kind,
                "columns": [{"column": d.column, "index": _plain(d.got), "chain": _plain(d.expected)}
                            for d in f.differences],
                "row": None if f.row is None else {k: _plain(v) for k, v in f.row.items()},
            }
            for f in drift.findings
        ],
    }


def drift_failed(reason: str, sources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The drift section when a drift check was asked for but could not be completed (``reason``, e.g. a
    :class:`registry.drift.DriftError`'s text): ``{checked: false, failed: true, reason, sources}`` — drift is
    unknown, never reported as absent."""
    return {"checked": False, "failed": True, "reason": f"the drift check could not be completed: {reason}",
            "sources": [dict(s) for s in sources]}
