"""Fake ``kind``, ``kubectl``, ``docker``, ``helm`` and ``istioctl`` executables for unit tests.

:class:`FakeBin` puts one small script per tool in a temporary ``bin`` directory at the front
of ``PATH``. Each call appends ``{"tool", "argv"}`` as one JSON line to a shared log, then
answers:

* from the **scripted table** first: :meth:`FakeBin.on` adds a rule ``tool + words`` with a
  list of responses (stdout, stderr, exit code, files to write, a delay). A rule matches when
  its words appear in the argv *in order* (not necessarily side by side, so global flags such
  as ``--kubeconfig K --context C`` need not be spelled out); the rule with the most words
  wins, the latest among equals. Successive calls take successive responses; the last one
  repeats ("fails twice, then works").
* else from **defaults** that behave like the real tools, with a little state in a JSON
  file: kind creates, lists and deletes clusters (and refuses a name that exists with its
  real message), writes kubeconfigs; kubectl knows each cluster's nodes (with the labels
  the kind config gave them) and stores the ``kube-netlab`` ConfigMap; docker answers
  ``info`` and ``network inspect kind`` (a dual-stack network, IPv6 listed first); helm and
  istioctl report versions. The failure texts the tools really print are constants here.

The scripts run ``python -m``-free: each is a two-line stub that imports this module and
calls :func:`main`, so the logic stays in one typed, importable file.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

TOOLS = ("kind", "kubectl", "docker", "helm", "istioctl")

# What the real tools print when things go wrong (kind and docker to stderr, exit code 1).
DOCKER_DOWN = ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
               "Is the docker daemon running?")
DOCKER_DENIED = ("permission denied while trying to connect to the Docker daemon socket at "
                 "unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.47/info\": "
                 "dial unix /var/run/docker.sock: connect: permission denied")
NO_KIND_CLUSTERS = "No kind clusters found."


def already_exists(name: str) -> str:
    return f'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "{name}"'


def webhook_not_ready(webhook: str, service: str, path: str) -> str:
    return ('Error from server (InternalError): error when creating "STDIN": Internal error '
            f'occurred: failed calling webhook "{webhook}": failed to call webhook: Post '
            f'"https://{service}:443/{path}?timeout=10s": dial tcp 10.96.187.42:443: '
            "connect: connection refused")


def wait_timed_out(target: str) -> str:
    return f"error: timed out waiting for the condition on {target}"


def no_matches(kind: str, version: str, name: str) -> str:
    return (f'error: resource mapping not found for name: "{name}" namespace: "" from "STDIN": '
            f'no matches for kind "{kind}" in version "{version}"\n'
            "ensure CRDs are installed first")


def api_refused(port: int = 40123) -> str:
    return (f"The connection to the server 127.0.0.1:{port} was refused - did you specify the "
            "right host or port?")


def not_found(resource: str, name: str) -> str:
    return f'Error from server (NotFound): {resource} "{name}" not found'


# ------------------------------------------------------------------------------ test side

class FakeBin:
    """The fake tools of one test: rules, state and the call log live under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        here = Path(__file__).resolve().parent
        stub = (f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(here)!r})\n"
                "import fakebin\nfakebin.main()\n")
        for tool in TOOLS:
            script = self.bin / tool
            script.write_text(stub)
            script.chmod(0o755)
        self._rules: list[dict[str, Any]] = []
        self._save_rules()
        _save(root / "state.json", {"clusters": {}})

    def install(self, monkeypatch: Any) -> FakeBin:
        """Make the fakes the only programs on PATH: a real kubectl or kind on this machine
        is never reached (the fakes start Python by its absolute path)."""
        monkeypatch.setenv("FAKEBIN_DIR", str(self.root))
        monkeypatch.setenv("PATH", str(self.bin))
        return self

    def remove(self, tool: str) -> None:
        """Make ``tool`` missing from PATH (as if not installed)."""
        (self.bin / tool).unlink()

    def add_tool(self, tool: str) -> None:
        """One more fake tool (``cilium``), answering only from rules (else exit 0, silent)."""
        (self.bin / tool).write_text((self.bin / "kind").read_text())
        (self.bin / tool).chmod(0o755)

    def on(self, tool: str, *words: str, stdout: str = "", stderr: str = "", code: int = 0,
           writes: Mapping[str, str] | None = None, sleep: float = 0.0, interrupt: bool = False,
           then: Sequence[Mapping[str, Any]] = ()) -> FakeBin:
        """Answer ``tool ... words ...`` with this response, then each of ``then`` in turn
        (dicts with the same keys; the last repeats). ``writes`` maps a path, or ``@--flag``
        (the path after that flag in the argv), to the text to write there; ``interrupt``
        sends SIGINT to the calling process, as Ctrl-C in a terminal does."""
        first = {"stdout": stdout, "stderr": stderr, "code": code, "writes": dict(writes or {}),
                 "sleep": sleep, "interrupt": interrupt}
        responses = [first, *({"stdout": "", "stderr": "", "code": 0, **r} for r in then)]
        self._rules.append({"tool": tool, "words": list(words), "responses": responses})
        self._save_rules()
        return self

    def stdin(self, tool: str, *words: str) -> list[str]:
        """What was piped into each call of ``tool`` whose argv has ``words`` in order."""
        log = self.root / "log.jsonl"
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [e["stdin"] for e in entries
                if e["tool"] == tool and _subsequence(words, e["argv"])]

    def _save_rules(self) -> None:
        _save(self.root / "rules.json", self._rules)
        _save(self.root / "counts.json", {})

    # ---- state ------------------------------------------------------------------------
    def add_cluster(self, name: str, workers: int = 2, labels: Mapping[str, str] | None = None,
                    configmap: Mapping[str, str] | None = None) -> None:
        """A kind cluster that already runs (made by someone: give it our marks or not)."""
        state = _load(self.root / "state.json", {"clusters": {}})
        nodes = _node_names(name, workers)
        state["clusters"][name] = {"nodes": {n: dict(labels or {}) for n in nodes},
                                   "configmap": dict(configmap) if configmap else None}
        _save(self.root / "state.json", state)

    def clusters(self) -> dict[str, Any]:
        clusters: dict[str, Any] = _load(self.root / "state.json", {"clusters": {}})["clusters"]
        return clusters

    # ---- the log ----------------------------------------------------------------------
    def calls(self, tool: str | None = None) -> list[list[str]]:
        """The argv (without the tool) of every call, in order; only ``tool``'s if given."""
        log = self.root / "log.jsonl"
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [e["argv"] for e in entries if tool is None or e["tool"] == tool]

    def commands(self) -> list[str]:
        """Every call as a shell-like line (``kubectl --context kind-c get nodes``)."""
        log = self.root / "log.jsonl"
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [shlex.join([e["tool"], *e["argv"]]) for e in entries]

    def clear_log(self) -> None:
        (self.root / "log.jsonl").unlink(missing_ok=True)


def _save(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _load(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _node_names(name: str, workers: int) -> list[str]:
    return [f"{name}-control-plane"] + [f"{name}-worker{i if i > 1 else ''}"
                                        for i in range(1, workers + 1)]


# ---------------------------------------------------------------------------- tool side

class Answer(Exception):
    def __init__(self, stdout: str = "", stderr: str = "", code: int = 0) -> None:
        super().__init__(stderr)
        self.stdout, self.stderr, self.code = stdout, stderr, code


def _subsequence(words: Sequence[str], argv: Sequence[str]) -> bool:
    it = iter(argv)
    return all(any(w == a for a in it) for w in words)


def _flag(argv: Sequence[str], flag: str, default: str = "") -> str:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


def _scripted(root: Path, tool: str, argv: list[str]) -> dict[str, Any] | None:
    rules = _load(root / "rules.json", [])
    best, best_index = None, -1
    for index, rule in enumerate(rules):
        if rule["tool"] == tool and _subsequence(rule["words"], argv) and (
                best is None or len(rule["words"]) >= len(best["words"])):
            best, best_index = rule, index
    if best is None:
        return None
    counts = _load(root / "counts.json", {})
    used = counts.get(str(best_index), 0)
    counts[str(best_index)] = used + 1
    _save(root / "counts.json", counts)
    response: dict[str, Any] = best["responses"][min(used, len(best["responses"]) - 1)]
    return response


def _kubeconfig(name: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": f"kind-{name}",
        "clusters": [{"name": f"kind-{name}", "cluster": {"server": "https://127.0.0.1:40123"}}],
        "contexts": [{"name": f"kind-{name}",
                      "context": {"cluster": f"kind-{name}", "user": f"kind-{name}"}}],
        "users": [{"name": f"kind-{name}", "user": {"token": "fake"}}],
    })


def _kind(state: dict[str, Any], argv: list[str]) -> str:
    words, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith("--"):
            skip = arg not in ("--retain", "--internal") and "=" not in arg
        else:
            words.append(arg)
    name = _flag(argv, "--name", "kind")
    clusters = state["clusters"]
    if words[:1] == ["version"]:
        return "kind v0.33.0 go1.24.5 linux/amd64\n"
    if words[:2] == ["get", "clusters"]:
        if not clusters:
            raise Answer(stderr=NO_KIND_CLUSTERS + "\n")
        return "".join(f"{n}\n" for n in sorted(clusters))
    if words[:2] == ["get", "nodes"]:
        if name not in clusters:
            raise Answer(stderr=f'No kind nodes found for cluster "{name}".\n')
        return "".join(f"{n}\n" for n in clusters[name]["nodes"])
    if words[:2] == ["create", "cluster"]:
        if name in clusters:
            raise Answer(stderr=f"Creating cluster \"{name}\" ...\n{already_exists(name)}\n", code=1)
        config = yaml.safe_load(Path(_flag(argv, "--config")).read_text())
        nodes = config.get("nodes") or [{"role": "control-plane"}]
        names = _node_names(name, sum(1 for n in nodes if n.get("role") == "worker"))
        clusters[name] = {"nodes": {n: dict(node.get("labels") or {})
                                    for n, node in zip(names, nodes, strict=True)},
                          "configmap": None}
        if _flag(argv, "--kubeconfig"):
            Path(_flag(argv, "--kubeconfig")).write_text(_kubeconfig(name))
        raise Answer(stderr=f'Creating cluster "{name}" ...\n ✓ Ensuring node image\n'
                            f'Set kubectl context to "kind-{name}"\n')
    if words[:2] == ["delete", "cluster"]:
        clusters.pop(name, None)
        raise Answer(stderr=f'Deleting cluster "{name}" ...\n')
    if words[:2] in (["export", "kubeconfig"], ["get", "kubeconfig"]):
        if name not in clusters:
            raise Answer(stderr=f'ERROR: could not locate any control plane nodes for cluster '
                                f'named "{name}"\n', code=1)
        if words[0] == "get":
            return _kubeconfig(name)
        Path(_flag(argv, "--kubeconfig")).write_text(_kubeconfig(name))
        raise Answer(stderr=f'Set kubectl context to "kind-{name}"\n')
    raise Answer(stderr=f"ERROR: unknown command {argv}\n", code=1)


def _kubectl(state: dict[str, Any], argv: list[str], stdin: str) -> str:
    context = _flag(argv, "--context")
    cluster = state["clusters"].get(context.removeprefix("kind-"))
    if cluster is None:
        raise Answer(stderr=api_refused() + "\n", code=1)
    if _subsequence(["get", "nodes"], argv):
        if "json" in argv:
            return json.dumps({"items": [
                {"metadata": {"name": n, "labels": labels},
                 "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                for n, labels in cluster["nodes"].items()]})
        return "".join(f"node/{n}\n" for n in cluster["nodes"])
    if _subsequence(["get", "configmap", "kube-netlab"], argv):
        if cluster["configmap"] is None:
            raise Answer(stderr=not_found("configmaps", "kube-netlab") + "\n", code=1)
        return json.dumps({"kind": "ConfigMap", "metadata": {"name": "kube-netlab"},
                           "data": cluster["configmap"]})
    if _subsequence(["get", "pods"], argv):
        return json.dumps({"items": []})
    if argv and "apply" in argv:
        if _flag(argv, "-f") != "-":
            return f"applied {_flag(argv, '-f')}\n"
        out = []
        for doc in yaml.safe_load_all(stdin):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "kube-netlab":
                cluster["configmap"] = doc["data"]
            out.append(f"{str(doc.get('kind')).lower()}/{doc['metadata']['name']} created")
        return "\n".join(out) + "\n"
    if "wait" in argv:
        return "condition met\n"
    if "rollout" in argv:
        return "successfully rolled out\n"
    return ""


def _docker(argv: list[str]) -> str:
    if argv[:1] == ["info"]:
        return json.dumps({"ServerVersion": "27.3.1", "OperatingSystem": "Debian GNU/Linux 12",
                           "NCPU": 4, "MemTotal": 16 << 30, "CgroupVersion": "2",
                           "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"]})
    if argv[:3] == ["network", "inspect", "kind"]:
        return json.dumps([{"Name": "kind", "Driver": "bridge", "EnableIPv6": True, "IPAM": {
            "Driver": "default", "Options": {}, "Config": [
                {"Subnet": "fc00:f853:ccd:e793::/64", "Gateway": "fc00:f853:ccd:e793::1"},
                {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]}}])
    return ""


def _default(tool: str, state: dict[str, Any], argv: list[str], stdin: str) -> str:
    if tool == "kind":
        return _kind(state, argv)
    if tool == "kubectl":
        return _kubectl(state, argv, stdin)
    if tool == "docker":
        return _docker(argv)
    if tool == "helm":
        if argv[:1] == ["version"]:
            return "v4.3.0+g1bb34b3\n" if "--short" in argv else 'version.BuildInfo{Version:"v4.3.0"}\n'
        return f'Release "{argv[2] if len(argv) > 2 else "?"}" has been upgraded. Happy Helming!\n'
    if tool != "istioctl":
        return ""
    if argv[:1] == ["version"]:
        return "1.30.4\n"
    return "✔ Istio core installed\n✔ Istiod installed\n✔ Installation complete\n"


def main() -> None:
    root = Path(os.environ["FAKEBIN_DIR"])
    tool, argv = Path(sys.argv[0]).name, sys.argv[1:]
    # Only `kubectl apply -f -` reads stdin: anything else may have inherited an open one.
    stdin = sys.stdin.read() if tool == "kubectl" and _flag(argv, "-f") == "-" else ""
    with (root / "log.jsonl").open("a") as log:
        log.write(json.dumps({"tool": tool, "argv": argv, "stdin": stdin}) + "\n")
    scripted = _scripted(root, tool, argv)
    if scripted is not None:
        if scripted.get("interrupt"):  # what Ctrl-C does: SIGINT to the caller too
            os.kill(os.getppid(), signal.SIGINT)
            time.sleep(5)
        time.sleep(scripted.get("sleep", 0))
        for target, text in scripted.get("writes", {}).items():
            Path(_flag(argv, target[1:]) if target.startswith("@") else target).write_text(text)
        sys.stdout.write(scripted["stdout"])
        sys.stderr.write(scripted["stderr"])
        sys.exit(scripted["code"])
    state = _load(root / "state.json", {"clusters": {}})
    try:
        out = _default(tool, state, argv, stdin)
        answer = Answer(stdout=out)
    except Answer as raised:
        answer = raised
    _save(root / "state.json", state)
    sys.stdout.write(answer.stdout)
    sys.stderr.write(answer.stderr)
    sys.exit(answer.code)


# ------------------------------------------------------------------ pinned files, faked

#: Small stand-ins for the files the engine downloads: same shape, our own content.
FAKE_MANIFESTS: dict[str, list[dict[str, Any]]] = {
    "calico-crds": [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                     "metadata": {"name": "installations.operator.tigera.io"}}],
    "calico": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tigera-operator"}},
               {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "tigera-operator", "namespace": "tigera-operator"}}],
    "flannel": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-flannel"}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "kube-flannel-cfg", "namespace": "kube-flannel"},
         "data": {"cni-conf.json": '{"name": "cbr0"}',
                  "net-conf.json": json.dumps({"Network": "10.244.0.0/16", "EnableNFTables": False,
                                               "Backend": {"Type": "vxlan"}})}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "kube-flannel-ds", "namespace": "kube-flannel"}}],
    "metallb": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "controller", "namespace": "metallb-system"}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "speaker", "namespace": "metallb-system"}}],
    "gateway-api": [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                     "metadata": {"name": "gateways.gateway.networking.k8s.io"}}],
}


def fake_fetch(root: Path) -> Any:
    """A stand-in for ``clusters.kind.fetch.fetch``: writes the fake file of each pin and
    returns its path; the cni-plugins archive holds an executable ``./bridge``."""
    import io
    import tarfile

    def fetch(p: Any, cache: Path | None = None) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{p.name}-{p.filename}"
        if p.name == "cni-plugins":
            with tarfile.open(path, "w:gz") as tar:
                for member in ("./bridge", "./host-local", "./LICENSE"):
                    data = f"#!/bin/sh\n# fake {member}\n".encode()
                    info = tarfile.TarInfo(member)
                    info.size, info.mode = len(data), 0o755
                    tar.addfile(info, io.BytesIO(data))
        else:
            path.write_text(yaml.safe_dump_all(FAKE_MANIFESTS[p.name]))
        return path

    return fetch
