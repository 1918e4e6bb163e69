"""Storage errors, split into retryable (the store is down) and permanent (our SQL or data is wrong).

ClickHouse names the class of every failure with a numeric code (``Code: 243. DB::Exception: ...``);
:func:`is_retryable` sorts a failed statement by it. A retryable failure is the store's state (disk
full, memory, a schema behind its migrations, a timeout): trying again later stores the same rows.
Anything else is treated as caused by the rows themselves (a constraint, a value a column cannot
hold): the ingest sink then isolates the rows concerned and dead-letters them.
"""

from __future__ import annotations

import re

from routerwatch.errors import ConfigError, PermanentError, RetryableError


class StoreUnavailable(RetryableError):
    """ClickHouse did not answer or refused for a transient reason: back off and retry."""


class QueryError(PermanentError):
    """ClickHouse rejected a statement (syntax, unknown table, read-only violation...).

    ``code`` is ClickHouse's error code when the message carries one. ``retryable`` is true when
    the code names a state of the store rather than a fault of the statement or its rows.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = error_code(message)
        self.retryable = self.code in RETRYABLE_CODES


class RowsRejected(PermanentError):
    """These rows cannot be stored as they are (a value their column cannot hold, a constraint)."""


class InsertNotVerified(StoreUnavailable):
    """The engine returned without error but reported fewer rows written than sent: try again."""


class MigrationError(PermanentError):
    """A migration failed, or a shipped migration file was edited after it was applied."""


class MigrationsNotFound(ConfigError):
    """The migrations folder is missing or empty (``ROUTERWATCH_SQL_DIR``, or an install without them)."""


# ClickHouse error codes that describe the store's state, not the statement's rows: retry later.
RETRYABLE_CODES = frozenset(
    {
        16,  # NO_SUCH_COLUMN_IN_TABLE: migrations behind
        47,  # UNKNOWN_IDENTIFIER: migrations behind
        60,  # UNKNOWN_TABLE: migrations behind
        81,  # UNKNOWN_DATABASE
        74,  # CANNOT_READ_FROM_FILE_DESCRIPTOR
        75,  # CANNOT_WRITE_TO_FILE_DESCRIPTOR
        76,  # CANNOT_OPEN_FILE
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY
        173,  # CANNOT_ALLOCATE_MEMORY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS (a server throttling inserts; partitions per insert are unlimited here)
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION (I/O)
    }
)

_CODE = re.compile(r"Code: (\d+)\.")


def error_code(message: str) -> int | None:
    """ClickHouse's error code in an error message, or None when it carries none."""
    found = _CODE.search(message)
    return int(found.group(1)) if found else None


def is_retryable(exc: BaseException) -> bool:
    """True when storing the same rows again later can succeed (an outage, not the rows' fault)."""
    if isinstance(exc, (StoreUnavailable, OSError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, QueryError):
        return exc.retryable
    return False


class UnsafeQuery(QueryError):
    """The read-only SQL surface refused a statement that does more than read (a file write, a session
    change, SYSTEM or KILL, a table function that reaches outside the store...); the message names
    what was refused and why. Never retryable; a :class:`QueryError`, so callers that handle a
    statement ClickHouse rejects handle this one too."""


class QueryLimitExceeded(QueryError):
    """A read query hit one of its limits (execution time, memory, result size); the message names
    the limit and the setting that raises it."""
