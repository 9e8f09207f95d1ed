"""``lab doctor``, ``lab status``, ``lab stop``."""

from __future__ import annotations

import sys

import click

from clusters import ClusterNotFound
from labs.cli.ui import note, out, print_json, table
from labs.doctor import diagnose
from labs.session import Session


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True)
def doctor_cmd(as_json: bool) -> None:
    """Check this machine: root, kernel features, tools, and which engines are usable and why."""
    findings = diagnose()
    if as_json:
        print_json([f.__dict__ for f in findings])
    else:
        table(["AREA", "CHECK", "", "DETAIL", "FIX"],
              [[f.area, f.name, "[green]ok[/green]" if f.ok else "[red]no[/red]", f.detail, f.fix]
               for f in findings])
    required = {"system", "tools"}
    bad = [f for f in findings if not f.ok and (f.area in required or f.fix.startswith("modprobe"))
           and f.name not in ("tcpdump",)]
    usable = [f.name for f in findings if f.area == "engines" and f.ok]
    if not as_json:
        out.print(f"usable engines: {', '.join(usable) or 'none'}")
    sys.exit(1 if bad or not usable else 0)


@click.command("status")
@click.option("--engine", default=None)
@click.option("--cluster", "cluster_name", default=None)
@click.option("--json", "as_json", is_flag=True)
def status_cmd(engine: str | None, cluster_name: str | None, as_json: bool) -> None:
    """The current lab, its cluster and your progress."""
    session = Session(engine, cluster_name)
    progress = session.progress
    current = progress.current_lab()
    choice = session.choice()
    info = session.engine().info(session.cluster_name)
    data = {
        "lab": current, "lab_status": progress.status(current) if current else None,
        "engine": choice.name, "engine_reason": choice.reason, "cluster": session.cluster_name,
        "running": bool(info and info.running), "nodes": list(info.nodes) if info else [],
        "cni": info.profile.cni if info and info.engine != "context" else None,
        "backend": info.profile.backend if info and info.engine != "context" else None,
        "detail": info.detail if info else None,
        "workspace": str(session.workspace.root),
    }
    if as_json:
        print_json(data)
        return
    out.print(f"lab:       {current or '(none started)'}"
              + (f" — {data['lab_status']}" if current else ""))
    out.print(f"engine:    {choice.name} ({choice.reason})")
    if info is None:
        out.print(f"cluster:   {session.cluster_name}: not created")
    else:
        nodes = f"; nodes {', '.join(info.nodes)}" if info.nodes else ""
        out.print(f"cluster:   {info.name}: {info.detail}{nodes}")
        if info.engine != "context":  # a shared cluster's CNI is its own, not a profile's
            out.print(f"CNI:       {info.profile.cni_label}")
    out.print(f"workspace: {session.workspace.root}")


@click.command("stop")
@click.option("--engine", default=None)
@click.option("--cluster", "cluster_name", default=None)
def stop_cmd(engine: str | None, cluster_name: str | None) -> None:
    """Remove the cluster and everything the engine made for it (your workspace is kept)."""
    session = Session(engine, cluster_name)
    name = session.cluster_name
    eng = session.engine()
    # Listing needs no privileges; deleting does. Nothing to stop is not an error, also
    # for a learner who forgot sudo.
    known = {i.name for i in eng.list()}
    try:
        removed = name in known and eng.delete(name)
    except ClusterNotFound:
        removed = False
    if removed and session.choice().name == "context":
        out.print(f"your namespaces on cluster {name} were deleted and the name detached; the "
                  f"shared cluster itself is untouched. Your workspace is kept at "
                  f"{session.workspace.root}")
    elif removed:
        out.print(f"cluster {name} removed; your workspace is kept at {session.workspace.root}")
    else:
        note(f"nothing to stop: no cluster named {name} is running")


COMMANDS = [doctor_cmd, status_cmd, stop_cmd]
