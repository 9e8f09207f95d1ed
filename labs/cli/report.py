"""Rendering results for people: the check report and file-copy reports."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from labs.catalogue import Lab
from labs.checking import CheckRun
from labs.cli.ui import out

MARK = {"passed": "[green]PASS[/green]", "failed": "[red]FAIL[/red]",
        "error": "[red]ERROR[/red]", "skipped": "[yellow]SKIP[/yellow]"}


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


def _finding(check: dict[str, Any]) -> None:
    """Source → destination, expected vs observed, and the hint for this failure."""
    finding = check.get("finding") or {}
    check = {**check, **{k: v for k, v in finding.items() if v not in (None, "")}}
    src, dst = check.get("source"), check.get("destination")
    if src or dst:
        probe = f"   [dim]\\[{escape(str(check['probe']))}][/dim]" if check.get("probe") else ""
        out.print(f"      {escape(str(src or '?'))} → {escape(str(dst or '?'))}{probe}")
    if check.get("expected") is not None:
        out.print(f"      expected: {escape(str(check['expected']))}")
    if check.get("observed") is not None:
        out.print(f"      observed: [red]{escape(str(check['observed']))}[/red]")
    if check.get("hint"):
        out.print(f"      hint:     {escape(str(check['hint']))}")
    if not (src or dst or check.get("expected") or check.get("hint")) and check.get("message"):
        for line in str(check["message"]).strip().splitlines()[:30]:
            out.print(f"      {escape(line)}")


def check_report(run: CheckRun, lab: Lab) -> None:
    out.print()
    out.print(f"[bold]Lab {run.lab}: {run.title}[/bold]  [dim](engine {run.engine}, "
              f"cluster {run.cluster})[/dim]")
    if run.apply_error:
        out.print("[red]Your workspace could not be applied; nothing was checked.[/red]")
        out.print(escape(run.apply_error))
        out.print(f"[dim]workspace: {run.workspace}[/dim]")
        return
    if run.not_ready:
        out.print(f"[yellow]Not everything became ready:[/yellow] {escape(run.not_ready)}")
    by_task: dict[str | None, list[dict[str, Any]]] = {}
    for c in run.checks:
        by_task.setdefault(c.get("task"), []).append(c)
    titles = {t.id: t.title for t in lab.tasks}
    for task_id, checks in by_task.items():
        if task_id:
            out.print(f"\n[bold]{escape(titles.get(task_id, task_id))}[/bold]")
        for c in checks:
            out.print(f"  {MARK.get(c['outcome'], c['outcome'])}  {escape(str(c.get('name')))}")
            if c["outcome"] in ("failed", "error"):
                _finding(c)
    passed = sum(c["outcome"] == "passed" for c in run.checks)
    colour = "green" if run.passed else "red"
    out.print(f"\n[{colour}]{passed}/{len(run.checks)} checks passed[/{colour}]")
    if not run.passed:
        out.print(f"[dim]Stuck? lab hint {run.lab}[/dim]")
