"""The configuration reference (``docs/configuration.md``), generated from the settings models.

:func:`render` turns :class:`routerwatch.config.Settings` and its sections into Markdown: one table
per section with each setting's environment variable, type, default and description, all taken
from the models (``Field(description=...)``; a section's title and lead text from the ``Field`` of
the :class:`~routerwatch.config.Settings` attribute holding it). The environment is never read:
the page is the same on every machine.

``routerwatch config reference`` writes the page; ``routerwatch config reference --check`` (and
``tests/unit/test_config_reference.py``) fail when the committed page differs from the models.

A default that depends on where the service runs is never shown as one machine's value: a
``default_factory`` other than an empty container must say what it means with
``json_schema_extra={"default_doc": "..."}`` (the generator refuses it otherwise), and a relative
path is shown as relative to the working directory.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

#: Where the page lives, relative to the repository root (the CLI's default ``--file``).
REFERENCE_FILE = "docs/configuration.md"

#: The command that writes the page (named by every drift message).
REGENERATE = "routerwatch config reference"

INTRO = """\
# Configuration reference

<!-- Generated from services/routerwatch/config.py by `routerwatch config reference`; do not edit by hand.
     `routerwatch config reference --check` and tests/unit/test_config_reference.py fail when it drifts. -->

routerwatch (`serve` and every other subcommand) reads its settings from environment variables
named `ROUTERWATCH_<SETTING>`. A setting inside a section joins the section and the setting with a
double underscore: `ROUTERWATCH_HTTP__PORT=9464`, `ROUTERWATCH_INGEST__BATCH_SIZE=20000`. Names
are not case-sensitive; this page spells them in upper case.

- **Values.** Booleans are `true` / `false`; durations are in the unit their name ends with (`_s`
  seconds, `_ms` milliseconds, `_minutes`, `_hours`); sizes (`_bytes`) are plain byte counts.
  A list is a JSON list: `ROUTERWATCH_CANARY__FILES='["deploy/canaries/example.yml"]'`. A whole
  section may also be given as one JSON object (`ROUTERWATCH_INGEST='{"batch_size": 20000}'`);
  a `__` variable of the same section wins over that object's key.
- **Relative paths** (the `.run/` defaults, `chdb://.run/store`) are resolved against the working
  directory of the process: run `serve` from a fixed directory, or give absolute paths.
- **No `.env` file** is read: export the variables in the shell, or let the process manager load
  a file (docker compose `env_file:`, systemd `EnvironmentFile=`).
- **Checked at start.** An unknown `ROUTERWATCH_<SECTION>__...` key, a value of the wrong type or out of
  range, or a combination that cannot work (e.g. SASL without a user) stops the command with exit
  code 2 and one line naming the variable.
- **Secrets** (type *secret*) are never logged or echoed: `ROUTERWATCH_CLICKHOUSE_URL` (it may
  hold a password), `ROUTERWATCH_HTTP__TOKEN`, `ROUTERWATCH_KAFKA_SECURITY__PASSWORD`,
  `ROUTERWATCH_KAFKA_SECURITY__KEY_PASSWORD`.

Two variables are not settings of this page: `ROUTERWATCH_DEBUG=1` makes the CLI print the
traceback of an expected failure too, and `EXAMPLE_ROUTER_TOKEN` is the admin token of the
bundled example router.
"""

#: Names for the types of the settings, in the words of the reference.
_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    SecretStr: "*secret* string",
}


@dataclass(frozen=True)
class Setting:
    """One environment variable: where its field is and what the reference says of it."""

    variable: str
    path: tuple[str, ...]
    field: FieldInfo
    type: str
    default: str


@dataclass(frozen=True)
class Section:
    """One table of the reference: the top-level settings, or one nested section."""

    name: str  # "" for the top level
    title: str
    lead: str
    model: type[BaseModel]
    settings: tuple[Setting, ...]


def _section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def settings_models() -> list[type[BaseModel]]:
    """:class:`~routerwatch.config.Settings` and every section model under it, in reference order."""
    from routerwatch.config import Settings

    found: list[type[BaseModel]] = []

    def walk(model: type[BaseModel]) -> None:
        found.append(model)
        for field in model.model_fields.values():
            nested = _section_model(field.annotation)
            if nested is not None and nested not in found:
                walk(nested)

    walk(Settings)
    return found


def _strip_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (an unset value shows as the default "unset")."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _type_name(annotation: Any) -> str:
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        (item, *_) = typing.get_args(annotation) or (str,)
        return f"JSON list of {_type_name(item)}s"
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    raise TypeError(f"the configuration reference has no name for the type {annotation!r}: add it to _TYPE_NAMES")


def _number(value: float | int, name: str) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    if name.endswith("_bytes") and isinstance(value, int) and value >= 1024:
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value % size == 0:
                return f"{text} ({value // size} {unit})"
    return text


def _constraints(field: FieldInfo, name: str) -> list[str]:
    words = []
    for item in field.metadata:
        for kind, attribute, sign in (
            (annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"),
            (annotated_types.Le, "le", "<="), (annotated_types.Lt, "lt", "<"),
        ):
            if isinstance(item, kind):
                words.append(f"{sign} {_number(getattr(item, attribute), name)}")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            words.append(f"matching `{pattern}`")
    return words


def _value(value: Any, name: str) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if isinstance(value, (int, float)):
        return _code_number(value, name)
    if isinstance(value, PurePath):
        text = f"`{value}`"
        return text if value.is_absolute() else f"{text} (relative to the working directory)"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"`{json.dumps(list(value) if not isinstance(value, dict) else value)}`"
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    raise TypeError(f"the configuration reference cannot show the default {value!r} of {name}")


def _code_number(value: float | int, name: str) -> str:
    text = _number(value, name)
    plain, _, unit = text.partition(" ")
    return f"`{plain}`" + (f" {unit}" if unit else "")


def _default(field: FieldInfo, name: str) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "default_doc" in extra:
        return str(extra["default_doc"])
    if field.default_factory is not None:
        if field.default_factory in (list, dict, set, tuple, frozenset):
            return _value(field.default_factory(), name)  # type: ignore[call-arg]
        raise TypeError(
            f"{name}: a default_factory may depend on the machine; say what the default is with "
            "json_schema_extra={'default_doc': ...} so that the reference does not show one machine's value"
        )
    return _value(field.default, name)


def _cell(text: str) -> str:
    """One table cell: one line, ``|`` escaped, and no ``<word`` a Markdown renderer would take for an HTML tag."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    # Outside code spans (the even parts), "<alertname in lower case>" would vanish as an unknown tag.
    return "`".join(re.sub(r"<(?=[A-Za-z/!?])", "&lt;", part) if i % 2 == 0 else part for i, part in enumerate(parts))


def sections() -> list[Section]:
    """The reference's tables: the top-level settings first, then each section in declaration order."""
    from routerwatch.config import ENV_PREFIX, Settings

    def rows(model: type[BaseModel], prefix: tuple[str, ...]) -> tuple[Setting, ...]:
        found = []
        for name, field in model.model_fields.items():
            if _section_model(field.annotation) is not None:
                continue
            path = (*prefix, name)
            kind = ", ".join([_type_name(field.annotation), *_constraints(field, name)])
            found.append(Setting(ENV_PREFIX + "__".join(path).upper(), path, field, kind, _default(field, name)))
        return tuple(found)

    result = [Section("", "General", "Where the data lives, the Kafka broker, prices and logging.", Settings, rows(Settings, ()))]
    for name, field in Settings.model_fields.items():
        nested = _section_model(field.annotation)
        if nested is None:
            continue
        title = field.title or name.replace("_", " ").capitalize()
        result.append(Section(name, title, field.description or "", nested, rows(nested, (name,))))
    return result


def iter_settings() -> Iterator[Setting]:
    """Every environment variable of the reference, in page order."""
    for section in sections():
        yield from section.settings


def render() -> str:
    """The whole page, as committed in ``docs/configuration.md``."""
    from routerwatch.config import ENV_PREFIX

    parts = [INTRO]
    for section in sections():
        variables = f"`{ENV_PREFIX}*`" if not section.name else f"`{ENV_PREFIX}{section.name.upper()}__*`"
        parts.append(f"## {section.title} ({variables})\n")
        if section.lead:
            parts.append(" ".join(section.lead.split()) + "\n")
        lines = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
        for setting in section.settings:
            description = _cell(setting.field.description or "")
            lines.append(f"| `{setting.variable}` | {_cell(setting.type)} | {_cell(setting.default)} | {description} |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def drift(path: Path, context: int = 1) -> list[str]:
    """The unified diff from the page at ``path`` to :func:`render` (empty: in sync). Raises OSError if unreadable."""
    committed = path.read_text(encoding="utf-8")
    expected = render()
    if committed == expected:
        return []
    return list(difflib.unified_diff(
        committed.splitlines(), expected.splitlines(), fromfile=f"{path} (committed)",
        tofile=f"{path} (from the settings models)", lineterm="", n=context,
    ))
