"""Submissions for ``lab grade``: found one folder per learner, refused before any cluster work
when a file is unsafe, does not parse, or holds objects outside the lab's namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labs.catalogue import Lab, default_catalogue
from labs.grading.submissions import Submission, SubmissionWorkspace, find, validate

LAB: Lab = default_catalogue().get("01")
SOLUTION = (LAB.solution_dir / "pods.yaml").read_text()
STARTER = (LAB.starter_dir / "pods.yaml").read_text()

POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: web{ns}}}
spec:
  containers: [{{name: c, image: nginx}}]
"""


def learner(root: Path, name: str, files: dict[str, str]) -> Submission:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return Submission(name, folder)


def checked(root: Path, name: str, files: dict[str, str]) -> Submission:
    return validate(learner(root, name, files), LAB)


def test_find_lists_learner_folders_sorted_skips_dot_folders_and_reports_files(
        tmp_path: Path) -> None:
    for name in ("zoe", "alice", ".git", "Bob"):
        (tmp_path / name).mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    found = find(tmp_path)
    assert [s.learner for s in found.submissions] == ["Bob", "alice", "zoe"]
    assert [i.split(":")[0] for i in found.ignored] == ["gone", "notes.txt"]
    assert "broken symlink" in found.ignored[0] and "not a folder" in found.ignored[1]


def test_flat_and_nested_layouts_are_both_valid(tmp_path: Path) -> None:
    flat = checked(tmp_path, "alice", {"pods.yaml": SOLUTION})
    nested = checked(tmp_path, "bob", {f"{LAB.name}/pods.yaml": SOLUTION})
    assert flat.valid and nested.valid, (flat.problems, nested.problems)
    assert flat.documents == nested.documents == 2
    assert SubmissionWorkspace(flat.folder).lab_dir(LAB) == flat.folder
    assert SubmissionWorkspace(nested.folder).lab_dir(LAB) == nested.folder / LAB.name
    assert [f.name for f in nested.files] == ["pods.yaml"]


def test_manifests_beside_the_lab_folder_are_ambiguous(tmp_path: Path) -> None:
    sub = checked(tmp_path, "carol", {f"{LAB.name}/pods.yaml": SOLUTION, "old.yaml": STARTER})
    assert not sub.valid
    assert "both in the folder (old.yaml)" in sub.reason


def test_empty_folder_has_no_manifests(tmp_path: Path) -> None:
    sub = checked(tmp_path, "dave", {"README.md": "hello"})
    assert sub.problems == ["dave: no manifests (*.yaml, *.yml, *.json) in dave/ or "
                            f"dave/{LAB.name}/"]


def test_yaml_error_names_file_and_line_relative_to_the_submissions(tmp_path: Path) -> None:
    sub = checked(tmp_path, "erin", {"pods.yaml": SOLUTION, "bad.yaml": "a: [\n  b\nc: d\n"})
    assert not sub.valid
    assert sub.reason.startswith("erin/bad.yaml: YAML syntax error at line 3")
    assert str(tmp_path) not in sub.reason


def test_symlink_out_of_the_folder_is_refused_even_into_another_learner(tmp_path: Path) -> None:
    checked(tmp_path, "alice", {"pods.yaml": SOLUTION})
    sub = learner(tmp_path, "mallory", {})
    (sub.folder / "pods.yaml").symlink_to(tmp_path / "alice" / "pods.yaml")
    validate(sub, LAB)
    assert not sub.valid and "leads outside" in sub.reason
    assert sub.reason.startswith("mallory/pods.yaml")


def test_nested_lab_folder_symlinked_elsewhere_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pods.yaml").write_text(SOLUTION)
    sub = learner(tmp_path / "subs", "oscar", {})
    (sub.folder / LAB.name).symlink_to(elsewhere)
    validate(sub, LAB)
    assert not sub.valid and "leads outside" in sub.reason


def test_broken_symlink_and_huge_file_are_refused(tmp_path: Path) -> None:
    broken = learner(tmp_path, "pat", {})
    os.symlink("missing.yaml", broken.folder / "pods.yaml")
    assert "broken symlink" in validate(broken, LAB).reason
    huge = checked(tmp_path, "quinn", {"pods.yaml": "#" * (1024 * 1024 + 1)})
    assert "files over 1 MiB are refused" in huge.reason


@pytest.mark.parametrize(("text", "expected"), [
    (POD.format(ns=""), 'no metadata.namespace, so it would land in "default"; set namespace: lab01'),
    (POD.format(ns=", namespace: default"), "namespace 'default' is not the lab's; set namespace: lab01"),
    ("apiVersion: v1\nkind: Namespace\nmetadata: {name: lab01}\n",
     "(document 1, Namespace lab01): wrong kind Namespace: it is cluster-scoped"),
    ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n",
     "(document 1, ClusterRole x): wrong kind ClusterRole: it is cluster-scoped"),
    ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x, namespace: lab01}\n",
     "(document 1, Ingress x): wrong kind 'Ingress': the cluster does not know it; expected one of"),
    ("apiVersion: v1\nkind: Node\nmetadata: {name: n}\n", "wrong kind Node: it is cluster-scoped"),
    ("metadata: {name: x, namespace: lab01}\n", "(document 1): no kind; expected one of"),
    (POD.format(ns=", namespace: lab01").replace("image: nginx", "image: nginx, commandd: [x]"),
     "(document 1, Pod web): field spec.containers[0].commandd: unknown field"),
])
def test_documents_must_be_namespaced_known_kinds_in_the_lab_namespaces(
        tmp_path: Path, text: str, expected: str) -> None:
    sub = checked(tmp_path, "rita", {"a.yaml": SOLUTION, "b.yaml": text})
    assert not sub.valid
    assert sub.reason.startswith("rita/b.yaml (document 1"), sub.reason
    assert expected in sub.reason, sub.reason


def test_every_problem_is_listed_with_its_document(tmp_path: Path) -> None:
    wrong = SOLUTION.replace("namespace: lab01", "namespace: default")
    sub = checked(tmp_path, "sam", {"pods.yaml": wrong})
    assert [p.split(":")[0] for p in sub.problems] == [
        "sam/pods.yaml (document 1, Pod server)", "sam/pods.yaml (document 2, Pod client)"]
    assert sub.reason.endswith("(and 1 more problem(s))")


def test_a_list_is_expanded_and_json_is_read(tmp_path: Path) -> None:
    listed = ('{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": '
              '"ConfigMap", "metadata": {"name": "a", "namespace": "lab01"}}, {"apiVersion": '
              '"v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "kube-system"}}]}')
    sub = checked(tmp_path, "tess", {"all.json": listed})
    assert sub.documents == 2
    assert sub.problems == ["tess/all.json (document 2, ConfigMap b): namespace 'kube-system' "
                            "is not the lab's; set namespace: lab01"]
