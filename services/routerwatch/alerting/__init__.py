"""Alerting: the Alertmanager API v2 client the scheduler raises alerts through, and runbook links.

Prometheus rules for the exported metrics live in the repository's ``alerts/`` directory; this
package covers what the scheduler computes from ClickHouse (drift, burn rates, canaries).
"""

from routerwatch.alerting.client import AlertManagerClient, SyncResult, TargetStats
from routerwatch.alerting.errors import (
    AlertingError,
    AlertmanagerUnavailable,
    AlertRejected,
    AlertStateError,
    ClientNotStarted,
)
from routerwatch.alerting.models import Alert
from routerwatch.alerting.runbooks import SCHEDULER_ALERT_NAMES, runbook_url

__all__ = [
    "Alert",
    "AlertManagerClient",
    "AlertRejected",
    "AlertStateError",
    "AlertingError",
    "AlertmanagerUnavailable",
    "ClientNotStarted",
    "SCHEDULER_ALERT_NAMES",
    "SyncResult",
    "TargetStats",
    "runbook_url",
]
