"""What the kind engine needs from this machine, checked for real, each problem with its fix.

``lab doctor`` shows these checks, and ``KindEngine.available`` uses the essential ones.
Nothing here changes the machine: every fix is a command for the user to run. The checks
ask the tools themselves (``docker info``, ``kind version``, ...), so a daemon that is
installed but stopped, or a socket the user may not open, is told apart from a missing tool.

Versions come from :mod:`clusters.kind.pins`: kind must be at least the pinned release
(node images are built for a kind release), kubectl within one minor version of the node
image's Kubernetes (the skew kubectl supports), helm 3.8 or newer (OCI charts), and
istioctl exactly the pinned Istio release (istioctl installs its own version).
"""

from __future__ import annotations

import json
import platform
import re
import shutil
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusters.engine import ClusterProfile
from clusters.errors import CommandError
from clusters.proc import Result, run

#: kind's known-issues page: pods fail with "too many open files" below these.
INOTIFY_MINIMUM = {"max_user_watches": 524288, "max_user_instances": 512}
#: Rough memory a kind cluster needs: the control plane, each worker, the heavier add-ons.
MIB_CONTROL_PLANE, MIB_WORKER = 1536, 768
MIB_ADDON = {"istio": 1536, "gateway": 512, "ingress": 256, "load-balancer": 128}
HELM_MINIMUM = (3, 8, 0)
#: Add-ons and CNIs that are installed with helm or istioctl.
NEEDS_HELM_CNI = {"cilium"}
NEEDS_HELM_ADDON = {"ingress", "gateway"}
KIND_ROOTLESS_DOCS = "https://kind.sigs.k8s.io/docs/user/rootless/"
#: The project's own installer of the pinned tools (run from the repository).
INSTALLER = "sudo .venv/bin/python scripts/install_kind_tools.py"

Runner = Callable[[list[str]], Result]
Which = Callable[[str], str | None]

_SEMVER = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Check:
    """One finding. ``required`` ones make the kind engine unusable when they fail."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def version_tuple(text: str) -> tuple[int, int, int] | None:
    """``(1, 33, 1)`` from ``v1.33.1``, ``kind v0.29.0 go1.24``, ``v3.18.4+gd80839c``."""
    found = _SEMVER.search(text)
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)


def _show(version: tuple[int, int, int]) -> str:
    return "v" + ".".join(str(p) for p in version)


def _quiet(argv: list[str]) -> Result:
    try:
        return run(argv, check=False, timeout=20)
    except CommandError as err:  # not found, or no answer in time
        return Result(list(argv), 127 if err.returncode is None else err.returncode, "",
                      str(err))


@dataclass
class Machine:
    """The facts the checks read, injectable so every branch is testable."""

    system: str = platform.system()
    runner: Runner = _quiet
    which: Which = shutil.which
    proc: Path = Path("/proc")

    def read(self, relative: str) -> str | None:
        try:
            return (self.proc / relative).read_text()
        except OSError:
            return None


def _pins() -> dict[str, str]:
    """The pinned versions the checks compare with."""
    from clusters.kind.pins import pin

    return {"kind": pin("kind").version, "kubernetes": pin("node-image").version,
            "istio": pin("istioctl").version, "helm": pin("helm").version}


# ------------------------------------------------------------------------------ docker

def docker_checks(m: Machine) -> tuple[list[Check], dict[str, Any]]:
    """The Docker CLI, its daemon, rootless mode and macOS networking; and ``docker info``."""
    mac = m.system == "Darwin"
    if m.which("docker") is None:
        fix = ("install Docker Desktop, OrbStack or colima" if mac else
               "install Docker Engine (Debian/Ubuntu: sudo apt-get install docker.io; "
               "others: https://docs.docker.com/engine/install/)")
        return [Check("docker", False, "the docker CLI is not installed", fix)], {}
    res = m.runner(["docker", "info", "--format", "{{json .}}"])
    text = (res.stderr or res.stdout).strip()
    if not res.ok:
        if "permission denied" in text.lower():
            fix = ("let your user use Docker: sudo usermod -aG docker $USER, then log out and "
                   "in again (or run `newgrp docker`)")
        elif mac:
            fix = "start Docker Desktop (or `colima start`) and wait until it says it is running"
        else:
            fix = "start the daemon: sudo systemctl start docker (and `enable` it for next boot)"
        return [Check("docker daemon", False, _first_line(text) or "docker info failed", fix)], {}
    try:
        info: dict[str, Any] = json.loads(res.stdout)
    except json.JSONDecodeError:
        return [Check("docker daemon", False, f"docker info printed no JSON: {res.stdout[:120]!r}",
                      "update Docker (a daemon from the last five years prints JSON)")], {}
    if info.get("ServerErrors"):
        return [Check("docker daemon", False, "; ".join(map(str, info["ServerErrors"])),
                      "start the daemon: sudo systemctl start docker")], info
    checks = [Check("docker daemon", True,
                    f"Docker {info.get('ServerVersion', '?')} on {info.get('OperatingSystem', '?')}, "
                    f"{info.get('NCPU', '?')} CPUs")]
    options = " ".join(map(str, info.get("SecurityOptions") or []))
    if "rootless" in options:
        cgroup2 = str(info.get("CgroupVersion", "")) == "2"
        checks.append(Check(
            "rootless docker", cgroup2,
            "rootless Docker: kind needs cgroup v2 with the cpu, cpuset and io controllers "
            "delegated to your user" + ("" if cgroup2 else "; this daemon uses cgroup v1"),
            f"see {KIND_ROOTLESS_DOCS} (systemd delegation and the iptables modules it lists)",
            required=not cgroup2))
    if mac:
        checks.append(Check(
            "macOS networking", True,
            "on macOS the nodes run in a VM: pod and node addresses are not reachable from the "
            "Mac, so probes from the host use the ports the cluster maps to 127.0.0.1",
            required=False))
    return checks, info


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def memory_check(m: Machine, info: Mapping[str, Any], profile: ClusterProfile) -> Check:
    """Enough memory for the profile: Docker's (the VM on macOS) and, on Linux, free now."""
    need = (MIB_CONTROL_PLANE + MIB_WORKER * profile.workers
            + sum(MIB_ADDON.get(a, 0) for a in profile.addons))
    total = int(info.get("MemTotal") or 0) // (1 << 20)
    available = None
    meminfo = m.read("meminfo") if m.system == "Linux" else None
    if meminfo:
        found = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M)
        available = int(found.group(1)) // 1024 if found else None
    have = min(x for x in (total or None, available) if x is not None) if (total or available) \
        else None
    what = f"{profile.nodes} nodes" + (f" with {', '.join(profile.addons)}" if profile.addons else "")
    if have is None:
        return Check("memory", True, f"could not read free memory; {what} need about {need} MiB",
                     required=False)
    detail = f"{have} MiB free for Docker; {what} need about {need} MiB"
    fix = ("give Docker Desktop more memory (Settings > Resources)" if m.system == "Darwin"
           else "close other programs, or use fewer workers (--workers) / add-ons")
    return Check("memory", have >= need, detail, "" if have >= need else fix, required=False)


def inotify_check(m: Machine) -> Check:
    """kind's nodes share the host kernel's inotify limits (Linux only)."""
    if m.system != "Linux":
        return Check("inotify limits", True, "set inside Docker's VM on this system",
                     required=False)
    low = []
    for key, minimum in INOTIFY_MINIMUM.items():
        raw = m.read(f"sys/fs/inotify/{key}")
        value = int(raw) if raw and raw.strip().isdigit() else None
        if value is None or value < minimum:
            low.append((key, value, minimum))
    if not low:
        return Check("inotify limits", True, ", ".join(
            f"{k} >= {v}" for k, v in INOTIFY_MINIMUM.items()), required=False)
    sets = " ".join(f"fs.inotify.{k}={minimum}" for k, _, minimum in low)
    detail = "; ".join(f"{k} is {'unreadable' if v is None else v}, kind needs {minimum}"
                       for k, v, minimum in low)
    return Check("inotify limits", False, detail + " (pods fail with 'too many open files')",
                 f"sudo sysctl -w {sets} (persist it in /etc/sysctl.d/99-kind.conf)",
                 required=False)


# ------------------------------------------------------------------------------- tools

def _tool_version(m: Machine, argv: list[str]) -> tuple[tuple[int, int, int] | None, str]:
    res = m.runner(argv)
    text = (res.stdout + "\n" + res.stderr).strip()
    if not res.ok:
        return None, _first_line(text) or f"exit code {res.returncode}"
    if argv[:2] == ["kubectl", "version"]:
        with suppress(json.JSONDecodeError, KeyError, TypeError):
            text = json.loads(res.stdout)["clientVersion"]["gitVersion"]
    return version_tuple(text), _first_line(text)


def tool_checks(m: Machine, profile: ClusterProfile | None,
                pins: Mapping[str, str] | None = None) -> list[Check]:
    """kind and kubectl always; helm and istioctl when the profile (or any profile) needs them."""
    pinned = dict(pins) if pins is not None else _pins()
    checks: list[Check] = []
    kind_pin = version_tuple(pinned["kind"])
    k8s = version_tuple(pinned["kubernetes"])
    kind_fix = (f"{INSTALLER} kind (kind {pinned['kind']}, checksum verified), or see "
                "https://kind.sigs.k8s.io/docs/user/quick-start/#installation")
    checks.append(_versioned(m, "kind", ["kind", "version"], kind_fix,
                             lambda v: kind_pin is None or v >= kind_pin,
                             f"{pinned['kind']} or newer"))
    if k8s is not None:
        kubectl_fix = (f"{INSTALLER} kubectl (kubectl {_show(k8s)}, checksum verified), or see "
                       "https://kubernetes.io/docs/tasks/tools/")
        checks.append(_versioned(
            m, "kubectl", ["kubectl", "version", "--client", "-o", "json"], kubectl_fix,
            lambda v: v[0] == k8s[0] and abs(v[1] - k8s[1]) <= 1,
            f"within one minor version of Kubernetes {_show(k8s)}"))
    helm_needed = profile is None or profile.cni in NEEDS_HELM_CNI \
        or bool(NEEDS_HELM_ADDON & set(profile.addons))
    checks.append(_versioned(
        m, "helm", ["helm", "version", "--short"],
        f"{INSTALLER} helm (helm {pinned['helm']}), or see https://helm.sh/docs/intro/install/",
        lambda v: v >= HELM_MINIMUM, f"{_show(HELM_MINIMUM)} or newer",
        required=helm_needed, why="Cilium, the Ingress controller and the Gateway"))
    istio = version_tuple(pinned["istio"])
    checks.append(_versioned(
        m, "istioctl", ["istioctl", "version", "--remote=false"],
        f"{INSTALLER} istioctl (istioctl {pinned['istio']}), or see "
        "https://istio.io/latest/docs/setup/getting-started/#download",
        lambda v: istio is None or v[:2] == istio[:2], f"{pinned['istio']} (same minor)",
        required=profile is None or "istio" in profile.addons, why="the istio add-on"))
    return checks


def _versioned(m: Machine, tool: str, argv: list[str], fix: str,
               good: Callable[[tuple[int, int, int]], bool], wanted: str, *,
               required: bool = True, why: str = "") -> Check:
    needed_for = f" (needed for {why})" if why else ""
    if m.which(tool) is None:
        return Check(tool, False, f"not installed{needed_for}", fix, required=required)
    version, text = _tool_version(m, argv)
    if version is None:
        return Check(tool, False, f"could not read its version: {text}", fix, required=required)
    if not good(version):
        return Check(tool, False, f"{_show(version)} is installed; the course needs {wanted}",
                     fix, required=required)
    return Check(tool, True, f"{_show(version)}{needed_for}", required=required)


def preflight(profile: ClusterProfile | None = None, machine: Machine | None = None,
              pins: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in the order a user fixes them. ``profile=None``: what any lab may need."""
    m = machine or Machine()
    checks, info = docker_checks(m)
    checks += tool_checks(m, profile, pins)
    checks.append(inotify_check(m))
    if info:
        checks.append(memory_check(m, info, profile or ClusterProfile()))
    return checks


def blocking(checks: list[Check]) -> list[Check]:
    """The failed checks that make the engine unusable."""
    return [c for c in checks if c.required and not c.ok]
