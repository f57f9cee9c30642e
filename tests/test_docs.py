"""The documentation a person gets by cloning the repository is complete: the README and docs/ refer only
to files inside it, and every link between them resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_pages_refer_only_to_files_in_the_repository(page: Path) -> None:
    text = page.read_text()
    assert "../shared" not in text and "DESIGN.md" not in text and "PERF-NOTES" not in text
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        resolved = (page.parent / target).resolve()
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.name} links to {target}"


def test_the_readme_links_the_manifest_and_api_guides() -> None:
    text = (ROOT / "README.md").read_text()
    assert "](docs/manifest.md)" in text and "](docs/api.md)" in text
