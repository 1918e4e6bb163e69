"""routerwatch: telemetry and drift alerting for LLM routers and model cascades.

Import :mod:`routerwatch.sdk` from router code (light dependencies only); the
service side (ingest, storage, CLI) needs the ``service`` extra.
"""

__version__ = "0.1.0"
