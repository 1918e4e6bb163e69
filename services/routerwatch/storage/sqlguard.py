"""What the read-only SQL surface (``/query``, ``routerwatch sql``, ``report``) accepts.

ClickHouse's ``readonly=1`` refuses writes and DDL, but not everything that changes or leaves the
process: ``INTO OUTFILE`` writes a file as the serving user, ``USE`` switches the session later
queries run in, ``SYSTEM`` and ``KILL`` act on the engine, and table functions such as ``file``,
``url``, ``remote`` or ``executable`` reach outside the store. :func:`check_read_only` lets through
one statement that only reads and refuses the rest with :class:`UnsafeQuery`, naming what it
refused and why.

It parses with the engine's own parser, in two steps that never execute the statement:

1. ``SELECT formatQuerySingleLine({q:String})``: the text is a bound parameter, so it is data to the
   engine, which parses it (refusing several statements or bad syntax) and prints it back in one
   canonical form (no comments, keywords spelled one way). That canonical text is what is checked
   and what is run afterwards, so the check and the run see the same statement.
2. ``EXPLAIN AST <canonical>``: the parsed tree (statement kind, clauses, every function, table and
   identifier, with query parameters substituted), which the rules below walk. ``EXPLAIN AST`` only
   prints the tree: an ``INTO OUTFILE`` clause stays with the explained statement and writes nothing
   (tests/unit/test_sqlguard.py checks this), and the caller runs it with ``readonly=1``, so a
   ``SETTINGS`` clause in the statement fails there rather than changing the parsing session.

Regular expressions over the canonical text are only an extra layer (``INTO OUTFILE``, the leading
keyword) under the tree's rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from routerwatch.storage.errors import QueryError, UnsafeQuery

# Runs one of the two parse statements above (with bound parameters) and returns its TabSeparated
# text. The caller supplies it: the store's read-only handle, or a throwaway engine.
ParseRunner = Callable[[str, "Mapping[str, Any] | None"], str]

ACCEPTED = "one SELECT, WITH, SHOW, DESCRIBE, EXISTS or EXPLAIN statement"
NOT_A_READ = "this SQL surface is readonly, and the statement does more than read"

# Statement kinds (the root node of EXPLAIN AST) that only read.
READ_STATEMENTS = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "ShowTables",  # SHOW TABLES / DATABASES / DICTIONARIES / SETTINGS
        "ShowColumns",
        "ShowIndexes",
        "ShowFunctions",
        "ShowEngineQuery",
        "ShowCreateTableQuery",
        "ShowCreateViewQuery",
        "ShowCreateDatabaseQuery",
        "ShowCreateDictionaryQuery",
        "DescribeQuery",
        "ExistsTableQuery",
        "ExistsDatabaseQuery",
        "ExistsViewQuery",
        "ExistsDictionaryQuery",
        "Explain",
    }
)
LEADING_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "("})

# Readable names of refused statement kinds, for the error message.
STATEMENT_NAMES = {
    "InsertQuery": "INSERT",
    "AlterQuery": "ALTER",
    "CreateQuery": "CREATE",
    "DropQuery": "DROP",
    "OptimizeQuery": "OPTIMIZE",
    "TruncateQuery": "TRUNCATE",
    "Rename": "RENAME",
    "GrantQuery": "GRANT/REVOKE",
    "UseQuery": "USE",
    "Set": "SET",
    "KillQueryQuery": "KILL",
    "SYSTEM": "SYSTEM",
    "BackupQuery": "BACKUP/RESTORE",
    "ShowProcesslistQuery": "SHOW PROCESSLIST",
    "ShowGrantsQuery": "SHOW GRANTS",
    "ParallelWithQuery": "PARALLEL WITH",
}
# Why a leading keyword is refused (checked before the tree is built, so these never reach EXPLAIN).
KEYWORD_REASONS = {
    "USE": "it would switch the database of the shared session every later query runs in",
    "SET": "settings are fixed by routerwatch (ROUTERWATCH_QUERY__*), not by queries",
    "SYSTEM": "it acts on the engine (merges, caches, replicas), not on data",
    "KILL": "it stops other queries, ingest's included",
}

# Table functions that only produce values in the process (allowed where a table goes).
SAFE_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generaterandom", "generate_series", "generateseries",
     "values", "view", "null"}
)
# Functions (table or scalar, lower-cased) that read or write outside the store, run programs or
# reach other servers; refused wherever they appear.
OUTSIDE_FUNCTIONS = frozenset(
    {
        "file", "filecluster", "url", "urlcluster", "remote", "remotesecure", "cluster",
        "clusterallreplicas", "s3", "s3cluster", "gcs", "cosn", "oss", "azureblobstorage",
        "azureblobstoragecluster", "hdfs", "hdfscluster", "executable", "executablepool", "mysql",
        "postgresql", "jdbc", "odbc", "sqlite", "mongodb", "redis", "input", "python", "arrowflight",
        "arrowflightcluster", "ytsaurus", "merge", "dictionary", "deltalake", "deltalakecluster",
        "deltalakes3", "deltalakeazure", "iceberg", "icebergs3", "icebergazure", "iceberghdfs",
        "iceberglocal", "icebergcluster", "icebergs3cluster", "icebergazurecluster",
        "iceberghdfscluster", "hudi", "hudicluster", "paimon", "paimons3", "paimonazure",
        "paimonhdfs", "paimonlocal", "mergetreeindex", "mergetreeanalyzeindexes", "loop",
        "fuzzjson", "fuzzquery", "prometheusquery", "prometheusqueryrange", "timeseriesdata",
        "timeseriesmetrics", "timeseriestags", "timeseriesselector", "filesystem", "bigquery", "arrowstream",
    }
)
# system tables that hold credentials, other sessions' query text or the engine's own log.
SECRET_SYSTEM_TABLES = frozenset(
    {
        "users", "roles", "role_grants", "grants", "quotas", "quota_limits", "quota_usage",
        "quotas_usage", "row_policies", "settings_profiles", "settings_profile_elements",
        "user_directories", "named_collections", "processes", "query_log", "query_thread_log",
        "query_views_log", "session_log", "text_log", "zookeeper", "zookeeper_log",
        "zookeeper_connection", "user_processes", "server_settings",
    }
)

_MULTI = "Multi-statements are not allowed"
_READONLY_SETTING = re.compile(r"Cannot modify '([^']+)' setting in readonly mode")
# String literals and quoted identifiers of the canonical text, removed before a textual check.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")
_INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)
_NODE = re.compile(r"^( *)(\S+)(?: (.*?))?(?: \(children \d+\))?$")


@dataclass
class Node:
    """One line of ``EXPLAIN AST``: the node kind (``Function``), its text (``file``), its children."""

    kind: str
    text: str
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The node's own name: ``file`` for ``Function file (alias f)``."""
        return self.text.split(" (alias ")[0].strip()

    def walk(self) -> Any:
        yield self
        for child in self.children:
            yield from child.walk()


def check_read_only(sql: str, parameters: Mapping[str, Any] | None = None, run: ParseRunner | None = None) -> str:
    """The statement to run for ``sql``: its canonical text, when it only reads.

    ``parameters`` are the query's ``{name:Type}`` values (substituted in the parsed tree, so a
    ``{t:Identifier}`` naming a refused table is refused). ``run`` executes the parse statements;
    without one, a throwaway in-memory chDB engine, opened for this call and closed after it, parses
    (usable only in a process that has no chDB store open: chDB hosts one engine per process).

    Raises :class:`UnsafeQuery` naming what was refused and why, and :class:`QueryError` when the
    engine cannot parse the text (syntax, a parameter that does not fit its type).
    """
    if not isinstance(sql, str) or not sql.strip():
        raise UnsafeQuery(f"no SQL statement given: send {ACCEPTED}")
    if run is None:
        with _memory_runner() as memory:
            return check_read_only(sql, parameters, memory)
    try:
        canonical = _tsv_unescape(run("SELECT formatQuerySingleLine({q:String})", {"q": sql}).rstrip("\n"))
    except QueryError as exc:
        if _MULTI in str(exc):
            raise UnsafeQuery(f"several statements: send {ACCEPTED} at a time") from exc
        if "Empty query" in str(exc):
            raise UnsafeQuery(f"no SQL statement given (only comments): send {ACCEPTED}") from exc
        raise
    if not canonical.strip():
        raise UnsafeQuery(f"no SQL statement given: send {ACCEPTED}")
    bare = _QUOTED.sub("''", canonical)
    _check_leading_keyword(bare)
    # Extra layer under the tree's rules: the canonical text names an output file.
    if _INTO_OUTFILE.search(bare):
        raise UnsafeQuery("INTO OUTFILE refused: a query here never writes files (read the rows from the response)")
    try:
        text = run(f"EXPLAIN AST {canonical}", bound_parameters(canonical, parameters))
    except QueryError as exc:
        found = _READONLY_SETTING.search(str(exc))
        if found:
            raise UnsafeQuery(
                f"SETTINGS {found.group(1)} refused: a query cannot change settings here; the limits are "
                "routerwatch's (ROUTERWATCH_QUERY__*)"
            ) from exc
        raise
    check_tree(parse_tree(text), _table_functions(run))
    return canonical


_engine_table_functions: frozenset[str] | None = None


def _table_functions(run: ParseRunner) -> frozenset[str]:
    """The engine's table functions (``system.table_functions``), lower case, read once per process."""
    global _engine_table_functions
    if _engine_table_functions is None:
        names = _tsv_unescape(run("SELECT name FROM system.table_functions", None)).split("\n")
        _engine_table_functions = frozenset(n.strip().lower() for n in names if n.strip()) | OUTSIDE_FUNCTIONS
    return _engine_table_functions


def bound_parameters(statement: str, parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``parameters`` when ``statement`` has ``{name:Type}`` placeholders, else None.

    Parameters a statement has no placeholder for are left out: given to clickhouse-connect, they
    would be substituted into the text client-side (``%(name)s``), after the check.
    """
    if not parameters or not _PLACEHOLDER.search(_QUOTED.sub("''", statement)):
        return None
    return dict(parameters)


def _check_leading_keyword(bare: str) -> None:
    stripped = bare.lstrip()
    word = "(" if stripped.startswith("(") else (stripped.split(None, 1) or [""])[0].upper()
    if word in LEADING_KEYWORDS:
        return
    reason = KEYWORD_REASONS.get(word, NOT_A_READ)
    raise UnsafeQuery(f"{word} refused: {reason}; only {ACCEPTED} is accepted")


def parse_tree(text: str) -> Node:
    """The root of an ``EXPLAIN AST`` dump (TabSeparated: one node a line, one space per level)."""
    root: Node | None = None
    stack: list[tuple[int, Node]] = []
    for raw in text.split("\n"):
        line = _tsv_unescape(raw)
        if not line.strip():
            continue
        found = _NODE.match(line)
        if not found:
            raise UnsafeQuery(f"cannot read the engine's parse tree at {line!r}: refused")
        depth, kind, rest = len(found.group(1)), found.group(2), found.group(3) or ""
        node = Node(kind, rest)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            stack[-1][1].children.append(node)
        elif root is None:
            root = node
        else:
            raise UnsafeQuery("several statements in the parse tree: refused")
        stack.append((depth, node))
    if root is None:
        raise UnsafeQuery("the engine returned no parse tree: refused")
    return root


def check_tree(root: Node, table_functions: frozenset[str] = OUTSIDE_FUNCTIONS) -> None:
    """Refuse a tree that does more than read (see the module docstring for the rules).

    ``table_functions`` are the engine's table function names (lower case): where a table goes, one
    of them is refused unless it is in SAFE_TABLE_FUNCTIONS; any other name called there is a
    parameterized view (the report's views are), which only reads.
    """
    explain_options: set[int] = set()
    _check_statement(root, explain_options)
    for node in root.walk():
        if node.kind == "Function" and node.name.lower() in OUTSIDE_FUNCTIONS:
            raise UnsafeQuery(
                f"{node.name}() refused: it reaches outside the store (files, URLs, other servers or programs)"
            )
        if node.kind == "TableExpression":
            for child in node.children:
                if child.kind != "Function" or child.name.lower() in SAFE_TABLE_FUNCTIONS:
                    continue
                if child.name.lower() not in table_functions and child.name.lower() not in OUTSIDE_FUNCTIONS:
                    continue  # a parameterized view
                if child.name.lower() in OUTSIDE_FUNCTIONS:
                    raise UnsafeQuery(
                        f"{child.name}() refused: it reaches outside the store (files, URLs, other servers or programs)"
                    )
                raise UnsafeQuery(
                    f"table function {child.name}() refused: only "
                    f"{', '.join(sorted(SAFE_TABLE_FUNCTIONS))} may stand for a table here"
                )
        if node.kind in ("TableIdentifier", "Identifier"):
            parts = [p.strip("`\"") for p in node.name.split(".")]
            if len(parts) >= 2 and parts[0].lower() == "system" and parts[1].lower() in SECRET_SYSTEM_TABLES:
                raise UnsafeQuery(
                    f"system.{parts[1]} refused: it holds credentials, other sessions' queries or the engine's log"
                )
        if node.kind == "Set" and id(node) not in explain_options:
            raise UnsafeQuery(
                "a SETTINGS clause refused: a query cannot change settings here; the limits are routerwatch's "
                "(ROUTERWATCH_QUERY__*)"
            )


def _check_statement(node: Node, explain_options: set[int]) -> None:
    if node.kind not in READ_STATEMENTS:
        name = STATEMENT_NAMES.get(node.kind, node.kind)
        raise UnsafeQuery(f"{name} refused: {NOT_A_READ}; only {ACCEPTED} is accepted")
    if any(child.kind == "Literal" for child in node.children):
        # A literal hanging off the statement itself is an INTO OUTFILE target (or its COMPRESSION).
        raise UnsafeQuery("INTO OUTFILE refused: a query here never writes files (read the rows from the response)")
    if node.kind in ("SelectWithUnionQuery", "Explain"):
        # The first child is the statement's body; an identifier after it is a FORMAT clause.
        for child in node.children[1:]:
            if child.kind == "Identifier":
                raise UnsafeQuery(f"FORMAT {child.name} refused: the caller chooses the format (--format)")
    if node.kind == "Explain":
        # EXPLAIN's own options (header=1) come as a Set child before the explained statement,
        # which must only read too.
        options = [c for c in node.children if c.kind == "Set"]
        inner = [c for c in node.children if c.kind != "Set"]
        if len(inner) != 1 or (options and node.children[0] is not options[0]):
            raise UnsafeQuery("EXPLAIN refused: cannot tell which statement it explains")
        explain_options.update(id(c) for c in options)
        _check_statement(inner[0], explain_options)


def _tsv_unescape(value: str) -> str:
    """One TabSeparated field as text (the engine escapes backslashes, quotes, tabs and newlines)."""
    if "\\" not in value:
        return value
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "\\": "\\", "'": "'", '"': '"'}
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append(escapes.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@contextmanager
def _memory_runner() -> Iterator[ParseRunner]:
    """A parse runner on a throwaway in-memory chDB engine, read-only, closed afterwards."""
    import chdb

    conn = chdb.connect(":memory:")
    try:
        conn.query("SET readonly = 1", "TabSeparated")

        def run(statement: str, parameters: Mapping[str, Any] | None) -> str:
            params = {k: str(v) for k, v in (parameters or {}).items()}
            try:
                return conn.query(statement, "TabSeparated", params=params).data()
            except Exception as exc:  # chDB raises RuntimeError subclasses with the engine's message
                raise QueryError(str(exc).strip()) from exc

        yield run
    finally:
        conn.close()
