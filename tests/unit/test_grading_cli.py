"""``lab grade`` as a command (click's runner, a fake engine, a fake run_check): usage errors
exit 2, a batch that ran exits 0 and writes its three files, Ctrl-C exits 130 after
writing what was graded, an engine that cannot run exits 1 (via ``lab``'s error handling)."""

from __future__ import annotations

import _thread
import csv
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_grading_batch import FakeEngine, fake_check, records

from clusters.errors import EngineUnavailable
from labs.catalogue import Lab, default_catalogue
from labs.cli import grade_cmd as cmd
from labs.grading import batch as batches

LAB: Lab = default_catalogue().get("01")
SOLUTION = (LAB.solution_dir / "pods.yaml").read_text()
PASSING = ("test_server_running", "test_client_running", "test_pods_avoid_control_plane")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(cmd, "get_engine", lambda name: fake)
    monkeypatch.setattr(batches, "run_check", fake_check(LAB, passing=PASSING))
    monkeypatch.delenv("LAB_ENGINE", raising=False)
    return fake


def subs(tmp_path: Path) -> Path:
    root = tmp_path / "subs"
    for name in ("alice", "bob"):
        (root / name).mkdir(parents=True)
        (root / name / "pods.yaml").write_text(SOLUTION)
    (root / "carol").mkdir()
    (root / "carol" / "pods.yaml").write_text(SOLUTION.replace("lab01", "default"))
    (root / "README.md").write_text("x")
    return root


def grade(*args: str) -> Any:
    return CliRunner().invoke(cmd.grade_cmd, list(args))


@pytest.mark.parametrize("args", [
    ["nowhere", "--lab", "01"], ["SUBS", "--lab", "01", "--jobs", "0"],
    ["SUBS", "--lab", "01", "--jobs", "9"], ["SUBS"], ["SUBS", "--lab", "01", "--engine", "x"],
    ["SUBS", "--lab", "01", "--cni", "weave"],
])
def test_usage_errors_exit_2_before_anything_is_made(
        engine: FakeEngine, tmp_path: Path, args: list[str]) -> None:
    root = str(subs(tmp_path))
    got = grade(*[root if a == "SUBS" else a for a in args])
    assert got.exit_code == 2, got.output
    assert engine.log == []


def test_a_batch_writes_its_files_and_exits_0(engine: FakeEngine, tmp_path: Path) -> None:
    out = tmp_path / "out"
    got = grade(str(subs(tmp_path)), "--lab", "01", "--jobs", "2", "--out", str(out))
    assert got.exit_code == 0, got.output
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert [(r["learner"], r["status"]) for r in rows] == [
        ("alice", "graded"), ("bob", "graded"), ("carol", "invalid")]
    assert rows[0]["points"] == "3" and rows[0]["possible"] == "9"  # the fake passes 3 points
    for name in ("grades.csv", "results.json", "report.html"):
        assert str(out / name) in got.output
    assert "README.md: not a folder" in got.output
    assert "[3/3]" in got.output and ": Points 3/9 (" in got.output
    assert json.loads((out / "results.json").read_text())["jobs"] == 2
    assert [n for op, n in engine.log if op == "delete"] == [
        n for op, n in reversed(engine.log) if op == "create"]


def test_keep_clusters_prints_them_and_how_to_delete(engine: FakeEngine, tmp_path: Path) -> None:
    got = grade(str(subs(tmp_path)), "--lab", "01", "--out", str(tmp_path / "o"),
                "--keep-clusters")
    assert got.exit_code == 0, got.output
    (name,) = engine.clusters
    assert f"lab cluster delete --name {name}" in got.output


def test_ctrl_c_writes_what_was_graded_and_exits_130(
        engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stopping = threading.Event()

    def interrupted() -> list[dict[str, Any]]:
        _thread.interrupt_main()  # Ctrl-C while bob is being graded
        assert stopping.wait(10)
        return records(LAB, set())

    def step(text: str) -> None:
        if text.startswith("Interrupted"):
            stopping.set()

    monkeypatch.setattr(batches, "run_check", fake_check(LAB, {"bob": interrupted},
                                                         passing=PASSING))
    monkeypatch.setattr(cmd, "step", step)
    out = tmp_path / "out"
    got = grade(str(subs(tmp_path)), "--lab", "01", "--out", str(out))
    assert got.exit_code == 130, got.output
    data = json.loads((out / "results.json").read_text())
    assert data["interrupted"] is True
    assert [entry["learner"] for entry in data["learners"]] == ["alice", "carol"]
    assert data["not_graded"] == ["bob"]
    assert engine.clusters == set()


def test_an_unavailable_engine_is_an_error_not_a_usage_error(
        engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "available", lambda: (False, "it needs root"))
    got = grade(str(subs(tmp_path)), "--lab", "01")
    assert isinstance(got.exception, EngineUnavailable)  # lab's main prints it, exit code 1
    assert "it needs root" in str(got.exception)
