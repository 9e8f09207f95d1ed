"""A TCP client for root tests that talk to servers in namespaces directly (no probe API)."""

from __future__ import annotations

import errno

from clusters.local.netns import socket_in


def tcp_answer(netns: str | None, ip: str, port: int, timeout: float,
               read_timeout: float | None = None) -> str:
    """What the server sends first, or 'refused' / 'timeout' (``timeout`` bounds the
    connect; ``read_timeout``, default the same, bounds waiting for the answer)."""
    s = socket_in(netns)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        s.settimeout(timeout if read_timeout is None else read_timeout)
        return s.recv(64).decode()
    except TimeoutError:
        return "timeout"
    except OSError as err:
        if err.errno == errno.ECONNREFUSED:
            return "refused"
        raise
    finally:
        s.close()
