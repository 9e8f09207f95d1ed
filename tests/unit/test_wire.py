"""The daemon's wire format: errors cross it typed, and a dying daemon is a DaemonError."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from clusters import errors
from clusters.local import wire


def test_manifest_error_round_trips_with_its_fields() -> None:
    err = errors.ManifestError("unknown field", source="a.yaml", index=2, path="spec.x")
    back = wire.error_from_wire(wire.error_to_wire(err))
    assert isinstance(back, errors.ManifestError)
    assert (back.source, back.index, back.path) == ("a.yaml", 2, "spec.x")
    assert str(back) == str(err)


def test_unexpected_exceptions_become_daemon_errors() -> None:
    back = wire.error_from_wire(wire.error_to_wire(KeyError("x")))
    assert isinstance(back, errors.DaemonError)
    assert "internal error" in str(back)


def test_no_daemon_is_cluster_not_found(tmp_path: Path) -> None:
    with pytest.raises(errors.ClusterNotFound):
        wire.call(tmp_path / "absent.sock", "ping")


def test_daemon_dying_mid_call_is_a_daemon_error(tmp_path: Path) -> None:
    path = tmp_path / "d.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def die() -> None:
        conn, _ = server.accept()
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # closed without an answer

    t = threading.Thread(target=die)
    t.start()
    try:
        with pytest.raises(errors.DaemonError):
            wire.call(path, "ping", timeout=5)
    finally:
        t.join()
        server.close()


def _busy_server(path: Path) -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose backlog is full: the next connect gets EAGAIN."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    queued: list[socket.socket] = []
    while True:  # fill the backlog with connections nobody accepts yet
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(str(path))
        except BlockingIOError:
            c.close()
            return server, queued
        queued.append(c)


def test_a_daemon_too_busy_to_accept_is_waited_for_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "busy.sock"
    server, queued = _busy_server(path)

    def serve() -> None:  # the daemon catches up: drains its queue, then answers the call
        for c in queued:  # the earlier callers give up, so their connections carry nothing
            c.close()
        for _ in range(len(queued) + 1):
            conn, _ = server.accept()
            if conn.recv(1 << 16):
                conn.sendall(wire.encode({"ok": True, "result": "pong"}))
            conn.close()

    late = threading.Timer(0.2, serve)
    late.start()
    try:
        assert wire.call(path, "ping", timeout=5) == "pong"
    finally:
        late.join(5)
        server.close()


def test_a_daemon_busy_past_the_deadline_says_it_did_not_answer(tmp_path: Path) -> None:
    path = tmp_path / "stuck.sock"
    server, queued = _busy_server(path)
    try:
        with pytest.raises(errors.DaemonError, match=r"did not answer 'ping' within 0\.3s"):
            wire.call(path, "ping", timeout=0.3)
    finally:
        for c in queued:
            c.close()
        server.close()
