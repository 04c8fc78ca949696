"""The documentation: a short README, and a site of docs/ pages that builds without a broken link."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_is_a_short_tour_and_every_page_is_in_the_site() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    assert "make run" in readme and "make test" in readme  # the two commands a newcomer needs
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = {page for entry in nav for page in entry.values()}
    assert pages == {p.name for p in (ROOT / "docs").glob("*.md")}
    for page in pages - {"index.md"}:  # the README's table leads to each
        assert f"](docs/{page})" in readme, page


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "programs" / "index.html").is_file()
