"""The context engine's flags, shared by ``lab start`` and ``lab cluster create``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from clusters.addons import provided
from clusters.context.engine import ContextSettings
from labs.catalogue import Lab

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option("--context", "context_name", default=None, metavar="NAME",
                 help="Use the cluster of this kubeconfig context (implies --engine context; "
                      "default: $LAB_CONTEXT)."),
    click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Kubeconfig file for --context (default: $KUBECONFIG, ~/.kube/config)."),
    click.option("--learner", default=None, metavar="PREFIX",
                 help="Prefix of your namespaces on a shared cluster (default: $LAB_LEARNER, "
                      "else your login name): lab04 becomes PREFIX-lab04."),
    click.option("--allow-production", is_flag=True,
                 help="Run on a context whose names look like production (refused otherwise)."),
    click.option("--allow-cluster-scoped", is_flag=True,
                 help="Let manifests change cluster-scoped objects on a shared cluster "
                      "(refused otherwise)."),
)


def context_options(f: F) -> F:
    """Add the context engine's flags to a command."""
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def context_settings(engine: str | None, context_name: str | None, kubeconfig: Path | None,
                     learner: str | None, allow_production: bool,
                     allow_cluster_scoped: bool) -> tuple[str | None, ContextSettings]:
    """(the engine flag, the context settings): ``--context`` implies ``--engine context``;
    a context flag with another engine is a usage error."""
    given = any((context_name, kubeconfig, learner, allow_production, allow_cluster_scoped))
    if given and engine not in (None, "context"):
        raise click.UsageError(f"--context, --kubeconfig, --learner and --allow-* belong to the "
                               f"context engine, not --engine {engine}")
    if context_name and engine is None:
        engine = "context"
    try:
        settings = ContextSettings.from_env(
            context=context_name, kubeconfig=kubeconfig, learner=learner,
            allow_production=allow_production, allow_cluster_scoped=allow_cluster_scoped)
        if learner:
            settings.learner_prefix()
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--learner'") from err
    return engine, settings


def missing_needs(lab: Lab, capabilities: Any) -> list[str]:
    """What ``lab`` needs (``needs:`` in lab.yaml, and what its ``addons:`` provide) that the
    cluster lacks, by capability name."""
    wanted = [*lab.cluster.needs, *(provided(a) for a in lab.cluster.addons)]
    return [need for need in dict.fromkeys(wanted) if not getattr(capabilities, need, False)]
