"""The kube-netlab pytest plugin: options, fixtures, and the lab reporter.

Fixtures: ``cluster``, ``pods``, ``probe``, ``workspace`` and ``netpol`` (NetworkPolicy
matrices, :mod:`grader.policy`).

``lab check`` runs a lab's checks as::

    python -m pytest labs/01-pod-networking/checks -p grader.plugin --lab-cluster NAME \\
        --lab-engine local --lab-id 01 --lab-namespaces lab01 --lab-report FILE.json -q

The module is also registered through the ``pytest11`` entry point ``kube_netlab``. Loaded
both ways, it is registered once: whichever name registers first blocks the other.

The fixtures always exist; the reporter (one line per check, the JSON report) is switched on
only by the lab options (``--lab-cluster``, ``--lab-id`` or ``--lab-report``), so an installed
plugin leaves ordinary pytest runs alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusters.engine import Cluster
from clusters.errors import ClusterError, WaitTimeout
from grader.fixtures import Pods, Prober, Workspace
from grader.policy import NetpolGrader, workspace_sources
from grader.report import LabReporter

#: The names this module can be registered under (``-p grader.plugin`` / the entry point).
ALIASES = ("grader.plugin", "kube_netlab")
CONVERGE_TIMEOUT = 60.0


@dataclass(frozen=True)
class LabOptions:
    """The ``--lab-*`` options, parsed once per pytest run."""

    cluster: str | None = None
    engine: str = "local"
    lab_id: str | None = None
    namespaces: tuple[str, ...] = ()
    workspace: Path | None = None
    report: Path | None = None
    settle: float | None = None  # None: the cluster's own propagation bound
    hints: Mapping[str, Any] = field(default_factory=dict)
    deselect: frozenset[str] = frozenset()  # test functions not to run (hidden checks)

    @property
    def active(self) -> bool:
        """Whether this run grades a lab (and so reports like one)."""
        return bool(self.cluster or self.lab_id or self.report)

    @classmethod
    def from_config(cls, config: pytest.Config) -> LabOptions:
        def opt(name: str) -> Any:
            return config.getoption(name, default=None)

        namespaces = tuple(n.strip() for n in (opt("lab_namespaces") or "").split(",")
                           if n.strip())
        hints_file = opt("lab_hints")
        return cls(
            cluster=opt("lab_cluster"),
            engine=opt("lab_engine") or os.environ.get("LAB_ENGINE") or "local",
            lab_id=opt("lab_id"),
            namespaces=namespaces,
            workspace=Path(opt("lab_workspace")) if opt("lab_workspace") else None,
            report=Path(opt("lab_report")) if opt("lab_report") else None,
            settle=float(opt("lab_settle")) if opt("lab_settle") is not None else None,
            hints=load_hints(Path(hints_file)) if hints_file else {},
            deselect=frozenset(n.strip() for n in (opt("lab_deselect") or "").split(",")
                               if n.strip()),
        )


def load_hints(path: Path) -> Mapping[str, Any]:
    """The ``--lab-hints`` file: YAML or JSON, check name -> hint or {hint key: hint}."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise pytest.UsageError(f"--lab-hints {path}: cannot read it: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise pytest.UsageError(f"--lab-hints {path}: expected a mapping of check -> hint")
    return data


options_key = pytest.StashKey[LabOptions]()
reporter_key = pytest.StashKey[LabReporter]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kube-netlab", "kube-netlab lab checks")
    group.addoption("--lab-cluster", metavar="NAME", help="the cluster to check")
    group.addoption("--lab-engine", metavar="ENGINE",
                    help="engine of the cluster (default: $LAB_ENGINE, else local)")
    group.addoption("--lab-id", metavar="ID", help="the lab being checked, e.g. 01")
    group.addoption("--lab-namespaces", metavar="NS[,NS...]",
                    help="the lab's namespaces (waited for; bare pod names live in the first)")
    group.addoption("--lab-workspace", metavar="DIR",
                    help="the learner's manifests (already applied by `lab check`)")
    group.addoption("--lab-report", metavar="FILE", help="write a JSON report here")
    group.addoption("--lab-settle", metavar="SECONDS", type=float, default=None,
                    help="how long a probe may take to reach its expected result "
                         "(default: the cluster's propagation bound, see Capabilities)")
    group.addoption("--lab-hints", metavar="FILE", help="YAML/JSON hints per check")
    group.addoption("--lab-deselect", metavar="FUNC[,FUNC...]",
                    help="test functions not to run (`lab check` leaves out hidden checks)")


def pytest_plugin_registered(plugin: object, plugin_name: str,
                             manager: pytest.PytestPluginManager) -> None:
    """Once this module is registered under one alias, block the other (no double load)."""
    if plugin is not sys.modules[__name__]:
        return
    for alias in ALIASES:
        if alias != plugin_name and manager.get_plugin(alias) is None:
            manager.set_blocked(alias)


def pytest_configure(config: pytest.Config) -> None:
    options = LabOptions.from_config(config)
    config.stash[options_key] = options
    if not options.active or reporter_key in config.stash:
        return
    reporter = LabReporter(config, lab=options.lab_id, cluster=options.cluster,
                           engine=options.engine, report_path=options.report,
                           hints=options.hints)
    config.stash[reporter_key] = reporter
    config.pluginmanager.register(reporter, "kube-netlab-reporter")
    if config.option.tbstyle == "auto":  # the reporter prints every failure; say it once
        config.option.tbstyle = "no"
        config.option.reportchars = "N"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the ``--lab-deselect`` functions (all their parametrised cases)."""
    options = config.stash.get(options_key, None)
    if options is None or not options.deselect:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        function = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
        (drop if function in options.deselect else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_unconfigure(config: pytest.Config) -> None:
    reporter = config.stash.get(reporter_key, None)
    if reporter is not None:
        del config.stash[reporter_key]
        config.pluginmanager.unregister(reporter)


@pytest.fixture(scope="session")
def lab_options(request: pytest.FixtureRequest) -> LabOptions:
    """The ``--lab-*`` options of this run."""
    return request.config.stash[options_key]


@pytest.fixture(scope="session")
def cluster(lab_options: LabOptions) -> Cluster:
    """The lab's cluster, once its namespaces' pods are scheduled, running and ready."""
    from clusters import selection  # imported late: engines are heavy, most runs need none

    if not lab_options.cluster:
        pytest.fail("no cluster to check: run the checks with `lab check`, "
                    "or pass --lab-cluster NAME", pytrace=False)
    name, engine = lab_options.cluster, lab_options.engine
    try:
        handle = selection.get_engine(engine).connect(name)
    except ClusterError as err:
        pytest.fail(f"cannot use cluster {name} ({engine} engine): {err}", pytrace=False)
    try:
        handle.wait_converged(list(lab_options.namespaces) or None, timeout=CONVERGE_TIMEOUT)
    except WaitTimeout as err:
        where = ", ".join(lab_options.namespaces) or "the cluster"
        pytest.fail(f"the pods of {where} did not all become ready: {err}", pytrace=False)
    return handle


@pytest.fixture(scope="session")
def pods(cluster: Cluster) -> Pods:
    """Pod lookups: ``pods.get(ns, name)``, ``pods.by_label(ns, "app=web")``, ``pods.all(ns)``."""
    return Pods(cluster)


@pytest.fixture
def probe(cluster: Cluster, pods: Pods, lab_options: LabOptions) -> Prober:
    """Settled probes: ``probe.tcp(src, dst, port)``, ``.udp``, ``.http``, ``.ping``."""
    settle = lab_options.settle
    if settle is None:
        settle = cluster.capabilities().propagation_seconds
    return Prober(cluster, pods, settle_seconds=settle, namespaces=lab_options.namespaces)


@pytest.fixture(scope="session")
def workspace(lab_options: LabOptions) -> Workspace:
    """The learner's manifests (path and parsed documents), read-only."""
    if lab_options.workspace is None:
        pytest.fail("no workspace given: pass --lab-workspace DIR", pytrace=False)
    try:
        return Workspace.load(lab_options.workspace)
    except (OSError, yaml.YAMLError) as err:
        pytest.fail(f"cannot read the workspace {lab_options.workspace}: {err}", pytrace=False)


@pytest.fixture(scope="session")
def netpol(cluster: Cluster, lab_options: LabOptions) -> NetpolGrader:
    """NetworkPolicy matrices judged against the cluster's policies: ``netpol.matrix(...)``
    then ``.expect(...)`` / ``.only(...)``; the first matrix proves enforcement (canary)."""
    sources: dict[str, str] = {}
    if lab_options.workspace is not None:
        try:
            sources = workspace_sources(Workspace.load(lab_options.workspace))
        except (OSError, yaml.YAMLError):
            sources = {}  # explanations then name no file; the workspace fixture reports it
    return NetpolGrader(cluster, sources=sources, settle_seconds=lab_options.settle)
