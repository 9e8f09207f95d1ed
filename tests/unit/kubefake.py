"""FakeKube: an in-memory Kubernetes API server for the tests of ``clusters.kube``.

Good enough for apply/get/delete/label/waits, not a Kubernetes: discovery for core v1,
apps/v1, networking.k8s.io/v1, apiextensions.k8s.io/v1 and one custom group
(``netlab.example.com/v1``: Widget); objects with uid, resourceVersion, generation and
creationTimestamp; server-side apply as "replace the top-level fields given" (metadata labels
and annotations replaced when given); ``dryRun=All``; JSON merge patch; label and simple
field selectors; namespace deletion that stays Terminating for a scripted number of reads
(or forever, with a finalizer message); statuses set by the test; error injection.

Two ways in:

* :class:`FakeApi` has the ``request`` method of :class:`clusters.kube.transport.KubeApi`
  and raises the same errors (fast unit tests);
* :func:`serve` runs the fake over real HTTP on 127.0.0.1 and writes a kubeconfig, so the
  real ``kubernetes`` client is driven through ``KubeApi.from_kubeconfig``.

Every request is recorded (:attr:`FakeKube.requests`) with method, path, query, content type
and parsed body, so tests assert exactly what was sent.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from clusters.kube import transport
from clusters.labels import matches_selector, parse_selector

TOKEN = "fake-token"
CREATED = "2025-01-01T00:00:00Z"


@dataclass(frozen=True)
class FakeKind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


BUILTIN = (
    FakeKind("", "v1", "Namespace", "namespaces", False, ("ns",)),
    FakeKind("", "v1", "Node", "nodes", False, ("no",)),
    FakeKind("", "v1", "Pod", "pods", True, ("po",)),
    FakeKind("", "v1", "Service", "services", True, ("svc",)),
    FakeKind("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    FakeKind("", "v1", "Secret", "secrets", True),
    FakeKind("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    FakeKind("", "v1", "Event", "events", True, ("ev",)),
    FakeKind("apps", "v1", "Deployment", "deployments", True, ("deploy",)),
    FakeKind("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",)),
    FakeKind("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",)),
    FakeKind("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",)),
    FakeKind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    FakeKind("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",)),
    FakeKind("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    FakeKind("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
             "customresourcedefinitions", False, ("crd", "crds")),
    FakeKind("netlab.example.com", "v1", "Widget", "widgets", True, ("wd",)),
)
_SUBRESOURCES = {"pods": ("exec", "log", "status", "ephemeralcontainers"),
                 "namespaces": ("finalize", "status"), "deployments": ("scale", "status")}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    path: str  # exact path or fnmatch pattern
    status: int | str  # an HTTP status, or "timeout" (no answer)
    reason: str = ""
    message: str = ""
    causes: list[dict[str, str]] = field(default_factory=list)
    times: int = 1
    query: dict[str, str] = field(default_factory=dict)


def status_body(code: int, reason: str, message: str, *, name: str = "", kind: str = "",
                causes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if kind:
        details["kind"] = kind
    if causes:
        details["causes"] = causes
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code}


class Answer(Exception):
    """Raised inside the fake to answer with an error Status."""

    def __init__(self, code: int, reason: str, message: str, **kw: Any) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, reason, message, **kw)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: mappings merge recursively, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


class FakeKube:
    """The fake API server's state and its request handler."""

    def __init__(self) -> None:
        self.kinds: list[FakeKind] = list(BUILTIN)
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.rejections: dict[tuple[str, str], tuple[str, str]] = {}
        self.terminating_reads = 1  # GETs a deleted namespace stays Terminating for
        self.stuck: dict[str, str] = {}  # namespace -> finalizer message (never goes away)
        self._countdown: dict[str, int] = {}
        self._later: list[tuple[int, Callable[[], None]]] = []
        self._rv = itertools.count(100)
        self.lock = threading.RLock()
        for ns in ("default", "kube-system", "kube-public"):
            self.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                      "status": {"phase": "Active"}})

    # ------------------------------------------------------------ test controls

    def kind_of(self, kind: str) -> FakeKind:
        return next(k for k in self.kinds if k.kind == kind)

    def _key(self, fk: FakeKind, ns: str | None, name: str) -> tuple[str, str, str, str]:
        return (fk.group, fk.plural, (ns or "") if fk.namespaced else "", name)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Put an object straight into the store (as if something else had created it)."""
        fk = next(k for k in self.kinds if k.kind == obj["kind"]
                  and k.api_version == obj["apiVersion"])
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", CREATED)
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        if fk.kind == "Namespace":
            obj.setdefault("status", {"phase": "Active"})
            meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name":
                              meta["name"]}
        self.objects[self._key(fk, meta.get("namespace"), meta["name"])] = obj
        return obj

    def obj(self, kind: str, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get(self._key(self.kind_of(kind), ns, name))

    def set_status(self, kind: str, ns: str | None, name: str, status: dict[str, Any]) -> None:
        """Replace an object's status (what a controller or the kubelet would write)."""
        with self.lock:
            obj = self.obj(kind, ns, name)
            assert obj is not None, f"no {kind} {ns}/{name}"
            obj["status"] = copy.deepcopy(status)
            obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def later(self, requests: int, action: Callable[[], None]) -> None:
        """Run ``action`` once ``requests`` more requests have been handled."""
        self._later.append((len(self.requests) + requests, action))

    def fail(self, method: str, path: str, status: int | str, reason: str = "", message: str = "",
             *, times: int = 1, causes: list[dict[str, str]] | None = None,
             query: dict[str, str] | None = None) -> None:
        """The next ``times`` matching requests get this error (``"timeout"``: no answer)."""
        self.faults.append(Fault(method, path, status, reason, message or reason, causes or [],
                                 times, query or {}))

    def reject(self, kind: str, name: str, field_path: str, message: str) -> None:
        """Apply of this object (dry run or not) is refused with 422 Invalid on that field."""
        self.rejections[(kind, name)] = (field_path, message)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]

    # ------------------------------------------------------------ handling

    def handle(self, rec: Recorded) -> tuple[int | str, Any, list[str]]:
        """(status or "timeout", answer, warnings) for one request."""
        with self.lock:
            self.requests.append(rec)
            for due, action in list(self._later):
                if len(self.requests) > due:
                    self._later.remove((due, action))
                    action()
            for fault in self.faults:
                if fault.times > 0 and fault.method == rec.method and (
                        fault.path == rec.path or fnmatch.fnmatchcase(rec.path, fault.path)) and \
                        all(rec.query.get(k) == v for k, v in fault.query.items()):
                    fault.times -= 1
                    if fault.status == "timeout":
                        return "timeout", None, []
                    code = int(fault.status)
                    return code, status_body(code, fault.reason, fault.message,
                                             causes=fault.causes), []
            try:
                warnings: list[str] = []
                return 200, self._route(rec, warnings), warnings
            except Answer as ans:
                return ans.code, ans.body, []

    def _discovery(self, parts: list[str]) -> Any:
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"]}
        if parts == ["apis"]:
            groups: dict[str, list[str]] = {}
            for k in self.kinds:
                if k.group and k.version not in groups.setdefault(k.group, []):
                    groups[k.group].append(k.version)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in groups.items()]}
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        served = [k for k in self.kinds if k.group == group and k.version == version]
        if not served:
            raise Answer(404, "NotFound", "the server could not find the requested resource")
        resources: list[dict[str, Any]] = []
        for k in served:
            resources.append({"name": k.plural, "singularName": k.kind.lower(), "kind": k.kind,
                              "namespaced": k.namespaced, "shortNames": list(k.short_names),
                              "verbs": ["create", "delete", "get", "list", "patch", "update"]})
            resources += [{"name": f"{k.plural}/{sub}", "singularName": "", "kind": k.kind,
                           "namespaced": k.namespaced, "verbs": ["get"]}
                          for sub in _SUBRESOURCES.get(k.plural, ())]
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}

    def _route(self, rec: Recorded, warnings: list[str]) -> Any:
        parts = [p for p in rec.path.split("/") if p]
        if parts == ["version"]:
            return {"major": "1", "minor": "35", "gitVersion": "v1.35.8"}
        if parts in (["api"], ["apis"]) or (parts[:1] == ["api"] and len(parts) == 2) or (
                parts[:1] == ["apis"] and len(parts) in (2, 3)):
            if len(parts) == 2 and parts[0] == "apis":
                raise Answer(404, "NotFound", "the server could not find the requested resource")
            return self._discovery(parts)
        group, version, rest = ("", parts[1], parts[2:]) if parts[0] == "api" else (
            parts[1], parts[2], parts[3:])
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        fk = next((k for k in self.kinds if k.group == group and k.version == version
                   and k.plural == rest[0]), None)
        if fk is None or len(rest) > 2:
            raise Answer(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        if name is None:
            if rec.method == "GET":
                return self._list(fk, ns, rec.query)
            raise Answer(405, "MethodNotAllowed", f"{rec.method} on a collection is not faked")
        if rec.method == "GET":
            return copy.deepcopy(self._get(fk, ns, name))
        if rec.method == "DELETE":
            return self._delete(fk, ns, name, rec.body)
        if rec.method == "PATCH" and rec.content_type == transport.APPLY_PATCH:
            return self._apply(fk, ns, name, rec, warnings)
        if rec.method == "PATCH" and rec.content_type == transport.MERGE_PATCH:
            obj = self._get(fk, ns, name)
            patched = merge_patch(obj, rec.body)
            if patched != obj:
                patched["metadata"]["resourceVersion"] = str(next(self._rv))
                self.objects[self._key(fk, ns, name)] = patched
            return copy.deepcopy(patched)
        raise Answer(415, "UnsupportedMediaType", f"{rec.method} {rec.content_type} is not faked")

    def _get(self, fk: FakeKind, ns: str | None, name: str) -> dict[str, Any]:
        key = self._key(fk, ns, name)
        obj = self.objects.get(key)
        if obj is not None and fk.kind == "Namespace" and name in self._countdown:
            if self._countdown[name] <= 0:
                self._remove_namespace(name)
                obj = None
            else:
                self._countdown[name] -= 1
        if obj is None:
            raise Answer(404, "NotFound", f'{fk.plural}{"." + fk.group if fk.group else ""} '
                         f'"{name}" not found', name=name, kind=fk.plural)
        return obj

    def _remove_namespace(self, name: str) -> None:
        del self._countdown[name]
        for key in [k for k in self.objects if k[2] == name or k == ("", "namespaces", "", name)]:
            del self.objects[key]

    def _list(self, fk: FakeKind, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        if fk.kind == "Namespace":
            for name in [n for n, left in self._countdown.items() if left <= 0]:
                self._remove_namespace(name)
        selector = parse_selector(query.get("labelSelector", ""))
        fields = [t.split("=", 1) for t in query.get("fieldSelector", "").split(",") if t]
        items = []
        for (group, plural, obj_ns, _name), obj in sorted(self.objects.items()):
            if (group, plural) != (fk.group, fk.plural) or (ns is not None and obj_ns != ns):
                continue
            labels = obj["metadata"].get("labels") or {}
            if matches_selector(labels, selector) and all(
                    str(_dig(obj, f)) == v for f, v in fields):
                item = copy.deepcopy(obj)
                item.pop("apiVersion", None)  # list items carry no type, as on a real server
                item.pop("kind", None)
                items.append(item)
        return {"kind": f"{fk.kind}List", "apiVersion": fk.api_version,
                "metadata": {"resourceVersion": str(next(self._rv))}, "items": items}

    def _delete(self, fk: FakeKind, ns: str | None, name: str, options: Any) -> Any:
        obj = self._get(fk, ns, name)
        if fk.kind == "Namespace":
            if obj["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = CREATED
            obj["status"] = {"phase": "Terminating"}
            obj["spec"] = {"finalizers": ["kubernetes"]}
            if name in self.stuck:
                obj["status"]["conditions"] = [{"type": "NamespaceFinalizersRemaining",
                                                "status": "True", "message": self.stuck[name]}]
                self._countdown[name] = 10**9
            else:
                self._countdown[name] = self.terminating_reads
            return copy.deepcopy(obj)
        del self.objects[self._key(fk, ns, name)]
        return status_body(200, "", "") | {"status": "Success"}

    def _apply(self, fk: FakeKind, ns: str | None, name: str, rec: Recorded,
               warnings: list[str]) -> Any:
        body = rec.body
        if isinstance(body, str | bytes):
            body = yaml.safe_load(body)
        if not rec.query.get("fieldManager"):
            raise Answer(422, "Invalid", "PatchOptions.meta.k8s.io is invalid: fieldManager: "
                         "Required value: is required for apply patch")
        if body.get("kind") != fk.kind or body.get("apiVersion") != fk.api_version:
            raise Answer(400, "BadRequest", f"the body's {body.get('apiVersion')}/{body.get('kind')} "
                         f"does not match the path's {fk.api_version}/{fk.kind}")
        meta = body.get("metadata") or {}
        if meta.get("name") != name or (fk.namespaced and meta.get("namespace", ns) != ns):
            raise Answer(400, "BadRequest", "the name or namespace of the body does not match the URL")
        if fk.namespaced:
            space = self.objects.get(("", "namespaces", "", ns or ""))
            if space is None:
                raise Answer(404, "NotFound", f'namespaces "{ns}" not found', name=str(ns),
                             kind="namespaces")
            if space["metadata"].get("deletionTimestamp"):
                raise Answer(403, "Forbidden", f'{fk.plural} "{name}" is forbidden: unable to create '
                             f"new content in namespace {ns} because it is being terminated")
        if (fk.kind, name) in self.rejections:
            where, message = self.rejections[(fk.kind, name)]
            raise Answer(422, "Invalid", f'{fk.kind} "{name}" is invalid: {where}: {message}',
                         name=name, kind=fk.kind,
                         causes=[{"reason": "FieldValueInvalid", "message": message, "field": where}])
        key = self._key(fk, ns, name)
        old = self.objects.get(key)
        new = copy.deepcopy(old) if old is not None else {"metadata": {}}
        for top, value in body.items():
            if top != "metadata":
                new[top] = copy.deepcopy(value)
        for part in ("labels", "annotations"):
            if part in meta:
                new["metadata"][part] = copy.deepcopy(meta[part])
        new["metadata"]["name"] = name
        if fk.namespaced:
            new["metadata"]["namespace"] = ns
        if fk.kind == "Namespace":  # the API server labels every namespace with its name
            new["metadata"]["labels"] = {**(new["metadata"].get("labels") or {}),
                                         "kubernetes.io/metadata.name": name}
        if rec.query.get("dryRun") == "All":
            return new
        if old is None:
            new["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=CREATED, generation=1,
                                   resourceVersion=str(next(self._rv)))
            if fk.kind in ("Pod", "Namespace"):
                new.setdefault("status", {"phase": "Pending" if fk.kind == "Pod" else "Active"})
            if fk.kind == "CustomResourceDefinition":
                self._register(new)
        elif new != old:
            new["metadata"]["resourceVersion"] = str(next(self._rv))
            if {k: v for k, v in new.items() if k not in ("metadata", "status")} != \
                    {k: v for k, v in old.items() if k not in ("metadata", "status")}:
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if fk.kind == "Ingress" and (body.get("spec") or {}).get("ingressClassName") == "old":
            warnings.append("ingressClassName old is deprecated")
        self.objects[key] = new
        return copy.deepcopy(new)

    def _register(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        names = spec["names"]
        for version in spec.get("versions") or ():
            self.kinds.append(FakeKind(spec["group"], version["name"], names["kind"],
                                       names["plural"], spec.get("scope") == "Namespaced",
                                       tuple(names.get("shortNames") or ())))
        crd["status"] = {"conditions": [{"type": "Established", "status": "True"}]}


class FakeApi:
    """The fake behind the ``request`` method of KubeApi (same errors, no HTTP)."""

    def __init__(self, fake: FakeKube, *, context: str = "fake", namespace: str = "default",
                 server: str = "https://fake.invalid:6443") -> None:
        self.fake = fake
        self.context = context
        self.namespace = namespace
        self.server = server

    def request(self, method: str, path: str, *, body: Any = None, query: Any = None,
                content_type: str = transport.JSON, timeout: float = 30,
                warnings: list[str] | None = None) -> Any:
        method = method.upper()
        rec = Recorded(method, path, dict(query or {}), content_type if body is not None else "",
                       copy.deepcopy(body))
        status, answer, warns = self.fake.handle(rec)
        if status == "timeout":
            raise transport.unreachable(method, path, self.server, f"no answer within {timeout:g}s",
                                        context=self.context)
        if warnings is not None:
            warnings.extend(warns)
        assert isinstance(status, int)
        if not 200 <= status <= 299:
            raise transport.status_error(method, path, status, answer, context=self.context,
                                         server=self.server)
        return copy.deepcopy(answer)


# ---------------------------------------------------------------- over HTTP


def _handler(fake: FakeKube, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            body: Any = None
            if raw:
                body = yaml.safe_load(raw) if ctype.endswith("yaml") else json.loads(raw)
            rec = Recorded(self.command, url.path, dict(parse_qsl(url.query)), ctype if raw else "",
                           body, {k.lower(): v for k, v in self.headers.items()})
            if rec.headers.get("authorization") != f"Bearer {TOKEN}":
                with fake.lock:
                    fake.requests.append(rec)
                status: int | str = 401
                answer: Any = status_body(401, "Unauthorized", "Unauthorized")
                warns: list[str] = []
            else:
                status, answer, warns = fake.handle(rec)
            if status == "timeout":
                stop.wait(10)
                return
            data = json.dumps(answer).encode()
            self.send_response(int(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for w in warns:
                self.send_header("Warning", f'299 - "{w}"')
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


def write_kubeconfig(path: Path, server: str, *, namespace: str = "lab") -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake-user", "user": {"token": TOKEN}},
                  {"name": "nobody", "user": {"token": "wrong"}}],
        "contexts": [{"name": "kind-fake", "context": {"cluster": "fake", "user": "fake-user",
                                                       "namespace": namespace}},
                     {"name": "intruder", "context": {"cluster": "fake", "user": "nobody"}}],
        "current-context": "kind-fake",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def serve(fake: FakeKube, tmp: Path) -> Iterator[tuple[str, Path]]:
    """Serve ``fake`` on 127.0.0.1 (a free port); yields (server URL, kubeconfig path)."""
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake, stop))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield url, write_kubeconfig(tmp / "kubeconfig", url)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


# ---------------------------------------------------------------- statuses


def pod(name: str, ns: str = "default", image: str = "nginx:1.27",
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "app", "image": image}]}}


def ready_status(image: str = "nginx:1.27", ready: bool = True,
                 ready_message: str = "") -> dict[str, Any]:
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    if not ready:
        cond |= {"reason": "ContainersNotReady",
                 "message": ready_message or "containers with unready status: [app]"}
    return {"phase": "Running", "podIP": "10.244.1.5", "conditions": [
        {"type": "PodScheduled", "status": "True"}, cond],
        "containerStatuses": [{"name": "app", "image": image, "ready": ready, "started": True,
                               "restartCount": 0, "state": {"running": {"startedAt": CREATED}}}]}


def waiting_status(reason: str, message: str = "", image: str = "nginx:1.27",
                   restarts: int = 0, last_exit: int | None = None) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "app", "image": image, "ready": False, "started": False,
                          "restartCount": restarts,
                          "state": {"waiting": {"reason": reason, "message": message}}}
    if last_exit is not None:
        cs["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    return {"phase": "Running" if reason == "CrashLoopBackOff" else "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [cs]}


def unschedulable_status(message: str) -> dict[str, Any]:
    return {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}
