"""The grader's view of the learner's workspace."""

from __future__ import annotations

from pathlib import Path

from grader.fixtures import Workspace

POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: []}}\n"


def test_backups_and_hidden_files_are_not_the_learners_work(tmp_path: Path) -> None:
    (tmp_path / "pods.yaml").write_text(POD.format(name="current"))
    (tmp_path / ".backup" / "20260101T000000Z").mkdir(parents=True)
    (tmp_path / ".backup" / "20260101T000000Z" / "pods.yaml").write_text(POD.format(name="old"))
    (tmp_path / ".scratch.yaml").write_text(POD.format(name="hidden"))
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "extra.yml").write_text(POD.format(name="extra"))
    ws = Workspace.load(tmp_path)
    # Sorted by path: more/extra.yml before pods.yaml.
    assert [d["metadata"]["name"] for d in ws.find("Pod")] == ["extra", "current"]
    assert not ws.find("Pod", "old") and not ws.find("Pod", "hidden")
