"""Exec through pods/exec: exit codes from the error channel, deadlines, refused handshakes."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

import pytest
from kubernetes import client as kclient
from kubernetes.client.rest import ApiException
from websocket import WebSocketBadStatusException

from clusters.errors import ClusterError, CommandError, ObjectNotFound
from clusters.kube import podexec
from clusters.kube.podexec import ContainerUnavailable, pod_exec

SUCCESS = json.dumps({"metadata": {}, "status": "Success"})
EXIT_3 = json.dumps({
    "metadata": {}, "status": "Failure",
    "message": "command terminated with non-zero exit code: error executing command "
               "[/agnhost connect ...], exit code 3",
    "reason": "NonZeroExitCode",
    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})
NOT_FOUND_EXE = json.dumps({
    "metadata": {}, "status": "Failure",
    "message": 'OCI runtime exec failed: exec failed: unable to start container process: exec: '
               '"dig": executable file not found in $PATH: unknown',
    "reason": "InternalError", "code": 500})


class FakeStream:
    """A WSClient stand-in: frames arrive one per update(); closed after the last one."""

    def __init__(self, frames: list[tuple[int, str]], closes: bool = True) -> None:
        self.frames = list(frames)
        self.closes = closes
        self.channels: dict[int, str] = {}
        self.open = True
        self.closed_by_us = False
        self.updates: list[float | None] = []

    def is_open(self) -> bool:
        return self.open

    def update(self, timeout: float | None = 0) -> None:
        self.updates.append(timeout)
        if self.frames:
            channel, data = self.frames.pop(0)
            self.channels[channel] = self.channels.get(channel, "") + data
        if not self.frames and self.closes:
            self.open = False

    def read_channel(self, channel: int, timeout: float = 0) -> str:
        return self.channels.pop(channel, "")

    def close(self, **kwargs: Any) -> None:
        self.closed_by_us = True
        self.open = False


# ---------------------------------------------------------------- the error channel


@pytest.mark.parametrize(("text", "code"), [
    (SUCCESS, 0), (EXIT_3, 3),
    (json.dumps({"status": "Failure", "reason": "NonZeroExitCode",
                 "message": "command terminated with non-zero exit code: exit status 2"}), 2),
])
def test_exit_status(text: str, code: int) -> None:
    assert podexec.exit_status(text)[0] == code


def test_exit_status_of_a_command_that_never_ran() -> None:
    code, message = podexec.exit_status(NOT_FOUND_EXE)
    assert code is None and "executable file not found" in message
    assert podexec.exit_status("") == (None, "the exec stream closed without an exit status")


# ---------------------------------------------------------------- collecting output


def test_collect_output_and_exit_code() -> None:
    ws = FakeStream([(1, "hello "), (2, "warn\n"), (1, "world\n"), (3, EXIT_3)])
    result = podexec.collect(ws, ["/agnhost", "connect"], timeout=10)
    assert (result.returncode, result.stdout, result.stderr, result.argv) == (
        3, "hello world\n", "warn\n", ("/agnhost", "connect"))


def test_collect_success() -> None:
    result = podexec.collect(FakeStream([(1, "ok"), (3, SUCCESS)]), ["true"], timeout=None)
    assert (result.returncode, result.stdout) == (0, "ok")


def test_collect_never_ran_is_a_command_error_without_code() -> None:
    with pytest.raises(CommandError) as err:
        podexec.collect(FakeStream([(3, NOT_FOUND_EXE)]), ["dig"], timeout=5)
    assert err.value.returncode is None and "executable file not found" in str(err.value)


def test_collect_deadline_keeps_partial_output() -> None:
    ws = FakeStream([(1, "partial")], closes=False)
    with pytest.raises(CommandError) as err:
        podexec.collect(ws, ["sleep", "100"], timeout=0.05)
    assert err.value.returncode is None and "no answer within 0.05s" in str(err.value)
    assert err.value.stdout == "partial"
    assert all(t is not None and t <= 0.05 for t in ws.updates)


def test_collect_broken_connection_is_a_cluster_error() -> None:
    class Broken(FakeStream):
        def update(self, timeout: float | None = 0) -> None:
            raise ConnectionResetError("reset by peer")

    with pytest.raises(ClusterError, match="connection to the API server broke"):
        podexec.collect(Broken([]), ["true"], timeout=5)


def test_pod_exec_closes_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    ws = FakeStream([(1, "x"), (3, SUCCESS)])
    seen: list[Any] = []

    def fake_open(api: Any, ns: str, pod: str, argv: list[str], container: str | None) -> Any:
        seen.append((ns, pod, argv, container))
        return ws

    monkeypatch.setattr(podexec, "open_stream", fake_open)
    result = pod_exec(object(), "lab", "client", ("echo", "1"), container="netlab-probe", timeout=3)
    assert result.stdout == "x" and ws.closed_by_us
    assert seen == [("lab", "client", ["echo", "1"], "netlab-probe")]


# ---------------------------------------------------------------- refused handshakes


def refusal(status: int, message: str) -> ApiException:
    """What kubernetes.stream raises: ApiException(status=0) raised while handling the
    websocket's bad-status exception (which is thus its __context__)."""
    body = json.dumps({"kind": "Status", "status": "Failure", "message": message,
                       "code": status}).encode()
    try:
        try:
            raise WebSocketBadStatusException(
                f"Handshake status {status} Bad -+-+- {{}} -+-+- {body.decode()}", status, "Bad",
                {}, body)
        except WebSocketBadStatusException as err:
            raise ApiException(status=0, reason=str(err))  # noqa: B904 (as the client does)
    except ApiException as api_err:
        return api_err


def test_handshake_reads_the_status_from_the_websocket_error() -> None:
    assert podexec.handshake(refusal(404, 'pods "x" not found')) == (404, 'pods "x" not found')


def test_handshake_from_the_message_text_alone() -> None:
    err = ApiException(status=0, reason='Handshake status 400 Bad Request -+-+- {} -+-+- '
                       'b\'{"kind":"Status","message":"container not found (\\"c\\")"}\'')
    assert podexec.handshake(err) == (400, 'container not found ("c")')


class PodApi:
    def __init__(self, obj: dict[str, Any] | None) -> None:
        self.obj = obj
        self.server = "https://127.0.0.1:6443"

    def request(self, method: str, path: str, *, body: Any = None,
                query: Mapping[str, str] | None = None, content_type: str = "application/json",
                timeout: float = 30) -> Any:
        assert (method, path) == ("GET", "/api/v1/namespaces/lab/pods/client")
        if self.obj is None:
            raise ObjectNotFound("pods client not found")
        return self.obj


def client_pod(**ephemeral_state: Any) -> dict[str, Any]:
    return {"metadata": {"name": "client"},
            "spec": {"containers": [{"name": "app"}],
                     "ephemeralContainers": [{"name": "netlab-probe"}]},
            "status": {"phase": "Running",
                       "containerStatuses": [{"name": "app", "state": {"running": {}}}],
                       "ephemeralContainerStatuses": [{"name": "netlab-probe",
                                                       "state": ephemeral_state}]}}


def _exec_refused(monkeypatch: pytest.MonkeyPatch, err: Exception, api: Any,
                  container: str | None = "netlab-probe") -> None:
    def fake_open(*args: Any) -> Any:
        raise err

    monkeypatch.setattr(podexec, "open_stream", fake_open)
    pod_exec(api, "lab", "client", ["true"], container=container)


def test_missing_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ObjectNotFound, match="pod lab/client not found"):
        _exec_refused(monkeypatch, refusal(404, 'pods "client" not found'), PodApi(None))


def test_container_not_running_says_its_state(monkeypatch: pytest.MonkeyPatch) -> None:
    api = PodApi(client_pod(waiting={"reason": "ImagePullBackOff", "message": "Back-off"}))
    with pytest.raises(ContainerUnavailable) as err:
        _exec_refused(monkeypatch, refusal(400, "container not found"), api)
    assert str(err.value) == ("container netlab-probe of pod lab/client is not running: waiting "
                              "(ImagePullBackOff, Back-off)")


def test_unknown_container(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ContainerUnavailable, match="has no container 'nope'"):
        _exec_refused(monkeypatch, refusal(400, "container nope is not valid"),
                      PodApi(client_pod(running={})), container="nope")


def test_forbidden_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClusterError, match=r"forbidden.*pods/exec"):
        _exec_refused(monkeypatch, refusal(403, "cannot create resource pods/exec"),
                      PodApi(client_pod(running={})))


def test_unreachable_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    err = ApiException(status=0, reason="[Errno 111] Connection refused")
    with pytest.raises(ClusterError, match=r"no answer from the API server at https://127\.0\.0\.1"):
        _exec_refused(monkeypatch, err, PodApi(client_pod(running={})))


def test_refusal_that_the_pod_does_not_explain(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClusterError, match="refused: 500 upgrade failed") as err:
        _exec_refused(monkeypatch, refusal(500, "upgrade failed"), PodApi(client_pod(running={})))
    assert not isinstance(err.value, ContainerUnavailable)


# ---------------------------------------------------------------- the real client, over a socket


class ExecServer:
    """Just enough of an API server's exec endpoint: a websocket handshake offering
    ``v4.channel.k8s.io``, then binary frames (first byte: the channel), then a close."""

    def __init__(self, frames: list[tuple[int, bytes]], status: int = 101,
                 body: bytes = b"") -> None:
        self.frames, self.status, self.body = frames, status, body
        self.requests: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            if not self.handshake(conn):
                return
            for channel, payload in self.frames:
                send_frame(conn, channel, payload)
            send_close(conn)

    def handshake(self, conn: socket.socket) -> bool:
        """Read the upgrade request; answer 101 (True) or the configured refusal (False)."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        head = data.decode()
        self.requests.append(head)
        if self.status != 101:
            conn.sendall(f"HTTP/1.1 {self.status} Refused\r\nContent-Type: application/json"
                         f"\r\nContent-Length: {len(self.body)}\r\n\r\n".encode() + self.body)
            return False
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                      "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
        return True

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.sock.close()


def send_frame(conn: socket.socket, channel: int, payload: bytes) -> None:
    """One unmasked binary frame (as servers send) on ``channel``."""
    data = bytes([channel]) + payload
    size = (bytes([len(data)]) if len(data) < 126
            else bytes([126]) + len(data).to_bytes(2, "big"))
    conn.sendall(bytes([0x82]) + size + data)


def send_close(conn: socket.socket) -> None:
    conn.sendall(bytes([0x88, 2]) + (1000).to_bytes(2, "big"))


class RealApi:
    def __init__(self, port: int) -> None:
        config = kclient.Configuration()
        config.host = f"http://127.0.0.1:{port}"
        self.api_client = kclient.ApiClient(config)
        self.server = config.host


@pytest.fixture
def exec_server(request: pytest.FixtureRequest) -> Iterator[ExecServer]:
    server = ExecServer(*request.param)
    yield server
    server.close()


@pytest.mark.parametrize("exec_server", [([(1, b"hello\n"), (2, b"careful\n"),
                                           (3, EXIT_3.encode())],)], indirect=True)
def test_real_client_runs_the_exec(exec_server: ExecServer) -> None:
    result = pod_exec(RealApi(exec_server.port), "lab", "client", ["/agnhost", "connect", "x:1"],
                      container="netlab-probe", timeout=10)
    assert (result.returncode, result.stdout, result.stderr) == (3, "hello\n", "careful\n")
    method, target, _ = exec_server.requests[0].split("\r\n")[0].split(" ")
    path, _, query = target.partition("?")
    assert (method, path) == ("GET", "/api/v1/namespaces/lab/pods/client/exec")
    params = {k: [v.lower() if k != "command" else v for v in vs]
              for k, vs in parse_qs(query).items()}
    assert params == {"command": ["/agnhost", "connect", "x:1"], "container": ["netlab-probe"],
                      "stdout": ["true"], "stderr": ["true"], "stdin": ["false"], "tty": ["false"]}


@pytest.mark.parametrize("exec_server", [([], 404, json.dumps(
    {"kind": "Status", "status": "Failure", "message": 'pods "client" not found',
     "reason": "NotFound", "code": 404}).encode())], indirect=True)
def test_real_client_refused_handshake_is_explained(exec_server: ExecServer) -> None:
    api = RealApi(exec_server.port)
    api.request = PodApi(None).request  # type: ignore[attr-defined]
    with pytest.raises(ObjectNotFound, match="pod lab/client not found"):
        pod_exec(api, "lab", "client", ["true"], container="netlab-probe", timeout=10)
