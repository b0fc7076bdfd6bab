"""The stream worker's Faust application, configured: its consumer group, batch sizes, the
producer of changelog and episode-completed messages, group membership, and the web server
(its `/metrics` page, behind the bearer token when one is set)."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from fulmen.kafka import KafkaSettings
from fulmen.streams._batch_consumer import BatchApp
from fulmen.streams._kafka_auth import broker_credentials
from fulmen.streams._metrics import WorkerMetrics
from fulmen.streams._settings import WorkerSettings
from fulmen.streams._web_auth import bearer_token_guard


def worker_app(
    kafka: KafkaSettings, worker: WorkerSettings, *, partitions: int, metrics: WorkerMetrics
) -> BatchApp:
    """The application `worker.app_id`, its topics of `partitions` partitions, serving
    `metrics` on `/metrics`."""
    app = BatchApp(
        worker.app_id,
        broker=[f"kafka://{host.strip()}" for host in kafka.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(kafka),
        store="memory://",
        autodiscover=False,
        topic_partitions=partitions,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_host=worker.web_host,
        web_bind=worker.web_host,  # Faust binds web_bind (0.0.0.0 unless set), not web_host
        web_port=worker.web_port,
        web_application_options=_web_options(worker),
        datadir=str(worker.data_dir),
        # Changelog and episode-completed messages go out in batches, not one request each.
        producer_linger=0.02,
        # aiokafka's default (16 KiB) is a few rollouts' changelog records: a request each.
        producer_max_batch_size=1024 * 1024,
        producer_compression_type="lz4",
        broker_max_poll_records=worker.batch_max,
        stream_buffer_maxsize=worker.batch_max,
        # A changelog record holds a rollout's events: up to `max_rollout_bytes`.
        producer_max_request_size=worker.changelog_max_bytes,
        # Input topics created while the worker runs are subscribed to within seconds.
        consumer_metadata_max_age_ms=5_000,
        broker_session_timeout=worker.session_timeout_s,
        broker_heartbeat_interval=worker.session_timeout_s / 3,
        consumer_group_instance_id=worker.instance_id,
    )
    app.fetch_max_wait_ms = round(worker.fetch_max_wait_s * 1000)
    app.page("/metrics")(_metrics_view(metrics))
    return app


def _metrics_view(metrics: WorkerMetrics) -> type[View]:
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics.prometheus(), content_type="text/plain; version=0.0.4")

    return MetricsView


def _web_options(worker: WorkerSettings) -> dict[str, Any]:
    """aiohttp Application options of the web server: the bearer token guard when a token
    is set."""
    if worker.web_token is None:
        return {}
    return {"middlewares": [bearer_token_guard(worker.web_token.get_secret_value())]}
