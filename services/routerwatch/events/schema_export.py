"""Export the contract's JSON Schema to ``schemas/``.

``routerwatch schemas export`` writes the files; ``routerwatch schemas check``
(and a unit test) fail when the committed files differ from the models.
"""

from __future__ import annotations

import json
from pathlib import Path

from routerwatch.events.validation import EVENT_TYPES

SCHEMA_FILE = "{name}.v1.schema.json"


def render(name: str) -> str:
    """The JSON Schema text of one event type, stable across runs."""
    model = EVENT_TYPES[name]
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"routerwatch/{SCHEMA_FILE.format(name=name)}"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(directory: Path) -> list[Path]:
    """Write every event type's schema into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EVENT_TYPES:
        path = directory / SCHEMA_FILE.format(name=name)
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


def drift(directory: Path) -> list[str]:
    """Names of event types whose committed schema differs from the models (empty = in sync)."""
    stale = []
    for name in EVENT_TYPES:
        path = directory / SCHEMA_FILE.format(name=name)
        if not path.exists() or path.read_text(encoding="utf-8") != render(name):
            stale.append(name)
    return stale
