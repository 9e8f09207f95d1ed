"""The instructors' chapter shows only ``lab`` commands the CLI accepts.

Every ``lab`` / ``./lab`` command in a ``bash`` or ``console`` block of docs/instructors/ and
of the README's "For instructors" section is parsed with the real click CLI (see
tests/unit/clicheck.py): the command exists, its options are known, its required arguments
are given. Path arguments that must exist (``lab grade``'s SUBMISSIONS_DIR) are parsed in a
scratch folder where they do.
"""

from __future__ import annotations

import re
from pathlib import Path

import clicheck
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs" / "instructors").glob("*.md"))
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
#: Folders the documented commands name, created in the scratch folder before parsing.
FOLDERS = ("submissions",)


def blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(line, language, lines) of every fenced block."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match or not match["lang"]:
            i += 1
            continue
        start, indent, body = i + 1, len(match["indent"]), []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        found.append((start, match["lang"], body))
        i += 1
    return found


def commands(text: str, where: str) -> list[tuple[str, list[str]]]:
    """``(where:line, argv)`` of each lab command in the shell and console blocks."""
    found = []
    for start, lang, body in blocks(text):
        if lang not in ("bash", "console", "sh"):
            continue
        for offset, line in enumerate(body, 1):
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            argv = clicheck.lab_argv(line)
            if argv is not None:
                found.append((f"{where}:{start + offset}", argv))
    return found


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## For instructors", 1)[1].split("\n## ", 1)[0]


def documented() -> list[tuple[str, list[str]]]:
    found = [c for page in PAGES
             for c in commands(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix())]
    return found + commands(readme_section(), "README.md#for-instructors")


def test_the_chapter_has_its_pages_and_commands() -> None:
    names = {p.name for p in PAGES}
    assert {"index.md", "grading.md", "ci.md", "scoring.md", "writing-labs.md"} <= names
    used = {tuple(argv[:1]) for _, argv in documented()}
    assert {("grade",), ("ci-template",), ("check",), ("doctor",)} <= used
    flags = {a for _, argv in documented() for a in argv if a.startswith("--")}
    assert {"--grading", "--junit", "--classroom", "--jobs", "--fresh", "--out"} <= flags


@pytest.mark.parametrize(("where", "argv"), documented(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_documented_command_parses(where: str, argv: list[str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
    try:
        clicheck.parse(argv)
    except Exception as err:
        pytest.fail(f"{where}: lab {' '.join(argv)}: {err}")


def test_the_extractor_finds_indented_and_console_commands() -> None:
    page = "1. step\n\n    ```bash\n    ./lab grade ./submissions --lab 01 --jobs 2\n" \
           "    git commit -m x\n    ```\n\n```console\n$ lab doctor\nok\n```\n"
    found = commands(page, "p.md")
    assert found == [("p.md:4", ["grade", "./submissions", "--lab", "01", "--jobs", "2"]),
                     ("p.md:9", ["doctor"])]


def test_a_wrong_flag_fails_the_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "submissions").mkdir()
    clicheck.parse(["grade", "./submissions", "--lab", "01"])
    with pytest.raises(Exception, match="--job"):
        clicheck.parse(["grade", "./submissions", "--lab", "01", "--job", "2"])
    with pytest.raises(Exception, match="no such command"):
        clicheck.parse(["grades", "./submissions"])
