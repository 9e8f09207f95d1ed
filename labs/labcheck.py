"""Cross-checks of a lab definition: what its shape alone cannot tell.

Pydantic (in :mod:`labs.catalogue`) checks types, allowed values and unknown fields; this
module checks a parsed :class:`~labs.catalogue.Lab` against the disk: the folder name, the
files and directories it names (inside the lab folder, no symlink escapes), the test
functions in ``checks/`` (read with ``ast``, never imported) and the namespaces its setup
manifests create. Every problem carries the file, the line and the field path.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from labs import yamlpos
from labs.yamlpos import Problem, YamlPath

if TYPE_CHECKING:
    from labs.catalogue import Lab

__all__ = ["FOLDER_RE", "cross_check"]

#: A lab folder is ``NN-slug`` (``NN`` two digits and an optional letter).
FOLDER_RE = re.compile(r"^(?P<id>\d{2}[a-z]?)-(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)$")


def cross_check(lab: Lab, file: Path, tree: Any) -> Iterator[Problem]:
    """Every problem of ``lab`` (loaded from ``file``, parsed as ``tree``) beyond its shape."""

    def at(path: YamlPath, message: str) -> Problem:
        return Problem(file, yamlpos.line_of(tree, path, nearest=True),
                       yamlpos.format_path(path), message)

    match = FOLDER_RE.fullmatch(lab.folder.name)
    if match is None:
        yield Problem(file, None, "", f"the lab folder {lab.folder.name!r} should be named "
                      f"'{lab.id}-{lab.slug}' (NN-slug)")
    else:
        for field in ("id", "slug"):
            if getattr(lab, field) != match[field]:
                yield at((field,), f"expected {match[field]!r} (the folder is named "
                         f"{lab.folder.name!r}), got {getattr(lab, field)!r}")
    if not lab.chapter.endswith(".md"):
        yield at(("chapter",), f"expected a Markdown page (.md), got {lab.chapter!r}")
    elif lab.chapter_path is not None and not lab.chapter_path.is_file():
        yield at(("chapter",), f"no such docs page: {lab.chapter_path}")
    for path, message in _duplicates(lab):
        yield at(path, message)
    for ti, task in enumerate(lab.tasks):
        if not task.graded_checks(False):
            yield at(("tasks", ti, "checks"), "every check of this task is hidden, so "
                     "`lab check` would grade none of it: make at least one check visible")

    ok = True
    for path, rel, want_dir in _path_fields(lab):
        if (why := _check_inside(lab.folder, rel, want_dir)) is not None:
            ok = False
            yield at(path, why)
    if ok:
        yield from _check_functions(lab, at)
        yield from _check_namespaces(lab, at)


def _duplicates(lab: Lab) -> Iterator[tuple[YamlPath, str]]:
    lists: list[tuple[YamlPath, list[str]]] = [
        (("namespaces",), lab.namespaces), (("setup",), lab.setup),
        (("cluster", "cni"), lab.cluster.cni), (("cluster", "needs"), lab.cluster.needs),
        (("tasks",), [t.id for t in lab.tasks]),
    ]
    for prefix, values in lists:
        for i, value in enumerate(values):
            if value in values[:i]:
                where = prefix + ((i, "id") if prefix == ("tasks",) else (i,))
                yield where, f"{value!r} is listed twice"
    graded_by: dict[str, str] = {}
    for ti, task in enumerate(lab.tasks):
        for ci, check in enumerate(task.check_names):
            if check in graded_by:
                yield ("tasks", ti, "checks", ci), (
                    f"{check!r} already grades task {graded_by[check]!r}; a check grades one task")
            graded_by.setdefault(check, task.id)


def _path_fields(lab: Lab) -> Iterator[tuple[YamlPath, str, bool | None]]:
    for i, entry in enumerate(lab.setup):
        yield ("setup", i), entry, None
    for field in ("starter", "solution", "checks"):
        yield (field,), getattr(lab, field), True


def _check_inside(folder: Path, rel: str, want_dir: bool | None) -> str | None:
    """Why ``folder/rel`` is not a usable path inside the lab folder, or None if it is."""
    target = folder / rel
    if not target.resolve().is_relative_to(folder.resolve()):
        return f"{rel!r} leads outside the lab folder (through a symlink)"
    if not target.exists():
        what = "directory" if want_dir else "file or directory"
        return f"no such {what} {rel!r} in the lab folder"
    if want_dir and not target.is_dir():
        return f"expected a directory, but {rel!r} is a file"
    return None


@dataclass(frozen=True)
class CheckDef:
    """A test function in a lab's ``checks/``, as read with ``ast`` (never imported)."""

    function: str
    file: Path
    line: int
    title: str  # what learners see: the docstring's first line, else the name made readable


def _title(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The grader's rule for a check's name (grader.report.check_name), from the source."""
    doc = (ast.get_docstring(node) or "").strip()
    if doc:
        return doc.splitlines()[0].strip()
    return node.name.removeprefix("test_").replace("_", " ").strip() or node.name


def read_checks(checks_dir: Path) -> tuple[dict[str, CheckDef], list[Problem]]:
    """The top-level test functions of ``checks_dir`` (first definition wins), and the
    problems found on the way: invalid Python, a name defined in two files."""
    defined: dict[str, CheckDef] = {}
    problems: list[Problem] = []
    for source in sorted(checks_dir.rglob("*.py")) if checks_dir.is_dir() else []:
        if not (source.name.startswith("test_") or source.name.endswith("_test.py")):
            continue
        try:
            module = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        except (SyntaxError, UnicodeDecodeError, OSError) as err:
            line = err.lineno if isinstance(err, SyntaxError) else None
            why = err.msg if isinstance(err, SyntaxError) else str(err)
            problems.append(Problem(source, line, "", f"invalid Python: {why}"))
            continue
        for node in module.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                node.name.startswith("test")
            ):
                if node.name in defined:
                    other = defined[node.name].file.relative_to(checks_dir.parent)
                    problems.append(Problem(
                        source, node.lineno, "", f"test function {node.name!r} is also "
                        f"defined in {other}; tasks name checks, so names must be unique"))
                    continue
                defined[node.name] = CheckDef(node.name, source, node.lineno, _title(node))
    return defined, problems


def _check_functions(lab: Lab, at: Callable[[YamlPath, str], Problem]) -> Iterator[Problem]:
    """Every listed check exists as a top-level test function, and every test is listed."""
    defs, problems = read_checks(lab.checks_dir)
    yield from problems
    defined = {name: d.file for name, d in defs.items()}
    listed = {c for task in lab.tasks for c in task.check_names}
    found = ", ".join(sorted(defined)) or "none"
    where = lab.checks.rstrip("/") + "/"
    for ti, task in enumerate(lab.tasks):
        for ci, check in enumerate(task.check_names):
            if check not in defined:
                yield at(("tasks", ti, "checks", ci),
                         f"no test function {check!r} in {where} (found: {found})")
    for name, source in defined.items():
        if name not in listed:
            yield at(("tasks",), f"test function {name!r} in {source.relative_to(lab.folder)} "
                     "is not listed by any task, so it would never count")


def _check_namespaces(lab: Lab, at: Callable[[YamlPath, str], Problem]) -> Iterator[Problem]:
    """Every namespace of the lab is created by a Namespace document in the setup files."""
    created: set[str] = set()
    for source in lab.setup_files():
        try:
            docs = list(yaml.safe_load_all(source.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            mark = getattr(err, "problem_mark", None)
            yield Problem(source, mark.line + 1 if mark else None, "", f"invalid YAML: {err}")
            continue
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Namespace":
                name = (doc.get("metadata") or {}).get("name")
                if isinstance(name, str):
                    created.add(name)
    for i, namespace in enumerate(lab.namespaces):
        if namespace not in created:
            yield at(("namespaces", i), f"namespace {namespace!r} is not created by any setup "
                     "manifest (add a Namespace document to a setup file)")
