"""The benchmark runs end to end at the small scale (a smoke test: no timing is asserted, only that every
section measured something and the report names every target)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chain.artifacts import PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("chains", [[], ["--district-chain", "--state-roots"]], ids=["one-chain", "two-chains-roots"])
def test_bench_small_scale_measures_every_section(tmp_path: Path, chains: list[str]) -> None:
    """One chain without state roots (each anvil on its genesis node, the default), or (``--district-chain``) the
    city's and a second one for the districts' and streets' directories, with state roots (anvil alone): each anvil's
    CPU, RSS and blocks are reported, and the gas figures cover both chains."""
    report, figures = tmp_path / "BENCHMARKS.md", tmp_path / "figures.json"
    anvils = {"anvil", "anvil_district"} if chains else {"anvil"}
    geneses = set() if chains else {"anvil_genesis"}  # the idle genesis nodes are reported too
    indexers = {"indexer", "indexer_district"} if chains else {"indexer"}  # each chain's, a process of its own
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "bench.py"), "--scale", "small", "--reference-records", "200",
         "--audit-requests", "80", *chains, "--write", str(report), "--json", str(figures)],
        capture_output=True, text=True, timeout=900, cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    f = json.loads(figures.read_text(encoding="utf-8"))
    load = f["load"]
    assert load["failed"] == {} and load["city_holds"] == load["expected"] and load["submissions"] > 100
    assert load["records_per_s"] > 0 and load["until_city_holds_everything_s"] > 0
    assert set(load["cpu_s"]) == {"service", *anvils, *geneses, *indexers, "loader"}
    # CPU-seconds to 0.01 s (the kernel counts clock ticks of 10 ms): at this scale one chain's anvil or indexer may
    # do less than that (the city's, with two chains, only takes the relays), so only each kind's total must show
    cpu = load["cpu_s"]
    assert all(v >= 0 for v in cpu.values()) and cpu["service"] > 0 and cpu["loader"] > 0, cpu
    assert sum(cpu[name] for name in anvils) > 0 and sum(cpu[name] for name in indexers) > 0, cpu
    assert load["cpu_busy"] > 0
    assert load["index_ranges"] >= 1  # block ranges the service's indexers committed during the load
    steps = load["steps_s"]
    assert {"jurisdictions (street)", "departments", "department keys", "systems", "catalogs", "tier sync",
            "sharing requests", "sharing decisions", "sharing outcomes"} <= set(steps), steps
    assert all(v >= 0 for v in steps.values()) and steps["catalogs"] > 0, steps
    gas = f["gas"]
    for key in ("catalog_version", "system_version", "sharing_request", "sharing_decision", "relayed_record",
                "new_jurisdiction"):
        assert gas[key] > 20_000, (key, gas[key])
    # a catalog version's gas split by what pays it adds up to the measured figure (each part rounded), and what the
    # split leaves to the contract's own work covers at least the signature's recovery (the ecrecover precompile's
    # 3,000): the storage and calldata rules it applies overstate nothing
    parts = gas["catalog_version_parts"]
    assert abs(sum(parts[k] for k in ("transaction_base", "calldata", "logs", "storage", "rest"))
               - gas["catalog_version"]) <= 5, (parts, gas["catalog_version"])
    assert parts["rest"] > 3_000 and 0 < parts["storage"] <= 2 * 22_100, parts
    assert 0 < parts["calldata_record"] < parts["calldata"] and 0 < parts["logs_record"] < parts["logs"], parts
    assert abs(parts["calldata_record"] - 16 * parts["record_bytes"]) <= 8, parts  # the mean length is rounded
    assert gas["directories"] == 11  # 北京市, 东城区, 西城区, 大兴区 + the seed's 4 streets + 3 generated streets
    assert set(gas["blocks"]) == ({"city", "district"} if chains else {"city"})
    assert all(head > 0 for head in gas["blocks"].values())
    assert f["reindex"]["events"] > 1000 and f["reindex"]["rows_equal_to_service_index"] is True
    assert f["sync"]["relayed"] > 0 and f["sync"]["children"] == 10
    assert 0 < f["sync"]["relay_transactions"] <= f["sync"]["relay_batches"]
    assert f["audit"]["requests"] == 80 and f["audit"]["http_rps"] > 0
    assert f["references"]["ours_per_s"] > 0 and f["references"]["raw_per_s"] > 0
    assert f["references"]["common_per_s"] > 0
    # the service did the work of the records it registered; anvil mined them
    assert f["references"]["ours_cpu_ms_per_record"]["service"] > 0
    assert f["references"]["ours_cpu_ms_per_record"]["anvils"] > 0
    assert f["references"]["ours_cpu_ms_per_record"]["indexers"] > 0
    assert f["references"]["raw_cpu_ms_per_record"]["anvils"] > 0
    assert f["references"]["cpu_ms_per_record_at_half_raw"] > 0
    steps = f["memory"]["service_mib_after_step"]
    assert list(steps) == ["load", "sync", "references", "gas", "audit", "reindex"]
    assert 0 < steps["load"] <= steps["reindex"] <= f["memory"]["service_mib"]  # a high-water mark only rises
    assert all(f["memory"][f"{name}_mib"] > 0 for name in anvils | geneses | indexers)
    held = f["memory"]["held_after_load"]
    assert set(held) == {"relay_reservations", "relay_answered_503", "journal_mib"} and held["journal_mib"] > 0
    assert ("none (blocks mined on a genesis node)" in f["machine"]["state_roots"]) == (not chains)
    text = report.read_text(encoding="utf-8")
    assert "## Targets" in text and text.count("| ") > 10 and "python scripts/bench.py --scale small" in text
    assert text.count("| peak RSS of anvil") == len(anvils | geneses)
    assert text.count("| peak RSS of indexer") == len(indexers)


def test_anvil_block_cost_script_measures_each_setting(tmp_path: Path) -> None:
    """``scripts/bench_anvil_blocks.py``: one figure per (state size, states kept, state roots), each measured on a
    real anvil."""
    out = tmp_path / "blocks.json"
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "bench_anvil_blocks.py"), "--slots", "500", "3000",
         "--history", "1", "4", "--state-roots", "on", "off", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["slots"], r["history_states"], r["state_roots"]) for r in rows] == [
        (slots, history, roots) for slots in (500, 3000) for history in (1, 4) for roots in (True, False)]
    assert all(r["ms_per_empty_block"] > 0 and r["anvil_rss_mib"] > 0 for r in rows)


def test_bench_index_comparison_notices_one_changed_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-index section compares the rebuilt index with the service's table by table through digests of the rows
    in key order: equal indexes agree, and one value changed in one row of one table shows in that table only."""
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "scripts"))
    import bench

    from registry.db import Block, make_engine, migrate, session_factory

    def digests(sessions: Any) -> dict[str, tuple[int, str]]:
        with sessions() as s:
            return {table.name: bench._digest(s, table) for table in bench._INDEX_TABLES}

    indexes = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name}.sqlite"
        migrate(url)
        indexes.append(session_factory(make_engine(url)))
    for sessions in indexes:
        with sessions.begin() as s:
            s.add_all([Block(chain_id=31337, number=n, hash=f"0x{n:064x}", timestamp=1_700_000_000 + n)
                       for n in range(3000)])  # more than one 2,000-row read
    first = digests(indexes[0])
    assert digests(indexes[1]) == first and first["blocks"][0] == 3000
    with indexes[1].begin() as s:
        block = s.get(Block, (31337, 2999))
        assert block is not None
        block.timestamp += 1
    changed = digests(indexes[1])
    assert {name for name in changed if changed[name] != first[name]} == {"blocks"}
