"""The SDK's drop counters reach the router's Prometheus registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from routerwatch.sdk import RouterWatch
from routerwatch.sdk.prometheus import register


def test_drops_and_sends_are_exported_at_scrape_time():
    rw = RouterWatch(bootstrap_servers="127.0.0.1:1", router_id="r-prom", max_queue=3, drop_log_interval_s=3600)
    registry = CollectorRegistry()
    register(rw, registry)
    try:
        for _ in range(5):
            rw.emit_raw("t", b"{}")
        assert registry.get_sample_value("routerwatch_sdk_events_total", {"router": "r-prom", "result": "dropped_queue_full"}) == 2
        assert registry.get_sample_value("routerwatch_sdk_events_total", {"router": "r-prom", "result": "enqueued"}) == 3
        held = sum(
            registry.get_sample_value("routerwatch_sdk_events_held", {"router": "r-prom", "state": s}) or 0
            for s in ("queued", "in_flight")
        )
        assert held == 3
        assert b"routerwatch_sdk_events_total" in generate_latest(registry)
    finally:
        rw.close(timeout=1)
