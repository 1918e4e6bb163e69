"""OTLP receiver throughput: spans per second per core assembled into RoutingDecisions, beside the SDK path.

    python -m bench.otlp [--requests N] [--repeats R] [--json]

The same cascade traffic (three tiers, a fallback deployment per tier, ~15 % provider failures,
confidence-gate escalations; 3.4 spans a request on average) is recorded twice in one process:

* **OTLP**: the real OpenTelemetry SDK records each request as a router span and one GenAI span
  per attempt (in-memory exporter); the spans are encoded as the OTLP/HTTP exporter sends them
  (protobuf ExportTraceServiceRequest bodies of 512 spans, its default batch; and the same as
  OTLP/JSON). Timed: what serve's receiver does per body: decode, assemble (routerwatch.otlp.assemble
  with a clock moved past the grace), map and validate each trace into the decision's JSON bytes.
  The HTTP layer and the Kafka send are not in it (the SDK figure has neither either).
* **SDK**: the same decisions recorded with ``rw.decision(...)`` / ``attempt().escalate/fail/accept``
  (the router's call) plus the sender thread's ``to_event`` and JSON encoding, without the send.

Also timed, for the router's side: the OpenTelemetry SDK creating the spans and the exporter's
protobuf encoding, per request. CPU time of the one thread (``time.process_time``) per repeat; the
best repeat of each is reported (the least disturbed by other load). Paths alternate repeat by repeat.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH_SPANS = 512
TIERS = [("small", "small-8b", ("vllm", "together")), ("medium", "medium-70b", ("fireworks", "together")),
         ("large", "large-frontier", ("openai", "anthropic"))]
ERRORS = [("429", "rate_limited"), ("litellm.Timeout", "timeout"), ("InternalServerError", "provider_error")]


def plan(n: int, seed: int) -> list[dict[str, Any]]:
    """The requests: per request its category and attempts (tier, rank, model, provider, outcome, tokens...)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        attempts = []
        served = False
        for rank, (tier, model, providers) in enumerate(TIERS):
            for provider in providers:
                a = {"tier": tier, "rank": rank, "model": model, "provider": provider}
                attempts.append(a)
                if rng.random() < 0.15:
                    a["outcome"], a["error"], a["mode"] = "failed", *rng.choice(ERRORS)
                    continue
                a["in"], a["out"], a["score"] = rng.randint(50, 3000), rng.randint(1, 800), rng.random()
                a["outcome"] = "escalated" if a["score"] < 0.6 and rank < 2 else "accepted"
                served = a["outcome"] == "accepted"
                break
            if served:
                break
        out.append({"id": f"req-{i}", "category": rng.choice(["billing", "code", "chat"]), "attempts": attempts})
    return out


def otel_spans(requests: list[dict[str, Any]]) -> tuple[list[Any], float]:
    """The requests as SDK spans (finished, in export order), and the CPU seconds the SDK took to make them."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-router"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    started = time.process_time()
    for r in requests:
        with tracer.start_as_current_span("route", attributes={
            "routerwatch.router.id": "bench-router", "routerwatch.category": r["category"], "routerwatch.request_id": r["id"]}):
            for a in r["attempts"]:
                with tracer.start_as_current_span("chat", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": a["provider"], "gen_ai.request.model": a["model"],
                    "routerwatch.tier": a["tier"], "routerwatch.tier_rank": a["rank"]}) as span:
                    if a["outcome"] == "failed":
                        span.set_attribute("error.type", a["error"])
                        span.set_status(StatusCode.ERROR)
                    else:
                        span.set_attributes({"gen_ai.usage.input_tokens": a["in"], "gen_ai.usage.output_tokens": a["out"],
                                             "routerwatch.gate.kind": "confidence", "routerwatch.gate.score": a["score"],
                                             "routerwatch.gate.threshold": 0.6})
    cpu = time.process_time() - started
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans, cpu


def encode(spans: list[Any]) -> tuple[list[bytes], list[bytes], float]:
    """Protobuf and JSON request bodies of BATCH_SPANS spans; and the CPU seconds of the protobuf encoding."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from routerwatch.otlp.spans import decode_protobuf, to_otlp_json

    started = time.process_time()
    bodies = [encode_spans(spans[i:i + BATCH_SPANS]).SerializeToString() for i in range(0, len(spans), BATCH_SPANS)]
    cpu = time.process_time() - started
    json_bodies = [to_otlp_json(decode_protobuf(b).spans) for b in bodies]
    return bodies, json_bodies, cpu


def run_otlp(bodies: list[bytes], json_encoded: bool) -> tuple[float, int, int]:
    """(CPU seconds, spans, decisions) of decoding, assembling and mapping every body."""
    from routerwatch.otlp.assemble import Assembled, TraceAssembler
    from routerwatch.otlp.mapping import build_decision, price_lookup
    from routerwatch.otlp.spans import decode_json, decode_protobuf
    from routerwatch.prices import default_prices_file, load_prices

    decode = decode_json if json_encoded else decode_protobuf
    assembler = TraceAssembler(partial(build_decision, prices=price_lookup(load_prices(default_prices_file()))),
                               grace_s=1.0, window_s=30.0, max_open_traces=1_000_000, remember_traces=100_000)
    spans = decisions = 0
    now = 0.0
    gc.collect()
    started = time.process_time()
    for body in bodies:
        result = assembler.add(decode(body).spans, now)
        spans += result.accepted
        now += 2.0  # the next body arrives after the grace: this body's complete traces close now
        for closed in assembler.due(now):
            decisions += isinstance(closed, Assembled)
    for closed in assembler.flush():
        decisions += isinstance(closed, Assembled)
    return time.process_time() - started, spans, decisions


def run_sdk(requests: list[dict[str, Any]]) -> tuple[float, int]:
    """(CPU seconds, decisions) of recording every request with the SDK and encoding its event as the sender does."""
    from pydantic_core import to_json

    from routerwatch.sdk import RouterWatch, SdkConfig

    rw = RouterWatch(SdkConfig(bootstrap_servers="127.0.0.1:9", router_id="bench-router", max_queue=10_000_000))
    recorded: list[Any] = []
    rw._submit_decision = recorded.append  # keep the events here: the send is not timed (nor is it in the OTLP figure)
    prices = {m: p for m, p in (("small-8b", (0.15, 0.60)), ("medium-70b", (0.90, 2.70)), ("large-frontier", (5.0, 15.0)))}
    gc.collect()
    started = time.process_time()
    for r in requests:
        with rw.decision(request_id=r["id"], category=r["category"]) as d:
            for a in r["attempts"]:
                attempt = d.attempt(a["tier"], tier_rank=a["rank"], model=a["model"], provider=a["provider"])
                if a["outcome"] == "failed":
                    attempt.fail(a["mode"])
                    continue
                pin, pout = prices[a["model"]]
                cost = (a["in"] * pin + a["out"] * pout) / 1e6
                gate = {"kind": "confidence", "score": a["score"], "threshold": 0.6, "passed": a["outcome"] == "accepted"}
                if a["outcome"] == "escalated":
                    attempt.escalate("low_confidence", input_tokens=a["in"], output_tokens=a["out"], cost_usd=cost, gate=gate)
                else:
                    attempt.accept(input_tokens=a["in"], output_tokens=a["out"], cost_usd=cost, gate=gate)
    for decision in recorded:
        to_json(decision.to_event())
    cpu = time.process_time() - started
    return cpu, len(recorded)


def measure(n: int, repeats: int, seed: int = 1) -> dict[str, Any]:
    requests = plan(n, seed)
    spans, make_cpu = otel_spans(requests)
    bodies, json_bodies, encode_cpu = encode(spans)
    best: dict[str, float] = {}
    counts: dict[str, tuple[int, int]] = {}
    for repeat in range(repeats):
        order = ["protobuf", "json", "sdk"] if repeat % 2 == 0 else ["sdk", "json", "protobuf"]
        for path in order:
            if path == "sdk":
                cpu, decisions = run_sdk(requests)
                counts[path] = (sum(len(r["attempts"]) + 1 for r in requests), decisions)
            else:
                cpu, span_count, decisions = run_otlp(bodies if path == "protobuf" else json_bodies, path == "json")
                counts[path] = (span_count, decisions)
            best[path] = min(best.get(path, float("inf")), cpu)
    for path, (_, decisions) in counts.items():
        assert decisions == n, f"{path}: {decisions} decisions for {n} requests"
    rows = {}
    for path, cpu in best.items():
        span_count, decisions = counts[path]
        rows[path] = {"cpu_s": round(cpu, 4), "spans": span_count, "decisions": decisions,
                      "spans_per_s": round(span_count / cpu), "decisions_per_s": round(decisions / cpu),
                      "us_per_decision": round(cpu / decisions * 1e6, 1)}
    return {
        "requests": n, "spans": len(spans), "spans_per_request": round(len(spans) / n, 2), "repeats": repeats,
        "bodies": len(bodies), "protobuf_bytes_per_span": round(sum(map(len, bodies)) / len(spans), 1),
        "json_bytes_per_span": round(sum(map(len, json_bodies)) / len(spans), 1),
        "router_side_us_per_request": {"otel_spans": round(make_cpu / n * 1e6, 1), "otlp_protobuf_encode": round(encode_cpu / n * 1e6, 1)},
        "paths": rows,
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
    }


def render(result: dict[str, Any]) -> str:
    p = result["paths"]
    lines = [
        f"{result['requests']:,} requests, {result['spans']:,} spans ({result['spans_per_request']} a request), "
        f"best of {result['repeats']} repeats, one core",
        "",
        "| path | CPU s | spans/s per core | decisions/s per core | us per decision |",
        "|---|---|---|---|---|",
    ]
    names = {"protobuf": "OTLP protobuf: decode + assemble + map + validate",
             "json": "OTLP JSON: decode + assemble + map + validate",
             "sdk": "routerwatch SDK: record + build event + JSON (no send)"}
    for key in ("protobuf", "json", "sdk"):
        r = p[key]
        spans = f"{r['spans_per_s']:,}" if key != "sdk" else f"({r['spans_per_s']:,} span-equivalents)"
        lines.append(f"| {names[key]} | {r['cpu_s']} | {spans} | {r['decisions_per_s']:,} | {r['us_per_decision']} |")
    router = result["router_side_us_per_request"]
    lines += ["", f"receiver cost per decision: {p['protobuf']['us_per_decision'] / p['sdk']['us_per_decision']:.1f}x the SDK's "
              f"(protobuf), {p['json']['us_per_decision'] / p['sdk']['us_per_decision']:.1f}x (JSON)",
              f"router side per request: OpenTelemetry SDK spans {router['otel_spans']} us + OTLP protobuf encoding "
              f"{router['otlp_protobuf_encode']} us; bodies {result['protobuf_bytes_per_span']} B/span protobuf, "
              f"{result['json_bytes_per_span']} B/span JSON"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args.requests, args.repeats)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
