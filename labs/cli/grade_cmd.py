"""``lab grade SUBMISSIONS_DIR --lab NN``: batch grading for instructors.

Exit codes: 0 when the batch ran (whatever the learners scored), 1 when it could not (no
engine, no cluster), 2 for usage errors, 130 after Ctrl-C (what was graded is written).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from rich.markup import escape

from clusters import choose_engine, get_engine
from clusters.errors import EngineUnavailable
from labs.catalogue import default_catalogue
from labs.cli.labs_cmd import BACKEND_HELP, CNI_HELP, lab_refuses, policy_note, resolve_cni
from labs.cli.ui import err, fail, note, out, step, table, warn
from labs.grading import batch as batches
from labs.grading import reports, submissions
from labs.scoring import fmt

STATUS_MARK = {"graded": "green", "unstable": "yellow", "invalid": "red", "error": "red"}


def _progress(line: str) -> None:
    err.print(line, markup=False, highlight=False)


@click.command("grade")
@click.argument("submissions_dir", metavar="SUBMISSIONS_DIR",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--lab", "lab_id", required=True, help="The lab to grade (01, 01-pod-networking).")
@click.option("--engine", type=click.Choice(["local", "kind"]), default=None,
              help="local|kind (default: $LAB_ENGINE, else detected).")
@click.option("--jobs", type=click.IntRange(1, batches.MAX_JOBS), default=1, show_default=True,
              help="Clusters (and learners graded at once).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for grades.csv, results.json, report.html "
                   "(default: ./grades-<lab>-<UTC time>).")
@click.option("--fresh", is_flag=True,
              help="A new cluster for every learner instead of resetting the lab's namespaces "
                   "(slower, nothing shared at all).")
@click.option("--cni", default=None, help=f"{CNI_HELP} Default: the lab's first.")
@click.option("--backend", default=None, help=BACKEND_HELP)
@click.option("--keep-clusters", is_flag=True, help="Leave the grading clusters (to look around).")
def grade_cmd(submissions_dir: Path, lab_id: str, engine: str | None, jobs: int,
              out_dir: Path | None, fresh: bool, cni: str | None, backend: str | None,
              keep_clusters: bool) -> None:
    """Grade one folder per learner (hidden checks included) and write CSV, JSON and HTML.

    \b
    SUBMISSIONS_DIR/
      alice/pods.yaml                       manifests directly in the learner's folder,
      bob/01-pod-networking/pods.yaml       or in a folder named like the lab
    Each learner is graded in a cluster of their own state: the lab's namespaces are reset
    before each one (--fresh: a new cluster). A broken submission (bad YAML, objects outside
    the lab's namespaces, cluster-scoped kinds, symlinks leaving the folder, files over
    1 MiB) is reported for that learner and the batch goes on.

    \b
    Examples:
      lab grade submissions/ --lab 01
      lab grade submissions/ --lab 01 --jobs 2 --out grades/
    """
    lab = default_catalogue().get(lab_id)
    choice = choose_engine(engine)
    note(f"engine: {choice.name} ({choice.reason})")
    if choice.name == "context":
        raise click.UsageError(
            "lab grade creates and removes clusters of its own (--engine local or kind); on a "
            "shared cluster each learner runs `lab check NN --grading` in their own namespaces")
    chosen_cni, chosen_backend = resolve_cni(choice.name, cni or lab.default_cni, backend)
    refusal = lab_refuses(lab, chosen_cni)
    if refusal:
        raise click.UsageError(refusal)
    profile = lab.profile(chosen_cni, chosen_backend)
    eng = get_engine(choice.name)
    ok, why = eng.available()
    if not ok:
        raise EngineUnavailable(choice.name, why)
    policy_note(profile)

    found = submissions.find(submissions_dir)
    for text in found.ignored:
        warn(f"not graded: {text}")
    if not found.submissions:
        raise click.UsageError(f"{submissions_dir} holds no learner folders")
    step(f"Validating {len(found.submissions)} submission(s) for lab {lab.id}")
    for sub in found.submissions:
        submissions.validate(sub, lab)
    out_dir = (out_dir or reports.default_out_dir(lab.id)).absolute()
    try:
        result = batches.grade(lab, eng, profile, found.submissions, jobs=jobs, fresh=fresh,
                               keep_clusters=keep_clusters, ignored=found.ignored,
                               progress=_progress, say=step)
    except batches.BatchUnavailable as error:
        fail(f"the batch could not run: {error}")
        sys.exit(1)
    written = reports.write(result, out_dir)
    _summary(result)
    out.print()
    for path in written.paths():
        out.print(str(path), markup=False)
    if result.kept_clusters and result.clusters:
        note("grading clusters kept: " + ", ".join(result.clusters))
        note("delete them with: " + " && ".join(
            shlex.join(["lab", "cluster", "delete", "--name", n]) for n in result.clusters))
    if result.interrupted:
        fail(f"interrupted (Ctrl-C): {len(result.results)} learner(s) in the reports; not "
             f"graded: {', '.join(result.not_graded) or 'none'}")
        sys.exit(130)


def _summary(result: batches.Batch) -> None:
    rows = []
    for r in result.results:
        colour = STATUS_MARK.get(r.status, "white")
        rows.append([_plain(r.learner), f"[{colour}]{r.status}[/{colour}]",
                     f"{fmt(r.points)}/{fmt(r.possible)}", f"{r.percent:g}%",
                     _plain(r.message[:80])])
    out.print()
    table(["LEARNER", "STATUS", "POINTS", "PERCENT", "MESSAGE"], rows)
    counts = {s: sum(r.status == s for r in result.results) for s in batches.STATUSES}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items() if n)
              + f"; {result.seconds:.1f} s in all", markup=False)


def _plain(text: str) -> str:
    """A cell that is shown as written (rich markup in a learner's name is escaped)."""
    return escape(text)


COMMANDS = [grade_cmd]
