"""Settings read from the environment (dirchain/settings.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dirchain.settings import Settings, settings


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The environment to set, with the settings re-read after the test sets it (they are read once)."""
    for name in ("DIRCHAIN_MINING", "DIRCHAIN_BLOCK_TIME", "DIRCHAIN_DIRECTORIES"):
        monkeypatch.delenv(name, raising=False)
    settings.cache_clear()
    yield monkeypatch
    settings.cache_clear()


def test_the_embedded_anvil_automines_by_default(fresh: pytest.MonkeyPatch) -> None:
    s: Settings = settings()
    assert s.mining == "auto" and s.block_time_s is None


def test_on_demand_mining_is_read_from_the_environment(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("DIRCHAIN_MINING", "on-demand")
    assert settings().mining == "on-demand"


def test_an_unknown_mining_mode_is_refused_with_what_is_expected(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("DIRCHAIN_MINING", "instant")
    with pytest.raises(ValueError, match="DIRCHAIN_MINING: expected auto or on-demand, got 'instant'"):
        settings()
