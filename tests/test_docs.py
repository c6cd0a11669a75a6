"""The README and docs/ stay usable: every relative link (and #anchor) resolves, and the README states the commands
CI runs, word for word."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import REPO_ROOT

PAGES = sorted({REPO_ROOT / "README.md", REPO_ROOT / "bench" / "RESULTS.md", *(REPO_ROOT / "docs").glob("*.md"),
                *REPO_ROOT.glob("*/README.md"), *REPO_ROOT.glob("*/*/README.md"), *REPO_ROOT.glob("*/*/*/README.md")})
PAGES = [p for p in PAGES if not any(part.startswith(".") for part in p.relative_to(REPO_ROOT).parts)]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The page without its fenced code blocks and inline code, where brackets and '#' are code, not markdown."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    ids: set[str] = set()
    repeats: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", prose(page.read_text(encoding="utf-8")), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        ids.add(f"{slug}-{repeats[slug]}" if slug in repeats else slug)
        repeats[slug] = repeats.get(slug, 0) + 1
    return ids


def broken_links(page: Path) -> list[str]:
    """The page's relative links whose file or heading does not exist."""
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not checked (no network)
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(target)
    return broken


def test_the_pages_are_found():
    names = {p.relative_to(REPO_ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/training.md", "docs/support-matrix.md", "bench/RESULTS.md", "tcdata/README.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO_ROOT).as_posix() for p in PAGES])
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    readme = prose((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert [p.name for p in (REPO_ROOT / "docs").glob("*.md") if f"(docs/{p.name})" not in readme] == []


def test_the_readme_states_the_command_ci_runs_and_the_fast_tier():
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "pytest" in ci and ci in readme
    assert '.venv/bin/python -m pytest -q -m "not slow" tests' in readme


def test_the_anchor_rules_match_githubs():
    page = REPO_ROOT / "docs" / "using-a-model.md"
    assert "using-a-trained-model--使用训练好的模型" in anchors(page)
    assert "stage-2-test-files-prediction-and-pseudo-labels" in anchors(REPO_ROOT / "docs" / "training.md")
