"""A thin, typed wrapper around the ``kind`` command line.

The kind engine talks to kind only through :class:`KindCLI`, so every kind invocation in the
project is one argv list built here and one place maps kind's failures onto
:class:`~clusters.errors.CommandError`. kind writes its progress lines and errors to stderr
and its answers to stdout, so answers are parsed from stdout alone: stderr is kept only to
explain a failure (``kind get clusters`` with no clusters says so on stderr and exits 0).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import sh

from clusters.errors import CommandError

INSTALL_HINT = "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or pass its path"

# "kind v0.23.0 go1.22.2 linux/amd64"; development builds add "-alpha.1+abcdef" to the version.
_VERSION = re.compile(r"\bv\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


class KindCLI:
    """Runs ``kind`` sub-commands and returns their parsed stdout.

    ``env`` is laid over the current environment for every call (``KUBECONFIG``,
    ``KIND_EXPERIMENTAL_PROVIDER``, ...); its ``PATH``, when given, is also where ``binary``
    is looked up. ``timeout`` bounds each call in seconds: ``kind create cluster`` can take
    minutes, so it is long by default.
    """

    def __init__(
        self, binary: str = "kind", env: Mapping[str, str] | None = None, timeout: float = 600
    ) -> None:
        self.binary = binary
        self.env = dict(env) if env is not None else None
        self.timeout = timeout

    def create_cluster(
        self,
        name: str,
        config: Path,
        image: str | None = None,
        wait: str | None = None,
        kubeconfig: Path | None = None,
        retain: bool = False,
    ) -> None:
        """Create cluster ``name`` from a kind config file; ``wait`` is a Go duration ("120s")."""
        argv = ["create", "cluster", "--name", name, "--config", str(config)]
        if image:
            argv += ["--image", image]
        if wait:
            argv += ["--wait", wait]
        if kubeconfig is not None:
            argv += ["--kubeconfig", str(kubeconfig)]
        if retain:
            argv.append("--retain")
        self._run(argv)

    def delete_cluster(self, name: str, kubeconfig: Path | None = None) -> None:
        """Delete cluster ``name`` (and its entry in ``kubeconfig``, when given)."""
        argv = ["delete", "cluster", "--name", name]
        if kubeconfig is not None:
            argv += ["--kubeconfig", str(kubeconfig)]
        self._run(argv)

    def clusters(self) -> list[str]:
        """Names of the existing kind clusters; ``[]`` when there are none."""
        return _lines(self._run(["get", "clusters"]))

    def nodes(self, name: str) -> list[str]:
        """Container names of cluster ``name``'s nodes."""
        return _lines(self._run(["get", "nodes", "--name", name]))

    def kubeconfig(self, name: str, internal: bool = False) -> str:
        """The cluster's kubeconfig; ``internal`` addresses the API server from the kind network."""
        argv = ["get", "kubeconfig", "--name", name]
        if internal:
            argv.append("--internal")
        return self._run(argv)

    def export_kubeconfig(self, name: str, path: Path) -> None:
        """Write (merge) the cluster's kubeconfig into ``path``."""
        self._run(["export", "kubeconfig", "--name", name, "--kubeconfig", str(path)])

    def load_images(self, name: str, images: Sequence[str], nodes: Iterable[str] | None = None) -> None:
        """Copy host Docker images into the cluster's nodes (all nodes unless ``nodes``)."""
        if not images:
            raise ValueError("load_images needs at least one image")
        argv = ["load", "docker-image", *images, "--name", name]
        if nodes is not None:
            argv += ["--nodes", ",".join(nodes)]
        self._run(argv)

    def version(self) -> str:
        """kind's semantic version, such as ``"v0.23.0"``."""
        argv = ["version"]
        out = self._run(argv)
        found = _VERSION.search(out)
        if found is None:
            raise CommandError([self.binary, *argv], 0, out, reason="kind printed no version")
        return found.group(0)

    def _run(self, args: Sequence[str]) -> str:
        """Run ``kind *args`` and return its stdout; every failure becomes a CommandError."""
        argv = [self.binary, *args]
        env = {**os.environ, **self.env} if self.env is not None else None
        search = env["PATH"].split(os.pathsep) if env and "PATH" in env else None
        try:
            cmd = sh.Command(self.binary, search_paths=search)
        except sh.CommandNotFound as err:
            raise CommandError(argv, None, reason=f"{self.binary}: not found; {INSTALL_HINT}") from err
        try:
            done = cmd(*args, _env=env, _timeout=self.timeout, _tty_out=False, _return_cmd=True)
        except sh.ErrorReturnCode as err:
            raise CommandError(argv, err.exit_code, _text(err.stdout), _text(err.stderr)) from err
        except sh.TimeoutException as err:
            raise CommandError(argv, None, reason=f"no answer within {self.timeout:g}s") from err
        return _text(done.stdout)
