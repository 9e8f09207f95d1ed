"""``lab``: start a lab, explore its cluster, check your work.

Every command maps flags to library calls in ``labs``, ``grader`` and ``clusters``; errors of
those packages become one clear message and a non-zero exit code.
"""

from __future__ import annotations

import sys

import click

from clusters import ClusterError, WaitTimeout
from labs.catalogue import LabDefinitionError, UnknownLab
from labs.cli import (
    ci_cmd,
    cluster_cmd,
    conformance_cmd,
    explore,
    grade_cmd,
    labs_cmd,
    probe_cmd,
    shell,
    system,
)
from labs.cli.ui import fail
from labs.workspace import WorkspaceError

HELP = """\
kube-netlab: a hands-on Kubernetes networking course.

\b
The loop:
  lab start 01        start a cluster, set up lab 01, copy starter files, show the tasks
  lab start 01 --cni flannel [--backend host-gw]   the same on another CNI (--yes to
                      recreate a running cluster); CNIs: kindnet, flannel, calico
  (edit the manifests in your workspace)
  lab check 01        apply your workspace, check it with real connectivity probes
                      and score it (Points X/Y); --junit FILE for CI
  lab hint 01         the next hint;   lab solution 01   the reference solution
  lab stop            remove the cluster

\b
Looking around:
  lab get svc|endpointslices|pods -n NS     what the cluster holds (-o wide, -o yaml)
  lab probe http|tcp|udp|dns|matrix ...     ask the network what the checks ask
  lab probe matrix -n lab04 -p 8080 --expect   what policies allow vs what the network does
  lab node-shell worker-1 -- iptables-save -t nat     kube-proxy's rules in a node
  lab node-shell worker-1 -- nft list table inet kube-netlab-policy   its policy rules
  lab node-shell worker-1 -- ip -d link show flannel.1     flannel's VXLAN device
  lab node-shell worker-1 -- bridge fdb show dev flannel.1   where flannel sends each node's pods
  lab node-shell worker-1 -- birdc show protocols         calico's BGP sessions (BIRD)
  lab node-shell worker-1 -- ip route                     how pod traffic leaves this node
  lab conformance acceptance/services.yaml  does this cluster behave like upstream?

\b
Instructors:
  lab check 01 --grading --junit FILE --classroom FILE   hidden checks too; CI reports
  lab grade submissions/ --lab 01 --jobs 2   one folder per learner -> CSV, JSON, HTML
  lab ci-template --lab 01 -o .github/workflows/classroom.yml   grading on every push

\b
Engines: --engine local|kind|context, else $LAB_ENGINE, else detection: kind when
the kind CLI and Docker work (lab doctor shows what it needs), else local (Linux, root).
Shared cluster: lab start 04 --context NAME [--learner alice]   your namespaces are
alice-lab04, ...; nothing else is touched; --allow-production, --allow-cluster-scoped.
Workspace: $LAB_WORKSPACE or ~/kube-netlab.
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kube-netlab")
def cli() -> None:
    pass


for module in (labs_cmd, explore, shell, cluster_cmd, conformance_cmd, system, probe_cmd,
               grade_cmd, ci_cmd):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        fail("interrupted (Ctrl-C); anything half-built was removed")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except (UnknownLab, LabDefinitionError, WorkspaceError) as err:
        fail(str(err))
        sys.exit(2)
    except WaitTimeout as err:
        fail(str(err))
        sys.exit(1)
    except ClusterError as err:
        fail(str(err))
        sys.exit(1)


if __name__ == "__main__":
    main()
