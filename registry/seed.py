"""Convert a directory file (``data/beijing-seed-directory.json`` and files of its shape) into domain records.

A directory file is a JSON object with the lists ``jurisdictions``, ``departments``, ``systems`` and
``catalogs`` (other top-level keys such as ``about``, ``aggregate_figures`` and ``vocabularies`` are
documentation and are ignored). The published plans it is drawn from give names, owners, due dates
and sharing attributes but no codes and few of the guide's 13 core fields, so this module fills the
gaps with *stand-ins*. Every stand-in is a deterministic function of the file's content — no clock,
no randomness, no dependence on list order — so converting the same file twice (or a reordered copy)
yields identical records and identical digests.

Stand-ins (each applies only when the entry does not give the value itself):

Jurisdiction
    ``code`` = the file's ``id`` (GB/T 2260 code for the city and districts, ``<district code>/<name>``
    for streets, whose codes the sources do not give).

Department
    ``code`` = ``"D"`` + the first 10 hex digits (upper case) of ``keccak256(utf8(jurisdiction_id + "|" +
    name))``.

Information system
    * ``code`` = ``"S"`` + 10 upper-case hex digits of ``keccak256(utf8(owner_code + "|" + name))``.
    * ``status`` = ``planned`` if the entry has a ``due`` month after :data:`PLANNED_AFTER` (2026-11, a
      fixed reference month, not today's date), else ``online`` (also for entries without ``due``).
    * ``remarks`` = ``"来源：<source>"``, plus ``"；建设单位为推定（来源未载明）"`` when ``owner_assumed``.
    * ``summary`` and ``online_date`` are left empty (the sources do not give them).

Catalog (data resource)
    * ``classification`` = ``101001`` (class 1 基础信息资源) for the four basic databases — a name
      containing 人口基础, 法人基础, 地理信息基础 or 宏观经济基础, or a note naming 四大基础数据库 —
      else ``301001`` (class 3 部门信息资源). With an explicit ``code`` and no ``classification``, the
      classification is the code's part before ``/``.
    * ``code`` = classification + ``"/"`` + 10 upper-case hex digits of ``keccak256(utf8(owner_code + "|"
      + name))``.
    * ``summary`` = the entry's ``summary``, else its ``note``, else its name, followed by
      ``"（来源：<source>）"``.
    * ``format`` = ``database``; ``share_method`` = ``exchange_platform`` unless ``not_shared``.
    * ``share_conditions`` = ``"依申请审核后共享（来源文件未载明条件，系推定）"`` for ``conditional``,
      ``"依法不予共享（来源文件未载明依据，系推定）"`` for ``not_shared``, none for ``unconditional``.
    * ``open_conditions`` = ``"依申请开放（来源文件未载明条件，系推定）"`` for a conditional ``open_type``.
    * ``publish_date`` = :data:`STAND_IN_PUBLISH_DATE` (2021-01-01); ``grade`` = ``"2"``;
      ``related_codes`` = ``[]``.
    * ``data_items`` from ``items`` (``{name, type}`` → ``DataItem(name, data_type=type)``); ``remarks``
      = ``"信息项为示意（来源文件未列明）"`` when ``items_illustrative``.
    * ``source_system`` = the code of the system of the file whose name is the entry's
      ``source_system`` (if several systems share that name, the one of the catalog's owner).

References are by name: a department names its jurisdiction by id; a system or catalog names its
owner department by name (add ``owner_jurisdiction`` to an entry when two jurisdictions have a
department of that name); a catalog names its source system by name. Names are compared after
stripping surrounding whitespace, as the models do.

Everything wrong with a file raises :class:`SeedError` naming the entry, e.g.
``catalogs[3] 人口库: owner 'X' is not a department of the file``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from eth_utils import keccak
from pydantic import BaseModel, ValidationError

from registry.models import CatalogRecord, Department, Jurisdiction, ShareType, SystemRecord, Tier

__all__ = [
    "BASIC_CLASSIFICATION",
    "DEPARTMENTAL_CLASSIFICATION",
    "PLANNED_AFTER",
    "STAND_IN_PUBLISH_DATE",
    "Directory",
    "SeedError",
    "convert_directory",
    "directory_counts",
    "read_directory",
]

#: Classification (分类) of the four basic databases (四大基础数据库): class 1 基础信息资源.
BASIC_CLASSIFICATION = "101001"
#: Classification of every other resource of the file: class 3 部门信息资源.
DEPARTMENTAL_CLASSIFICATION = "301001"
#: Systems due after this month (YYYY-MM) are ``planned``, the others ``online``. A fixed month, not
#: the clock, so that the conversion is reproducible.
PLANNED_AFTER = "2026-11"
#: Publish date (发布日期) of catalogs whose entry gives none.
STAND_IN_PUBLISH_DATE = date(2021, 1, 1)
#: Default data classification grade (数据分级) of catalogs whose entry gives none.
STAND_IN_GRADE = "2"

_BASIC_NAME_MARKERS = ("人口基础", "法人基础", "地理信息基础", "宏观经济基础")
_BASIC_NOTE_MARKER = "四大基础数据库"
_CONDITIONAL_SHARE = "依申请审核后共享（来源文件未载明条件，系推定）"
_NOT_SHARED_BASIS = "依法不予共享（来源文件未载明依据，系推定）"
_STAND_IN_SHARE_CONDITIONS = {
    ShareType.CONDITIONAL.value: _CONDITIONAL_SHARE,
    ShareType.NOT_SHARED.value: _NOT_SHARED_BASIS,
}
_CONDITIONAL_OPEN = "依申请开放（来源文件未载明条件，系推定）"
_OWNER_ASSUMED = "建设单位为推定（来源未载明）"
_ITEMS_ILLUSTRATIVE = "信息项为示意（来源文件未列明）"

_JURISDICTION_KEYS = frozenset({"id", "name", "tier", "parent", "gb2260_code"})
_DEPARTMENT_KEYS = frozenset({"name", "jurisdiction", "code", "named_in_source"})
_SYSTEM_KEYS = frozenset(
    {
        "name",
        "owner",
        "owner_jurisdiction",
        "owner_assumed",
        "code",
        "status",
        "programme",
        "due",
        "online_date",
        "summary",
        "source",
    }
)
_CATALOG_KEYS = frozenset(
    {
        "name",
        "owner",
        "owner_jurisdiction",
        "code",
        "classification",
        "summary",
        "note",
        "format",
        "items",
        "items_illustrative",
        "share_type",
        "share_conditions",
        "share_method",
        "open_type",
        "open_conditions",
        "update_frequency",
        "publish_date",
        "related_codes",
        "source_system",
        "grade",
        "source",
    }
)
_TIER_RANK = {Tier.CITY: 0, Tier.DISTRICT: 1, Tier.STREET: 2}

_M = TypeVar("_M", bound=BaseModel)


class SeedError(ValueError):
    """A directory file cannot be converted. ``str(error)`` names the entry (``"catalogs[3] 人口库: ..."``)."""


@dataclass(frozen=True)
class Directory:
    """The typed content of a directory file.

    ``jurisdictions`` lists parents before children (otherwise in file order); the other lists are in
    file order.
    """

    jurisdictions: list[Jurisdiction]
    departments: list[Department]
    systems: list[SystemRecord]
    catalogs: list[CatalogRecord]


def read_directory(path: Path) -> Directory:
    """Read and convert a directory file (UTF-8 JSON object) — see :func:`convert_directory`.

    Raises ``OSError`` if the file cannot be read and :class:`SeedError` if it is not a JSON object
    or cannot be converted.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SeedError(f"{path}: not a UTF-8 JSON file: {exc}") from exc
    if not isinstance(data, dict):
        raise SeedError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return convert_directory(data)


def convert_directory(data: Mapping[str, Any]) -> Directory:
    """Convert the parsed JSON object of a directory file into a :class:`Directory`.

    ``data`` has the lists ``jurisdictions``, ``departments``, ``systems`` and ``catalogs`` (a missing
    list counts as empty); the module docstring gives the conversion rules and every stand-in value.

    Raises :class:`SeedError` for: an entry that is not an object, has an unknown key or no name; a
    reference to a jurisdiction, department or system the file does not have (or an ambiguous one);
    a parent of the wrong tier; duplicate jurisdiction ids, duplicate names within a jurisdiction
    (departments) or an owner (systems, catalogs), duplicate codes; and any validation error of the
    models (with the field path).
    """
    if not isinstance(data, Mapping):
        raise SeedError(f"expected a JSON object, got {type(data).__name__}")
    jurisdictions = _convert_jurisdictions(_entries(data, "jurisdictions"))
    departments = _convert_departments(_entries(data, "departments"), jurisdictions)
    owners = _Owners(departments)
    systems = _convert_systems(_entries(data, "systems"), owners)
    catalogs = _convert_catalogs(_entries(data, "catalogs"), owners, systems)
    return Directory(
        jurisdictions=jurisdictions,
        departments=[d for d, _ in departments],
        systems=[s for s, _ in systems],
        catalogs=catalogs,
    )


def directory_counts(d: Directory) -> dict[str, int]:
    """Number of records of each kind: ``{"jurisdictions": n, "departments": n, "systems": n, "catalogs": n}``."""
    return {
        "jurisdictions": len(d.jurisdictions),
        "departments": len(d.departments),
        "systems": len(d.systems),
        "catalogs": len(d.catalogs),
    }


# --------------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Entry:
    """One object of a list of the file, with its position for error messages."""

    kind: str
    index: int
    data: Mapping[str, Any]

    @property
    def name(self) -> str:
        value = self.data.get("name")
        return value.strip() if isinstance(value, str) else ""

    @property
    def where(self) -> str:
        return f"{self.kind}[{self.index}]" + (f" {self.name}" if self.name else "")

    def error(self, message: str) -> SeedError:
        return SeedError(f"{self.where}: {message}")


def _entries(data: Mapping[str, Any], kind: str) -> list[_Entry]:
    raw = data.get(kind, [])
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise SeedError(f"{kind}: expected a list, got {type(raw).__name__}")
    entries = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise SeedError(f"{kind}[{index}]: expected an object, got {type(item).__name__}")
        entries.append(_Entry(kind, index, item))
    return entries


def _check_entry(entry: _Entry, allowed: frozenset[str], name_key: str = "name") -> None:
    unknown = sorted(set(entry.data) - allowed)
    if unknown:
        raise entry.error(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
    value = entry.data.get(name_key)
    if not isinstance(value, str) or not value.strip():
        raise entry.error(f"{name_key!r} must be a non-empty string")


def _text(entry: _Entry, key: str) -> str | None:
    """An optional string field, stripped; ``None`` if absent or null."""
    value = entry.data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise entry.error(f"{key!r} must be a string, got {type(value).__name__}")
    return value.strip()


def _given(entry: _Entry, key: str, default: Any) -> Any:
    """The entry's value for ``key``, or ``default`` if absent or null."""
    value = entry.data.get(key)
    return default if value is None else value


def _hex10(text: str) -> str:
    """First 10 hex digits (40 bits), upper case, of keccak256(utf8(text))."""
    return keccak(text.encode("utf-8")).hex()[:10].upper()


def _validate(entry: _Entry, model: type[_M], fields: dict[str, Any]) -> _M:
    """Build ``model`` from ``fields`` (``None`` = absent, so a missing required field says so)."""
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(part) for part in err["loc"])
            problems.append(f"{path}: {err['msg']}" if path else str(err["msg"]))
        raise entry.error(f"invalid {model.__name__}: {'; '.join(problems)}") from exc


def _unique(
    items: Sequence[tuple[_M, _Entry]], key: Callable[[_M], str], what: str, scope: Callable[[_M], str]
) -> None:
    """Raise if two records have the same ``key`` (within the same ``scope``)."""
    seen: dict[tuple[str, str], _Entry] = {}
    for record, entry in items:
        k = (scope(record), key(record))
        if k in seen:
            raise entry.error(f"duplicate {what} {k[1]!r}, already used by {seen[k].where}")
        seen[k] = entry


# -------------------------------------------------------------------------------------- jurisdictions


def _convert_jurisdictions(entries: list[_Entry]) -> list[Jurisdiction]:
    converted: list[tuple[Jurisdiction, _Entry]] = []
    for entry in entries:
        _check_entry(entry, _JURISDICTION_KEYS, name_key="id")
        fields = {
            "code": _text(entry, "id"),
            "name": entry.data.get("name"),
            "tier": entry.data.get("tier"),
            "parent": entry.data.get("parent"),
            "gb2260_code": entry.data.get("gb2260_code"),
        }
        converted.append((_validate(entry, Jurisdiction, fields), entry))
    _unique(converted, lambda j: j.code, "jurisdiction id", lambda j: "")

    by_code = {j.code: (j, e) for j, e in converted}
    for j, entry in converted:
        if j.parent is None:
            continue
        if j.parent not in by_code:
            raise entry.error(f"parent {j.parent!r} is not a jurisdiction of the file")
        parent = by_code[j.parent][0]
        if _TIER_RANK[parent.tier] != _TIER_RANK[j.tier] - 1:
            raise entry.error(f"a {j.tier.value} cannot have the {parent.tier.value} {j.parent!r} as parent")

    # Parents before children, otherwise file order. Tiers strictly increase down the tree (checked
    # above), so the walk up the parent chain terminates.
    ordered: list[Jurisdiction] = []
    placed: set[str] = set()

    def place(j: Jurisdiction) -> None:
        if j.code in placed:
            return
        if j.parent is not None:
            place(by_code[j.parent][0])
        placed.add(j.code)
        ordered.append(j)

    for j, _ in converted:
        place(j)
    return ordered


# ---------------------------------------------------------------------------------------- departments


def _convert_departments(entries: list[_Entry], jurisdictions: list[Jurisdiction]) -> list[tuple[Department, _Entry]]:
    known = {j.code for j in jurisdictions}
    converted: list[tuple[Department, _Entry]] = []
    for entry in entries:
        _check_entry(entry, _DEPARTMENT_KEYS)
        jurisdiction = _text(entry, "jurisdiction")
        if jurisdiction is None:
            raise entry.error("'jurisdiction' is required")
        if jurisdiction not in known:
            raise entry.error(f"jurisdiction {jurisdiction!r} is not a jurisdiction of the file")
        code = _text(entry, "code") or "D" + _hex10(f"{jurisdiction}|{entry.name}")
        fields = {"code": code, "name": entry.name, "jurisdiction": jurisdiction}
        converted.append((_validate(entry, Department, fields), entry))
    _unique(converted, lambda d: d.name, "department name", lambda d: d.jurisdiction)
    _unique(converted, lambda d: d.code, "department code", lambda d: "")
    return converted


class _Owners:
    """Resolves an entry's ``owner`` (department name, optionally ``owner_jurisdiction``)."""

    def __init__(self, departments: list[tuple[Department, _Entry]]) -> None:
        self._by_name: dict[str, list[Department]] = {}
        for d, _ in departments:
            self._by_name.setdefault(d.name, []).append(d)

    def resolve(self, entry: _Entry) -> Department:
        owner = _text(entry, "owner")
        if not owner:
            raise entry.error("'owner' is required")
        candidates = self._by_name.get(owner, [])
        jurisdiction = _text(entry, "owner_jurisdiction")
        if jurisdiction is not None:
            candidates = [d for d in candidates if d.jurisdiction == jurisdiction]
            if not candidates:
                raise entry.error(f"owner {owner!r} is not a department of jurisdiction {jurisdiction!r} in the file")
        if not candidates:
            raise entry.error(f"owner {owner!r} is not a department of the file")
        if len(candidates) > 1:
            where = ", ".join(d.jurisdiction for d in candidates)
            raise entry.error(
                f"owner {owner!r} is ambiguous (departments of that name in {where}); add 'owner_jurisdiction'"
            )
        return candidates[0]


# -------------------------------------------------------------------------------------------- systems


def _convert_systems(entries: list[_Entry], owners: _Owners) -> list[tuple[SystemRecord, _Entry]]:
    converted: list[tuple[SystemRecord, _Entry]] = []
    for entry in entries:
        _check_entry(entry, _SYSTEM_KEYS)
        owner = owners.resolve(entry)
        due = entry.data.get("due")
        status = entry.data.get("status")
        if status is None:
            status = "planned" if isinstance(due, str) and due.strip() > PLANNED_AFTER else "online"
        source = _text(entry, "source")
        notes = [f"来源：{source}"] if source else []
        if entry.data.get("owner_assumed") is True:
            notes.append(_OWNER_ASSUMED)
        fields = {
            "code": _text(entry, "code") or "S" + _hex10(f"{owner.code}|{entry.name}"),
            "name": entry.name,
            "owner": owner.name,
            "owner_code": owner.code,
            "jurisdiction": owner.jurisdiction,
            "status": status,
            "programme": entry.data.get("programme"),
            "due": due,
            "online_date": entry.data.get("online_date"),
            "summary": entry.data.get("summary"),
            "remarks": "；".join(notes) or None,
        }
        converted.append((_validate(entry, SystemRecord, fields), entry))
    _unique(converted, lambda s: s.name, "system name", lambda s: s.owner_code)
    _unique(converted, lambda s: s.code, "system code", lambda s: "")
    return converted


# ------------------------------------------------------------------------------------------- catalogs


def _classification(entry: _Entry, code: str | None) -> Any:
    given = entry.data.get("classification")
    if given is not None:
        return given
    if code is not None:
        return code.split("/", 1)[0]
    note = _text(entry, "note") or ""
    if any(marker in entry.name for marker in _BASIC_NAME_MARKERS) or _BASIC_NOTE_MARKER in note:
        return BASIC_CLASSIFICATION
    return DEPARTMENTAL_CLASSIFICATION


def _source_system(entry: _Entry, owner: Department, systems: list[tuple[SystemRecord, _Entry]]) -> str | None:
    name = _text(entry, "source_system")
    if name is None:
        return None
    candidates = [s for s, _ in systems if s.name == name]
    if len(candidates) > 1:
        candidates = [s for s in candidates if s.owner_code == owner.code]
        if len(candidates) != 1:
            raise entry.error(f"source_system {name!r} is ambiguous (several systems of that name, none of the owner)")
    if not candidates:
        raise entry.error(f"source_system {name!r} is not a system name of the file")
    return candidates[0].code


def _items(entry: _Entry) -> Any:
    items = entry.data.get("items")
    if not isinstance(items, list):
        return items  # missing or malformed: the model reports it
    converted = []
    for item in items:
        if isinstance(item, Mapping):
            renamed = {("data_type" if k == "type" else k): v for k, v in item.items()}
            converted.append(renamed)
        else:
            converted.append(item)
    return converted


def _convert_catalogs(
    entries: list[_Entry], owners: _Owners, systems: list[tuple[SystemRecord, _Entry]]
) -> list[CatalogRecord]:
    converted: list[tuple[CatalogRecord, _Entry]] = []
    for entry in entries:
        _check_entry(entry, _CATALOG_KEYS)
        owner = owners.resolve(entry)
        given_code = _text(entry, "code")
        classification = _classification(entry, given_code)
        code = given_code or f"{classification}/{_hex10(f'{owner.code}|{entry.name}')}"

        summary = _text(entry, "summary") or _text(entry, "note") or entry.name
        source = _text(entry, "source")
        if source:
            summary += f"（来源：{source}）"

        share_type = entry.data.get("share_type")
        share_conditions = entry.data.get("share_conditions")
        if share_conditions is None and isinstance(share_type, str):
            share_conditions = _STAND_IN_SHARE_CONDITIONS.get(share_type)
        share_method = entry.data.get("share_method")
        if share_method is None and share_type in (ShareType.UNCONDITIONAL.value, ShareType.CONDITIONAL.value):
            share_method = "exchange_platform"
        open_type = entry.data.get("open_type")
        open_conditions = entry.data.get("open_conditions")
        if open_conditions is None and open_type == "conditional":
            open_conditions = _CONDITIONAL_OPEN

        fields = {
            "code": code,
            "name": entry.name,
            "classification": classification,
            "provider": owner.name,
            "provider_code": owner.code,
            "jurisdiction": owner.jurisdiction,
            "summary": summary,
            "format": _given(entry, "format", "database"),
            "data_items": _items(entry),
            "share_type": share_type,
            "share_conditions": share_conditions,
            "share_method": share_method,
            "open_type": open_type,
            "open_conditions": open_conditions,
            "update_frequency": entry.data.get("update_frequency"),
            "publish_date": _given(entry, "publish_date", STAND_IN_PUBLISH_DATE),
            "related_codes": _given(entry, "related_codes", []),
            "source_system": _source_system(entry, owner, systems),
            "grade": _given(entry, "grade", STAND_IN_GRADE),
            "remarks": _ITEMS_ILLUSTRATIVE if entry.data.get("items_illustrative") is True else None,
        }
        converted.append((_validate(entry, CatalogRecord, fields), entry))
    _unique(converted, lambda c: c.name, "catalog name", lambda c: c.provider_code)
    _unique(converted, lambda c: c.code, "catalog code", lambda c: "")
    return [c for c, _ in converted]
