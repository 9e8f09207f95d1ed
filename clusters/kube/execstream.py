"""``lab exec`` on a real API server: output as it arrives, interactive on a terminal.

:func:`clusters.kube.podexec.pod_exec` collects a command's output for probes and checks,
which want it whole. A person at ``lab exec`` wants to see ``ping`` print each reply when it
comes, and to type into a shell, as ``kubectl exec -it`` allows. So here the exec websocket
is relayed: every chunk of stdout/stderr is written (and flushed) as soon as a frame brings
it, and when this process' stdin is a terminal the exec is opened with stdin and a TTY, the
local terminal is put in raw mode (keys, Ctrl-C included, go to the pod's program, which
echoes them), keystrokes go to channel 0 and the window size to channel 4, at the start and
on every SIGWINCH. The terminal is restored in any case.

Errors are those of ``pod_exec``: ObjectNotFound/ContainerUnavailable for a refused exec,
CommandError when the command never ran or the deadline passed, ClusterError when the
connection broke; the exit code comes from the error channel.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType, TracebackType
from typing import IO, Any, Protocol, cast

from clusters.engine import ExecResult
from clusters.errors import ClusterError, CommandError
from clusters.kube import podexec
from clusters.kube.podexec import STDERR, STDOUT, Stream

STDIN, RESIZE = 0, 4
#: The longest a turn of the interactive loop waits for a key before it reads the socket
#: again, so the most output can lag behind while nobody types.
POLL_SECONDS = 0.02
READ_SIZE = 4096


class Duplex(Stream, Protocol):
    """A stream that also takes input (``WSClient.write_channel``)."""

    def write_channel(self, channel: int, data: Any) -> None: ...


class Sink:
    """Writes chunks (bytes or text) to a text stream at once, through its byte buffer when
    it has one (so bytes pass unchanged), else decoded without splitting a character."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.buffer: IO[bytes] | None = getattr(stream, "buffer", None)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, data: Any) -> None:
        if not data:
            return
        if isinstance(data, str):
            self.stream.write(data)
        elif self.buffer is not None:
            self.stream.flush()  # what was written as text goes first
            self.buffer.write(data)
            self.buffer.flush()
        else:
            self.stream.write(self.decoder.decode(bytes(data)))
        self.stream.flush()


def terminal_fd(stdin: IO[Any] | None) -> int | None:
    """The descriptor of ``stdin`` when it is a terminal, else None (a pipe, a file, a test
    runner's stand-in without a descriptor)."""
    if stdin is None:
        return None
    try:
        return stdin.fileno() if stdin.isatty() else None
    except (AttributeError, OSError, ValueError):  # closed, or no descriptor at all
        return None


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The terminal on ``fd`` in raw mode for the block; its settings come back after it,
    whatever ends it (an error, KeyboardInterrupt)."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class WindowSize:
    """The terminal's size as the resize channel wants it, pending at the start and again
    after each SIGWINCH (watched only from the main thread, where signals arrive)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.changed = True
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> WindowSize:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGWINCH, self._on_change)
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGWINCH, self._previous)
            self._installed = False

    def _on_change(self, signum: int, frame: FrameType | None) -> None:
        self.changed = True

    def pending(self) -> str | None:
        """The message for channel 4 when the size is still to be sent, else None."""
        if not self.changed:
            return None
        self.changed = False
        try:
            size = os.get_terminal_size(self.fd)
        except OSError:
            return None
        return json.dumps({"Width": size.columns, "Height": size.lines})


def stream_exec(api: Any, namespace: str, pod: str, argv: Sequence[str], *,
                container: str | None = None, timeout: float | None = None,
                stdin: IO[Any] | None = None, stdout: IO[str] | None = None,
                stderr: IO[str] | None = None) -> ExecResult:
    """Run ``argv`` in the pod, writing its output to ``stdout``/``stderr`` (default: this
    process') as it arrives; interactive (stdin and a TTY) when ``stdin`` (default: this
    process') is a terminal. The result has the exit code, not the output."""
    args = [str(a) for a in argv]
    fd = terminal_fd(sys.stdin if stdin is None else stdin)
    out = Sink(sys.stdout if stdout is None else stdout)
    err = Sink(sys.stderr if stderr is None else stderr)
    try:
        ws = cast(Duplex, podexec.open_stream(api, namespace, pod, args, container,
                                              stdin=fd is not None, tty=fd is not None,
                                              binary=True))
    except ClusterError:
        raise
    except Exception as exc:  # ApiException wrapping the websocket's handshake failure
        raise podexec.refused(api, namespace, pod, container, exc) from exc
    try:
        if fd is None:
            return relay(ws, args, out, err, timeout)
        with raw_terminal(fd), WindowSize(fd) as size:
            return relay(ws, args, out, err, timeout, stdin_fd=fd, size=size)
    finally:
        ws.close()


def relay(ws: Duplex, argv: Sequence[str], out: Sink, err: Sink, timeout: float | None, *,
          stdin_fd: int | None = None, size: WindowSize | None = None) -> ExecResult:
    """Move output to the sinks (and keys from ``stdin_fd`` to the pod) until the server
    closes the stream or ``timeout`` passes; then the exit status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while ws.is_open():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            message = size.pending() if size is not None else None
            if message:
                ws.write_channel(RESIZE, message)
            turn = POLL_SECONDS if left is None else min(POLL_SECONDS, left)
            if stdin_fd is not None:
                stdin_fd = forward(ws, stdin_fd, turn)
                ws.update(timeout=0)
            else:  # nothing to read here: wait for the socket (briefly, if a resize may come)
                ws.update(timeout=turn if size is not None else left)
            drain(ws, out, err)
        drain(ws, out, err)
        code = podexec.exit_code(ws, argv, timeout)
    except CommandError:
        raise
    except Exception as exc:  # websocket errors: the connection broke mid-command
        raise podexec.broken(argv, exc) from exc
    return ExecResult(code, argv=tuple(argv))


def forward(ws: Duplex, fd: int, wait: float) -> int | None:
    """Send what the terminal has (waiting up to ``wait`` seconds for it) to the pod's stdin;
    None once the terminal is gone (end of input: the pod's stdin is closed where the
    protocol can say so)."""
    try:
        ready, _, _ = select.select([fd], [], [], wait)
        data = os.read(fd, READ_SIZE) if ready else None
    except OSError:  # the terminal hung up
        data = b""
    if data is None:
        return fd
    if not data:
        close = getattr(ws, "close_channel", None)
        if close is not None:
            close(STDIN)
        return None
    ws.write_channel(STDIN, data)
    return fd


def drain(ws: Stream, out: Sink, err: Sink) -> None:
    """Write what arrived on stdout and stderr since the last turn."""
    out.write(ws.read_channel(STDOUT))
    err.write(ws.read_channel(STDERR))


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data or "")
