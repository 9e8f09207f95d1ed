"""The one exception tree of the ``clusters`` package.

::

    ClusterError                    anything this package raises on purpose
    ├── CommandError                an external command failed (argv, output, exit code)
    ├── WaitTimeout                 a wait reached its deadline (carries the last observation)
    ├── EngineUnavailable           the engine cannot run here (why, and how to fix it)
    ├── ClusterNotFound             no such cluster / the cluster is not running
    ├── ClusterExists               a cluster with this name exists with another profile
    ├── AddressConflict             the engine's address ranges collide with the host's routes
    ├── ManifestError               a manifest was refused (source, document index, field path)
    ├── ObjectNotFound              an API object does not exist
    └── DaemonError                 the local engine's daemon failed or answered an error

Third-party errors are wrapped with the cause chained (``raise X from err``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class ClusterError(Exception):
    """Base class of every error this package raises on purpose."""


class CommandError(ClusterError):
    """An external command exited non-zero (or could not be started).

    ``str()`` gives a command a person can paste into a shell, its exit code and output.
    """

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        reason: str = "",
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.reason = reason
        super().__init__(self._render())

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def _render(self) -> str:
        head = f"command failed: {self.command}"
        if self.returncode is None:
            head += f" ({self.reason or 'could not be started'})"
        else:
            head += f" (exit code {self.returncode}{'; ' + self.reason if self.reason else ''})"
        out = "\n".join(p.strip() for p in (self.stdout, self.stderr) if p and p.strip())
        return f"{head}\n{out}" if out else head


class WaitTimeout(ClusterError):
    """A wait reached its deadline; ``last`` is the last thing it observed."""

    def __init__(self, what: str, timeout: float, last: object) -> None:
        self.what = what
        self.timeout = timeout
        self.last = last
        super().__init__(f"timed out after {timeout:g}s waiting for {what}; last seen: {last}")


class EngineUnavailable(ClusterError):
    """The engine cannot run on this machine. ``fix`` says what would make it work."""

    def __init__(self, engine: str, why: str, fix: str = "") -> None:
        self.engine = engine
        self.why = why
        self.fix = fix
        msg = f"the {engine} engine cannot run here: {why}"
        super().__init__(f"{msg}\n  fix: {fix}" if fix else msg)


class ClusterNotFound(ClusterError):
    """No cluster of that name exists, or it is not running."""


class ClusterExists(ClusterError):
    """A cluster of that name exists with a different profile."""


class AddressConflict(ClusterError):
    """The engine's address ranges collide with routes the host already has."""


class ManifestError(ClusterError):
    """A manifest was refused, like ``kubectl apply --validate=strict`` would refuse it.

    ``source`` is the file (or ``<stdin>``), ``index`` the 0-based document index within
    it, ``path`` the field path (``spec.containers[0].ports[0].containerPort``).
    """

    def __init__(
        self, message: str, *, source: str = "", index: int | None = None, path: str = ""
    ) -> None:
        self.message = message
        self.source = source
        self.index = index
        self.path = path
        where = source or "<manifest>"
        if index is not None:
            where += f" (document {index + 1})"
        if path:
            where += f": field {path}"
        super().__init__(f"{where}: {message}")


class ObjectNotFound(ClusterError):
    """An API object does not exist."""


class DaemonError(ClusterError):
    """The local engine's daemon is unreachable or answered with an error."""
