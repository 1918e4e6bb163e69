"""The snippets of docs/litellm.md, run as written on the real LiteLLM package.

Only two things differ from production: the RouterWatch client keeps its events (validated
against the contract) instead of sending them, and the Router's deployments answer offline
(``mock_response``: ``small`` hits a rate limit on the first call of the fallback example).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from routerwatch.integrations.litellm import RouterWatchLogger  # before litellm: offline-safe

import litellm

import routerwatch.sdk
from routerwatch.events.models import RoutingDecision

DOC = Path(__file__).resolve().parents[2] / "docs" / "litellm.md"


def snippets() -> dict[str, str]:
    found = re.findall(r"<!-- test: ([\w-]+) -->\n```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return dict(found)


@pytest.fixture
def doc_env(monkeypatch, make_rw):
    events: list[dict] = []
    answers = {"small": "litellm.RateLimitError"}

    def capturing_client(**settings):
        rw = make_rw(**settings)

        def submit(decision):
            event = decision.to_event()
            RoutingDecision.model_validate_json(json.dumps(event))
            events.append(event)

        rw._submit_decision = submit
        return rw

    real_router = litellm.Router

    def offline_router(*, model_list, **kwargs):
        for entry in model_list:
            params = entry["litellm_params"]
            params.setdefault("api_key", "sk-test")
            params.setdefault("mock_response", answers.get(entry["model_name"], f"answer from {entry['model_name']}"))
        return real_router(model_list=model_list, num_retries=0, disable_cooldowns=True, **kwargs)

    monkeypatch.setattr(routerwatch.sdk, "RouterWatch", capturing_client)
    monkeypatch.setattr(litellm, "Router", offline_router)
    yield events, answers
    for callback in list(litellm.callbacks):
        if isinstance(callback, RouterWatchLogger):
            callback.close(timeout=5)


def outcomes(event: dict) -> list[tuple[str, str, str | None]]:
    return [(a["tier"], a["outcome"], a.get("failure_mode") or a.get("escalation_reason")) for a in event["attempts"]]


def test_the_documented_snippets_run_and_record_what_they_say(doc_env):
    events, answers = doc_env
    code = snippets()
    assert set(code) == {"fallback", "cascade", "cascade-async"}
    ns: dict = {}
    exec(compile(code["fallback"], f"{DOC}:fallback", "exec"), ns)
    logger = next(c for c in litellm.callbacks if isinstance(c, RouterWatchLogger))
    assert ns["answer"].choices[0].message.content == "answer from large"
    logger.flush(timeout=10)
    [fallback] = events
    assert outcomes(fallback) == [("small", "failed", "rate_limited"), ("large", "accepted", None)]
    assert fallback["router"]["strategy"] == "fallback"

    # The cascade on the same deployments, the small tier answering from now on; the gate decides.
    answers["small"] = "Maybe thirty days?"
    ns["router"] = litellm.Router(model_list=_doc_models(ns), fallbacks=[{"small": ["large"]}])
    for name in ("cascade", "cascade-async"):
        exec(compile(code[name], f"{DOC}:{name}", "exec"), ns)
    events.clear()
    ns["handle"]("Refund window?", lambda answer: 0.9)
    ns["handle"]("Refund window?", lambda answer: 0.3)
    asyncio.run(ns["ahandle"]("Refund window?", lambda answer: 0.3))
    assert [outcomes(e) for e in events] == [
        [("small", "accepted", None)],
        [("small", "escalated", "low_confidence"), ("large", "accepted", None)],
        [("small", "escalated", "low_confidence"), ("large", "accepted", None)],
    ]
    assert events[1]["attempts"][0]["gate"] == {"kind": "confidence", "score": 0.3, "threshold": 0.7, "passed": False}
    assert all(e["category"] == "billing" for e in events)
    assert logger.stats().get("errors", 0) == 0


def _doc_models(ns: dict) -> list[dict]:
    # The fallback snippet's model list, as the Router it built holds it.
    return [
        {"model_name": m["model_name"], "litellm_params": {"model": m["litellm_params"]["model"]},
         "model_info": {k: v for k, v in m["model_info"].items() if k.startswith("routerwatch_")}}
        for m in ns["router"].model_list
    ]


def test_plain_completion_calls_and_request_metadata(doc_env):
    events, _ = doc_env
    rw = routerwatch.sdk.RouterWatch(router_id="plain")
    logger = RouterWatchLogger(rw)
    litellm.callbacks.append(logger)
    litellm.completion(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], mock_response="hello",
        metadata={"routerwatch_category": "billing", "routerwatch_tenant": "acme"},
    )

    async def call() -> None:
        await litellm.acompletion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], mock_response="hi")
        await logger.aflush(timeout=10)

    asyncio.run(call())
    logger.flush(timeout=10)
    assert len(events) == 2
    assert (events[0]["category"], events[0].get("tenant")) == ("billing", "acme")
    for event in events:
        assert outcomes(event) == [("gpt-4o-mini", "accepted", None)]
        assert event["attempts"][0]["cost_usd"] > 0 and event["attempts"][0]["input_tokens"] > 0


def test_every_litellm_snippet_elsewhere_in_the_docs_is_one_of_the_snippets_run_here():
    # The README links here instead of copying a snippet; a page that quotes LiteLLM code quotes one of these.
    docs = [DOC.parents[1] / "README.md", *DOC.parent.glob("*.md")]
    quoted = [block for page in docs if page != DOC
              for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S) if "litellm" in block]
    assert all(block in snippets().values() for block in quoted), quoted
