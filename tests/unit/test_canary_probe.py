"""The pure parts of a canary probe: reading the tier and the answer out of a response,
classifying a result, and loading the canary sets into probe targets.

:func:`probe` itself runs here against a stand-in for the aiohttp session (no network) for the
bodies a real router rarely sends: not JSON, no answer, a tier only in the body. The HTTP paths
against a real router are in ``tests/integration/test_canary_probe.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from routerwatch.canary.config import Canary, CanaryConfigError
from routerwatch.canary.probe import CANARY_HEADER, REQUEST_ID_HEADER, ProbeSettings, answer_text, body_field, probe
from routerwatch.canary.prober import load_targets, result_kind

# -- body_field ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "dotted", "expected"),
    [
        ({"router": {"tier": "small"}}, "router.tier", "small"),
        ({"tier": "large"}, "tier", "large"),
        ({"a": {"b": {"c": 3}}}, "a.b.c", 3),
        ({"a": {"b": {"c": 3}}}, "a.b", {"c": 3}),
        # Falsy values are values, not "missing": the caller decides what to make of them.
        ({"router": {"tier": 0}}, "router.tier", 0),
        ({"router": {"tier": ""}}, "router.tier", ""),
        ({"router": {"tier": False}}, "router.tier", False),
        # Missing anywhere along the path.
        ({"router": {}}, "router.tier", None),
        ({}, "router.tier", None),
        ({"router": {"tier": "small"}}, "router.tier.name", None),
        ({"router": {"tier": None}}, "router.tier", None),
        # A step through something that is not an object: None, not an exception.
        ({"router": "small"}, "router.tier", None),
        ({"router": ["small"]}, "router.0", None),
        ({"router": None}, "router.tier", None),
        (None, "router.tier", None),
        ("router", "router", None),
        ([{"router": {"tier": "small"}}], "router.tier", None),
        # Keys are matched exactly: no case folding, no trimming.
        ({"Router": {"tier": "small"}}, "router.tier", None),
        ({"router": {"tier ": "small"}}, "router.tier", None),
    ],
)
def test_body_field(document, dotted, expected):
    assert body_field(document, dotted) == expected


def test_body_field_does_not_treat_a_dotted_key_as_a_path():
    assert body_field({"router.tier": "small"}, "router.tier") is None
    assert body_field({"router": {"tier": "small"}, "router.tier": "large"}, "router.tier") == "small"


# -- answer_text -----------------------------------------------------------------------------


def completion(content: Any) -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (completion("Paris"), "Paris"),
        (completion("  spaced \n"), "  spaced \n"),  # returned as sent; the checks decide about whitespace
        (completion(""), ""),  # an empty answer is an answer (its check fails), not a malformed body
        (completion(None), None),  # tool calls: no text
        (completion([{"type": "text", "text": "Paris"}]), None),
        (completion({"text": "Paris"}), None),
        (completion(391), None),
        ({"choices": []}, None),
        ({"choices": None}, None),
        ({"choices": {"0": {"message": {"content": "x"}}}}, None),
        ({"choices": [{}]}, None),
        ({"choices": [{"message": None}]}, None),
        ({"choices": [{"message": {"role": "assistant"}}]}, None),
        ({"error": {"message": "down"}}, None),
        ({}, None),
        (None, None),
        ([], None),
        ("Paris", None),
        (42, None),
    ],
)
def test_answer_text(document, expected):
    assert answer_text(document) == expected


def test_answer_text_reads_only_the_first_choice():
    document = {"choices": [{"message": {"content": "first"}}, {"message": {"content": "second"}}]}
    assert answer_text(document) == "first"


# -- result_kind -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        ({"expected_tier": "small", "observed_tier": "small", "answer_passed": True}, "passed"),
        ({"expected_tier": "small", "observed_tier": "small", "answer_passed": False}, "failed_check"),
        # No verdict on the answer is not a pass.
        ({"expected_tier": "small", "observed_tier": "small", "answer_passed": None}, "failed_check"),
        ({"expected_tier": "small", "observed_tier": "small"}, "failed_check"),
        ({"expected_tier": "small", "observed_tier": "large", "answer_passed": True}, "tier_flip"),
        # A flip outranks a failed answer: the wrong tier is the news.
        ({"expected_tier": "small", "observed_tier": "large", "answer_passed": False}, "tier_flip"),
        # An error outranks everything, whatever else the result carries.
        ({"expected_tier": "small", "error": "HTTP 503", "answer_passed": None}, "no_answer"),
        ({"expected_tier": "small", "observed_tier": "small", "answer_passed": True, "error": "x"}, "no_answer"),
        ({"expected_tier": "small", "observed_tier": "large", "error": "x"}, "no_answer"),
        # An empty or absent error is no error.
        ({"expected_tier": "small", "observed_tier": "small", "answer_passed": True, "error": ""}, "passed"),
        ({"expected_tier": "small", "observed_tier": "small", "answer_passed": True, "error": None}, "passed"),
        # Tier names are compared exactly.
        ({"expected_tier": "small", "observed_tier": "Small", "answer_passed": True}, "tier_flip"),
        ({"expected_tier": "small", "answer_passed": True}, "tier_flip"),
    ],
)
def test_result_kind(result, kind):
    assert result_kind(result) == kind


# -- load_targets ----------------------------------------------------------------------------

CANARY = """\
  - id: {id}
    request: {{model: auto, messages: [{{role: user, content: "{prompt}"}}]}}
    expected_tier: small
    check: {{kind: regex, pattern: "."}}
"""


def canary_set(path: Path, router: str, ids: list[str], endpoint: str | None = None) -> Path:
    head = f'version: "v1"\nrouter_id: {router}\n' + (f"endpoint: {endpoint}\n" if endpoint else "")
    body = "".join(CANARY.format(id=i, prompt=f"prompt {i}") for i in ids)
    path.write_text(head + "canaries:\n" + body)
    return path


def test_each_canary_gets_its_files_endpoint(tmp_path):
    one = canary_set(tmp_path / "one.yml", "router-a", ["a1", "a2"],
                     endpoint="http://a.internal/v1/chat/completions")
    two = canary_set(tmp_path / "two.yml", "router-b", ["b1"], endpoint="https://b.internal/v1/chat/completions")
    targets = load_targets([one, two], None)
    assert [(t.router_id, t.canary.id, t.url) for t in targets] == [
        ("router-a", "a1", "http://a.internal/v1/chat/completions"),
        ("router-a", "a2", "http://a.internal/v1/chat/completions"),
        ("router-b", "b1", "https://b.internal/v1/chat/completions"),
    ]
    assert [t.key for t in targets] == ["router-a/a1", "router-a/a2", "router-b/b1"]


def test_router_url_overrides_every_files_endpoint(tmp_path):
    one = canary_set(tmp_path / "one.yml", "router-a", ["a1"], endpoint="http://a.internal/v1/chat/completions")
    two = canary_set(tmp_path / "two.yml", "router-b", ["b1"])  # no endpoint: router_url supplies it
    targets = load_targets([one, two], "http://127.0.0.1:8088/v1/chat/completions")
    assert {t.url for t in targets} == {"http://127.0.0.1:8088/v1/chat/completions"}
    assert len(targets) == 2


def test_a_file_without_endpoint_and_no_router_url_is_an_error_naming_the_file(tmp_path):
    good = canary_set(tmp_path / "good.yml", "router-a", ["a1"], endpoint="http://a.internal/v/chat")
    bad = canary_set(tmp_path / "no-endpoint.yml", "router-b", ["b1"])
    with pytest.raises(CanaryConfigError) as caught:
        load_targets([good, bad], None)
    message = str(caught.value)
    assert message.startswith(f"{bad}:"), message
    assert str(good) not in message
    assert "ROUTERWATCH_CANARY__ROUTER_URL" in message and "endpoint" in message
    # An empty router_url is no router URL either.
    with pytest.raises(CanaryConfigError, match="no-endpoint.yml: no router URL"):
        load_targets([bad], "")


def test_the_same_canary_of_the_same_router_in_two_files_names_both(tmp_path):
    first = canary_set(tmp_path / "first.yml", "router-a", ["shared", "only-first"], endpoint="http://a/x")
    second = canary_set(tmp_path / "second.yml", "router-a", ["only-second", "shared"], endpoint="http://a/x")
    with pytest.raises(CanaryConfigError) as caught:
        load_targets([first, second], None)
    message = str(caught.value)
    # The file being read is named first, the earlier one as the other occurrence.
    assert message.startswith(f"{second}:"), message
    assert str(first) in message and "'shared'" in message and "router-a" in message
    assert "only-" not in message


def test_the_same_file_twice_is_a_duplicate(tmp_path):
    one = canary_set(tmp_path / "one.yml", "router-a", ["a1"], endpoint="http://a/x")
    with pytest.raises(CanaryConfigError, match="canary 'a1' of router router-a is also in"):
        load_targets([one, one], None)


def test_the_same_canary_id_on_two_routers_is_two_targets(tmp_path):
    one = canary_set(tmp_path / "one.yml", "router-a", ["greeting"], endpoint="http://a/x")
    two = canary_set(tmp_path / "two.yml", "router-b", ["greeting"], endpoint="http://b/x")
    targets = load_targets([one, two], None)
    assert [(t.key, t.url) for t in targets] == [
        ("router-a/greeting", "http://a/x"),
        ("router-b/greeting", "http://b/x"),
    ]


def test_an_unreadable_file_is_named(tmp_path):
    missing = tmp_path / "missing.yml"
    with pytest.raises(CanaryConfigError, match="missing.yml: cannot read"):
        load_targets([missing], "http://a/x")


def test_no_files_no_targets():
    assert load_targets([], None) == []


# -- probe() on bodies a real router rarely sends ------------------------------------------------


class FakeResponse:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self._body = body
        self.headers = CIMultiDict(headers or {})

    async def read(self) -> bytes:
        return self._body

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *exc: Any) -> bool:
        return False


class FakeSession:
    """Answers every POST with one canned response (or raises), recording what was sent."""

    def __init__(self, response: FakeResponse | None = None, raises: BaseException | None = None) -> None:
        self.response = response
        self.raises = raises
        self.sent: list[dict[str, Any]] = []

    def post(self, url: str, *, json: Any, headers: dict[str, str], timeout: Any) -> FakeResponse:
        self.sent.append({"url": url, "json": json, "headers": headers, "timeout": timeout})
        if self.raises is not None:
            raise self.raises
        assert self.response is not None
        return self.response


URL = "http://router.test/v1/chat/completions"
CAPITAL = Canary.model_validate(
    {
        "id": "capital",
        "request": {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
        "expected_tier": "small",
        "check": {"kind": "exact", "expected": "Paris"},
        "schedule": {"every_seconds": 60, "jitter_seconds": 0, "timeout_seconds": 2.5},
        "labels": {"category": "geography", "side": "cheap"},
    }
)


def run_probe(session: FakeSession, lookup=None, **settings: Any) -> dict[str, Any]:
    settings_ = ProbeSettings(url=URL, **settings)
    return asyncio.run(probe(session, CAPITAL, router_id="r1", settings=settings_, run_id="run-1", lookup=lookup))


def ok_body(content: Any = "Paris", tier: Any = None) -> bytes:
    body: dict[str, Any] = completion(content)
    if tier is not None:
        body["router"] = {"tier": tier}
    return json.dumps(body).encode()


def test_probe_sends_the_canary_request_with_its_ids_and_timeout():
    session = FakeSession(FakeResponse(200, ok_body(), {"X-Router-Tier": "small"}))
    result = run_probe(session)
    (sent,) = session.sent
    assert sent["url"] == URL and sent["json"] == CAPITAL.request
    assert sent["headers"][CANARY_HEADER] == "capital"
    assert sent["headers"][REQUEST_ID_HEADER] == result["request_id"]
    assert result["request_id"].startswith("canary-capital-")
    assert sent["timeout"].total == 2.5
    assert result["observed_tier"] == "small" and result["tier_source"] == "header"
    assert result["answer_passed"] is True and result["check_detail"] is None
    fields = ("canary_id", "run_id", "router_id", "category", "side", "expected_tier", "check_kind")
    assert [result[k] for k in fields] == ["capital", "run-1", "r1", "geography", "cheap", "small", "exact"]
    assert "error" not in result


def test_each_probe_has_its_own_request_and_event_id():
    session = FakeSession(FakeResponse(200, ok_body(), {"X-Router-Tier": "small"}))
    first, second = run_probe(session), run_probe(session)
    assert first["request_id"] != second["request_id"]
    assert first["event_id"] != second["event_id"]


def test_header_wins_over_body_and_header_names_are_case_insensitive():
    session = FakeSession(FakeResponse(200, ok_body(tier="large"), {"x-router-tier": "small"}))
    result = run_probe(session)
    assert (result["observed_tier"], result["tier_source"]) == ("small", "header")


@pytest.mark.parametrize("headers", [{}, {"X-Router-Tier": ""}, {"X-Other": "large"}])
def test_without_a_usable_header_the_body_field_answers(headers):
    result = run_probe(FakeSession(FakeResponse(200, ok_body(tier="medium"), headers)))
    assert (result["observed_tier"], result["tier_source"]) == ("medium", "body")


def test_configured_header_and_field_names_are_used():
    body = json.dumps({**completion("Paris"), "meta": {"route": {"served_by": "small"}}}).encode()
    response = FakeResponse(200, body, {"X-Router-Tier": "large"})
    result = run_probe(FakeSession(response), tier_header="X-Served-By", tier_field="meta.route.served_by")
    assert (result["observed_tier"], result["tier_source"]) == ("small", "body")
    result = run_probe(FakeSession(response), tier_header=None, tier_field="meta.route.served_by")
    assert (result["observed_tier"], result["tier_source"]) == ("small", "body")


def test_non_json_body_is_an_error_quoting_it():
    result = run_probe(FakeSession(FakeResponse(200, b"<html>gateway</html>", {"X-Router-Tier": "small"})))
    assert result["error"].startswith("response is not JSON") and "<html>gateway</html>" in result["error"]
    assert "observed_tier" not in result and result_kind(result) == "no_answer"
    assert result["latency_ms"] >= 0


@pytest.mark.parametrize("body", [ok_body(content=None), json.dumps({"choices": []}).encode(), b"[]", b"null"])
def test_a_body_without_an_answer_is_an_error(body):
    result = run_probe(FakeSession(FakeResponse(200, body, {"X-Router-Tier": "small"})))
    assert result["error"] == "response has no choices[0].message.content"
    assert result_kind(result) == "no_answer"


def test_http_error_quotes_status_url_and_the_start_of_the_body():
    body = json.dumps({"error": {"code": "rate_limited", "message": "x" * 1000}}).encode()
    result = run_probe(FakeSession(FakeResponse(429, body, {"X-Router-Tier": "small"})))
    prefix = f"HTTP 429 from {URL}: "
    assert result["error"].startswith(prefix)
    # The start of the body, bounded: a huge error page must not become a huge result.
    assert result["error"][len(prefix):] == body[:300].decode()
    assert "observed_tier" not in result


def test_client_errors_and_timeouts_become_results():
    import aiohttp

    result = run_probe(FakeSession(raises=aiohttp.ClientConnectionError("connection reset")))
    assert result["error"] == f"request to {URL} failed: ClientConnectionError: connection reset"
    result = run_probe(FakeSession(raises=asyncio.TimeoutError()))
    assert result["error"] == f"no response from {URL} within 2.5s"
    assert "latency_ms" not in result


def test_a_check_failure_carries_the_checks_reason():
    result = run_probe(FakeSession(FakeResponse(200, ok_body("Lyon"), {"X-Router-Tier": "small"})))
    assert result["answer_passed"] is False
    assert result["check_detail"] == "expected 'Paris', got 'Lyon'"
    assert result_kind(result) == "failed_check"


def test_the_decision_lookup_is_polled_until_it_answers():
    calls: list[tuple[str, str]] = []

    async def lookup(canary_id: str, request_id: str) -> str | None:
        calls.append((canary_id, request_id))
        return "small" if len(calls) >= 3 else None

    result = run_probe(FakeSession(FakeResponse(200, ok_body())), lookup=lookup, decision_wait_s=10)
    assert (result["observed_tier"], result["tier_source"]) == ("small", "decision")
    assert calls == [("capital", result["request_id"])] * 3


def test_a_lookup_is_not_asked_when_the_response_names_the_tier():
    async def lookup(canary_id: str, request_id: str) -> str | None:
        raise AssertionError("looked up although the header answered")

    result = run_probe(FakeSession(FakeResponse(200, ok_body(), {"X-Router-Tier": "small"})), lookup=lookup)
    assert result["tier_source"] == "header"


def test_no_tier_anywhere_is_an_error_naming_what_was_tried():
    result = run_probe(FakeSession(FakeResponse(200, ok_body())))
    error = result["error"]
    assert error.startswith("serving tier unknown") and result_kind(result) == "no_answer"
    assert "X-Router-Tier" in error and "router.tier" in error and result["request_id"] in error
    assert "answer_passed" not in result
