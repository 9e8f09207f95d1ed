"""The context engine: labs on a cluster someone else runs, through a kubeconfig context.

Workshops often share one cloud cluster. This engine never creates or deletes that cluster;
"creating" a cluster name attaches it to a context for one learner:

1. the context is read from the kubeconfig, and refused when its names look like production
   (:mod:`clusters.context.production`) unless ``allow_production``;
2. the API server must answer;
3. what the cluster can do is detected in the learner's own namespaces
   (:mod:`clusters.context.detect`), never assumed;
4. the record (:mod:`clusters.context.record`) keeps all that, so later commands and the
   grader's process find it by the cluster name alone.

The handle is a :class:`~clusters.context.cluster.ScopedCluster`: the learner's objects live
in ``<learner>-<namespace>`` namespaces, nothing outside them is read or changed, and
cluster-scoped changes are refused unless ``allow_cluster_scoped``. Deleting the cluster name
deletes the learner's namespaces (those with our marks) and forgets the record.

Settings come from the CLI (``--context``, ``--learner``, ``--kubeconfig``,
``--allow-production``, ``--allow-cluster-scoped``) or the environment (``LAB_CONTEXT``,
``LAB_LEARNER``, ``KUBECONFIG``, ``LAB_ALLOW_PRODUCTION=1``, ``LAB_ALLOW_CLUSTER_SCOPED=1``);
the learner prefix defaults to the login name.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clusters.context.cluster import ScopedCluster
from clusters.context.detect import detect
from clusters.context.production import ContextInfo, production_signals
from clusters.context.record import ContextRecord, ContextState
from clusters.context.scope import Scope, check_prefix, learner_from_user
from clusters.engine import Capabilities, ClusterInfo, ClusterProfile, StepReporter
from clusters.errors import ClusterError, ClusterExists, ClusterNotFound, EngineUnavailable
from clusters.kube.cluster import KubeCluster
from clusters.kube.transport import KubeApi, KubeconfigError, cluster_servers, kubeconfig_contexts

TRUE = ("1", "true", "yes")
#: Makes the API handle of a record (tests hand in a fake API server).
ApiFactory = Callable[[Path | None, str], Any]
Detector = Callable[[ScopedCluster, Callable[[str], None]], dict[str, Any]]


@dataclass(frozen=True)
class ContextSettings:
    """How to attach: which context, for which learner, and what is allowed."""

    context: str | None = None
    kubeconfig: Path | None = None
    learner: str | None = None
    allow_production: bool = False
    allow_cluster_scoped: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> ContextSettings:
        """Settings from ``given`` (CLI flags; None means not given), else the environment."""
        env = os.environ if env is None else env

        def flag(key: str, var: str) -> bool:
            return bool(given.get(key)) or env.get(var, "").lower() in TRUE
        kubeconfig = given.get("kubeconfig")
        return cls(context=given.get("context") or env.get("LAB_CONTEXT") or None,
                   kubeconfig=Path(kubeconfig) if kubeconfig else None,
                   learner=given.get("learner") or env.get("LAB_LEARNER") or None,
                   allow_production=flag("allow_production", "LAB_ALLOW_PRODUCTION"),
                   allow_cluster_scoped=flag("allow_cluster_scoped", "LAB_ALLOW_CLUSTER_SCOPED"))

    def learner_prefix(self) -> str:
        if self.learner:
            return check_prefix(self.learner)
        try:
            user = os.environ.get("SUDO_USER") or getpass.getuser()
        except (KeyError, OSError):
            user = "learner"
        return learner_from_user(user)


def _default_api(kubeconfig: Path | None, context: str) -> KubeApi:
    return KubeApi.from_kubeconfig(kubeconfig, context)


class ContextEngine:
    """Engine ``context``: see the module docstring."""

    name = "context"

    def __init__(self, settings: ContextSettings | None = None, *, state_dir: Path | None = None,
                 api_factory: ApiFactory = _default_api, detector: Detector | None = None) -> None:
        self.settings = settings or ContextSettings.from_env()
        self.state = ContextState(state_dir)
        self._api = api_factory
        self._detect: Detector = detector or (lambda cluster, say: detect(cluster, say))

    # ------------------------------------------------------------ the kubeconfig

    def context_info(self, context: str | None = None) -> ContextInfo:
        """The context (default: the settings') as the kubeconfig describes it."""
        wanted = context or self.settings.context
        where, contexts, _active = kubeconfig_contexts(self.settings.kubeconfig)
        names = [str(c.get("name")) for c in contexts]
        if not wanted:
            raise EngineUnavailable(
                "context", "no context chosen",
                f"pass --context NAME or set LAB_CONTEXT; the contexts in {where}: "
                f"{', '.join(names) or '(none)'}")
        found = next((c for c in contexts if c.get("name") == wanted), None)
        if found is None:
            raise EngineUnavailable(
                "context", f"kubeconfig {where} has no context {wanted!r}",
                f"choose one of: {', '.join(names) or '(none)'}")
        entry = found.get("context") or {}
        cluster = str(entry.get("cluster") or "")
        return ContextInfo(name=wanted, cluster=cluster, user=str(entry.get("user") or ""),
                           server=cluster_servers(self.settings.kubeconfig).get(cluster, ""),
                           namespace=str(entry.get("namespace") or ""))

    def available(self) -> tuple[bool, str]:
        try:
            info = self.context_info()
        except (EngineUnavailable, KubeconfigError) as err:
            return False, str(err).removeprefix("the context engine cannot run here: ")
        return True, f"kubeconfig context {info.name} ({info.server or 'server not named'})"

    # ------------------------------------------------------------ engine

    def create(self, name: str, profile: ClusterProfile,
               report: StepReporter | None = None) -> ScopedCluster:
        say = report or (lambda s: None)
        settings = self.settings
        record = self.state.read(name)
        learner = settings.learner_prefix()
        if record is not None:
            same = (settings.context in (None, record.context)) and (
                settings.learner in (None, record.learner))
            if not same:
                raise ClusterExists(
                    f"cluster name {name} is attached to context {record.context} for learner "
                    f"{record.learner}; `lab stop --cluster {name}` detaches it (deleting those "
                    "namespaces), or use another --cluster name")
            say(f"Reusing context {record.context} for learner {record.learner}")
            return self._handle(record)
        info = self.context_info()
        signals = production_signals(info)
        if signals and not settings.allow_production:
            raise EngineUnavailable(
                "context", f"context {info.name} looks like a production cluster: "
                + "; ".join(signals),
                "labs create and delete namespaces, pods and policies and send test traffic; "
                "use a cluster made for the course, or pass --allow-production if this one is")
        say(f"Connecting to context {info.name} ({info.server or 'its API server'})")
        api = self._api(settings.kubeconfig, info.name)
        version = api.request("GET", "/version", timeout=15)
        say(f"API server answers (Kubernetes {version.get('gitVersion', '?')}); "
            f"your namespaces: {learner}-*")
        record = ContextRecord(
            name=name, context=info.name, learner=learner, owner=self.state.owner(),
            kubeconfig=str(settings.kubeconfig or ""), server=info.server,
            allow_cluster_scoped=settings.allow_cluster_scoped,
            allow_production=settings.allow_production, production_signals=tuple(signals))
        cluster = self._handle(record, api)
        detected = self._detect(cluster, say)
        record = replace(record, detected=dict(detected))
        self.state.write(record)
        for key, found in sorted(record.detected.items()):
            say(f"Detected {key.replace('_', ' ')}: {found}")
        return self._handle(record, api)

    def _handle(self, record: ContextRecord, api: Any = None) -> ScopedCluster:
        if api is None:
            api = self._api(Path(record.kubeconfig) if record.kubeconfig else None, record.context)
        capabilities: Capabilities = record.capabilities()
        inner = KubeCluster(api, record.name, "context", capabilities=capabilities)
        return ScopedCluster(inner, Scope(record.learner, record.owner), name=record.name,
                             capabilities=capabilities,
                             allow_cluster_scoped=record.allow_cluster_scoped)

    def connect(self, name: str) -> ScopedCluster:
        record = self.state.read(name)
        if record is None:
            raise ClusterNotFound(
                f"cluster name {name} is not attached to a context (attach it with `lab start "
                f"NN --engine context --context CONTEXT --cluster {name}`)")
        return self._handle(record)

    def delete(self, name: str) -> bool:
        """Delete the learner's namespaces (ours only) and forget the record. The cluster
        itself, and anything not marked as this learner's, is left alone."""
        record = self.state.read(name)
        if record is None:
            return False
        cluster = self._handle(record)
        try:
            mine = cluster.learner_namespaces()
            labs = [cluster.scope.lab_ns(n) or n for n in sorted(mine)]
            if labs:
                cluster.reset_namespaces(labs)
        except ClusterError as err:
            raise ClusterError(f"could not delete your namespaces on context {record.context} "
                               f"({err}); the record is kept so `lab stop` can try again") from err
        self.state.remove(name)
        return True

    def info(self, name: str) -> ClusterInfo | None:
        record = self.state.read(name)
        return None if record is None else self._info(record)

    def _info(self, record: ContextRecord) -> ClusterInfo:
        found = ", ".join(f"{k.replace('_', ' ')} {'yes' if v.present else 'no'}"
                          for k, v in sorted(record.detected.items()))
        return ClusterInfo(
            name=record.name, engine="context", profile=ClusterProfile(workers=0),
            running=True,
            detail=f"context {record.context}, learner {record.learner} "
                   f"(namespaces {record.learner}-*); detected: {found or 'nothing yet'}")

    def list(self) -> list[ClusterInfo]:
        infos = []
        for name in self.state.names():
            record = self.state.read(name)
            if record is not None:
                infos.append(self._info(record))
        return infos
