"""Domain models: strict fields, vocabularies, cross-field rules, Chinese text."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from registry.canonical import canonical_bytes, record_json
from registry.models import (
    CatalogRecord,
    DataItem,
    DataType,
    Department,
    Jurisdiction,
    OpenType,
    ShareType,
    SystemRecord,
    SystemStatus,
    Tier,
)


def catalog(**overrides: Any) -> dict[str, Any]:
    """A valid catalog record as JSON fields, with ``overrides`` applied (``None`` removes a field)."""
    fields: dict[str, Any] = {
        "code": "101001/00000001",
        "name": "人口基础信息库",
        "classification": "101001",
        "provider": "西城区科技和信息化局（西城区大数据局）",
        "provider_code": "D0123456789",
        "jurisdiction": "110102",
        "summary": "四大基础数据库之一",
        "format": "database",
        "data_items": [{"name": "公民身份号码", "data_type": "string"}, {"name": "姓名", "data_type": "string"}],
        "share_type": "conditional",
        "share_conditions": "依申请审核后共享",
        "share_method": "exchange_platform",
        "open_type": "none",
        "update_frequency": "daily",
        "publish_date": "2021-01-01",
        "grade": "2",
    }
    for key, value in overrides.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def system(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "code": "S0123456789",
        "name": "城市大脑",
        "owner": "西城区科技和信息化局（西城区大数据局）",
        "owner_code": "D0123456789",
        "jurisdiction": "110102",
        "status": "online",
        "due": "2021-07",
    }
    fields.update(overrides)
    return fields


def error_locs(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.value.errors()}


# ------------------------------------------------------------------------------------------- valid


def test_valid_catalog_is_accepted() -> None:
    record = CatalogRecord.model_validate(catalog())
    assert record.share_type is ShareType.CONDITIONAL
    assert record.open_type is OpenType.NONE
    assert record.publish_date == date(2021, 1, 1)
    assert record.data_items[0] == DataItem(name="公民身份号码", data_type=DataType.STRING)
    assert record.related_codes == []


def test_valid_system_jurisdiction_department_are_accepted() -> None:
    s = SystemRecord.model_validate(system())
    assert s.status is SystemStatus.ONLINE
    city = Jurisdiction(code="110000", name="北京市", tier=Tier.CITY, gb2260_code="110000")
    street = Jurisdiction(code="110102/大栅栏街道", name="大栅栏街道", tier=Tier.STREET, parent="110102")
    assert city.tier.chain_value == 1 and street.tier is Tier.STREET and street.tier.chain_value == 3
    assert Department(code="D1", name="大栅栏街道办事处", jurisdiction=street.code).jurisdiction == street.code


def test_unconditional_share_needs_no_conditions() -> None:
    record = CatalogRecord.model_validate(catalog(share_type="unconditional", share_conditions=None))
    assert record.share_conditions is None


def test_chinese_text_survives_dump_and_canonical_json() -> None:
    record = CatalogRecord.model_validate(catalog())
    dumped = record_json(record)
    assert dumped["name"] == "人口基础信息库"
    assert dumped["provider"] == "西城区科技和信息化局（西城区大数据局）"
    assert CatalogRecord.model_validate(dumped) == record
    raw = canonical_bytes(record)
    assert "人口基础信息库".encode() in raw
    assert b"\\u" not in raw


def test_none_fields_are_left_out_of_the_record_json() -> None:
    dumped = record_json(SystemRecord.model_validate(system()))
    assert "summary" not in dumped and "online_date" not in dumped


def test_whitespace_is_stripped() -> None:
    assert Department(code=" D1 ", name=" 民政局 ", jurisdiction="110102").name == "民政局"


# ----------------------------------------------------------------------------------------- invalid


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        CatalogRecord.model_validate(catalog(colour="blue"))
    assert "colour" in error_locs(exc)
    with pytest.raises(ValidationError):
        Department(code="D1", name="民政局", jurisdiction="110102", extra="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        DataItem.model_validate({"name": "姓名", "data_type": "string", "length": 10})


@pytest.mark.parametrize(
    "field", ["code", "name", "classification", "provider", "summary", "data_items", "share_type", "grade"]
)
def test_missing_required_field_is_rejected(field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        CatalogRecord.model_validate(catalog(**{field: None}))
    assert field in error_locs(exc)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("share_type", "sometimes"),
        ("open_type", "open"),
        ("update_frequency", "hourly"),
        ("format", "paper"),
        ("share_method", "email"),
        ("grade", "5"),
        ("data_items", [{"name": "姓名", "data_type": "varchar"}]),
    ],
)
def test_out_of_vocabulary_value_is_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        CatalogRecord.model_validate(catalog(**{field: value}))
    assert any(loc.startswith(field) for loc in error_locs(exc))


def test_out_of_vocabulary_tier_and_status_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Jurisdiction(code="110000", name="北京市", tier="province")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SystemRecord.model_validate(system(status="retired"))


@pytest.mark.parametrize("share_type", ["conditional", "not_shared"])
def test_share_without_conditions_is_rejected(share_type: str) -> None:
    with pytest.raises(ValidationError, match="share_conditions is required"):
        CatalogRecord.model_validate(catalog(share_type=share_type, share_conditions=None))


def test_conditional_open_without_conditions_is_rejected() -> None:
    with pytest.raises(ValidationError, match="open_conditions is required"):
        CatalogRecord.model_validate(catalog(open_type="conditional"))
    ok = CatalogRecord.model_validate(catalog(open_type="conditional", open_conditions="依申请开放"))
    assert ok.open_conditions == "依申请开放"


def test_duplicate_data_items_are_rejected() -> None:
    items = [{"name": "姓名", "data_type": "string"}, {"name": "姓名", "data_type": "code"}]
    with pytest.raises(ValidationError, match="repeated: 姓名"):
        CatalogRecord.model_validate(catalog(data_items=items))


def test_empty_data_items_are_rejected() -> None:
    with pytest.raises(ValidationError):
        CatalogRecord.model_validate(catalog(data_items=[]))


@pytest.mark.parametrize(
    "code",
    [
        "101001",  # no sequence
        "101001/",  # empty sequence
        "401001/0001",  # class 4 does not exist
        "10100/0001",  # classification too short
        "101001/abc",  # lower case
        "101001/人口",  # not [0-9A-Z]
    ],
)
def test_bad_catalog_code_is_rejected(code: str) -> None:
    with pytest.raises(ValidationError) as exc:
        CatalogRecord.model_validate(catalog(code=code))
    assert "code" in error_locs(exc)


def test_code_must_start_with_its_classification() -> None:
    with pytest.raises(ValidationError, match="must start with its classification"):
        CatalogRecord.model_validate(catalog(code="301001/0001"))


@pytest.mark.parametrize("classification", ["1010", "401001", "10100A"])
def test_bad_classification_is_rejected(classification: str) -> None:
    with pytest.raises(ValidationError):
        CatalogRecord.model_validate(catalog(classification=classification))


@pytest.mark.parametrize(("field", "value"), [("code", "X0123"), ("code", "s012"), ("due", "2021-13"), ("due", "2021")])
def test_bad_system_code_or_due_is_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as exc:
        SystemRecord.model_validate(system(**{field: value}))
    assert field in error_locs(exc)


def test_jurisdiction_parent_must_match_tier() -> None:
    with pytest.raises(ValidationError, match="has no parent"):
        Jurisdiction(code="110000", name="北京市", tier="city", parent="100000")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="needs a parent"):
        Jurisdiction(code="110101", name="东城区", tier="district")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Jurisdiction(code="110101", name="东城区", tier="district", parent="110000", gb2260_code="11010")  # type: ignore[arg-type]


def test_blank_name_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Department(code="D1", name="   ", jurisdiction="110102")


def test_records_are_frozen() -> None:
    record = Department(code="D1", name="民政局", jurisdiction="110102")
    with pytest.raises(ValidationError):
        record.name = "其他"
