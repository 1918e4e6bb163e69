"""HTTP server of the example router: OpenAI-compatible chat over three simulated tiers.

This docstring is the reference for the API and the switches.

Routing (details in :mod:`routerwatch.examplerouter.router`)
--------------------------------------------------------------

A request enters at ``small`` (model ``small-8b``, provider ``acme``, ~30 ms),
may escalate to ``medium`` (``medium-70b``, ``globex``, ~80 ms) and then to
``large`` (``large-frontier``, ``initech``, ~200 ms, terminal). After small and
medium a confidence gate accepts the answer when its confidence is at least
``gate_threshold``. Everything is deterministic: the prompt is the last user
message, matched against a built-in knowledge table (case-insensitive, whole
words, first match wins):

==================================  ====================================  ==========  =================
keyword(s)                          answer                                category    served by (0.5)
==================================  ====================================  ==========  =================
governing-law, governing law        ``{"jurisdiction": "Delaware"}``      legal       large
refund                              ``You have 30 days to ask for a       billing     small
                                    refund.``
hello                               ``Hello``                             chitchat    small
capital of france                   ``Paris``                             geography   small
17 * 23, 17*23, 17 times 23, 17 x   ``391``                               math        medium
23
==================================  ====================================  ==========  =================

Other prompts are in category ``general``, get a difficulty from a hash of
their text (stable across processes) and a generic answer. A tier asked
something above its capability answers ``I am not sure.`` with a confidence
below 0.5, so the default gate never serves a wrong answer; a threshold of 0
serves them all.

Endpoints
---------

``POST /v1/chat/completions``
    Body: an OpenAI chat completion request; ``model`` (any non-empty string,
    ignored for routing) and ``messages`` (at least one message with role
    ``user``; ``content`` a string or a list of ``{"type": "text", "text": ...}``
    parts) are required, other OpenAI fields are accepted and ignored;
    ``stream: true`` is refused.
    Request headers: ``X-Request-Id`` (optional; used as the request id,
    1..256 characters), ``X-Routerwatch-Canary: <canary_id>`` (optional; marks a
    canary probe; the id is recorded as the decision's ``canary_id`` and must be
    a contract name: letters, digits and ``_.:/@+-``, first a letter or digit).
    Response 200: an OpenAI ``chat.completion`` object (``id``, ``object``,
    ``created``, ``model`` = the serving tier's model, ``choices[0].message``
    ``{role: assistant, content}``, ``finish_reason: stop``, ``usage``
    ``{prompt_tokens, completion_tokens, total_tokens}`` of the served attempt),
    plus, when ``expose_tier_body``, ``"router": {"tier", "request_id",
    "attempts"}``. Headers: always ``X-Request-Id``; ``X-Router-Tier: <tier>``
    when ``expose_tier_header``.
    Errors use the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``
    and carry ``X-Request-Id``: 400 ``invalid_request_error`` for a bad body or
    header (the message names the field, e.g. ``messages: field required``);
    502 ``server_error``/``all_tiers_failed`` when no tier could serve (every
    tier left failed; the ``router`` body object has ``tier: null``); 503
    ``server_error``/``router_down`` while the ``down`` switch is on.

``GET /health``
    200 ``{"status": "ok"}`` (also while ``down``: the process is alive).

The ``/admin/`` endpoints are guarded like serve's (:mod:`routerwatch.ingest.webguard`): a
request with a foreign ``Origin`` or ``Sec-Fetch-Site: cross-site``, or a POST body that is not
``Content-Type: application/json``, is refused (403, so no web page can flip a switch); with
``EXAMPLE_ROUTER_TOKEN`` set they need ``Authorization: Bearer <token>`` (401), and the router
refuses to listen beyond loopback without one.

``GET /admin/switches``
    The current switches.

``POST /admin/switches``
    A partial JSON object; each field given replaces that field (``slow_ms``
    as a whole), the result is validated and becomes the switches for the next
    requests (a request already running keeps the switches it started with).
    Returns the new switches; 422 ``invalid_switches`` naming the field on bad
    input (``param`` is the first bad field); 400 when the body is not JSON.

``POST /admin/reset``
    Back to the default switches (not the ones given on the command line);
    returns them. Counters are kept.

``GET /admin/stats``
    ``{"requests": chat requests received, "by_tier": {tier: requests served
    there}, "unserved": 502s, "down": 503s, "bad_requests": 400s,
    "canary_probes": [{"canary_id", "request_id", "received_at" (epoch
    seconds), "status", "tier"}, ...] (the last 1000, oldest first),
    "sdk": the SDK's counters (enqueued, sent, dropped, ...)}``.

Switches (:class:`~routerwatch.examplerouter.router.Switches`)
---------------------------------------------------------------

``gate_threshold`` (float in [0, 1], default 0.5): minimum confidence for
small and medium to serve. 0.9 moves easy prompts to medium, 0.99 moves
everything to large.
``verifier`` (``normal`` | ``reject_all``): ``reject_all`` rejects every
answer; small and medium escalate with reason ``verifier_rejected`` and large
serves ``Sorry, I cannot answer that right now.``, so answer checks fail.
``slow_ms`` (``{tier: ms}``, each 0..60000): extra latency on every attempt at
that tier (really slept).
``fail_providers`` (list of tiers): attempts there fail with
``provider_error`` after ~10 ms and the request falls back to the next tier.
``down`` (bool): 503 to every chat request, no decision recorded.
``expose_tier_header`` / ``expose_tier_body`` (bool, default true).

Telemetry
---------

One RoutingDecision per routed request (200 or 502; not for 400 or 503), via
the SDK, which never blocks the request: one attempt per tier tried (measured
offset and latency, tokens, cost, outcome, gate, escalation reason or failure
mode), ``category`` from the knowledge table, ``canary_id`` from the header,
``prompt`` as a SHA-256 fingerprint and length (never the text), and
``router.policy_version`` = ``gate-<threshold>-<verifier>`` so a threshold
change shows in the data.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import re
import signal
import time
import uuid
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from routerwatch.examplerouter.router import TIERS, Routing, Switches, estimate_tokens, normalise, route
from routerwatch.ingest.webguard import WebGuard, require_token_beyond_loopback
from routerwatch.sdk import RouterWatch, SdkConfig

log = logging.getLogger("routerwatch.examplerouter")

REQUEST_ID_HEADER = "X-Request-Id"
CANARY_HEADER = "X-Routerwatch-Canary"
TIER_HEADER = "X-Router-Tier"

# The contract's Name pattern (events.models): an id that breaks it would make the whole
# decision a dead letter, so the probe is refused at the door instead.
_CANARY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")
CANARY_PROBES_KEPT = 1000
TOKEN_VARIABLE = "EXAMPLE_ROUTER_TOKEN"


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    stream: bool | None = False


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _describe(exc: ValidationError, limit: int = 5) -> tuple[str, str | None]:
    """``path: message`` clauses of a ValidationError, and the first bad field."""
    clauses = []
    errors = exc.errors(include_url=False)
    for item in errors[:limit]:
        path = ".".join(str(part) for part in item["loc"] if part != "[key]") or "<body>"
        msg = item["msg"]
        clauses.append(f"{path}: {msg[:1].lower()}{msg[1:]}")
    if len(errors) > limit:
        clauses.append(f"... and {len(errors) - limit} more")
    first = str(errors[0]["loc"][0]) if errors and errors[0]["loc"] else None
    return "; ".join(clauses), first


def _error(status: int, message: str, kind: str, *, param: str | None = None, code: str | None = None,
           headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    if extra:
        body.update(extra)
    return web.json_response(body, status=status, headers=headers)


class ExampleRouter:
    """State of one server: switches, counters, recent canary probes, the SDK client.

    Lives on the event loop's thread only, so plain attributes need no lock.
    """

    def __init__(self, rw: RouterWatch, switches: Switches | None = None) -> None:
        self.rw = rw
        self.switches = switches or Switches()
        self.requests = 0
        self.by_tier: collections.Counter[str] = collections.Counter({t.name: 0 for t in TIERS})
        self.unserved = 0
        self.refused_down = 0
        self.bad_requests = 0
        self.canary_probes: collections.deque[dict[str, Any]] = collections.deque(maxlen=CANARY_PROBES_KEPT)

    def set_switches(self, switches: Switches) -> Switches:
        if switches != self.switches:
            changed = {
                k: v for k, v in switches.model_dump().items() if getattr(self.switches, k) != getattr(switches, k)
            }
            log.info("switches changed: %s", changed)
        self.switches = switches
        return switches

    # -- handlers -------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.Response:
        self.requests += 1
        received_at = time.time()
        given_id = request.headers.get(REQUEST_ID_HEADER)
        request_id = given_id.strip() if given_id and given_id.strip() else str(uuid.uuid4())
        headers = {REQUEST_ID_HEADER: request_id}
        probe: dict[str, Any] | None = None
        try:
            if len(request_id) > 256:
                raise _BadRequest(f"{REQUEST_ID_HEADER}: at most 256 characters", REQUEST_ID_HEADER)
            canary_id = request.headers.get(CANARY_HEADER)
            if canary_id is not None:
                canary_id = canary_id.strip()
                if not _CANARY_ID.match(canary_id) or len(canary_id) > 128:
                    raise _BadRequest(
                        f"{CANARY_HEADER}: {canary_id!r} is not a canary id (1..128 of letters, digits and "
                        "_.:/@+-, starting with a letter or digit)",
                        CANARY_HEADER,
                    )
                probe = {"canary_id": canary_id, "request_id": request_id, "received_at": received_at,
                         "status": None, "tier": None}
                self.canary_probes.append(probe)
            # One snapshot per request: an admin call mid-request does not change its plan.
            switches = self.switches
            if switches.down:
                self.refused_down += 1
                if probe:
                    probe["status"] = 503
                return _error(503, "the router is down (switch 'down' is on)", "server_error",
                              code="router_down", headers=headers)
            prompt, input_tokens = await self._parse(request)
        except _BadRequest as exc:
            self.bad_requests += 1
            if probe:
                probe["status"] = 400
            return _error(400, exc.message, "invalid_request_error", param=exc.param, headers=headers)

        plan = route(prompt, switches, input_tokens=input_tokens)
        await self._carry_out(plan, request_id, canary_id, prompt, switches)
        if probe:
            probe["status"] = 200 if plan.served else 502
            probe["tier"] = plan.tier
        router_body = {"tier": plan.tier, "request_id": request_id, "attempts": len(plan.attempts)}
        extra = {"router": router_body} if switches.expose_tier_body else None
        if not plan.served:
            self.unserved += 1
            what = ", ".join(
                f"{a.tier.name} {a.outcome} ({a.failure_mode or a.escalation_reason})" for a in plan.attempts
            )
            return _error(502, f"no tier could serve the request: {what}", "server_error",
                          code="all_tiers_failed", headers=headers, extra=extra)
        served = plan.served_attempt
        assert served is not None and plan.tier is not None
        self.by_tier[plan.tier] += 1
        if switches.expose_tier_header:
            headers[TIER_HEADER] = plan.tier
        body: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(received_at),
            "model": served.tier.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": served.answer}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": served.input_tokens,
                "completion_tokens": served.output_tokens,
                "total_tokens": served.input_tokens + served.output_tokens,
            },
        }
        if extra:
            body.update(extra)
        return web.json_response(body, headers=headers)

    async def _parse(self, request: web.Request) -> tuple[str, int]:
        """The last user message and the conversation's token estimate; :class:`_BadRequest` otherwise."""
        raw = await request.read()
        try:
            chat = _ChatRequest.model_validate_json(raw)
        except ValidationError as exc:
            if any(item["type"] == "json_invalid" for item in exc.errors()):
                raise _BadRequest("the request body is not valid JSON") from exc
            message, param = _describe(exc)
            raise _BadRequest(message, param) from exc
        if chat.stream:
            raise _BadRequest("stream: streaming is not supported by the example router", "stream")
        users = [m for m in chat.messages if m.role == "user"]
        if not users:
            raise _BadRequest("messages: needs at least one message with role 'user'", "messages")
        # Each message costs a few tokens of framing on top of its text, as with real chat models.
        input_tokens = sum(estimate_tokens(m.text()) + 4 for m in chat.messages)
        return users[-1].text(), input_tokens

    async def _carry_out(self, plan: Routing, request_id: str, canary_id: str | None, prompt: str,
                         switches: Switches) -> None:
        """Sleep through the planned attempts while recording them; the SDK only enqueues."""
        with self.rw.decision(
            request_id=request_id,
            category=plan.category,
            canary_id=canary_id,
            prompt={"hash": hashlib.sha256(normalise(prompt).encode()).hexdigest(), "length": len(prompt)},
        ) as decision:
            decision.fields["router"] = {
                **decision.fields["router"],
                "policy_version": f"gate-{switches.gate_threshold:g}-{switches.verifier}",
            }
            for step in plan.attempts:
                tier = step.tier
                attempt = decision.attempt(tier.name, tier_rank=tier.rank, model=tier.model, provider=tier.provider)
                await asyncio.sleep(step.latency_ms / 1000.0)
                if step.outcome == "failed":
                    attempt.fail(step.failure_mode or "other", input_tokens=step.input_tokens)
                elif step.outcome == "escalated":
                    attempt.escalate(step.escalation_reason or "other", input_tokens=step.input_tokens,
                                     output_tokens=step.output_tokens, cost_usd=step.cost_usd, gate=step.gate)
                else:
                    attempt.accept(input_tokens=step.input_tokens, output_tokens=step.output_tokens,
                                   cost_usd=step.cost_usd, gate=step.gate)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def get_switches(self, request: web.Request) -> web.Response:
        return web.json_response(self.switches.model_dump())

    async def post_switches(self, request: web.Request) -> web.Response:
        try:
            patch = await request.json()
        except ValueError:
            return _error(400, "the request body is not valid JSON", "invalid_request_error")
        try:
            switches = self.switches.merged(patch)
        except TypeError as exc:
            return _error(422, str(exc), "invalid_switches")
        except ValidationError as exc:
            message, param = _describe(exc)
            return _error(422, message, "invalid_switches", param=param)
        return web.json_response(self.set_switches(switches).model_dump())

    async def reset(self, request: web.Request) -> web.Response:
        return web.json_response(self.set_switches(Switches()).model_dump())

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "by_tier": dict(self.by_tier),
                "unserved": self.unserved,
                "down": self.refused_down,
                "bad_requests": self.bad_requests,
                "canary_probes": list(self.canary_probes),
                "sdk": self.rw.stats(),
            }
        )


STATE = web.AppKey("example_router", ExampleRouter)


def admin_guard(token: str | None) -> WebGuard:
    """CSRF checks (and the bearer token, when given) for ``/admin/``; chat and /health stay open."""
    return WebGuard(token, open_routes=(), guarded_prefixes=("/admin/",), token_variable=TOKEN_VARIABLE)


def make_app(rw: RouterWatch, switches: Switches | None = None, admin_token: str | None = None) -> web.Application:
    """The aiohttp application. ``rw`` is used, not owned: the caller closes it."""
    state = ExampleRouter(rw, switches)
    app = web.Application(middlewares=[admin_guard(admin_token).middleware])
    app[STATE] = state
    app.router.add_post("/v1/chat/completions", state.chat)
    app.router.add_get("/health", state.health)
    app.router.add_get("/admin/switches", state.get_switches)
    app.router.add_post("/admin/switches", state.post_switches)
    app.router.add_post("/admin/reset", state.reset)
    app.router.add_get("/admin/stats", state.stats)
    return app


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(host: str, port: int, sdk: SdkConfig, switches: Switches | None = None,
                stop: asyncio.Event | None = None, admin_token: str | None = None) -> dict[str, int]:
    """Serve until SIGTERM or SIGINT (or until ``stop`` is set), then close the SDK, flushing.

    Logs one line with the URL once listening (``port`` 0 picks a free port and
    the line shows it). Returns the SDK's final counters.
    """
    require_token_beyond_loopback(host, admin_token, TOKEN_VARIABLE)
    rw = RouterWatch(sdk).start()
    app = make_app(rw, switches, admin_token)
    # No access log: canary probes and load would drown the switch changes worth reading.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (an embedding caller): ``stop`` is the way out
        log.info(
            "example router listening on %s (router_id %s; decisions to topic %s at %s; switches %s)",
            _url(host, bound), sdk.router_id, sdk.decisions_topic, sdk.bootstrap_servers,
            app[STATE].switches.model_dump(),
        )
        await stop.wait()
        log.info("example router stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        stats = await rw.aclose()
    log.info("example router stopped; SDK: %s", {k: stats.get(k, 0) for k in ("enqueued", "sent", "dropped")})
    return stats
