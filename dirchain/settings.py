"""Settings of the service, read once from the environment (``DIRCHAIN_*``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Configuration of one ``dirchain`` process.

    ``home``: state folder (anvil state, keystore, deployments, journal, default SQLite).
    ``database_url``: SQLAlchemy URL of the index. ``rpc_url``: chain endpoint; None runs the
    embedded anvil on ``anvil_port``. ``confirmations``: blocks the indexer stays behind head.
    ``block_time_s``: embedded anvil's block time (None = automine). ``max_body_bytes``: request
    body limit (bytes). ``keystore_password``: password of the key files. ``deadline_s``: validity
    (seconds) of the signatures the loader makes. ``expiry_interval_s``: seconds between rounds of the
    job that marks ended grants expired on chain.

    Tiers: ``directories`` is ``per-jurisdiction`` (a directory per jurisdiction, synced street → district →
    city) or ``single`` (one directory serving every jurisdiction). ``rpc_url`` is the city chain's;
    ``district_rpc_url`` the district chain's (districts' and streets' directories; None: the city chain, or with
    ``district_chain`` a second embedded anvil on ``anvil_port + 1``); ``district_confirmations``: blocks the
    indexer and relay jobs stay behind the district chain's head (None: ``confirmations``). ``sync_interval_s``:
    seconds between tier-sync rounds once caught up.

    ``api_workers``: uvicorn worker processes of ``dirchain api --read-only`` (the read-only replica).

    ``anvil_state_roots``: whether the embedded anvils compute a state root for every block (False: blocks carry a
    zero ``stateRoot`` and cost a fraction of the CPU; see :class:`chain.node.AnvilNode`).
    """

    home: Path
    database_url: str
    rpc_url: str | None
    anvil_port: int
    confirmations: int
    block_time_s: float | None
    host: str
    port: int
    max_body_bytes: int
    keystore_password: str
    deadline_s: int
    expiry_interval_s: float = 2.0
    directories: str = "per-jurisdiction"
    district_rpc_url: str | None = None
    district_chain: bool = False
    district_confirmations: int | None = None
    sync_interval_s: float = 1.0
    api_workers: int = 1
    anvil_state_roots: bool = False

    @property
    def single(self) -> bool:
        """Whether one directory serves every jurisdiction (no tiers)."""
        return self.directories == "single"

    @property
    def embedded_chain(self) -> bool:
        """Whether ``dirchain up`` runs its own anvil."""
        return self.rpc_url is None

    @property
    def api_url(self) -> str:
        """Base URL the API listens on."""
        return f"http://{self.host}:{self.port}"


def _optional_float(raw: str | None) -> float | None:
    return None if raw in (None, "", "0", "auto") else float(raw)


def _optional_int(raw: str | None) -> int | None:
    return None if raw in (None, "") else int(raw)


def _flag(raw: str | None) -> bool:
    """An on/off setting: off when unset, empty, ``0``, ``false`` or ``no``."""
    return raw not in (None, "", "0", "false", "no")


def _directories(raw: str) -> str:
    if raw not in ("per-jurisdiction", "single"):
        raise ValueError(f"DIRCHAIN_DIRECTORIES: expected per-jurisdiction or single, got {raw!r}")
    return raw


@cache
def settings() -> Settings:
    """The process's settings, read from the environment on first call."""
    env = os.environ
    home = Path(env.get("DIRCHAIN_HOME", "./.dirchain")).resolve()
    return Settings(
        home=home,
        database_url=env.get("DIRCHAIN_DATABASE_URL", f"sqlite:///{home / 'index.sqlite'}"),
        rpc_url=env.get("DIRCHAIN_RPC_URL") or None,
        anvil_port=int(env.get("DIRCHAIN_ANVIL_PORT", "8545")),
        confirmations=int(env.get("DIRCHAIN_CONFIRMATIONS", "0")),
        block_time_s=_optional_float(env.get("DIRCHAIN_BLOCK_TIME")),
        host=env.get("DIRCHAIN_HOST", "127.0.0.1"),
        port=int(env.get("DIRCHAIN_PORT", "8000")),
        max_body_bytes=int(env.get("DIRCHAIN_MAX_BODY_BYTES", str(256 * 1024))),
        keystore_password=env.get("DIRCHAIN_KEYSTORE_PASSWORD", ""),
        deadline_s=int(env.get("DIRCHAIN_DEADLINE_S", "3600")),
        expiry_interval_s=float(env.get("DIRCHAIN_EXPIRY_INTERVAL_S", "2")),
        directories=_directories(env.get("DIRCHAIN_DIRECTORIES", "per-jurisdiction")),
        district_rpc_url=env.get("DIRCHAIN_DISTRICT_RPC_URL") or None,
        district_chain=_flag(env.get("DIRCHAIN_DISTRICT_CHAIN")),
        district_confirmations=_optional_int(env.get("DIRCHAIN_DISTRICT_CONFIRMATIONS")),
        sync_interval_s=float(env.get("DIRCHAIN_SYNC_INTERVAL_S", "1")),
        api_workers=int(env.get("DIRCHAIN_API_WORKERS", "1")),
        anvil_state_roots=_flag(env.get("DIRCHAIN_ANVIL_STATE_ROOTS")),
    )
