"""Sharing KPIs of the directory against Beijing's 2025 targets, from the index or from the chain alone.

Three figures (each a ratio, reported with its numerator and denominator):

* **unconditional-share rate** (无条件共享比例) = active catalogs whose share type is ``unconditional``
  ÷ active catalogs. A catalog counts when it is active (not retired) on chain and has a valid record
  (its share type is known); a catalog whose only versions are invalid is left out of both sides.
* **share-demand satisfaction rate** (共享需求满足率) = requests ever granted ÷ requests decided, where
  decided = ever granted + rejected + refused (``not_shared``). A grant later revoked or expired was
  granted, so it counts as granted (and decided); requests still awaiting a decision — or whose
  period ended before one — are not decided and count on neither side.
* **open-department ratio** (开放数据部门比例) = registered departments with at least one active catalog
  whose open type is not ``none`` ÷ registered departments.

Each figure is computed overall and per jurisdiction: a catalog, a request and a department belong
to the jurisdiction of the owning department (the catalog's provider, the requested catalog's owner,
the department itself); jurisdictions are not rolled up into their ancestors. A ratio with a zero
denominator has no value (None) and neither meets nor misses its target.

The arithmetic is one pure function, :func:`compute_kpis`, over plain :class:`KpiFacts`, which come
either from the SQL index (:func:`facts_from_index`) or from the directory's decoded logs alone
(:func:`facts_from_events`, :func:`kpis_from_chain` — no database), so an auditor can reproduce every
figure from a chain RPC endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.abi import ContractCodec, DecodedLog
from chain.logs import LogFetcher
from registry.db import CatalogRow, DepartmentRow, JurisdictionRow, SharingRequestRow
from registry.store import TIER_NAMES, check_catalog_version, hex32, sharing_status_name


@dataclass(frozen=True)
class KpiTargets:
    """Minimum of each figure (ratios in [0, 1])."""

    unconditional_share_rate: float = 0.80
    share_demand_satisfaction_rate: float = 0.90
    open_department_ratio: float = 0.95


#: The 2025 targets of Beijing's plans, as given in ``data/beijing-seed-directory.json``
#: ``aggregate_figures.targets_2025`` (unconditional_share_rate_min 0.8,
#: share_demand_satisfaction_rate_min 0.9, open_department_ratio_min 0.95).
TARGETS_2025 = KpiTargets()
#: Where :data:`TARGETS_2025` come from.
TARGETS_SOURCE = (
    "data/beijing-seed-directory.json aggregate_figures.targets_2025 "
    "(北京市“十四五”时期智慧城市发展行动纲要 1.1.3; 西城区“十四五”时期智慧城市建设规划 第二章)"
)

_TIER_ORDER = {"city": 0, "district": 1, "street": 2}


# ---------------------------------------------------------------------------------------- facts


@dataclass(frozen=True, order=True)
class JurisdictionFact:
    """A jurisdiction: id (0x-hex keccak of the code), code, name, tier."""

    id: str
    code: str
    name: str
    tier: str


@dataclass(frozen=True, order=True)
class DepartmentFact:
    """A registered department: id, code, the id of its jurisdiction."""

    id: str
    code: str
    jurisdiction_id: str


@dataclass(frozen=True, order=True)
class CatalogFact:
    """A catalog: code, owning department and jurisdiction ids (of its latest version event), whether it
    is active (not retired), and the share / open type of its latest valid record (None if none)."""

    code: str
    department_id: str
    jurisdiction_id: str
    active: bool
    share_type: str | None
    open_type: str | None


@dataclass(frozen=True, order=True)
class RequestFact:
    """A sharing request: id, owning department id, current status, whether it was ever granted."""

    id: str
    owner_id: str
    status: str
    ever_granted: bool


@dataclass(frozen=True)
class KpiFacts:
    """Everything the KPIs depend on, each collection sorted (so facts from two sources compare equal)."""

    jurisdictions: tuple[JurisdictionFact, ...]
    departments: tuple[DepartmentFact, ...]
    catalogs: tuple[CatalogFact, ...]
    requests: tuple[RequestFact, ...]

    @classmethod
    def of(
        cls,
        jurisdictions: Iterable[JurisdictionFact],
        departments: Iterable[DepartmentFact],
        catalogs: Iterable[CatalogFact],
        requests: Iterable[RequestFact],
    ) -> KpiFacts:
        """Facts with each collection sorted."""
        return cls(tuple(sorted(jurisdictions)), tuple(sorted(departments)), tuple(sorted(catalogs)),
                   tuple(sorted(requests)))


def facts_from_index(session: Session) -> KpiFacts:
    """The KPI facts as the SQL index holds them."""
    return KpiFacts.of(
        (JurisdictionFact(r.id, r.code, r.name, r.tier) for r in session.scalars(select(JurisdictionRow))),
        (DepartmentFact(r.id, r.code, r.jurisdiction_id) for r in session.scalars(select(DepartmentRow))),
        (
            CatalogFact(r.code, r.department_id, r.jurisdiction_id, r.status == "active", r.share_type, r.open_type)
            for r in session.scalars(select(CatalogRow))
        ),
        (
            RequestFact(r.id, r.owner_id, r.status, r.granted_at is not None)
            for r in session.scalars(select(SharingRequestRow))
        ),
    )


def facts_from_events(events: Iterable[DecodedLog]) -> KpiFacts:
    """The KPI facts folded from a directory's decoded logs alone, which must be in chain order
    (block number, log index) and start at the directory's deployment.

    Applies the index's rules: the first jurisdiction / department / request of an id wins; a catalog
    follows its latest version event (active, or retired) and keeps the share and open type of its
    latest version that :func:`registry.store.check_catalog_version` accepts. Never raises on odd content.
    """
    jurisdictions: dict[str, JurisdictionFact] = {}
    departments: dict[str, DepartmentFact] = {}
    catalogs: dict[str, dict[str, Any]] = {}
    versions: set[tuple[str, int]] = set()
    requests: dict[str, dict[str, Any]] = {}
    for ev in events:
        a = ev.args
        try:
            if ev.event == "JurisdictionAdded":
                jid = hex32(a["id"])
                tier = TIER_NAMES.get(a["tier"], str(a["tier"]))
                jurisdictions.setdefault(jid, JurisdictionFact(jid, a["code"], a["name"], tier))
            elif ev.event == "DepartmentRegistered":
                did = hex32(a["id"])
                departments.setdefault(did, DepartmentFact(did, a["code"], hex32(a["jurisdiction"])))
            elif ev.event in ("CatalogVersionRecorded", "CatalogRetired"):
                key = (a["code"], int(a["version"]))
                if key in versions:
                    continue
                versions.add(key)
                entry = catalogs.setdefault(a["code"], {"share_type": None, "open_type": None})
                entry.update(
                    department_id=hex32(a["department"]),
                    jurisdiction_id=hex32(a["jurisdiction"]),
                    active=ev.event == "CatalogVersionRecorded",
                )
                if ev.event == "CatalogVersionRecorded":
                    record, _ = check_catalog_version(a)
                    if record is not None:
                        entry.update(share_type=record.share_type.value, open_type=record.open_type.value)
            elif ev.event == "SharingRequested":
                requests.setdefault(
                    hex32(a["id"]), {"owner_id": hex32(a["owner"]), "status": "requested", "ever_granted": False}
                )
            elif ev.event == "SharingStatusChanged":
                request = requests.get(hex32(a["id"]))
                if request is not None:
                    request["status"] = sharing_status_name(int(a["to"]))
                    request["ever_granted"] = request["ever_granted"] or request["status"] == "granted"
        except (KeyError, TypeError, ValueError):
            continue
    return KpiFacts.of(
        jurisdictions.values(),
        departments.values(),
        (
            CatalogFact(code, c["department_id"], c["jurisdiction_id"], c["active"], c["share_type"], c["open_type"])
            for code, c in catalogs.items()
        ),
        (RequestFact(rid, r["owner_id"], r["status"], r["ever_granted"]) for rid, r in requests.items()),
    )


def read_events(
    fetcher: LogFetcher, codec: ContractCodec, from_block: int = 0, to_block: int | None = None, step: int = 10_000
) -> list[DecodedLog]:
    """Every log of the fetcher's contract in ``from_block..to_block`` (default: head), decoded with
    ``codec`` and sorted in chain order; logs the ABI does not know are skipped. Reads ``step`` blocks
    per ``eth_getLogs``. Raises what the fetcher raises (RPC errors, a range past head)."""
    end = fetcher.head() if to_block is None else to_block
    events: list[DecodedLog] = []
    for start in range(from_block, end + 1, step):
        for raw in fetcher.fetch(start, min(end, start + step - 1)):
            ev = codec.decode_log(raw)
            if ev is not None:
                events.append(ev)
    events.sort(key=lambda ev: (ev.block_number, ev.log_index))
    return events


# ---------------------------------------------------------------------------------------- arithmetic


@dataclass(frozen=True)
class Ratio:
    """``numerator`` ÷ ``denominator`` against ``target`` (a minimum)."""

    numerator: int
    denominator: int
    target: float

    @property
    def value(self) -> float | None:
        """The ratio, None when the denominator is 0."""
        return self.numerator / self.denominator if self.denominator else None

    @property
    def met(self) -> bool | None:
        """Whether the ratio reaches the target; None when it has no value."""
        value = self.value
        return None if value is None else value >= self.target

    def as_dict(self) -> dict[str, Any]:
        """``value``, ``numerator``, ``denominator``, ``target``, ``met`` as JSON-ready values."""
        return {"value": self.value, "numerator": self.numerator, "denominator": self.denominator,
                "target": self.target, "met": self.met}


@dataclass(frozen=True)
class KpiFigures:
    """The three figures of one scope (the whole directory, or one jurisdiction)."""

    unconditional_share_rate: Ratio
    share_demand_satisfaction_rate: Ratio
    open_department_ratio: Ratio

    def as_dict(self) -> dict[str, Any]:
        """Each figure's :meth:`Ratio.as_dict` by name."""
        return {name: getattr(self, name).as_dict() for name in KPI_NAMES}


#: Names of the three figures, in report order.
KPI_NAMES = ("unconditional_share_rate", "share_demand_satisfaction_rate", "open_department_ratio")


@dataclass(frozen=True)
class JurisdictionKpis:
    """The figures of one jurisdiction (code, name, tier)."""

    code: str
    name: str
    tier: str
    figures: KpiFigures


@dataclass(frozen=True)
class KpiReport:
    """The figures overall and per jurisdiction (city, then districts, then streets, each by code)."""

    overall: KpiFigures
    jurisdictions: tuple[JurisdictionKpis, ...]
    targets: KpiTargets
    targets_source: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``targets``, ``targets_source``, ``overall`` and ``jurisdictions``."""
        return {
            "targets": asdict(self.targets),
            "targets_source": self.targets_source,
            "overall": self.overall.as_dict(),
            "jurisdictions": [
                {"code": j.code, "name": j.name, "tier": j.tier, **j.figures.as_dict()} for j in self.jurisdictions
            ],
        }


def _figures(
    departments: list[DepartmentFact],
    catalogs: list[CatalogFact],
    requests: list[RequestFact],
    owners: set[str],
    targets: KpiTargets,
) -> KpiFigures:
    known = [c for c in catalogs if c.active and c.share_type is not None]
    decided = [r for r in requests if r.ever_granted or r.status in ("rejected", "refused")]
    ids = {d.id for d in departments}
    open_departments = ids & owners
    return KpiFigures(
        Ratio(sum(c.share_type == "unconditional" for c in known), len(known), targets.unconditional_share_rate),
        Ratio(sum(r.ever_granted for r in decided), len(decided), targets.share_demand_satisfaction_rate),
        Ratio(len(open_departments), len(ids), targets.open_department_ratio),
    )


def compute_kpis(
    facts: KpiFacts, targets: KpiTargets = TARGETS_2025, targets_source: str = TARGETS_SOURCE
) -> KpiReport:
    """The KPI report of ``facts`` against ``targets``. Pure: no I/O.

    Unconditional-share rate: active catalogs with a known share type that is ``unconditional`` ÷ active
    catalogs with a known share type. Satisfaction: requests ever granted ÷ requests decided (ever
    granted, rejected or refused) — revoked and expired requests were granted, so they count as granted;
    undecided ones count nowhere. Open-department ratio: registered departments owning an active catalog
    whose open type is not ``none`` ÷ registered departments. Overall, then per jurisdiction of the
    owning department (see the module docstring); a zero denominator gives a ratio without value.
    """
    home = {d.id: d.jurisdiction_id for d in facts.departments}
    # departments owning an active catalog that is open (unconditionally or conditionally)
    open_owners = {c.department_id for c in facts.catalogs if c.active and c.open_type not in (None, "none")}
    overall = _figures(list(facts.departments), list(facts.catalogs), list(facts.requests), open_owners, targets)
    per: list[JurisdictionKpis] = []
    ordered = sorted(facts.jurisdictions, key=lambda j: (_TIER_ORDER.get(j.tier, 9), j.code))
    for j in ordered:
        departments = [d for d in facts.departments if d.jurisdiction_id == j.id]
        catalogs = [c for c in facts.catalogs if home.get(c.department_id, c.jurisdiction_id) == j.id]
        requests = [r for r in facts.requests if home.get(r.owner_id) == j.id]
        per.append(JurisdictionKpis(j.code, j.name, j.tier, _figures(departments, catalogs, requests, open_owners,
                                                                      targets)))
    return KpiReport(overall, tuple(per), targets, targets_source)


def kpis_from_index(session: Session, targets: KpiTargets = TARGETS_2025) -> KpiReport:
    """:func:`compute_kpis` of :func:`facts_from_index`."""
    return compute_kpis(facts_from_index(session), targets)


def kpis_from_chain(
    fetcher: LogFetcher,
    codec: ContractCodec,
    *,
    from_block: int = 0,
    to_block: int | None = None,
    targets: KpiTargets = TARGETS_2025,
) -> KpiReport:
    """The KPI report from the chain alone: the directory's logs in ``from_block..to_block`` (default
    head; start at or before the deployment block) read with ``fetcher``, decoded with ``codec``
    (:class:`chain.abi.ContractCodec` of the Directory ABI) and folded by :func:`facts_from_events`.
    No database. Raises what the fetcher raises."""
    return compute_kpis(facts_from_events(read_events(fetcher, codec, from_block, to_block)), targets)
