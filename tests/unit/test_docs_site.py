"""The documentation site builds in mkdocs' strict mode, and the README stays a front door.

Strict mode with mkdocs.yml's ``validation`` settings turns every broken link or anchor, a link
out of docs/ (a repository file is named as code text instead) and a page left out of the nav
into a warning, and a warning into a failed build.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def nav_pages(nav: list) -> set[str]:
    pages: set[str] = set()
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages |= nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_the_site_builds_in_strict_mode_without_a_warning(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["strict"] is True
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert nav_pages(config["nav"]) == pages


def test_a_broken_link_fails_the_strict_build(tmp_path):
    # The check above is only worth something if strict mode really catches a bad link or anchor.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n[gone](missing.md), [no anchor](#nowhere)\n")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config.update(docs_dir=str(docs), nav=[{"x": "index.md"}])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode != 0
    assert "missing.md" in done.stderr and "nowhere" in done.stderr, done.stderr


def test_the_readme_is_a_front_door():
    readme = (REPO / "README.md").read_bytes()
    assert len(readme) <= 8192, f"README.md is {len(readme)} bytes: move the detail to docs/"


def test_every_design_notes_reference_in_the_code_names_a_section_of_docs_design_notes():
    import re

    notes = (REPO / "docs" / "design-notes.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", notes, re.M)}
    cited: list[tuple[str, int]] = []
    pattern = re.compile(r"design[ -]notes(?:\.md)?(?:'s)?,?\s+(?:section\s+)?(\d+)", re.I)
    for folder in ("services", "tests", "deploy", "bench", "sql", "alerts"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in {".py", ".sql", ".yml", ".yaml", ".sh", ".toml"} and path.is_file():
                text = path.read_text(errors="replace")
                cited += [(f"{path.relative_to(REPO)}", int(n)) for n in pattern.findall(text)]
    assert cited, "no code cites the design notes: the pattern no longer matches"
    assert [c for c in cited if c[1] not in sections] == []
