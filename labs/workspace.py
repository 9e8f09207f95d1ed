"""The learner's files: one folder per lab under ``$LAB_WORKSPACE`` (default ``~/kube-netlab``).

The workspace holds someone's work, so nothing here deletes or silently overwrites a file:

- :meth:`Workspace.init_from_starter` only adds missing files; existing ones are *kept*.
- :meth:`Workspace.install_solution` copies every file it replaces to
  ``<lab dir>/.backup/<UTC timestamp>/`` first.
- :meth:`Workspace.reset` *moves* the current files into such a backup folder, then copies
  the starter files.

Every file is written to a temporary name and renamed into place, so an interrupted copy
never leaves half a manifest. Symlinks that lead outside the workspace and files over
1 MiB are refused (:class:`WorkspaceError`): the grader applies what it finds here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labs.catalogue import MANIFEST_SUFFIXES, Lab, LabsError

MAX_FILE_BYTES = 1024 * 1024
BACKUP_DIR = ".backup"


class WorkspaceError(LabsError):
    """A workspace file cannot be used or written safely."""


@dataclass
class CopyReport:
    """What an operation did; paths are relative to :attr:`lab_dir`."""

    lab_dir: Path
    copied: list[Path] = field(default_factory=list)  # written from starter/ or solution/
    kept: list[Path] = field(default_factory=list)  # the learner's file was left as it is
    unchanged: list[Path] = field(default_factory=list)  # already identical, nothing to do
    backed_up: list[Path] = field(default_factory=list)  # saved into backup_dir first
    backup_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab_dir": str(self.lab_dir),
            "copied": [p.as_posix() for p in self.copied],
            "kept": [p.as_posix() for p in self.kept],
            "unchanged": [p.as_posix() for p in self.unchanged],
            "backed_up": [p.as_posix() for p in self.backed_up],
            "backup_dir": str(self.backup_dir) if self.backup_dir else None,
        }


def default_root() -> Path:
    """``$LAB_WORKSPACE``, else ``~/kube-netlab``."""
    return Path(os.environ.get("LAB_WORKSPACE") or Path.home() / "kube-netlab").expanduser()


class Workspace:
    """The learner's folders; created on demand by the operations that write."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (Path(root).expanduser() if root else default_root()).absolute()

    def lab_dir(self, lab: Lab) -> Path:
        """``<root>/<NN-slug>``; it may not exist yet."""
        return self.root / lab.name

    def init_from_starter(self, lab: Lab) -> CopyReport:
        """Copy the starter files that are missing; never touch an existing learner file."""
        lab_dir = self._make_lab_dir(lab)
        report = CopyReport(lab_dir)
        for rel, source in self._plan(lab.starter_dir, lab):
            dest = lab_dir / rel
            if dest.exists() or dest.is_symlink() or _blocked(lab_dir, rel):
                report.kept.append(rel)
            else:
                _write_copy(source, dest)
                report.copied.append(rel)
        return report

    def install_solution(self, lab: Lab) -> CopyReport:
        """Copy the solution files; each file this replaces is backed up first."""
        lab_dir = self._make_lab_dir(lab)
        report = CopyReport(lab_dir)
        for rel, source in self._plan(lab.solution_dir, lab):
            dest = lab_dir / rel
            if _same_file_content(source, dest):
                report.unchanged.append(rel)
                continue
            for blocker in _blockers(lab_dir, rel):  # a file where we need a directory
                self._back_up(report, blocker, move=True)
            if dest.exists() or dest.is_symlink():
                self._back_up(report, rel, move=dest.is_dir() and not dest.is_symlink())
            _write_copy(source, dest)
            report.copied.append(rel)
        return report

    def reset(self, lab: Lab) -> CopyReport:
        """Back to the starter state: move every current file into a backup, then copy."""
        lab_dir = self._make_lab_dir(lab)
        entries = sorted(p for p in lab_dir.iterdir() if p.name != BACKUP_DIR)
        moved = [rel for entry in entries for rel in _files_in(entry)]
        backup_dir = self._new_backup_dir(lab_dir) if entries else None
        for entry in entries:
            assert backup_dir is not None
            os.replace(entry, backup_dir / entry.name)
        report = self.init_from_starter(lab)
        report.backed_up, report.backup_dir = moved, backup_dir
        return report

    def manifests(self, lab: Lab) -> list[Path]:
        """The learner's manifests (*.yaml, *.yml, *.json), sorted, without dotfiles/backups.

        Symlinked directories are not descended into; a symlink leading outside the
        workspace, a broken one, or a file over 1 MiB raises :class:`WorkspaceError`.
        """
        lab_dir = self.lab_dir(lab)
        if not lab_dir.is_dir():
            return []
        found = []
        for path in _walk(lab_dir):
            self._check_inside(path)
            if path.suffix not in MANIFEST_SUFFIXES or path.is_dir():
                continue
            if not path.exists():
                raise WorkspaceError(f"{path}: broken symlink (it points to {os.readlink(path)})")
            _check_size(path)
            found.append(path)
        return sorted(found, key=lambda p: p.relative_to(lab_dir).as_posix())

    # ---- helpers -------------------------------------------------------------------------

    def _make_lab_dir(self, lab: Lab) -> Path:
        lab_dir = self.lab_dir(lab)
        self._check_inside(lab_dir)
        if lab_dir.exists() and not lab_dir.is_dir():
            raise WorkspaceError(f"{lab_dir} is a file; the lab's workspace must be a directory")
        lab_dir.mkdir(parents=True, exist_ok=True)
        return lab_dir

    def _plan(self, source_dir: Path, lab: Lab) -> list[tuple[Path, Path]]:
        """The files to copy; every source and destination is checked before anything is written."""
        files = list(_source_files(source_dir, lab.folder))
        for rel, _source in files:
            self._check_inside(self.lab_dir(lab) / rel)
        return files

    def _check_inside(self, path: Path) -> None:
        """Refuse a path that resolves (through symlinks) to somewhere outside the workspace."""
        if not path.resolve().is_relative_to(self.root.resolve()):
            target = path.resolve()
            raise WorkspaceError(
                f"{path} leads outside the workspace {self.root} (to {target}); "
                "replace the symlink with a regular file"
            )

    def _back_up(self, report: CopyReport, rel: Path, *, move: bool) -> None:
        if report.backup_dir is None:
            report.backup_dir = self._new_backup_dir(report.lab_dir)
        source, saved = report.lab_dir / rel, report.backup_dir / rel
        saved.parent.mkdir(parents=True, exist_ok=True)
        if move:
            files = [rel.parent / name for name in _files_in(source)]
            os.replace(source, saved)
            report.backed_up.extend(files)
        else:
            shutil.copy2(source, saved, follow_symlinks=False)
            report.backed_up.append(rel)

    @staticmethod
    def _new_backup_dir(lab_dir: Path) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for n in range(1, 1000):
            candidate = lab_dir / BACKUP_DIR / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                candidate.mkdir(parents=True)
                return candidate
            except FileExistsError:
                continue
        raise WorkspaceError(f"cannot create a backup folder in {lab_dir / BACKUP_DIR}")


def _source_files(directory: Path, lab_folder: Path) -> Iterator[tuple[Path, Path]]:
    """(relative path, file) for each file of a lab's starter/solution dir, sorted."""
    for path in sorted(_walk(directory)):
        if path.is_dir():
            continue
        if not path.resolve().is_relative_to(lab_folder.resolve()):
            raise WorkspaceError(f"{path} leads outside the lab folder {lab_folder}")
        _check_size(path)
        yield path.relative_to(directory), path


def _walk(directory: Path) -> Iterator[Path]:
    """Every entry below ``directory`` except dotfiles, dot-dirs and ``__pycache__``."""
    for current, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        base = Path(current)
        for name in sorted(files) + [d for d in dirs if (base / d).is_symlink()]:
            if not name.startswith("."):
                yield base / name


def _files_in(entry: Path) -> list[Path]:
    """Files and symlinks at or under ``entry``, relative to ``entry``'s parent, sorted."""
    if entry.is_symlink() or not entry.is_dir():
        return [Path(entry.name)]
    found: list[Path] = []
    for current, dirs, files in os.walk(entry):
        links = [d for d in dirs if (Path(current) / d).is_symlink()]
        found.extend((Path(current) / name).relative_to(entry.parent) for name in files + links)
    return sorted(found)


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise WorkspaceError(f"{path} is {size} bytes; files over 1 MiB are refused")


def _blockers(lab_dir: Path, rel: Path) -> list[Path]:
    """Parents of ``rel`` that exist as something other than a directory."""
    parents = list(reversed(rel.parents))[1:]  # skip Path(".")
    return [p for p in parents if (lab_dir / p).is_symlink() or (lab_dir / p).is_file()]


def _blocked(lab_dir: Path, rel: Path) -> bool:
    return bool(_blockers(lab_dir, rel))


def _same_file_content(source: Path, dest: Path) -> bool:
    if dest.is_symlink() or not dest.is_file():
        return False
    return source.stat().st_size == dest.stat().st_size and source.read_bytes() == dest.read_bytes()


def _write_copy(source: Path, dest: Path) -> None:
    """Copy through a temporary file and rename into place (replacing a symlink, not its target)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        shutil.copymode(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
