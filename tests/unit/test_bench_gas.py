"""The benchmark's split of a catalog batch's gas by what pays it (``scripts/bench.py``), on a transaction and
receipt written by hand: each part follows its rule of the gas schedule, and the parts add up to ``gasUsed``."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from chain.artifacts import PROJECT_ROOT


def test_catalog_gas_parts_follow_the_schedule_and_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "scripts"))
    import bench

    tx = {"input": "0x" + "00" * 4 + "ab" * 6}  # 4 zero bytes, 6 nonzero
    logs = [{"topics": ["0x01", "0x02"], "data": "0x" + "00" * 64}, {"topics": ["0x03"], "data": "0x"}]
    receipt = {"gasUsed": hex(200_000), "logs": logs}
    decoded = [SimpleNamespace(event="CatalogVersionRecorded", args={"version": 1, "record": b"x" * 10}),
               SimpleNamespace(event="CatalogVersionRecorded", args={"version": 3, "record": b"y" * 20}),
               SimpleNamespace(event="CatalogRetired", args={})]
    parts: Counter[str] = Counter()
    bench._add_catalog_parts(parts, tx, receipt, decoded)
    assert parts["calldata"] == 4 * 4 + 16 * 6  # EIP-2028
    assert parts["logs"] == (375 + 2 * 375 + 8 * 64) + (375 + 375)
    assert parts["storage"] == 2 * 22_100 + (22_100 + 5_000) + 5_000  # new, later, retired
    assert parts["record_bytes"] == 30
    assert sum(parts[k] for k in ("transaction_base", "calldata", "logs", "storage", "rest")) == 200_000
    per = bench._catalog_parts(parts, 3)
    assert per["record_bytes"] == 10 and per["calldata_record"] == 160 and per["logs_record"] == 80
    assert bench._catalog_parts(Counter(), 0) == {}
