"""Rendering results for people: the check report and file-copy reports."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from labs.catalogue import Lab
from labs.checking import CheckRun
from labs.cli.ui import out
from labs.reports import describe
from labs.scoring import NOT_RUN, CheckScore, Score, fmt

#: How each outcome is marked: label and colour (unstable stands out from a plain failure).
OUTCOME_LABEL = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
                 "unstable": "UNSTABLE", NOT_RUN: "NOT RUN"}
OUTCOME_COLOUR = {"passed": "green", "failed": "red", "error": "red", "skipped": "yellow",
                  "unstable": "yellow", NOT_RUN: "magenta"}
MARK_WIDTH = max(len(label) for label in OUTCOME_LABEL.values())
POINTS_WIDTH = 5


def copy_report(rep: Any) -> None:
    """Show what a workspace operation copied, kept and backed up."""
    for label, attr in (("copied", "copied"), ("kept (yours, not overwritten)", "kept"),
                        ("backed up", "backed_up")):
        items = getattr(rep, attr, None) or []
        if items:
            out.print(f"{label}: " + ", ".join(str(i) for i in items))
    backup = getattr(rep, "backup_dir", None)
    if backup:
        out.print(f"backup folder: {backup}")


def _finding(check: dict[str, Any], colour: str = "red") -> None:
    """Source → destination, expected vs observed (in ``colour``), and the hint."""
    finding = check.get("finding") or {}
    check = {**check, **{k: v for k, v in finding.items() if v not in (None, "")}}
    src, dst = check.get("source"), check.get("destination")
    if src or dst:
        probe = f"   [dim]\\[{escape(str(check['probe']))}][/dim]" if check.get("probe") else ""
        out.print(f"      {escape(str(src or '?'))} → {escape(str(dst or '?'))}{probe}")
    if check.get("expected") is not None:
        out.print(f"      expected: {escape(str(check['expected']))}")
    if check.get("observed") is not None:
        out.print(f"      observed: [{colour}]{escape(str(check['observed']))}[/{colour}]")
    if check.get("hint"):
        out.print(f"      hint:     {escape(str(check['hint']))}")
    if not (src or dst or check.get("expected") or check.get("hint")) and check.get("message"):
        for line in str(check["message"]).strip().splitlines()[:30]:
            out.print(f"      {escape(line)}")


def _mark(outcome: str) -> str:
    """The outcome's coloured mark, padded so that the points after it line up."""
    shown = OUTCOME_LABEL.get(outcome, outcome.upper())
    colour = OUTCOME_COLOUR.get(outcome)
    label = f"[{colour}]{escape(shown)}[/{colour}]" if colour else escape(shown)
    return label + " " * max(MARK_WIDTH - len(shown), 0)


def _points(check: CheckScore) -> str:
    """``1/1``, ``0/2``, ``1.5/2``; a skipped check counts neither way."""
    return f"{fmt(check.earned)}/{fmt(check.possible)}" if check.counted else "-"


def _check_lines(check: CheckScore, lab: Lab) -> None:
    """One line for the check; then why it did not pass (each failing case of a
    parametrised check under its own line)."""
    tags = " [dim]\\[hidden][/dim]" if check.hidden else ""
    if check.cases > 1:
        passed = sum(r.get("outcome") == "passed" for r in check.records)
        tags += f" [dim]({passed}/{check.cases} cases passed)[/dim]"
    elif check.outcome == "skipped":
        tags += " [dim](not counted)[/dim]"
    out.print(f"  {_mark(check.outcome)}  {_points(check):>{POINTS_WIDTH}}  "
              f"{escape(check.name)}{tags}")
    if check.outcome == NOT_RUN:
        out.print("      [dim]no result came back for this check[/dim]")
        return
    if check.outcome in ("passed", "skipped"):
        return
    bad = [r for r in check.records if r.get("outcome") not in ("passed", "skipped")]
    for record in bad:
        if check.cases > 1:
            out.print(f"    {_mark(str(record.get('outcome')))}  "
                      f"{escape(str(record.get('name', check.name)))}")
        _finding(dict(record), "yellow" if record.get("outcome") == "unstable" else "red")


def _stray_lines(strays: list[dict[str, Any]]) -> None:
    """Results outside the lab's tasks (a collection error, a crashed run): they fail the run."""
    out.print("\n[bold]Outside the lab's tasks[/bold]")
    for record in strays:
        out.print(f"  {_mark(str(record.get('outcome')))}  {escape(str(record.get('name')))}")
        _finding(record)


def _summary_lines(run: CheckRun, result: Score) -> None:
    """The last two lines, always: ``N/M checks passed`` and ``Points X/Y``."""
    counted = [c for c in result.checks if c.counted]
    passed = sum(c.outcome == "passed" for c in counted)
    colour = "green" if run.passed else "red"
    out.print(f"\n[{colour}]{passed}/{len(counted)} checks passed[/{colour}]")
    out.print(f"[bold {colour}]{result.line()}[/bold {colour}]")


def check_report(run: CheckRun, lab: Lab) -> None:
    """The terminal report of one ``lab check``: each task with its points, each check with
    its mark and points, why a check did not pass, and last the points line."""
    result = describe.run_score(run, lab)
    out.print()
    mode = ", grading: hidden checks included" if run.grading else ""
    out.print(f"[bold]Lab {run.lab}: {escape(run.title)}[/bold]  [dim](engine {run.engine}, "
              f"cluster {escape(run.cluster)}{mode})[/dim]")
    if run.apply_error:
        out.print("[red]Your workspace could not be applied; nothing was checked.[/red]")
        out.print(escape(run.apply_error))
        out.print(f"[dim]workspace: {escape(run.workspace)}[/dim]")
        _summary_lines(run, result)
        return
    if run.not_ready:
        out.print(f"[yellow]Not everything became ready:[/yellow] {escape(run.not_ready)}")
    for task in result.tasks:
        out.print(f"\n[bold]{escape(task.title)}[/bold]  "
                  f"({fmt(task.earned)}/{fmt(task.possible)} points)")
        for check in task.checks:
            _check_lines(check, lab)
    strays = describe.strays(run)
    if strays:
        _stray_lines(strays)
    if result.unstable:
        names = ", ".join(c.name for c in result.unstable)
        out.print(f"\n[yellow]UNSTABLE[/yellow]: {len(result.unstable)} check(s) earned nothing "
                  f"because their probes disagreed between tries ({escape(names)}). Run "
                  f"`lab check {run.lab}` again; if a check stays unstable, look at its "
                  "observations above (a rule half-programmed, a backend that answers only "
                  "sometimes).")
    if not run.passed:
        out.print(f"\n[dim]Stuck? lab hint {run.lab}[/dim]")
    _summary_lines(run, result)
