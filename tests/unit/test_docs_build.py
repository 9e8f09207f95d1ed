"""The docs site builds in strict mode, and every file a page includes exists.

Lab pages pull the real lab files into the site with ``pymdownx.snippets``; a renamed file
must break the build rather than leave a page showing a stale copy. The snippet scan below
gives a precise message (page, line, path) even where mkdocs is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: A block snippet line: ``--8<-- "path"`` (optionally indented, single or double quotes).
SNIPPET = re.compile(r"""^\s*-{1,}8<-{1,}\s+(["'])(?P<path>[^"']+)\1\s*$""")


def _mkdocs() -> list[str] | None:
    """How to run mkdocs: the venv next to this interpreter, else PATH, else None."""
    beside = Path(sys.executable).with_name("mkdocs")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mkdocs")
    return [found] if found else None


def _snippets() -> list[tuple[Path, int, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if match := SNIPPET.match(line):
                found.append((page, number, match["path"]))
    return found


def test_pages_include_snippets() -> None:
    """The lab pages really include lab files (the scan below is not vacuous)."""
    paths = {path for _, _, path in _snippets()}
    assert "labs/01-pod-networking/starter/pods.yaml" in paths
    assert "labs/01-pod-networking/solution/pods.yaml" in paths


def test_every_snippet_path_exists() -> None:
    missing = [
        f"{page.relative_to(ROOT)}:{number}: {path}"
        for page, number, path in _snippets()
        if not (ROOT / path).is_file()
    ]
    assert not missing, "snippets that include missing files:\n" + "\n".join(missing)


def test_snippet_pattern_matches_indented_and_plain_lines() -> None:
    assert SNIPPET.match('--8<-- "labs/x/a.yaml"')["path"] == "labs/x/a.yaml"  # type: ignore[index]
    assert SNIPPET.match("    --8<-- 'b.yaml'")["path"] == "b.yaml"  # type: ignore[index]
    assert SNIPPET.match("text --8<-- 'b.yaml'") is None


def test_snippets_fail_on_missing_files() -> None:
    """mkdocs.yml keeps check_paths on, so a missing include fails the build."""

    class _Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml uses !!python/name tags (the mermaid fence); they are irrelevant here.
    _Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)
    extensions: dict[str, Any] = {}
    for item in config["markdown_extensions"]:
        extensions.update(item if isinstance(item, dict) else {item: None})
    snippets = extensions["pymdownx.snippets"]
    assert snippets["check_paths"] is True
    assert "." in snippets["base_path"]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    mkdocs = _mkdocs()
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    result = subprocess.run(
        [*mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed (exit {result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )
    lab_page = tmp_path / "site" / "labs" / "01-pod-networking" / "index.html"
    assert lab_page.is_file()
    # The included starter made it into the page, not just the --8<-- marker.
    text = lab_page.read_text(encoding="utf-8")
    assert "--8&lt;--" not in text and "--8<--" not in text
    assert "agnhost" in text
