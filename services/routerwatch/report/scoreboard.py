"""``routerwatch report``: requests by final tier and attempts by tier and outcome.

The SQL lives in ``sql/queries`` (the on-call cookbook); this module only runs
it through a :class:`routerwatch.storage.reader.Reader` and renders the rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routerwatch.storage.client import QueryResult

SECTIONS = (
    ("Requests by final tier (routing mix)", "requests_by_final_tier"),
    ("Attempts by tier and outcome", "attempts_by_tier_outcome"),
)


def load_query(queries_dir: Path, name: str) -> str:
    return (queries_dir / f"{name}.sql").read_text()


def build(reader: Any, queries_dir: Path) -> dict[str, QueryResult]:
    """Run every section's query; keys are the query names."""
    return {name: reader.query(load_query(queries_dir, name)) for _, name in SECTIONS}


def render_text(results: dict[str, QueryResult]) -> str:
    """Aligned plain-text tables, one per section."""
    out = []
    for title, name in SECTIONS:
        result = results[name]
        out.append(title)
        out.append(_table(result.columns, result.rows))
        out.append("")
    return "\n".join(out)


def render_json(results: dict[str, QueryResult]) -> str:
    return json.dumps({name: results[name].as_dicts() for _, name in SECTIONS}, indent=2, default=str)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"
    return str(value)


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    if not rows:
        return "  (no data)"
    cells = [columns] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  " + "  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)
