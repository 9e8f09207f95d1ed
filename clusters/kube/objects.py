"""apply / get / delete / label on a real API server.

``apply`` is server-side apply (field manager ``kube-netlab``, forced), done in steps so
that one bad document changes nothing:

1. every document is checked here (mapping, apiVersion/kind/name; the local engine's strict
   schema for the kinds it knows) and its kind resolved through discovery;
2. every document the server can judge now is sent with ``dryRun=All`` in apply order;
3. only then are Namespaces and CustomResourceDefinitions applied, the CRDs waited for
   (Established) and discovery refreshed;
4. the documents that could not be judged before (in a namespace created by this batch, or
   custom resources of a CRD in this batch) are dry-run; if one is refused now, only step
   3's objects exist and the error says so;
5. everything else is applied, in kubectl-like order (Namespaces, CRDs, RBAC and config,
   Services, workloads, then custom resources).

``created``/``configured``/``unchanged`` come from the object before and after: absent,
then resourceVersion changed or not.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clusters.engine import ApplyResult
from clusters.errors import ManifestError, ObjectNotFound
from clusters.kube.resources import Requester, Resource, Resources, UnknownKind, resources_for
from clusters.kube.transport import APPLY_PATCH, MERGE_PATCH, ApiError, ApiNotFound
from clusters.labels import format_selector
from clusters.local.validation import drop_nulls
from clusters.proc import wait_until

FIELD_MANAGER = "kube-netlab"
CRD_KIND = "CustomResourceDefinition"
CRD_API = "apiextensions.k8s.io/v1"

#: Apply order by kind (like the install order of common tools): what others depend on first.
ORDER = (
    "Namespace", CRD_KIND, "PriorityClass", "StorageClass", "IngressClass", "GatewayClass",
    "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Secret",
    "ConfigMap", "LimitRange", "ResourceQuota", "PersistentVolume", "PersistentVolumeClaim",
    "NetworkPolicy", "Service", "Endpoints", "EndpointSlice", "DaemonSet", "Pod", "ReplicaSet",
    "Deployment", "StatefulSet", "Job", "CronJob", "HorizontalPodAutoscaler",
    "PodDisruptionBudget", "Ingress", "Gateway", "HTTPRoute",
)
_SERVER_MANAGED = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation",
                   "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")


def _rank(kind: str, group: str) -> int:
    if kind in ORDER:
        return ORDER.index(kind)
    builtin = group == "" or "." not in group or group.endswith(".k8s.io")
    return len(ORDER) if builtin else len(ORDER) + 1


@dataclass
class _Doc:
    index: int
    body: dict[str, Any]
    res: Resource
    name: str
    namespace: str | None
    deferred: bool = False
    #: its kind is defined by a CRD of the same batch
    needs_crd: bool = False
    before: dict[str, Any] | None = None
    result: ApplyResult | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def rank(self) -> int:
        return _rank(self.res.kind, self.res.group)

    @property
    def ref(self) -> str:
        return f"{self.res.kind.lower()}/{self.name}"


def _clean(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What is sent: the manifest without nulls, status and server-managed metadata (so a
    ``kubectl get -o yaml`` export applies cleanly instead of conflicting)."""
    body: dict[str, Any] = drop_nulls(copy.deepcopy(dict(doc)))
    body.pop("status", None)
    meta = body.get("metadata")
    if isinstance(meta, dict):
        for key in _SERVER_MANAGED:
            meta.pop(key, None)
    return body


def _local_problems(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The local engine's strict schema check, for the kinds it knows at the same apiVersion.

    Its messages about the local engine's own limits (IPv4 only, no generateName) do not
    apply to a real cluster and are dropped; the server judges every other kind itself."""
    from clusters.local import kinds, validation

    info = kinds.find_kind(str(doc.get("kind")))
    if info is None or not info.appliable or info.api_version != doc.get("apiVersion"):
        return []
    _body, problems = validation.check(doc)
    return [(p, m) for p, m in problems if "local engine" not in m]


def crd_resources(docs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Resource]:
    """(apiVersion, kind) -> Resource for the custom resources the batch's CRDs define."""
    out: dict[tuple[str, str], Resource] = {}
    for doc in docs:
        if doc.get("kind") != CRD_KIND or not isinstance(doc.get("spec"), Mapping):
            continue
        spec, names = doc["spec"], doc["spec"].get("names") or {}
        for version in spec.get("versions") or ():
            res = Resource(kind=str(names.get("kind")), group=str(spec.get("group")),
                           version=str(version.get("name")), plural=str(names.get("plural")),
                           namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                           singular=str(names.get("singular") or ""))
            out[(res.api_version, res.kind)] = res
    return out


def _one(doc: Any, index: int, resources: Resources, batch_crds: Mapping[tuple[str, str], Resource],
         default_namespace: str) -> tuple[_Doc | None, list[tuple[str, str]]]:
    if not isinstance(doc, Mapping):
        return None, [("", "a document must be a mapping (apiVersion, kind, metadata, ...)")]
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        return None, [("kind", "required value is missing (a string such as Pod)")]
    if not isinstance(api_version, str) or not api_version:
        return None, [("apiVersion", "required value is missing")]
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        return None, [("metadata.name", "required value is missing (apply needs a name; "
                                        "generateName cannot be applied)")]
    problems = _local_problems(doc)
    if problems:
        return None, problems
    needs_crd = False
    try:
        res = resources.for_kind(kind, api_version)
    except UnknownKind as err:
        if (api_version, kind) not in batch_crds:
            return None, [("kind", err.message)]
        res, needs_crd = batch_crds[(api_version, kind)], True
    body = _clean(doc)
    namespace: str | None = None
    if res.namespaced:
        namespace = str(body["metadata"].get("namespace") or default_namespace)
        body["metadata"]["namespace"] = namespace
    else:
        body["metadata"].pop("namespace", None)
    return _Doc(index, body, res, name, namespace, deferred=needs_crd, needs_crd=needs_crd), []


def _refused(errors: list[ManifestError], source: str, tail: str) -> ManifestError:
    if len(errors) == 1:
        err = errors[0]
        return ManifestError(f"{err.message}; {tail}", source=source, index=err.index, path=err.path)
    listing = "\n".join(f"- {e}" for e in errors)
    return ManifestError(f"{len(errors)} documents were refused; {tail}:\n{listing}", source=source)


def _problem_error(problems: list[tuple[str, str]], source: str, index: int) -> ManifestError:
    path, message = problems[0]
    if len(problems) > 1:
        message += "".join(f"\n  - field {p}: {m}" if p else f"\n  - {m}" for p, m in problems[1:])
    return ManifestError(message, source=source, index=index, path=path)


def _server_refusal(err: ApiError, d: _Doc, source: str) -> ManifestError:
    """A dry-run refusal as a ManifestError naming the document and the field."""
    if isinstance(err, ApiNotFound) and err.message.startswith("namespaces "):
        return ManifestError(f'{err.message}: apply the Namespace first, or put it in the same '
                             "batch", source=source, index=d.index, path="metadata.namespace")
    path = err.causes[0].field if err.causes else _field_in(err.message)
    text = f"{d.ref} refused by the API server ({err.status} {err.reason}): {err.message}"
    rest = [c for c in err.causes if c.message not in err.message]
    text += "".join(f"\n  - {c}" for c in rest)
    return ManifestError(text, source=source, index=d.index, path=path)


def _field_in(message: str) -> str:
    """The field path in a schema refusal (``.spec.foo: field not declared in schema``)."""
    for line in message.splitlines():
        head, sep, _ = line.rpartition(": field not declared in schema")
        if sep:
            return head.rsplit(" ", 1)[-1].lstrip(".")
        if 'unknown field "' in line:
            return line.split('unknown field "', 1)[1].split('"', 1)[0]
    return ""


class Applier:
    """One ``apply`` call (kept as an object so each step is a small method)."""

    def __init__(self, api: Requester, resources: Resources, source: str,
                 default_namespace: str, crd_timeout: float) -> None:
        self.api = api
        self.resources = resources
        self.source = source
        self.default_namespace = default_namespace
        self.crd_timeout = crd_timeout
        self.applied: list[_Doc] = []

    def prepare(self, docs: Sequence[Mapping[str, Any]]) -> list[_Doc]:
        batch_crds = crd_resources([d for d in docs if isinstance(d, Mapping)])
        prepared, errors = [], []
        for index, doc in enumerate(docs):
            item, problems = _one(doc, index, self.resources, batch_crds, self.default_namespace)
            if item is None:
                errors.append(_problem_error(problems, self.source, index))
            else:
                prepared.append(item)
        if errors:
            raise _refused(errors, self.source, "nothing was applied")
        new_namespaces = {d.name for d in prepared if d.res.kind == "Namespace"
                          and self._fetch(d) is None}
        for d in prepared:
            if d.namespace in new_namespaces:
                d.deferred = True  # the server cannot judge it before its namespace exists
        return sorted(prepared, key=lambda d: d.rank)  # stable: file order within a kind

    def _fetch(self, d: _Doc) -> dict[str, Any] | None:
        try:
            d.before = self.api.request("GET", d.res.item(d.namespace, d.name))
        except ObjectNotFound:
            d.before = None
        return d.before

    def _patch(self, d: _Doc, dry_run: bool) -> Any:
        query = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        kwargs: dict[str, Any] = {} if dry_run else {"warnings": d.warnings}
        return self.api.request("PATCH", d.res.item(d.namespace, d.name), body=d.body,
                                query=query, content_type=APPLY_PATCH, **kwargs)

    def dry_run(self, docs: list[_Doc], tail: str) -> None:
        errors = []
        for d in docs:
            try:
                self._patch(d, dry_run=True)
            except ApiError as err:
                # Old servers answer a schema mismatch of an apply patch with a 500.
                if err.status in (400, 404, 409, 422) or (
                        err.status == 500 and "typed patch" in err.message):
                    errors.append(_server_refusal(err, d, self.source))
                else:
                    raise
        if errors:
            raise _refused(sorted(errors, key=lambda e: e.index or 0), self.source, tail)

    def apply(self, d: _Doc) -> None:
        try:
            after = self._patch(d, dry_run=False)
        except ApiError as err:
            done = ", ".join(a.ref for a in self.applied) or "nothing"
            raise ManifestError(f"{d.ref} was refused after the dry run passed: {err} "
                                f"(applied before it: {done})", source=self.source,
                                index=d.index) from err
        self.applied.append(d)
        before_rv = ((d.before or {}).get("metadata") or {}).get("resourceVersion")
        after_rv = ((after or {}).get("metadata") or {}).get("resourceVersion")
        action = "created" if d.before is None else (
            "unchanged" if before_rv and before_rv == after_rv else "configured")
        d.result = ApplyResult(d.res.kind, d.namespace, d.name, action, tuple(d.warnings))

    def wait_established(self, crds: list[_Doc]) -> None:
        def pending() -> list[str]:
            left = []
            for d in crds:
                obj = self.api.request("GET", d.res.item(None, d.name))
                conds = (obj.get("status") or {}).get("conditions") or ()
                if not any(c.get("type") == "Established" and c.get("status") == "True"
                           for c in conds):
                    left.append(d.name)
            return left
        wait_until("CustomResourceDefinitions to be Established", pending, lambda left: not left,
                   timeout=self.crd_timeout, describe=lambda left: "not yet: " + ", ".join(left))
        self.resources.invalidate()

    def run(self, docs: Sequence[Mapping[str, Any]]) -> list[ApplyResult]:
        prepared = self.prepare(docs)
        ready = [d for d in prepared if not d.deferred]
        later = [d for d in prepared if d.deferred]
        for d in ready:
            if d.res.kind != "Namespace":  # Namespaces were fetched by prepare()
                self._fetch(d)
        self.dry_run(ready, "nothing was applied")
        first = [d for d in ready if d.res.kind in ("Namespace", CRD_KIND)]
        for d in first:
            self.apply(d)
        if later:
            crds = [d for d in first if d.res.kind == CRD_KIND]
            if crds and any(d.needs_crd for d in later):
                self.wait_established(crds)
            created = {f.name for f in first if f.res.kind == "Namespace" and f.before is None}
            for d in later:
                if d.needs_crd:
                    d.res = self.resources.for_kind(d.res.kind, d.res.api_version)
                if d.namespace in created:
                    d.before = None  # its namespace was just created: nothing is in it
                else:
                    self._fetch(d)
            made = ", ".join(f"{d.ref} {d.result.action}" for d in first if d.result)
            self.dry_run(later, f"only these were applied before it: {made or 'nothing'}; "
                                "nothing else was applied")
        for d in sorted([d for d in ready if d not in first] + later, key=lambda d: d.rank):
            self.apply(d)
        return [d.result for d in sorted(prepared, key=lambda d: d.index) if d.result is not None]


def apply(api: Requester, docs: Sequence[Mapping[str, Any]], source: str = "", *,
          default_namespace: str = "default", crd_timeout: float = 60,
          resources: Resources | None = None) -> list[ApplyResult]:
    """Server-side apply of ``docs`` (results in document order); ManifestError naming the
    source, the document index and the field when the batch is refused."""
    return Applier(api, resources or resources_for(api), source, default_namespace,
                   crd_timeout).run(docs)


# ---------------------------------------------------------------- get / delete / label


def _with_type(obj: dict[str, Any], res: Resource) -> dict[str, Any]:
    """The object with its apiVersion and kind first (list items come without them)."""
    return {"apiVersion": obj.get("apiVersion") or res.api_version,
            "kind": obj.get("kind") or res.kind, **obj}


def _selector_text(selector: Mapping[str, Any] | str) -> str:
    if isinstance(selector, str):
        return selector
    if "matchLabels" in selector or "matchExpressions" in selector:
        return format_selector(selector)
    return format_selector({"matchLabels": dict(selector)})


def _default_ns(api: Requester) -> str:
    return str(getattr(api, "namespace", "") or "default")


def get(api: Requester, kind: str, namespace: str | None = None, name: str | None = None,
        selector: Mapping[str, Any] | str | None = None, *,
        resources: Resources | None = None) -> list[dict[str, Any]]:
    """Objects of ``kind`` (any name kubectl accepts); ``namespace=None`` lists a namespaced
    kind in every namespace. With ``name``: a list of one, or ObjectNotFound (a namespaced
    kind without a namespace is looked up in the context's default namespace)."""
    res = (resources or resources_for(api)).resolve(kind)
    if name:
        ns = (namespace or _default_ns(api)) if res.namespaced else None
        path = res.item(ns, name)
        try:
            return [_with_type(api.request("GET", path), res)]
        except ApiNotFound as err:
            where = f' in namespace "{ns}"' if ns else ""
            raise ApiNotFound(f'{res.plural} "{name}" not found{where}', method="GET", path=path,
                              status=404, reason="NotFound", server_message=err.message) from err
    query: dict[str, str] = {"limit": "500"}
    if selector:
        query["labelSelector"] = _selector_text(selector)
    items: list[dict[str, Any]] = []
    path = res.collection(namespace if res.namespaced else None)
    while True:
        page = api.request("GET", path, query=query) or {}
        items += [_with_type(i, res) for i in page.get("items") or ()]
        more = (page.get("metadata") or {}).get("continue")
        if not more:
            return items
        query["continue"] = str(more)


def delete(api: Requester, kind: str, namespace: str | None, name: str, *,
           resources: Resources | None = None, wait: bool = True,
           timeout: float = 120) -> bool:
    """Delete one object and (like ``kubectl delete``) wait until it is gone; what it owns
    goes in the background. False when it did not exist. The wait ends early if an object
    of the same name but another uid appears (it was re-created)."""
    res = (resources or resources_for(api)).resolve(kind)
    ns = (namespace or _default_ns(api)) if res.namespaced else None
    path = res.item(ns, name)
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    try:
        answer = api.request("DELETE", path, body=options)
    except ObjectNotFound:
        return False
    uid = ((answer or {}).get("metadata") or {}).get("uid") if isinstance(answer, dict) else None
    if wait:
        def still_there() -> str:
            try:
                obj = api.request("GET", path)
            except ObjectNotFound:
                return ""
            meta = obj.get("metadata") or {}
            if uid and meta.get("uid") != uid:
                return ""
            finalizers = list(meta.get("finalizers") or ()) + list(
                (obj.get("spec") or {}).get("finalizers") or ())
            return f"{res.kind.lower()}/{name} still exists" + (
                " (terminating" + (f", finalizers: {', '.join(finalizers)}" if finalizers else "")
                + ")" if meta.get("deletionTimestamp") else "")
        wait_until(f"{res.kind.lower()}/{name} to be deleted", still_there, lambda s: not s,
                   timeout=timeout, describe=str)
    return True


def label(api: Requester, kind: str, namespace: str | None, name: str,
          set_labels: Mapping[str, str], remove: Sequence[str] = (), *,
          resources: Resources | None = None) -> dict[str, Any]:
    """Set and remove labels with a JSON merge patch (null removes); the updated object."""
    res = (resources or resources_for(api)).resolve(kind)
    ns = (namespace or _default_ns(api)) if res.namespaced else None
    labels: dict[str, str | None] = {key: None for key in remove}
    labels.update(set_labels)
    patch = {"metadata": {"labels": labels}}
    path = res.item(ns, name)
    try:
        updated = api.request("PATCH", path, body=patch, query={"fieldManager": FIELD_MANAGER},
                              content_type=MERGE_PATCH)
    except ApiNotFound as err:
        where = f' in namespace "{ns}"' if ns else ""
        raise ApiNotFound(f'{res.plural} "{name}" not found{where}', method="PATCH", path=path,
                          status=404, reason="NotFound", server_message=err.message) from err
    return _with_type(updated, res)


__all__ = ["FIELD_MANAGER", "ORDER", "apply", "delete", "get", "label"]
