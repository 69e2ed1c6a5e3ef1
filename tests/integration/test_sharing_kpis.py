"""The seed directory's sharing KPIs: ``GET /kpis`` and ``dirchain kpis`` (from the API and from the chain
alone) against a hand computation from ``data/beijing-seed-directory.json`` and
``data/beijing-seed-sharing.json``; the chain-only computation equals the index's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from chain.logs import LogFetcher
from chain.node import AnvilNode, free_port
from dirchain.cli import SEED_FILE, SEED_SHARING_FILE
from dirchain.service import Service
from registry.keystore import Keystore
from registry.kpis import (
    TARGETS_2025,
    facts_from_events,
    facts_from_index,
    kpis_from_chain,
    kpis_from_index,
    read_events,
)
from registry.loader import DirectoryLoader, LoadSummary, read_sharing
from registry.seed import read_directory
from tests.integration.service import make_settings, running_service

pytestmark = pytest.mark.integration

DIRCHAIN = [sys.executable, "-m", "dirchain"]
NAMES = ("unconditional_share_rate", "share_demand_satisfaction_rate", "open_department_ratio")

# ---------------------------------------------------------------------------------------------- by hand
#
# Catalogs of the seed file by owner's jurisdiction (share type / open type):
#   110000 北京市      金融公共数据专区 c/c                                     → 0 of 1 unconditional
#   110102 西城区      人口基础 c/none, 法人基础 u/c, 地理信息基础 u/c, 宏观经济基础 u/u, 标准地名地址 u/u,
#                      房屋综合管理 c/none, 困难家庭 c/none, 居民健康档案 c/none, 经济运行数据库 u/c,
#                      企业信用信息 u/u, 12345热线 c/none, 感知终端台账 u/none, 安全生产隐患 n/none
#                                                                              → 7 of 13 unconditional
#   110115 大兴区      城市部件库 u, 社会管理信息库 c, 经济运行库 u, 人口库 c, 全区法人数据库 u,
#                      居民电子健康档案 c, 市场主体信用基础数据库 u (all open none) → 4 of 7
#   110102/月坛街道    城市体检评估数据 u/c                                       → 1 of 1
#   overall: 12 of 22 unconditional (9 conditional, 1 not_shared).
# Departments that open at least one catalog (open type not none): 北京市经济和信息化局 (金融公共数据专区);
#   西城区科技和信息化局 (法人, 地理, 宏观, 标准地名), 西城区发展和改革委员会 (经济运行数据库),
#   西城区市场监督管理局 (企业信用信息); 月坛街道办事处 (城市体检评估数据) → 5 of 28 departments:
#   北京市 1 of 1, 东城区 0 of 1, 西城区 3 of 8, 大兴区 0 of 14, each street 0 of 1 except 月坛 1 of 1.
# Seed sharing requests (all on catalogs of 西城区 departments): granted (unconditional), approved,
#   rejected, refused (not_shared), revoked, expired → ever granted 4 (granted, approved, revoked,
#   expired) of 6 decided: 西城区 4 of 6, the others none.
EXPECTED_OVERALL = {
    "unconditional_share_rate": (12, 22),
    "share_demand_satisfaction_rate": (4, 6),
    "open_department_ratio": (5, 28),
}
EXPECTED_JURISDICTIONS = {  # code: (unconditional, satisfaction, open departments) as (numerator, denominator)
    "110000": ((0, 1), (0, 0), (1, 1)),
    "110101": ((0, 0), (0, 0), (0, 1)),
    "110102": ((7, 13), (4, 6), (3, 8)),
    "110115": ((4, 7), (0, 0), (0, 14)),
    "110102/大栅栏街道": ((0, 0), (0, 0), (0, 1)),
    "110102/德胜街道": ((0, 0), (0, 0), (0, 1)),
    "110102/新街口街道": ((0, 0), (0, 0), (0, 1)),
    "110102/月坛街道": ((1, 1), (0, 0), (1, 1)),
}
ORDER = ["110000", "110101", "110102", "110115", "110102/大栅栏街道", "110102/德胜街道", "110102/新街口街道",
         "110102/月坛街道"]


@pytest.fixture(scope="module")
def loaded(
    anvil: AnvilNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, TestClient, LoadSummary]]:
    """A service on the session anvil with the seed directory and its sharing requests loaded."""
    home = tmp_path_factory.mktemp("kpis")
    with running_service(make_settings(home, anvil.rpc_url)) as (service, client):
        loader = DirectoryLoader("http://testserver", Keystore(home / "keys"), http=client)
        summary = loader.load(read_directory(SEED_FILE), read_sharing(SEED_SHARING_FILE))
        yield service, client, summary


@pytest.fixture(scope="module")
def api_url(loaded: tuple[Service, TestClient, LoadSummary]) -> Iterator[str]:
    """The same service's API over real HTTP (for the command line)."""
    service = loaded[0]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service.services()), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _figures(doc: dict[str, Any]) -> tuple[tuple[int, int], ...]:
    return tuple((doc[n]["numerator"], doc[n]["denominator"]) for n in NAMES)


def assert_hand_computation(doc: dict[str, Any]) -> None:
    """``doc`` (the KPI document) equals the hand computation above, values and met flags included."""
    assert doc["targets"] == {"unconditional_share_rate": 0.8, "share_demand_satisfaction_rate": 0.9,
                              "open_department_ratio": 0.95}
    assert _figures(doc["overall"]) == tuple(EXPECTED_OVERALL[n] for n in NAMES)
    overall = doc["overall"]
    assert overall["unconditional_share_rate"]["value"] == pytest.approx(12 / 22)  # 54.5 %
    assert overall["share_demand_satisfaction_rate"]["value"] == pytest.approx(4 / 6)  # 66.7 %
    assert overall["open_department_ratio"]["value"] == pytest.approx(5 / 28)  # 17.9 %
    assert [overall[n]["met"] for n in NAMES] == [False, False, False]
    assert [j["code"] for j in doc["jurisdictions"]] == ORDER
    for j in doc["jurisdictions"]:
        assert _figures(j) == EXPECTED_JURISDICTIONS[j["code"]], j["code"]
        for n in NAMES:
            num, den = j[n]["numerator"], j[n]["denominator"]
            assert j[n]["value"] == (None if den == 0 else pytest.approx(num / den))
            assert j[n]["met"] == (None if den == 0 else num / den >= j[n]["target"])
    yuetan = next(j for j in doc["jurisdictions"] if j["code"] == "110102/月坛街道")
    assert yuetan["unconditional_share_rate"]["met"] and yuetan["open_department_ratio"]["met"]


def test_seed_sharing_phase_covers_every_path(loaded: tuple[Service, TestClient, LoadSummary]) -> None:
    _, client, summary = loaded
    assert summary.ok, summary
    sharing = summary.phases["sharing"]
    assert (sharing.added, sharing.updated, sharing.unchanged) == (6, 3, 0)  # 6 requests, 2 decisions, 1 revocation
    statuses = sorted(r["status"] for r in client.get("/sharing-requests").json()["items"])
    assert statuses == ["expired", "granted", "granted", "refused", "rejected", "revoked"]


def test_kpis_of_the_seed_equal_the_hand_computation(loaded: tuple[Service, TestClient, LoadSummary]) -> None:
    assert_hand_computation(loaded[1].get("/kpis").json())


def test_chain_alone_reproduces_the_index_kpis(loaded: tuple[Service, TestClient, LoadSummary]) -> None:
    service, client, _ = loaded
    fetcher = LogFetcher.from_rpc(service.rpc, service.deployment.address)
    codec = service.client.codec
    with service.sessions() as session:
        index_facts, index_report = facts_from_index(session), kpis_from_index(session)
    chain_facts = facts_from_events(read_events(fetcher, codec, service.deployment.block_number))
    assert chain_facts == index_facts
    assert len(chain_facts.catalogs) == 22 and len(chain_facts.requests) == 6 and len(chain_facts.departments) == 28
    chain_report = kpis_from_chain(fetcher, codec, from_block=service.deployment.block_number)
    assert chain_report == index_report
    assert chain_report.targets == TARGETS_2025
    assert chain_report.as_dict() == client.get("/kpis").json()


def test_dirchain_kpis_prints_the_hand_computation(
    loaded: tuple[Service, TestClient, LoadSummary], api_url: str, anvil: AnvilNode
) -> None:
    service = loaded[0]
    env = {**os.environ, "COLUMNS": "250"}
    as_json = subprocess.run([*DIRCHAIN, "kpis", "--api", api_url, "--json"], capture_output=True, text=True,
                             timeout=60, env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert_hand_computation(json.loads(as_json.stdout))

    table = subprocess.run([*DIRCHAIN, "kpis", "--api", api_url], capture_output=True, text=True, timeout=60, env=env)
    assert table.returncode == 0, table.stderr
    lines = [" ".join(line.replace("│", " ").split()) for line in table.stdout.splitlines()]
    overall = next(line for line in lines if line.startswith("overall"))
    assert overall == "overall 54.5 % (12/22) not met 66.7 % (4/6) not met 17.9 % (5/28) not met", overall
    yuetan = next(line for line in lines if line.startswith("110102/月坛街道"))
    assert yuetan == "110102/月坛街道 月坛街道 (street) 100.0 % (1/1) met — (0/0) 100.0 % (1/1) met", yuetan
    assert any("unconditional share (≥ 80 %)" in line for line in lines)

    chain = subprocess.run(
        [*DIRCHAIN, "kpis", "--rpc", anvil.rpc_url, "--directory", service.deployment.address, "--from-block",
         str(service.deployment.block_number), "--json"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert chain.returncode == 0, chain.stderr
    assert json.loads(chain.stdout) == json.loads(as_json.stdout)


def test_loading_the_seed_sharing_again_changes_nothing(loaded: tuple[Service, TestClient, LoadSummary]) -> None:
    service, client, _ = loaded
    head = int(service.rpc.call("eth_blockNumber", []), 16)
    loader = DirectoryLoader("http://testserver", Keystore(service.settings.home / "keys"), http=client)
    again = loader.load(read_directory(SEED_FILE), read_sharing(SEED_SHARING_FILE))
    assert again.ok and (again.phases["sharing"].added, again.phases["sharing"].updated) == (0, 0)
    assert again.phases["sharing"].unchanged == 6
    assert int(service.rpc.call("eth_blockNumber", []), 16) == head
