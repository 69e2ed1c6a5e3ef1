"""The deterministic Beijing-scale directory generator (registry.generate, ``dirchain generate``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dirchain.cli_generate import generated_paths, register
from registry.generate import BEIJING, BEIJING_DISTRICTS, MARKER, MEDIUM, SMALL, Scale, dumps, generate_directory
from registry.loader import read_sharing, sharing_file_for
from registry.models import DataType, ResourceFormat, ShareMethod
from registry.seed import Directory, convert_directory, read_directory

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "data" / "beijing-seed-directory.json"
SEED_SHARING = ROOT / "data" / "beijing-seed-sharing.json"

Docs = tuple[dict[str, Any], dict[str, Any]]


@pytest.fixture(scope="module")
def seed_doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SEED.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def beijing() -> Docs:
    return generate_directory(BEIJING, 1)


@pytest.fixture(scope="module")
def beijing_files(beijing: Docs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory_path, sharing_path = generated_paths(tmp_path_factory.mktemp("generated"), "beijing", 1)
    directory_path.write_bytes(dumps(beijing[0]))
    sharing_path.write_bytes(dumps(beijing[1]))
    return directory_path, sharing_path


@pytest.fixture(scope="module")
def beijing_converted(beijing_files: tuple[Path, Path]) -> Directory:
    return read_directory(beijing_files[0])


# ------------------------------------------------------------------------------------------ helpers


def _ratio(catalogs: list[dict[str, Any]], key: str, values: tuple[str, ...]) -> float:
    return sum(1 for c in catalogs if c[key] in values) / len(catalogs)


def _check_document(directory: dict[str, Any], scale: Scale, seed_doc: dict[str, Any]) -> None:
    """Totals, proportions, vocabularies and internal references of a generated directory document."""
    tiers = Counter(j["tier"] for j in directory["jurisdictions"])
    assert tiers == {"city": 1, "district": len(scale.districts), "street": scale.streets}
    catalogs = directory["catalogs"]
    assert len(catalogs) == scale.catalogs
    assert len(directory["systems"]) == scale.systems
    counts = [len(c["items"]) for c in catalogs]
    assert sum(counts) == scale.data_items
    assert min(counts) >= 1 and max(counts) <= 256
    assert abs(_ratio(catalogs, "share_type", ("unconditional", "conditional")) - scale.share_ratio) <= 0.01
    assert abs(_ratio(catalogs, "open_type", ("unconditional", "conditional")) - scale.open_ratio) <= 0.01
    assert all(c["open_type"] == "none" for c in catalogs if c["share_type"] == "not_shared")

    vocab = seed_doc["vocabularies"]
    seed_item_types = {i["type"] for c in seed_doc["catalogs"] for i in c["items"]}
    seed_programmes = {s["programme"] for s in seed_doc["systems"] if s.get("programme")}
    for c in catalogs:
        assert c["share_type"] in vocab["share_type"] and c["open_type"] in vocab["open_type"]
        assert c["update_frequency"] in vocab["update_frequency"]
        assert c["format"] in {f.value for f in ResourceFormat}
        assert c.get("share_method") is None or c["share_method"] in {m.value for m in ShareMethod}
        assert c["grade"] in {"1", "2", "3", "4"}
        assert {i["type"] for i in c["items"]} <= seed_item_types <= {t.value for t in DataType}
        assert len({i["name"] for i in c["items"]}) == len(c["items"])
    assert {s["programme"] for s in directory["systems"]} <= seed_programmes

    # Every department owns a system and a catalog; every catalog's source system is its owner's.
    system_owner = {s["name"]: s["owner"] for s in directory["systems"]}
    assert len(system_owner) == len(directory["systems"])  # system names unique across the file
    assert all(system_owner[c["source_system"]] == c["owner"] for c in catalogs)
    names = [d["name"] for d in directory["departments"]]
    assert len(set(names)) == len(names) and all(n.endswith(MARKER) for n in names)
    assert set(names) == set(system_owner.values()) == {c["owner"] for c in catalogs}
    streets = {j["id"] for j in directory["jurisdictions"] if j["tier"] == "street"}
    assert streets <= {d["jurisdiction"] for d in directory["departments"]}
    assert len({c["name"] for c in catalogs}) == len(catalogs)  # the loader finds catalogs by name
    for j in directory["jurisdictions"]:
        if j["tier"] == "street":
            assert j["id"] == f"{j['parent']}/{j['name']}"


def _check_converted(converted: Directory, scale: Scale) -> None:
    assert len(converted.jurisdictions) == 1 + len(scale.districts) + scale.streets
    assert len(converted.catalogs) == scale.catalogs and len(converted.systems) == scale.systems
    for records in (converted.jurisdictions, converted.departments, converted.systems, converted.catalogs):
        codes = [r.code for r in records]
        assert len(set(codes)) == len(codes)
    owned = {s.code: s.owner_code for s in converted.systems}
    assert all(c.source_system is not None and owned[c.source_system] == c.provider_code for c in converted.catalogs)
    assert all(c.code.startswith(c.classification + "/") for c in converted.catalogs)


def _check_sharing(directory: dict[str, Any], sharing: dict[str, Any], scale: Scale) -> None:
    """Every request refers to existing departments, catalogs and items, never to its own catalog."""
    departments = {d["name"] for d in directory["departments"]}
    catalogs = {c["name"]: c for c in directory["catalogs"]}
    requests = sharing["requests"]
    assert len(requests) == scale.requests
    assert len({(r["requester"], r["catalog"]) for r in requests}) == len(requests)
    expects = [r["expect"] for r in requests]
    first_other = next((i for i, e in enumerate(expects) if e != "expired"), len(expects))
    assert "expired" not in expects[first_other:]  # expiring requests come first
    for r in requests:
        assert r["requester"] in departments
        catalog = catalogs[r["catalog"]]
        assert catalog["owner"] != r["requester"]
        assert set(r["items"]) <= {i["name"] for i in catalog["items"]} and r["items"]
        share, expect = catalog["share_type"], r["expect"]
        if share == "not_shared":
            assert expect == "refused" and "decision" not in r and "revocation" not in r
        elif share == "unconditional":
            assert expect in ("granted", "revoked", "expired") and "decision" not in r
        else:
            assert r["decision"]["approve"] == (expect in ("granted", "revoked"))
        assert ("revocation" in r) == (expect == "revoked")
        assert (r["period_s"] == scale.expiring_period_s) == (expect == "expired")


# ---------------------------------------------------------------------------------------------- beijing


def test_beijing_totals_and_proportions(beijing: Docs, seed_doc: dict[str, Any]) -> None:
    directory, _ = beijing
    _check_document(directory, BEIJING, seed_doc)
    districts = [(j["id"], j["name"]) for j in directory["jurisdictions"] if j["tier"] == "district"]
    assert districts == [(code, name) for code, name, _ in BEIJING_DISTRICTS]
    assert all(j["gb2260_code"] == j["id"] for j in directory["jurisdictions"] if j["tier"] != "street")
    assert sum(n for _, _, n in BEIJING_DISTRICTS) == 343
    catalogs = directory["catalogs"]
    assert len(catalogs) == 8193 and sum(len(c["items"]) for c in catalogs) == 34147
    assert len(directory["systems"]) == 1860
    assert 4.1 <= 34147 / 8193 <= 4.2
    assert abs(_ratio(catalogs, "share_type", ("unconditional", "conditional")) - 0.84) <= 0.01
    assert abs(_ratio(catalogs, "open_type", ("unconditional", "conditional")) - 0.32) <= 0.01
    figures = directory["aggregate_figures"]
    assert figures["beijing_data_resource_classes_on_chain"] == 8193
    assert figures["beijing_data_items_on_chain"] == 34147
    assert figures["targets_2025"] == seed_doc["aggregate_figures"]["targets_2025"]


def test_beijing_converts_without_duplicate_codes(beijing_converted: Directory) -> None:
    _check_converted(beijing_converted, BEIJING)


def test_beijing_sharing_file(beijing: Docs, beijing_files: tuple[Path, Path]) -> None:
    directory_path, sharing_path = beijing_files
    assert sharing_file_for(directory_path) == sharing_path
    assert len(read_sharing(sharing_path)) == 3000
    _check_sharing(*beijing, BEIJING)
    expects = Counter(r["expect"] for r in beijing[1]["requests"])
    assert set(expects) == {"granted", "rejected", "refused", "revoked", "expired"}
    assert expects["granted"] > 0.7 * 3000


def test_loads_alongside_the_seed(beijing: Docs, seed_doc: dict[str, Any]) -> None:
    """No id, code or name collides with the real seed; shared city/district entries are identical."""
    directory, _ = beijing
    seed_jurisdictions = {j["id"]: j for j in seed_doc["jurisdictions"]}
    for j in directory["jurisdictions"]:
        if j["id"] in seed_jurisdictions:
            assert j["tier"] != "street" and j == seed_jurisdictions[j["id"]]
    combined = dict(seed_doc)
    combined["jurisdictions"] = seed_doc["jurisdictions"] + [
        j for j in directory["jurisdictions"] if j["id"] not in seed_jurisdictions
    ]
    for kind in ("departments", "systems", "catalogs"):
        combined[kind] = seed_doc[kind] + directory[kind]
        assert not {e["name"] for e in seed_doc[kind]} & {e["name"] for e in directory[kind]}
    both = convert_directory(combined)  # raises on any duplicate name or code
    seed = convert_directory(seed_doc)
    assert len(both.catalogs) == len(seed.catalogs) + 8193
    assert len(both.departments) == len(seed.departments) + len(directory["departments"])


def test_same_seed_same_bytes_other_seed_other_bytes(beijing: Docs) -> None:
    again = generate_directory(BEIJING, 1)
    assert dumps(again[0]) == dumps(beijing[0]) and dumps(again[1]) == dumps(beijing[1])
    other = generate_directory(BEIJING, 2)
    assert dumps(other[0]) != dumps(beijing[0]) and dumps(other[1]) != dumps(beijing[1])


def test_bytes_do_not_depend_on_hash_randomisation() -> None:
    code = (
        "import hashlib, sys; from registry.generate import SMALL, dumps, generate_directory; "
        "d, s = generate_directory(SMALL, 5); sys.stdout.write(hashlib.sha256(dumps(d) + dumps(s)).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True)
        digests.add(out.stdout)
    d, s = generate_directory(SMALL, 5)
    assert digests == {hashlib.sha256(dumps(d) + dumps(s)).hexdigest()}


# ------------------------------------------------------------------------------------------------ small


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_small_scale(seed: int, seed_doc: dict[str, Any]) -> None:
    directory, sharing = generate_directory(SMALL, seed)
    _check_document(directory, SMALL, seed_doc)
    _check_converted(convert_directory(directory), SMALL)
    _check_sharing(directory, sharing, SMALL)
    assert dumps(generate_directory(SMALL, seed)[0]) == dumps(directory)


def test_small_scale_size() -> None:
    directory, sharing = generate_directory(SMALL, 0)
    assert [j["tier"] for j in directory["jurisdictions"]].count("street") == 3
    assert len(directory["catalogs"]) == 50 and len(sharing["requests"]) == 30


def test_medium_scale(seed_doc: dict[str, Any]) -> None:
    directory, sharing = generate_directory(MEDIUM, 3)
    _check_document(directory, MEDIUM, seed_doc)
    _check_converted(convert_directory(directory), MEDIUM)
    _check_sharing(directory, sharing, MEDIUM)
    assert [j["tier"] for j in directory["jurisdictions"]].count("street") == 20
    assert len(directory["catalogs"]) == 1000 and len(sharing["requests"]) == 400


def test_inconsistent_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="departments"):
        generate_directory(Scale("tiny", SMALL.districts, 2, (2, 3), catalogs=5, data_items=20, systems=14,
                                 requests=1), 0)
    with pytest.raises(ValueError, match="data items"):
        generate_directory(Scale("wide", SMALL.districts, 2, (2, 3), catalogs=50, data_items=20, systems=14,
                                 requests=1), 0)


# -------------------------------------------------------------------------------------------------- CLI


def test_cli_writes_files_next_to_each_other(tmp_path: Path) -> None:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app)
    result = CliRunner().invoke(app, ["generate", "--scale", "small", "--seed", "3", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    directory_path = tmp_path / "out" / "small-3-directory.json"
    assert sharing_file_for(directory_path) == tmp_path / "out" / "small-3-sharing.json"
    d, s = generate_directory(SMALL, 3)
    assert directory_path.read_bytes() == dumps(d)
    assert (tmp_path / "out" / "small-3-sharing.json").read_bytes() == dumps(s)
    assert "50 with 210 data items" in result.output
    assert len(read_directory(directory_path).catalogs) == 50


def test_dirchain_app_has_generate() -> None:
    from dirchain.cli import app

    assert "generate" in {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
