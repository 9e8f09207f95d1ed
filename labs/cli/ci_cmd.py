"""``lab ci-template``: print or write the GitHub Actions workflow that grades a lab on push."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from labs.catalogue import default_catalogue
from labs.citemplate import ENGINES, WORKFLOW_PATH, WORKSPACE_DIR, workflow
from labs.cli.ui import note


@click.command("ci-template")
@click.option("--lab", "lab_id", required=True, metavar="NN", help="The lab to grade, e.g. 01.")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="The engine the runner uses.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help=f"Write the workflow to FILE (e.g. {WORKFLOW_PATH}) "
                                   "instead of printing it.")
@click.option("--force", is_flag=True, help="Replace FILE when it exists.")
def ci_template_cmd(lab_id: str, engine: str, output: Path | None, force: bool) -> None:
    """A GitHub Actions workflow that grades a lab on every push (GitHub Classroom).

    The course repository is a copy of kube-netlab; learners commit their manifests under
    workspace/NN-slug/. The workflow runs `lab check NN --grading` and publishes the points.

    \b
    Examples:
      lab ci-template --lab 01                                      print it
      lab ci-template --lab 01 -o .github/workflows/classroom.yml   write it
    """
    lab = default_catalogue().get(lab_id)
    text = workflow(lab, engine)
    if output is None:
        sys.stdout.write(text)
        return
    if output.exists() and not force:
        raise click.ClickException(f"{output} exists; pass --force to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        # "x" also refuses a file that appeared since the check above; --force replaces it.
        with output.open("w" if force else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise click.ClickException(f"{output} exists; pass --force to replace it") from None
    note(f"wrote {output}: GitHub Actions grades lab {lab.id} on every push; learners commit "
         f"their manifests under {WORKSPACE_DIR}/{lab.name}/")


COMMANDS = [ci_template_cmd]
