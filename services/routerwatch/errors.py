"""The one root exception of routerwatch and the permanent / retryable split.

Every error routerwatch raises on purpose derives from :class:`RouterwatchError`.
Callers that move data (the ingest service, the SDK's sender) care about one
question only: will trying again help?  :class:`RetryableError` says yes (a
broker or ClickHouse is unreachable: back off, keep the data, try again);
:class:`PermanentError` says no (the input itself is wrong: count it, dead-letter
it with its reason, move on).
"""

from __future__ import annotations


class RouterwatchError(Exception):
    """Root of every routerwatch exception."""


class PermanentError(RouterwatchError):
    """Bad input: retrying cannot succeed. Dead-letter it and move on."""


class RetryableError(RouterwatchError):
    """A dependency is down or overloaded: back off and retry, never drop."""


class ConfigError(PermanentError):
    """A setting is missing or malformed; the message names the variable."""


class UsageError(PermanentError):
    """A command-line argument is malformed; the message names it and says what is accepted (exit 2)."""


class MissingDependency(RetryableError):
    """A Python package this code path needs is not installed (an optional extra): exit 3.

    ``extra`` names the ``routerwatch[...]`` extra that installs it.
    """

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this command needs the {extra} extra (module {module!r} is not installed): "
            f"pip install 'routerwatch[{extra}]'"
        )
        self.module = module
        self.extra = extra
