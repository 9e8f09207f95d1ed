"""The netlab-probe ephemeral container: the patch sent, the wait, reuse and refusals."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from clusters.errors import ClusterError, ObjectNotFound, WaitTimeout
from clusters.kube import debugpod
from clusters.kube.debugpod import CONTAINER, DebugContainers

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"
PATH = "/api/v1/namespaces/lab/pods/client"


class Refused(ClusterError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def pod(ephemeral: list[dict[str, Any]] | None = None,
        statuses: list[dict[str, Any]] | None = None, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": "client", "namespace": "lab", "uid": "uid-1"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                     "ephemeralContainers": ephemeral or []},
            "status": {"phase": phase, "ephemeralContainerStatuses": statuses or []}}


def status(name: str, **state: Any) -> dict[str, Any]:
    return {"name": name, "state": state}


class FakeApi:
    """The pod behind ``request``; each GET after the patch shows the next scripted status."""

    def __init__(self, obj: dict[str, Any] | None, script: list[Any] | None = None,
                 patch_error: Exception | None = None) -> None:
        self.obj = obj
        self.script: list[Any] = list(script or [])  # a status, or the list of all statuses
        self.patch_error = patch_error
        self.calls: list[tuple[str, str, Any, str]] = []
        self.patched = False  # the script advances only once our container was added

    def request(self, method: str, path: str, *, body: Any = None,
                query: Mapping[str, str] | None = None, content_type: str = "application/json",
                timeout: float = 30) -> Any:
        self.calls.append((method, path, body, content_type))
        if self.obj is None:
            raise ObjectNotFound(f"pods {path} not found")
        if method == "GET" and path == PATH:
            if self.script and self.patched:
                step = self.script.pop(0)
                self.obj["status"]["ephemeralContainerStatuses"] = (
                    step if isinstance(step, list) else [step])
            return copy.deepcopy(self.obj)
        if method == "PATCH" and path == PATH + "/ephemeralcontainers":
            if self.patch_error is not None:
                raise self.patch_error
            self.obj["spec"]["ephemeralContainers"] += body["spec"]["ephemeralContainers"]
            self.patched = True
            return copy.deepcopy(self.obj)
        raise AssertionError(f"unexpected {method} {path}")

    def patches(self) -> list[Any]:
        return [c[2] for c in self.calls if c[0] == "PATCH"]


def test_patch_body_is_a_strategic_merge_of_one_pause_container() -> None:
    assert debugpod.patch_body(CONTAINER, IMAGE) == {"spec": {"ephemeralContainers": [{
        "name": "netlab-probe", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["/agnhost", "pause"], "stdin": False, "tty": False,
        "terminationMessagePolicy": "FallbackToLogsOnError"}]}}
    assert "targetContainerName" not in debugpod.container_spec(CONTAINER, IMAGE)


def test_adds_the_container_and_waits_until_it_runs() -> None:
    api = FakeApi(pod(), [status(CONTAINER, waiting={"reason": "ContainerCreating"}),
                          status(CONTAINER, running={"startedAt": "now"})])
    containers = DebugContainers(api, image=IMAGE, ready_timeout=10)
    assert containers.ensure("lab", "client") == CONTAINER
    ((_, path, body, ctype),) = [c for c in api.calls if c[0] == "PATCH"]
    assert (path, ctype) == (PATH + "/ephemeralcontainers", "application/strategic-merge-patch+json")
    assert body == debugpod.patch_body(CONTAINER, IMAGE)
    assert containers.cached("lab", "client") == ("uid-1", CONTAINER)


def test_cached_pod_needs_no_api_call_until_forgotten() -> None:
    api = FakeApi(pod([debugpod.container_spec(CONTAINER, IMAGE)],
                      [status(CONTAINER, running={})]))
    containers = DebugContainers(api, image=IMAGE)
    assert containers.ensure("lab", "client") == CONTAINER
    calls = len(api.calls)
    assert containers.ensure("lab", "client") == CONTAINER
    assert len(api.calls) == calls and api.patches() == []
    containers.forget("lab", "client")
    assert containers.ensure("lab", "client") == CONTAINER
    assert len(api.calls) > calls


def test_a_dead_probe_container_gets_a_successor() -> None:
    dead = status(CONTAINER, terminated={"reason": "Error", "exitCode": 137})
    api = FakeApi(pod([debugpod.container_spec(CONTAINER, IMAGE)], [dead]))
    api.script = [[dead, status(f"{CONTAINER}-2", running={})]]  # after the patch
    assert DebugContainers(api, image=IMAGE).ensure("lab", "client") == f"{CONTAINER}-2"
    (patch,) = api.patches()
    assert patch["spec"]["ephemeralContainers"][0]["name"] == f"{CONTAINER}-2"


def test_image_pull_failure_names_the_image_and_the_reason() -> None:
    api = FakeApi(pod(), [status(CONTAINER, waiting={
        "reason": "ErrImagePull",
        "message": f'failed to pull and unpack image "{IMAGE}": dial tcp: lookup registry.k8s.io: '
                   "no such host"})])
    with pytest.raises(ClusterError) as err:
        DebugContainers(api, image=IMAGE, ready_timeout=10).ensure("lab", "client")
    text = str(err.value)
    assert f"cannot pull image {IMAGE}: ErrImagePull" in text and "no such host" in text
    assert "kind load docker-image" in text


def test_existing_pull_failure_of_our_image_is_reported_without_a_new_patch() -> None:
    api = FakeApi(pod([debugpod.container_spec(CONTAINER, IMAGE)],
                      [status(CONTAINER, waiting={"reason": "ImagePullBackOff",
                                                  "message": "Back-off pulling image"})]))
    with pytest.raises(ClusterError, match="ImagePullBackOff"):
        DebugContainers(api, image=IMAGE).ensure("lab", "client")
    assert api.patches() == []


def test_forbidden_patch_says_what_is_needed() -> None:
    api = FakeApi(pod(), patch_error=Refused(403, 'pods "client" is forbidden: violates '
                                                  'PodSecurity "restricted:latest"'))
    with pytest.raises(ClusterError) as err:
        DebugContainers(api, image=IMAGE).ensure("lab", "client")
    assert "pods/ephemeralcontainers" in str(err.value) and "restricted" in str(err.value)


def test_missing_subresource_means_ephemeral_containers_are_disabled() -> None:
    api = FakeApi(pod(), patch_error=ObjectNotFound("the server could not find the requested "
                                                    "resource"))
    with pytest.raises(ClusterError) as err:
        DebugContainers(api, image=IMAGE).ensure("lab", "client")
    assert not isinstance(err.value, ObjectNotFound)
    assert "does not serve pods/ephemeralcontainers" in str(err.value)


def test_missing_pod_is_object_not_found() -> None:
    with pytest.raises(ObjectNotFound, match="pod lab/client not found"):
        DebugContainers(FakeApi(None), image=IMAGE).ensure("lab", "client")


def test_finished_pod_is_refused_before_any_patch() -> None:
    api = FakeApi(pod(phase="Succeeded"))
    with pytest.raises(ClusterError, match="has finished"):
        DebugContainers(api, image=IMAGE).ensure("lab", "client")
    assert api.patches() == []


def test_wait_has_a_deadline_and_reports_the_last_state() -> None:
    api = FakeApi(pod(phase="Pending"),
                  [status(CONTAINER, waiting={"reason": "ContainerCreating"})] * 1000)
    with pytest.raises(WaitTimeout) as err:
        DebugContainers(api, image=IMAGE, ready_timeout=0.2).ensure("lab", "client")
    assert "netlab-probe in pod lab/client" in str(err.value)
    assert "waiting (ContainerCreating)" in str(err.value) and "pod Pending" in str(err.value)


def test_image_comes_from_the_pins_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    pins = pytest.importorskip("clusters.kind.pins")
    assert debugpod.default_image("my/agnhost:1") == "my/agnhost:1"
    assert debugpod.default_image() == pins.pin("agnhost").image

    def no_pin(name: str) -> Any:
        raise ValueError(f"no pin named {name!r}")

    monkeypatch.setattr(pins, "pin", no_pin)
    with pytest.raises(ClusterError, match="pass image="):
        debugpod.default_image()


def test_free_name_skips_taken_names() -> None:
    obj = pod([{"name": CONTAINER}, {"name": f"{CONTAINER}-2"}])
    assert debugpod._free_name(obj) == f"{CONTAINER}-3"
    assert [s.name for s in debugpod.probe_states(obj)] == [CONTAINER, f"{CONTAINER}-2"]
