"""Storage errors, split into retryable (the store is down) and permanent (our SQL or data is wrong)."""

from routerwatch.errors import PermanentError, RetryableError


class StoreUnavailable(RetryableError):
    """ClickHouse did not answer or refused for a transient reason: back off and retry."""


class QueryError(PermanentError):
    """ClickHouse rejected a statement (syntax, unknown table, read-only violation...)."""


class MigrationError(PermanentError):
    """A migration failed, or a shipped migration file was edited after it was applied."""
