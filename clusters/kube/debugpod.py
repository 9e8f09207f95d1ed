"""The ``netlab-probe`` ephemeral container: agnhost, running ``pause``, in a source pod.

A probe from a pod must leave from that pod's network namespace, and the learner's image
may have no tools at all. An ephemeral container joins the pod's network namespace (every
container of a pod shares it, so ``targetContainerName`` stays unset) without restarting
the pod, and brings agnhost's tools (curl, dig, nc, ``agnhost connect``). It is added once
per pod through the ``pods/{name}/ephemeralcontainers`` subresource with a strategic merge
patch (the merge key is the container name, so the patch appends it), and then reused by
every probe from that pod: ephemeral containers cannot be removed or restarted, and they go
away with the pod.

Failures say what to do: an image that cannot be pulled (which image, the kubelet's reason
and message), a cluster that refuses ephemeral containers (RBAC or Pod Security: 403) or
does not serve the subresource (Kubernetes before 1.23: 404), a container that never runs
(:class:`~clusters.errors.WaitTimeout` with the last state seen).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clusters.errors import ClusterError, ObjectNotFound
from clusters.proc import wait_until

CONTAINER = "netlab-probe"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
#: Waiting reasons that end the wait: the kubelet will not get further by itself soon.
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                           "ErrImageNeverPull", "RegistryUnavailable", "SignatureValidationFailed"})
START_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError",
                            "RunContainerError", "PreStartHookError"})


def default_image(explicit: str | None = None) -> str:
    """The agnhost image: ``explicit`` when given, else the ``agnhost`` pin of the kind
    engine (imported here, lazily, so this package works without it)."""
    if explicit:
        return explicit
    try:
        from clusters.kind.pins import pin

        return str(pin("agnhost").image)
    except (ImportError, ValueError, KeyError, AttributeError) as err:
        raise ClusterError("no agnhost image for the probe container: clusters.kind.pins has no "
                           f"'agnhost' pin ({err}); pass image=... to the prober") from err


def container_spec(name: str, image: str) -> dict[str, Any]:
    """The ephemeral container: agnhost doing nothing until a probe execs into it."""
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["/agnhost", "pause"], "stdin": False, "tty": False,
            "terminationMessagePolicy": "FallbackToLogsOnError"}


def patch_body(name: str, image: str) -> dict[str, Any]:
    """The strategic merge patch for ``pods/{pod}/ephemeralcontainers`` that appends it."""
    return {"spec": {"ephemeralContainers": [container_spec(name, image)]}}


@dataclass(frozen=True)
class ProbeState:
    """What a pod says about one of our probe containers."""

    name: str
    image: str = ""
    state: str = "absent"  # running | waiting | terminated | absent (no status yet)
    reason: str = ""
    message: str = ""
    phase: str = ""  # the pod's phase

    @property
    def fatal(self) -> bool:
        return (self.state == "terminated" or self.phase in ("Succeeded", "Failed")
                or self.reason in PULL_FAILURES or self.reason in START_FAILURES)

    def __str__(self) -> str:
        text = self.state + (f" ({self.reason})" if self.reason else "")
        if self.message:
            text += f": {self.message}"
        return text + (f"; pod {self.phase}" if self.phase and self.phase != "Running" else "")


def probe_states(pod: Mapping[str, Any]) -> list[ProbeState]:
    """Our probe containers in the pod (``netlab-probe``, ``netlab-probe-2``, ...), in order."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "")
    statuses = {s.get("name"): s for s in status.get("ephemeralContainerStatuses") or ()}
    found = []
    for ctr in spec.get("ephemeralContainers") or ():
        name = str(ctr.get("name") or "")
        if name != CONTAINER and not name.startswith(CONTAINER + "-"):
            continue
        found.append(_state(name, str(ctr.get("image") or ""), statuses.get(name), phase))
    return found


def _state(name: str, image: str, status: Mapping[str, Any] | None, phase: str) -> ProbeState:
    if not status:
        return ProbeState(name, image, phase=phase)
    states = status.get("state") or {}
    for key in ("running", "terminated", "waiting"):
        if key in states and states[key] is not None:
            detail = states[key] or {}
            message = str(detail.get("message") or "")
            if key == "terminated" and not message:
                message = f"exit code {detail.get('exitCode')}"
            return ProbeState(name, image, key, str(detail.get("reason") or ""), message, phase)
    return ProbeState(name, image, phase=phase)


def _free_name(pod: Mapping[str, Any]) -> str:
    spec = pod.get("spec") or {}
    taken = {str(c.get("name")) for key in ("containers", "initContainers", "ephemeralContainers")
             for c in spec.get(key) or ()}
    if CONTAINER not in taken:
        return CONTAINER
    return next(f"{CONTAINER}-{n}" for n in range(2, len(taken) + 3)
                if f"{CONTAINER}-{n}" not in taken)


class DebugContainers:
    """Adds the probe container to source pods and knows which ones have it running.

    ``api`` is a :class:`clusters.kube.transport.KubeApi` (anything with its ``request``).
    The cache maps a pod to (uid, container name); :meth:`forget` drops an entry when an exec
    finds the container or the pod gone, so the next :meth:`ensure` looks again.
    """

    def __init__(self, api: Any, *, image: str | None = None, ready_timeout: float = 60) -> None:
        self.api = api
        self._image = image
        self.ready_timeout = ready_timeout
        self._ready: dict[tuple[str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()  # guards the two dicts
        self._pod_locks: dict[tuple[str, str], threading.Lock] = {}

    @property
    def image(self) -> str:
        return default_image(self._image)

    def forget(self, namespace: str, pod: str) -> None:
        with self._lock:
            self._ready.pop((namespace, pod), None)

    def cached(self, namespace: str, pod: str) -> tuple[str, str] | None:
        """(pod uid, container name) when the container is known to run."""
        return self._ready.get((namespace, pod))

    def ensure(self, namespace: str, pod: str) -> str:
        """The name of a running probe container in the pod, added and waited for when needed."""
        key = (namespace, pod)
        with self._lock:
            pod_lock = self._pod_locks.setdefault(key, threading.Lock())
        with pod_lock:  # one pod's probes wait for its container; other pods' do not
            known = self._ready.get(key)
            if known is not None:
                return known[1]
            obj = self._get(namespace, pod)
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            phase = str((obj.get("status") or {}).get("phase") or "")
            if phase in ("Succeeded", "Failed"):
                raise ClusterError(f"pod {namespace}/{pod} has finished (phase {phase}): probes "
                                   "run only from running pods")
            name = self._usable(namespace, pod, obj)
            if name is None:
                name = _free_name(obj)
                self._add(namespace, pod, name)
            self._wait(namespace, pod, name)
            with self._lock:
                self._ready[key] = (uid, name)
            return name

    # ------------------------------------------------------------ steps

    def _path(self, namespace: str, pod: str) -> str:
        return f"/api/v1/namespaces/{namespace}/pods/{pod}"

    def _get(self, namespace: str, pod: str) -> dict[str, Any]:
        try:
            obj = self.api.request("GET", self._path(namespace, pod))
        except ObjectNotFound as err:
            raise ObjectNotFound(f"pod {namespace}/{pod} not found") from err
        if not isinstance(obj, dict):
            raise ClusterError(f"GET pod {namespace}/{pod}: unexpected answer {obj!r:.200}")
        return obj

    def _usable(self, namespace: str, pod: str, obj: Mapping[str, Any]) -> str | None:
        """An existing probe container that runs or may still start; None when a new one is
        needed (none yet, or only dead ones). A pull failure of our own image is final."""
        image = self.image
        for state in probe_states(obj):
            if state.state == "running":
                return state.name
        for state in probe_states(obj):
            if not state.fatal:
                return state.name
            if state.reason in PULL_FAILURES and state.image == image:
                raise self._failed(namespace, pod, state)
        return None

    def _add(self, namespace: str, pod: str, name: str) -> None:
        path = self._path(namespace, pod) + "/ephemeralcontainers"
        try:
            self.api.request("PATCH", path, body=patch_body(name, self.image),
                             content_type=STRATEGIC_MERGE)
        except ObjectNotFound as err:
            self._get(namespace, pod)  # raises ObjectNotFound when the pod itself went away
            raise ClusterError(
                f"this cluster does not serve pods/ephemeralcontainers ({err}); probes from pods "
                "need ephemeral containers (Kubernetes 1.23 or later)") from err
        except ClusterError as err:
            if getattr(err, "status", None) == 403 or "forbidden" in str(err).lower():
                raise ClusterError(
                    f"adding the probe container to pod {namespace}/{pod} was refused: {err}\n"
                    "  probes from pods need `patch` on pods/ephemeralcontainers (RBAC) and an "
                    "admission policy that admits an agnhost container running as root (Pod "
                    "Security 'restricted' refuses it; 'baseline' admits it)") from err
            raise ClusterError(f"adding the probe container to pod {namespace}/{pod} failed: "
                               f"{err}") from err

    def _observe(self, namespace: str, pod: str, name: str) -> ProbeState:
        obj = self._get(namespace, pod)
        for state in probe_states(obj):
            if state.name == name:
                return state
        return ProbeState(name, phase=str((obj.get("status") or {}).get("phase") or ""))

    def _wait(self, namespace: str, pod: str, name: str) -> None:
        state = wait_until(
            f"the probe container {name} in pod {namespace}/{pod} to run",
            lambda: self._observe(namespace, pod, name),
            lambda s: s.state == "running" or s.fatal,
            timeout=self.ready_timeout, describe=str)
        if state.state != "running":
            raise self._failed(namespace, pod, state)

    def _failed(self, namespace: str, pod: str, state: ProbeState) -> ClusterError:
        where = f"the probe container {state.name} in pod {namespace}/{pod}"
        image = state.image or self.image
        if state.reason in PULL_FAILURES:
            return ClusterError(
                f"{where} cannot pull image {image}: {state.reason}"
                + (f": {state.message}" if state.message else "")
                + "\n  on kind, load it into the nodes (`kind load docker-image IMAGE --name "
                "CLUSTER`) or let the nodes reach the registry")
        if state.phase in ("Succeeded", "Failed"):
            return ClusterError(f"pod {namespace}/{pod} has finished (phase {state.phase}): probes "
                                "run only from running pods")
        return ClusterError(f"{where} does not run (image {image}): {state}")
