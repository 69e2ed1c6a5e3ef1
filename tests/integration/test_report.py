"""``dirchain audit-report``: the seed directory loaded at its own tiers on two anvil chains (city, district) through
the real per-jurisdiction service, then the report of 西城区 (110102) made from the service's SQLite index by the
command. Its figures are checked against truths counted by hand from the seed files and against the API
(``GET /kpis``, ``GET /catalogs?jurisdiction=…&tier=…``); the HTML page is opened in headless Chromium (which
must be installed: CI installs it) to check the rendered DOM holds the charts and the screenshot is not blank;
with ``--rpc`` the drift section compares the index with both chains, and a tampered copy of the index shows its
findings."""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import subprocess
import time
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from chain.node import AnvilNode
from dirchain.cli import SEED_FILE, SEED_SHARING_FILE, app
from dirchain.settings import Settings
from tests.integration.conftest import CITY_CHAIN_ID, DISTRICT_CHAIN_ID, TieredSeed

XICHENG = "110102"
KPIS = ("unconditional_share_rate", "share_demand_satisfaction_rate", "open_department_ratio")
CHART_TITLES = ("Catalogs 数据资源目录 held per tier", "Systems 信息系统 held per tier",
                "Departments 部门 held per tier", "Changes over time", "Unconditional-share rate",
                "Share-demand satisfaction rate", "Open-department ratio")
CHROMIUM_TIMEOUT_S = 60

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chains(tiered_seed: TieredSeed) -> dict[str, AnvilNode]:
    return tiered_seed.chains


@pytest.fixture(scope="module")
def tiered(tiered_seed: TieredSeed) -> tuple[Settings, TestClient]:
    """The per-jurisdiction service with the seed and its sharing requests loaded and synced to the city."""
    assert tiered_seed.summary.ok, {p: s.failed for p, s in tiered_seed.summary.phases.items() if s.failed}
    return tiered_seed.settings, tiered_seed.client


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["audit-report", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def report(tiered: tuple[Settings, TestClient], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any],
                                                                                                    Path]:
    """The 西城区 report made by the command (by name) from the service's index, without a chain: (JSON, HTML path)."""
    settings, _ = tiered
    out = tmp_path_factory.mktemp("report-out")
    result = _run(["西城区", "--database", settings.database_url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["audit-110102.html", "audit-110102.json"]
    return json.loads((out / "audit-110102.json").read_text(encoding="utf-8")), out / "audit-110102.html"


# ---------------------------------------------------------------------------------------- truths from the seed


def _seed_truths() -> dict[str, Any]:
    """Figures of 西城区 counted by hand from the seed files (no service involved)."""
    seed = json.loads(SEED_FILE.read_text(encoding="utf-8"))
    sharing = json.loads(SEED_SHARING_FILE.read_text(encoding="utf-8"))
    home = {d["name"]: d["jurisdiction"] for d in seed["departments"]}

    def inside(code: str) -> bool:
        return code == XICHENG or code.startswith(XICHENG + "/")

    own = [c for c in seed["catalogs"] if home[c["owner"]] == XICHENG]
    own_departments = [n for n, j in home.items() if j == XICHENG]
    open_owners = {c["owner"] for c in own if c["open_type"] != "none"}
    owner_of = {c["name"]: c["owner"] for c in seed["catalogs"]}
    requests = [r for r in sharing["requests"] if home[owner_of[r["catalog"]]] == XICHENG]
    granted = sum(r["expect"] in ("granted", "revoked", "expired") for r in requests)
    decided = granted + sum(r["expect"] in ("rejected", "refused") for r in requests)
    return {
        "catalogs": sum(inside(home[c["owner"]]) for c in seed["catalogs"]),
        "systems": sum(inside(home[s["owner"]]) for s in seed["systems"]),
        "departments": sum(inside(j) for j in home.values()),
        "street_catalogs": sum(home[c["owner"]].startswith(XICHENG + "/") for c in seed["catalogs"]),
        "street_departments": sum(j.startswith(XICHENG + "/") for j in home.values()),
        "streets": sorted(j["id"] for j in seed["jurisdictions"] if j["parent"] == XICHENG),
        "requests": sum(inside(home[owner_of[r["catalog"]]]) or inside(home[r["requester"]])
                        for r in sharing["requests"]),
        # 西城区's own KPIs (not rolled up)
        "unconditional_share_rate": (sum(c["share_type"] == "unconditional" for c in own), len(own)),
        "share_demand_satisfaction_rate": (granted, decided),
        "open_department_ratio": (len(open_owners), len(own_departments)),
    }


def _pair(ratio: dict[str, Any]) -> tuple[int, int]:
    return ratio["numerator"], ratio["denominator"]


# ---------------------------------------------------------------------------------------- figures


def test_report_names_the_jurisdiction_and_its_scope(report: tuple[dict[str, Any], Path]) -> None:
    data, _ = report
    truths = _seed_truths()
    assert data["format"] == "dirchain-audit-report/1"
    assert data["jurisdiction"] == {"code": XICHENG, "name": "西城区", "tier": "district",
                                    "parents": [{"code": "110000", "name": "北京市", "tier": "city"}]}
    assert [s["code"] for s in data["scope"]] == [XICHENG, *truths["streets"]]
    assert {c["chain_id"]: c["tiers"] for c in data["index"]} == {DISTRICT_CHAIN_ID: ["district", "street"],
                                                                  CITY_CHAIN_ID: ["city"]}


def test_kpis_equal_those_of_the_api_and_the_seed(report: tuple[dict[str, Any], Path],
                                                  tiered: tuple[Settings, TestClient]) -> None:
    data, _ = report
    _, client = tiered
    api = client.get("/kpis").json()
    truths = _seed_truths()
    kpis = data["kpis"]
    assert kpis["targets"] == api["targets"] == {"unconditional_share_rate": 0.8,
                                                 "share_demand_satisfaction_rate": 0.9, "open_department_ratio": 0.95}
    # the whole directory, as GET /kpis and as the README states for the seed: 12/22, 4/6, 5/28
    assert {k: _pair(kpis["overall"][k]) for k in KPIS} == {k: _pair(api["overall"][k]) for k in KPIS} == {
        "unconditional_share_rate": (12, 22), "share_demand_satisfaction_rate": (4, 6),
        "open_department_ratio": (5, 28)}
    api_per = {j["code"]: j for j in api["jurisdictions"]}
    per = {j["code"]: j for j in kpis["jurisdictions"]}
    assert list(per) == [s["code"] for s in data["scope"]]
    for code, figures in per.items():
        for k in KPIS:
            assert figures[k] == api_per[code][k], (code, k)
    for k in KPIS:
        assert _pair(per[XICHENG][k]) == truths[k], k
        # the scope rolled up: every catalog, request and department counts in exactly one jurisdiction
        assert _pair(kpis["scope"][k]) == tuple(map(sum, zip(*(_pair(f[k]) for f in per.values()), strict=True)))
        assert kpis["scope"][k]["met"] is False  # the seed meets none of the 2025 targets


def test_coverage_equals_the_catalog_and_system_listings(report: tuple[dict[str, Any], Path],
                                                          tiered: tuple[Settings, TestClient]) -> None:
    data, _ = report
    _, client = tiered
    truths = _seed_truths()
    cov = data["coverage"]
    assert cov["tiers"] == ["street", "district", "city"]
    for row in cov["rows"]:
        code = row["code"]
        for kind in ("catalogs", "systems"):
            listed = client.get(f"/{kind}", params={"jurisdiction": code, "limit": 1}).json()["total"]
            assert row[kind]["recorded"] == listed, (code, kind)
            for tier, cell in row[kind]["tiers"].items():
                if tier == "street" and row["tier"] == "district":
                    assert cell is None  # a street directory never holds a district's records
                    continue
                held = client.get(f"/{kind}", params={"jurisdiction": code, "tier": tier, "limit": 1}).json()["total"]
                assert cell == {"expected": listed, "held": held, "current": held}, (code, kind, tier)
        departments = client.get("/departments", params={"jurisdiction": code}).json()
        assert row["departments"]["recorded"] == len(departments)
    total = cov["total"]
    for kind in ("catalogs", "systems", "departments"):
        assert total[kind]["recorded"] == truths[kind], kind
        # synced: the district and the city hold every record of 西城区 and its streets at its latest version
        for tier in ("district", "city"):
            assert total[kind]["tiers"][tier] == dict.fromkeys(("expected", "held", "current"), truths[kind])
    assert total["catalogs"]["tiers"]["street"]["expected"] == truths["street_catalogs"] == 1
    assert total["departments"]["tiers"]["street"]["held"] == truths["street_departments"] == 4
    assert cov["gaps"] == []


def test_history_holds_every_version_and_sharing_event(report: tuple[dict[str, Any], Path],
                                                        tiered: tuple[Settings, TestClient]) -> None:
    data, _ = report
    _, client = tiered
    truths = _seed_truths()
    events = data["history"]["events"]
    versions = {(e["kind"], e["code"], e["version"]): e for e in events if e["kind"] != "sharing"}
    expected = {}
    for kind in ("catalogs", "systems"):
        for code in (s["code"] for s in data["scope"]):
            for item in client.get(f"/{kind}", params={"jurisdiction": code, "limit": 500}).json()["items"]:
                for v in client.get(f"/{kind}/{item['code']}").json()["versions"]:
                    expected[(kind[:-1], item["code"], v["version"])] = v
    assert set(versions) == set(expected) and len(expected) == truths["catalogs"] + truths["systems"]
    for key, v in expected.items():
        assert (versions[key]["action"], versions[key]["tx_hash"], versions[key]["block_number"]) == (
            v["action"], v["tx_hash"], v["block_number"])
    sharing = [e for e in events if e["kind"] == "sharing"]
    requested = {e["code"] for e in sharing if e["action"] == "requested"}
    assert len(requested) == truths["requests"] == 6
    transitions = {}
    for rid in requested:
        for t in client.get(f"/sharing-requests/{rid}").json()["transitions"]:
            transitions[(rid, t["tx_hash"], t["log_index"])] = t["to_status"]
    got = {(e["code"], e["tx_hash"], e["log_index"]): e["action"] for e in sharing if e["action"] != "requested"}
    assert got == transitions
    counts = data["history"]["counts"]["sharing"]
    assert counts == {"requested": 6, **Counter(transitions.values())}
    assert {k: counts[k] for k in ("granted", "rejected", "refused", "revoked")} == {
        "granted": 4, "rejected": 1, "refused": 1, "revoked": 1}  # one per path of the seed's sharing workflow
    times = [(e["time"], e["chain_id"], e["block_number"], e["log_index"]) for e in events]
    assert times == sorted(times) and all(e["time_iso"].endswith("+08:00") for e in events)
    line = data["history"]["timeline"]
    assert line["granularity"] == "block"
    assert sum(b["total"] for b in line["buckets"]) == len(events)
    assert len(line["buckets"]) == len({(e["chain_id"], e["block_number"]) for e in events})


def test_drift_not_checked_without_a_chain(report: tuple[dict[str, Any], Path]) -> None:
    data, html_path = report
    assert data["drift"]["checked"] is False and "no chain given" in data["drift"]["reason"]
    page = html_path.read_text(encoding="utf-8")
    assert "Drift NOT CHECKED" in page and "No drift" not in page


# ---------------------------------------------------------------------------------------- Chromium


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary is not None, "headless Chromium is needed (Debian package chromium; CI installs it)"
    profile = tmp / f"profile-{time.monotonic_ns()}"
    profile.mkdir()
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False)


class _Dom(HTMLParser):
    """The parts of a dumped DOM the test looks at: each ``svg`` (its ``title``, its bars' sizes, its texts) and
    whether the page holds a script."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, Any]] = []
        self.scripts = 0
        self._svg: dict[str, Any] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "svg":
            self._svg = {"id": a.get("id"), "title": "", "bars": [], "texts": []}
            self.svgs.append(self._svg)
        elif self._svg is not None and tag == "rect" and "bar" in (a.get("class") or "").split():
            self._svg["bars"].append((float(a.get("width") or 0), float(a.get("height") or 0)))
        elif self._svg is not None and tag == "title" and not self._svg["title"]:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._svg is not None:
            if self._in_title:
                self._svg["title"] += data
            elif data.strip():
                self._svg["texts"].append(data.strip())


def test_html_renders_with_its_charts_in_chromium(report: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    _, html_path = report
    url = html_path.resolve().as_uri()
    page = html_path.read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    dumped = _chromium(tmp_path, "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert "Uncaught" not in dumped.stderr and "CONSOLE" not in dumped.stderr, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.scripts == 0
    assert len(dom.svgs) == len(CHART_TITLES)
    for svg, title in zip(dom.svgs, CHART_TITLES, strict=True):
        assert svg["title"].startswith(title), (svg["title"], title)
        assert svg["title"] in svg["texts"]  # the visible chart title
        assert any(w > 0 and h > 0 for w, h in svg["bars"]), svg["id"]
    timeline = next(s for s in dom.svgs if s["id"] == "chart-timeline")
    assert "events" in timeline["texts"] and "block (chain id#number), in time order" in timeline["texts"]
    kpi = next(s for s in dom.svgs if s["id"] == "chart-kpi-unconditional_share_rate")
    assert "target 80%" in kpi["texts"] and "53.8% (7/13)" in kpi["texts"] and "100%" in kpi["texts"]

    shot = tmp_path / "report.png"
    taken = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1280, 2000)
    colours: dict[bytes, int] = {}
    for px in pixels:
        colours[px] = colours.get(px, 0) + 1
    background = max(colours.values())
    assert len(colours) > 50, f"{len(colours)} colours: the screenshot looks blank"
    assert width * height - background > width * height // 20, "under 5 % of the screenshot differs from its background"


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and every pixel (RGB bytes, row by row) of a non-interlaced 8-bit RGB or RGBA PNG; a small
    decoder (zlib + struct: the five scanline filters of the PNG specification)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None
    width, height, depth, colour, _compression, _filter, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    pixels: list[bytes] = []
    for y in range(height):
        start = y * (stride + 1)
        kind_byte, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind_byte == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind_byte == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind_byte == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind_byte == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels += [bytes(line[i:i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return width, height, pixels


# ---------------------------------------------------------------------------------------- drift


def test_drift_checked_against_both_chains(tiered: tuple[Settings, TestClient], chains: dict[str, AnvilNode],
                                           tmp_path: Path) -> None:
    settings, _ = tiered
    result = _run([XICHENG, "--database", settings.database_url, "--out", str(tmp_path),
                   "--rpc", chains["city"].rpc_url, "--rpc", chains["district"].rpc_url])
    data = json.loads((tmp_path / "audit-110102.json").read_text(encoding="utf-8"))
    drift = data["drift"]
    assert drift["checked"] is True, drift
    assert [(s["chain_id"], s["name"], s["factory_from"]) for s in drift["sources"]] == [
        (CITY_CHAIN_ID, "city", "from the index's cursor"), (DISTRICT_CHAIN_ID, "district", "from the index's cursor")]
    assert {c["chain_id"] for c in drift["chains"]} == {CITY_CHAIN_ID, DISTRICT_CHAIN_ID}
    assert drift["findings"] == [] and drift["ok"] is True, drift["findings"][:5]
    assert result.exit_code == 0, result.output
    assert "No drift" in (tmp_path / "audit-110102.html").read_text(encoding="utf-8")


def test_drift_findings_of_a_tampered_index(tiered: tuple[Settings, TestClient], chains: dict[str, AnvilNode],
                                            tmp_path: Path) -> None:
    settings, client = tiered
    copy = tmp_path / "tampered.sqlite"
    source = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    catalog = client.get("/catalogs", params={"jurisdiction": XICHENG, "limit": 1}).json()["items"][0]["code"]
    rejected = client.get("/sharing-requests", params={"status": "rejected"}).json()["items"][0]["id"]
    with target:
        target.execute("UPDATE catalogs SET name = '<b>篡改</b>' WHERE code = ?", (catalog,))
        target.execute("DELETE FROM sharing_transitions WHERE request_id = ? AND to_status = 'rejected'", (rejected,))
    target.close()
    out = tmp_path / "out"
    result = _run([XICHENG, "--database", f"sqlite:///{copy}", "--out", str(out),
                   "--rpc", chains["city"].rpc_url, "--rpc", chains["district"].rpc_url])
    assert result.exit_code == 1, result.output
    data = json.loads((out / "audit-110102.json").read_text(encoding="utf-8"))
    findings = data["drift"]["findings"]
    changed = [f for f in findings if f["table"] == "catalogs" and f["kind"] == "changed" and f["key"] == [catalog]]
    assert [c["column"] for c in changed[0]["columns"]] == ["name"] and changed[0]["columns"][0]["index"] == \
        "<b>篡改</b>"
    assert any(f["table"] == "sharing_transitions" and f["kind"] == "missing" for f in findings)
    page = (out / "audit-110102.html").read_text(encoding="utf-8")
    assert "DRIFT:" in page and "&lt;b&gt;篡改&lt;/b&gt;" in page and "<b>篡改</b>" not in page
