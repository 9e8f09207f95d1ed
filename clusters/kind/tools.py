"""The command-line tools an install drives: kubectl, helm, istioctl and docker.

Installing a CNI or an add-on is a few commands, and the commands fail in a few known,
*temporary* ways while a fresh cluster settles: an admission webhook whose pod is not
serving yet, a custom resource sent just after its CRD (``no matches for kind``), an API
server restarting (``connection refused``). :class:`Tools` runs each tool as an argv list
aimed at one cluster (its kubeconfig and context) and offers waits that retry exactly those
failures until a deadline; anything else fails at once with the command and its output. A
wait that runs out raises :class:`~clusters.errors.WaitTimeout` carrying the last output and
what the pods involved were doing (``ImagePullBackOff`` and its message, say), so the user
learns which image could not be pulled rather than only that something timed out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clusters.errors import CommandError, WaitTimeout
from clusters.proc import Result, run

#: Failures that go away by themselves while a cluster or a component starts.
TRANSIENT = re.compile(
    r"failed calling webhook"                      # the webhook's pod is not serving yet
    r"|no matches for kind|ensure CRDs are installed first"  # CR sent right after its CRD
    r"|the server could not find the requested resource"
    r"|connection refused|connection reset by peer"  # API server (re)starting
    r"|The connection to the server \S+ was refused"
    r"|TLS handshake timeout|i/o timeout|unexpected EOF"
    r"|the server is currently unable to handle the request|ServiceUnavailable"
    r"|etcdserver: request timed out|Kubernetes cluster unreachable",
    re.IGNORECASE,
)
#: What ``kubectl wait`` / ``rollout status`` say when the object does not exist *yet*.
NOT_THERE_YET = re.compile(
    r"no matching resources found|\(NotFound\)|not found|doesn't have a resource type",
    re.IGNORECASE)
#: What ``kubectl wait`` / ``rollout status`` say when their own --timeout ran out.
TIMED_OUT = re.compile(r"timed out waiting for the condition", re.IGNORECASE)


def output_of(err: CommandError) -> str:
    return "\n".join(p.strip() for p in (err.stdout, err.stderr) if p and p.strip())


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def is_transient(err: CommandError) -> bool:
    return err.returncode is not None and bool(TRANSIENT.search(output_of(err)))


def _not_there_or_transient(err: CommandError) -> bool:
    return is_transient(err) or (err.returncode is not None
                                 and bool(NOT_THERE_YET.search(output_of(err))))


@dataclass(frozen=True)
class Tools:
    """Runs tools against one cluster. ``env`` is laid over the process environment (its
    ``PATH`` is also where tools are looked for); ``interval`` is the pause between retries."""

    kubeconfig: Path | None = None
    context: str | None = None
    env: Mapping[str, str] | None = None
    interval: float = 2.0
    command_timeout: float = 180.0

    def with_target(self, kubeconfig: Path, context: str) -> Tools:
        """The same tools aimed at another cluster."""
        return replace(self, kubeconfig=kubeconfig, context=context)

    # ---- running ----------------------------------------------------------------------
    def _environ(self) -> dict[str, str] | None:
        return {**os.environ, **self.env} if self.env is not None else None

    def have(self, tool: str) -> bool:
        """Whether ``tool`` is on the PATH the tools run with."""
        env = self._environ() or os.environ
        return shutil.which(tool, path=env.get("PATH")) is not None

    def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True,
            timeout: float | None = None) -> Result:
        return run(argv, input=input, check=check, env=self._environ(),
                   timeout=timeout if timeout is not None else self.command_timeout)

    def _target(self, context_flag: str) -> list[str]:
        flags = []
        if self.kubeconfig is not None:
            flags += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            flags += [context_flag, self.context]
        return flags

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float | None = None) -> Result:
        return self.run(["kubectl", *self._target("--context"), *args], input=input,
                        check=check, timeout=timeout)

    def helm(self, *args: str, timeout: float | None = None) -> Result:
        return self.run(["helm", *args, *self._target("--kube-context")], timeout=timeout)

    def istioctl(self, *args: str, timeout: float | None = None) -> Result:
        return self.run(["istioctl", *args, *self._target("--context")], timeout=timeout)

    def cilium(self, *args: str, timeout: float | None = None) -> Result:
        return self.run(["cilium", *args, *self._target("--context")], timeout=timeout)

    def docker(self, *args: str, check: bool = True, timeout: float | None = None) -> Result:
        return self.run(["docker", *args], check=check, timeout=timeout)

    # ---- retries and waits -------------------------------------------------------------
    def retrying(
        self, what: str, attempt: Callable[[float], Result], timeout: float,
        retry: Callable[[CommandError], bool] = is_transient,
    ) -> Result:
        """Call ``attempt(seconds_left)`` until it succeeds; retry only failures ``retry``
        accepts, until ``timeout`` seconds pass (then WaitTimeout with the last output)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return attempt(max(1.0, deadline - time.monotonic()))
            except CommandError as err:
                if not retry(err):
                    raise
                if time.monotonic() >= deadline:
                    raise WaitTimeout(what, timeout, first_line(output_of(err))) from err
            time.sleep(min(self.interval, max(0.0, deadline - time.monotonic())))

    def apply(self, what: str, manifest: str | Path, *, timeout: float,
              server_side: bool = False) -> Result:
        """``kubectl apply`` a file or YAML/JSON text, retrying transient failures.

        ``server_side`` applies on the server (``--server-side --force-conflicts``): big
        CRDs do not fit the client-side ``last-applied-configuration`` annotation."""
        flags = ["--server-side", "--force-conflicts"] if server_side else []
        if isinstance(manifest, Path):
            args, text = ["apply", *flags, "-f", str(manifest)], None
        else:
            args, text = ["apply", *flags, "-f", "-"], manifest
        return self.retrying(what, lambda left: self.kubectl(*args, input=text), timeout)

    def wait(self, what: str, target: Sequence[str], condition: str, *, timeout: float,
             namespace: str | None = None, diagnose: Sequence[str] = ()) -> None:
        """``kubectl wait --for=condition=...`` that also waits for the objects to exist.

        On timeout the pods of ``diagnose`` (default: ``namespace``) say what they lack."""
        ns = ["-n", namespace] if namespace else []
        self._blocking_wait(what, timeout, diagnose or ([namespace] if namespace else []),
                            lambda left: self.kubectl(
                                "wait", *ns, f"--for=condition={condition}", *target,
                                f"--timeout={int(left)}s", timeout=left + 30))

    def rollout(self, kind: str, name: str, namespace: str, *, timeout: float) -> None:
        """``kubectl rollout status`` of a Deployment or DaemonSet, waiting for it to exist."""
        self._blocking_wait(
            f"{kind.lower()}/{name} in {namespace} to roll out", timeout, [namespace],
            lambda left: self.kubectl("rollout", "status", f"{kind.lower()}/{name}", "-n",
                                      namespace, f"--timeout={int(left)}s", timeout=left + 30))

    def _blocking_wait(self, what: str, timeout: float, diagnose: Sequence[str],
                       attempt: Callable[[float], Result]) -> None:
        try:
            self.retrying(what, attempt, timeout, retry=lambda e: not TIMED_OUT.search(
                output_of(e)) and _not_there_or_transient(e))
        except CommandError as err:
            if not TIMED_OUT.search(output_of(err)):
                raise
            raise WaitTimeout(what, timeout, self._last_seen(output_of(err), diagnose)) from err
        except WaitTimeout as err:
            raise WaitTimeout(what, timeout, self._last_seen(str(err.last), diagnose)) from err

    def _last_seen(self, output: str, diagnose: Sequence[str]) -> str:
        parts = [first_line(output)] if output.strip() else []
        for namespace in diagnose:
            parts += self.pod_problems(namespace)
        return "; ".join(parts) or "nothing"

    def pod_problems(self, namespace: str) -> list[str]:
        """Why the pods of ``namespace`` are not Ready, one line each (empty if unknown)."""
        try:
            res = self.kubectl("get", "pods", "-n", namespace, "-o", "json", timeout=30)
            pods = json.loads(res.stdout).get("items", [])
        except (CommandError, ValueError):
            return []
        return [line for pod in pods if (line := pod_problem(pod))]


def pod_problem(pod: Mapping[str, Any]) -> str:
    """``ns/name: ImagePullBackOff (Back-off pulling image "x")`` or "" for a Ready pod."""
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    if ready or status.get("phase") == "Succeeded":
        return ""
    reasons = []
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = cs.get("state", {})
        for key in ("waiting", "terminated"):
            detail = state.get(key)
            if detail and detail.get("reason") not in (None, "Completed"):
                message = f" ({detail['message'].strip()})" if detail.get("message") else ""
                reasons.append(f"{cs.get('name')}: {detail['reason']}{message}")
    if not reasons:
        for cond in status.get("conditions") or []:
            if cond.get("status") == "False" and cond.get("message"):
                reasons.append(f"{cond.get('reason') or cond.get('type')}: {cond['message']}")
                break
    where = f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
    return f"{where}: {'; '.join(reasons) or status.get('phase', 'not ready')}"
