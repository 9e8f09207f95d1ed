"""Serving pre-bound sockets with asyncio, and stopping them cleanly.

Every server the local engine runs (a pod's HTTP/TCP/UDP handlers, the cluster DNS) is a
socket the caller created and bound inside some network namespace, handed to the event
loop. :class:`Served` owns those sockets and every connection they accepted, so
:meth:`Served.close` can end them all: a stopped pod must not keep answering on a
half-open connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

#: Handles one accepted TCP connection.
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: The reply to one datagram (None: no reply).
DatagramReply = Callable[[bytes, tuple[Any, ...]], bytes | None]


class Datagrams(asyncio.DatagramProtocol):
    """Answers each datagram with ``reply(data, addr)``, when that is not None."""

    def __init__(self, reply: DatagramReply) -> None:
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        answer = self.reply(data, addr)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for earlier replies (the client went away): nothing to do


class Served:
    """Sockets being served; :meth:`close` stops them and every connection they accepted."""

    def __init__(self) -> None:
        self._servers: list[asyncio.Server] = []
        self._transports: list[asyncio.DatagramTransport] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def serve_udp(self, sock: socket.socket, reply: DatagramReply) -> None:
        """Answer datagrams on ``sock`` (bound); the socket is taken over."""
        sock.setblocking(False)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: Datagrams(reply), sock=sock)
        self._transports.append(transport)

    async def serve_tcp(self, sock: socket.socket, handler: StreamHandler) -> None:
        """Accept connections on ``sock`` (bound, listening); the socket is taken over.

        A client that goes away or stalls (connection errors, timeouts, a short read)
        just ends its connection.
        """
        sock.setblocking(False)

        async def on_connection(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            self._writers.add(w)
            try:
                await handler(r, w)
            except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
                pass
            finally:
                self._tasks.discard(task)
                self._writers.discard(w)
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

        self._servers.append(await asyncio.start_server(on_connection, sock=sock))

    async def close(self) -> None:
        """Stop serving and end every open connection. Safe to call more than once."""
        for server in self._servers:
            server.close()
        for transport in self._transports:
            transport.close()
        # Aborting the transports ends every handler at its next read (EOF); cancelling
        # the tasks instead would make asyncio's stream machinery log each cancellation.
        for w in list(self._writers):
            w.transport.abort()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=2.0)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        for server in self._servers:
            await server.wait_closed()
        self._servers, self._transports = [], []
