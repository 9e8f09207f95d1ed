"""``lab conformance FILE...``: does this cluster behave like upstream Kubernetes?"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from clusters import Cluster, ClusterNotFound, ClusterProfile
from grader.conformance import ConformanceFileError, FixtureConflict, Options, Runner, Suite, load
from grader.conformance.report import render
from labs.cli.ui import fail, note, out, print_json, step
from labs.session import Session

HELP = """\
Run acceptance files against a cluster: per case and step, PASS, FAIL (expected vs
observed) or N/A (not applicable, with the reason).

FILE is written in the acceptance format (acceptance/README.md in the course
repository; docs: reference/conformance). For each file the command builds its fixture,
runs each case on its own (steps in order, stopping at the first failing step), puts the
fixture back after every case, and removes the fixture's namespaces at the end.

\b
A case is N/A when the cluster lacks what it is about (the engine reports no NetworkPolicy
enforcement, no Services, no cluster DNS, no ingress controller) or cannot run one of its
probes (e.g. SCTP). N/A cases never fail the run and never count as passed.

\b
Cluster: the running one (--engine/--cluster, else the one `lab start` used); when none
runs, the engine's default cluster is started, like `lab start` does. A fixture namespace
that exists and was not made by `lab conformance` stops the run (exit code 2).

\b
Exit codes:
  0    every case that ran passed (N/A cases do not fail the run)
  1    a case failed, or a fixture could not be built or restored
  2    a file is invalid, --cases names an unknown case, or a fixture namespace is taken
  130  interrupted (Ctrl-C): the running case is undone and the fixtures removed

\b
Examples:
  lab conformance services.yaml dns.yaml
  lab conformance services.yaml --cases S1,S2 --json
"""

_COLOURS = {"PASS": "green", "FAIL": "red", "N/A": "yellow"}


def _load(files: tuple[Path, ...]) -> list[Suite]:
    suites, problems = [], []
    for file in files:
        try:
            suites.append(load(file))
        except ConformanceFileError as err:
            problems += err.problems
    if problems:
        for problem in problems:
            fail(problem)
        sys.exit(2)
    return suites


def _wanted(text: str | None, suites: list[Suite]) -> frozenset[str] | None:
    if not text:
        return None
    wanted = frozenset(p.strip() for p in text.split(",") if p.strip())
    known = [c.id for s in suites for c in s.cases]
    unknown = sorted(wanted - set(known))
    if unknown:
        fail(f"--cases: no case {', '.join(unknown)} in {', '.join(s.name for s in suites)} "
             f"(cases: {', '.join(known)})")
        sys.exit(2)
    return wanted


def _cluster(session: Session) -> Cluster:
    """The running cluster, or the engine's default cluster started as `lab start` would."""
    try:
        return session.cluster()
    except ClusterNotFound:
        choice = session.choice()
        note(f"engine: {choice.name} ({choice.reason})")
        step(f"No cluster {session.cluster_name} is running: starting it")
        return session.engine().create(session.cluster_name, ClusterProfile(), report=step)


def _show(text: str) -> None:
    for line in text.splitlines():
        word = line.strip().split(" ", 1)[0]
        colour = _COLOURS.get(word)
        if colour:
            head, _, tail = line.partition(word)
            out.print(f"{escape(head)}[{colour}]{word}[/{colour}]{escape(tail)}",
                      crop=False, overflow="ignore")
        else:
            out.print(escape(line), crop=False, overflow="ignore")


@click.command("conformance", help=HELP)
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--engine", default=None, help="local|kind|context (default: as `lab start`).")
@click.option("--cluster", "cluster_name", default=None, help="Cluster name (default: current).")
@click.option("--cases", default=None, metavar="IDS", help="Only these cases, e.g. S1,D2.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--keep-fixture", is_flag=True,
              help="Leave the fixtures' namespaces on the cluster at the end.")
def conformance_cmd(files: tuple[Path, ...], engine: str | None, cluster_name: str | None,
                    cases: str | None, as_json: bool, keep_fixture: bool) -> None:
    suites = _load(files)
    wanted = _wanted(cases, suites)
    cluster = _cluster(Session(engine, cluster_name))
    runner = Runner(cluster, Options(cases=wanted, keep_fixture=keep_fixture,
                                     say=(lambda _s: None) if as_json else step))
    try:
        report = runner.run(suites)
    except FixtureConflict as err:
        fail(str(err))
        sys.exit(2)
    if as_json:
        print_json(report.to_dict())
    else:
        _show(render(report))
    if report.interrupted:
        fail("interrupted (Ctrl-C): the running case was undone"
             + ("" if keep_fixture else " and the fixtures removed"))
    sys.exit(report.exit_code)


COMMANDS = [conformance_cmd]
