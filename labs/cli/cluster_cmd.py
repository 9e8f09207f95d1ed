"""Clusters without a lab: ``lab cluster create|delete|list``."""

from __future__ import annotations

from pathlib import Path

import click

from clusters import ClusterProfile
from labs.cli.context_opts import context_options, context_settings
from labs.cli.labs_cmd import BACKEND_HELP, CNI_HELP, policy_note, resolve_cni
from labs.cli.ui import note, out, print_json, step, table
from labs.session import DEFAULT_CLUSTER, Session


@click.group("cluster")
def cluster_group() -> None:
    """Create, delete and list clusters (without a lab)."""


@cluster_group.command("create")
@click.option("--name", default=DEFAULT_CLUSTER, show_default=True)
@click.option("--engine", default=None, help="local (default when root on Linux).")
@click.option("--workers", type=click.IntRange(1, 5), default=2, show_default=True)
@click.option("--nodes", type=click.IntRange(2, 6), default=None,
              help="Total nodes (1 control plane + workers); overrides --workers.")
@click.option("--cni", default="kindnet", show_default=True, help=CNI_HELP)
@click.option("--backend", default=None, help=BACKEND_HELP)
@context_options
def create_cmd(name: str, engine: str | None, workers: int, nodes: int | None, cni: str,
               backend: str | None, context_name: str | None, kubeconfig: Path | None,
               learner: str | None, allow_production: bool, allow_cluster_scoped: bool) -> None:
    """Create a cluster (or reuse it when it runs with the same shape).

    \b
    Examples:
      lab cluster create --cni flannel --backend host-gw
      lab cluster create --cni calico --nodes 3
      lab cluster create --context workshop --learner alice   attach a shared cluster
    """
    engine, settings = context_settings(engine, context_name, kubeconfig, learner,
                                        allow_production, allow_cluster_scoped)
    session = Session(engine, name, settings)
    choice = session.choice()
    note(f"engine: {choice.name} ({choice.reason})")
    if choice.name == "context":
        attached = session.engine().create(name, ClusterProfile(), report=step)
        info = session.engine().info(name)
        out.print(f"cluster name [bold]{attached.name}[/bold] attached: "
                  f"{info.detail if info else 'context engine'}")
        return
    cni, resolved = resolve_cni(choice.name, cni, backend)
    profile = ClusterProfile(workers=(nodes - 1) if nodes else workers, cni=cni, backend=resolved)
    policy_note(profile)
    cluster = session.engine().create(name, profile, report=step)
    out.print(f"cluster [bold]{cluster.name}[/bold] ready: 1 control plane + {profile.workers} "
              f"workers, CNI {profile.cni_label} (engine {choice.name})")


@cluster_group.command("delete")
@click.option("--name", default=DEFAULT_CLUSTER, show_default=True)
@click.option("--engine", default=None)
def delete_cmd(name: str, engine: str | None) -> None:
    """Delete a cluster and everything its engine made for it."""
    session = Session(engine, name)
    if session.engine().delete(name):
        out.print(f"cluster {name} deleted")
    else:
        out.print(f"no cluster named {name}: nothing to delete")


@cluster_group.command("list")
@click.option("--engine", default=None)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(engine: str | None, as_json: bool) -> None:
    """List clusters."""
    infos = Session(engine).engine().list()
    if as_json:
        print_json([{"name": i.name, "engine": i.engine, "running": i.running,
                     "profile": i.profile.to_dict(), "nodes": list(i.nodes), "detail": i.detail}
                    for i in infos])
        return
    if not infos:
        out.print("no clusters")
        return
    table(["NAME", "ENGINE", "NODES", "CNI", "STATE"],
          [[i.name, i.engine, i.profile.nodes, i.profile.cni_label, i.detail] for i in infos])


COMMANDS = [cluster_group]
