"""OpenTelemetry SDK + its OTLP/HTTP exporter -> the real `routerwatch serve` (/v1/traces) -> Kafka -> chDB.

A cascade's spans (router span, one GenAI span per attempt; escalations, fallbacks after provider
failures) are emitted with the real SDK and exporter and checked figure by figure against what was
emitted: requests, attempts, escalations per tier, failure modes, tokens, cost. Also: OTLP/JSON with
gzip, re-sent spans stored once, broken traces dead-lettered with reason and trace id, the token
and the limits, open traces flushed on a clean stop.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import re
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest
from servicekit import REPO, Env, Serve, free_port

from routerwatch.ingest.dlq import read_dead_letters
from routerwatch.otlp.mapping import event_id
from routerwatch.prices import default_prices_file, load_prices

pytestmark = pytest.mark.integration

TOKEN = "otlp-test-token-0123456789"
PRICES = load_prices(default_prices_file())
TIERS = [("small", "small-8b", ("vllm", "together")), ("medium", "medium-70b", ("fireworks", "together")),
         ("large", "large-frontier", ("openai", "anthropic"))]
ERRORS = [("429", "rate_limited"), ("litellm.Timeout", "timeout"), ("InternalServerError", "provider_error"),
          ("ContextWindowExceededError", "context_overflow")]


def _otlp_env(env: Env, **extra: str) -> int:
    port = free_port()
    env.extra.update({
        "ROUTERWATCH_HTTP__TOKEN": TOKEN,
        "ROUTERWATCH_OTLP__ENABLED": "true",
        "ROUTERWATCH_OTLP__PORT": str(port),
        "ROUTERWATCH_OTLP__GRACE_S": "0.3",
        "ROUTERWATCH_OTLP__WINDOW_S": "5",
        "ROUTERWATCH_SCHEDULER__ENABLED": "false",
        **extra,
    })
    return port


@pytest.fixture
def otlp_serve(env, tmp_path):
    port = _otlp_env(env)
    service = Serve(env, tmp_path / "serve.log").start()
    service.otlp_url = f"http://127.0.0.1:{port}/v1/traces"
    yield service
    service.stop()


def provider_for(url: str, token: str | None = TOKEN, memory: object | None = None):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "otlp-test-router"}))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url, headers=headers), schedule_delay_millis=100))
    if memory is not None:
        provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider


def emit_cascade(tracer, rng: random.Random, n: int) -> dict:
    """``n`` requests of a three-tier cascade with fallbacks; returns the figures routerwatch must show."""
    from opentelemetry.trace import StatusCode

    want: dict = {"requests": n, "attempts": Counter(), "failure_modes": Counter(), "final": Counter(),
                  "input_tokens": 0, "output_tokens": 0, "cost": 0.0, "category": Counter()}
    for i in range(n):
        category = rng.choice(["billing", "code", "chat"])
        want["category"][category] += 1
        with tracer.start_as_current_span("route", attributes={
            "routerwatch.router.id": "otlp-cascade", "routerwatch.category": category,
            "routerwatch.request_id": f"req-{i}",
        }):
            served = False
            for rank, (tier, model, providers) in enumerate(TIERS):
                for attempt_provider in providers:  # the fallback deployment after a provider failure
                    fails = rng.random() < 0.15
                    with tracer.start_as_current_span(f"chat {model}", attributes={
                        "gen_ai.operation.name": "chat", "gen_ai.provider.name": attempt_provider,
                        "gen_ai.request.model": model, "routerwatch.tier": tier, "routerwatch.tier_rank": rank,
                    }) as span:
                        if fails:
                            error, mode = rng.choice(ERRORS)
                            span.set_attribute("error.type", error)
                            span.set_status(StatusCode.ERROR)
                            want["attempts"][(tier, "failed")] += 1
                            want["failure_modes"][(tier, mode)] += 1
                            continue
                        tokens_in, tokens_out = rng.randint(50, 3000), rng.randint(1, 800)
                        span.set_attributes({"gen_ai.usage.input_tokens": tokens_in, "gen_ai.usage.output_tokens": tokens_out})
                        want["input_tokens"] += tokens_in
                        want["output_tokens"] += tokens_out
                        price = PRICES.models[model]
                        cost = (tokens_in * price.input_usd_per_mtok + tokens_out * price.output_usd_per_mtok) / 1e6
                        if rng.random() < 0.3:  # some routers report their own cost
                            cost = round(rng.uniform(0.0001, 0.01), 6)
                            span.set_attribute("routerwatch.cost_usd", cost)
                        want["cost"] += cost
                        top = rank == len(TIERS) - 1
                        score = rng.random()
                        span.set_attributes({"routerwatch.gate.kind": "confidence", "routerwatch.gate.score": score,
                                             "routerwatch.gate.threshold": 0.6})
                        if score < 0.6 and not top:
                            want["attempts"][(tier, "escalated")] += 1
                            break  # escalate to the next tier
                        span.set_attribute("routerwatch.gate.passed", True)
                        want["attempts"][(tier, "accepted")] += 1
                        want["final"][tier] += 1
                        served = True
                        break
                if served:
                    break
            if not served:
                want["final"]["not_served"] += 1
    return want


def check_figures(serve: Serve, want: dict, router: str = "otlp-cascade") -> None:
    n = want["requests"]
    where = f"router_id = '{router}'"
    serve.wait_for(f"SELECT count() FROM decisions WHERE {where}", n, timeout=60)
    got_attempts = Counter({(t, o): c for t, o, c in serve.query(
        f"SELECT tier, outcome, count() FROM attempts WHERE {where} GROUP BY tier, outcome")})
    assert got_attempts == want["attempts"]
    got_modes = Counter({(t, m): c for t, m, c in serve.query(
        f"SELECT tier, failure_mode, count() FROM attempts WHERE {where} AND outcome = 'failed' GROUP BY ALL")})
    assert got_modes == want["failure_modes"]
    got_final = Counter(dict(serve.query(
        f"SELECT if(served, final_tier, 'not_served'), count() FROM decisions WHERE {where} GROUP BY 1")))
    assert got_final == want["final"]
    assert Counter(dict(serve.query(f"SELECT category, count() FROM decisions WHERE {where} GROUP BY 1"))) == want["category"]
    tokens_in, tokens_out, cost, attempt_cost = serve.query(
        f"SELECT (SELECT sum(input_tokens) FROM attempts WHERE {where}), (SELECT sum(output_tokens) FROM attempts WHERE {where}), "
        f"(SELECT sum(cost_usd) FROM decisions WHERE {where}), (SELECT sum(cost_usd) FROM attempts WHERE {where})")[0]
    assert (tokens_in, tokens_out) == (want["input_tokens"], want["output_tokens"])
    assert abs(cost - want["cost"]) < 1e-9 and abs(attempt_cost - want["cost"]) < 1e-9


def metric(serve: Serve, name: str, **labels: str) -> float:
    total = 0.0
    for line in serve.metrics().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(condition, timeout: float = 60, what: str = "condition", serve: Serve | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{serve.log() if serve else ''}")


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_cascade_spans_from_the_sdk_exporter_give_the_emitted_figures(otlp_serve):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = provider_for(otlp_serve.otlp_url, memory=memory)
    want = emit_cascade(provider.get_tracer("cascade"), random.Random(7), 80)
    assert provider.force_flush(30_000)
    check_figures(otlp_serve, want)
    spans = memory.get_finished_spans()
    assert metric(otlp_serve, "routerwatch_otlp_spans_total", result="accepted") == len(spans)
    assert metric(otlp_serve, "routerwatch_otlp_traces_total", result="assembled") == 80

    # The exporter sends the same spans again (a retry after a lost answer): counted as duplicates, stored once.
    again = OTLPSpanExporter(endpoint=otlp_serve.otlp_url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert again.export(spans) == SpanExportResult.SUCCESS
    wait_until(lambda: metric(otlp_serve, "routerwatch_otlp_spans_total", result="duplicate") == len(spans), what="duplicates")
    assert otlp_serve.scalar("SELECT count() FROM decisions") == 80
    ids = {event_id(format(s.context.trace_id, "032x")) for s in spans}
    assert set(r[0] for r in otlp_serve.query("SELECT toString(event_id) FROM decisions")) == ids
    provider.shutdown()

    # The token is required; wrong types, encodings and sizes are refused with what was wrong.
    status, body = post(otlp_serve.otlp_url, b"", {"Content-Type": "application/x-protobuf"})
    assert status == 401
    status, body = post(otlp_serve.otlp_url, b"{}", {"Content-Type": "application/json", "Authorization": "Bearer wrong"})
    assert status == 401 and b"does not match" in body
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body = post(otlp_serve.otlp_url, b"x", {"Content-Type": "text/plain", **auth})
    assert status == 415 and b"application/x-protobuf" in body
    status, body = post(otlp_serve.otlp_url, b"{not json", {"Content-Type": "application/json", **auth})
    assert status == 400 and b"not JSON" in body
    status, body = post(otlp_serve.otlp_url, b"\x0a\xff\xff", {"Content-Type": "application/x-protobuf", **auth})
    assert status == 400
    big = gzip.compress(b" " * (5 << 20))  # 5 MiB of JSON whitespace, a few KiB gzipped
    status, body = post(otlp_serve.otlp_url, big, {"Content-Type": "application/json", "Content-Encoding": "gzip", **auth})
    assert status == 413 and b"MAX_BODY_BYTES" in body
    status, body = post(otlp_serve.otlp_url, b"{}", {"Content-Type": "application/json", "Origin": "http://evil.example", **auth})
    assert status == 403


def _json_request(spans) -> bytes:
    """OTLP/JSON of SDK spans, via the protobuf encoder and protobuf's JSON printer (ids turned to hex)."""
    import base64

    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    body = MessageToDict(encode_spans(spans))

    def hexify(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(body)
    return json.dumps(body).encode()


def test_otlp_json_gzip_and_broken_traces_are_dead_lettered_with_reason_and_trace_id(otlp_serve):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "json-router"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("json")
    want = emit_cascade(tracer, random.Random(11), 40)
    # Two broken traces: a router span without any model call, and an outcome outside the contract.
    with tracer.start_as_current_span("route", attributes={"routerwatch.router.id": "otlp-cascade"}) as empty:
        pass
    with tracer.start_as_current_span("route", attributes={"routerwatch.router.id": "otlp-cascade"}) as bad:
        with tracer.start_as_current_span("chat", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "small-8b", "routerwatch.outcome": "maybe"}):
            pass
    spans = list(memory.get_finished_spans())
    random.Random(3).shuffle(spans)  # out of order, over several requests
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for start in range(0, len(spans), 37):
        status, body = post(otlp_serve.otlp_url, gzip.compress(_json_request(spans[start:start + 37])),
                            {**auth, "Content-Encoding": "gzip"})
        assert status == 200, body
        assert json.loads(body) == {}
    check_figures(otlp_serve, want)

    broken = {format(empty.get_span_context().trace_id, "032x"): "otlp_no_attempts",
              format(bad.get_span_context().trace_id, "032x"): "otlp_invalid"}
    letters = wait_until(lambda: [r for r in asyncio.run(read_dead_letters(otlp_serve.env.kafka, otlp_serve.env.names["dlq"]))
                                  if r.headers.get("routerwatch.topic") == "otlp"] or None, what="dead letters")
    assert {r.headers["routerwatch.trace_id"]: r.reason for r in letters} == broken
    for r in letters:
        assert r.headers["routerwatch.trace_id"] in r.headers["routerwatch.detail"]
        assert r.value is not None and r.headers["routerwatch.trace_id"] in r.value.decode()  # the spans, as OTLP/JSON
    assert "outcome" in next(r for r in letters if r.reason == "otlp_invalid").headers["routerwatch.detail"]
    stored = otlp_serve.wait_for("SELECT count() FROM dead_letters WHERE topic = 'otlp'", 2)
    assert stored == 2
    assert metric(otlp_serve, "routerwatch_otlp_dead_lettered_total", reason="otlp_invalid") == 1


def test_the_documented_example_runs_and_open_traces_are_flushed_on_stop(env, tmp_path):
    port = _otlp_env(env, ROUTERWATCH_OTLP__GRACE_S="600", ROUTERWATCH_OTLP__WINDOW_S="900")
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        doc = (REPO / "docs" / "otlp.md").read_text()
        example = re.search(r"<!-- example:start -->\n```python\n(.*?)```\n<!-- example:end -->", doc, re.S).group(1)
        os.environ["ROUTERWATCH_HTTP__TOKEN"] = TOKEN
        try:
            exec(compile(example.replace("127.0.0.1:4318", f"127.0.0.1:{port}"), "docs/otlp.md", "exec"), {})
        finally:
            del os.environ["ROUTERWATCH_HTTP__TOKEN"]
        wait_until(lambda: metric(serve, "routerwatch_otlp_spans_total", result="accepted") == 4, what="spans", serve=serve)
        assert serve.stop() == 0  # a clean stop assembles the open trace (its grace is 10 minutes) and sends it
        assert "sending 1 open trace" in serve.log_text()
    finally:
        serve.stop()
    serve = Serve(env, tmp_path / "serve2.log").start()  # the decision was on the topic: ingest stores it
    try:
        serve.wait_for("SELECT count() FROM decisions WHERE router_id = 'support-router'", 1)
        rows = serve.query_dicts("SELECT tier, outcome, escalation_reason, failure_mode, input_tokens, output_tokens, "
                                 "round(cost_usd, 9) AS cost FROM attempts ORDER BY attempt_index")
        assert [(r["tier"], r["outcome"], r["escalation_reason"], r["failure_mode"]) for r in rows] == [
            ("small", "escalated", "low_confidence", ""), ("large", "failed", "", "rate_limited"), ("large", "accepted", "", "")]
        assert rows[2]["cost"] == round((812 * 5.0 + 240 * 15.0) / 1e6, 9)
        assert serve.scalar("SELECT category FROM decisions") == "billing"
    finally:
        serve.stop()
