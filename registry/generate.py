"""Deterministic, Beijing-scale directory generator (benchmark data set).

:func:`generate_directory` writes nothing and reads nothing: from a :class:`Scale` and an integer seed
it builds two JSON documents, a *directory document* in exactly the shape of
``data/beijing-seed-directory.json`` (converted by :func:`registry.seed.convert_directory`, loaded by
``dirchain load``) and a *sharing document* in the shape of ``data/beijing-seed-sharing.json`` (read by
:func:`registry.loader.read_sharing`). :func:`dumps` turns a document into the bytes that are written;
the same scale and seed give the same bytes (one ``random.Random(seed)``, no clock, no global random,
no iteration over hashed sets).

What the ``beijing`` scale reproduces (DESIGN.md §5, the seed file's ``aggregate_figures``):

* jurisdictions: 北京市 (110000), its 16 districts with their GB/T 2260 codes and names, and 343 streets
  spread over the districts in roughly their real numbers (:data:`BEIJING_DISTRICTS`), named
  ``<district>第<n>街道`` with the seed's id pattern ``<district code>/<name>``;
* departments: 20 city bureaus, 8–14 bureaus per district, one street office (街道办事处) per street;
  every generated department name ends in :data:`MARKER` (``（模拟）``) so that none equals a department
  of the seed file, whose codes are derived from (jurisdiction, name);
* exactly 8,193 catalogs with exactly 34,147 data items (1–256 per catalog, mostly 3–5, a tail of wide
  tables; mean 4.17), and exactly 1,860 systems; every department owns at least one system and one
  catalog, and every catalog names a source system of its own department;
* share types: 84 % shareable (``round(0.84 n)``), split between ``unconditional`` and ``conditional``
  in the seed file's own proportion among its shareable catalogs (12 : 9, i.e. 48 % / 36 % of all),
  16 % ``not_shared``; open types: 32 % open (``round(0.32 n)``, only shareable catalogs are opened),
  3 : 5 between ``unconditional`` and ``conditional`` as among the seed's open catalogs. Which
  catalogs get which type is a weighted draw (personal data is more often conditional or not shared,
  statistics and places more often unconditional and open); the counts are exact;
* catalog classification (分类) ``3`` (部门信息资源) + department type (2 digits) + subject (3 digits),
  e.g. ``302004``; the resource code is then derived by :mod:`registry.seed` as
  ``<classification>/<10 hex digits>``, the seed's pattern;
* values only from the vocabularies of the seed file and the models: update frequencies, formats,
  share methods, data item types (those the seed uses), grades ``1``–``4`` (DB11/T 1918-2021, the
  models' default vocabulary), the seed's programmes (专项) for systems.

Names: department names are unique across the file; system and catalog names start with their
department's name (without the marker), so they are unique across the file too (the loader resolves
sharing requests by catalog and department *name*, and source systems by system name).

Sharing requests (3,000 at ``beijing``): between two different departments (mostly towards city
bureaus and the requester's own district), never for the requester's own catalog, each (requester,
catalog) pair at most once, items a subset of the catalog's data item names. A request for a
``not_shared`` catalog expects ``refused``; one for an ``unconditional`` catalog ``granted`` (some
``revoked`` by the owner, a few ``expired``); one for a ``conditional`` catalog carries the owner's
decision (about 82 % approved → ``granted`` or ``revoked``, else ``rejected``). Requests expected to
expire have a period of ``Scale.expiring_period_s`` seconds (:data:`EXPIRING_PERIOD_S` at ``beijing``,
8 s at ``small``) and come first in the file, so that they are signed and sent first by the loader
and their grant ends while the loader waits for outcomes.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

__all__ = [
    "BEIJING",
    "BEIJING_DISTRICTS",
    "EXPIRING_PERIOD_S",
    "MARKER",
    "MEDIUM",
    "SCALES",
    "SMALL",
    "Scale",
    "dumps",
    "generate_directory",
]

#: Suffix of every generated department name (keeps them apart from the real seed's departments).
MARKER = "（模拟）"
#: Period (seconds) of a request expected to end ``expired`` at the ``beijing`` scale: long enough for
#: the loader to sign, send and see it granted (it comes first in the sharing phase) and short enough that
#: the loader does not sit waiting for the clock once the rest is sent. ``medium`` uses 20 s, ``small``
#: 8 s (the seed file uses 6 s).
EXPIRING_PERIOD_S = 30

#: Beijing's 16 districts: (GB/T 2260 code, name, number of streets and towns). The numbers follow
#: the real spread of 街道/乡镇 over the districts, adjusted to the published total of 343.
BEIJING_DISTRICTS: tuple[tuple[str, str, int], ...] = (
    ("110101", "东城区", 17),
    ("110102", "西城区", 15),
    ("110105", "朝阳区", 43),
    ("110106", "丰台区", 26),
    ("110107", "石景山区", 9),
    ("110108", "海淀区", 29),
    ("110109", "门头沟区", 13),
    ("110111", "房山区", 28),
    ("110112", "通州区", 22),
    ("110113", "顺义区", 25),
    ("110114", "昌平区", 22),
    ("110115", "大兴区", 24),
    ("110116", "怀柔区", 16),
    ("110117", "平谷区", 18),
    ("110118", "密云区", 20),
    ("110119", "延庆区", 16),
)
_CITY = ("110000", "北京市")


@dataclass(frozen=True)
class Scale:
    """Size of a generated directory.

    ``districts``: (GB/T 2260 code, name, number of streets) per district under 北京市.
    ``city_departments``: number of city bureaus. ``district_departments``: (min, max) bureaus per
    district (each district draws a number in that range); every street has one street office.
    ``catalogs``, ``data_items``, ``systems``: exact totals (need ``systems ≥ departments``,
    ``departments ≤ catalogs ≤ data_items ≤ 256 × catalogs``). ``requests``: sharing requests.
    ``share_ratio``, ``open_ratio``: shares of shareable and open catalogs (in [0, 1]).
    ``expiring_period_s``: period (seconds) of the requests expected to end ``expired``.
    """

    name: str
    districts: tuple[tuple[str, str, int], ...]
    city_departments: int
    district_departments: tuple[int, int]
    catalogs: int
    data_items: int
    systems: int
    requests: int
    share_ratio: float = 0.84
    open_ratio: float = 0.32
    expiring_period_s: int = 180

    @property
    def streets(self) -> int:
        """Number of streets (街道/乡镇) of the scale."""
        return sum(n for _, _, n in self.districts)


#: Beijing as published: 1 city, 16 districts, 343 streets, 8,193 catalogs, 34,147 data items, 1,860 systems.
BEIJING = Scale(
    name="beijing",
    districts=BEIJING_DISTRICTS,
    city_departments=20,
    district_departments=(8, 14),
    catalogs=8193,
    data_items=34147,
    systems=1860,
    requests=3000,
    expiring_period_s=EXPIRING_PERIOD_S,
)
#: An eighth of Beijing for profiling: 1 city, 3 districts, 20 streets, 1,000 catalogs.
MEDIUM = Scale(
    name="medium",
    districts=(("110101", "东城区", 6), ("110102", "西城区", 5), ("110105", "朝阳区", 9)),
    city_departments=20,
    district_departments=(8, 14),
    catalogs=1000,
    data_items=4170,
    systems=230,
    requests=400,
    expiring_period_s=20,
)
#: A smoke-test size: 1 city, 2 districts, 3 streets, 50 catalogs.
SMALL = Scale(
    name="small",
    districts=(("110101", "东城区", 2), ("110102", "西城区", 1)),
    city_departments=2,
    district_departments=(2, 3),
    catalogs=50,
    data_items=210,
    systems=14,
    requests=30,
    expiring_period_s=8,
)
#: The presets by name.
SCALES: dict[str, Scale] = {s.name: s for s in (BEIJING, MEDIUM, SMALL)}

# ------------------------------------------------------------------------------------- vocabularies

# Kinds of subject a catalog is about; decide its leading data items and its share/open weights.
_PERSON, _ORG, _PLACE, _EVENT, _STAT = "person", "org", "place", "event", "stat"


@dataclass(frozen=True)
class _DeptType:
    city_name: str  # e.g. 民政局 → 北京市民政局
    district_name: str  # e.g. 民政局 → 东城区民政局
    sensitivity: float  # weight of not_shared / conditional
    openness: float  # weight of being opened
    programme: str  # one of the seed's programmes (专项)
    subjects: tuple[tuple[str, str], ...]  # (subject, kind)
    systems: tuple[str, ...]


_DEPT_TYPES: tuple[_DeptType, ...] = (
    _DeptType("公安局", "公安分局", 3.0, 0.2, "智慧安全",
              (("户籍人口", _PERSON), ("流动人口", _PERSON), ("机动车", _PLACE), ("机动车驾驶人", _PERSON),
               ("交通违法", _EVENT), ("治安案件", _EVENT), ("出入境证件", _PERSON), ("重点场所", _PLACE),
               ("保安服务企业", _ORG), ("旅馆业", _ORG)),
              ("人口管理信息系统", "交通管理综合应用平台", "治安管理信息系统", "视频图像信息共享平台")),
    _DeptType("民政局", "民政局", 1.6, 0.6, "公共服务平台",
              (("低保对象", _PERSON), ("特困供养人员", _PERSON), ("养老机构", _ORG), ("社会组织", _ORG),
               ("婚姻登记", _PERSON), ("殡葬服务", _EVENT), ("残疾人两项补贴对象", _PERSON), ("社区", _PLACE),
               ("养老服务驿站", _PLACE), ("临时救助", _EVENT)),
              ("社会救助信息系统", "养老服务管理平台", "婚姻登记管理系统", "社会组织管理系统")),
    _DeptType("人力资源和社会保障局", "人力资源和社会保障局", 1.6, 0.5, "智慧就业",
              (("参保人员", _PERSON), ("参保单位", _ORG), ("就业登记", _PERSON), ("失业人员", _PERSON),
               ("职业技能培训", _EVENT), ("劳动保障监察案件", _EVENT), ("引进人才", _PERSON),
               ("人力资源服务机构", _ORG), ("就业岗位", _STAT)),
              ("社会保险信息系统", "公共就业服务平台", "劳动保障监察系统", "职业技能培训管理系统")),
    _DeptType("卫生健康委员会", "卫生健康委员会", 2.2, 0.5, "智慧医疗体系",
              (("医疗机构", _ORG), ("执业医师", _PERSON), ("出生医学证明", _PERSON), ("预防接种", _EVENT),
               ("传染病报告", _EVENT), ("家庭医生签约", _PERSON), ("公共卫生", _STAT), ("卫生监督", _EVENT),
               ("急救站点", _PLACE)),
              ("全民健康信息平台", "公共卫生应急指挥系统", "家庭医生签约服务系统", "卫生监督执法系统")),
    _DeptType("教育委员会", "教育委员会", 1.4, 0.8, "智慧教育",
              (("中小学校", _ORG), ("在校学生", _PERSON), ("教职工", _PERSON), ("招生入学", _EVENT),
               ("校外培训机构", _ORG), ("学位资源", _STAT), ("幼儿园", _ORG), ("校舍", _PLACE)),
              ("教育管理公共服务平台", "中小学学籍管理系统", "招生入学服务系统", "校园安全管理系统")),
    _DeptType("规划和自然资源委员会", "规划和自然资源局", 0.9, 1.2, "智慧市政",
              (("国土空间规划", _PLACE), ("建设用地", _PLACE), ("不动产登记", _PERSON), ("测绘成果", _PLACE),
               ("地名地址", _PLACE), ("规划许可", _EVENT), ("地质灾害隐患点", _PLACE), ("林地", _PLACE)),
              ("国土空间基础信息平台", "不动产登记系统", "规划审批管理系统", "测绘成果管理系统")),
    _DeptType("住房和城乡建设委员会", "住房和城乡建设委员会", 1.0, 0.9, "智慧市政",
              (("房屋", _PLACE), ("物业服务企业", _ORG), ("建设工程项目", _EVENT), ("建筑施工企业", _ORG),
               ("保障性住房", _PERSON), ("房屋租赁", _PERSON), ("老旧小区改造", _PLACE), ("房地产开发企业", _ORG)),
              ("住房保障管理系统", "建设工程监管平台", "房屋租赁服务平台", "物业管理服务平台")),
    _DeptType("交通委员会", "交通局", 0.7, 1.6, "智慧交通",
              (("公交线路", _PLACE), ("出租汽车", _ORG), ("道路", _PLACE), ("停车场", _PLACE),
               ("交通流量", _STAT), ("道路客运企业", _ORG), ("共享单车", _STAT), ("公路桥梁", _PLACE)),
              ("交通运行监测平台", "静态交通管理系统", "客运行业管理系统", "公路养护管理系统")),
    _DeptType("市场监督管理局", "市场监督管理局", 0.7, 1.4, "智慧产业",
              (("市场主体", _ORG), ("食品经营者", _ORG), ("特种设备", _PLACE), ("产品质量抽检", _EVENT),
               ("消费投诉", _EVENT), ("计量器具", _PLACE), ("商标专利", _ORG), ("药品零售企业", _ORG),
               ("个体工商户", _ORG)),
              ("市场监管平台", "企业监管信息共享平台", "食品安全追溯系统", "特种设备安全监管系统")),
    _DeptType("生态环境局", "生态环境局", 0.6, 1.7, "智慧生态",
              (("排污单位", _ORG), ("空气质量", _STAT), ("水环境质量", _STAT), ("环境影响评价", _EVENT),
               ("环境执法", _EVENT), ("噪声监测点", _PLACE), ("危险废物经营单位", _ORG), ("土壤环境", _STAT)),
              ("生态环境监测网络平台", "污染源监管系统", "环境执法管理系统", "环评审批系统")),
    _DeptType("统计局", "统计局", 0.4, 2.0, "智慧云",
              (("国民经济核算", _STAT), ("规模以上工业企业", _ORG), ("人口抽样调查", _STAT),
               ("固定资产投资", _STAT), ("居民收支", _STAT), ("统计调查单位", _ORG), ("服务业", _STAT),
               ("能源统计", _STAT)),
              ("统计联网直报平台", "统计数据库系统", "统计调查管理系统")),
    _DeptType("应急管理局", "应急管理局", 1.3, 0.8, "智慧安全",
              (("危险化学品企业", _ORG), ("安全生产事故", _EVENT), ("应急物资", _PLACE), ("应急避难场所", _PLACE),
               ("自然灾害", _EVENT), ("应急救援队伍", _ORG), ("重大危险源", _PLACE), ("安全生产执法", _EVENT)),
              ("应急指挥综合平台", "安全生产监管系统", "应急物资管理系统", "“双预防”管理系统")),
    _DeptType("水务局", "水务局", 0.7, 1.3, "智慧市政",
              (("河道", _PLACE), ("供水企业", _ORG), ("排水管网", _PLACE), ("水文监测", _STAT),
               ("节水用户", _ORG), ("防汛", _EVENT), ("水库", _PLACE), ("取水许可", _EVENT)),
              ("水务综合监管平台", "防汛指挥调度系统", "排水管网管理系统", "水资源监测系统")),
    _DeptType("城市管理委员会", "城市管理委员会", 0.7, 1.2, "城市运行管理平台",
              (("市政设施", _PLACE), ("环卫作业", _EVENT), ("垃圾分类", _STAT), ("户外广告", _PLACE),
               ("燃气供热企业", _ORG), ("背街小巷", _PLACE), ("城市照明", _PLACE), ("公共厕所", _PLACE)),
              ("城市管理综合平台", "环境卫生监管系统", "燃气供热运行监测系统", "城市照明管理系统")),
    _DeptType("文化和旅游局", "文化和旅游局", 0.4, 2.0, "智慧生活",
              (("文化场馆", _PLACE), ("旅游景区", _PLACE), ("旅行社", _ORG), ("文物保护单位", _PLACE),
               ("营业性演出", _EVENT), ("星级饭店", _ORG), ("公共图书馆", _PLACE), ("网吧", _ORG)),
              ("文化旅游公共服务平台", "旅游监测系统", "文化市场综合执法系统")),
    _DeptType("农业农村局", "农业农村局", 0.6, 1.3, "智慧产业",
              (("农业经营主体", _ORG), ("耕地", _PLACE), ("农产品质量检测", _EVENT), ("动物防疫", _EVENT),
               ("农村集体经济组织", _ORG), ("农业机械", _PLACE), ("农村宅基地", _PLACE), ("种植养殖", _STAT)),
              ("农业农村大数据平台", "农产品质量安全追溯系统", "动物防疫监管系统")),
    _DeptType("商务局", "商务局", 0.6, 1.4, "智慧产业",
              (("外商投资企业", _ORG), ("商业网点", _PLACE), ("对外贸易", _STAT), ("单用途预付卡发卡企业", _ORG),
               ("商品交易市场", _PLACE), ("再生资源回收站点", _PLACE), ("社区便民商业", _PLACE)),
              ("商务运行监测系统", "单用途预付卡监管平台", "商业网点管理系统")),
    _DeptType("发展和改革委员会", "发展和改革委员会", 0.7, 1.2, "智慧产业",
              (("固定资产投资项目", _EVENT), ("价格监测", _STAT), ("公共信用", _ORG), ("重点工程", _EVENT),
               ("能源消费", _STAT), ("政府投资项目", _EVENT), ("经济运行", _STAT)),
              ("投资项目在线审批监管平台", "公共信用信息服务平台", "价格监测系统", "经济运行监测平台")),
    _DeptType("财政局", "财政局", 1.5, 0.6, "智慧云",
              (("预算单位", _ORG), ("政府采购", _EVENT), ("财政专项资金", _STAT), ("非税收入", _STAT),
               ("行政事业单位国有资产", _PLACE), ("会计人员", _PERSON), ("惠民补贴", _PERSON)),
              ("预算管理一体化系统", "政府采购管理系统", "国有资产管理系统")),
    _DeptType("司法局", "司法局", 2.0, 0.5, "智慧政法",
              (("律师事务所", _ORG), ("执业律师", _PERSON), ("人民调解", _EVENT), ("社区矫正对象", _PERSON),
               ("法律援助", _EVENT), ("公证机构", _ORG), ("行政复议", _EVENT)),
              ("公共法律服务平台", "社区矫正管理系统", "人民调解管理系统")),
    _DeptType("政务服务管理局", "政务服务局", 0.8, 1.0, "互联网+政务服务",
              (("政务服务事项", _EVENT), ("办件", _EVENT), ("政务服务中心", _PLACE), ("12345热线诉求", _EVENT),
               ("电子证照", _PERSON), ("政务服务评价", _STAT), ("企业开办", _ORG)),
              ("政务服务综合管理平台", "12345热线办理系统", "电子证照库", "一网通办平台")),
    _DeptType("经济和信息化局", "经济和信息化局", 0.6, 1.3, "智慧云",
              (("软件和信息服务企业", _ORG), ("信息化项目", _EVENT), ("政务云资源", _PLACE), ("工业企业", _ORG),
               ("政务数据共享交换", _STAT), ("通信基础设施", _PLACE), ("专精特新企业", _ORG)),
              ("政务云管理平台", "数据共享交换平台", "信息化项目管理系统", "政务资源目录系统")),
    _DeptType("退役军人事务局", "退役军人事务局", 1.8, 0.4, "公共服务平台",
              (("退役军人", _PERSON), ("优抚对象", _PERSON), ("退役军人服务站", _PLACE), ("安置就业", _EVENT),
               ("烈士纪念设施", _PLACE)),
              ("退役军人信息管理系统", "优抚安置管理系统")),
    _DeptType("体育局", "体育局", 0.4, 1.8, "智慧生活",
              (("体育场馆", _PLACE), ("社会体育指导员", _PERSON), ("体育赛事", _EVENT), ("全民健身设施", _PLACE),
               ("体育社会组织", _ORG), ("高危险性体育项目经营单位", _ORG)),
              ("全民健身公共服务平台", "体育赛事管理系统")),
)

_STREET_OFFICE = _DeptType(
    "街道办事处", "街道办事处", 1.0, 1.0, "社区智慧化",
    (("网格", _PLACE), ("社区居民", _PERSON), ("辖区企业", _ORG), ("接诉即办工单", _EVENT), ("城市部件", _PLACE),
     ("志愿者", _PERSON), ("老旧小区", _PLACE), ("出租房屋", _PLACE), ("社区服务站", _PLACE),
     ("门前三包责任单位", _ORG), ("重点人群", _PERSON), ("垃圾分类桶站", _PLACE)),
    ("网格化社会服务管理系统", "接诉即办平台", "社区综合服务平台", "城市体检评估系统", "街道城市大脑"),
)

#: Systems every department may run besides those of its type.
_COMMON_SYSTEMS = ("办公自动化系统", "数据资源管理平台", "门户网站", "档案管理系统", "视频会议系统", "移动办公平台")
_SYSTEM_VARIANTS = ("", "（二期）", "移动端", "数据分析子系统", "（升级改造）", "（三期）")

# (name, data item type): only the types the seed file uses.
_IDENTITY: dict[str, tuple[tuple[str, str], ...]] = {
    _PERSON: (("公民身份号码", "string"), ("姓名", "string"), ("性别", "code"), ("出生日期", "date"),
              ("联系电话", "string"), ("居住地址", "string"), ("户籍地址", "string"), ("民族", "code")),
    _ORG: (("统一社会信用代码", "string"), ("机构名称", "string"), ("法定代表人", "string"), ("注册地址", "string"),
           ("行业代码", "code"), ("成立日期", "date"), ("经营范围", "string"), ("登记机关", "string")),
    _PLACE: (("设施编码", "string"), ("设施名称", "string"), ("地址", "string"), ("经度", "decimal"),
             ("纬度", "decimal"), ("空间位置", "geometry"), ("权属单位", "string"), ("面积", "decimal")),
    _EVENT: (("业务编号", "string"), ("事项类型", "code"), ("发生时间", "datetime"), ("发生地址", "string"),
             ("办理状态", "code"), ("承办单位", "string"), ("当事人", "string")),
    _STAT: (("指标代码", "string"), ("指标名称", "string"), ("统计期", "string"), ("数值", "decimal"),
            ("计量单位", "string"), ("统计范围", "code")),
}

# (aspect of the subject, its data items, update frequencies it plausibly has)
_ASPECTS: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]], ...] = (
    ("基本信息", (("登记日期", "date"), ("数据状态", "code")), ("daily", "weekly", "monthly")),
    ("变更记录", (("变更事项", "code"), ("变更前内容", "string"), ("变更后内容", "string"), ("变更日期", "date")),
     ("daily", "weekly")),
    ("统计数据", (("统计期", "string"), ("统计数量", "integer"), ("统计口径", "string")),
     ("monthly", "quarterly", "yearly")),
    ("审批信息", (("审批事项", "string"), ("审批结果", "code"), ("审批日期", "date"), ("审批机关", "string")),
     ("daily", "weekly")),
    ("许可信息", (("许可证号", "string"), ("许可事项", "string"), ("有效期起", "date"), ("有效期止", "date")),
     ("daily", "weekly", "monthly")),
    ("监督检查记录", (("检查编号", "string"), ("检查日期", "date"), ("检查结果", "code"), ("检查人员", "string")),
     ("daily", "weekly", "monthly")),
    ("行政处罚信息", (("处罚决定书文号", "string"), ("处罚事由", "string"), ("罚没金额", "decimal"),
                  ("处罚日期", "date")), ("daily", "weekly")),
    ("台账", (("台账编号", "string"), ("责任人", "string"), ("登记日期", "date")), ("weekly", "monthly")),
    ("名录", (("序号", "integer"), ("类别", "code"), ("纳入日期", "date")), ("monthly", "quarterly")),
    ("空间分布", (("空间位置", "geometry"), ("经度", "decimal"), ("纬度", "decimal"), ("所属网格", "string")),
     ("monthly", "quarterly")),
    ("监测数据", (("监测点编码", "string"), ("监测时间", "datetime"), ("监测值", "decimal"), ("监测指标", "code")),
     ("realtime", "daily")),
    ("补贴发放信息", (("发放金额", "decimal"), ("发放日期", "date"), ("发放批次", "string"), ("资金来源", "code")),
     ("monthly", "quarterly")),
    ("服务记录", (("服务编号", "string"), ("服务类型", "code"), ("服务时间", "datetime"), ("服务人员", "string")),
     ("realtime", "daily")),
    ("投诉举报信息", (("工单编号", "string"), ("诉求内容", "string"), ("受理时间", "datetime"), ("办结状态", "code")),
     ("realtime", "daily")),
    ("资质信息", (("资质证书编号", "string"), ("资质等级", "code"), ("发证日期", "date"), ("有效期止", "date")),
     ("weekly", "monthly")),
    ("评价结果", (("评价年度", "string"), ("评价等级", "code"), ("评价得分", "decimal")), ("quarterly", "yearly")),
    ("档案", (("档案编号", "string"), ("建档日期", "date"), ("建档机构", "string")), ("daily", "monthly")),
    ("预警信息", (("预警编号", "string"), ("预警级别", "code"), ("预警时间", "datetime"), ("处置措施", "string")),
     ("realtime", "daily")),
    ("年度报告", (("报告年度", "string"), ("报送日期", "date"), ("报告摘要", "string")), ("yearly",)),
    ("办件信息", (("办件编号", "string"), ("申请时间", "datetime"), ("办结时间", "datetime"), ("办理结果", "code")),
     ("realtime", "daily")),
)
_EXTRA_ITEMS: tuple[tuple[str, str], ...] = (
    ("所属区", "string"), ("所属街道", "string"), ("经办机构", "string"), ("经办人", "string"),
    ("数据来源", "string"), ("更新时间", "datetime"), ("备注", "string"), ("记录创建时间", "datetime"),
    ("有效标志", "code"), ("联系人", "string"), ("办公电话", "string"), ("业务年度", "string"),
)

# Formats, share methods, grades (models' vocabularies) with weights.
_FORMATS = (("database", 62), ("api", 15), ("spreadsheet", 12), ("file", 11))
_SHARE_METHODS = (("exchange_platform", 70), ("api", 20), ("file_download", 10))
_GRADES = {"not_shared": ("3", "4"), "conditional": ("2", "3"), "unconditional": ("1", "2")}
_FREQUENCY_CN = {"realtime": "实时", "daily": "每日", "weekly": "每周", "monthly": "每月", "quarterly": "每季度",
                 "yearly": "每年"}
# Items per catalog (1..12) → weight; a tail of wide tables is added separately.
_ITEM_COUNTS = ((1, 60), (2, 150), (3, 270), (4, 240), (5, 130), (6, 70), (7, 30), (8, 18), (9, 10),
                (10, 7), (11, 4), (12, 3))
_WIDE_TABLE_SHARE = 0.012

_SHARE_CONDITIONS = (
    "仅限履行法定职责使用，经数据提供部门审核后共享",
    "涉及个人信息，按最小必要原则审核后共享所需信息项",
    "须签订数据使用协议，明确使用范围和安全责任",
    "仅提供核验结果（是/否），不提供明细数据",
    "涉及商业秘密，须经数据提供部门审核并脱敏后共享",
)
_NOT_SHARED_BASES = (
    "涉及个人隐私，依据《中华人民共和国个人信息保护法》不予共享",
    "涉及国家秘密，依据《中华人民共和国保守国家秘密法》不予共享",
    "涉及商业秘密，依据《中华人民共和国反不正当竞争法》不予共享",
    "法律、行政法规明确规定不得提供给其他部门",
)
_OPEN_CONDITIONS = (
    "经申请审核后向特定对象开放，限非商业用途",
    "须签署数据开放利用协议，按季度报告利用情况",
    "脱敏汇总后开放，原始明细不予开放",
)
_PURPOSES = (
    "核验申请人身份及基本信息", "开展联合监管和信用分类监管", "社会救助对象资格复核", "辖区人口和房屋底数核对",
    "开展政务服务事项“一网通办”免提交材料", "接诉即办诉求核实与派单", "城市运行监测和应急处置",
    "编制年度统计分析报告", "开展重点项目审批协同", "公共卫生事件流调溯源", "网格化管理基础数据更新",
    "营商环境评价和企业服务", "规划编制现状数据比对", "生态环境执法线索核查", "安全生产隐患排查协同",
    "惠民补贴发放资格比对", "教育入学资格审核", "老旧小区改造对象摸排", "行政执法案件办理",
    "城市体检评估指标计算",
)
_BASES = (
    "《政务信息资源共享管理暂行办法》第九条", "《北京市公共数据管理办法》第十五条",
    "《北京市数字经济促进条例》第二十条", "《中华人民共和国数据安全法》第三十八条",
    "《社会救助暂行办法》第十一条", "《北京市优化营商环境条例》第五十三条", "《北京市接诉即办工作条例》第十九条",
    "《中华人民共和国统计法》第二十五条", "《北京市街道办事处条例》第十条",
    "《中华人民共和国突发事件应对法》第三十七条",
    "《优化营商环境条例》第三十七条", "《北京市生活垃圾管理条例》第十二条",
)
_DECISION_APPROVE = ("用途明确且限于最小必要信息项，同意共享", "符合法定职责范围，同意按申请信息项共享",
                     "经审核同意共享，请按协议约定范围使用")
_DECISION_REJECT = ("申请用途不属于本数据资源的共享范围", "申请信息项超出履职所需的最小范围",
                    "未提供有效的法定依据，不予同意")
_REVOCATION_REASONS = ("申请单位用途已完成，依申请停止共享", "发现超范围使用，停止共享", "数据资源调整，原共享授权终止")
_PERIODS_S = (30 * 86400, 90 * 86400, 180 * 86400, 365 * 86400, 730 * 86400, 1095 * 86400)

#: Programmes, frequencies and targets copied into the generated document (the seed's vocabularies).
_VOCABULARIES: dict[str, Any] = {
    "tier": ["city", "district", "street"],
    "share_type": {"unconditional": "无条件共享", "conditional": "有条件共享", "not_shared": "不予共享"},
    "open_type": {"unconditional": "无条件开放", "conditional": "有条件开放", "none": "不予开放"},
    "update_frequency": ["realtime", "daily", "weekly", "monthly", "quarterly", "yearly"],
}
_TARGETS_2025 = {
    "unconditional_share_rate_min": 0.8,
    "share_demand_satisfaction_rate_min": 0.9,
    "open_department_ratio_min": 0.95,
}
#: Unconditional : conditional among shareable catalogs, and among open ones (the seed file's counts).
_UNCONDITIONAL_SHARE_OF_SHAREABLE = (12, 21)
_UNCONDITIONAL_OPEN_OF_OPEN = (3, 8)


# ------------------------------------------------------------------------------------------ helpers


@dataclass
class _Dept:
    name: str  # full name, with MARKER
    short: str  # without MARKER: the prefix of its systems and catalogs
    jurisdiction: str
    district: str | None  # district code (None for the city)
    kind: _DeptType
    systems: list[str] = field(default_factory=list)
    catalogs: list[int] = field(default_factory=list)  # indexes into the catalog list


@dataclass
class _Catalog:
    owner: int  # index into departments
    name: str
    classification: str
    subject: str
    kind: str
    aspect: int
    items: list[tuple[str, str]] = field(default_factory=list)
    share_type: str = "unconditional"
    open_type: str = "none"


def _apportion(total: int, weights: Sequence[float], minimum: int = 1) -> list[int]:
    """Split ``total`` into integer parts ≥ ``minimum`` proportional to ``weights`` (largest remainder)."""
    rest = total - minimum * len(weights)
    if rest < 0:
        raise ValueError(f"cannot give {len(weights)} parts at least {minimum} each out of {total}")
    whole = sum(weights)
    quotas = [w * rest / whole for w in weights]
    counts = [minimum + int(q) for q in quotas]
    left = total - sum(counts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (int(quotas[i]) - quotas[i], i))
    for i in by_remainder[:left]:
        counts[i] += 1
    return counts


def _weighted_pick(rng: random.Random, candidates: Sequence[int], weights: Sequence[float], k: int) -> list[int]:
    """``k`` of ``candidates`` drawn without replacement with probability ∝ weight (Efraimidis–Spirakis)."""
    keyed = sorted(((math.log(1.0 - rng.random()) / w, c) for c, w in zip(candidates, weights, strict=True)),
                   reverse=True)
    return [c for _, c in keyed[:k]]


def _choice(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _item_counts(rng: random.Random, catalogs: int, total: int) -> list[int]:
    """Data items per catalog: 1..256 each, summing to ``total``."""
    if not catalogs <= total <= 256 * catalogs:
        raise ValueError(f"cannot spread {total} data items over {catalogs} catalogs (1..256 each)")
    values = [n for n, _ in _ITEM_COUNTS]
    weights = [w for _, w in _ITEM_COUNTS]
    counts = []
    for _ in range(catalogs):
        if rng.random() < _WIDE_TABLE_SHARE:
            counts.append(rng.randint(13, 40) if rng.random() < 0.9 else rng.randint(41, 120))
        else:
            counts.append(rng.choices(values, weights=weights)[0])
    diff = total - sum(counts)
    while diff:
        i = rng.randrange(catalogs)
        if diff > 0 and counts[i] < 256:
            counts[i] += 1
            diff -= 1
        elif diff < 0 and counts[i] > 1:
            counts[i] -= 1
            diff += 1
    return counts


def _items(rng: random.Random, subject: str, kind: str, aspect: int, n: int) -> list[tuple[str, str]]:
    """``n`` distinct (name, type) data items: the subject's key fields, then aspect and common fields."""
    identity = _IDENTITY[kind]
    head = list(identity[:2])
    pool: dict[str, str] = {}
    for name, typ in (*identity[2:], *_ASPECTS[aspect][1], *_EXTRA_ITEMS):
        if name not in pool and name not in (h[0] for h in head):
            pool[name] = typ
    rest = list(pool.items())
    rng.shuffle(rest)
    items = (head + rest)[:n]
    k = 1
    while len(items) < n:
        items.append((f"{subject}指标{k:03d}", "decimal"))
        k += 1
    return items


def _classification(kind: _DeptType, subject: int) -> str:
    """分类 of a generated catalog: class 3 (部门信息资源), item = the department type (01–25),
    category = the subject within the type (001–): e.g. ``302004``."""
    item = len(_DEPT_TYPES) + 1 if kind is _STREET_OFFICE else _DEPT_TYPES.index(kind) + 1
    return f"3{item:02d}{subject + 1:03d}"


def _month(rng: random.Random, first: tuple[int, int], last: tuple[int, int]) -> str:
    lo, hi = first[0] * 12 + first[1] - 1, last[0] * 12 + last[1] - 1
    m = rng.randint(lo, hi)
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


# ----------------------------------------------------------------------------------------- generator


def generate_directory(scale: Scale, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Generate a directory of ``scale`` from ``seed``: ``(directory document, sharing document)``.

    The directory document has the keys ``about``, ``aggregate_figures`` (the generated totals and
    ratios), ``vocabularies``, ``jurisdictions``, ``departments``, ``systems`` and ``catalogs``, each
    entry shaped like the seed file's (no codes: :mod:`registry.seed` derives them). The sharing
    document has ``about`` and ``requests`` (``requester``, ``catalog``, ``items``, ``purpose``,
    ``basis``, ``period_s`` in seconds, optional ``decision``/``revocation``, ``expect``). Pure and
    deterministic: equal arguments give equal documents (and equal :func:`dumps` bytes).

    Raises ``ValueError`` if the scale's totals are inconsistent (fewer systems or catalogs than
    departments, items outside 1..256 per catalog).
    """
    rng = random.Random(seed)
    source = f"基准数据集（registry.generate 生成，规模 {scale.name}，种子 {seed}）"

    # Jurisdictions and departments.
    jurisdictions: list[dict[str, Any]] = [
        {"id": _CITY[0], "name": _CITY[1], "tier": "city", "parent": None, "gb2260_code": _CITY[0]}
    ]
    depts: list[_Dept] = []
    for kind in rng.sample(_DEPT_TYPES, scale.city_departments):
        short = _CITY[1] + kind.city_name
        depts.append(_Dept(short + MARKER, short, _CITY[0], None, kind))
    street_rows: list[dict[str, Any]] = []
    for code, name, streets in scale.districts:
        jurisdictions.append({"id": code, "name": name, "tier": "district", "parent": _CITY[0], "gb2260_code": code})
        count = rng.randint(*scale.district_departments)
        for kind in rng.sample(_DEPT_TYPES, count):
            short = name + kind.district_name
            depts.append(_Dept(short + MARKER, short, code, code, kind))
        for n in range(1, streets + 1):
            street = f"{name}第{n}街道"
            sid = f"{code}/{street}"
            street_rows.append({"id": sid, "name": street, "tier": "street", "parent": code, "gb2260_code": None})
            short = street + "办事处"
            depts.append(_Dept(short + MARKER, short, sid, code, _STREET_OFFICE))
    jurisdictions.extend(street_rows)
    if scale.systems < len(depts) or scale.catalogs < len(depts):
        raise ValueError(f"{len(depts)} departments need at least as many systems and catalogs, got "
                         f"{scale.systems} systems and {scale.catalogs} catalogs")

    # Catalogs per department: city bureaus hold the most, street offices the fewest.
    weights = []
    for d in depts:
        if d.district is None:
            weights.append(rng.uniform(60, 160))
        elif d.kind is _STREET_OFFICE:
            weights.append(rng.uniform(2, 8))
        else:
            weights.append(rng.uniform(12, 40))
    catalog_counts = _apportion(scale.catalogs, weights)
    system_counts = _apportion(scale.systems, [float(c) for c in catalog_counts])

    # Systems: the type's systems, then common ones, each in variants (二期, 移动端, …).
    for d, count in zip(depts, system_counts, strict=True):
        topics = list(d.kind.systems) + rng.sample(_COMMON_SYSTEMS, len(_COMMON_SYSTEMS))
        names = [f"{d.short}{t}{v}" for v in _SYSTEM_VARIANTS for t in topics]
        names += [f"{d.short}业务系统{k}" for k in range(1, count - len(names) + 1)]
        d.systems = names[:count]
    systems: list[dict[str, Any]] = []
    planned: set[str] = set()  # names only, never iterated
    for d in depts:
        for name in d.systems:
            late = rng.random() < 0.08
            due = _month(rng, (2026, 12), (2027, 12)) if late else _month(rng, (2016, 1), (2025, 12))
            if late:
                planned.add(name)
            systems.append({"name": name, "programme": d.kind.programme, "owner": d.name, "owner_assumed": False,
                            "due": due, "source": source})

    # Catalogs: subject × aspect of the department's type, without repetition.
    catalogs: list[_Catalog] = []
    for di, (d, count) in enumerate(zip(depts, catalog_counts, strict=True)):
        combos = [(s, a) for s in range(len(d.kind.subjects)) for a in range(len(_ASPECTS))]
        rng.shuffle(combos)
        for k in range(count):
            s, a = combos[k % len(combos)]
            subject, subject_kind = d.kind.subjects[s]
            part = f"（第{k // len(combos) + 1}部分）" if k >= len(combos) else ""
            d.catalogs.append(len(catalogs))
            name = f"{d.short}{subject}{_ASPECTS[a][0]}{part}"
            catalogs.append(_Catalog(di, name, _classification(d.kind, s), subject, subject_kind, a))
    for c, n in zip(catalogs, _item_counts(rng, scale.catalogs, scale.data_items), strict=True):
        c.items = _items(rng, c.subject, c.kind, c.aspect, n)

    # Share and open types: exact counts, weighted draws.
    n = scale.catalogs
    shareable_n = round(scale.share_ratio * n)
    unconditional_n = round(shareable_n * _UNCONDITIONAL_SHARE_OF_SHAREABLE[0] / _UNCONDITIONAL_SHARE_OF_SHAREABLE[1])
    open_n = min(round(scale.open_ratio * n), shareable_n)
    open_unconditional_n = round(open_n * _UNCONDITIONAL_OPEN_OF_OPEN[0] / _UNCONDITIONAL_OPEN_OF_OPEN[1])
    kind_sensitivity = {_PERSON: 3.0, _EVENT: 1.2, _ORG: 0.8, _PLACE: 0.5, _STAT: 0.3}
    everything = list(range(n))
    sens = [depts[c.owner].kind.sensitivity * kind_sensitivity[c.kind] for c in catalogs]
    not_shared = set(_weighted_pick(rng, everything, sens, n - shareable_n))
    shareable = [i for i in everything if i not in not_shared]
    unconditional = set(_weighted_pick(rng, shareable, [1.0 / sens[i] for i in shareable], unconditional_n))
    for i, c in enumerate(catalogs):
        c.share_type = "not_shared" if i in not_shared else "unconditional" if i in unconditional else "conditional"
    open_weight = {i: depts[catalogs[i].owner].kind.openness * (3.0 if i in unconditional else 1.0) / sens[i]
                   for i in shareable}
    opened = _weighted_pick(rng, shareable, [open_weight[i] for i in shareable], open_n)
    open_unconditional = set(_weighted_pick(rng, opened, [open_weight[i] for i in opened], open_unconditional_n))
    for i in opened:
        catalogs[i].open_type = "unconditional" if i in open_unconditional else "conditional"

    # Catalog entries.
    catalog_rows: list[dict[str, Any]] = []
    first_day = date(2019, 1, 1)
    for c in catalogs:
        d = depts[c.owner]
        online = [s for s in d.systems if s not in planned] or d.systems
        system = rng.choice(online)
        frequency = rng.choice(_ASPECTS[c.aspect][2])
        fmt = "stream" if frequency == "realtime" and rng.random() < 0.3 else _choice(rng, _FORMATS)
        row: dict[str, Any] = {
            "name": c.name,
            "owner": d.name,
            "classification": c.classification,
            "summary": f"{d.short}掌握的{c.name.removeprefix(d.short)}，由{system}产生，"
                       f"{_FREQUENCY_CN[frequency]}更新，共{len(c.items)}个信息项",
            "format": fmt,
            "share_type": c.share_type,
        }
        if c.share_type == "conditional":
            row["share_conditions"] = rng.choice(_SHARE_CONDITIONS)
        elif c.share_type == "not_shared":
            row["share_conditions"] = rng.choice(_NOT_SHARED_BASES)
        if c.share_type != "not_shared":
            row["share_method"] = _choice(rng, _SHARE_METHODS)
        row["open_type"] = c.open_type
        if c.open_type == "conditional":
            row["open_conditions"] = rng.choice(_OPEN_CONDITIONS)
        row.update({
            "update_frequency": frequency,
            "publish_date": (first_day + timedelta(days=rng.randrange(4 * 365))).isoformat(),
            "grade": "1" if c.open_type == "unconditional" else rng.choice(_GRADES[c.share_type]),
            "items": [{"name": name, "type": typ} for name, typ in c.items],
            "source_system": system,
            "source": source,
            "items_illustrative": True,
        })
        catalog_rows.append(row)

    requests = _requests(rng, scale, depts, catalogs)
    share_counts = {t: sum(1 for c in catalogs if c.share_type == t)
                    for t in ("unconditional", "conditional", "not_shared")}
    open_counts = {t: sum(1 for c in catalogs if c.open_type == t) for t in ("unconditional", "conditional", "none")}
    items_total = sum(len(c.items) for c in catalogs)
    directory = {
        "about": (
            f"Generated benchmark directory (registry.generate, scale '{scale.name}', seed {seed}), in the shape of "
            "beijing-seed-directory.json and at the size Beijing published for its directory chain. Names, "
            "systems, catalogs, data items and attributes are synthetic: plausible values drawn from the seed's "
            f"vocabularies with a fixed pseudo-random seed. Department names end in '{MARKER}' so that the file "
            "loads alongside the real seed; city and district ids and names are the real GB/T 2260 ones; streets "
            "are generated ('<district>第N街道', id '<district code>/<name>')."
        ),
        "aggregate_figures": {
            "source": source,
            "beijing_data_resource_classes_on_chain": len(catalogs),
            "beijing_data_items_on_chain": items_total,
            "beijing_information_systems_on_chain": len(systems),
            "committed_share_ratio": scale.share_ratio,
            "committed_open_ratio": scale.open_ratio,
            "share_types": share_counts,
            "open_types": open_counts,
            "beijing_districts": len(scale.districts),
            "beijing_streets_and_towns": scale.streets,
            "departments": len(depts),
            "targets_2025": dict(_TARGETS_2025),
        },
        "vocabularies": json.loads(json.dumps(_VOCABULARIES)),
        "jurisdictions": jurisdictions,
        "departments": [{"name": d.name, "jurisdiction": d.jurisdiction, "named_in_source": False} for d in depts],
        "systems": systems,
        "catalogs": catalog_rows,
    }
    sharing = {
        "about": (
            f"Generated data-sharing requests (registry.generate, scale '{scale.name}', seed {seed}) between "
            f"departments of {scale.name}-{seed}-directory.json, in the shape of beijing-seed-sharing.json: "
            "requesters, purposes, legal bases, periods, decisions and revocations are synthetic. No request is "
            "for the requester's own catalog; one for a not_shared catalog expects refused. Requests expected to "
            f"expire have a {scale.expiring_period_s} s period and come first. Departments and catalogs are referenced "
            "by name; items by data item name; period_s in seconds from the moment of loading."
        ),
        "requests": requests,
    }
    return directory, sharing


def _requests(rng: random.Random, scale: Scale, depts: list[_Dept], catalogs: list[_Catalog]) -> list[dict[str, Any]]:
    """Sharing requests between departments (see the module docstring)."""
    city = [i for i, c in enumerate(catalogs) if depts[c.owner].district is None]
    by_district: dict[str, list[int]] = {}
    for i, c in enumerate(catalogs):
        district = depts[c.owner].district
        if district is not None:
            by_district.setdefault(district, []).append(i)
    everything = list(range(len(catalogs)))
    requester_weights = [1.0 if d.kind is _STREET_OFFICE else 2.0 for d in depts]
    pairs: set[tuple[int, int]] = set()
    first: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    limit = min(scale.requests, sum(len(catalogs) - len(d.catalogs) for d in depts))
    attempts = 0
    while len(first) + len(rest) < limit:
        attempts += 1
        if attempts > 100 * limit + 1000:
            raise ValueError(f"cannot draw {limit} distinct sharing requests")
        r = rng.choices(range(len(depts)), weights=requester_weights)[0]
        d = depts[r]
        where = rng.random()
        pool = city if where < 0.45 else by_district.get(d.district or "", city) if where < 0.8 else everything
        if not pool:
            pool = everything
        ci = rng.choice(pool)
        c = catalogs[ci]
        if c.owner == r or (r, ci) in pairs:
            continue
        if c.share_type == "not_shared" and rng.random() > 0.25:
            continue
        pairs.add((r, ci))
        k = rng.randint(1, min(len(c.items), 6))
        chosen = sorted(rng.sample(range(len(c.items)), k))
        entry: dict[str, Any] = {
            "requester": d.name,
            "catalog": c.name,
            "items": [c.items[j][0] for j in chosen],
            "purpose": rng.choice(_PURPOSES),
            "basis": rng.choice(_BASES),
            "period_s": rng.choice(_PERIODS_S),
        }
        target = rest
        u = rng.random()
        if c.share_type == "not_shared":
            entry["expect"] = "refused"
        elif c.share_type == "unconditional":
            if u < 0.02:
                entry["period_s"] = scale.expiring_period_s
                entry["expect"] = "expired"
                target = first
            elif u < 0.06:
                entry["revocation"] = {"reason": rng.choice(_REVOCATION_REASONS)}
                entry["expect"] = "revoked"
            else:
                entry["expect"] = "granted"
        elif u < 0.82:
            entry["decision"] = {"approve": True, "reason": rng.choice(_DECISION_APPROVE)}
            if rng.random() < 0.05:
                entry["revocation"] = {"reason": rng.choice(_REVOCATION_REASONS)}
                entry["expect"] = "revoked"
            else:
                entry["expect"] = "granted"
        else:
            entry["decision"] = {"approve": False, "reason": rng.choice(_DECISION_REJECT)}
            entry["expect"] = "rejected"
        target.append(entry)
    return first + rest


def dumps(document: dict[str, Any]) -> bytes:
    """The bytes written for a generated document: UTF-8 JSON, one-space indent like the seed file,
    non-ASCII kept, trailing newline."""
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
