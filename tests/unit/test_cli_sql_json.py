"""`routerwatch sql --format json` prints valid JSON: NaN and infinite floats become null."""

from __future__ import annotations

import json
import math

import pytest

from routerwatch import cli
from routerwatch.storage.client import QueryResult


def test_json_safe_replaces_nan_and_infinities_at_any_depth():
    value = {"a": math.nan, "b": [1.5, math.inf, (-math.inf, 2)], "c": {"d": math.nan, "e": "nan"}, "f": 0.0}
    assert cli.json_safe(value) == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": None, "e": "nan"}, "f": 0.0}


def _strict_loads(text: str):
    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def fake_reader(monkeypatch):
    rows = [(math.nan, math.inf, -math.inf, [1.0, math.nan], {"k": math.inf}, 2.5, "x", None)]
    result = QueryResult(columns=["avg_empty", "ratio", "neg", "arr", "map", "ok", "s", "n"], rows=rows)

    class Reader:
        def __init__(self, settings):
            pass

        def query(self, sql, parameters=None):
            return result

        def close(self):
            pass

    monkeypatch.setattr(cli, "_settings", lambda: None)
    monkeypatch.setattr("routerwatch.storage.reader.Reader", Reader)


def test_sql_json_output_parses_strictly_with_null_for_nan_and_inf(fake_reader, capsys):
    assert cli.main(["sql", "SELECT 1", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out and "Infinity" not in out
    assert _strict_loads(out) == [
        {"avg_empty": None, "ratio": None, "neg": None, "arr": [1.0, None], "map": {"k": None}, "ok": 2.5, "s": "x", "n": None}
    ]


def test_sql_tsv_output_keeps_clickhouse_spelling(fake_reader, capsys):
    assert cli.main(["sql", "SELECT 1"]) == 0
    assert capsys.readouterr().out.split("\t")[:3] == ["nan", "inf", "-inf"]
