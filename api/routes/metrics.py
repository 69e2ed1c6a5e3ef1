"""``/metrics``: Prometheus text exposition of the service's state, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from api.deps import Services, ServicesDep
from chain.errors import ChainError
from registry import queries
from registry.directories import TierChain

router = APIRouter(tags=["service"])

CHAIN_LABELS = ["chain", "chain_id"]
CHILD_LABELS = ["jurisdiction", "tier", "chain_id", "directory"]


class ServiceCollector(Collector):
    """Gauges of one directory service. Per chain (labels ``chain``, ``chain_id``): head and its timestamp,
    index cursor, index lag (blocks, seconds). Per child directory (labels ``jurisdiction``, ``tier``,
    ``chain_id``, ``directory``): relay lag in blocks and seconds, items relayed, items failing. Overall: queued
    submissions, index rows by kind."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _chain(self, chain: TierChain, families: dict[str, GaugeMetricFamily]) -> None:
        labels = [chain.name, str(chain.chain_id)]
        with self.services.sessions() as session:
            stored = queries.cursor(session, chain.chain_id, chain.factory)
        try:
            block = chain.rpc.call("eth_getBlockByNumber", ["latest", False])
            head, head_time = int(block["number"], 16), int(block["timestamp"], 16)
            cursor_time = None
            if stored is not None:
                at_cursor = chain.rpc.call("eth_getBlockByNumber", [hex(stored.block_number), False])
                cursor_time = int(at_cursor["timestamp"], 16) if at_cursor else None
        except (ChainError, OSError):
            families["up"].add_metric(labels, 0)
            return
        families["up"].add_metric(labels, 1)
        families["head"].add_metric(labels, head)
        families["head_time"].add_metric(labels, head_time)
        if stored is not None:
            families["cursor"].add_metric(labels, stored.block_number)
            families["lag"].add_metric(labels, head - stored.block_number)
            if cursor_time is not None:
                families["lag_s"].add_metric(labels, max(head_time - cursor_time, 0))

    def collect(self) -> Iterator[Metric]:
        """Read the chains and the index now and yield the gauges (a chain that fails to answer gets
        ``dirchain_chain_up 0`` and no other gauge)."""
        families = {
            "up": GaugeMetricFamily("dirchain_chain_up", "1 if the chain answered this scrape", labels=CHAIN_LABELS),
            "head": GaugeMetricFamily("dirchain_chain_head_block", "Latest block number of the chain",
                                      labels=CHAIN_LABELS),
            "head_time": GaugeMetricFamily("dirchain_chain_head_timestamp_seconds",
                                           "Timestamp of the latest block (unix s)", labels=CHAIN_LABELS),
            "cursor": GaugeMetricFamily("dirchain_index_cursor_block", "Last block fully indexed",
                                        labels=CHAIN_LABELS),
            "lag": GaugeMetricFamily("dirchain_index_lag_blocks", "Blocks between the chain head and the index cursor",
                                     labels=CHAIN_LABELS),
            "lag_s": GaugeMetricFamily("dirchain_index_lag_seconds",
                                       "Seconds between the head's and the cursor's blocks", labels=CHAIN_LABELS),
        }
        for chain in self.services.chains:
            self._chain(chain, families)
        yield from families.values()

        relay = {
            "blocks": GaugeMetricFamily("dirchain_relay_lag_blocks",
                                        "Child blocks not yet relayed to the parent (after the latest pass)",
                                        labels=CHILD_LABELS),
            "seconds": GaugeMetricFamily("dirchain_relay_lag_seconds",
                                         "Seconds between the child head and the last relayed child block",
                                         labels=CHILD_LABELS),
            "relayed": GaugeMetricFamily("dirchain_relay_items", "Items relayed to the parent since start",
                                         labels=CHILD_LABELS),
            "failing": GaugeMetricFamily("dirchain_relay_failing_items", "Items the parent refuses, kept for retry",
                                         labels=CHILD_LABELS),
        }
        for lag in self.services.lags():
            labels = [lag.jurisdiction, lag.tier, str(lag.chain_id), lag.directory]
            relay["blocks"].add_metric(labels, lag.blocks)
            relay["seconds"].add_metric(labels, lag.seconds)
            relay["relayed"].add_metric(labels, lag.relayed)
            relay["failing"].add_metric(labels, lag.failing)
        yield from relay.values()

        queued = GaugeMetricFamily("dirchain_submissions_queued", "Signed submissions waiting for a transaction")
        queued.add_metric([], self.services.pending())
        yield queued
        with self.services.sessions() as session:
            counts = queries.counts(session)
        records = GaugeMetricFamily("dirchain_index_rows", "Rows of the index by kind", labels=["kind"])
        for kind, value in counts.items():
            records.add_metric([kind], value)
        yield records


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format (version 0.0.4) of :class:`ServiceCollector`'s gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(services))
    body = await run_in_threadpool(generate_latest, registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
