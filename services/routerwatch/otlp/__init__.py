"""OpenTelemetry traces as a second way in: an OTLP/HTTP receiver that turns each trace into a RoutingDecision.

- :mod:`routerwatch.otlp.spans`: the span as the receiver keeps it, decoded from OTLP protobuf or JSON
  (and written back as OTLP JSON for dead letters, so a dead-lettered trace can be sent again).
- :mod:`routerwatch.otlp.mapping`: the one attribute table (GenAI conventions, ``routerwatch.*``,
  vLLM Semantic Router's and LiteLLM's attributes) and the spans -> decision mapping; pure.
- :mod:`routerwatch.otlp.assemble`: the bounded, windowed trace assembler; pure, clock injected.
- :mod:`routerwatch.otlp.receiver`: ``POST /v1/traces`` in ``routerwatch serve``; decisions go to the
  decisions topic (the SDK's path), broken traces to the dead-letter topic.

docs/otlp.md is the user's guide; its mapping table is rendered from :mod:`routerwatch.otlp.mapping`.
"""
