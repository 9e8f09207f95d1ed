"""The ``lab`` CLI without a cluster: what a learner sees before anything runs.

Every command goes through :func:`labs.cli.main.main` (the real entry point, which maps
library errors to messages and exit codes) inside click's ``CliRunner`` isolation, with the
workspace, the cluster state and the cluster name private to each test.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import click
import pytest
from labrun import lab

from clusters.local import cleanup
from clusters.selection import ENGINES, local_available
from labs.catalogue import Lab, default_catalogue

COMMANDS = ("list", "show", "start", "check", "hint", "solution", "reset", "get", "apply", "probe",
            "delete", "label", "exec", "node-shell", "cluster", "doctor", "status", "stop")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path | str]:
    """A private workspace, state folder and cluster name (nothing is shared with the host)."""
    name = f"knlt{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAB_CLUSTER", name)
    monkeypatch.delenv("LAB_ENGINE", raising=False)
    return {"ws": tmp_path / "ws", "state": tmp_path / "state", "cluster": name}


@pytest.fixture
def lab01() -> Lab:
    return default_catalogue().get("01")


def _words(markdown: str) -> list[str]:
    """The words of a Markdown text as a reader sees them (no backticks, stars or bullets)."""
    words = [w.replace("`", "").replace("**", "") for w in markdown.split()]
    return [w for w in words if w and w != "-"]


# --------------------------------------------------------------------------- the catalogue


def test_help_lists_every_command(env: dict[str, Path | str]) -> None:
    ran = lab("--help")
    assert ran.code == 0
    listed = re.findall(r"^  (\S+)\s", ran.out.split("Commands:", 1)[1], re.MULTILINE)
    assert set(COMMANDS) <= set(listed)
    assert "lab start 01" in ran.out


def test_list_shows_lab_01_not_started(env: dict[str, Path | str], lab01: Lab) -> None:
    ran = lab("list")
    assert ran.code == 0
    row = next(line for line in ran.out.splitlines() if line.startswith("01 "))
    assert lab01.title in row
    assert row.rstrip().endswith("not started")

    as_json = lab("list", "--json")
    assert as_json.code == 0
    rows = json.loads(as_json.out)
    assert {"id": "01", "title": lab01.title, "chapter": lab01.chapter,
            "status": "not started"} in rows
    assert not Path(env["ws"]).exists(), "listing must not create the workspace"


def test_show_prints_objectives_and_every_word_of_the_tasks(
    env: dict[str, Path | str], lab01: Lab
) -> None:
    ran = lab("show", "01")
    assert ran.code == 0
    assert f"Lab 01: {lab01.title}" in ran.out
    for objective in lab01.objectives:
        assert objective in ran.out
    text = " ".join(ran.out.split())
    for i, task in enumerate(lab01.tasks, 1):
        assert f"{i}. {task.title}" in ran.out
        # Wrapped lines are fine, lost words are not (the server's args are in a list item).
        missing = [w for w in _words(task.description) if w not in text]
        assert not missing, f"task {task.id}: words missing from `lab show`: {missing}"
    assert str(Path(env["ws"]) / lab01.name) in ran.out


def test_show_unknown_lab_exits_2_listing_the_labs(env: dict[str, Path | str], lab01: Lab) -> None:
    ran = lab("show", "99")
    assert ran.code == 2
    assert "99" in ran.err
    assert "01" in ran.err and lab01.title in ran.err
    assert "Traceback" not in ran.err


@pytest.mark.parametrize("wanted", ["[/oops]", "[red]x"])
def test_error_messages_are_printed_as_written(env: dict[str, Path | str], wanted: str) -> None:
    """Brackets in an error (field paths, names) are text, never rich markup."""
    ran = lab("show", wanted)
    assert ran.code == 2
    assert f"no lab '{wanted}'" in ran.err
    assert "Traceback" not in ran.err


# --------------------------------------------------------------------------- hints, solution


def test_hint_reveals_one_more_per_call(env: dict[str, Path | str], lab01: Lab) -> None:
    hints = [h for t in lab01.tasks for h in t.hints]
    assert len(hints) >= 3
    for shown in range(1, len(hints) + 2):
        ran = lab("hint", "01")
        assert ran.code == 0
        visible = min(shown, len(hints))
        lines = ran.out.splitlines()
        assert len(lines) == visible
        for line, hint in zip(lines, hints, strict=False):
            assert line.endswith(hint)
        if visible < len(hints):
            assert f"hint {visible}/{len(hints)}" in ran.err
        else:
            assert "again" not in ran.err


def test_hint_all_shows_every_hint_with_its_task(env: dict[str, Path | str], lab01: Lab) -> None:
    ran = lab("hint", "01", "--all")
    assert ran.code == 0
    expected = [f"{t.title}: {h}" for t in lab01.tasks for h in t.hints]
    assert ran.out.splitlines() == expected
    assert ran.err == ""
    # --all does not spend the learner's step-by-step hints.
    assert len(lab("hint", "01").out.splitlines()) == 1


def test_solution_prints_the_solution_files(env: dict[str, Path | str], lab01: Lab) -> None:
    ran = lab("solution", "01")
    assert ran.code == 0
    files = sorted(p for p in lab01.solution_dir.rglob("*") if p.is_file())
    assert files
    for f in files:
        assert f"# {f.relative_to(lab01.solution_dir)}" in ran.out
        assert f.read_text() in ran.out
    assert not Path(env["ws"]).exists()


def test_solution_apply_without_terminal_or_yes_changes_nothing(
    env: dict[str, Path | str], lab01: Lab
) -> None:
    lab_dir = Path(env["ws"]) / lab01.name
    ran = lab("solution", "01", "--apply")
    assert ran.code == 1
    assert "--yes" in ran.err
    assert not lab_dir.exists()

    lab_dir.mkdir(parents=True)
    mine = lab_dir / "pods.yaml"
    mine.write_text("# my own work\n")
    ran = lab("solution", "01", "--apply", stdin="y\n")
    assert ran.code == 1
    assert "pass --yes to confirm" in ran.err
    assert mine.read_text() == "# my own work\n"
    assert sorted(p.name for p in lab_dir.iterdir()) == ["pods.yaml"], "no backup, no copy"


def test_solution_apply_yes_backs_up_the_learners_file(
    env: dict[str, Path | str], lab01: Lab
) -> None:
    lab_dir = Path(env["ws"]) / lab01.name
    lab_dir.mkdir(parents=True)
    (lab_dir / "pods.yaml").write_text("# my own work\n")
    ran = lab("solution", "01", "--apply", "--yes")
    assert ran.code == 0
    assert (lab_dir / "pods.yaml").read_text() == (lab01.solution_dir / "pods.yaml").read_text()
    backups = list((lab_dir / ".backup").glob("*/pods.yaml"))
    assert [b.read_text() for b in backups] == ["# my own work\n"]
    assert str(backups[0].parent) in ran.out


# --------------------------------------------------------------------------- engines, root


def test_unknown_engine_names_the_valid_ones(env: dict[str, Path | str]) -> None:
    ran = lab("start", "01", "--engine", "nope")
    assert ran.code != 0
    assert "nope" in ran.err and "--engine" in ran.err
    for name in ENGINES:
        assert name in ran.err
    assert "Traceback" not in ran.err
    assert not Path(env["ws"]).exists()


def test_unknown_engine_from_environment_says_where_it_came_from(
    env: dict[str, Path | str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_ENGINE", "nope")
    ran = lab("start", "01")
    assert ran.code != 0
    assert "LAB_ENGINE" in ran.err
    assert all(name in ran.err for name in ENGINES)


@pytest.mark.parametrize("engine_args", [(), ("--engine", "local")], ids=["detected", "flag"])
def test_start_without_root_says_to_use_root_and_creates_nothing(
    env: dict[str, Path | str], monkeypatch: pytest.MonkeyPatch, engine_args: tuple[str, ...]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    ran = lab("start", "01", *engine_args)
    assert ran.code == 1
    assert "root" in ran.err and "sudo" in ran.err
    assert "Traceback" not in ran.err
    assert not Path(env["ws"]).exists(), "no workspace and no progress without a cluster"
    assert not Path(env["state"]).exists(), "no cluster state"
    assert cleanup.find_leftovers(str(env["cluster"])).empty


def test_stop_with_nothing_running_says_so(env: dict[str, Path | str]) -> None:
    ran = lab("stop", "--engine", "local")
    assert ran.code == 0
    assert "nothing to stop" in ran.err and str(env["cluster"]) in ran.err
    assert ran.out == ""


def test_doctor_json_reports_findings(env: dict[str, Path | str]) -> None:
    ran = lab("doctor", "--json")
    findings = json.loads(ran.out)
    assert isinstance(findings, list) and findings
    for f in findings:
        assert set(f) == {"area", "name", "ok", "detail", "fix"}
        assert isinstance(f["ok"], bool) and isinstance(f["detail"], str)
        if not f["ok"] and f["area"] in ("system", "tools"):
            assert f["fix"], f"{f['name']}: a required check failed without a fix"
    by_key = {(f["area"], f["name"]): f for f in findings}
    assert {f["area"] for f in findings} >= {"system", "kernel", "tools", "engines"}
    assert {n for a, n in by_key if a == "engines"} == set(ENGINES)
    assert by_key[("system", "root")]["ok"] is (os.geteuid() == 0)
    assert by_key[("engines", "local")]["ok"] is local_available()[0]
    assert ("tools", "conntrack") in by_key
    if os.geteuid() == 0:  # the kube-proxy rule set is tried in a scratch namespace
        assert ("kernel", "kube-proxy iptables rules") in by_key
    usable = [n for a, n in by_key if a == "engines" and by_key[(a, n)]["ok"]]
    assert ran.code in (0, 1)
    if not usable:
        assert ran.code == 1


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("get", "frobnicators"), "frobnicators"),
        (("exec", "some-pod"), "after --"),
        (("label", "pod", "web", "not-a-change"), "key=value"),
        (("delete",), "lab delete KIND NAME"),
    ],
    ids=["get-unknown-kind", "exec-without-command", "label-bad-change", "delete-nothing"],
)
def test_usage_errors_exit_2_before_touching_a_cluster(
    env: dict[str, Path | str], args: tuple[str, ...], says: str
) -> None:
    ran = lab(*args)
    assert ran.code == 2
    assert says in ran.err
    assert not Path(env["state"]).exists()


def test_apply_of_unreadable_manifests_names_the_file(
    env: dict[str, Path | str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.yaml"
    ran = lab("apply", "-f", str(missing))
    assert ran.code == 1 and str(missing) in ran.err

    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: [Pod\n")
    ran = lab("apply", "-f", str(broken))
    assert ran.code == 1
    assert str(broken) in ran.err and "line" in ran.err
    assert "Traceback" not in ran.err


def test_node_short_names_resolve_to_real_nodes() -> None:
    from labs.cli.shell import resolve_node

    names = ["netlab-control-plane", "netlab-worker", "netlab-worker2"]
    assert resolve_node("netlab-worker2", names, "netlab") == "netlab-worker2"
    assert resolve_node("worker", names, "netlab") == "netlab-worker"
    assert resolve_node("worker-1", names, "netlab") == "netlab-worker"
    assert resolve_node("worker-2", names, "netlab") == "netlab-worker2"
    assert resolve_node("control-plane", names, "netlab") == "netlab-control-plane"
    with pytest.raises(click.UsageError, match=r"worker-1\.\.worker-2"):
        resolve_node("worker-3", names, "netlab")
