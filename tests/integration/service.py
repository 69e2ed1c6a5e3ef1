"""Running the real service (chain client, index, indexer process, batchers, API) inside a test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.relay import Relay
from chain.node import free_port
from chain.rpc import Rpc
from dirchain.service import Service, start_service
from dirchain.settings import Settings
from registry.keystore import Keystore

FUNDS_WEI = 10**24


def make_settings(
    home: Path, rpc_url: str | None, max_body_bytes: int = 256 * 1024, directories: str = "single", **kw: Any
) -> Settings:
    """Settings for a service under ``home`` on ``rpc_url`` (None: an embedded anvil on a free port); one directory
    for every jurisdiction unless ``directories="per-jurisdiction"``; ``kw``: other settings."""
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'index.sqlite'}",
        rpc_url=rpc_url,
        anvil_port=free_port(),
        confirmations=0,
        block_time_s=None,
        host="127.0.0.1",
        port=free_port(),
        max_body_bytes=max_body_bytes,
        keystore_password="",
        deadline_s=3600,
        directories=directories,
        **kw,
    )


@contextmanager
def running_service(
    settings: Settings, relay_timeout_s: float | None = None
) -> Iterator[tuple[Service, TestClient]]:
    """Start the service (funding its relayer on an external anvil) and yield it with an in-process client;
    ``relay_timeout_s``: how long a submission waits for its transaction before 503 (default the relay's)."""
    for url in (settings.rpc_url, settings.district_rpc_url):
        if url is not None:
            for label in ("relayer", "administrator", "sync"):
                Rpc(url).call("anvil_setBalance", [Keystore(settings.home / "keys").address(label), hex(FUNDS_WEI)])
    service = start_service(settings)
    try:
        services = service.services()
        if relay_timeout_s is not None:
            services.relay = Relay(service.directories, timeout_s=relay_timeout_s)
        with TestClient(create_app(services, settings.max_body_bytes)) as client:
            yield service, client
    finally:
        service.stop()


def wait_indexed(client: TestClient, tx_hash: str, timeout_s: float = 30.0) -> None:
    """Poll ``/submissions/{tx}`` until ``indexed``; AssertionError on ``reverted``/timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.get(f"/submissions/{tx_hash}").json()["status"]
        assert state != "reverted", f"{tx_hash} reverted"
        if state == "indexed":
            return
        time.sleep(0.05)
    raise AssertionError(f"{tx_hash} not indexed after {timeout_s} s")
