"""Alerting errors: one root, split into retryable (an Alertmanager is down) and permanent."""

from __future__ import annotations

from routerwatch.errors import PermanentError, RetryableError, RouterwatchError


class AlertingError(RouterwatchError):
    """Root of every error raised by :mod:`routerwatch.alerting`."""


class AlertmanagerUnavailable(AlertingError, RetryableError):
    """An Alertmanager did not answer, or answered 5xx / 429: back off and send again."""


class AlertRejected(AlertingError, PermanentError):
    """An Alertmanager refused the payload (4xx): sending it again cannot succeed."""


class AlertStateError(AlertingError, PermanentError):
    """The client's state file cannot be written (missing directory, permissions)."""


class ClientNotStarted(AlertingError, PermanentError):
    """``sync()`` was called before ``start()`` or after ``stop()``."""
