"""LiteLLM integration: one callback turns LiteLLM's own events into RoutingDecisions.

Fallback/retry router (one Router call per user request)::

    import litellm
    from routerwatch.integrations.litellm import RouterWatchLogger

    litellm.callbacks.append(RouterWatchLogger(rw))   # rw: a routerwatch.sdk.RouterWatch
    router.completion(model="small", messages=msgs)   # unchanged: one request per Router call

Cascade (several Router calls per user request): the same callback, plus one block per request::

    with rw.decision(category="billing") as d:        # or: async with
        answer = router.completion(model="small", messages=msgs)
        if confidence(answer) < 0.7:
            d.reject("low_confidence", score=confidence(answer), threshold=0.7)
            answer = router.completion(model="large", messages=msgs)

Importing this module sets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (unless already set) before
LiteLLM is imported, so LiteLLM prices with the cost map it bundles instead of downloading one
(offline, that download retries and stalls the import). Import it before ``litellm`` for that to
take effect. See docs/litellm.md for the model_info keys, the failure-mode map and the hooks used.
"""

from __future__ import annotations

import os

# Before LiteLLM's import reads it: use the bundled cost map, never a download at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from litellm.integrations.custom_logger import CustomLogger

from routerwatch.integrations.litellm_collect import Tracker
from routerwatch.integrations.litellm_mapping import (
    EXCEPTION_FAILURE_MODES,
    RANK_KEY,
    TIER_KEY,
    call_record,
    failure_mode,
    tier_ranks,
)

if TYPE_CHECKING:
    from routerwatch.sdk.client import RouterWatch

log = logging.getLogger("routerwatch.integrations.litellm")

__all__ = [
    "EXCEPTION_FAILURE_MODES",
    "RANK_KEY",
    "TIER_KEY",
    "RouterWatchLogger",
    "failure_mode",
]


class RouterWatchLogger(CustomLogger):
    """A LiteLLM ``CustomLogger`` that records every deployment call as a routerwatch attempt.

    Add it to ``litellm.callbacks``. Calls made inside ``with rw.decision(...)`` (or ``async
    with``) join that decision; other calls are grouped by ``litellm_trace_id`` (one Router call,
    its retries and fallbacks included) into a request emitted through ``rw``.

    * ``tiers``: model group -> rank (or a list of model groups, cheapest first) for deployments
      whose ``model_info`` has no ``routerwatch_tier`` / ``routerwatch_tier_rank``.
    * ``settle_timeout_s``: how long leaving a ``with`` block waits for calls that started in it
      and have not reported yet (LiteLLM reports sync successes from a thread pool).
    * ``unserved_after_s``: a walk outside any block that only failed is emitted as not served
      once quiet this long (LiteLLM has no "all fallbacks failed" callback); keep it above your
      retry back-off.
    * ``scoped_only``: ignore calls outside ``with`` blocks (``rw`` may then be ``None``).

    The hooks never raise into LiteLLM: an error is logged and counted in :meth:`stats`.
    """

    def __init__(
        self,
        rw: RouterWatch | None,
        *,
        tiers: Mapping[str, int] | Sequence[str] | None = None,
        settle_timeout_s: float = 5.0,
        unserved_after_s: float = 30.0,
        max_call_s: float = 900.0,
        scoped_only: bool = False,
    ) -> None:
        super().__init__()
        self.tracker = Tracker(
            rw,
            tiers=tier_ranks(tiers),
            settle_timeout_s=settle_timeout_s,
            unserved_after_s=unserved_after_s,
            max_call_s=max_call_s,
            scoped_only=scoped_only,
        )
        self._last_error_log = float("-inf")

    # -- LiteLLM hooks ----------------------------------------------------------------------
    # Sync calls (Router.completion, litellm.completion) run log_pre_api_call and
    # log_failure_event on the caller's thread and log_success_event on LiteLLM's logging
    # thread pool, after the call returned. Async calls run log_pre_api_call (in the call's
    # context) and the async_* outcome hooks on the event loop, the success one as a task after
    # the call returned. The deployment hooks (async_pre_call_deployment_hook, ...) exist on
    # async Routers only, so none is used.

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        try:
            call_id = kwargs.get("litellm_call_id")
            if call_id:
                trace_id = kwargs.get("litellm_trace_id")
                self.tracker.started(str(call_id), str(trace_id) if trace_id else None)
        except Exception:  # noqa: BLE001 - never break the router
            self._failed("log_pre_api_call")

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._outcome(kwargs, start_time, end_time, ok=True)

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._outcome(kwargs, start_time, end_time, ok=False)

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._outcome(kwargs, start_time, end_time, ok=True)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._outcome(kwargs, start_time, end_time, ok=False)

    def _outcome(self, kwargs: dict[str, Any], start_time: Any, end_time: Any, *, ok: bool) -> None:
        try:
            self.tracker.finished(call_record(kwargs, start_time, end_time, ok=ok, tiers=self.tracker.tiers))
        except Exception:  # noqa: BLE001 - never break the router
            self._failed("log_success_event" if ok else "log_failure_event")

    def _failed(self, hook: str) -> None:
        self.tracker._count("errors")
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:
            self._last_error_log = now
            log.exception("routerwatch: LiteLLM %s hook failed (counted in stats()['errors'])", hook)

    # -- control -------------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> int:
        """Wait for calls in flight, then emit every request held outside ``with`` blocks (shutdown, tests)."""
        return self.tracker.flush(timeout)

    async def aflush(self, timeout: float = 5.0) -> int:
        """:meth:`flush` on the event loop, where LiteLLM's async callbacks run."""
        return await self.tracker.aflush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Leave LiteLLM's callback lists, flush, and stop the background thread. Safe twice. Does not close ``rw``.

        LiteLLM keeps one instance per logger class in its lists: close the old logger before
        registering a new one.
        """
        try:
            import litellm

            litellm.logging_callback_manager.remove_callback_from_all_lists(self)
        except Exception:  # noqa: BLE001 - an older LiteLLM without the manager: nothing to leave
            pass
        self.tracker.close(timeout)

    def stats(self) -> dict[str, int]:
        """Counters (see :meth:`routerwatch.integrations.litellm_collect.Tracker.stats`)."""
        return self.tracker.stats()
