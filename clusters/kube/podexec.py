"""Running a command in a pod's container through the API's ``pods/exec`` subresource.

The exec travels over a websocket (``kubernetes.stream``) with four channels: stdout,
stderr, and the error channel, which carries a ``Status`` when the command ends: ``Success``,
or ``Failure`` with reason ``NonZeroExitCode`` and a cause ``ExitCode`` whose message is the
exit code. Any other Failure means the command never ran (no such executable, ...), which
is a :class:`~clusters.errors.CommandError` without an exit code, as :func:`clusters.proc.run`
reports a command that could not be started.

A refused websocket handshake says little (``Handshake status 404``), so the pod is read to
explain it: a missing pod is :class:`~clusters.errors.ObjectNotFound`, a container that is
missing or not running is :class:`ContainerUnavailable`, saying its state.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from clusters.engine import ExecResult
from clusters.errors import ClusterError, CommandError, ObjectNotFound

STDOUT, STDERR, ERROR = 1, 2, 3
#: ``kubernetes.stream.stream`` swaps a method of the ApiClient while it opens the socket;
#: two threads doing that at once on one client would leave the swap in place.
_OPEN_LOCK = threading.Lock()


class ContainerUnavailable(ClusterError):
    """The pod exists, but the container to exec into is missing or not running."""


class Stream(Protocol):
    """The part of ``kubernetes.stream.ws_client.WSClient`` used here."""

    def is_open(self) -> bool: ...
    def update(self, timeout: float | None = 0) -> None: ...
    def read_channel(self, channel: int, timeout: float = 0) -> Any: ...
    def close(self, **kwargs: Any) -> None: ...


def pod_exec(api: Any, namespace: str, pod: str, argv: Sequence[str], *,
             container: str | None = None, timeout: float | None = None) -> ExecResult:
    """Run ``argv`` in the container (default: the pod's default container) and wait for it.

    Returns its exit code and output; raises ObjectNotFound (no such pod),
    ContainerUnavailable, CommandError (the command could not start, or did not finish
    within ``timeout`` seconds) or ClusterError (the API refused the exec).
    """
    args = [str(a) for a in argv]
    try:
        ws = open_stream(api, namespace, pod, args, container)
    except ClusterError:
        raise
    except Exception as err:  # ApiException wrapping the websocket's handshake failure
        raise refused(api, namespace, pod, container, err) from err
    try:
        return collect(ws, args, timeout)
    finally:
        ws.close()


def open_stream(api: Any, namespace: str, pod: str, argv: list[str],
                container: str | None, *, stdin: bool = False, tty: bool = False,
                binary: bool = False) -> Stream:
    """Open the exec websocket (by default stdin closed, no TTY, channels read as text).

    With ``tty`` the terminal merges stderr into stdout, so no stderr channel is asked for
    (as ``kubectl exec -t``); ``binary`` reads channels as bytes (a character split across
    two frames stays whole)."""
    from kubernetes import client
    from kubernetes.stream import stream

    core = client.CoreV1Api(api.api_client)
    kwargs: dict[str, Any] = {"command": argv, "stdin": stdin, "stdout": True,
                              "stderr": not tty, "tty": tty, "_preload_content": False}
    if binary:
        kwargs["binary"] = True
    if container:
        kwargs["container"] = container
    with _OPEN_LOCK:
        ws: Stream = stream(core.connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
    return ws


def collect(ws: Stream, argv: Sequence[str], timeout: float | None) -> ExecResult:
    """Read until the server closes the stream (or ``timeout``), then the exit status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while ws.is_open():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            ws.update(timeout=left)
        out, err = _text(ws.read_channel(STDOUT)), _text(ws.read_channel(STDERR))
        code = exit_code(ws, argv, timeout, out, err)
    except CommandError:
        raise
    except Exception as exc:  # websocket errors: the connection broke mid-command
        raise broken(argv, exc) from exc
    return ExecResult(code, out, err, tuple(argv))


def exit_code(ws: Stream, argv: Sequence[str], timeout: float | None, out: str = "",
              err: str = "") -> int:
    """The command's exit code once the server closed the stream. CommandError (with the
    output so far) when the stream is still open (``timeout`` passed) or the command never
    ran (the error channel's Failure other than a non-zero exit)."""
    if ws.is_open():
        raise CommandError(argv, None, out, err, reason=f"no answer within {timeout:g}s")
    code, message = exit_status(_text(ws.read_channel(ERROR)))
    if code is None:
        raise CommandError(argv, None, out, err, reason=message)
    return code


def broken(argv: Sequence[str], exc: Exception) -> ClusterError:
    """The error for a websocket that failed while the command ran."""
    return ClusterError(f"exec {' '.join(argv)}: the connection to the API server broke: {exc}")


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data or "")


def exit_status(text: str) -> tuple[int | None, str]:
    """(exit code, message) from the error channel's Status; code None: it never ran."""
    if not text.strip():
        return None, "the exec stream closed without an exit status"
    try:
        doc = json.loads(text)
    except ValueError:
        return None, text.strip()
    if not isinstance(doc, Mapping):
        return None, text.strip()
    if doc.get("status") == "Success":
        return 0, ""
    message = str(doc.get("message") or "")
    for cause in (doc.get("details") or {}).get("causes") or ():
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).strip().isdigit():
            return int(str(cause["message"]).strip()), message
    if doc.get("reason") == "NonZeroExitCode":
        found = re.search(r"exit (?:status|code) (\d+)", message)
        if found:
            return int(found.group(1)), message
    return None, message or text.strip()


# ---------------------------------------------------------------- refused handshakes


def handshake(err: BaseException) -> tuple[int | None, str]:
    """(HTTP status, server message) of a refused exec handshake, as far as it says."""
    cause: BaseException | None = err
    while cause is not None:
        status = getattr(cause, "status_code", None)
        if isinstance(status, int):
            body = getattr(cause, "resp_body", None) or b""
            return status, _message(_text(body))
        cause = cause.__cause__ or cause.__context__
    text = str(getattr(err, "reason", "") or err)
    found = re.search(r"Handshake status (\d{3})", text)
    status = int(found.group(1)) if found else getattr(err, "status", None) or None
    body = text.split("-+-+-")[-1].strip() if "-+-+-" in text else text
    return status, _message(body)


def _message(body: str) -> str:
    body = body.strip()
    if body.startswith(("b'", 'b"')):
        body = body[2:-1]
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    return str(doc.get("message") or body) if isinstance(doc, Mapping) else body


def refused(api: Any, namespace: str, pod: str, container: str | None,
            err: BaseException) -> ClusterError:
    """The error for a refused exec, explained by the pod's state when it can be."""
    status, message = handshake(err)
    where = f"pod {namespace}/{pod}" + (f" container {container}" if container else "")
    if status == 403:
        return ClusterError(f"exec into {where} is forbidden: {message} (needs `create` on "
                            "pods/exec)")
    if not status:
        return ClusterError(f"exec into {where}: no answer from the API server at "
                            f"{getattr(api, 'server', '?')}: {message}")
    try:
        problem = diagnose(api, namespace, pod, container)
    except ObjectNotFound:
        return ObjectNotFound(f"pod {namespace}/{pod} not found")
    except ClusterError:  # the pod cannot be read either: the exec's own answer must do
        problem = None
    if problem is not None:
        return problem
    return ClusterError(f"exec into {where} refused: {status} {message}".rstrip())


def diagnose(api: Any, namespace: str, pod: str,
             container: str | None) -> ContainerUnavailable | None:
    """Why ``container`` of the pod cannot run commands, or None when it looks able to."""
    obj = api.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    phase = str(status.get("phase") or "")
    if phase in ("Succeeded", "Failed"):
        return ContainerUnavailable(f"pod {namespace}/{pod} has finished (phase {phase})")
    names = [str(c.get("name")) for key in ("containers", "initContainers", "ephemeralContainers")
             for c in spec.get(key) or ()]
    if container is None:
        default = ((obj.get("metadata") or {}).get("annotations") or {}).get(
            "kubectl.kubernetes.io/default-container")
        container = default or next(iter(c.get("name") for c in spec.get("containers") or ()), None)
        if container is None:
            return None
    if container not in names:
        return ContainerUnavailable(f"pod {namespace}/{pod} has no container {container!r} "
                                    f"(it has: {', '.join(names) or 'none'})")
    statuses = [s for key in ("containerStatuses", "initContainerStatuses",
                              "ephemeralContainerStatuses") for s in status.get(key) or ()]
    found = next((s for s in statuses if s.get("name") == container), None)
    state = (found or {}).get("state") or {}
    if "running" in state:
        return None
    for key in ("waiting", "terminated"):
        if key in state:
            detail = state[key] or {}
            why = ", ".join(str(v) for v in (detail.get("reason"), detail.get("message"),
                                             detail.get("exitCode")) if v not in (None, ""))
            return ContainerUnavailable(f"container {container} of pod {namespace}/{pod} is not "
                                        f"running: {key}" + (f" ({why})" if why else ""))
    return ContainerUnavailable(f"container {container} of pod {namespace}/{pod} has not "
                                "started yet" + (f" (pod {phase})" if phase else ""))
