"""REST calls to a Kubernetes API server through the official ``kubernetes`` client.

:class:`KubeApi` is the one door to a real cluster: every request of the kind and context
engines goes through :meth:`KubeApi.request`, which sends JSON (or an apply patch), returns
the parsed answer and turns every failure into an error of :mod:`clusters.errors` that says
what was asked (method, path), what the server answered (status, reason, message, the field
causes) and what it means for a person (RBAC refusal, cluster down)::

    ApiError(ClusterError)         any refused request: method, path, status, reason, causes
    ├── ApiNotFound(ObjectNotFound) 404
    ├── ApiConflict                409 AlreadyExists / Conflict
    ├── ApiInvalid                 422 Invalid (the causes name the fields)
    ├── ApiForbidden               403 (RBAC, or a namespace being terminated)
    ├── ApiUnauthorized            401 (credentials rejected)
    └── ApiUnreachable             no answer: connection refused, timeout, TLS failure
    KubeconfigError(ClusterError)  kubeconfig missing/unreadable, unknown context

Only the client's REST layer and its kubeconfig loader are used (not its generated API
classes), so one code path serves built-in kinds and custom resources alike, and nothing
global (``kubernetes.config.load_kube_config``'s default configuration) is mutated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from clusters.errors import ClusterError, ObjectNotFound

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


# ---------------------------------------------------------------- errors


@dataclass(frozen=True)
class Cause:
    """One field problem from a Status' ``details.causes``."""

    field: str
    message: str
    reason: str = ""

    def __str__(self) -> str:
        return f"field {self.field}: {self.message}" if self.field else self.message


class ApiError(ClusterError):
    """The API server refused a request (or could not be reached)."""

    def __init__(
        self, message: str, *, method: str, path: str, status: int | None, reason: str = "",
        server_message: str = "", causes: Sequence[Cause] = (),
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.message = server_message or message
        self.causes = tuple(causes)
        super().__init__(message)


class ApiNotFound(ObjectNotFound, ApiError):
    """404: the object (or the namespace it would live in) does not exist."""


class ApiConflict(ApiError):
    """409: AlreadyExists, or a write against a stale resourceVersion."""


class ApiInvalid(ApiError):
    """422: the object was refused by validation; ``causes`` name the fields."""


class ApiForbidden(ApiError):
    """403: RBAC refuses the verb, or the namespace is being terminated."""


class ApiUnauthorized(ApiError):
    """401: the credentials of the kubeconfig context were rejected."""


class ApiUnreachable(ApiError):
    """No HTTP answer: connection refused, timeout, TLS failure."""


class KubeconfigError(ClusterError):
    """The kubeconfig file is missing or unreadable, or has no such context."""


@dataclass(frozen=True)
class Target:
    """What a REST path addresses: ``/apis/apps/v1/namespaces/web/deployments/api/scale``."""

    group: str = ""
    version: str = ""
    resource: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None

    @classmethod
    def parse(cls, path: str) -> Target:
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return cls()
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        return cls(group, version, rest[0] if rest else "", namespace,
                   rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)

    def verb(self, method: str) -> str:
        if method == "GET":
            return "get" if self.name else "list"
        if method == "DELETE" and not self.name:
            return "deletecollection"
        return _VERBS.get(method, method.lower())

    def describe(self) -> str:
        """``deployments.apps "api" in namespace "web"`` (for messages)."""
        text = self.resource + (f".{self.group}" if self.group else "")
        if self.subresource:
            text += f"/{self.subresource}"
        if self.name:
            text += f' "{self.name}"'
        if self.namespace:
            text += f' in namespace "{self.namespace}"'
        elif self.resource and not self.name:
            text += " (all namespaces or cluster-wide)"
        return text


def status_error(
    method: str, path: str, status: int, body: Any, *, context: str = "", server: str = ""
) -> ApiError:
    """The error for an HTTP error answer; ``body`` is the parsed Status (or raw text)."""
    doc = body if isinstance(body, Mapping) else {}
    reason = str(doc.get("reason") or "")
    text = str(doc.get("message") or (body if isinstance(body, str) else "") or "").strip()
    details = doc.get("details") if isinstance(doc.get("details"), Mapping) else {}
    causes = [Cause(str(c.get("field") or ""), str(c.get("message") or ""), str(c.get("reason") or ""))
              for c in (details or {}).get("causes") or () if isinstance(c, Mapping)]
    target = Target.parse(path)
    head = f"{method} {path}: {status}{' ' + reason if reason else ''}"
    if status == 403:
        refused = f"not allowed to {target.verb(method)} {target.describe()}"
        if "being terminated" in text:
            msg = f"{head}: {text} (wait until the namespace is gone, then try again)"
        else:
            who = f" of context {context!r}" if context else ""
            msg = (f"{head}: the credentials{who} are {refused}: RBAC refuses it; ask the "
                   f"cluster's admin for a Role that allows it ({text})")
        return ApiForbidden(msg, method=method, path=path, status=status, reason=reason,
                            server_message=text, causes=causes)
    msg = f"{head}: {text}" if text else head
    if causes:
        msg += "".join(f"\n  - {c}" for c in causes)
    cls: type[ApiError] = {404: ApiNotFound, 409: ApiConflict, 422: ApiInvalid,
                           401: ApiUnauthorized}.get(status, ApiError)
    if status == 401:
        msg += f" (the credentials of context {context!r} were rejected by {server})"
    return cls(msg, method=method, path=path, status=status, reason=reason,
               server_message=text, causes=causes)


def unreachable(method: str, path: str, server: str, why: str, *, context: str = "") -> ApiUnreachable:
    """The error for a request that got no HTTP answer at all."""
    where = f" (context {context!r})" if context else ""
    msg = (f"{method} {path}: cannot reach the Kubernetes API server at {server}{where}: {why}; "
           "the cluster may be down or still starting (for kind: `docker ps` shows its nodes)")
    return ApiUnreachable(msg, method=method, path=path, status=None, reason="Unreachable",
                          server_message=why)


# ---------------------------------------------------------------- kubeconfig


def _kubeconfig_files(path: Path | None) -> list[str]:
    if path is not None:
        return [str(path)]
    env = os.environ.get("KUBECONFIG", "")
    files = [p for p in env.split(os.pathsep) if p] if env else []
    return files or [str(Path("~/.kube/config").expanduser())]


def _contexts(files: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    from kubernetes import config as kconfig

    missing = [f for f in files if not Path(f).expanduser().is_file()]
    if len(missing) == len(files):
        raise KubeconfigError(f"kubeconfig {os.pathsep.join(files)} does not exist (pass "
                              "--kubeconfig FILE or set KUBECONFIG)")
    try:
        contexts, active = kconfig.list_kube_config_contexts(config_file=os.pathsep.join(files))
    except (kconfig.ConfigException, OSError, ValueError, TypeError, KeyError) as err:
        raise KubeconfigError(f"cannot read kubeconfig {os.pathsep.join(files)}: {err}") from err
    except Exception as err:  # YAML errors and friends from the loader
        raise KubeconfigError(f"cannot read kubeconfig {os.pathsep.join(files)}: {err}") from err
    return list(contexts or []), active


def kubeconfig_contexts(path: Path | None) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None]:
    """(the files, joined as $KUBECONFIG joins them; every context; the current one)."""
    files = _kubeconfig_files(path)
    contexts, active = _contexts(files)
    return os.pathsep.join(files), contexts, active


def cluster_servers(path: Path | None) -> dict[str, str]:
    """The API server URL of each cluster entry of the kubeconfig (the first file that names
    a cluster wins, as kubectl merges them); unreadable files are skipped."""
    import yaml

    servers: dict[str, str] = {}
    for file in _kubeconfig_files(path):
        try:
            doc = yaml.safe_load(Path(file).expanduser().read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for entry in doc.get("clusters") or () if isinstance(doc, dict) else ():
            if isinstance(entry, dict) and isinstance(entry.get("cluster"), dict):
                servers.setdefault(str(entry.get("name")), str(entry["cluster"].get("server", "")))
    return servers


class KubeApi:
    """One API server as seen through one kubeconfig context."""

    def __init__(self, api_client: Any, *, context: str = "", namespace: str = "default") -> None:
        self.api_client = api_client
        self.context = context
        #: The context's default namespace (``default`` when it names none).
        self.namespace = namespace
        self.server: str = str(api_client.configuration.host).rstrip("/")

    @classmethod
    def from_kubeconfig(cls, path: Path | None, context: str | None) -> KubeApi:
        """A client for ``context`` of the kubeconfig ``path`` (``None``: ``$KUBECONFIG``, else
        ``~/.kube/config``; context ``None``: its current context). Nothing global changes."""
        from kubernetes import config as kconfig

        files = _kubeconfig_files(path)
        contexts, active = _contexts(files)
        names = [str(c.get("name")) for c in contexts]
        where = os.pathsep.join(files)
        if context is None:
            if not active:
                raise KubeconfigError(f"kubeconfig {where} has no current context; choose one "
                                      f"of: {', '.join(names) or '(none)'}")
            chosen = active
        else:
            found = [c for c in contexts if c.get("name") == context]
            if not found:
                raise KubeconfigError(f"kubeconfig {where} has no context {context!r}; its "
                                      f"contexts: {', '.join(names) or '(none)'}")
            chosen = found[0]
        import urllib3
        from kubernetes.client import Configuration

        config = type.__call__(Configuration)  # a fresh one, never the client's shared default
        # Retry a refused connection briefly (an API server restarting), and an idempotent
        # request once after a dropped connection; a slow answer is not retried three times.
        config.retries = urllib3.util.Retry(total=3, connect=3, read=1, redirect=0, status=0,
                                            backoff_factor=0.1)
        try:
            client = kconfig.new_client_from_config(config_file=where, context=chosen["name"],
                                                    persist_config=False,
                                                    client_configuration=config)
        except Exception as err:  # ConfigException, missing cert files, bad exec plugin, ...
            raise KubeconfigError(f"kubeconfig {where}, context {chosen['name']!r}: {err}") from err
        namespace = str((chosen.get("context") or {}).get("namespace") or "default")
        return cls(client, context=str(chosen["name"]), namespace=namespace)

    # ------------------------------------------------------------ requests

    def _headers(self, content_type: str, has_body: bool) -> dict[str, str]:
        headers = dict(self.api_client.default_headers)
        headers["Accept"] = JSON
        if has_body:
            headers["Content-Type"] = content_type
        # The kubeconfig loader keeps the bearer token (refreshed by its hook for exec and
        # OIDC credentials) in the configuration; client certificates live in the pool.
        for auth in self.api_client.configuration.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[auth["key"]] = auth["value"]
        return headers

    def request(
        self, method: str, path: str, *, body: Any = None, query: Mapping[str, str] | None = None,
        content_type: str = JSON, timeout: float = 30, warnings: list[str] | None = None,
    ) -> Any:
        """Send one request; the parsed JSON answer (``None`` for an empty one).

        Apply patches are sent as JSON text (JSON is YAML). ``warnings``, when given,
        collects the server's ``Warning`` headers (deprecations, ignored fields).
        """
        import urllib3
        from kubernetes.client.exceptions import ApiException

        method = method.upper()
        url = self.server + path + (f"?{urlencode(dict(query))}" if query else "")
        payload: Any = body
        if body is not None and not content_type.endswith("json"):
            payload = body if isinstance(body, str | bytes) else json.dumps(body)
        headers = self._headers(content_type, body is not None)
        try:
            resp = self.api_client.rest_client.request(
                method, url, headers=headers, body=payload, _request_timeout=timeout)
            status = int(resp.status)
            data = resp.data if getattr(resp, "data", None) is not None else resp.read()
            answer_headers = resp.getheaders()
        except ApiException as err:  # older clients raise for non-2xx; status 0 = TLS failure
            if not err.status:
                raise unreachable(method, path, self.server, str(err.reason),
                                  context=self.context) from err
            status, data, answer_headers = int(err.status), err.body or b"", err.headers or {}
        except urllib3.exceptions.MaxRetryError as err:
            raise unreachable(method, path, self.server, _why(err.reason or err, timeout),
                              context=self.context) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise unreachable(method, path, self.server, _why(err, timeout),
                              context=self.context) from err
        if warnings is not None:
            warnings.extend(_warnings(answer_headers))
        parsed = _parse(data)
        if not 200 <= status <= 299:
            raise status_error(method, path, status, parsed, context=self.context,
                               server=self.server)
        return parsed

    def close(self) -> None:
        self.api_client.close()

    def __repr__(self) -> str:
        return f"KubeApi(context={self.context!r}, server={self.server!r})"


def _why(err: object, timeout: float | None = None) -> str:
    import urllib3

    text = str(err)
    if "Connection refused" in text or isinstance(err, ConnectionRefusedError):
        return "connection refused"  # (urllib3 2 makes NewConnectionError a timeout class)
    if isinstance(err, urllib3.exceptions.TimeoutError):
        return f"no answer within {timeout:g}s" if timeout else "timed out"
    if "timed out" in text.lower():
        return "timed out"
    return text


def _warnings(headers: Any) -> list[str]:
    values: list[str] = []
    getlist = getattr(headers, "getlist", None)
    raw = getlist("Warning") if callable(getlist) else [headers.get("Warning")] if headers else []
    for value in raw:
        if not value:
            continue
        # RFC 7234 form: 299 - "text"
        code, _, rest = str(value).partition(" ")
        agent, _, text = rest.partition(" ")
        values.append(text.strip().strip('"') if code.isdigit() and agent else str(value))
    return values


def _parse(data: bytes | str | None) -> Any:
    if not data:
        return None
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        return json.loads(text)
    except ValueError:
        return text
