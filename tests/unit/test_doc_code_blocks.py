"""Every fenced code block of README.md and docs/*.md is run or checked by a test.

The HTML comment on the line before a block's opening fence says what accounts for it
(``tests/docblocks.py`` parses them; docs/testing.md has the table for readers):

- ``<!-- test: NAME -->``: code a test loads by name (``docblocks.named_block``) and runs; a test
  file must name the document and ``"NAME"``.
- ``<!-- example:start -->`` (docs/otlp.md): a region a test file reads by that marker and runs.
- ``<!-- cli -->``: ``routerwatch`` command lines; each is parsed here by the CLI's own parser and
  run against a fresh migrated embedded store by ``tests/integration/test_doc_commands.py``.
- ``<!-- make: TEST_FILE -->``: ``make`` targets; each target's scripts must be run by TEST_FILE.
- ``<!-- config: env -->``: ``ROUTERWATCH_*=value`` lines; every variable is a setting.
- ``<!-- config: canary-set -->`` / ``<!-- config: prices -->``: loaded with routerwatch's own
  loaders (a price table with its missing prices from LiteLLM's bundled map, as docs/prices.md says).
- ``<!-- text -->``: a diagram, a formula or a layout: no language (or ``text``), nothing to run.

A block without a marker, or with one that does not hold, fails here with its file and line.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from docblocks import REPO, Block, all_blocks

from routerwatch.cli import parser
from routerwatch.config import ENV_PREFIX, Settings

BLOCKS = all_blocks()
TESTS = REPO / "tests"
# The files that only parse the markers do not count as running a block.
NOT_RUNNERS = {TESTS / "docblocks.py", Path(__file__).resolve()}
CLI = ("routerwatch", ".venv/bin/routerwatch")


def _test_sources() -> dict[Path, str]:
    return {p: p.read_text() for p in TESTS.rglob("*.py") if p.resolve() not in NOT_RUNNERS}


def command_lines(block: Block) -> list[list[str]]:
    """The block's commands as argv lists (comments and blank lines left out)."""
    return [argv for line in block.body.splitlines() if (argv := shlex.split(line, comments=True))]


def makefile_recipe(target: str) -> str:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert match, f"Makefile has no target {target!r} with a recipe"
    return match.group(1)


def setting_exists(variable: str) -> bool:
    model: type[BaseModel] | None = Settings
    for part in variable.removeprefix(ENV_PREFIX).lower().split("__"):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return True


def check_test(block: Block) -> None:
    doc = block.path.name
    runners = [p for p, text in _test_sources().items()
               if doc in text and re.search(rf"""["']{re.escape(block.arg)}["']""", text)]
    assert runners, f"{block.where}: no test names {doc} and {block.arg!r}: nothing runs this block"


def check_example(block: Block) -> None:
    runners = [p for p, text in _test_sources().items() if block.path.name in text and "example:start" in text]
    assert runners, f"{block.where}: no test reads {block.path.name}'s example:start region"


def check_cli(block: Block) -> None:
    lines = command_lines(block)
    assert lines, f"{block.where}: an empty cli block"
    for argv in lines:
        assert argv[0] in CLI, f"{block.where}: {argv[0]!r} is not a routerwatch command"
        try:
            parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{block.where}: the CLI refuses {shlex.join(argv)!r} (exit {exc.code})")


def check_make(block: Block) -> None:
    runner = REPO / block.arg
    assert runner.is_file(), f"{block.where}: {block.arg} does not exist"
    text = runner.read_text()
    for argv in command_lines(block):
        assert argv[0] == "make" and len(argv) == 2, f"{block.where}: {shlex.join(argv)!r} is not 'make TARGET'"
        scripts = re.findall(r"(deploy/[\w./-]+\.sh)(?: +([\w-]+))?", makefile_recipe(argv[1]))
        assert scripts, f"{block.where}: make {argv[1]} runs no deploy/ script a test could run"
        for script, arg in scripts:
            assert script in text, f"{block.where}: {block.arg} does not run {script} (make {argv[1]})"
            if arg:
                assert re.search(rf"""["']{re.escape(arg)}["']""", text), \
                    f"{block.where}: {block.arg} does not run {script} {arg} (make {argv[1]})"


def check_env(block: Block) -> None:
    for line in block.body.splitlines():
        setting = line.split("#", 1)[0].strip()
        if not setting:
            continue
        name, sep, _ = setting.partition("=")
        assert sep and name.startswith(ENV_PREFIX), f"{block.where}: {line!r} is not a ROUTERWATCH_ setting"
        assert setting_exists(name), f"{block.where}: {name} is not a setting of routerwatch.config.Settings"


def check_canary_set(block: Block, tmp_path: Path) -> None:
    from routerwatch.canary.config import load_canary_set

    path = tmp_path / "canaries.yml"
    path.write_text(block.body)
    assert load_canary_set(path).canaries, block.where


def check_prices(block: Block, tmp_path: Path) -> None:
    from routerwatch.prices import load_prices

    path = tmp_path / "prices.toml"
    path.write_text(block.body)
    assert load_prices(path, "litellm").version, block.where


def check_text(block: Block) -> None:
    assert block.lang in ("", "text"), f"{block.where}: a ```{block.lang} block marked text: mark what runs it"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_every_code_block_is_run_or_checked(block: Block, tmp_path):
    kind = (block.kind or "") + (":" + block.arg if block.kind == "config" else "")
    if kind == "test":
        check_test(block)
    elif kind == "example:start":
        check_example(block)
    elif kind == "cli":
        check_cli(block)
    elif kind == "make":
        check_make(block)
    elif kind == "config:env":
        check_env(block)
    elif kind == "config:canary-set":
        check_canary_set(block, tmp_path)
    elif kind == "config:prices":
        check_prices(block, tmp_path)
    elif kind == "text":
        check_text(block)
    else:
        pytest.fail(f"{block.where}: a ```{block.lang} block without a marker saying what runs it "
                    f"(<!-- test: NAME -->, <!-- cli -->, <!-- make: TEST_FILE -->, <!-- config: ... -->, "
                    f"<!-- text -->; see tests/unit/test_doc_code_blocks.py), got {block.kind!r}")


def test_block_names_are_unique_per_document():
    seen: dict[tuple[Path, str], str] = {}
    for block in BLOCKS:
        if block.kind == "test":
            key = (block.path, block.arg)
            assert key not in seen, f"{block.where}: {block.arg!r} is also the name of {seen[key]}"
            seen[key] = block.where


def test_a_block_named_in_two_documents_is_the_same_code():
    # The README's SDK snippet is docs/sdk.md's: one test runs it for both.
    by_name: dict[str, set[str]] = {}
    for block in BLOCKS:
        if block.kind == "test":
            by_name.setdefault(block.arg, set()).add(block.body)
    assert all(len(bodies) == 1 for bodies in by_name.values()), [n for n, b in by_name.items() if len(b) > 1]


def test_the_harness_finds_blocks_and_refuses_an_unmarked_one(tmp_path):
    from docblocks import blocks

    page = tmp_path / "page.md"
    page.write_text("# t\n\n<!-- cli -->\n```sh\nrouterwatch sql 'SELECT 1'\n```\n\n```python\nprint(1)\n```\n")
    found = blocks(page)
    assert [(b.line, b.kind, b.lang) for b in found] == [(4, "cli", "sh"), (8, None, "python")]
    assert len(BLOCKS) >= 10 and {b.path.name for b in BLOCKS} >= {"README.md", "litellm.md", "otlp.md"}
