"""``POST /v1/traces``: the OTLP/HTTP traces receiver of ``routerwatch serve`` (its own port, 4318 by default).

Per the OTLP/HTTP spec: protobuf (``application/x-protobuf``) or JSON (``application/json``)
``ExportTraceServiceRequest`` bodies, optionally ``Content-Encoding: gzip``; the answer is an
``ExportTraceServiceResponse`` in the request's encoding, with ``partial_success`` counting the
spans not kept (unusable, or dead-lettered on arrival); errors are a ``google.rpc.Status`` with a
message saying what was wrong (400 undecodable, 401/403 credentials, 413 too large, 415 type or
encoding, 503 Kafka unavailable: retry later).

Security: the same bearer token as serve's other state-changing endpoints
(``ROUTERWATCH_HTTP__TOKEN``, checked by :class:`routerwatch.ingest.webguard.WebGuard`, CSRF rules
included), required to listen beyond loopback. A page in a browser cannot send either body type
cross-origin without a CORS preflight, which this server never grants.

Spans go to a :class:`~routerwatch.otlp.assemble.TraceAssembler`; each trace it closes becomes one
RoutingDecision produced to the decisions topic, keyed by request id like the SDK's (ingest then
validates, dedups by event_id and stores it, or dead-letters it: one path), or one dead letter on
the dead-letter topic (and in the ``dead_letters`` table) with the reason, the trace id (header
``routerwatch.trace_id``, topic ``otlp``) and the trace's spans as OTLP JSON. Spans are held in
memory until their trace closes: a crash loses the open ones (at most ``window_s`` of traffic);
:meth:`OtlpReceiver.stop` closes and sends every open trace first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Awaitable, Callable, Sequence

from aiohttp import web
from multidict import CIMultiDict

from routerwatch import metrics
from routerwatch.ingest.processor import DeadLetter, RawMessage
from routerwatch.ingest.webguard import WebGuard, require_token_beyond_loopback
from routerwatch.otlp.assemble import Assembled, Closed, DeadTrace, Ignored, TraceAssembler
from routerwatch.otlp.errors import BadPayload
from routerwatch.otlp.mapping import build_decision, price_lookup
from routerwatch.otlp.spans import decode_json, decode_protobuf, to_otlp_json

log = logging.getLogger("routerwatch.otlp")

PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEAD_LETTER_TOPIC_LABEL = "otlp"  # the `topic` of the receiver's dead letters (they come from no Kafka topic)
TICK_S = 0.1
# google.rpc.Code values for the Status bodies of errors.
_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 503: 14}


@dataclass(frozen=True)
class TraceDeadLetter(DeadLetter):
    """A dead letter of a whole trace (or of its late spans): the trace id travels as a header too."""

    trace_id: str = ""

    def headers(self) -> list[tuple[str, bytes]]:
        return [*super().headers(), ("routerwatch.trace_id", self.trace_id.encode())]


def dead_letter_of(dead: DeadTrace) -> TraceDeadLetter:
    """The dead letter of a closed or refused trace: key = trace id, value = its spans as OTLP JSON.

    Its (partition, offset) = (-1, a digest of trace, reason and span ids): the ``dead_letters`` table is
    keyed by them, so the same spans dead-lettered twice (a re-sent trace) are one row.
    """
    digest = hashlib.sha256(
        "|".join([dead.trace_id, dead.reason, *sorted(s.span_id for s in dead.spans)]).encode()
    ).digest()
    message = RawMessage(
        topic=DEAD_LETTER_TOPIC_LABEL,
        partition=-1,
        offset=int.from_bytes(digest[:8], "big") >> 1,
        key=dead.trace_id.encode(),
        value=to_otlp_json(dead.spans),
    )
    return TraceDeadLetter(message, dead.reason, dead.detail, trace_id=dead.trace_id)


def _status_body(protobuf: bool, status: int, message: str) -> tuple[bytes, str]:
    code = _CODES.get(status, 2)
    if not protobuf:
        return json.dumps({"code": code, "message": message}).encode(), JSON
    # google.rpc.Status{code=1 (varint), message=2 (string)}, written by hand: two fields.
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text, PROTOBUF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _response(protobuf: bool, rejected: int, message: str) -> tuple[bytes, str]:
    if protobuf:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = message
        return response.SerializeToString(), PROTOBUF
    body: dict[str, Any] = {}
    if rejected:
        body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return json.dumps(body).encode(), JSON


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


SendDeadLetters = Callable[[list[DeadLetter]], Awaitable[Any]]


class OtlpReceiver:
    """The receiver: an aiohttp server, the assembler and a Kafka producer for the decisions.

    ``send_dead_letters(letters)`` must return only once every letter is on the dead-letter topic
    (serve passes its decision processor's dead-letter path, which retries outages and records the
    letters in the ``dead_letters`` table). ``clock``: monotonic seconds (tests). ``producer``: an
    object with aiokafka's ``start``/``stop``/``send`` (default: an AIOKafkaProducer from the settings).

    ``start()`` listens and starts the assembly loop; ``stop()`` stops listening, closes every open
    trace and sends it (decision or dead letter), then stops the producer: safe without ``start()``
    and twice. Raises :class:`~routerwatch.errors.ConfigError` at construction when it would listen
    beyond loopback without ``ROUTERWATCH_HTTP__TOKEN``.
    """

    def __init__(
        self,
        settings: Any,
        send_dead_letters: SendDeadLetters,
        *,
        producer: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.otlp = otlp = settings.otlp
        token = settings.http.token.get_secret_value() if settings.http.token is not None else None
        require_token_beyond_loopback(otlp.host, token)
        self.guard = WebGuard(token, open_routes=())
        self.topic = settings.topics.decisions
        self.send_dead_letters = send_dead_letters
        self.clock = clock
        self.assembler = TraceAssembler(
            partial(build_decision, prices=price_lookup(settings.price_table())),
            grace_s=otlp.grace_s,
            window_s=otlp.window_s,
            max_open_traces=otlp.max_open_traces,
            max_spans_per_trace=otlp.max_spans_per_trace,
            remember_traces=otlp.remember_traces,
        )
        self._producer = producer
        self._runner: web.AppRunner | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._dead: list[DeadTrace] = []  # refused on arrival, waiting for the loop to send them
        self._stalled: str | None = None  # the last Kafka error while sending; requests get 503 meanwhile
        self._stopped = False
        self.port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None or self._stopped:
            return
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            from routerwatch.kafka_client import client_kwargs, start_client

            kwargs = client_kwargs(
                self.settings, client_id=f"{self.settings.ingest.app_id}-otlp", acks="all",
                compression_type="lz4", linger_ms=5,
            )
            self._producer = AIOKafkaProducer(**kwargs)
            await start_client(self._producer, self.settings.kafka_bootstrap, kwargs)
        else:
            await self._producer.start()
        app = web.Application(client_max_size=self.otlp.max_body_bytes + 1)
        app.router.add_route("*", PATH, self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.otlp.host, self.otlp.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.otlp.port
        self._loop_task = asyncio.create_task(self._run(), name="routerwatch-otlp-assembly")
        log.info("OTLP receiver: http://%s:%d%s (grace %.1fs, window %.1fs)", self.otlp.host, self.port, PATH,
                 self.otlp.grace_s, self.otlp.window_s)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()  # no new spans from here on
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        closed = self.assembler.flush()
        if closed or self._dead:
            log.info("OTLP receiver stopping: sending %d open trace(s)", len(closed))
            await self._send(closed)
        metrics.OTLP_OPEN_TRACES.set(0)
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    # -- the assembly loop ------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            closed = self.assembler.due(self.clock())
            if closed or self._dead:
                await self._send(closed)
            metrics.OTLP_OPEN_TRACES.set(self.assembler.open_traces)

    async def _send(self, closed: Sequence[Closed]) -> None:
        """Produce the decisions and send the dead letters; returns when Kafka acknowledged all of them."""
        decisions = [c for c in closed if isinstance(c, Assembled)]
        dead = [c for c in closed if isinstance(c, DeadTrace)]
        arrived, self._dead = self._dead, []
        for c in closed:
            if isinstance(c, Ignored):
                metrics.OTLP_TRACES.labels("ignored", c.trigger).inc()
        if decisions:
            await self._produce(decisions)
            for d in decisions:
                metrics.OTLP_TRACES.labels("assembled", d.trigger).inc()
        letters = dead + arrived
        if letters:
            await self.send_dead_letters([dead_letter_of(d) for d in letters])
            for d in letters:
                metrics.OTLP_TRACES.labels("dead_lettered", d.trigger).inc()
                metrics.OTLP_DEAD_LETTERED.labels(d.reason).inc()
            log.info("OTLP: dead-lettered %d trace(s); first %s: %s", len(letters), letters[0].reason, letters[0].detail)

    async def _produce(self, decisions: list[Assembled]) -> None:
        delay = self.settings.ingest.retry_initial_s
        pending = decisions
        while pending:
            futures = []
            failed: list[Assembled] = []
            error: BaseException | None = None
            for d in pending:
                try:
                    futures.append((d, await self._producer.send(self.topic, d.value, key=d.key)))
                except Exception as exc:  # noqa: BLE001 - retried below
                    failed.append(d)
                    error = exc
            results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
            for (d, _), result in zip(futures, results):
                if isinstance(result, BaseException):
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    failed.append(d)
                    error = result
            if not failed:
                if self._stalled:
                    log.warning("OTLP receiver: Kafka accepts decisions again")
                self._stalled = None
                return
            self._stalled = f"{type(error).__name__}: {error}"
            log.error("OTLP receiver: %d decision(s) not acknowledged by Kafka (%s); retrying in %.1fs",
                      len(failed), self._stalled, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.ingest.retry_max_s)
            pending = failed

    # -- HTTP --------------------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return self._error(request, _Refused(404, f"no such endpoint {request.path!r}: OTLP traces go to POST {PATH}"))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            rejected, message, protobuf = await self._accept(request)
        except _Refused as refusal:
            return self._error(request, refusal)
        body, ctype = _response(protobuf, rejected, message)
        metrics.OTLP_REQUESTS.labels("200").inc()
        return web.Response(body=body, content_type=ctype)

    def _error(self, request: web.Request, refusal: _Refused) -> web.StreamResponse:
        protobuf = request.content_type == PROTOBUF
        body, ctype = _status_body(protobuf, refusal.status, refusal.message)
        metrics.OTLP_REQUESTS.labels(str(refusal.status)).inc()
        headers = dict(refusal.headers or {})
        if refusal.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="routerwatch"'
        return web.Response(status=refusal.status, body=body, content_type=ctype, headers=headers)

    async def _accept(self, request: web.Request) -> tuple[int, str, bool]:
        if request.method != "POST":
            raise _Refused(405, f"{request.method} {PATH}: OTLP traces are sent with POST", {"Allow": "POST"})
        ctype = request.content_type
        if ctype not in (PROTOBUF, JSON):
            raise _Refused(415, f"Content-Type {ctype!r} is not OTLP/HTTP: send {PROTOBUF} or {JSON}")
        # The guard's CSRF rule wants JSON bodies; protobuf is just as safe (not a type a page can
        # send cross-origin without a preflight), so it is checked as if it were JSON.
        headers = CIMultiDict(request.headers)
        headers["Content-Type"] = JSON
        refusal = self.guard.decide(request.method, request.path, request.scheme, headers, request.body_exists)
        if refusal is not None:
            raise _Refused(refusal.status, refusal.error)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("gzip", "deflate", "identity", ""):
            raise _Refused(415, f"Content-Encoding {encoding!r} is not supported: send gzip or none")
        limit = self.otlp.max_body_bytes
        if encoding in ("identity", "") and request.content_length is not None and request.content_length > limit:
            raise _Refused(413, f"body of {request.content_length} bytes exceeds ROUTERWATCH_OTLP__MAX_BODY_BYTES={limit}")
        # aiohttp inflates gzip and deflate bodies as they are read: the limit applies to the inflated
        # bytes, and reading stops as soon as they pass it (a small gzip bomb is refused, not inflated).
        chunks, size = [], 0
        while True:
            try:
                chunk = await request.content.read(1 << 16)
            except Exception as exc:  # aiohttp's ContentEncodingError and the like
                raise _Refused(400, f"the body cannot be read as Content-Encoding {encoding or 'identity'}: {exc}") from exc
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"body exceeds ROUTERWATCH_OTLP__MAX_BODY_BYTES={limit} (after Content-Encoding)")
            chunks.append(chunk)
        body = b"".join(chunks)
        protobuf = ctype == PROTOBUF
        try:
            decoded = decode_protobuf(body) if protobuf else decode_json(body)
        except BadPayload as exc:
            raise _Refused(400, str(exc)) from exc
        if self._stalled is not None:
            raise _Refused(503, f"routerwatch cannot write to Kafka ({self._stalled}); retry later", {"Retry-After": "2"})
        if self._stopped or self._loop_task is None:
            raise _Refused(503, "the receiver is stopping; retry later", {"Retry-After": "2"})
        result = self.assembler.add(decoded.spans, self.clock())
        metrics.OTLP_SPANS.labels("accepted").inc(result.accepted)
        metrics.OTLP_SPANS.labels("duplicate").inc(result.duplicates)
        metrics.OTLP_SPANS.labels("dead_lettered").inc(result.rejected)
        metrics.OTLP_SPANS.labels("rejected").inc(decoded.rejected)
        if result.dead:
            self._dead.extend(result.dead)
        if result.dead:
            self._wake.set()
        problems = list(decoded.errors)
        problems += [f"{d.reason}: {len(d.spans)} span(s) of trace {d.trace_id} dead-lettered" for d in result.dead[:5]]
        return decoded.rejected + result.rejected, "; ".join(problems)[:2000], protobuf
