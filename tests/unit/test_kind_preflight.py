"""The kind engine's machine checks: each problem found for real and told with its fix."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from clusters.engine import ClusterProfile
from clusters.kind.preflight import Check, Machine, blocking, preflight, version_tuple
from clusters.proc import Result

PINS = {"kind": "v0.29.0", "kubernetes": "v1.33.1", "istio": "1.27.1", "helm": "v3.18.4"}
INFO = {"ServerVersion": "26.1.5", "OperatingSystem": "Debian GNU/Linux 12", "NCPU": 4,
        "MemTotal": 16 * (1 << 30), "SecurityOptions": ["name=seccomp,profile=builtin"],
        "CgroupVersion": "2"}
OUTPUTS = {
    "docker": Result([], 0, json.dumps(INFO), ""),
    "kind": Result([], 0, "kind v0.29.0 go1.24.2 linux/amd64\n", ""),
    "kubectl": Result([], 0, json.dumps({"clientVersion": {"gitVersion": "v1.32.3"}}), ""),
    "helm": Result([], 0, "v3.18.4+gd80839c\n", ""),
    "istioctl": Result([], 0, "client version: 1.27.1\n", ""),
}


def machine(tmp_path: Path, outputs: Mapping[str, Result] | None = None,
            missing: tuple[str, ...] = (), system: str = "Linux",
            proc: Mapping[str, str] | None = None) -> tuple[Machine, list[list[str]]]:
    answers = {**OUTPUTS, **(outputs or {})}
    calls: list[list[str]] = []
    files = {"sys/fs/inotify/max_user_watches": "524288\n",
             "sys/fs/inotify/max_user_instances": "512\n",
             "meminfo": "MemTotal: 24000000 kB\nMemAvailable:   20000000 kB\n", **(proc or {})}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)

    def runner(argv: list[str]) -> Result:
        calls.append(argv)
        return answers[argv[0]]

    def which(tool: str) -> str | None:
        return None if tool in missing else f"/usr/bin/{tool}"

    return Machine(system=system, runner=runner, which=which, proc=tmp_path), calls


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_ready_machine_passes_every_check_and_asks_the_tools_themselves(tmp_path: Path) -> None:
    m, calls = machine(tmp_path)
    checks = preflight(ClusterProfile(cni="cilium", addons=("istio",)), m, PINS)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    found = by_name(checks)
    assert found["docker daemon"].detail == "Docker 26.1.5 on Debian GNU/Linux 12, 4 CPUs"
    assert found["kubectl"].detail == "v1.32.3"
    assert found["istioctl"].detail.startswith("v1.27.1")
    assert ["docker", "info", "--format", "{{json .}}"] in calls
    assert ["kubectl", "version", "--client", "-o", "json"] in calls


def test_docker_missing_stopped_or_forbidden_each_gets_its_own_fix(tmp_path: Path) -> None:
    m, _ = machine(tmp_path, missing=("docker",))
    (check,) = [c for c in preflight(None, m, PINS) if c.name == "docker"]
    assert not check.ok and "apt-get install docker.io" in check.fix

    down = Result([], 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                            "Is the docker daemon running?\n")
    m, _ = machine(tmp_path, {"docker": down})
    check = by_name(preflight(None, m, PINS))["docker daemon"]
    assert not check.ok and check.detail.startswith("Cannot connect to the Docker daemon")
    assert check.fix.startswith("start the daemon: sudo systemctl start docker")
    assert check in blocking(preflight(None, m, PINS))

    m, _ = machine(tmp_path, {"docker": down}, system="Darwin")
    assert "Docker Desktop" in by_name(preflight(None, m, PINS))["docker daemon"].fix

    denied = Result([], 1, "", "permission denied while trying to connect to the Docker daemon "
                              "socket at unix:///var/run/docker.sock\n")
    m, _ = machine(tmp_path, {"docker": denied})
    assert "usermod -aG docker" in by_name(preflight(None, m, PINS))["docker daemon"].fix


def test_rootless_docker_on_cgroup_v1_blocks_with_the_kind_docs(tmp_path: Path) -> None:
    info = {**INFO, "SecurityOptions": ["name=seccomp", "name=rootless"], "CgroupVersion": "1"}
    m, _ = machine(tmp_path, {"docker": Result([], 0, json.dumps(info), "")})
    check = by_name(preflight(None, m, PINS))["rootless docker"]
    assert not check.ok and check.required and "cgroup v1" in check.detail
    assert "kind.sigs.k8s.io/docs/user/rootless" in check.fix
    info["CgroupVersion"] = "2"
    m, _ = machine(tmp_path, {"docker": Result([], 0, json.dumps(info), "")})
    assert by_name(preflight(None, m, PINS))["rootless docker"].ok


def test_versions_outside_what_the_pins_support_are_named(tmp_path: Path) -> None:
    old = {"kind": Result([], 0, "kind v0.20.0 go1.20.4 linux/amd64\n", ""),
           "kubectl": Result([], 0, json.dumps({"clientVersion": {"gitVersion": "v1.29.0"}}), ""),
           "helm": Result([], 0, "v3.7.2+g663a896\n", ""),
           "istioctl": Result([], 0, "1.22.0\n", "")}
    m, _ = machine(tmp_path, old)
    found = by_name(preflight(ClusterProfile(cni="calico"), m, PINS))
    assert found["kind"].detail == "v0.20.0 is installed; the course needs v0.29.0 or newer"
    assert found["kind"].fix.startswith(
        "sudo .venv/bin/python scripts/install_kind_tools.py kind (kind v0.29.0")
    assert "within one minor version of Kubernetes v1.33.1" in found["kubectl"].detail
    # calico without add-ons needs neither helm nor istioctl: they fail, but do not block
    assert not found["helm"].ok and not found["helm"].required
    assert not found["istioctl"].ok and not found["istioctl"].required
    assert {c.name for c in blocking(list(found.values()))} == {"kind", "kubectl"}


def test_helm_and_istioctl_block_only_the_profiles_that_use_them(tmp_path: Path) -> None:
    m, _ = machine(tmp_path, missing=("helm", "istioctl"))
    cilium = by_name(preflight(ClusterProfile(cni="cilium"), m, PINS))
    assert cilium["helm"].required and cilium["helm"].detail.startswith("not installed (needed for")
    assert not cilium["istioctl"].required
    mesh = by_name(preflight(ClusterProfile(addons=("istio",)), m, PINS))
    assert mesh["istioctl"].required
    assert "install_kind_tools.py istioctl (istioctl 1.27.1)" in mesh["istioctl"].fix


def test_low_inotify_limits_give_the_sysctl_that_fixes_them(tmp_path: Path) -> None:
    m, _ = machine(tmp_path, proc={"sys/fs/inotify/max_user_instances": "128\n"})
    check = by_name(preflight(None, m, PINS))["inotify limits"]
    assert not check.ok and not check.required
    assert check.detail.startswith("max_user_instances is 128, kind needs 512")
    assert check.fix.startswith("sudo sysctl -w fs.inotify.max_user_instances=512")


def test_memory_is_judged_against_the_profile(tmp_path: Path) -> None:
    m, _ = machine(tmp_path, proc={"meminfo": "MemAvailable:    3000000 kB\n"})
    small = by_name(preflight(ClusterProfile(workers=1), m, PINS))["memory"]
    assert small.ok
    big = by_name(preflight(ClusterProfile(workers=2, addons=("istio",)), m, PINS))["memory"]
    assert not big.ok and "need about 4608 MiB" in big.detail and "--workers" in big.fix


@pytest.mark.parametrize(("text", "expected"), [
    ("kind v0.29.0 go1.24.2 linux/amd64", (0, 29, 0)),
    ("v3.18.4+gd80839c", (3, 18, 4)),
    ("client version: 1.27.1", (1, 27, 1)),
    ("v1.33", (1, 33, 0)),
    ("no version here", None),
])
def test_versions_are_read_from_what_the_tools_print(text: str,
                                                     expected: tuple[int, int, int] | None) -> None:
    assert version_tuple(text) == expected
