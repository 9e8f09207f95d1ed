"""``lab grade`` on the local engine, run as a process the way an instructor runs it.

A mixed batch of lab 01 submissions gets the right status and points per learner, a CSV and
an HTML report that say why, and leaves no cluster behind. Twenty copies of one half-right
submission, graded two at a time in two clusters, all get the same score: the grading of a
workspace does not depend on which cluster, which turn, or what was graded before it.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from labcli import lab

from clusters.local import cleanup
from clusters.local.engine import LocalEngine
from clusters.local.paths import known_clusters
from labs.catalogue import Lab, default_catalogue

LAB: Lab = default_catalogue().get("01")
SOLUTION = (LAB.solution_dir / "pods.yaml").read_text()
STARTER = (LAB.starter_dir / "pods.yaml").read_text()
#: Listens where the task says, but podAffinity puts the client next to the server: 7 of 9.
HALF_RIGHT = SOLUTION.replace("podAntiAffinity", "podAffinity")
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: mine}\n"
EVIL = "<script>eve"


def put(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def results(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return data


def assert_no_cluster_left(data: dict[str, Any]) -> None:
    assert data["clusters"], "the batch made no cluster"
    names = {info.name for info in LocalEngine().list()}
    for name in data["clusters"]:
        assert name not in names, f"{name} was left behind"
        assert cleanup.find_leftovers(name).empty
    assert not [n for n in known_clusters() if n.startswith("grd")]


def test_grade_a_mixed_batch(state_dir: Path) -> None:
    subs, out = state_dir / "subs", state_dir / "out"
    put(subs, "alice/pods.yaml", SOLUTION)
    put(subs, f"bob/{LAB.name}/pods.yaml", SOLUTION)
    put(subs, "carol/pods.yaml", STARTER)
    put(subs, "dave/pods.yaml", HALF_RIGHT)
    put(subs, "erin/pods.yaml", SOLUTION.replace("  labels:\n", "  labels: [\n", 1))
    (subs / "frank").mkdir()
    os.symlink(subs / "alice" / "pods.yaml", subs / "frank" / "pods.yaml")
    put(subs, "gina/pods.yaml", "#" * (1024 * 1024 + 10))
    put(subs, "hank/pods.yaml", SOLUTION.replace("namespace: lab01", "namespace: default"))
    put(subs, f"{EVIL}/pods.yaml", SOLUTION + "---\n" + NAMESPACE)
    put(subs, "notes.txt", "not a learner")

    graded = lab("grade", str(subs), "--lab", "01", "--jobs", "2", "--out", str(out))
    assert graded.returncode == 0, graded.stderr

    rows = {r["learner"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    got = {name: (r["status"], r["points"], r["possible"]) for name, r in rows.items()}
    assert got == {
        "alice": ("graded", "9", "9"), "bob": ("graded", "9", "9"),
        "carol": ("graded", "3", "9"), "dave": ("graded", "7", "9"),
        "erin": ("invalid", "0", "9"), "frank": ("invalid", "0", "9"),
        "gina": ("invalid", "0", "9"), "hank": ("invalid", "0", "9"),
        EVIL: ("invalid", "0", "9"),
    }
    assert rows["dave"]["test_pods_on_different_nodes"] == "0"
    assert rows["dave"]["test_client_reaches_server"] == "2"
    assert rows["erin"]["message"].startswith("erin/pods.yaml: YAML syntax error at line ")
    assert "frank/pods.yaml leads outside" in rows["frank"]["message"]
    assert "files over 1 MiB are refused" in rows["gina"]["message"]
    assert 'would land in "default"' not in rows["hank"]["message"]
    assert "namespace 'default' is not the lab's; set namespace: lab01" in rows["hank"]["message"]
    assert "(document 3, Namespace mine): wrong kind Namespace" in rows[EVIL]["message"]

    for line in ("[9/9] ", "alice: Points 9/9 (", "dave: Points 7/9 (", "notes.txt: not a folder"):
        assert line in graded.stderr, line
    for name in ("grades.csv", "results.json", "report.html"):
        assert str(out / name) in graded.stdout

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "&lt;script&gt;eve" in page
    dave = page.split('id="learner-5"', 1)[1].split("</section>", 1)[0]
    assert "dave" in dave and "podAffinity" in dave and "<dt>hint</dt>" in dave
    assert "two different nodes" in dave  # expected, from the check's finding

    data = results(out)
    assert (data["lab"], data["engine"], data["cni"], data["jobs"]) == ("01", "local", "kindnet", 2)
    learners = {entry["learner"]: entry for entry in data["learners"]}
    assert learners["alice"]["run"]["grading"] is True
    assert learners["alice"]["cluster"] in data["clusters"]
    assert_no_cluster_left(data)


def test_twenty_copies_grade_the_same_in_two_clusters(state_dir: Path) -> None:
    subs, out = state_dir / "subs", state_dir / "out"
    for n in range(1, 21):
        put(subs, f"learner{n:02d}/pods.yaml", HALF_RIGHT)

    graded = lab("grade", str(subs), "--lab", "01", "--jobs", "2", "--out", str(out))
    assert graded.returncode == 0, graded.stderr

    data = results(out)
    assert len(data["clusters"]) == 2
    learners = data["learners"]
    assert len(learners) == 20
    assert {entry["status"] for entry in learners} == {"graded"}
    scores = [entry["score"] for entry in learners]
    assert all(s == scores[0] for s in scores), [entry["points"] for entry in learners]
    assert scores[0]["earned"] == 7 and scores[0]["possible"] == 9
    assert {entry["cluster"] for entry in learners} == set(data["clusters"])  # both did work
    assert_no_cluster_left(data)
