""":class:`ScopedCluster`: a learner's view of a shared cluster, in the lab's own names.

It wraps a :class:`~clusters.kube.cluster.KubeCluster` and sends every call through the
learner's :class:`~clusters.context.scope.Scope`:

* namespaced objects are read and changed only in the learner's namespaces; listing "every
  namespace" lists those; a namespace of someone else's, or a system namespace, is refused;
* namespaces are created with the learner's marks, and deleted or reset only when they
  carry them;
* cluster-scoped objects may be read (nodes, IngressClasses); changing one is refused unless
  the record allows it (``--allow-cluster-scoped``), and then only objects with our marks
  may be deleted or relabelled;
* probes and ``exec`` get their DNS names rewritten, and results come back in lab names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from clusters.context.scope import LEARNER_LABEL, OWNER_LABEL, OutsideScope, Scope
from clusters.engine import ApplyResult, Capabilities, ExecResult, KindRef
from clusters.errors import ManifestError, ObjectNotFound
from clusters.kube.cluster import KubeCluster
from clusters.kube.objects import crd_resources
from clusters.kube.resources import UnknownKind
from clusters.probing import Observation, Outcome, ProbeSpec, Source

NAMESPACE = "Namespace"


class ScopedCluster:
    """The :class:`clusters.engine.Cluster` protocol for one learner on a shared cluster."""

    def __init__(self, inner: KubeCluster, scope: Scope, *, name: str,
                 capabilities: Capabilities, allow_cluster_scoped: bool = False) -> None:
        self.inner = inner
        self.name = name
        self.engine = "context"
        self._scope = scope
        self._capabilities = capabilities
        self.allow_cluster_scoped = allow_cluster_scoped
        self._known_loaded = False

    def __repr__(self) -> str:
        return (f"ScopedCluster(name={self.name!r}, learner={self._scope.prefix!r}, "
                f"context={getattr(self.inner.api, 'context', '?')!r})")

    def capabilities(self) -> Capabilities:
        return self._capabilities

    def resolve_kind(self, kind: str) -> KindRef:
        return self.inner.resolve_kind(kind)

    # ------------------------------------------------------------ the learner's namespaces

    def learner_namespaces(self) -> dict[str, dict[str, Any]]:
        """The learner's namespaces on the cluster: real name -> object (ours only)."""
        found = self.inner.get(NAMESPACE, None, None, self._scope.marks)
        return {o["metadata"]["name"]: o for o in found
                if self._scope.lab_ns(o["metadata"]["name"]) is not None}

    @property
    def scope(self) -> Scope:
        """The scope, knowing the learner's namespaces (read once from the cluster)."""
        if not self._known_loaded:
            names = [self._scope.lab_ns(n) or n for n in self.learner_namespaces()]
            self._scope = self._scope.knowing(names)
            self._known_loaded = True
        return self._scope

    def _forget_known(self) -> None:
        self._known_loaded = False

    def _require_ours(self, real: str, action: str) -> bool:
        """True when namespace ``real`` exists and is ours, False when it does not exist;
        OutsideScope when it exists and is someone else's."""
        try:
            found = self.inner.get(NAMESPACE, None, real)
        except ObjectNotFound:
            return False
        if not self.scope.owns(found[0]):
            raise OutsideScope(
                f"cannot {action} namespace {real}: it belongs to {self.scope.owner_of(found[0])}"
                "; pick another learner prefix with --learner")
        return True

    def _namespaced(self, kind: str) -> tuple[str, bool]:
        res = self.inner.resources.resolve(kind)
        return res.kind, res.namespaced

    def _refuse_cluster_scoped(self, kind: str, what: str) -> None:
        if not self.allow_cluster_scoped:
            raise OutsideScope(
                f"{what}: {kind} is cluster-scoped, and changing cluster-scoped objects on a "
                "shared cluster is refused (it would change the cluster for every learner); "
                "an instructor can allow it with `lab start --allow-cluster-scoped`")

    # ------------------------------------------------------------ objects

    def apply(self, docs: Sequence[Mapping[str, Any]], source: str = "") -> list[ApplyResult]:
        batch_ns = [str((d.get("metadata") or {}).get("name")) for d in docs
                    if isinstance(d, Mapping) and d.get("kind") == NAMESPACE]
        scope = self.scope.knowing(batch_ns)
        batch_crds = crd_resources([d for d in docs if isinstance(d, Mapping)])
        out: list[Any] = []
        for index, doc in enumerate(docs):
            if not isinstance(doc, Mapping) or not isinstance(doc.get("kind"), str) or \
                    not isinstance(doc.get("apiVersion"), str):
                out.append(doc)  # the apply below says what is wrong with it, and where
                continue
            key = (str(doc["apiVersion"]), str(doc["kind"]))
            try:
                res = self.inner.resources.for_kind(key[1], key[0])
            except UnknownKind:
                if key not in batch_crds:
                    out.append(doc)  # the apply below names the unknown kind
                    continue
                res = batch_crds[key]  # defined by a CRD of this batch: scoped like the rest
            name = str((doc.get("metadata") or {}).get("name") or "")
            try:
                if res.kind == NAMESPACE:
                    self._require_ours(scope.cluster_ns(name), "apply")
                elif not res.namespaced:
                    self._refuse_cluster_scoped(res.kind, f"{res.kind.lower()}/{name}")
                out.append(scope.inbound(doc, res.namespaced))
            except OutsideScope as err:
                where = "metadata.namespace" if res.namespaced else "metadata.name" \
                    if res.kind == NAMESPACE else "kind"
                raise ManifestError(str(err), source=source, index=index, path=where) from err
        results = self.inner.apply(out, source)
        if batch_ns:
            self._forget_known()
        scope = self.scope
        return [replace(r, namespace=scope.lab_ns(r.namespace) or r.namespace if r.namespace
                        else None,
                        name=scope.lab_ns(r.name) or r.name if r.kind == NAMESPACE else r.name)
                for r in results]

    def get(
        self, kind: str, namespace: str | None = None, name: str | None = None,
        selector: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        real_kind, namespaced = self._namespaced(kind)
        scope = self.scope
        if real_kind == NAMESPACE:
            if name:
                real = scope.cluster_ns(name)
                if not self._require_ours(real, "read"):
                    raise ObjectNotFound(f'namespaces "{name}" not found')
                return [scope.outbound(o) for o in self.inner.get(NAMESPACE, None, real)]
            mine = self.learner_namespaces()
            wanted = {o["metadata"]["name"] for o in self.inner.get(NAMESPACE, None, None,
                                                                    selector)} \
                if selector else set(mine)
            return [scope.outbound(o) for n, o in sorted(mine.items()) if n in wanted]
        if not namespaced:
            return [scope.outbound(o) for o in self.inner.get(real_kind, None, name, selector)]
        if namespace is not None:
            return [scope.outbound(o)
                    for o in self.inner.get(real_kind, scope.cluster_ns(namespace), name, selector)]
        items: list[dict[str, Any]] = []
        for real in sorted(self.learner_namespaces()):
            try:
                items += self.inner.get(real_kind, real, name, selector)
            except ObjectNotFound:
                continue
        if name and not items:
            raise ObjectNotFound(f'{kind} "{name}" not found in your namespaces')
        return [scope.outbound(o) for o in items]

    def delete(self, kind: str, namespace: str | None, name: str, *, wait: bool = True,
               timeout: float = 120) -> bool:
        real_kind, namespaced = self._namespaced(kind)
        if real_kind == NAMESPACE:
            real = self.scope.cluster_ns(name)
            if not self._require_ours(real, "delete"):
                return False
            self._forget_known()
            return self.inner.delete(NAMESPACE, None, real, wait=wait, timeout=timeout)
        if namespaced:
            return self.inner.delete(real_kind, self.scope.cluster_ns(namespace or "default"), name,
                                     wait=wait, timeout=timeout)
        self._refuse_cluster_scoped(real_kind, f"delete {real_kind.lower()}/{name}")
        try:
            found = self.inner.get(real_kind, None, name)
        except ObjectNotFound:
            return False
        if not self.scope.owns(found[0]):
            raise OutsideScope(f"cannot delete {real_kind.lower()}/{name}: it belongs to "
                               f"{self.scope.owner_of(found[0])}")
        return self.inner.delete(real_kind, None, name, wait=wait, timeout=timeout)

    def label(
        self, kind: str, namespace: str | None, name: str,
        set_labels: Mapping[str, str], remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        touched = set(set_labels) | set(remove)
        if touched & {LEARNER_LABEL, OWNER_LABEL}:
            raise OutsideScope(f"the labels {LEARNER_LABEL} and {OWNER_LABEL} mark what "
                               "kube-netlab made for you; they cannot be changed")
        real_kind, namespaced = self._namespaced(kind)
        if real_kind == NAMESPACE:
            real = self.scope.cluster_ns(name)
            if not self._require_ours(real, "label"):
                raise ObjectNotFound(f'namespaces "{name}" not found')
            return self.scope.outbound(self.inner.label(NAMESPACE, None, real, set_labels, remove))
        if namespaced:
            return self.scope.outbound(self.inner.label(
                real_kind, self.scope.cluster_ns(namespace or "default"), name, set_labels, remove))
        self._refuse_cluster_scoped(real_kind, f"label {real_kind.lower()}/{name}")
        found = self.inner.get(real_kind, None, name)
        if not self.scope.owns(found[0]):
            raise OutsideScope(f"cannot label {real_kind.lower()}/{name}: it belongs to "
                               f"{self.scope.owner_of(found[0])}")
        return self.scope.outbound(self.inner.label(real_kind, None, name, set_labels, remove))

    # ------------------------------------------------------------ commands and probes

    def exec(
        self, namespace: str, pod: str, argv: Sequence[str], *, capture: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``argv`` in the pod; DNS names of lab namespaces in it are rewritten, and
        captured output comes back in lab names (live output shows the real ones)."""
        scope = self.scope
        args = [scope.rewrite_text(str(a)) for a in argv]
        result = self.inner.exec(scope.cluster_ns(namespace), pod, args, capture=capture,
                                 timeout=timeout)
        if not capture:
            return result
        return ExecResult(result.returncode, scope.restore_text(result.stdout),
                          scope.restore_text(result.stderr), tuple(argv))

    def node_exec(
        self, node: str, argv: Sequence[str], *, capture: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        raise OutsideScope(f"the context engine cannot run commands on nodes (node {node}): a "
                           "shared cluster gives learners no access to its machines; run the "
                           "tool in one of your pods with `lab exec`")

    def probe(self, spec: ProbeSpec) -> Observation:
        if spec.source.pod is None:
            where = "a node" if spec.source.node is not None else "this machine"
            return Observation(Outcome.UNSUPPORTED,
                               f"the context engine probes only from your pods, not from {where}: "
                               "a shared cluster gives no access to its nodes, and this machine "
                               "is not on the cluster's network")
        scope = self.scope
        try:
            ns = scope.cluster_ns(spec.source.namespace or "default")
        except OutsideScope as err:
            return Observation(Outcome.ERROR, str(err))
        real = replace(spec, source=Source(ns, spec.source.pod),
                       target=scope.rewrite_text(spec.target),
                       host_header=scope.rewrite_text(spec.host_header)
                       if spec.host_header else spec.host_header)
        seen = self.inner.probe(real)
        return replace(seen, detail=scope.restore_text(seen.detail),
                       body=scope.restore_text(seen.body) if seen.body is not None else None,
                       extra=_restore(seen.extra, scope))

    # ------------------------------------------------------------ waits

    def wait_converged(self, namespaces: Sequence[str] | None = None, timeout: float = 60) -> None:
        real = [self.scope.cluster_ns(n) for n in namespaces] if namespaces else \
            sorted(self.learner_namespaces())
        if real:
            self.inner.wait_converged(real, timeout)

    def reset_namespaces(self, namespaces: Sequence[str], timeout: float = 120) -> None:
        real = [self.scope.cluster_ns(n) for n in namespaces]
        for name in real:
            self._require_ours(name, "reset")
        self._forget_known()
        self.inner.reset_namespaces(real, timeout)


def _restore(value: Any, scope: Scope) -> Any:
    if isinstance(value, str):
        return scope.restore_text(value)
    if isinstance(value, dict):
        return {k: _restore(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, scope) for v in value]
    return value

