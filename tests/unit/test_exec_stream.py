"""``lab exec`` on kind: output streamed as it arrives, interactive when stdin is a terminal.

Fake streams hand out frames one batch per ``update()`` and log every update next to every
write to the output, so the order proves each chunk was written before the command ended.
Terminals are real pseudo-terminals (``pty.openpty()``, no root needed).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import signal
import socket
import struct
import termios
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from kubefake import FakeApi, FakeKube
from test_kube_podexec import (
    EXIT_3,
    NOT_FOUND_EXE,
    SUCCESS,
    ExecServer,
    PodApi,
    RealApi,
    refusal,
    send_close,
    send_frame,
)

from clusters.engine import Capabilities
from clusters.errors import ClusterError, CommandError, ObjectNotFound
from clusters.kube import KubeCluster, podexec
from clusters.kube.execstream import stream_exec

Log = list[tuple[Any, ...]]


class ChunkStream:
    """A WSClient stand-in: ``batches[i]`` arrives on the i-th update(); the server closes
    after the last one (unless ``closes`` is False). Input is recorded; ``on_update`` runs
    at each update (what a user or the pod does meanwhile)."""

    def __init__(self, batches: list[list[tuple[int, bytes]]], log: Log, *,
                 closes: bool = True) -> None:
        self.batches = list(batches)
        self.log = log
        self.closes = closes
        self.channels: dict[int, bytes] = {}
        self.open = True
        self.closed_by_us = False
        self.written: list[tuple[int, Any]] = []
        self.updates = 0
        self.on_update: Any = None

    def is_open(self) -> bool:
        return self.open

    def update(self, timeout: float | None = 0) -> None:
        self.updates += 1
        self.log.append(("update", self.updates))
        if self.on_update is not None:
            self.on_update(self)
        if self.batches:
            for channel, data in self.batches.pop(0):
                self.channels[channel] = self.channels.get(channel, b"") + data
        if not self.batches and self.closes:
            self.open = False

    def read_channel(self, channel: int, timeout: float = 0) -> bytes:
        return self.channels.pop(channel, b"")

    def write_channel(self, channel: int, data: Any) -> None:
        self.written.append((channel, data))

    def close(self, **kwargs: Any) -> None:
        self.closed_by_us = True
        self.open = False


class Screen:
    """A text stream without a byte buffer that logs each write (flushes are no-ops)."""

    def __init__(self, name: str, log: Log) -> None:
        self.name, self.log = name, log
        self.text = ""

    def write(self, text: str) -> int:
        self.log.append((self.name, text))
        self.text += text
        return len(text)

    def flush(self) -> None:
        return


class Opener:
    """Stands in for podexec.open_stream: records each call, hands out the queued streams."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.streams: list[ChunkStream] = []

    def __call__(self, api: Any, ns: str, pod: str, argv: list[str], container: str | None,
                 **kw: Any) -> ChunkStream:
        self.calls.append({"ns": ns, "pod": pod, "argv": argv, "container": container, **kw})
        return self.streams.pop(0)


@pytest.fixture
def opener(monkeypatch: pytest.MonkeyPatch) -> Opener:
    fake = Opener()
    monkeypatch.setattr(podexec, "open_stream", fake)
    return fake


@pytest.fixture
def terminal() -> Iterator[tuple[int, Any]]:
    """(master fd, the slave as a file object): a 40x120 pseudo-terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    tty_file = open(slave, "rb", buffering=0, closefd=False)  # noqa: SIM115
    try:
        yield master, tty_file
    finally:
        tty_file.close()
        os.close(slave)
        os.close(master)


# ---------------------------------------------------------------- without a terminal


def test_output_is_written_as_each_chunk_arrives(opener: Opener) -> None:
    log: Log = []
    ws = ChunkStream([[(1, b"64 bytes: seq=1\n")], [(2, b"slow\n")], [(1, b"64 bytes: seq=2\n")],
                      [(3, SUCCESS.encode())]], log)
    opener.streams.append(ws)
    result = stream_exec(object(), "lab", "client", ["ping", "-c", "2", "x"],
                         stdin=io.StringIO(""), stdout=Screen("out", log),  # type: ignore[arg-type]
                         stderr=Screen("err", log))  # type: ignore[arg-type]
    assert log == [("update", 1), ("out", "64 bytes: seq=1\n"), ("update", 2), ("err", "slow\n"),
                   ("update", 3), ("out", "64 bytes: seq=2\n"), ("update", 4)]
    assert (result.returncode, result.stdout, result.argv) == (0, "", ("ping", "-c", "2", "x"))
    assert ws.closed_by_us and ws.written == []
    call = opener.calls[0]
    assert (call["stdin"], call["tty"], call["binary"]) == (False, False, True)
    assert (call["ns"], call["pod"], call["argv"]) == ("lab", "client", ["ping", "-c", "2", "x"])


def test_a_character_split_across_frames_stays_whole(opener: Opener) -> None:
    log: Log = []
    opener.streams.append(ChunkStream([[(1, b"caf\xc3")], [(1, b"\xa9\n")], [(3, SUCCESS.encode())]], log))
    screen = Screen("out", log)
    stream_exec(object(), "lab", "p", ["echo"], stdin=io.StringIO(""), stdout=screen,  # type: ignore[arg-type]
                stderr=Screen("err", log))  # type: ignore[arg-type]
    assert screen.text == "café\n"

    raw = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # with a byte buffer: bytes as sent
    opener.streams.append(ChunkStream([[(1, b"caf\xc3")], [(1, b"\xa9\n")], [(3, SUCCESS.encode())]], log))
    stream_exec(object(), "lab", "p", ["echo"], stdin=io.StringIO(""), stdout=raw,
                stderr=Screen("err", log))  # type: ignore[arg-type]
    assert raw.buffer.getvalue() == "café\n".encode()  # type: ignore[attr-defined]


def test_exit_code_from_the_error_channel(opener: Opener) -> None:
    log: Log = []
    opener.streams.append(ChunkStream([[(1, b"no route\n")], [(3, EXIT_3.encode())]], log))
    result = stream_exec(object(), "lab", "p", ["connect"], stdin=io.StringIO(""),
                         stdout=Screen("out", log), stderr=Screen("err", log))  # type: ignore[arg-type]
    assert result.returncode == 3


def test_a_command_that_never_ran(opener: Opener) -> None:
    log: Log = []
    ws = ChunkStream([[(3, NOT_FOUND_EXE.encode())]], log)
    opener.streams.append(ws)
    with pytest.raises(CommandError) as err:
        stream_exec(object(), "lab", "p", ["dig"], stdin=io.StringIO(""),
                    stdout=Screen("out", log), stderr=Screen("err", log))  # type: ignore[arg-type]
    assert err.value.returncode is None and "executable file not found" in str(err.value)
    assert ws.closed_by_us


def test_deadline_after_partial_output(opener: Opener) -> None:
    log: Log = []
    opener.streams.append(ChunkStream([[(1, b"partial\n")]], log, closes=False))
    screen = Screen("out", log)
    with pytest.raises(CommandError, match=r"no answer within 0\.05s"):
        stream_exec(object(), "lab", "p", ["sleep", "100"], timeout=0.05, stdin=io.StringIO(""),
                    stdout=screen, stderr=Screen("err", log))  # type: ignore[arg-type]
    assert screen.text == "partial\n"  # already shown when the deadline passed


def test_broken_connection_is_a_cluster_error(opener: Opener) -> None:
    log: Log = []
    ws = ChunkStream([[(1, b"x")]], log, closes=False)

    def reset(_: ChunkStream) -> None:
        raise ConnectionResetError("reset by peer")

    ws.on_update = reset
    opener.streams.append(ws)
    with pytest.raises(ClusterError, match="connection to the API server broke"):
        stream_exec(object(), "lab", "p", ["true"], stdin=io.StringIO(""),
                    stdout=Screen("out", log), stderr=Screen("err", log))  # type: ignore[arg-type]


def test_refused_exec_is_explained_as_pod_exec_does(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kw: Any) -> Any:
        raise refusal(404, 'pods "client" not found')

    monkeypatch.setattr(podexec, "open_stream", refuse)
    with pytest.raises(ObjectNotFound, match="pod lab/client not found"):
        stream_exec(PodApi(None), "lab", "client", ["true"], stdin=io.StringIO(""))


# ---------------------------------------------------------------- on a terminal


def echoing(master: int, typed: bytes, log: Log) -> ChunkStream:
    """A pod shell: the user types ``typed`` during the first update; the pod echoes its
    stdin on stdout and ends (exit 3) when it reads Ctrl-D."""
    ws = ChunkStream([], log, closes=False)
    echoed: list[Any] = []

    def on_update(stream: ChunkStream) -> None:
        if stream.updates == 1:
            os.write(master, typed)
        for channel, data in stream.written[len(echoed):]:
            echoed.append(data)
            if channel == 0:
                stream.channels[1] = stream.channels.get(1, b"") + data
                if b"\x04" in data:
                    stream.channels[3] = EXIT_3.encode()
                    stream.open = False

    original_write = ws.write_channel

    def write_channel(channel: int, data: Any) -> None:
        original_write(channel, data)
        log.append(("in", channel, data))

    ws.on_update = on_update
    ws.write_channel = write_channel  # type: ignore[method-assign]
    return ws


def test_tty_forwards_keys_and_sends_the_size(opener: Opener,
                                              terminal: tuple[int, Any]) -> None:
    master, tty_file = terminal
    before = termios.tcgetattr(tty_file.fileno())
    log: Log = []
    ws = echoing(master, b"ls\r\x03\x04", log)
    modes: list[int] = []
    inner = ws.on_update

    def on_update(stream: ChunkStream) -> None:
        modes.append(termios.tcgetattr(tty_file.fileno())[3])  # lflag while it runs
        inner(stream)

    ws.on_update = on_update
    opener.streams.append(ws)
    screen = Screen("out", log)
    result = stream_exec(object(), "lab", "p", ["sh"], stdin=tty_file, stdout=screen,
                         stderr=Screen("err", log))  # type: ignore[arg-type]
    assert result.returncode == 3
    call = opener.calls[0]
    assert (call["stdin"], call["tty"]) == (True, True)
    assert ws.written[0] == (4, json.dumps({"Width": 120, "Height": 40}))
    # raw mode: \r is not turned into \n, Ctrl-C (\x03) and Ctrl-D are bytes for the pod
    assert b"".join(d for c, d in ws.written if c == 0) == b"ls\r\x03\x04"
    assert screen.text == "ls\r\x03\x04"
    assert all(not mode & (termios.ICANON | termios.ECHO | termios.ISIG) for mode in modes)
    assert termios.tcgetattr(tty_file.fileno()) == before


def test_a_window_change_is_sent_again(opener: Opener,
                                       terminal: tuple[int, Any]) -> None:
    master, tty_file = terminal
    log: Log = []
    ws = echoing(master, b"", log)
    inner = ws.on_update

    def on_update(stream: ChunkStream) -> None:
        if stream.updates == 2:
            fcntl.ioctl(tty_file.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
            os.kill(os.getpid(), signal.SIGWINCH)
        if stream.updates == 4:
            os.write(master, b"\x04")
        inner(stream)

    ws.on_update = on_update
    opener.streams.append(ws)
    handler = signal.getsignal(signal.SIGWINCH)
    stream_exec(object(), "lab", "p", ["sh"], stdin=tty_file, stdout=Screen("out", log),
                stderr=Screen("err", log))  # type: ignore[arg-type]
    sizes = [json.loads(d) for c, d in ws.written if c == 4]
    assert sizes == [{"Width": 120, "Height": 40}, {"Width": 200, "Height": 50}]
    assert signal.getsignal(signal.SIGWINCH) == handler


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), ConnectionResetError("reset")],
                         ids=["ctrl-c", "broken"])
def test_terminal_restored_after_an_exception(opener: Opener,
                                              terminal: tuple[int, Any],
                                              failure: BaseException) -> None:
    _master, tty_file = terminal
    before = termios.tcgetattr(tty_file.fileno())
    log: Log = []
    ws = ChunkStream([], log, closes=False)
    raw_seen: list[bool] = []

    def fail(_: ChunkStream) -> None:
        raw_seen.append(not termios.tcgetattr(tty_file.fileno())[3] & termios.ICANON)
        raise failure

    ws.on_update = fail
    opener.streams.append(ws)
    expected = KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else ClusterError
    with pytest.raises(expected):
        stream_exec(object(), "lab", "p", ["sh"], stdin=tty_file, stdout=Screen("out", log),
                    stderr=Screen("err", log))  # type: ignore[arg-type]
    assert raw_seen == [True]
    assert termios.tcgetattr(tty_file.fileno()) == before
    assert ws.closed_by_us


def test_a_pipe_is_not_a_terminal(opener: Opener) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"secret\n")
    os.close(write_end)
    log: Log = []
    ws = ChunkStream([[(1, b"ok\n")], [(3, SUCCESS.encode())]], log)
    opener.streams.append(ws)
    with open(read_end, "rb") as pipe:
        stream_exec(object(), "lab", "p", ["cat"], stdin=pipe, stdout=Screen("out", log),
                    stderr=Screen("err", log))  # type: ignore[arg-type]
    assert (opener.calls[0]["stdin"], opener.calls[0]["tty"]) == (False, False)
    assert ws.written == []


# ---------------------------------------------------------------- KubeCluster.exec


def cluster() -> KubeCluster:
    return KubeCluster(FakeApi(FakeKube()), "lab", "kind", capabilities=Capabilities())  # type: ignore[arg-type]


def test_cluster_exec_streams_without_capture(opener: Opener,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    log: Log = []
    opener.streams.append(ChunkStream([[(1, b"hello\n"), (2, b"careful\n")], [(3, EXIT_3.encode())]], log))
    result = cluster().exec("lab", "client", ["sh", "-c", "x"])
    assert (result.returncode, result.stdout, result.argv) == (3, "", ("sh", "-c", "x"))
    assert capsys.readouterr() == ("hello\n", "careful\n")
    assert opener.calls[0]["binary"] is True


def test_cluster_exec_capture_collects_as_before(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[Any, ...]] = []
    log: Log = []

    def old_open(api: Any, ns: str, pod: str, argv: list[str], container: str | None) -> Any:
        calls.append((ns, pod, argv, container))
        return ChunkStream([[(1, b"ok\n")], [(3, SUCCESS.encode())]], log)

    monkeypatch.setattr(podexec, "open_stream", old_open)
    result = cluster().exec("lab", "client", ["true"], capture=True)
    assert (result.returncode, result.stdout) == (0, "ok\n")
    assert calls == [("lab", "client", ["true"], None)]
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------- the real client


def test_open_stream_asks_for_stdin_and_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_stream(method: Any, pod: str, ns: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return "ws"

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    api = RealApi(1)
    assert podexec.open_stream(api, "lab", "p", ["sh"], None, stdin=True, tty=True,
                               binary=True) == "ws"
    podexec.open_stream(api, "lab", "p", ["true"], "c")
    wanted = ("stdin", "tty", "stdout", "stderr", "binary", "container")
    assert [{k: c[k] for k in wanted if k in c} for c in calls] == [
        {"stdin": True, "tty": True, "stdout": True, "stderr": False, "binary": True},
        {"stdin": False, "tty": False, "stdout": True, "stderr": True, "container": "c"}]


@pytest.mark.parametrize("exec_server", [([(1, b"hello\n"), (2, b"careful\n"),
                                           (3, EXIT_3.encode())],)], indirect=True)
def test_real_client_streams(exec_server: ExecServer) -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    result = stream_exec(RealApi(exec_server.port), "lab", "client", ["/agnhost", "x"],
                         timeout=10, stdin=io.StringIO(""), stdout=out, stderr=err)
    assert result.returncode == 3
    assert out.buffer.getvalue() == b"hello\n" and err.buffer.getvalue() == b"careful\n"  # type: ignore[attr-defined]
    query = parse_qs(exec_server.requests[0].split("\r\n")[0].split(" ")[1].partition("?")[2])
    assert {k: v[0].lower() for k, v in query.items() if k != "command"} == {
        "stdout": "true", "stderr": "true", "stdin": "false", "tty": "false"}


@pytest.fixture
def exec_server(request: pytest.FixtureRequest) -> Iterator[ExecServer]:
    server = ExecServer(*request.param)
    yield server
    server.close()



class TtyServer(ExecServer):
    """An exec endpoint that reads the client's frames: it waits for the window size, then
    types ``typed`` on the terminal, echoes the stdin frame it gets and exits 3."""

    def __init__(self, master: int, typed: bytes) -> None:
        self.master, self.typed = master, typed
        self.received: list[tuple[int, bytes]] = []
        super().__init__([])

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            self.handshake(conn)
            self.received.append(read_frame(conn))  # the window size
            os.write(self.master, self.typed)
            channel, keys = read_frame(conn)
            self.received.append((channel, keys))
            send_frame(conn, 1, keys)
            send_frame(conn, 3, EXIT_3.encode())
            send_close(conn)
            conn.recv(64)  # the client's close frame, so nothing it sent is left unread


def read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """One client frame (short and masked, as clients send): (channel, payload)."""
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            data += conn.recv(n - len(data))
        return data

    head = exactly(2)
    size = head[1] & 0x7F
    assert head[1] & 0x80 and size < 126
    mask = exactly(4)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(exactly(size)))
    return data[0], data[1:]


def test_real_client_on_a_terminal(terminal: tuple[int, Any]) -> None:
    master, tty_file = terminal
    before = termios.tcgetattr(tty_file.fileno())
    server = TtyServer(master, b"id\r")
    try:
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        result = stream_exec(RealApi(server.port), "lab", "client", ["sh"], timeout=10,
                             stdin=tty_file, stdout=out, stderr=io.StringIO())
    finally:
        server.close()
    assert result.returncode == 3
    assert server.received == [(4, json.dumps({"Width": 120, "Height": 40}).encode()),
                               (0, b"id\r")]
    assert out.buffer.getvalue() == b"id\r"  # type: ignore[attr-defined]
    query = parse_qs(server.requests[0].split("\r\n")[0].split(" ")[1].partition("?")[2])
    assert {k: v[0].lower() for k, v in query.items() if k != "command"} == {
        "stdout": "true", "stderr": "false", "stdin": "true", "tty": "true"}
    assert termios.tcgetattr(tty_file.fileno()) == before
