"""An example router that really routes: three simulated tiers behind a confidence gate.

``routerwatch example-router`` serves an OpenAI-compatible chat endpoint, records
one RoutingDecision per request with the SDK, and has switches to break it on
purpose (raise the gate threshold, make the verifier reject everything, slow a
tier, fail a provider, take it down). The demo and the integration tests use it
as the router under watch.

* :mod:`.router`: the routing logic, pure and deterministic (tiers, knowledge
  table, confidence, :class:`~.router.Switches`).
* :mod:`.server`: the aiohttp app; its docstring is the API reference.
* :mod:`.cli`: the ``example-router`` subcommand (and ``example-router switch``).
"""

from routerwatch.examplerouter.router import (
    APOLOGY,
    KNOWLEDGE,
    TIERS,
    Knowledge,
    Routing,
    Switches,
    Tier,
    route,
)

__all__ = ["APOLOGY", "KNOWLEDGE", "TIERS", "Knowledge", "Routing", "Switches", "Tier", "route"]
