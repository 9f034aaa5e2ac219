"""The documentation site builds with no warning, and the README's links land.

``mkdocs build --strict`` turns every broken link, missing anchor and unlisted page into an
error (``validation`` in mkdocs.yml), so the pages cannot point at text that moved. The
README is not part of the site, so its links into ``docs/`` are checked here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# A Markdown link's target, outside code: [text](target).
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
BUILD_SECONDS = 20  # measured: about 3 s on a 2-core machine; the bound only catches a hang


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    started = time.monotonic()
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}{build.stderr}"
    assert (tmp_path / "index.html").is_file()
    assert elapsed < BUILD_SECONDS, f"the site took {elapsed:.1f} s to build"


def _relative_links(markdown: str) -> list[str]:
    return [
        target
        for target in LINK.findall(FENCE.sub("", markdown))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # https:, mailto: ...
    ]


def _anchors(page: Path) -> set[str]:
    """The anchors the site gives the page's headings (the toc extension's slugs)."""
    text = FENCE.sub("", page.read_text())
    return {slugify(heading.replace("`", "").strip(), "-") for heading in HEADING.findall(text)}


def test_every_relative_link_in_the_readme_resolves() -> None:
    links = _relative_links(README.read_text())
    assert links, "the README links into docs/"
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        if not target.is_file():
            broken.append(f"{link}: no file {path}")
        elif anchor and anchor not in _anchors(target):
            broken.append(f"{link}: no heading with the anchor #{anchor} in {path}")
    assert not broken, "\n".join(broken)
