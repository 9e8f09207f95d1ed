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
    """Run a host tool (curl, ping, ip, nc, dig, ...) inside POD's network and UTS namespaces,
    with the pod's own /etc/resolv.conf and /etc/hosts. The exit code is passed through.

    \b
    Example: lab exec -n lab01 client -- curl -s 10.244.2.3:8080/hostname
    """
    args = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not args:
        args = ["bash"] if sys.stdin.isatty() else []
        if not args:
            raise click.UsageError("give a command after --, e.g. lab exec POD -- ip addr")
    cluster = Session(engine, cluster_name).cluster()
    sys.exit(cluster.exec(namespace, pod, args).returncode)


@click.command("node-shell", context_settings=PASS)
@click.option("--engine", default=None)
@click.option("--cluster", "cluster_name", default=None)
@click.argument("node")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def node_shell_cmd(engine: str | None, cluster_name: str | None, node: str,
                   argv: tuple[str, ...]) -> None:
    """Run a command inside NODE (its network namespace): ip route, iptables-save, ...

    \b
    Example: lab node-shell netlab-worker -- ip route
    """
    args = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not args:
        if not sys.stdin.isatty():
            raise click.UsageError("give a command after --, e.g. lab node-shell NODE -- ip route")
        args = ["bash"]
    cluster = Session(engine, cluster_name).cluster()
    sys.exit(cluster.node_exec(node, args).returncode)


COMMANDS = [exec_cmd, node_shell_cmd]
