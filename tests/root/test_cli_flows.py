"""What a learner does with ``lab`` around a lab: reuse a cluster, look at objects, change
them, run tools in pods and nodes, make mistakes, and survive a crashed daemon.

Every ``lab`` call is its own process (as on a terminal: ``lab exec`` hands the terminal to
the tool, so only a real process shows what the learner sees). Tests that create, break or
remove a cluster get their own; the others share one with two demo pods. Every cluster is
removed with ``lab stop`` afterwards, and nothing of it may be left on the host.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labcli import lab

from clusters.local import cleanup
from clusters.proc import Result, wait_until

RUN_ROOT = Path("/run/kube-netlab")

DEMO = """\
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: demo, labels: {app: server}}
spec:
  containers:
    - name: web
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: ["netexec", "--http-port=8080"]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec:
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app: server}}
  containers:
    - name: shell
      image: nicolaka/netshoot:v0.13
      command: ["sleep", "infinity"]
"""


def ok(*args: str) -> Result:
    done = lab(*args)
    assert done.returncode == 0, f"lab {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def items(*args: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(ok("get", *args, "-o", "json").stdout)["items"]
    return listed


def daemon_pid(name: str) -> int:
    return int((RUN_ROOT / name / "daemon.pid").read_text().strip())


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


@pytest.fixture
def cluster(learner: str) -> str:
    ok("cluster", "create", "--name", learner)
    return learner


def apply_demo(folder: Path) -> dict[str, dict[str, Any]]:
    """A server and a client pod on two different workers, Running and Ready."""
    manifest = folder / "demo.yaml"
    manifest.write_text(DEMO)
    ok("apply", "-f", str(manifest))
    pods = wait_until(
        "demo pods Running and Ready", lambda: items("pods", "-n", "demo"),
        lambda ps: len(ps) == 2 and all(_ready(p) for p in ps), timeout=30,
        describe=lambda ps: ", ".join(f"{p['metadata']['name']}={p['status'].get('phase')}"
                                      for p in ps))
    return {p["metadata"]["name"]: p for p in pods}


@pytest.fixture
def demo(cluster: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    return apply_demo(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """One cluster with the demo pods for the tests that only look, or undo what they change
    (a cluster per test would double this file's run time)."""
    name = f"knlt{uuid.uuid4().hex[:6]}"
    folder = tmp_path_factory.mktemp("shared")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_STATE_DIR", str(folder / "state"))
        mp.setenv("LAB_WORKSPACE", str(folder / "ws"))
        mp.setenv("LAB_CLUSTER", name)
        mp.delenv("LAB_ENGINE", raising=False)
        try:
            ok("cluster", "create", "--name", name)
            yield name, folder, apply_demo(folder)
        finally:
            stopped = lab("stop")
            assert stopped.returncode == 0, stopped.stderr
            assert cleanup.find_leftovers(name).empty


@pytest.fixture
def here(
    shared: tuple[str, Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The shared cluster's demo pods, with ``lab`` pointed at that cluster for this test."""
    name, folder, pods = shared
    monkeypatch.setenv("LAB_STATE_DIR", str(folder / "state"))
    monkeypatch.setenv("LAB_WORKSPACE", str(folder / "ws"))
    monkeypatch.setenv("LAB_CLUSTER", name)
    return pods


# --------------------------------------------------------------------------- lifecycle


def test_start_twice_reuses_the_cluster_and_keeps_the_learners_files(
    learner: str, state_dir: Path
) -> None:
    ok("start", "01")
    pid = daemon_pid(learner)
    mine = state_dir / "ws" / "01-pod-networking" / "pods.yaml"
    mine.write_text("# my own work\n")

    again = ok("start", "01")
    assert "Reusing" in again.stderr
    assert daemon_pid(learner) == pid
    assert mine.read_text() == "# my own work\n"
    assert "kept (yours, not overwritten): pods.yaml" in again.stdout

    status = json.loads(ok("status", "--json").stdout)
    assert (status["lab"], status["lab_status"]) == ("01", "in progress")
    assert (status["engine"], status["cluster"], status["running"]) == ("local", learner, True)
    assert len(status["nodes"]) == 3


def test_check_without_a_cluster_says_to_start_the_lab(learner: str, state_dir: Path) -> None:
    checked = lab("check", "01")
    assert checked.returncode == 1
    assert "lab start 01" in checked.stderr
    assert learner in checked.stderr
    assert "Traceback" not in checked.stderr
    assert not (state_dir / "ws" / "01-pod-networking").exists()


def test_cluster_create_list_delete(state_dir: Path) -> None:
    name = f"knlt{uuid.uuid4().hex[:6]}"
    try:
        made = ok("cluster", "create", "--name", name, "--nodes", "2")
        assert name in made.stdout and "1 workers" in made.stdout
        listed = {c["name"]: c for c in json.loads(ok("cluster", "list", "--json").stdout)}
        mine = listed[name]
        assert mine["engine"] == "local" and mine["running"] is True
        assert mine["profile"]["workers"] == 1
        assert mine["nodes"] == [f"{name}-control-plane", f"{name}-worker"]

        assert name in ok("cluster", "delete", "--name", name).stdout
        assert cleanup.find_leftovers(name).empty
        assert name not in {c["name"] for c in json.loads(ok("cluster", "list", "--json").stdout)}
        assert "nothing to delete" in ok("cluster", "delete", "--name", name).stdout
    finally:
        lab("cluster", "delete", "--name", name)
        assert cleanup.find_leftovers(name).empty


def test_killed_daemon_is_restarted_with_its_pods(learner: str, demo: dict[str, Any]) -> None:
    pid = daemon_pid(learner)
    os.kill(pid, signal.SIGKILL)
    wait_until("the killed daemon to be gone", lambda: _cmdline(pid),
               lambda cmd: b"clusters.local.daemon" not in cmd, timeout=10)

    listed = ok("get", "pods", "-A", "-o", "wide")
    assert "not running; restarting it" in listed.stderr
    assert daemon_pid(learner) != pid
    for name, pod in demo.items():
        row = next(line.split() for line in listed.stdout.splitlines()[1:]
                   if line.split()[:2] == ["demo", name])
        assert pod["status"]["podIP"] in row and "Running" in row
    # The data path survived too: the client still reaches the server.
    curl = lab("exec", "-n", "demo", "client", "--", "curl", "-s", "-m", "5",
               f"http://{demo['server']['status']['podIP']}:8080/hostname")
    assert (curl.returncode, curl.stdout.strip()) == (0, "server")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# --------------------------------------------------------------------------- looking


def test_get_in_every_output_format(here: dict[str, Any]) -> None:
    cluster = os.environ["LAB_CLUSTER"]
    wide = ok("get", "nodes", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                               "POD-CIDR"]
    rows = {r.split()[0]: r.split() for r in wide[1:]}
    assert sorted(rows) == [f"{cluster}-control-plane", f"{cluster}-worker", f"{cluster}-worker2"]
    assert all(r[1] == "Ready" and r[-1].startswith("10.244.") for r in rows.values())

    table = ok("get", "pods", "-A").stdout.splitlines()
    assert table[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert {tuple(r.split()[:2]) for r in table[1:]} >= {("demo", "server"), ("demo", "client")}

    as_json = json.loads(ok("get", "pods", "-n", "demo", "-o", "json").stdout)
    as_yaml = yaml.safe_load(ok("get", "pods", "-n", "demo", "-o", "yaml").stdout)
    for listed in (as_json, as_yaml):
        assert listed["kind"] == "List"
        assert sorted(p["metadata"]["name"] for p in listed["items"]) == ["client", "server"]
    one = json.loads(ok("get", "pod", "server", "-n", "demo", "-o", "json").stdout)
    assert one["metadata"]["name"] == "server" and one["status"]["podIP"]

    missing = lab("get", "pod", "nosuch", "-n", "demo")
    assert missing.returncode == 1 and "nosuch" in missing.stderr


# --------------------------------------------------------------------------- changing


def test_apply_then_delete_by_file(here: dict[str, Any], tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text("""\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: demo, labels: {app: web}}
spec:
  containers: [{name: web, image: registry.k8s.io/e2e-test-images/agnhost:2.53,
                args: ["netexec", "--http-port=8080"]}]
""")
    assert ok("apply", "-f", str(manifest)).stdout.strip() == "pod/web created"
    assert ok("apply", "-f", str(manifest)).stdout.strip() == "pod/web unchanged"
    assert "web" in [p["metadata"]["name"] for p in items("pods", "-n", "demo")]

    assert ok("delete", "-f", str(manifest)).stdout.strip() == "pod/web deleted"
    assert sorted(p["metadata"]["name"] for p in items("pods", "-n", "demo")) == ["client", "server"]
    again = lab("delete", "-f", str(manifest))
    assert again.returncode == 1 and '"web" not found' in again.stderr


def test_delete_by_file_counts_objects_removed_with_their_namespace(
        here: dict[str, Any], tmp_path: Path) -> None:
    manifest = tmp_path / "ns.yaml"
    manifest.write_text("""\
apiVersion: v1
kind: Namespace
metadata: {name: knlt-gone}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: knlt-gone}
spec: {podSelector: {}}
""")
    ok("apply", "-f", str(manifest))
    removed = ok("delete", "-f", str(manifest)).stdout.splitlines()
    assert removed == ["namespace/knlt-gone deleted",
                       "networkpolicy/deny deleted (with namespace knlt-gone)"]


def test_label_set_and_remove(here: dict[str, Any]) -> None:
    assert "labeled" in ok("label", "pod", "server", "tier=front", "-n", "demo").stdout
    chosen = ok("get", "pods", "-n", "demo", "-l", "tier=front", "-o", "name").stdout.split()
    assert chosen == ["pod/server"]

    clash = lab("label", "pod", "server", "tier=back", "-n", "demo")
    assert clash.returncode == 2 and "--overwrite" in clash.stderr

    ok("label", "pod", "server", "tier-", "-n", "demo")
    server = json.loads(ok("get", "pod", "server", "-n", "demo", "-o", "json").stdout)
    assert server["metadata"]["labels"] == {"app": "server"}
    assert ok("get", "pods", "-n", "demo", "-l", "tier=front", "-o", "name").stdout == ""


def test_invalid_manifest_names_file_document_and_field_and_applies_nothing(
    here: dict[str, Any], tmp_path: Path
) -> None:
    manifest = tmp_path / "two-pods.yaml"
    manifest.write_text("""\
apiVersion: v1
kind: Pod
metadata: {name: fine, namespace: default}
spec:
  containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: typo, namespace: default}
spec:
  containers:
    - name: c
      image: nginx
      imagePullPolicyy: Always
""")
    applied = lab("apply", "-f", str(manifest))
    assert applied.returncode == 1
    assert str(manifest) in applied.stderr
    assert "document 2" in applied.stderr
    assert "spec.containers[0].imagePullPolicyy" in applied.stderr
    assert "Traceback" not in applied.stderr
    assert items("pods", "-n", "default") == [], "the valid first document was not applied"


def test_apply_into_a_missing_namespace_is_a_clear_error(
    here: dict[str, Any], tmp_path: Path
) -> None:
    manifest = tmp_path / "lost.yaml"
    manifest.write_text("""\
apiVersion: v1
kind: Pod
metadata: {name: lost, namespace: knlt-nowhere}
spec:
  containers: [{name: c, image: nginx}]
""")
    applied = lab("apply", "-f", str(manifest))
    assert applied.returncode == 1
    assert str(manifest) in applied.stderr
    assert '"knlt-nowhere" not found' in applied.stderr
    assert "Namespace" in applied.stderr, "the message says what to do"
    assert "lost" not in [p["metadata"]["name"] for p in items("pods", "-A")]
    assert "knlt-nowhere" not in [n["metadata"]["name"] for n in items("namespaces")]


# --------------------------------------------------------------------------- tools inside


def test_exec_passes_the_exit_code_through(here: dict[str, Any]) -> None:
    assert lab("exec", "-n", "demo", "client", "--", "sh", "-c", "exit 3").returncode == 3
    hostname = ok("exec", "-n", "demo", "client", "--", "hostname")
    assert hostname.stdout.strip() == "client"


def test_exec_curl_reaches_a_pod_on_another_node(here: dict[str, Any]) -> None:
    server, client = here["server"], here["client"]
    assert server["spec"]["nodeName"] != client["spec"]["nodeName"]
    answered = ok("exec", "-n", "demo", "client", "--", "curl", "-s", "-m", "5",
                  f"http://{server['status']['podIP']}:8080/hostname")
    assert answered.stdout.strip() == "server"
    seen = ok("exec", "-n", "demo", "client", "--", "curl", "-s", "-m", "5",
              f"http://{server['status']['podIP']}:8080/clientip")
    assert seen.stdout.strip().rsplit(":", 1)[0] == client["status"]["podIP"]


def test_node_shell_shows_pod_and_node_routes(here: dict[str, Any]) -> None:
    server, client = here["server"], here["client"]
    nodes = {n["metadata"]["name"]: n for n in items("nodes")}
    other = nodes[client["spec"]["nodeName"]]
    other_ip = next(a["address"] for a in other["status"]["addresses"] if a["type"] == "InternalIP")

    routes = ok("node-shell", server["spec"]["nodeName"], "--", "ip", "route").stdout
    lines = [line.split() for line in routes.splitlines()]
    # A host (/32) route to each local pod through its veth ...
    assert any(r[:2] == [server["status"]["podIP"], "dev"] and r[2].startswith("veth")
               for r in lines), routes
    # ... and the other node's pod range via that node's address.
    assert [other["spec"]["podCIDR"], "via", other_ip] in [r[:3] for r in lines], routes

    bad = lab("node-shell", "no-such-node", "--", "ip", "route")
    assert bad.returncode == 2 and "no-such-node" in bad.stderr and "worker-1" in bad.stderr
    short = lab("node-shell", "worker-1", "--", "iptables-save", "-t", "nat")
    assert short.returncode == 0 and "KUBE-SERVICES" in short.stdout
