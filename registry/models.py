"""Domain model of the directory: jurisdictions, departments, catalogs (data resources) and systems.

Field names are English; the Chinese term of the national catalog guide (政务信息资源目录编制指南（试行）,
2017, and GB/T 21063) is given for each. Models reject unknown fields and values outside their
vocabulary; a record's digest is computed from :func:`registry.canonical.canonical_bytes` of
``model_dump(mode="json", exclude_none=True)``.
"""

from __future__ import annotations

import os
import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator


class Tier(StrEnum):
    """Administrative tier (层级): city 市, district 区, street 街道. Values match the contract's enum order."""

    CITY = "city"
    DISTRICT = "district"
    STREET = "street"

    @property
    def chain_value(self) -> int:
        """The contract's ``IDirectory.Tier`` value (City=1, District=2, Street=3)."""
        return {"city": 1, "district": 2, "street": 3}[self.value]


class ShareType(StrEnum):
    """Sharing attribute (共享属性/共享类型)."""

    UNCONDITIONAL = "unconditional"  # 无条件共享
    CONDITIONAL = "conditional"  # 有条件共享
    NOT_SHARED = "not_shared"  # 不予共享


class OpenType(StrEnum):
    """Open attribute (开放属性)."""

    UNCONDITIONAL = "unconditional"  # 无条件开放
    CONDITIONAL = "conditional"  # 有条件开放
    NONE = "none"  # 不予开放


class UpdateFrequency(StrEnum):
    """Update frequency (更新周期)."""

    REALTIME = "realtime"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


class DataType(StrEnum):
    """Data type of a data item (信息项数据类型)."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    CODE = "code"
    GEOMETRY = "geometry"
    BINARY = "binary"


class ResourceFormat(StrEnum):
    """Resource format (格式)."""

    DATABASE = "database"  # 数据库
    FILE = "file"  # 电子文件
    SPREADSHEET = "spreadsheet"  # 电子表格
    API = "api"  # 接口
    STREAM = "stream"  # 流式数据


class ShareMethod(StrEnum):
    """Sharing method (共享方式)."""

    EXCHANGE_PLATFORM = "exchange_platform"  # 共享交换平台
    API = "api"  # 接口调用
    FILE_DOWNLOAD = "file_download"  # 文件下载


class SystemStatus(StrEnum):
    """Status of an information system (建设状态)."""

    PLANNED = "planned"  # 规划
    BUILDING = "building"  # 在建
    ONLINE = "online"  # 上线运行
    OFFLINE = "offline"  # 下线


def classification_grades() -> tuple[str, ...]:
    """Data classification grades (数据分级, DB11/T 1918-2021), configurable.

    Read from ``DIRCHAIN_CLASSIFICATION_GRADES`` (comma separated) once per process; default
    ``1,2,3,4`` — the standard's four grades, 1 the least sensitive.
    """
    global _GRADES
    if _GRADES is None:
        raw = os.environ.get("DIRCHAIN_CLASSIFICATION_GRADES", "1,2,3,4")
        _GRADES = tuple(g.strip() for g in raw.split(",") if g.strip())
    return _GRADES


_GRADES: tuple[str, ...] | None = None

#: 资源代码: 前段码 (class 1 digit + item 2 + category 3 [+ sub-category 3]) "/" 后段码 (sequence).
CATALOG_CODE = re.compile(r"^[1-3][0-9]{5}(?:[0-9]{3})?/[0-9A-Z]{1,40}$")
#: 分类: class 1 digit (1 基础, 2 主题, 3 部门) + item 2 + category 3 [+ sub-category 3].
CLASSIFICATION = re.compile(r"^[1-3][0-9]{5}(?:[0-9]{3})?$")
#: 系统编码: "S" then letters, digits, "-" or "/".
SYSTEM_CODE = re.compile(r"^S[0-9A-Z/-]{1,63}$")

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=2000)]
def _fits_chain(code: str) -> str:
    if len(code.encode("utf-8")) > 64:
        raise ValueError(f"expected at most 64 bytes of UTF-8 (the contract's limit), got {len(code.encode())}")
    return code


Code = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_fits_chain)]
CatalogCode = Annotated[str, Field(pattern=CATALOG_CODE.pattern)]
SystemCode = Annotated[str, Field(pattern=SYSTEM_CODE.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Jurisdiction(_Strict):
    """Jurisdiction (行政区划): the city, a district or a street. ``code`` is the GB/T 2260 code for the
    city and districts and ``<district code>/<name>`` for streets (the sources give no street codes)."""

    code: Code
    name: Text
    tier: Tier
    parent: Code | None = None
    gb2260_code: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = None

    @model_validator(mode="after")
    def _parent_matches_tier(self) -> Self:
        if (self.tier is Tier.CITY) != (self.parent is None):
            raise ValueError(f"a {self.tier.value} {'has no' if self.tier is Tier.CITY else 'needs a'} parent")
        return self


class Department(_Strict):
    """Department (部门, 委办局 or 街道办事处) of one jurisdiction; ``code`` is its provider code (提供方代码)."""

    code: Code
    name: Text
    jurisdiction: Code


class DataItem(_Strict):
    """Data item (信息项): a named field of the resource and its data type."""

    name: Text
    data_type: DataType
    description: LongText | None = None


class CatalogRecord(_Strict):
    """One entry of a department's data resource catalog (数据资源目录 / 信息资源), the guide's 13 core fields.

    Raises (as pydantic ``ValidationError``): unknown field, missing required field, value outside a
    vocabulary, a conditional share without conditions, duplicate data item names, a code not
    starting with its classification.
    """

    code: Annotated[str, Field(pattern=CATALOG_CODE.pattern)]  # 资源代码
    name: Text  # 名称
    classification: Annotated[str, Field(pattern=CLASSIFICATION.pattern)]  # 分类 (类/项/目/细目)
    provider: Text  # 提供方 (department name)
    provider_code: Code  # 提供方代码 (department code)
    jurisdiction: Code  # the provider's jurisdiction code
    summary: LongText  # 摘要
    format: ResourceFormat  # 格式
    data_items: Annotated[list[DataItem], Field(min_length=1, max_length=256)]  # 信息项 (≤ 256: the sharing item mask)
    share_type: ShareType  # 共享类型
    share_conditions: LongText | None = None  # 共享条件 (or the basis for not sharing)
    share_method: ShareMethod | None = None  # 共享方式
    open_type: OpenType  # 开放类型
    open_conditions: LongText | None = None  # 开放条件
    update_frequency: UpdateFrequency  # 更新周期
    publish_date: date  # 发布日期
    related_codes: Annotated[list[CatalogCode], Field(max_length=100)] = []  # 关联资源代码
    source_system: SystemCode | None = None  # code of the information system that produces it
    grade: str  # 数据分级 (DB11/T 1918-2021)
    remarks: LongText | None = None  # 备注

    @field_validator("grade")
    @classmethod
    def _grade_in_vocabulary(cls, value: str) -> str:
        grades = classification_grades()
        if value not in grades:
            raise ValueError(f"expected one of {', '.join(grades)}, got {value!r}")
        return value

    @field_validator("data_items")
    @classmethod
    def _unique_items(cls, items: list[DataItem]) -> list[DataItem]:
        names = [i.name for i in items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"data item names must be unique, repeated: {', '.join(dupes)}")
        return items

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.code.startswith(self.classification + "/"):
            raise ValueError(f"code {self.code!r} must start with its classification {self.classification!r}/")
        if self.share_type is not ShareType.UNCONDITIONAL and not self.share_conditions:
            raise ValueError(f"share_conditions is required when share_type is {self.share_type.value}")
        if self.open_type is OpenType.CONDITIONAL and not self.open_conditions:
            raise ValueError("open_conditions is required when open_type is conditional")
        return self


class SystemRecord(_Strict):
    """Information system (信息系统) registered by its owning department ("上户口")."""

    code: Annotated[str, Field(pattern=SYSTEM_CODE.pattern)]  # 系统编码
    name: Text  # 系统名称
    owner: Text  # 建设单位 (department name)
    owner_code: Code  # department code
    jurisdiction: Code
    status: SystemStatus  # 建设状态
    programme: Text | None = None  # 所属专项
    due: Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] | None = None  # 计划完成 (YYYY-MM)
    online_date: date | None = None  # 上线日期
    summary: LongText | None = None  # 简介
    remarks: LongText | None = None  # 备注
