"""`dirchain sync`: the relay job from the command line, one pass, resumable, reporting refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.db import make_engine, migrate, session_factory
from registry.keystore import Keystore
from tests.integration.tiers import (
    CITY_CHAIN_ID,
    DISTRICT_CHAIN_ID,
    YUETAN,
    Node,
    attach_street_to_city,
    build_world,
    funded,
    local_activity,
    register_departments,
    start_node,
    version_counts,
)


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Node, Node]]:
    district, city = start_node(DISTRICT_CHAIN_ID + 10), start_node(CITY_CHAIN_ID + 10)
    yield district, city
    district.anvil.stop()
    city.anvil.stop()


def _sync(home: Path, child: tuple[str, str], parent: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIRCHAIN_HOME": str(home)}
    env.pop("DIRCHAIN_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "dirchain", "sync", "--child-rpc", child[0], "--child-directory", child[1],
           "--parent-rpc", parent[0], "--parent-directory", parent[1], "--relayer", "sync"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_dirchain_sync_relays_the_street_to_the_district_once(nodes: tuple[Node, Node], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'world.db'}"
    migrate(url)
    world = build_world(*nodes)
    attach_street_to_city(world, session_factory(make_engine(url)))
    for tier in ("district", "street"):
        register_departments(world, tier)
    local_activity(world, "street")
    # the command's relayer key comes from the keystore under DIRCHAIN_HOME; the district authorises it
    key = Keystore(tmp_path / "keys").account("sync")
    world.relayers["cli"] = funded(world.district.node.rpc, key)
    world.set_child("district", "street", YUETAN, relayer="cli")
    street, district = world.street, world.district
    child = (street.node.anvil.rpc_url, street.address)
    parent = (district.node.anvil.rpc_url, district.address)

    first = _sync(tmp_path, child, parent)
    assert first.returncode == 0, first.stdout + first.stderr
    added = int(re.search(r"added (\d+)", first.stdout).group(1))  # type: ignore[union-attr]
    assert added > 0 and "failed 0" in first.stdout
    street_versions = set(version_counts(street))
    assert street_versions and all(version_counts(district)[k] == 1 for k in street_versions)

    again = _sync(tmp_path, child, parent)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "added 0" in again.stdout and "failed 0" in again.stdout
    assert all(version_counts(district)[k] == 1 for k in street_versions)
