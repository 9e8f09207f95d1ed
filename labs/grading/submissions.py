"""Learners' submissions for batch grading: finding them, and refusing the unsafe or wrong
ones before any cluster is touched.

A submissions folder holds one folder per learner (sorted by name; dot-folders ignored; a
plain file at the top is reported, never graded). A learner's manifests are either directly
in their folder or in a sub-folder named like the lab (``01-pod-networking/``), the layout
of a learner's own workspace.

Validation happens up front, for every learner, so that a broken submission costs no
cluster time and can never leave anything behind in a shared cluster: every file must
parse (a YAML error names the file and the line); every document must be a namespaced
object of a kind the cluster knows, schema-valid, with ``metadata.namespace`` set to one of
the lab's namespaces. That last rule is also what keeps learners apart: resetting the lab's
namespaces removes everything a learner applied, so the next learner graded in the same
cluster never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusters import ManifestError, manifests
from clusters.local import kinds, validation
from labs.catalogue import MANIFEST_SUFFIXES, Lab
from labs.workspace import Workspace, WorkspaceError

#: Most problems listed per learner; the rest are counted.
MAX_PROBLEMS = 20

#: Cluster-scoped kinds of real Kubernetes the local engine does not serve: named as such, so
#: a learner reads "cluster-scoped" rather than "unknown" for a ClusterRole.
CLUSTER_SCOPED = frozenset({
    "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
    "StorageClass", "IngressClass", "PriorityClass", "RuntimeClass", "CSIDriver",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
    "GatewayClass", "CertificateSigningRequest",
})


class SubmissionWorkspace(Workspace):
    """One learner's folder seen as a workspace: the manifests are in ``<folder>/<lab name>/``
    when that sub-folder exists, else directly in ``<folder>``.

    The folder is the workspace root, so :meth:`Workspace.manifests` refuses symlinks that
    lead outside it (into another learner's folder too), broken symlinks and huge files.
    """

    def lab_dir(self, lab: Lab) -> Path:
        nested = self.root / lab.name
        return nested if nested.is_dir() else self.root


@dataclass
class Submission:
    """One learner's folder; ``problems`` is filled by :func:`validate` (empty = gradable)."""

    learner: str
    folder: Path
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    documents: int = 0

    @property
    def workspace(self) -> SubmissionWorkspace:
        return SubmissionWorkspace(self.folder)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        """The problems as one line (the first, and how many more)."""
        if not self.problems:
            return ""
        more = len(self.problems) - 1
        return self.problems[0] + (f" (and {more} more problem(s))" if more else "")


@dataclass(frozen=True)
class Found:
    """What a submissions folder holds: the learners, and top-level entries not graded."""

    submissions: list[Submission]
    ignored: list[str]  # "notes.txt: not a folder (one folder per learner)"


def find(root: Path) -> Found:
    """The learners' folders under ``root``, sorted by name (dot-folders skipped)."""
    subs, ignored = [], []
    for entry in sorted(Path(root).iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            subs.append(Submission(entry.name, entry.absolute()))
        else:
            what = "a broken symlink" if entry.is_symlink() and not entry.exists() else "not a folder"
            ignored.append(f"{entry.name}: {what}; each learner's work goes in a folder of its own")
    return Found(subs, ignored)


def validate(sub: Submission, lab: Lab) -> Submission:
    """Check ``sub`` without a cluster; fills ``sub.files``, ``sub.documents`` and ``sub.problems``.

    Paths in the problems are relative to the submissions folder (``alice/pods.yaml``).
    """
    base = sub.folder.parent
    ws = sub.workspace
    lab_dir = ws.lab_dir(lab)
    problems: list[str] = []
    try:
        sub.files = ws.manifests(lab)
    except WorkspaceError as err:
        sub.problems = [relative(str(err), base)]
        return sub
    if lab_dir != sub.folder:
        stray = sorted(p.name for p in sub.folder.iterdir()
                       if p.suffix in MANIFEST_SUFFIXES and not p.name.startswith("."))
        if stray:
            problems.append(
                f"{sub.learner}: manifests both in the folder ({', '.join(stray)}) and in "
                f"{lab.name}/; keep them in one place")
    if not sub.files:
        sub.problems = [*problems, f"{sub.learner}: no manifests (*.yaml, *.yml, *.json) in "
                        f"{sub.learner}/ or {sub.learner}/{lab.name}/"]
        return sub
    for path in sub.files:
        try:
            loaded = manifests.read(str(path))
        except ManifestError as err:
            problems.append(relative(str(err), base))
            continue
        for one in loaded:
            rel = relative(one.source, base)
            sub.documents += len(one.docs)
            for index, doc in enumerate(one.docs):
                problems.extend(document_problems(doc, lab.namespaces, f"{rel} (document {index + 1}"))
    sub.problems = _capped(problems)
    return sub


def document_problems(doc: Mapping[str, Any], namespaces: Sequence[str], where: str) -> list[str]:
    """Why one document may not be applied for a lab whose namespaces are ``namespaces``.

    ``where`` is ``"file (document N"``; each problem closes it with the kind and name.
    """
    kind = doc.get("kind")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    name = meta.get("name")
    label = f"{where}, {kind} {name})" if name else f"{where}, {kind})"
    allowed = " or ".join(namespaces)
    namespaced = sorted(k.kind for k in kinds.KINDS if k.namespaced and k.appliable)
    if not isinstance(kind, str) or not kind:
        return [f"{where}): no kind; expected one of {', '.join(namespaced)}"]
    info = kinds.find_kind(kind)
    if kind in CLUSTER_SCOPED or (info is not None and not (info.namespaced and info.appliable)):
        return [f"{label}: wrong kind {kind}: it is cluster-scoped (not in a namespace); "
                f"submissions may only hold namespaced objects ({', '.join(namespaced)}) in "
                f"namespace {allowed}, which the lab's setup creates"]
    if info is None:
        return [f"{label}: wrong kind {kind!r}: the cluster does not know it; expected one of "
                f"{', '.join(namespaced)}"]
    found: list[str] = []
    namespace = meta.get("namespace")
    if not namespace:
        found.append(f"{label}: no metadata.namespace, so it would land in \"default\"; "
                     f"set namespace: {namespaces[0]}")
    elif namespace not in namespaces:
        found.append(f"{label}: namespace {namespace!r} is not the lab's; set namespace: {allowed}")
    _, schema = validation.check(doc)
    found += [f"{label}: field {path}: {message}" if path else f"{label}: {message}"
              for path, message in schema]
    return found


def relative(text: str, base: Path) -> str:
    """``text`` with the submissions folder's absolute path taken off its paths."""
    prefix = str(base.absolute()).rstrip("/") + "/"
    return text.replace(prefix, "")


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
