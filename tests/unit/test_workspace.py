"""The learner's workspace never overwrites or loses a file: everything replaced is backed up."""

from __future__ import annotations

from pathlib import Path

import pytest

from labs.catalogue import Lab, load_lab
from labs.workspace import MAX_FILE_BYTES, Workspace, WorkspaceError, default_root

LAB_YAML = """\
id: "03"
slug: ws
title: Workspace lab
chapter: chapters/03-ws.md
summary: Files.
objectives: [Edit files]
cluster: {workers: 1, cni: [kindnet]}
namespaces: [lab03]
setup: [setup/]
starter: starter/
solution: solution/
checks: checks/
tasks:
  - id: only
    title: Only task
    description: Edit.
    checks: [test_only]
"""

STARTER = {"app.yaml": "kind: Pod  # starter\n", "net/policy.yaml": "kind: NetworkPolicy\n"}
SOLUTION = {"app.yaml": "kind: Pod  # solved\n", "net/policy.yaml": "kind: NetworkPolicy\n",
            "svc.yaml": "kind: Service\n"}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def read_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    folder = tmp_path / "content" / "03-ws"
    write_tree(folder, {"lab.yaml": LAB_YAML, "checks/test_ws.py": "def test_only():\n    pass\n",
                        "setup/ns.yaml": "kind: Namespace\nmetadata: {name: lab03}\n"})
    write_tree(folder / "starter", STARTER)
    write_tree(folder / "solution", SOLUTION)
    return load_lab(folder)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def backups(ws: Workspace, lab: Lab) -> list[Path]:
    backup_root = ws.lab_dir(lab) / ".backup"
    return sorted(backup_root.iterdir()) if backup_root.is_dir() else []


def test_root_comes_from_lab_workspace_or_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "mine"))
    assert Workspace().root == tmp_path / "mine"
    monkeypatch.delenv("LAB_WORKSPACE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / "kube-netlab"
    assert not (tmp_path / "home").exists()  # created on demand, not on construction


def test_init_copies_starter_into_the_lab_dir(ws: Workspace, lab: Lab) -> None:
    report = ws.init_from_starter(lab)
    assert ws.lab_dir(lab) == ws.root / "03-ws"
    assert read_tree(ws.lab_dir(lab)) == STARTER
    assert report.copied == [Path("app.yaml"), Path("net/policy.yaml")]
    assert report.kept == [] and report.backup_dir is None


def test_init_never_overwrites_a_learner_file(ws: Workspace, lab: Lab) -> None:
    write_tree(ws.lab_dir(lab), {"app.yaml": "kind: Pod  # mine\n"})
    report = ws.init_from_starter(lab)
    assert (ws.lab_dir(lab) / "app.yaml").read_text() == "kind: Pod  # mine\n"
    assert report.kept == [Path("app.yaml")]
    assert report.copied == [Path("net/policy.yaml")]
    assert backups(ws, lab) == []


def test_init_keeps_a_file_that_blocks_a_starter_directory(ws: Workspace, lab: Lab) -> None:
    write_tree(ws.lab_dir(lab), {"net": "not a directory\n"})
    report = ws.init_from_starter(lab)
    assert report.kept == [Path("net/policy.yaml")]
    assert (ws.lab_dir(lab) / "net").read_text() == "not a directory\n"


def test_install_solution_backs_up_every_file_it_replaces(ws: Workspace, lab: Lab) -> None:
    ws.init_from_starter(lab)
    write_tree(ws.lab_dir(lab), {"app.yaml": "kind: Pod  # my attempt\n", "notes.txt": "mine\n"})
    report = ws.install_solution(lab)
    assert report.copied == [Path("app.yaml"), Path("svc.yaml")]
    assert report.unchanged == [Path("net/policy.yaml")]  # identical: nothing to back up
    assert report.backed_up == [Path("app.yaml")]
    [backup] = backups(ws, lab)
    assert report.backup_dir == backup
    assert read_tree(backup) == {"app.yaml": "kind: Pod  # my attempt\n"}
    current = read_tree(ws.lab_dir(lab))
    assert current["app.yaml"] == SOLUTION["app.yaml"]
    assert current["notes.txt"] == "mine\n"  # files the solution does not have are left alone


def test_two_installs_in_one_second_get_separate_backups(ws: Workspace, lab: Lab) -> None:
    write_tree(ws.lab_dir(lab), {"app.yaml": "first\n"})
    ws.install_solution(lab)
    (ws.lab_dir(lab) / "app.yaml").write_text("second\n")
    ws.install_solution(lab)
    saved = [read_tree(b)["app.yaml"] for b in backups(ws, lab)]
    assert sorted(saved) == ["first\n", "second\n"]


def test_install_solution_replaces_a_symlink_not_its_target(ws: Workspace, lab: Lab) -> None:
    lab_dir = ws.lab_dir(lab)
    write_tree(lab_dir, {"mine.yaml": "kind: Pod  # precious\n"})
    (lab_dir / "app.yaml").symlink_to("mine.yaml")
    report = ws.install_solution(lab)
    assert (lab_dir / "mine.yaml").read_text() == "kind: Pod  # precious\n"
    assert not (lab_dir / "app.yaml").is_symlink()
    assert report.backup_dir is not None and (report.backup_dir / "app.yaml").is_symlink()


def test_install_solution_moves_a_directory_in_the_way(ws: Workspace, lab: Lab) -> None:
    write_tree(ws.lab_dir(lab), {"svc.yaml/inner.yaml": "kind: ConfigMap\n"})
    report = ws.install_solution(lab)
    assert report.backed_up == [Path("svc.yaml/inner.yaml")]
    assert report.backup_dir is not None
    assert read_tree(report.backup_dir) == {"svc.yaml/inner.yaml": "kind: ConfigMap\n"}
    assert (ws.lab_dir(lab) / "svc.yaml").read_text() == SOLUTION["svc.yaml"]


def test_reset_moves_everything_aside_then_copies_the_starter(ws: Workspace, lab: Lab) -> None:
    lab_dir = ws.lab_dir(lab)
    ws.init_from_starter(lab)
    ws.install_solution(lab)  # makes a first backup
    write_tree(lab_dir, {"extra/deep.yaml": "kind: Secret\n", ".hidden": "dot\n"})
    before = {k: v for k, v in read_tree(lab_dir).items() if not k.startswith(".backup/")}
    [first_backup] = backups(ws, lab)
    report = ws.reset(lab)
    assert report.backup_dir is not None
    assert read_tree(report.backup_dir) == before  # every file, moved not deleted
    assert sorted(p.as_posix() for p in report.backed_up) == sorted(before)
    assert {k: v for k, v in read_tree(lab_dir).items() if not k.startswith(".backup/")} == STARTER
    assert report.copied == [Path("app.yaml"), Path("net/policy.yaml")]
    assert first_backup in backups(ws, lab)  # older backups are kept


def test_reset_of_an_empty_workspace_makes_no_backup(ws: Workspace, lab: Lab) -> None:
    report = ws.reset(lab)
    assert report.backup_dir is None and report.backed_up == []
    assert read_tree(ws.lab_dir(lab)) == STARTER


def test_manifests_are_sorted_without_backups_and_dotfiles(ws: Workspace, lab: Lab) -> None:
    assert ws.manifests(lab) == []  # no lab dir yet
    ws.init_from_starter(lab)
    write_tree(ws.lab_dir(lab), {"z.json": "{}", "b.yml": "kind: Pod\n", "README.md": "x",
                                 ".draft.yaml": "x", ".git/config.yaml": "x", "app.yaml": "new"})
    ws.install_solution(lab)  # puts app.yaml into .backup/
    rel = [p.relative_to(ws.lab_dir(lab)).as_posix() for p in ws.manifests(lab)]
    assert rel == ["app.yaml", "b.yml", "net/policy.yaml", "svc.yaml", "z.json"]


def test_symlinks_inside_the_workspace_are_fine(ws: Workspace, lab: Lab) -> None:
    ws.init_from_starter(lab)
    (ws.lab_dir(lab) / "link.yaml").symlink_to(ws.lab_dir(lab) / "app.yaml")
    assert ws.lab_dir(lab) / "link.yaml" in ws.manifests(lab)


def test_symlink_leading_outside_is_refused(tmp_path: Path, ws: Workspace, lab: Lab) -> None:
    ws.init_from_starter(lab)
    secret = tmp_path / "secret.yaml"
    secret.write_text("kind: Secret\n")
    (ws.lab_dir(lab) / "steal.yaml").symlink_to(secret)
    with pytest.raises(WorkspaceError, match=r"steal.yaml leads outside the workspace"):
        ws.manifests(lab)


def test_a_symlinked_directory_leading_outside_is_refused_for_writes(
    tmp_path: Path, ws: Workspace, lab: Lab
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ws.lab_dir(lab).mkdir(parents=True)
    (ws.lab_dir(lab) / "net").symlink_to(outside)
    with pytest.raises(WorkspaceError, match="leads outside the workspace"):
        ws.install_solution(lab)
    assert list(outside.iterdir()) == []
    assert list(ws.lab_dir(lab).iterdir()) == [ws.lab_dir(lab) / "net"]  # nothing half-done


def test_broken_symlink_is_reported(ws: Workspace, lab: Lab) -> None:
    ws.init_from_starter(lab)
    (ws.lab_dir(lab) / "gone.yaml").symlink_to(ws.lab_dir(lab) / "nothing.yaml")
    with pytest.raises(WorkspaceError, match="broken symlink"):
        ws.manifests(lab)


def test_files_over_one_mib_are_refused(ws: Workspace, lab: Lab) -> None:
    ws.init_from_starter(lab)
    (ws.lab_dir(lab) / "huge.yaml").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(WorkspaceError, match=r"huge.yaml is 1048577 bytes; files over 1 MiB"):
        ws.manifests(lab)


def test_an_oversized_starter_file_is_refused(ws: Workspace, lab: Lab) -> None:
    (lab.starter_dir / "huge.yaml").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(WorkspaceError, match="files over 1 MiB"):
        ws.init_from_starter(lab)


def test_a_file_where_the_lab_dir_should_be(ws: Workspace, lab: Lab) -> None:
    ws.root.mkdir(parents=True)
    ws.lab_dir(lab).write_text("oops")
    with pytest.raises(WorkspaceError, match="is a file"):
        ws.init_from_starter(lab)
    assert ws.lab_dir(lab).read_text() == "oops"


def test_no_temporary_files_are_left_behind(ws: Workspace, lab: Lab) -> None:
    ws.init_from_starter(lab)
    ws.install_solution(lab)
    names = [p.name for p in ws.lab_dir(lab).rglob("*") if ".backup" not in p.parts]
    assert not [n for n in names if n.startswith(".")]
