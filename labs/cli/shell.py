"""Running tools inside pods and nodes: ``lab exec`` and ``lab node-shell``."""

from __future__ import annotations

import sys

import click

from labs.session import Session

PASS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@click.command("exec", context_settings=PASS)
@click.option("-n", "--namespace", default="default")
@click.option("--engine", default=None)
@click.option("--cluster", "cluster_name", default=None)
@click.argument("pod")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def exec_cmd(namespace: str, engine: str | None, cluster_name: str | None, pod: str,
             argv: tuple[str, ...]) -> None:
    """Run a command in POD; its output shows as it comes and its exit code is passed through.

    On the local engine it is a host tool (curl, ping, ip, nc, dig, ...) run inside POD's
    network and UTS namespaces, with the pod's own /etc/resolv.conf and /etc/hosts. On kind
    and context it runs in the pod's container (the tools of its image). When stdin is a terminal the
    session is interactive, as with kubectl exec -it (no command: a shell).

    \b
    Example: lab exec -n lab01 client -- curl -s 10.244.2.3:8080/hostname
    """
    args = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not args and not sys.stdin.isatty():
        raise click.UsageError("give a command after --, e.g. lab exec POD -- ip addr")
    cluster = Session(engine, cluster_name).cluster()
    if not args:
        # The local engine runs this machine's bash; a pod's image may only have sh.
        args = ["bash"] if cluster.engine == "local" else ["sh"]
    sys.exit(cluster.exec(namespace, pod, args).returncode)


@click.command("node-shell", context_settings=PASS)
@click.option("--engine", default=None)
@click.option("--cluster", "cluster_name", default=None)
@click.argument("node")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def node_shell_cmd(engine: str | None, cluster_name: str | None, node: str,
                   argv: tuple[str, ...]) -> None:
    """Run a command inside NODE (its network namespace): ip route, iptables-save, ...

    NODE is a node name (`lab get nodes`) or a short form: `control-plane`, `worker-1`,
    `worker-2`, ... (workers in name order), or the name without the cluster prefix.

    \b
    Examples:
      lab node-shell netlab-worker -- ip route
      lab node-shell worker-1 -- iptables-save -t nat
    """
    args = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not args:
        if not sys.stdin.isatty():
            raise click.UsageError("give a command after --, e.g. lab node-shell NODE -- ip route")
        args = ["bash"]
    cluster = Session(engine, cluster_name).cluster()
    names = [n["metadata"]["name"] for n in cluster.get("Node")]
    sys.exit(cluster.node_exec(resolve_node(node, names, cluster.name), args).returncode)


def resolve_node(text: str, names: list[str], cluster: str) -> str:
    """The node ``text`` means: an exact name, ``<cluster>-<text>``, ``control-plane`` or
    ``worker-N`` (the N-th worker in name order). Unknown: UsageError listing the nodes."""
    if text in names:
        return text
    if f"{cluster}-{text}" in names:
        return f"{cluster}-{text}"
    workers = sorted((n for n in names if "control-plane" not in n),
                     key=lambda n: (len(n), n))  # netlab-worker before netlab-worker2
    if text == "control-plane":
        planes = [n for n in names if "control-plane" in n]
        if planes:
            return planes[0]
    head, _, number = text.rpartition("-")
    if head == "worker" and number.isdigit() and 1 <= int(number) <= len(workers):
        return workers[int(number) - 1]
    raise click.UsageError(
        f"no node {text!r}; nodes: {', '.join(names)} (or control-plane, worker-1.."
        f"worker-{len(workers)})")


COMMANDS = [exec_cmd, node_shell_cmd]
