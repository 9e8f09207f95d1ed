"""Entering network namespaces from Python, one thread at a time.

``setns(2)`` changes the namespace of the calling *thread* only, and a socket belongs for
its whole life to the namespace it was created in. So the daemon (and the grader's probes)
can serve and probe every pod from one process: enter the pod's namespace, create the
socket, come back. Python 3.11 has no ``os.setns``; we call libc through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_lock = threading.RLock()


def netns_path(name: str) -> Path:
    """The bind-mount ``ip netns add NAME`` creates."""
    return NETNS_DIR / name


def _setns(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the body with the calling thread inside network namespace ``name``.

    ``None`` means the host's namespace (no switch). The thread is always switched back,
    also when the body raises.
    """
    if name is None:
        yield
        return
    target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        _setns(target, CLONE_NEWNET)
        try:
            yield
        finally:
            _setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def socket_in(
    name: str | None,
    family: int = socket.AF_INET,
    type: int = socket.SOCK_STREAM,
    proto: int = 0,
) -> socket.socket:
    """A new socket that lives in network namespace ``name`` (``None``: the host's)."""
    with _lock, entered(name):
        return socket.socket(family, type, proto)


def exists(name: str) -> bool:
    return netns_path(name).exists()


def links_present(netns: str, names: tuple[str, ...]) -> frozenset[str]:
    """Which of the link ``names`` exist in ``netns`` (none when the namespace does not).

    Checked in this process (``setns`` + ``if_nametoindex``), so a CNI rebuilding a node
    after a daemon restart can set the devices it finds instead of failing to add them.
    """
    if not netns_path(netns).exists():
        return frozenset()
    found = set()
    with entered(netns):
        for name in names:
            try:
                socket.if_nametoindex(name)
            except OSError:
                continue
            found.add(name)
    return frozenset(found)
