"""Cluster objects: ``lab get``, ``lab apply``, ``lab delete``, ``lab label``."""

from __future__ import annotations

import sys

import click
import yaml

from clusters import manifests
from clusters.engine import Cluster, KindRef
from clusters.errors import ClusterError
from labs.cli import render
from labs.cli.ui import fail, out, print_json, warn
from labs.session import Session

engine_opt = click.option("--engine", help="Engine (default: the one `lab start` used).")
cluster_opt = click.option("--cluster", "cluster_name", help="Cluster name (default: current).")


def connect_for_kind(kind: str, engine: str | None,
                     cluster_name: str | None) -> tuple[Cluster, KindRef]:
    """The cluster, and what it means by the user's word ``kind``.

    Only the cluster knows which kinds it serves (a kind cluster serves Ingress and every
    installed CRD), so it is asked, and its ValueError is a usage error. When there is no
    cluster to ask, a word that is not even one of the built-in kinds is still a usage error
    (saying why the cluster could not be asked); a built-in kind gets the connection error.
    """
    try:
        cluster = Session(engine, cluster_name).cluster()
    except ClusterError as err:
        from clusters.local.kinds import resolve_kind as builtin_kind

        try:
            builtin_kind(kind)
        except ValueError:
            raise click.UsageError(
                f"unknown resource type {kind!r}: it is not a built-in kind, and the cluster "
                f"could not be asked whether it serves it ({err})") from err
        raise
    try:
        return cluster, cluster.resolve_kind(kind)
    except ValueError as err:
        raise click.UsageError(str(err)) from err


@click.command("get")
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None, help="Namespace (default: default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=web,tier!=db.")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column (as kubectl does).")
@engine_opt
@cluster_opt
def get_cmd(kind: str, name: str | None, namespace: str | None, all_namespaces: bool,
            output: str | None, selector: str | None, show_labels: bool, engine: str | None,
            cluster_name: str | None) -> None:
    """Show objects: nodes, pods, namespaces, deployments, replicasets, ..."""
    from clusters.local.store import parse_selector

    cluster, info = connect_for_kind(kind, engine, cluster_name)
    ns = None if all_namespaces or not info.namespaced else (namespace or "default")
    sel = parse_selector(selector) if selector else None
    # The user's own word goes to the cluster: it resolves it the same way, and a
    # group-qualified word (gateways.gateway.networking.k8s.io) keeps its group.
    objs = cluster.get(kind, ns, name, sel)
    if output == "json":
        print_json(objs[0] if name and objs else {"apiVersion": "v1", "kind": "List", "items": objs})
    elif output == "yaml":
        data = objs[0] if name and objs else {"apiVersion": "v1", "kind": "List", "items": objs}
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    elif output == "name":
        for o in objs:
            out.print(f"{info.kind.lower()}/{o['metadata']['name']}")
    elif not objs:
        where = f" in {ns} namespace" if ns else ""
        click.echo(f"No resources found{where}.", err=True)
    else:
        render.objects(info.kind, objs, wide=output == "wide",
                       show_ns=all_namespaces and info.namespaced, show_labels=show_labels)


@click.command("apply")
@click.option("-f", "--filename", "files", multiple=True, required=True,
              help="A file, a folder, or - for stdin (repeatable).")
@engine_opt
@cluster_opt
def apply_cmd(files: tuple[str, ...], engine: str | None, cluster_name: str | None) -> None:
    """Create or update objects from manifests (validated strictly first)."""
    loaded = [m for f in files for m in manifests.read(f)]
    cluster = Session(engine, cluster_name).cluster()
    for m in loaded:
        for r in cluster.apply(m.docs, source=m.source):
            for w in r.warnings:
                warn(f"{r.kind.lower()}/{r.name}: {w}")
            out.print(f"{r.kind.lower()}/{r.name} {r.action}")


@click.command("delete")
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", "files", multiple=True, help="Delete the objects in these manifests.")
@click.option("-n", "--namespace", default=None)
@engine_opt
@cluster_opt
def delete_cmd(kind: str | None, names: tuple[str, ...], files: tuple[str, ...],
               namespace: str | None, engine: str | None, cluster_name: str | None) -> None:
    """Delete objects by KIND NAME... or by manifest (-f)."""
    # (the word sent to the cluster, the kind shown, namespace, name)
    targets: list[tuple[str, str, str | None, str]] = []
    if files:
        if kind:
            raise click.UsageError("give either -f FILE or KIND NAME, not both")
        for m in (m for f in files for m in manifests.read(f)):
            for d in m.docs:
                meta = d.get("metadata") or {}
                ns = meta.get("namespace") or namespace
                targets.append((str(d.get("kind")), str(d.get("kind")), ns,
                                str(meta.get("name"))))
        cluster = Session(engine, cluster_name).cluster()
    elif kind and names:
        cluster, info = connect_for_kind(kind, engine, cluster_name)
        ns = (namespace or "default") if info.namespaced else None
        targets = [(kind, info.kind, ns, n) for n in names]
    else:
        raise click.UsageError("usage: lab delete KIND NAME [-n NS]  or  lab delete -f FILE")
    missing = 0
    gone: set[str] = set()  # namespaces this command deleted, with everything in them
    for word, k, ns, n in targets:
        if cluster.delete(word, ns or "default", n):
            out.print(f"{k.lower()}/{n} deleted")
            if k == "Namespace":
                gone.add(n)
        elif ns in gone:
            out.print(f"{k.lower()}/{n} deleted (with namespace {ns})")
        else:
            fail(f'{k.lower()} "{n}" not found' + (f' in namespace "{ns}"' if ns else ""))
            missing += 1
    if missing:
        sys.exit(1)


@click.command("label")
@click.argument("kind")
@click.argument("name")
@click.argument("changes", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.option("--overwrite", is_flag=True, help="Allow changing an existing label's value.")
@engine_opt
@cluster_opt
def label_cmd(kind: str, name: str, changes: tuple[str, ...], namespace: str, overwrite: bool,
              engine: str | None, cluster_name: str | None) -> None:
    """Set (k=v) or remove (k-) labels in place."""
    set_labels: dict[str, str] = {}
    remove: list[str] = []
    for c in changes:
        if c.endswith("-") and "=" not in c:
            remove.append(c[:-1])
        elif "=" in c:
            k, _, v = c.partition("=")
            set_labels[k] = v
        else:
            raise click.UsageError(f"{c!r}: expected key=value or key-")
    cluster, info = connect_for_kind(kind, engine, cluster_name)
    ns = namespace if info.namespaced else None
    if not overwrite and set_labels:
        current = cluster.get(kind, ns, name)[0]["metadata"].get("labels", {})
        clash = [k for k, v in set_labels.items() if k in current and current[k] != v]
        if clash:
            raise click.UsageError(
                f"label(s) {', '.join(clash)} already set with another value; pass --overwrite")
    cluster.label(kind, ns, name, set_labels, remove)
    out.print(f"{info.kind.lower()}/{name} labeled")


COMMANDS = [get_cmd, apply_cmd, delete_cmd, label_cmd]
