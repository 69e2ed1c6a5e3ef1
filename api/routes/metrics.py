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

router = APIRouter(tags=["service"])


class ServiceCollector(Collector):
    """Gauges of one directory service: chain head and its timestamp, index cursor, lag (blocks, seconds),
    queued submissions, indexed events, record counts. Labels: ``chain_id``, ``directory``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        """Read the chain and the index now and yield the gauges (a metric is left out if its source failed)."""
        client = self.services.client
        labels = [str(client.chain_id), client.address]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=["chain_id", "directory"])
            g.add_metric(labels, value)
            return g

        with self.services.sessions() as session:
            stored = queries.cursor(session, client.chain_id, client.address)
            counts = queries.counts(session)
        head: int | None = None
        head_time: int | None = None
        cursor_time: int | None = None
        try:
            block = client.rpc.call("eth_getBlockByNumber", ["latest", False])
            head, head_time = int(block["number"], 16), int(block["timestamp"], 16)
            if stored is not None:
                at_cursor = client.rpc.call("eth_getBlockByNumber", [hex(stored.block_number), False])
                cursor_time = int(at_cursor["timestamp"], 16) if at_cursor else None
        except (ChainError, OSError):
            pass
        yield gauge("dirchain_chain_up", "1 if the chain answered this scrape", 0 if head is None else 1)
        if head is not None and head_time is not None:
            yield gauge("dirchain_chain_head_block", "Latest block number of the chain", head)
            yield gauge("dirchain_chain_head_timestamp_seconds", "Timestamp of the latest block (unix s)", head_time)
        if stored is not None:
            yield gauge("dirchain_index_cursor_block", "Last block fully indexed", stored.block_number)
            if head is not None:
                yield gauge("dirchain_index_lag_blocks", "Blocks between the chain head and the index cursor",
                            head - stored.block_number)
                if head_time is not None and cursor_time is not None:
                    yield gauge("dirchain_index_lag_seconds", "Seconds between the head's and the cursor's blocks",
                                max(head_time - cursor_time, 0))
        yield gauge("dirchain_submissions_queued", "Signed submissions waiting for a transaction",
                    self.services.relay.batcher.pending())
        records = GaugeMetricFamily("dirchain_index_rows", "Rows of the index by kind",
                                    labels=["chain_id", "directory", "kind"])
        for kind, value in counts.items():
            records.add_metric([*labels, kind], value)
        yield records


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format (version 0.0.4) of :class:`ServiceCollector`'s gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(services))
    body = await run_in_threadpool(generate_latest, registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
