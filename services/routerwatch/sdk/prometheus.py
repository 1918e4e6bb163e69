"""Export the SDK's own counters to the router's Prometheus registry.

Optional: needs ``prometheus_client`` in the router process (the SDK itself
does not depend on it). Drops are the one pipeline-health figure only the
router can see, so export them::

    from routerwatch.sdk.prometheus import register
    register(rw)            # adds routerwatch_sdk_* series to the default registry
"""

from __future__ import annotations

from typing import Any, Iterator

from routerwatch.sdk.client import RouterWatch


class SdkCollector:
    """A prometheus_client collector reading :meth:`RouterWatch.stats` at scrape time."""

    def __init__(self, rw: RouterWatch) -> None:
        self.rw = rw

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.rw.stats()
        router = self.rw.config.router_id
        events = CounterMetricFamily(
            "routerwatch_sdk_events",
            "Routing events handled by the routerwatch SDK, by result (enqueued, sent, retried, dropped_<reason>).",
            labels=["router", "result"],
        )
        for key in sorted(stats):
            if key in ("enqueued", "sent", "retried") or key.startswith("dropped_"):
                events.add_metric([router, key], stats[key])
        yield events
        held = GaugeMetricFamily(
            "routerwatch_sdk_events_held",
            "Events held by the SDK: queued for the sender, or handed to the producer and unacknowledged.",
            labels=["router", "state"],
        )
        held.add_metric([router, "queued"], stats["queued"])
        held.add_metric([router, "in_flight"], stats["in_flight"])
        yield held


def register(rw: RouterWatch, registry: Any = None) -> SdkCollector:
    """Register a collector for ``rw`` (default registry unless one is given) and return it."""
    from prometheus_client import REGISTRY

    collector = SdkCollector(rw)
    (registry or REGISTRY).register(collector)
    return collector
