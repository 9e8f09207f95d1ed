"""The lab catalogue: every ``labs/NN-slug/lab.yaml``, validated when it is loaded.

A lab author's mistake should read like a compiler error, so every problem names the file,
the line, the field path and what was expected::

    labs/01-pod-networking/lab.yaml:14: tasks[0].checks[1]: no test function 'test_foo'
    in checks/ (found: test_a, test_b)

Validation runs in two passes. Pydantic checks the shape (types, allowed values, unknown
fields); then :func:`_cross_check` checks what pydantic cannot see: the folder name, files
and directories on disk, test functions in ``checks/`` (read with ``ast``, never
imported), namespaces created by ``setup/``. All problems of a pass are reported at once.

Errors::

    LabsError                anything this package raises on purpose
    ├── LabDefinitionError   a lab.yaml (or a file it names) is wrong; ``.problems``
    └── UnknownLab           no lab matches the id; lists the ones that exist
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from clusters.engine import ClusterProfile
from labs import yamlpos
from labs.yamlpos import Problem, YamlPath

CNIS = ("kindnet", "flannel", "calico", "cilium")
ADDONS: tuple[str, ...] = ()  # to come: ingress, gateway, metallb, istio
NEEDS = ("network_policy", "services", "dns", "ingress", "load_balancer")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
FOLDER_RE = re.compile(r"^(?P<id>\d{2}[a-z]?)-(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)$")


class LabsError(Exception):
    """Base class of every error the ``labs`` package raises on purpose."""


class LabDefinitionError(LabsError):
    """A lab definition is wrong. ``str()`` is one line per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownLab(LabsError):
    """No lab matches what the learner typed; ``available`` is ``[(id, title), ...]``."""

    def __init__(self, wanted: str, available: Sequence[tuple[str, str]]) -> None:
        self.wanted = wanted
        self.available = list(available)
        head = f"no lab {wanted!r}" if wanted.strip() else "no lab given (and none started)"
        listing = "\n".join(f"  {lab_id:<4}{title}" for lab_id, title in self.available)
        super().__init__(f"{head}; available labs:\n{listing}" if listing
                         else f"{head}; the catalogue has no labs")


# ---- field types: each validator says what it expected ---------------------------------


def _pattern(regex: str, expected: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"expected {expected}, got {value!r}")
        return value

    return AfterValidator(check)


def _one_of(allowed: Sequence[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            known = ", ".join(allowed) if allowed else "none yet"
            raise ValueError(f"unknown {what} {value!r} (supported: {known})")
        return value

    return AfterValidator(check)


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _relative(value: str) -> str:
    parts = Path(value).parts
    if not value.strip() or os.path.isabs(value) or ".." in parts:
        raise ValueError(f"expected a relative path inside the lab folder (no '..'), got {value!r}")
    return value


LabId = Annotated[str, _pattern(r"\d{2}[a-z]?", 'two digits and an optional letter, e.g. "01b"')]
Slug = Annotated[str, _pattern(r"[a-z0-9]+(-[a-z0-9]+)*", "lowercase words joined by '-'")]
Text = Annotated[str, AfterValidator(_text)]
RelPath = Annotated[str, AfterValidator(_relative)]
Namespace = Annotated[
    str, _pattern(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a DNS label (a-z, 0-9, '-')")
]
CheckName = Annotated[
    str, _pattern(r"test[A-Za-z0-9_]*", "the name of a test function in checks/ (test_...)")
]
Cni = Annotated[str, _one_of(CNIS, "CNI")]
Addon = Annotated[str, _one_of(ADDONS, "add-on")]
Need = Annotated[str, _one_of(NEEDS, "capability")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ClusterSpec(_Strict):
    """The cluster a lab needs. The first CNI is the default."""

    workers: int = Field(default=2, ge=1, le=5)
    cni: list[Cni] = Field(default_factory=lambda: ["kindnet"], min_length=1)
    addons: list[Addon] = Field(default_factory=list)
    needs: list[Need] = Field(default_factory=list)


class Task(_Strict):
    """One graded step of a lab; its points count when all its checks pass."""

    id: Slug
    title: Text
    description: Text
    checks: list[CheckName] = Field(min_length=1)
    hints: list[Text] = Field(default_factory=list)
    points: int = Field(default=1, ge=0)


class Lab(_Strict):
    """A validated lab. Paths are relative to :attr:`folder`; use the ``*_dir`` properties."""

    id: LabId
    slug: Slug
    title: Text
    chapter: RelPath
    summary: Text
    objectives: list[Text] = Field(min_length=1)
    cluster: ClusterSpec
    namespaces: list[Namespace] = Field(min_length=1)
    setup: list[RelPath] = Field(min_length=1)
    starter: RelPath
    solution: RelPath
    checks: RelPath
    tasks: list[Task] = Field(min_length=1)

    _folder: Path = PrivateAttr(default_factory=Path)
    _docs_dir: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def name(self) -> str:
        """The folder name, ``01-pod-networking``; also the workspace folder's name."""
        return f"{self.id}-{self.slug}"

    def setup_paths(self) -> list[Path]:
        """The setup entries (files or directories) in the order ``lab start`` applies them."""
        return [self._folder / entry for entry in self.setup]

    def setup_files(self) -> list[Path]:
        """The setup manifests in apply order: each directory expanded, sorted by name."""
        return [f for entry in self.setup_paths() for f in manifest_files(entry)]

    @property
    def starter_dir(self) -> Path:
        return self._folder / self.starter

    @property
    def solution_dir(self) -> Path:
        return self._folder / self.solution

    @property
    def checks_dir(self) -> Path:
        return self._folder / self.checks

    @property
    def chapter_path(self) -> Path | None:
        """The docs page, when the catalogue knows where the docs are."""
        return self._docs_dir / self.chapter if self._docs_dir else None

    @property
    def all_checks(self) -> dict[str, list[str]]:
        """Task id → the test functions that grade it."""
        return {task.id: list(task.checks) for task in self.tasks}

    @property
    def total_points(self) -> int:
        return sum(task.points for task in self.tasks)

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def task_for_check(self, name: str) -> Task | None:
        """The task a check grades. Accepts pytest node ids: ``checks/test_x.py::test_a[p]``."""
        function = name.rsplit("::", 1)[-1].split("[", 1)[0]
        return next((t for t in self.tasks if function in t.checks), None)

    @property
    def default_cni(self) -> str:
        return self.cluster.cni[0]

    def profile(self, cni: str | None = None) -> ClusterProfile:
        """The cluster profile for this lab with ``cni`` (default: the lab's first CNI)."""
        chosen = cni or self.default_cni
        if chosen not in self.cluster.cni:
            raise LabsError(
                f"lab {self.id} supports CNI {', '.join(self.cluster.cni)}, not {chosen!r}"
            )
        return ClusterProfile(
            workers=self.cluster.workers, cni=chosen, addons=tuple(self.cluster.addons)
        )


def manifest_files(entry: Path) -> list[Path]:
    """``entry`` itself if it is a file, else the manifests under it, sorted, no dotfiles."""
    if entry.is_file():
        return [entry]
    found = [
        p for p in entry.rglob("*")
        if p.suffix in MANIFEST_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(entry).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(entry).as_posix())


# ---- loading -----------------------------------------------------------------------------


def load_lab(folder: Path, docs_dir: Path | None = None) -> Lab:
    """Load and validate ``folder/lab.yaml``; raise :class:`LabDefinitionError` if anything is off.

    ``docs_dir`` (the MkDocs ``docs/`` folder) enables the check that ``chapter`` exists.
    """
    folder = Path(folder).absolute()
    file = folder / "lab.yaml"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabDefinitionError([Problem(file, None, "", "missing lab.yaml")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise LabDefinitionError([Problem(file, None, "", f"cannot read: {err}")]) from err
    try:
        tree, data = yamlpos.parse(text)
    except yaml.YAMLError as err:
        raise LabDefinitionError([yamlpos.yaml_error_problem(file, err)]) from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else yamlpos.describe(data)
        message = f"expected a mapping of fields (id, slug, title, ...), got {got}"
        raise LabDefinitionError([Problem(file, 1, "", message)])
    try:
        lab = Lab.model_validate(data)
    except ValidationError as err:
        raise LabDefinitionError(yamlpos.validation_problems(err, file, tree, Lab)) from None
    lab._folder = folder
    lab._docs_dir = Path(docs_dir).absolute() if docs_dir else None
    problems = list(_cross_check(lab, file, tree))
    if problems:
        raise LabDefinitionError(problems)
    return lab


# ---- cross-checks: what the shape alone cannot tell ----------------------------------


def _cross_check(lab: Lab, file: Path, tree: Any) -> Iterator[Problem]:
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
        for ci, check in enumerate(task.checks):
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


def _check_functions(lab: Lab, at: Callable[[YamlPath, str], Problem]) -> Iterator[Problem]:
    """Every listed check exists as a top-level test function, and every test is listed."""
    defined: dict[str, Path] = {}
    for source in sorted(lab.checks_dir.rglob("*.py")):
        if not (source.name.startswith("test_") or source.name.endswith("_test.py")):
            continue
        try:
            module = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        except SyntaxError as err:
            yield Problem(source, err.lineno, "", f"invalid Python: {err.msg}")
            continue
        for node in module.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                node.name.startswith("test")
            ):
                if node.name in defined:
                    other = defined[node.name].relative_to(lab.folder)
                    yield Problem(source, node.lineno, "", f"test function {node.name!r} is also "
                                  f"defined in {other}; tasks name checks, so names must be unique")
                defined.setdefault(node.name, source)
    listed = {c for task in lab.tasks for c in task.checks}
    found = ", ".join(sorted(defined)) or "none"
    where = lab.checks.rstrip("/") + "/"
    for ti, task in enumerate(lab.tasks):
        for ci, check in enumerate(task.checks):
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


# ---- the catalogue -----------------------------------------------------------------------


class Catalogue:
    """The labs found under ``root`` (folders named ``NN-slug`` holding a lab.yaml)."""

    def __init__(self, root: Path, docs_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.docs_dir = docs_dir
        self._loaded: dict[Path, Lab] = {}

    def folders(self) -> list[Path]:
        """Lab folders sorted by id; two folders with the same id or slug are an error."""
        found = sorted(
            (p for p in self.root.iterdir() if p.is_dir() and FOLDER_RE.fullmatch(p.name)),
            key=lambda p: p.name,
        ) if self.root.is_dir() else []
        seen: dict[str, Path] = {}
        problems = []
        for folder in found:
            match = FOLDER_RE.fullmatch(folder.name)
            assert match is not None
            for key in (match["id"], match["slug"]):
                if key in seen:
                    problems.append(Problem(folder / "lab.yaml", None, "",
                                            f"{key!r} is also used by {seen[key].name}"))
                seen.setdefault(key, folder)
        if problems:
            raise LabDefinitionError(problems)
        return found

    def load(self, folder: Path) -> Lab:
        if folder not in self._loaded:
            self._loaded[folder] = load_lab(folder, self.docs_dir)
        return self._loaded[folder]

    def labs(self) -> list[Lab]:
        """Every lab, sorted by id; the problems of all broken labs are raised together."""
        labs, problems = [], []
        for folder in self.folders():
            try:
                labs.append(self.load(folder))
            except LabDefinitionError as err:
                problems.extend(err.problems)
        if problems:
            raise LabDefinitionError(problems)
        return labs

    def get(self, wanted: str) -> Lab:
        """The lab named by ``01``, ``1``, ``01-pod-networking`` or ``pod-networking``."""
        key = Path(wanted.strip().lower().rstrip("/")).name
        if short := re.fullmatch(r"(\d{1,2})([a-z]?)", key):
            key = short[1].zfill(2) + short[2]
        folders = self.folders()
        for folder in folders:
            match = FOLDER_RE.fullmatch(folder.name)
            assert match is not None
            if key in (match["id"], match["slug"], folder.name):
                return self.load(folder)
        raise UnknownLab(wanted, [(f.name.split("-", 1)[0], self._title(f)) for f in folders])

    def _title(self, folder: Path) -> str:
        try:
            return self.load(folder).title
        except LabDefinitionError:
            return f"{folder.name} (its lab.yaml has errors)"


def default_catalogue() -> Catalogue:
    """The labs shipped in this package; chapters are checked when ``docs/`` is beside it."""
    root = Path(__file__).resolve().parent
    docs = root.parent / "docs"
    return Catalogue(root, docs if docs.is_dir() else None)
