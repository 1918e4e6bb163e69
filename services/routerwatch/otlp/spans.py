"""Spans as the receiver keeps them, decoded from an OTLP ExportTraceServiceRequest (protobuf or JSON).

Only what the mapping reads is kept: ids, parent, name, times, status, attributes and the resource's
attributes (shared by every span of one resource). Events, links and scope are dropped.

A span that cannot be used (an id of the wrong length, an end before its start) is rejected on its
own: the request's other spans are kept and the response's ``partial_success`` counts the rejected
ones (OTLP/HTTP). A body that cannot be parsed at all raises :class:`BadPayload` (400).

:func:`to_otlp_json` writes spans back in OTLP/HTTP's JSON encoding: a dead-lettered trace carries
its spans in a form that can be POSTed to ``/v1/traces`` again.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from routerwatch.otlp.errors import BadPayload

# Span status codes (opentelemetry.proto.trace.v1.Status.StatusCode).
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
_NO_PARENT = ""


@dataclass(slots=True)
class Span:
    """One span: ids are lowercase hex (trace 32 digits, span 16); times are Unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    status_code: int = STATUS_UNSET
    status_message: str = ""
    kind: int = 0


@dataclass
class Decoded:
    """What one request carried: its usable spans, and how many were rejected and why (first few reasons)."""

    spans: list[Span]
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def reject(self, why: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5:
            self.errors.append(why)


def _check(span: Span, out: Decoded) -> bool:
    if len(span.trace_id) != 32 or span.trace_id == "0" * 32:
        out.reject(f"span {span.span_id or '?'}: trace id must be 16 bytes, not all zero")
        return False
    if len(span.span_id) != 16 or span.span_id == "0" * 16:
        out.reject(f"span in trace {span.trace_id}: span id must be 8 bytes, not all zero")
        return False
    if span.parent_span_id and len(span.parent_span_id) != 16:
        out.reject(f"span {span.span_id}: parent span id must be 8 bytes")
        return False
    if span.start_ns <= 0 or span.end_ns < span.start_ns:
        out.reject(f"span {span.span_id}: needs start > 0 and end >= start")
        return False
    return True


# -- protobuf --------------------------------------------------------------------------------


def _pb_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return None


def _pb_attributes(items: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items:
        value = kv.value
        which = value.WhichOneof("value")
        # The common scalar cases inline: this loop runs for every attribute of every span.
        if which == "string_value":
            out[kv.key] = value.string_value
        elif which == "int_value":
            out[kv.key] = value.int_value
        else:
            out[kv.key] = _pb_value(value)
    return out


def decode_protobuf(body: bytes) -> Decoded:
    """Spans of a protobuf ``ExportTraceServiceRequest``; :class:`BadPayload` when it does not parse."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, ValueError) as exc:
        raise BadPayload(f"the body is not an OTLP ExportTraceServiceRequest in protobuf: {exc}") from exc
    out = Decoded([])
    keep = out.spans.append
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                span = Span(
                    s.trace_id.hex(),
                    s.span_id.hex(),
                    s.parent_span_id.hex(),
                    s.name,
                    s.start_time_unix_nano,
                    s.end_time_unix_nano,
                    _pb_attributes(s.attributes),
                    resource,
                    s.status.code,
                    s.status.message,
                    s.kind,
                )
                if _check(span, out):
                    keep(span)
    return out


# -- JSON (OTLP/HTTP's JSON encoding: lowerCamelCase keys, hex ids, 64-bit integers as strings) --


def _get(obj: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    # Receivers must accept both spellings of field names (proto3 JSON mapping).
    value = obj.get(camel)
    return obj.get(snake, default) if value is None else value


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    for key, conv in (("stringValue", str), ("string_value", str), ("boolValue", bool), ("bool_value", bool)):
        if key in value:
            return conv(value[key])
    for key in ("intValue", "int_value"):
        if key in value:
            return int(value[key])
    for key in ("doubleValue", "double_value"):
        if key in value:
            return float(value[key])
    array = _get(value, "arrayValue", "array_value")
    if array is not None:
        return [_json_value(v) for v in array.get("values") or ()]
    kvlist = _get(value, "kvlistValue", "kvlist_value")
    if kvlist is not None:
        return _json_attributes(kvlist.get("values") or ())
    raw = _get(value, "bytesValue", "bytes_value")
    if raw is not None:
        return base64.b64decode(raw).hex()
    return None


def _json_attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        raise TypeError("attributes must be a list of {key, value}")
    return {str(kv["key"]): _json_value(kv.get("value")) for kv in items}


def _json_id(value: Any) -> str:
    # OTLP/JSON ids are hex strings (not base64, unlike the generic proto3 mapping).
    if not value:
        return ""
    text = str(value).lower()
    int(text, 16)  # raises ValueError on anything that is not hex
    return text


def decode_json(body: bytes) -> Decoded:
    """Spans of a JSON ``ExportTraceServiceRequest``; :class:`BadPayload` when it does not parse."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"the body is not JSON: {exc}") from exc
    if not isinstance(request, dict):
        raise BadPayload('the body must be a JSON object {"resourceSpans": [...]}')
    out = Decoded([])
    try:
        for resource_spans in _get(request, "resourceSpans", "resource_spans", []):
            resource = _json_attributes((resource_spans.get("resource") or {}).get("attributes") or [])
            for scope_spans in _get(resource_spans, "scopeSpans", "scope_spans", []):
                for s in scope_spans.get("spans") or ():
                    try:
                        status = s.get("status") or {}
                        span = Span(
                            _json_id(_get(s, "traceId", "trace_id")),
                            _json_id(_get(s, "spanId", "span_id")),
                            _json_id(_get(s, "parentSpanId", "parent_span_id")),
                            str(s.get("name", "")),
                            int(_get(s, "startTimeUnixNano", "start_time_unix_nano", 0)),
                            int(_get(s, "endTimeUnixNano", "end_time_unix_nano", 0)),
                            _json_attributes(s.get("attributes") or []),
                            resource,
                            _status_code(status.get("code", 0)),
                            str(status.get("message", "")),
                            _kind(s.get("kind", 0)),
                        )
                    except (TypeError, ValueError, KeyError, AttributeError) as exc:
                        out.reject(f"span {s.get('spanId', '?') if isinstance(s, dict) else '?'}: {type(exc).__name__}: {exc}")
                        continue
                    if _check(span, out):
                        out.spans.append(span)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise BadPayload(f"the JSON is not an OTLP ExportTraceServiceRequest: {type(exc).__name__}: {exc}") from exc
    return out


_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
}


def _status_code(value: Any) -> int:
    return _STATUS_NAMES[value] if isinstance(value, str) and value in _STATUS_NAMES else int(value)


def _kind(value: Any) -> int:
    return _KIND_NAMES[value] if isinstance(value, str) and value in _KIND_NAMES else int(value)


# -- back to OTLP JSON (dead letters) --------------------------------------------------------------


def _to_any(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_to_any(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _to_attributes(value)}}
    if value is None:
        return {}
    return {"stringValue": str(value)}


def _to_attributes(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _to_any(v)} for k, v in attributes.items()]


def to_otlp_json(spans: Iterable[Span]) -> bytes:
    """``spans`` as one OTLP/JSON ExportTraceServiceRequest (grouped by resource)."""
    groups: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for s in spans:
        entry = {
            "traceId": s.trace_id,
            "spanId": s.span_id,
            "name": s.name,
            "kind": s.kind,
            "startTimeUnixNano": str(s.start_ns),
            "endTimeUnixNano": str(s.end_ns),
            "attributes": _to_attributes(s.attributes),
            "status": {"code": s.status_code, **({"message": s.status_message} if s.status_message else {})},
        }
        if s.parent_span_id:
            entry["parentSpanId"] = s.parent_span_id
        groups.setdefault(id(s.resource), (s.resource, []))[1].append(entry)
    body = {
        "resourceSpans": [
            {"resource": {"attributes": _to_attributes(resource)}, "scopeSpans": [{"spans": entries}]}
            for resource, entries in groups.values()
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()
