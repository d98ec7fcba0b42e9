"""The documentation: the site builds with warnings as errors, the README stays short, and
nothing published cites internal notes, issue numbers or paths of one machine."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 12_000  # bytes
# Internal design notes, issue numbers, the shared folder beside a checkout, machine paths.
FORBIDDEN = re.compile(r"SPEC|\.\./shared|[Ii]ssue [0-9]|/work/|/tmp/|\.mirror")
PUBLISHED = ("soscope", "docs", "benchmarks", "README.md", "mkdocs.yml")


def test_the_site_builds_offline_with_warnings_as_errors(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
    done = subprocess.run(
        [*command, "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,  # any cache a plugin keeps lands here, not in the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    for page in ("index.html", "model/index.html", "reference/index.html"):
        assert (site / page).is_file(), page
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    assert "SoScope" in reference and "read_visium" in reference
    assert (site / "benchmarks" / "quality" / "index.html").is_file()
    assert (site / "notebooks" / "00_getting_started" / "index.html").is_file()


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_bytes()) <= README_LIMIT


def published_files() -> list[Path]:
    files = []
    for name in PUBLISHED:
        path = ROOT / name
        found = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [f for f in found if f.is_file() and f.suffix in (".py", ".md", ".yaml", ".yml")]
    return files


def test_nothing_published_cites_internal_notes_or_machine_paths():
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in published_files()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert hits == []
