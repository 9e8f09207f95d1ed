"""The daemon's wire format: one JSON object per line over a root-only Unix socket.

Request ``{"op": NAME, "args": {...}}``; answer ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"type": ..., "message": ..., "fields": {...}}}``. Errors of the
``clusters`` tree cross the wire and are raised again on the client side as the same type.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from clusters import errors

MAX_LINE = 64 * 1024 * 1024
#: Connections the daemon's socket queues before it accepts them (the kernel caps it at
#: net.core.somaxconn, 4096 on current kernels).
BACKLOG = 1024


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def error_to_wire(err: BaseException) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if isinstance(err, errors.ManifestError):
        fields = {"source": err.source, "index": err.index, "path": err.path, "message": err.message}
    elif isinstance(err, errors.CommandError):
        fields = {
            "argv": err.argv, "returncode": err.returncode, "stdout": err.stdout,
            "stderr": err.stderr, "reason": err.reason,
        }
    name = type(err).__name__
    if not isinstance(err, errors.ClusterError):
        name = "DaemonError"
        return {"type": name, "message": f"internal error in the daemon: {type(err).__name__}: {err}"}
    return {"type": name, "message": str(err), "fields": fields}


def error_from_wire(data: dict[str, Any]) -> errors.ClusterError:
    kind = data.get("type", "DaemonError")
    message = data.get("message", "unknown error")
    fields = data.get("fields") or {}
    if kind == "ManifestError" and fields:
        return errors.ManifestError(
            fields.get("message", message), source=fields.get("source", ""),
            index=fields.get("index"), path=fields.get("path", ""),
        )
    if kind == "CommandError" and fields:
        return errors.CommandError(
            fields["argv"], fields.get("returncode"), fields.get("stdout", ""),
            fields.get("stderr", ""), fields.get("reason", ""),
        )
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.ClusterError) and cls not in (
        errors.ManifestError, errors.CommandError, errors.WaitTimeout, errors.EngineUnavailable,
    ):
        return cls(message)
    return errors.DaemonError(message)


def _connected(sock_path: Path, timeout: float, deadline: float) -> socket.socket:
    """A socket connected to the daemon. A Unix socket whose listen backlog is full refuses
    a connection with EAGAIN instead of queueing it (ours have a timeout, so they are
    non-blocking underneath): that means the daemon is busy accepting, as when a policy
    matrix sends hundreds of probes at once, so the connection is tried again until the
    deadline rather than failing the call."""
    pause = 0.002
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(str(sock_path))
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() + pause >= deadline:
                raise TimeoutError(f"the daemon's socket stayed busy for {timeout:g}s") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        except BaseException:
            s.close()
            raise


def call(sock_path: Path, op: str, args: dict[str, Any] | None = None,
         timeout: float = 60.0) -> Any:
    """Send one request, return its result or raise the error the daemon sent."""
    deadline = time.monotonic() + timeout
    try:
        with _connected(sock_path, timeout, deadline) as s:
            s.sendall(encode({"op": op, "args": args or {}}))
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_LINE:
                    raise errors.DaemonError("answer too large")
    except (FileNotFoundError, ConnectionRefusedError) as err:
        raise errors.ClusterNotFound(f"no cluster daemon answers at {sock_path}") from err
    except TimeoutError as err:
        raise errors.DaemonError(f"the daemon did not answer '{op}' within {timeout:g}s") from err
    except OSError as err:  # reset or broken pipe: the daemon died during the call
        raise errors.DaemonError(f"the daemon dropped the connection during '{op}': {err}") from err
    if not buf:
        raise errors.DaemonError(f"the daemon closed the connection during '{op}'")
    answer = json.loads(buf)
    if answer.get("ok"):
        return answer.get("result")
    raise error_from_wire(answer.get("error", {}))
