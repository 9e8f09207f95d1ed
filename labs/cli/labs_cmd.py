"""The course loop: ``lab list|show|start|check|hint|solution|reset``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.markdown import Markdown

from clusters import ClusterExists, ClusterNotFound, ClusterProfile, Engine
from clusters.cnis import CNIS, CniChoiceError, choices, resolve
from labs.catalogue import Lab
from labs.checking import prepare, run_check
from labs.cli import report
from labs.cli.context_opts import context_options, context_settings, missing_needs
from labs.cli.ui import confirm, note, out, print_json, step, table, warn
from labs.reports import files as report_files
from labs.reports.classroom import classroom_result, encode_for_github_output
from labs.reports.junit import junit_xml
from labs.scoring import score
from labs.session import Session

DOCS_SITE = "docs/"


def _docs_hint(lab: Lab) -> str:
    return f"{DOCS_SITE}{lab.chapter} (build the site: .venv/bin/mkdocs serve)"


def show_lab(lab: Lab, session: Session) -> None:
    out.print(f"[bold]Lab {lab.id}: {lab.title}[/bold]")
    out.print(lab.summary.strip())
    out.print("\n[bold]Objectives[/bold]")
    for o in lab.objectives:
        out.print(f"  • {o}")
    out.print("\n[bold]Tasks[/bold]")
    for i, task in enumerate(lab.tasks, 1):
        out.print(f"[bold]{i}. {task.title}[/bold]  [dim]({task.worth} point"
                  f"{'s' if task.worth != 1 else ''})[/dim]")
        # Wrapped, not cut: the console soft-wraps plain lines, which would crop Markdown.
        out.print(Markdown(task.description.strip()), soft_wrap=False)
    out.print(f"\nworkspace: {session.workspace.lab_dir(lab)}")
    out.print(f"chapter:   {_docs_hint(lab)}")


@click.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(as_json: bool) -> None:
    """Every lab with its chapter and your status."""
    session = Session()
    labs = session.catalogue.labs()
    rows = [{"id": lab.id, "title": lab.title, "chapter": lab.chapter,
             "status": session.progress.status(lab.id)} for lab in labs]
    if as_json:
        print_json(rows)
    else:
        table(["ID", "TITLE", "CHAPTER", "STATUS"],
              [[r["id"], r["title"], r["chapter"], r["status"]] for r in rows])


@click.command("show")
@click.argument("lab_id")
def show_cmd(lab_id: str) -> None:
    """Objectives and tasks of a lab."""
    session = Session()
    show_lab(session.catalogue.get(lab_id), session)


CNI_HELP = f"CNI of the cluster: {choices()}."
BACKEND_HELP = ("How pod traffic crosses nodes: flannel vxlan|host-gw, calico bgp|vxlan "
                "(default: the CNI's first).")


def resolve_cni(engine_name: str, cni: str, backend: str | None) -> tuple[str, str]:
    """``(cni, backend)`` checked against the catalogue and what the engine can run.

    An unknown CNI or backend is a usage error listing the choices; a CNI the engine does
    not emulate (Cilium on the local engine) raises the engine's EngineUnavailable, which
    says what to use instead. Both happen before anything is created.
    """
    try:
        chosen = resolve(cni, backend or "")
    except CniChoiceError as err:
        raise click.UsageError(str(err)) from err
    if engine_name == "local":
        from clusters.local.cni import check_supported

        check_supported(chosen[0])
    return chosen


def lab_refuses(lab: Lab, cni: str) -> str | None:
    """Why ``lab`` cannot run on ``cni`` (None when it can), and what to run instead."""
    if cni in lab.cluster.cni:
        return None
    supported = ", ".join(lab.cluster.cni)
    why = "its checks were written and tested on those"
    info = CNIS.get(cni)
    if "network_policy" in lab.cluster.needs and info is not None and not info.enforces_policy:
        why = (f"its checks need NetworkPolicy enforced, and {cni} does not enforce "
               "NetworkPolicy (policies are stored, not enforced)")
    others = " or ".join(f"--cni {c}" for c in lab.cluster.cni)
    return f"lab {lab.id} supports the CNIs {supported}, not {cni}: {why}. Use {others}"


def policy_note(profile: ClusterProfile) -> None:
    """Say up front when NetworkPolicy objects will be stored but not enforced."""
    info = CNIS.get(profile.cni)
    if info is not None and not info.enforces_policy:
        note(f"{profile.cni} does not enforce NetworkPolicy: policies you apply are stored, "
             "not enforced")


def _existing_profile(eng: Engine, name: str) -> ClusterProfile | None:
    found = eng.info(name)
    return found.profile if found is not None else None


def lab_profile(lab: Lab, eng: Engine, name: str, cni: str | None,
                backend: str | None) -> ClusterProfile:
    """The profile ``lab start`` asks for. Without --cni and --backend, a cluster that
    already runs a CNI the lab supports is kept as it is; else the lab's first CNI."""
    existing = _existing_profile(eng, name) if cni is None and backend is None else None
    if existing is not None and existing.cni in lab.cluster.cni:
        return lab.profile(existing.cni, existing.backend)
    return lab.profile(cni or lab.default_cni, backend or "")


@click.command("start")
@click.argument("lab_id")
@click.option("--engine", default=None, help="local|kind|context (default: $LAB_ENGINE, else detected).")
@click.option("--cluster", "cluster_name", default=None, help="Cluster name (default: netlab).")
@click.option("--cni", default=None,
              help=f"{CNI_HELP} Default: the running cluster's, if the lab supports it, "
                   "else the lab's first choice.")
@click.option("--backend", default=None, help=BACKEND_HELP)
@click.option("-y", "--yes", is_flag=True, help="Confirm recreating a cluster of another shape.")
@context_options
def start_cmd(lab_id: str, engine: str | None, cluster_name: str | None, cni: str | None,
              backend: str | None, yes: bool, context_name: str | None,
              kubeconfig: Path | None, learner: str | None, allow_production: bool,
              allow_cluster_scoped: bool) -> None:
    """Start a lab: cluster (created or reused), setup applied, starter files copied, tasks shown.

    \b
    Examples:
      lab start 01                              the lab's default CNI (kindnet)
      lab start 01 --cni flannel                Flannel with its VXLAN overlay
      lab start 01 --cni calico --backend bgp   Calico, routes learnt over BGP (BIRD)
      lab start 04 --context workshop --learner alice
                                                a shared cluster: namespaces alice-lab04, ...
    """
    engine, settings = context_settings(engine, context_name, kubeconfig, learner,
                                        allow_production, allow_cluster_scoped)
    session = Session(engine, cluster_name, settings)
    lab = session.catalogue.get(lab_id)
    choice = session.choice()
    note(f"engine: {choice.name} ({choice.reason})")
    if choice.name == "context" and (cni is not None or backend is not None):
        raise click.UsageError("the context engine uses the shared cluster's own CNI; "
                               "--cni and --backend do not apply")
    if cni is not None or backend is not None:
        chosen_cni, chosen_backend = resolve_cni(choice.name, cni or lab.default_cni, backend)
        refusal = lab_refuses(lab, chosen_cni)
        if refusal:
            raise click.UsageError(refusal)
        cni, backend = chosen_cni, chosen_backend
    eng = session.engine()
    name = session.cluster_name
    profile = lab_profile(lab, eng, name, cni, backend)
    if choice.name != "context":
        note(f"CNI: {profile.cni_label}")
        policy_note(profile)
    try:
        cluster = eng.create(name, profile, report=step)
    except ClusterExists as err:
        warn(str(err))
        old = _existing_profile(eng, name)
        was = f" (CNI {old.cni_label}, {old.workers} workers)" if old else ""
        question = (f"Delete cluster {name}{was} and create it again with CNI "
                    f"{profile.cni_label}, {profile.workers} workers, for lab {lab.id}? "
                    "Everything in it is lost")
        if not confirm(question, yes):
            sys.exit(1)
        eng.delete(name)
        cluster = eng.create(name, profile, report=step)
    lacking = missing_needs(lab, cluster.capabilities())
    if lacking:
        raise click.ClickException(
            f"lab {lab.id} needs {', '.join(lacking)}, and cluster {name} ({choice.name} engine) "
            f"does not provide {'it' if len(lacking) == 1 else 'them'}; nothing was set up. "
            "`lab status` shows what the cluster has; use another cluster for this lab"
            + (" (or, if the cluster was fixed since, `lab stop` and start again to detect "
               "anew)" if choice.name == "context" else ""))
    step(f"Setting up lab {lab.id} (namespaces {', '.join(lab.namespaces)})")
    prepare(cluster, lab)
    copy = session.workspace.init_from_starter(lab)
    session.progress.mark_started(lab.id, choice.name, name)
    out.print()
    show_lab(lab, session)
    out.print()
    report.copy_report(copy)
    out.print(f"\nNext: edit the files in {session.workspace.lab_dir(lab)}, then run "
              f"[bold]lab check {lab.id}[/bold]. Stuck? [bold]lab hint {lab.id}[/bold]")


REPORT_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("check")
@click.argument("lab_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report (with the score) as JSON.")
@click.option("--grading", is_flag=True,
              help="Run the lab's hidden checks too, as `lab grade` does (for instructors, CI).")
@click.option("--junit", "junit_file", type=REPORT_FILE, metavar="FILE", default=None,
              help="Also write the report as JUnit XML to FILE (one testcase per check).")
@click.option("--classroom", "classroom_file", type=REPORT_FILE, metavar="FILE", default=None,
              help="Also write GitHub Classroom's autograding JSON to FILE; under GitHub "
                   "Actions ($GITHUB_OUTPUT set) also the step output `result` (base64) that "
                   "autograding-grading-reporter reads.")
@click.option("--engine", default=None)
@click.option("--cluster", "cluster_name", default=None)
def check_cmd(lab_id: str | None, as_json: bool, grading: bool, junit_file: Path | None,
              classroom_file: Path | None, engine: str | None, cluster_name: str | None) -> None:
    """Apply your workspace and check it with real probes. Exit code 0 only when all pass.

    \b
    Examples:
      lab check 01                                  the checks, the points, the hints
      lab check 01 --junit reports/lab01.xml        also JUnit XML for a CI test tab
      lab check 01 --grading --classroom out.json   hidden checks too; classroom JSON
    """
    session = Session(engine, cluster_name)
    lab = session.catalogue.get(lab_id or session.progress.current_lab() or "")
    # Prove every report can be written before the run, so a long run is never wasted.
    for flag, target in (("--junit", junit_file), ("--classroom", classroom_file)):
        if target is not None:
            try:
                report_files.ensure_writable(target)
            except report_files.ReportFileError as err:
                raise click.BadParameter(str(err), param_hint=f"'{flag}'") from err
    github_output = os.environ.get("GITHUB_OUTPUT") if classroom_file is not None else None
    if github_output:
        try:
            report_files.ensure_appendable(Path(github_output))
        except report_files.ReportFileError as err:
            raise click.UsageError(f"$GITHUB_OUTPUT: {err}") from err
    try:
        cluster = session.cluster()
    except ClusterNotFound as err:
        raise ClusterNotFound(f"{err}\n  start the lab first: lab start {lab.id}") from err
    run = run_check(lab, cluster, session.workspace, say=(lambda s: None) if as_json else step,
                    grading=grading)
    points = run.score if run.score is not None else score(lab, run.checks, grading=grading)
    summary = {"passed": sum(c["outcome"] == "passed" for c in run.checks),
               "total": len(run.checks), "apply_error": run.apply_error,
               "points": round(points.earned, 4), "possible": points.possible,
               "grading": grading}
    session.progress.record_check(lab.id, run.passed, summary)
    if as_json:
        print_json(run.to_dict())
    else:
        report.check_report(run, lab)
    try:
        if junit_file is not None:
            report_files.write_report(junit_file, junit_xml(run, lab))
            note(f"JUnit report: {junit_file}")
        if classroom_file is not None:
            data = classroom_result(run, lab)
            report_files.write_report(classroom_file,
                                      json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            note(f"classroom report: {classroom_file}")
            if github_output:
                report_files.append_output(Path(github_output), "result",
                                           encode_for_github_output(data))
                note(f"step output `result` appended to {github_output}")
    except report_files.ReportFileError as err:
        raise click.FileError(str(err.path), err.reason) from err
    sys.exit(0 if run.passed else 1)


@click.command("hint")
@click.argument("lab_id", required=False)
@click.option("--all", "show_all", is_flag=True, help="Every hint of every task.")
def hint_cmd(lab_id: str | None, show_all: bool) -> None:
    """The next hint (each call reveals one more)."""
    session = Session()
    lab = session.catalogue.get(lab_id or session.progress.current_lab() or "")
    hints = [(t, h) for t in lab.tasks for h in t.hints]
    if not hints:
        out.print(f"lab {lab.id} has no hints")
        return
    shown = len(hints) if show_all else min(session.progress.bump_hints(lab.id), len(hints))
    for task, hint in hints[:shown]:
        out.print(f"[bold]{task.title}[/bold]: {hint}")
    if shown < len(hints):
        note(f"hint {shown}/{len(hints)}; run `lab hint {lab.id}` again for the next one")


@click.command("solution")
@click.argument("lab_id")
@click.option("--apply", "install", is_flag=True,
              help="Copy the solution into your workspace (your files are backed up first).")
@click.option("-y", "--yes", is_flag=True)
def solution_cmd(lab_id: str, install: bool, yes: bool) -> None:
    """Print the reference solution; --apply copies it into your workspace."""
    session = Session()
    lab = session.catalogue.get(lab_id)
    files = sorted(p for p in lab.solution_dir.rglob("*") if p.is_file())
    if not install:
        for f in files:
            out.print(f"[bold]# {f.relative_to(lab.solution_dir)}[/bold]")
            sys.stdout.write(f.read_text())
            sys.stdout.flush()
        return
    if not confirm(f"Copy the solution of lab {lab.id} into {session.workspace.lab_dir(lab)}? "
                   "Files it replaces are backed up first.", yes):
        sys.exit(1)
    report.copy_report(session.workspace.install_solution(lab))


@click.command("reset")
@click.argument("lab_id")
@click.option("--workspace", "reset_ws", is_flag=True,
              help="Also put the workspace back to the starter files (yours are backed up).")
@click.option("-y", "--yes", is_flag=True)
@click.option("--engine", default=None)
@click.option("--cluster", "cluster_name", default=None)
def reset_cmd(lab_id: str, reset_ws: bool, yes: bool, engine: str | None,
              cluster_name: str | None) -> None:
    """Put the lab's namespaces back to their starting state (workspace kept unless --workspace)."""
    session = Session(engine, cluster_name)
    lab = session.catalogue.get(lab_id)
    cluster = session.cluster()
    step(f"Resetting namespaces {', '.join(lab.namespaces)}")
    prepare(cluster, lab)
    if reset_ws:
        if not confirm(f"Reset {session.workspace.lab_dir(lab)} to the starter files? "
                       "Your files are moved to a backup folder first.", yes):
            sys.exit(1)
        report.copy_report(session.workspace.reset(lab))
    out.print(f"lab {lab.id} is back at its starting state")


COMMANDS = [list_cmd, show_cmd, start_cmd, check_cmd, hint_cmd, solution_cmd, reset_cmd]
