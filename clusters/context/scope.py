"""A learner's share of a shared cluster: namespaces with the learner's prefix.

On a cluster many learners use at once, learner ``alice`` working on lab 04 gets the
namespaces ``alice-lab04`` and ``alice-monitoring`` where the lab says ``lab04`` and
``monitoring``. Labs, checks and the learner's manifests keep the lab's names; a
:class:`Scope` translates on the way in (manifests, names, probe targets) and back on the way
out (objects read, probe results), so everything above the engine sees the lab's own world.

What is translated, inbound:

* ``metadata.namespace`` of namespaced objects, and ``metadata.name`` of a Namespace, which
  also gets the learner's marks (two labels) so it is known as this learner's;
* anywhere else in an object: a ``namespace`` field (Gateway API references, RoleBinding
  subjects, EndpointSlice target references), a ``namespaces`` list (pod affinity), and the
  ``kubernetes.io/metadata.name`` label in a ``namespaceSelector`` (NetworkPolicy peers);
* DNS names of the learner's namespaces in any string: ``web.lab04``, ``web.lab04.svc``,
  ``web.lab04.svc.cluster.local`` and pod records ``1-2-3-4.lab04.pod...`` (container
  arguments, ExternalName, ConfigMap data, probe targets, ``lab exec`` arguments).

System namespaces (``kube-system``, ``kube-public``, ``kube-node-lease``) are never
translated: a policy may still name ``kube-system`` to reach the cluster DNS, but objects
in them cannot be read or changed through a scope (:class:`OutsideScope`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clusters.errors import ClusterError

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
#: The learner a namespace (or an allowed cluster-scoped object) belongs to.
LEARNER_LABEL = "netlab.dev/learner"
#: Which installation of kube-netlab made it: two learners who picked the same prefix on two
#: machines never delete each other's namespaces.
OWNER_LABEL = "netlab.dev/owner"
#: The label the API server puts on every Namespace (its name).
NAME_LABEL = "kubernetes.io/metadata.name"
MARKS = (LEARNER_LABEL, OWNER_LABEL)

PREFIX_PATTERN = re.compile(r"[a-z]([-a-z0-9]{0,18}[a-z0-9])?")
MAX_NAMESPACE = 63
#: What may follow a namespace in a DNS name: ``.svc``/``.pod``, or the end of the name.
_DNS_TAIL = r"(?=\.(?:svc|pod)\b|\.?(?![-A-Za-z0-9.]))"


class OutsideScope(ClusterError):
    """A request for something outside the learner's namespaces (refused, never guessed)."""


def check_prefix(prefix: str) -> str:
    """``prefix`` when it can start a namespace name; ValueError saying what fits."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(
            f"learner prefix {prefix!r} cannot start a namespace name: use 1 to 20 characters, "
            "lowercase letters, digits and '-', starting with a letter and ending with a "
            "letter or digit (e.g. --learner alice)")
    return prefix


def learner_from_user(user: str) -> str:
    """A prefix made from a login name (``Alice.Smith`` -> ``alice-smith``)."""
    text = re.sub(r"[^a-z0-9]+", "-", user.lower()).strip("-")
    text = re.sub(r"^[^a-z]+", "", text)[:20].rstrip("-")
    return text or "learner"


@dataclass(frozen=True)
class Scope:
    """The translation for one learner; ``known`` are the learner's namespaces by their lab
    names (``lab04``), the ones whose DNS names are rewritten in strings."""

    prefix: str
    owner: str
    known: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    def knowing(self, names: Iterable[str]) -> Scope:
        """This scope, also rewriting DNS names of ``names`` (lab names)."""
        extra = frozenset(n for n in names if n not in SYSTEM_NAMESPACES)
        if extra <= self.known:
            return self
        return Scope(self.prefix, self.owner, self.known | extra)

    # ------------------------------------------------------------ names

    @property
    def marks(self) -> dict[str, str]:
        return {LEARNER_LABEL: self.prefix, OWNER_LABEL: self.owner}

    def cluster_ns(self, namespace: str) -> str:
        """The real name of the lab namespace ``namespace``; OutsideScope for system ones."""
        if namespace in SYSTEM_NAMESPACES:
            raise OutsideScope(
                f"namespace {namespace} is outside your namespaces on this shared cluster "
                f"(the context engine reads and changes only {self.prefix}-* namespaces it made)")
        real = f"{self.prefix}-{namespace}"
        if len(real) > MAX_NAMESPACE:
            raise OutsideScope(f"namespace {namespace!r} with your prefix is {real!r}, longer than "
                               f"{MAX_NAMESPACE} characters; use a shorter --learner prefix")
        return real

    def lab_ns(self, real: str) -> str | None:
        """The lab name of the real namespace ``real``, or None when it is not this prefix's."""
        head = f"{self.prefix}-"
        return real[len(head):] if real.startswith(head) and len(real) > len(head) else None

    def owns(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` carries this learner's marks (made by this installation)."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in self.marks.items())

    def owner_of(self, obj: Mapping[str, Any]) -> str:
        """Who made ``obj``, in words, for refusals."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(LEARNER_LABEL) == self.prefix:
            return (f"learner {self.prefix} from another kube-netlab installation (owner "
                    f"{labels.get(OWNER_LABEL, '?')}, yours is {self.owner})")
        if LEARNER_LABEL in labels:
            return f"learner {labels[LEARNER_LABEL]}"
        return "someone else (it has no kube-netlab labels)"

    # ------------------------------------------------------------ strings

    def _known_pattern(self, names: Iterable[str]) -> re.Pattern[str] | None:
        alts = sorted((re.escape(n) for n in names), key=len, reverse=True)
        if not alts:
            return None
        return re.compile(r"(?<=[A-Za-z0-9_]\.)(" + "|".join(alts) + ")" + _DNS_TAIL)

    def rewrite_text(self, text: str) -> str:
        """``web.lab04.svc`` -> ``web.alice-lab04.svc`` for the known namespaces."""
        pattern = self._known_pattern(self.known)
        return text if pattern is None else pattern.sub(lambda m: f"{self.prefix}-{m[1]}", text)

    def restore_text(self, text: str) -> str:
        """The reverse of :meth:`rewrite_text`, and ``alice-lab04`` -> ``lab04`` anywhere."""
        if not self.known:
            return text
        alts = "|".join(sorted((re.escape(n) for n in self.known), key=len, reverse=True))
        return re.sub(r"(?<![-A-Za-z0-9])" + re.escape(self.prefix) + "-(" + alts + r")(?![-A-Za-z0-9])",
                      lambda m: m[1], text)

    # ------------------------------------------------------------ objects

    def inbound(self, doc: Mapping[str, Any], namespaced: bool) -> dict[str, Any]:
        """``doc`` as it goes to the cluster (a deep copy; ``doc`` is left alone)."""
        out = _walk(doc, self._in_value, self._in_namespaces, self._in_selector, skip_meta=True)
        meta = out.setdefault("metadata", {})
        if not isinstance(meta, dict):
            return out
        if out.get("kind") == "Namespace" and out.get("apiVersion") == "v1":
            meta["name"] = self.cluster_ns(str(meta.get("name") or ""))
            meta["labels"] = {**(meta.get("labels") or {}), **self.marks}
        elif namespaced:
            meta["namespace"] = self.cluster_ns(str(meta.get("namespace") or "default"))
        else:
            meta["labels"] = {**(meta.get("labels") or {}), **self.marks}
        return out

    def outbound(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """``obj`` as read from the cluster, in the lab's names (a deep copy)."""
        out = _walk(obj, self._out_value, self._out_namespaces, self._out_selector,
                    skip_meta=True)
        meta = out.get("metadata")
        if not isinstance(meta, dict):
            return out
        ns = meta.get("namespace")
        if isinstance(ns, str):
            meta["namespace"] = self.lab_ns(ns) or ns
        if out.get("kind") == "Namespace" and "namespace" not in meta:
            name = str(meta.get("name") or "")
            labels = meta.get("labels")
            if self.lab_ns(name) is not None and isinstance(labels, dict) and \
                    labels.get(LEARNER_LABEL) == self.prefix:
                meta["name"] = self.lab_ns(name)
                if labels.get(NAME_LABEL) == name:
                    labels[NAME_LABEL] = meta["name"]
        labels = meta.get("labels")
        if isinstance(labels, dict):
            for key in MARKS:
                labels.pop(key, None)
            if not labels:
                meta.pop("labels")
        return out

    def _in_value(self, value: str) -> str:
        return self.rewrite_text(value)

    def _out_value(self, value: str) -> str:
        return self.restore_text(value)

    def _in_namespaces(self, value: str) -> str:
        return value if value in SYSTEM_NAMESPACES else self.cluster_ns(value)

    def _out_namespaces(self, value: str) -> str:
        return self.lab_ns(value) or value

    def _in_selector(self, selector: dict[str, Any]) -> dict[str, Any]:
        return _map_name_label(selector, self._in_namespaces)

    def _out_selector(self, selector: dict[str, Any]) -> dict[str, Any]:
        return _map_name_label(selector, self._out_namespaces)


def _map_name_label(selector: dict[str, Any], change: Any) -> dict[str, Any]:
    labels = selector.get("matchLabels")
    if isinstance(labels, dict) and isinstance(labels.get(NAME_LABEL), str):
        labels[NAME_LABEL] = change(labels[NAME_LABEL])
    for expr in selector.get("matchExpressions") or ():
        if isinstance(expr, dict) and expr.get("key") == NAME_LABEL and \
                isinstance(expr.get("values"), list):
            expr["values"] = [change(v) if isinstance(v, str) else v for v in expr["values"]]
    return selector


def _walk(node: Any, text: Any, namespace: Any, selector: Any, *, skip_meta: bool) -> Any:
    """A deep copy of ``node`` with strings, ``namespace``/``namespaces`` fields and
    ``namespaceSelector`` mappings passed through the given functions. The top-level
    ``metadata`` is copied untouched (its names are handled by the caller)."""
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if skip_meta and key == "metadata":
                out[key] = _copy(value)
            elif key == "namespace" and isinstance(value, str) and value:
                out[key] = namespace(value)
            elif key == "namespaces" and isinstance(value, list) and \
                    all(isinstance(v, str) for v in value):
                out[key] = [namespace(v) for v in value]
            elif key == "namespaceSelector" and isinstance(value, Mapping):
                out[key] = selector(_walk(value, text, namespace, selector, skip_meta=False))
            else:
                out[key] = _walk(value, text, namespace, selector, skip_meta=False)
        return out
    if isinstance(node, list):
        return [_walk(v, text, namespace, selector, skip_meta=False) for v in node]
    if isinstance(node, str):
        return text(node)
    return node


def _copy(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
