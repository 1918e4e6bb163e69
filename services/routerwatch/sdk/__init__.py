"""Router-side SDK: record one routing decision per request and emit it to Kafka.

Needs only aiokafka, pydantic and orjson. Typical use inside a cascade::

    from routerwatch.sdk import RouterWatch

    rw = RouterWatch(bootstrap_servers="kafka:9092", router_id="support-router")
    with rw.decision(category="billing", tenant=tenant_id) as d:
        a = d.attempt("small", tier_rank=0, model="small-model", provider="acme")
        answer, conf = call_small(prompt)
        if conf < 0.7:
            a.escalate("low_confidence", gate={"kind": "confidence", "score": conf,
                                               "threshold": 0.7, "passed": False})
            b = d.attempt("large", tier_rank=1, model="large-model", provider="acme")
            answer = call_large(prompt)
            b.accept(input_tokens=812, output_tokens=95, cost_usd=0.0041)
        else:
            a.accept(input_tokens=812, output_tokens=60, cost_usd=0.0002)
    ...
    rw.close()  # flushes
"""

from routerwatch.sdk.client import CANARY_TOPIC, DECISIONS_TOPIC, FEEDBACK_TOPIC, RouterWatch, SdkConfig
from routerwatch.sdk.recorder import AttemptRecorder, Collector, DecisionRecorder, current_decision

__all__ = [
    "CANARY_TOPIC",
    "DECISIONS_TOPIC",
    "FEEDBACK_TOPIC",
    "AttemptRecorder",
    "Collector",
    "DecisionRecorder",
    "RouterWatch",
    "SdkConfig",
    "current_decision",
]
