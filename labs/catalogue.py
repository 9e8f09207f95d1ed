"""The lab catalogue: every ``labs/NN-slug/lab.yaml``, validated when it is loaded.

A lab author's mistake should read like a compiler error, so every problem names the file,
the line, the field path and what was expected::

    labs/01-pod-networking/lab.yaml:14: tasks[0].checks[1]: no test function 'test_foo'
    in checks/ (found: test_a, test_b)

Validation runs in two passes. Pydantic checks the shape (types, allowed values, unknown
fields); then :func:`labs.labcheck.cross_check` checks what pydantic cannot see: the folder
name, files and directories on disk, test functions in ``checks/`` (read with ``ast``, never
imported), namespaces created by ``setup/``. All problems of a pass are reported at once.

Errors::

    LabsError                anything this package raises on purpose
    ├── LabDefinitionError   a lab.yaml (or a file it names) is wrong; ``.problems``
    └── UnknownLab           no lab matches the id; lists the ones that exist
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from clusters.addons import ADDONS as ADDON_CHOICES
from clusters.engine import ClusterProfile
from labs import yamlpos
from labs.labcheck import FOLDER_RE, CheckDef, cross_check, read_checks
from labs.yamlpos import Problem

CNIS = ("kindnet", "flannel", "calico", "cilium")
ADDONS: tuple[str, ...] = tuple(ADDON_CHOICES)
NEEDS = ("network_policy", "services", "dns", "ingress", "load_balancer", "gateway", "istio")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


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


class CheckRef(_Strict):
    """One check of a task: a test function in ``checks/``, its points, and whether it is hidden.

    In lab.yaml a check is its function name (1 point, visible) or a mapping::

        - test_client_reaches_server
        - {name: test_server_sees_client_pod_ip, points: 2}
        - {name: test_new_pods_follow_the_policies, points: 2, hidden: true}

    A hidden check runs only when grading (``lab grade``, ``lab check --grading``): it
    catches work that fits the visible checks but not the task.
    """

    name: CheckName
    points: int = Field(default=1, ge=0)
    hidden: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: object) -> object:
        return {"name": data} if isinstance(data, str) else data


class Task(_Strict):
    """One graded step of a lab. Each check earns its own points, so a task half done
    earns the points of the checks that pass (partial credit)."""

    id: Slug
    title: Text
    description: Text
    checks: list[CheckRef] = Field(min_length=1)
    hints: list[Text] = Field(default_factory=list)

    # Not a field any more: accepted only to say where points go now (at its own line).
    points: object = Field(default=None, exclude=True)

    @field_validator("points", mode="before")
    @classmethod
    def _no_task_points(cls, value: object) -> object:
        if value is not None:
            raise ValueError(
                "points belong to checks, not tasks: write each check as "
                "{name: test_..., points: N} (a bare name is worth 1 point)")
        return value

    @property
    def check_names(self) -> list[str]:
        """Every check's function name, hidden ones included."""
        return [c.name for c in self.checks]

    def graded_checks(self, grading: bool) -> list[CheckRef]:
        """The checks a run uses: the visible ones, plus the hidden ones when grading."""
        return [c for c in self.checks if grading or not c.hidden]

    @property
    def worth(self) -> int:
        """The task's points when its visible checks all pass."""
        return sum(c.points for c in self.graded_checks(False))


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
    _check_defs: dict[str, CheckDef] | None = PrivateAttr(default=None)

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
        """Task id → the test functions that grade it (hidden ones included)."""
        return {task.id: task.check_names for task in self.tasks}

    def check_names(self, grading: bool = False) -> list[str]:
        """The test functions a run uses, in task order: the visible ones, plus the hidden
        ones when ``grading``."""
        return [c.name for t in self.tasks for c in t.graded_checks(grading)]

    @property
    def hidden_checks(self) -> list[str]:
        """The test functions that only run when grading."""
        return [c.name for t in self.tasks for c in t.checks if c.hidden]

    def check_defs(self) -> dict[str, CheckDef]:
        """Function name → where it is defined and the name learners see (read once)."""
        if self._check_defs is None:
            self._check_defs = read_checks(self.checks_dir)[0]
        return self._check_defs

    def check_ref(self, function: str) -> CheckRef | None:
        return next((c for t in self.tasks for c in t.checks if c.name == function), None)

    def total_points(self, grading: bool = False) -> int:
        """The most a run can earn: visible checks, plus hidden ones when ``grading``."""
        return sum(c.points for t in self.tasks for c in t.graded_checks(grading))

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def task_for_check(self, name: str) -> Task | None:
        """The task a check grades. Accepts pytest node ids: ``checks/test_x.py::test_a[p]``."""
        function = name.rsplit("::", 1)[-1].split("[", 1)[0]
        return next((t for t in self.tasks if function in t.check_names), None)

    @property
    def default_cni(self) -> str:
        return self.cluster.cni[0]

    def profile(self, cni: str | None = None, backend: str = "") -> ClusterProfile:
        """The cluster profile for this lab with ``cni`` (default: the lab's first CNI) and
        ``backend`` (default: the CNI's own default, resolved by the profile)."""
        chosen = cni or self.default_cni
        if chosen not in self.cluster.cni:
            raise LabsError(
                f"lab {self.id} supports CNI {', '.join(self.cluster.cni)}, not {chosen!r}"
            )
        return ClusterProfile(
            workers=self.cluster.workers, cni=chosen, addons=tuple(self.cluster.addons),
            backend=backend,
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
    problems = list(cross_check(lab, file, tree))
    if problems:
        raise LabDefinitionError(problems)
    return lab


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
