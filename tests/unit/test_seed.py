"""Conversion of the seed directory file into domain records."""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from registry.canonical import canonical_bytes, digest
from registry.models import CATALOG_CODE, SYSTEM_CODE, ShareMethod, ShareType, SystemStatus, Tier
from registry.seed import (
    BASIC_CLASSIFICATION,
    DEPARTMENTAL_CLASSIFICATION,
    STAND_IN_PUBLISH_DATE,
    Directory,
    SeedError,
    convert_directory,
    directory_counts,
    read_directory,
)

SEED = Path(__file__).resolve().parents[2] / "data" / "beijing-seed-directory.json"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SEED.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def seed() -> Directory:
    return read_directory(SEED)


def fresh(raw: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(raw)


def digests(d: Directory) -> dict[str, dict[str, bytes]]:
    return {
        "jurisdictions": {r.code: digest(r) for r in d.jurisdictions},
        "departments": {r.code: digest(r) for r in d.departments},
        "systems": {r.code: digest(r) for r in d.systems},
        "catalogs": {r.code: digest(r) for r in d.catalogs},
    }


# ------------------------------------------------------------------------------------- the seed file


def test_seed_counts(seed: Directory) -> None:
    assert directory_counts(seed) == {"jurisdictions": 8, "departments": 28, "systems": 69, "catalogs": 22}


def test_chinese_names_intact(seed: Directory, raw: dict[str, Any]) -> None:
    assert [j.name for j in seed.jurisdictions][:4] == ["北京市", "东城区", "西城区", "大兴区"]
    assert [d.name for d in seed.departments] == [d["name"] for d in raw["departments"]]
    assert [s.name for s in seed.systems] == [s["name"] for s in raw["systems"]]
    assert [c.name for c in seed.catalogs] == [c["name"] for c in raw["catalogs"]]
    assert seed.systems[-4].name == "“双预防”平台"
    population = seed.catalogs[0]
    assert [i.name for i in population.data_items] == [
        "公民身份号码",
        "姓名",
        "性别",
        "出生日期",
        "户籍地址",
        "居住地址",
    ]
    assert "人口基础信息库".encode() in canonical_bytes(population)


def test_jurisdiction_tree(seed: Directory) -> None:
    by_code = {j.code: j for j in seed.jurisdictions}
    assert by_code["110000"].tier is Tier.CITY and by_code["110000"].parent is None
    assert by_code["110102"].gb2260_code == "110102"
    street = by_code["110102/大栅栏街道"]
    assert street.tier is Tier.STREET and street.parent == "110102" and street.gb2260_code is None
    seen: set[str] = set()
    for j in seed.jurisdictions:
        assert j.parent is None or j.parent in seen
        seen.add(j.code)


def test_codes_unique_and_valid(seed: Directory) -> None:
    for records in (seed.jurisdictions, seed.departments, seed.systems, seed.catalogs):
        codes = [r.code for r in records]
        assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"D[0-9A-F]{10}", d.code) for d in seed.departments)
    assert all(SYSTEM_CODE.match(s.code) and re.fullmatch(r"S[0-9A-F]{10}", s.code) for s in seed.systems)
    assert all(CATALOG_CODE.match(c.code) for c in seed.catalogs)
    assert all(re.fullmatch(re.escape(c.classification) + r"/[0-9A-F]{10}", c.code) for c in seed.catalogs)


def test_references_resolve(seed: Directory) -> None:
    jurisdictions = {j.code for j in seed.jurisdictions}
    departments = {d.code: d for d in seed.departments}
    systems = {s.code for s in seed.systems}
    assert all(d.jurisdiction in jurisdictions for d in seed.departments)
    for s in seed.systems:
        owner = departments[s.owner_code]
        assert (s.owner, s.jurisdiction) == (owner.name, owner.jurisdiction)
    for c in seed.catalogs:
        provider = departments[c.provider_code]
        assert (c.provider, c.jurisdiction) == (provider.name, provider.jurisdiction)
        assert c.source_system is None or c.source_system in systems


def test_system_stand_ins(seed: Directory) -> None:
    first = seed.systems[0]
    assert first.name == "智能灯杆试点" and first.programme == "智慧云" and first.due == "2021-07"
    assert first.status is SystemStatus.ONLINE
    assert first.remarks == "来源：大兴区新型智慧城市总体规划（修订版）附件 第1项；建设单位为推定（来源未载明）"
    assert first.summary is None
    brain = next(s for s in seed.systems if s.name == "城市大脑")
    assert brain.remarks == "来源：西城区“十四五”时期智慧城市建设规划" and brain.due is None
    assert brain.status is SystemStatus.ONLINE


def test_catalog_stand_ins(seed: Directory) -> None:
    by_name = {c.name: c for c in seed.catalogs}
    basic = {"人口基础信息库", "法人基础信息库", "地理信息基础库（一张底图）", "宏观经济基础库"}
    assert {n for n, c in by_name.items() if c.classification == BASIC_CLASSIFICATION} == basic
    assert all(c.classification == DEPARTMENTAL_CLASSIFICATION for n, c in by_name.items() if n not in basic)

    population = by_name["人口基础信息库"]
    assert population.summary == "四大基础数据库之一（来源：西城区“十四五”时期智慧城市建设规划）"
    assert population.share_type is ShareType.CONDITIONAL
    assert population.share_conditions == "依申请审核后共享（来源文件未载明条件，系推定）"
    assert population.share_method is ShareMethod.EXCHANGE_PLATFORM
    assert population.publish_date == STAND_IN_PUBLISH_DATE and population.grade == "2"
    assert population.remarks == "信息项为示意（来源文件未列明）"
    assert population.format.value == "database" and population.related_codes == []
    exchange = next(s for s in seed.systems if s.name == "数据共享交换平台")
    assert population.source_system == exchange.code

    hazards = by_name["安全生产隐患排查数据"]
    assert hazards.share_type is ShareType.NOT_SHARED and hazards.share_method is None
    assert hazards.share_conditions == "依法不予共享（来源文件未载明依据，系推定）"

    legal = by_name["法人基础信息库"]
    assert legal.share_conditions is None and legal.open_conditions == "依申请开放（来源文件未载明条件，系推定）"
    assert by_name["标准地名地址库"].summary == "标准地名地址库（来源：西城区“十四五”时期智慧城市建设规划）"
    assert by_name["城市部件库"].source_system is None


def test_conversion_is_deterministic(raw: dict[str, Any]) -> None:
    a, b = convert_directory(fresh(raw)), convert_directory(fresh(raw))
    assert a == b
    assert digests(a) == digests(b)


def test_codes_do_not_depend_on_list_order(raw: dict[str, Any], seed: Directory) -> None:
    expected = digests(seed)
    rng = random.Random(20250101)
    for _ in range(3):
        shuffled = fresh(raw)
        for key in ("jurisdictions", "departments", "systems", "catalogs"):
            rng.shuffle(shuffled[key])
        d = convert_directory(shuffled)
        assert digests(d) == expected
        placed: set[str] = set()
        for j in d.jurisdictions:  # still parents before children
            assert j.parent is None or j.parent in placed
            placed.add(j.code)


def test_jurisdictions_keep_file_order_when_valid(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    # city, Xicheng, a Xicheng street, then Dongcheng: already parents-first, so kept as is.
    data["jurisdictions"] = [data["jurisdictions"][i] for i in (0, 2, 4, 1, 3, 5, 6, 7)]
    d = convert_directory(data)
    assert [j.code for j in d.jurisdictions] == [j["id"] for j in data["jurisdictions"]]


def test_explicit_codes_and_values_are_kept(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["departments"][0]["code"] = "11000000000000001X"
    data["systems"][5]["code"] = "S-DX-006"
    data["systems"][5]["status"] = "building"
    data["catalogs"][-1].update(
        code="201002/0007",
        share_conditions="仅限金融监管用途",
        grade="3",
        publish_date="2023-05-06",
        format="api",
    )
    d = convert_directory(data)
    assert d.departments[0].code == "11000000000000001X"
    assert d.catalogs[-1].provider_code == "11000000000000001X"
    assert (d.systems[5].code, d.systems[5].status) == ("S-DX-006", SystemStatus.BUILDING)
    last = d.catalogs[-1]
    assert (last.code, last.classification, last.grade, last.format.value) == ("201002/0007", "201002", "3", "api")
    assert last.share_conditions == "仅限金融监管用途" and last.publish_date.isoformat() == "2023-05-06"
    # the catalogs produced by that system (人口库, 全区法人数据库) point at its explicit code
    assert [c.name for c in d.catalogs if c.source_system == "S-DX-006"] == ["人口库", "全区法人数据库"]


def test_late_due_makes_a_system_planned(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["systems"][0]["due"] = "2026-12"
    data["systems"][1]["due"] = "2026-11"
    d = convert_directory(data)
    assert d.systems[0].status is SystemStatus.PLANNED
    assert d.systems[1].status is SystemStatus.ONLINE


def test_empty_file_gives_empty_directory() -> None:
    assert directory_counts(convert_directory({"about": "nothing"})) == dict.fromkeys(
        ("jurisdictions", "departments", "systems", "catalogs"), 0
    )


# ------------------------------------------------------------------------------------------- errors


def seed_error(data: dict[str, Any]) -> str:
    with pytest.raises(SeedError) as exc:
        convert_directory(data)
    assert isinstance(exc.value, ValueError)
    return str(exc.value)


def test_department_with_unknown_jurisdiction(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["departments"][3]["jurisdiction"] = "110105"
    assert seed_error(data) == (
        "departments[3] 西城区卫生健康委员会: jurisdiction '110105' is not a jurisdiction of the file"
    )


def test_system_owner_not_a_department(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["systems"][5]["owner"] = "大兴区不存在局"
    assert seed_error(data) == "systems[5] 城市基础数据库: owner '大兴区不存在局' is not a department of the file"


def test_catalog_owner_not_a_department(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["catalogs"][3]["owner"] = "X"
    assert seed_error(data) == "catalogs[3] 宏观经济基础库: owner 'X' is not a department of the file"


def test_catalog_source_system_unknown(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["catalogs"][17]["source_system"] = "不存在的系统"
    assert seed_error(data) == "catalogs[17] 人口库: source_system '不存在的系统' is not a system name of the file"


def test_jurisdiction_parent_unknown_or_wrong_tier(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["jurisdictions"][4]["parent"] = "110105"
    assert seed_error(data) == "jurisdictions[4] 大栅栏街道: parent '110105' is not a jurisdiction of the file"
    data = fresh(raw)
    data["jurisdictions"][4]["parent"] = "110000"
    assert "a street cannot have the city '110000' as parent" in seed_error(data)


def test_duplicate_jurisdiction_id(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["jurisdictions"].append(dict(data["jurisdictions"][1]))
    assert (
        seed_error(data)
        == "jurisdictions[8] 东城区: duplicate jurisdiction id '110101', already used by jurisdictions[1] 东城区"
    )


def test_duplicate_department_name_within_jurisdiction(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["departments"].append({"name": "西城区民政局", "jurisdiction": "110102"})
    message = seed_error(data)
    assert message.startswith("departments[28] 西城区民政局: duplicate department name '西城区民政局'")
    assert "departments[4] 西城区民政局" in message


def test_same_department_name_in_two_jurisdictions_is_ambiguous_for_owners(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["departments"].append({"name": "西城区民政局", "jurisdiction": "110102/月坛街道"})
    message = seed_error(data)
    assert message.startswith("systems[")
    assert "owner '西城区民政局' is ambiguous" in message
    # ... which owner_jurisdiction resolves
    for entry in data["systems"] + data["catalogs"]:
        if entry["owner"] == "西城区民政局":
            entry["owner_jurisdiction"] = "110102"
    d = convert_directory(data)
    assert len(d.departments) == 29


def test_duplicate_system_name_within_owner(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["systems"].append(dict(data["systems"][0], source="另一来源"))
    assert seed_error(data).startswith("systems[69] 智能灯杆试点: duplicate system name '智能灯杆试点'")


def test_duplicate_catalog_name_within_owner(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["catalogs"].append(dict(data["catalogs"][0], note="重复"))
    assert seed_error(data).startswith("catalogs[22] 人口基础信息库: duplicate catalog name '人口基础信息库'")


def test_same_catalog_name_under_two_owners_is_fine(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["catalogs"].append(dict(data["catalogs"][0], owner="大兴区经济和信息化局", source_system=None))
    d = convert_directory(data)
    assert d.catalogs[0].code != d.catalogs[-1].code


def test_duplicate_explicit_code(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["systems"][0]["code"] = "S-1"
    data["systems"][1]["code"] = "S-1"
    assert seed_error(data).startswith("systems[1] 宽带网络接入水平与服务能力提升: duplicate system code 'S-1'")


def test_validation_error_keeps_field_path(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["catalogs"][2]["items"][1]["type"] = "varchar"
    message = seed_error(data)
    assert message.startswith("catalogs[2] 地理信息基础库（一张底图）: invalid CatalogRecord: data_items.1.data_type:")
    data = fresh(raw)
    data["catalogs"][0]["share_type"] = "sometimes"
    assert "share_type: Input should be" in seed_error(data)
    data = fresh(raw)
    data["jurisdictions"][2]["tier"] = "province"
    assert seed_error(data).startswith("jurisdictions[2] 西城区: invalid Jurisdiction: tier:")
    data = fresh(raw)
    data["systems"][0]["due"] = "2021-7"
    assert seed_error(data).startswith("systems[0] 智能灯杆试点: invalid SystemRecord: due:")


def test_malformed_entries(raw: dict[str, Any]) -> None:
    data = fresh(raw)
    data["catalogs"][0]["share_typ"] = "conditional"
    assert seed_error(data) == "catalogs[0] 人口基础信息库: unknown key 'share_typ'"
    data = fresh(raw)
    del data["systems"][2]["name"]
    assert seed_error(data) == "systems[2]: 'name' must be a non-empty string"
    data = fresh(raw)
    data["departments"][1] = "西城区"
    assert seed_error(data) == "departments[1]: expected an object, got str"
    assert seed_error({"catalogs": {}}) == "catalogs: expected a list, got dict"
    data = fresh(raw)
    del data["catalogs"][5]["items"]
    assert "data_items: Field required" in seed_error(data)


def test_read_directory_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(SeedError, match="not a UTF-8 JSON file"):
        read_directory(bad)
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(SeedError, match="expected a JSON object"):
        read_directory(bad)
    with pytest.raises(FileNotFoundError):
        read_directory(tmp_path / "missing.json")
