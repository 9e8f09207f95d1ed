"""The kind engine: real Kubernetes in Docker, with the profile's CNI and add-ons.

Creating a cluster is a list of named steps (kind config, ``kind create cluster``, CNI
install and readiness, nodes Ready, CoreDNS, each add-on, our marks). A cluster is *ours*
only with both proofs: the record under ``<state>/kind/`` (written before kind runs) and
the marks inside the cluster (every node labelled ``netlab.dev/managed=true`` by the kind
config, and the ``kube-system/kube-netlab`` ConfigMap holding the profile, written last).
Ours with the same profile is reused; ours with another profile, or left half-built, is
deleted and made again; anything else of that name is never touched: the user gets the
command to remove it themselves. A create that fails or is interrupted (Ctrl-C) deletes
the cluster it started, and says how to remove it if even that fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusters.addons import check_addons
from clusters.cnis import CNIS, CniChoiceError, choices, resolve
from clusters.engine import Capabilities, ClusterInfo, ClusterProfile, ExecResult, StepReporter
from clusters.errors import (
    ClusterError,
    ClusterExists,
    ClusterNotFound,
    CommandError,
    EngineUnavailable,
)
from clusters.kind.addons import addon_steps
from clusters.kind.cli import INSTALL_HINT, KindCLI
from clusters.kind.cni import cni_steps, settle_steps
from clusters.kind.config import MANAGED_LABEL, kind_config, render_config
from clusters.kind.pins import pin
from clusters.kind.preflight import Machine, blocking, docker_checks
from clusters.kind.state import CREATING, KindRecord, KindState
from clusters.kind.steps import Step, Timeouts, run_steps
from clusters.kind.tools import Tools, first_line, output_of

if TYPE_CHECKING:
    from clusters.kube.cluster import KubeCluster

#: kind's rule for cluster names, and its length limit (node names append "-control-plane").
NAME_RE = re.compile(r"^[a-z0-9.-]+$")
NAME_MAX = 50
MARK_CONFIGMAP, MARK_NAMESPACE = "kube-netlab", "kube-system"
#: How long after objects converge the agents may still be programming the data plane.
PROPAGATION_SECONDS = {"calico": 8.0, "cilium": 8.0}
DEFAULT_PROPAGATION = 5.0
TOOL_DOCS = {
    "kubectl": "https://kubernetes.io/docs/tasks/tools/",
    "helm": "https://helm.sh/docs/intro/install/",
    "istioctl": "https://istio.io/latest/docs/setup/getting-started/#download",
}
_PULL_FAILED = re.compile(r'failed to pull image "?([^"\s]+)"?', re.IGNORECASE)


def check_name(name: str) -> None:
    """kind's own rule, checked before anything runs; ValueError says what is allowed."""
    if not NAME_RE.match(name) or len(name) > NAME_MAX:
        raise ValueError(f"{name!r} is not a valid kind cluster name: use 1 to {NAME_MAX} "
                         "lowercase letters, digits, '.' and '-'")


def context_of(name: str) -> str:
    return f"kind-{name}"


def capabilities(profile: ClusterProfile) -> Capabilities:
    """What a kind cluster of ``profile`` enforces and provides."""
    info = CNIS.get(profile.cni)
    return Capabilities(
        network_policy=bool(info and info.enforces_policy), services=True, dns=True,
        ingress="ingress" in profile.addons, load_balancer="load-balancer" in profile.addons,
        gateway="gateway" in profile.addons, istio="istio" in profile.addons,
        sctp=False, cni=profile.cni, cni_backend=profile.backend,
        propagation_seconds=PROPAGATION_SECONDS.get(profile.cni, DEFAULT_PROPAGATION))


def tools_needed(profile: ClusterProfile) -> list[str]:
    needed = ["kubectl"]
    if profile.cni == "cilium" or {"ingress", "gateway"} & set(profile.addons):
        needed.append("helm")
    if "istio" in profile.addons:
        needed.append("istioctl")
    return needed


def foreign(name: str, why: str = "") -> ClusterExists:
    return ClusterExists(
        f"a kind cluster named {name!r} exists that kube-netlab did not create{why}; it is left "
        f"alone. If you no longer need it, remove it yourself: kind delete cluster --name {name} "
        "(or use another cluster name)")


@dataclass(frozen=True)
class NodeExec:
    """``docker exec`` into one of this cluster's node containers (and no other container)."""

    tools: Tools
    cluster: str
    nodes: tuple[str, ...]

    def __call__(self, node: str, argv: Sequence[str], capture: bool,
                 timeout: float | None) -> ExecResult:
        if node not in self.nodes:
            raise ClusterNotFound(f"no node {node!r} in kind cluster {self.cluster} "
                                  f"(nodes: {', '.join(self.nodes)})")
        res = self.tools.docker("exec", node, *argv, check=False, timeout=timeout)
        if not capture:
            sys.stdout.write(res.stdout)
            sys.stderr.write(res.stderr)
        return ExecResult(res.returncode, res.stdout, res.stderr, tuple(res.argv))


def make_cluster(kubeconfig: Path, context: str, name: str, caps: Capabilities,
                 node_exec: NodeExec) -> KubeCluster:
    """The API handle; imported here so listing clusters never loads the kubernetes client."""
    from clusters.kind.probing import KindProber
    from clusters.kube.cluster import KubeCluster
    from clusters.kube.probes import KubeProber
    from clusters.kube.transport import KubeApi

    api = KubeApi.from_kubeconfig(kubeconfig, context)
    return KubeCluster(api, name, "kind", capabilities=caps, node_exec=node_exec,
                       prober=KindProber(KubeProber(api)))


class KindEngine:
    """Clusters made by kind in Docker. ``state_dir`` is the state root (``$LAB_STATE_DIR``);
    ``tools`` sets the environment and retry interval of kubectl/helm/istioctl/docker."""

    name = "kind"

    def __init__(self, *, kind: KindCLI | None = None, state_dir: Path | None = None,
                 tools: Tools | None = None, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self.kind = kind or KindCLI(timeout=self.timeouts.create)
        self.state = KindState(state_dir)
        self.tools = tools or Tools()

    # ---- can it run here? ------------------------------------------------------------
    def _problem(self) -> tuple[str, str] | None:
        """``(why, fix)`` of the first thing that stops kind from working here, or None."""
        path = (self.kind.env or {}).get("PATH", os.environ.get("PATH"))
        if shutil.which(self.kind.binary, path=path) is None:
            return "the kind CLI is not installed", INSTALL_HINT
        checks, _info = docker_checks(Machine())
        failed = blocking(checks)
        if failed:
            return failed[0].detail, failed[0].fix
        return None

    def available(self) -> tuple[bool, str]:
        problem = self._problem()
        if problem is not None:
            why, fix = problem
            return False, f"{why} (fix: {fix})" if fix else why
        return True, "the kind CLI is installed and the Docker daemon answers"

    def _require(self, profile: ClusterProfile | None = None) -> None:
        problem = self._problem()
        if problem is not None:
            raise EngineUnavailable("kind", *problem)
        needed = tools_needed(profile) if profile is not None else []  # delete needs kind only
        missing = [t for t in needed if not self.tools.have(t)]
        if missing:
            raise EngineUnavailable(
                "kind", f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                "installed (needed for this cluster profile)",
                "; ".join(f"install {t}: {TOOL_DOCS[t]}" for t in missing))

    # ---- lifecycle -----------------------------------------------------------------
    def create(self, name: str, profile: ClusterProfile,
               report: StepReporter | None = None) -> KubeCluster:
        say = report or (lambda step: None)
        check_name(name)
        try:
            resolve(profile.cni, profile.backend)
        except CniChoiceError as err:
            raise EngineUnavailable("kind", str(err), f"choose one of: {choices()}") from err
        check_addons(profile.addons)
        self._require(profile)
        with self._lock(name):
            if name in self.kind.clusters():
                existing = self._our_profile(name)
                if existing == profile:
                    say(f"Reusing cluster {name} ({describe(profile)})")
                    return self.connect(name)
                if existing is None:
                    say(f"Deleting cluster {name}: an earlier create did not finish")
                else:
                    say(f"Deleting cluster {name}: it runs {describe(existing)}, this lab "
                        f"needs {describe(profile)}")
                self._remove(name)
            self._build(name, profile, say)
        return self.connect(name)

    def _build(self, name: str, profile: ClusterProfile, say: StepReporter) -> None:
        node_image = pin("node-image")
        record = KindRecord(name, profile, kind_version=self.kind.version(),
                            node_image=node_image.image)
        work, kubeconfig = self.state.work_dir(name), self.state.kubeconfig(name)
        config_doc = kind_config(name, profile)
        self.state.write(record)  # before kind runs: proof that what kind makes is ours
        ours = True
        try:
            work.mkdir(parents=True, exist_ok=True)
            config = work / "kind-config.yaml"
            config.write_text(render_config(name, profile))
            say(f"Creating cluster {name}: {profile.nodes} nodes, Kubernetes "
                f"{node_image.version}, kind {record.kind_version}")
            try:
                self.kind.create_cluster(name, config, image=node_image.image, kubeconfig=kubeconfig,
                                         wait="120s" if profile.cni == "kindnet" else None)
            except CommandError as err:
                if "already exist" in output_of(err):
                    ours = False  # someone else's cluster appeared meanwhile
                    raise foreign(name, " (it appeared while this one was being created)") from err
                raise explain_create_failure(err) from err
            tools = self.tools.with_target(kubeconfig, context_of(name))
            steps: list[Step] = [
                *cni_steps(tools, profile, pod_subnet=config_doc["networking"]["podSubnet"],
                           nodes=self.kind.nodes(name), work_dir=work, timeouts=self.timeouts),
                *settle_steps(tools, profile, self.timeouts),
                *addon_steps(profile.addons, tools, kind_config=config_doc, work_dir=work,
                             timeouts=self.timeouts),
                Step("Marking the cluster as made by kube-netlab",
                     lambda: self._mark(tools, record)),
            ]
            run_steps(steps, say)
            self.state.write(record.ready())
        except BaseException as err:
            if ours:
                self._clean_up_failed(name, err, say)
            else:
                self.state.remove(name)
            raise

    def _mark(self, tools: Tools, record: KindRecord) -> None:
        tools.apply("the kube-netlab ConfigMap", json.dumps(mark_configmap(record)),
                    timeout=self.timeouts.apply)

    def _clean_up_failed(self, name: str, err: BaseException, say: StepReporter) -> None:
        """Delete the cluster this create started (we made it, so we may); on failure keep
        the record (``lab cluster delete`` can retry) and say how to remove it by hand."""
        what = "Interrupted" if isinstance(err, KeyboardInterrupt) else "Creation failed"
        say(f"{what}: deleting the half-built cluster {name}")
        try:
            if name in self.kind.clusters():
                self.kind.delete_cluster(name, kubeconfig=self.state.kubeconfig(name))
            self.state.remove(name)
        except (Exception, KeyboardInterrupt) as cleanup:  # reported, then err raised
            detail = first_line(str(cleanup)) or type(cleanup).__name__
            note = (f"the half-built kind cluster {name!r} could not be deleted ({detail}); "
                    f"remove it with: kind delete cluster --name {name}")
            err.add_note(note)
            say(note)

    def _our_profile(self, name: str) -> ClusterProfile | None:
        """The profile of our running cluster ``name``; None when our create did not finish;
        ClusterExists when it is not ours (no record, or nodes without our label)."""
        if self.state.read(name) is None:
            raise foreign(name)
        tools = self._tools_for(name)
        try:
            nodes = json.loads(tools.kubectl("get", "nodes", "-o", "json", timeout=30).stdout)
        except (CommandError, ValueError) as err:
            raise ClusterError(
                f"kind cluster {name} (made by kube-netlab) does not answer: "
                f"{first_line(str(err))}. Start its nodes (docker start {name}-control-plane "
                f"...) or delete it: lab cluster delete --name {name}") from err
        items = nodes.get("items", [])
        unmarked = [n["metadata"]["name"] for n in items
                    if (n["metadata"].get("labels") or {}).get(MANAGED_LABEL) != "true"]
        if not items or unmarked:
            raise foreign(name, f" (its nodes {', '.join(unmarked) or '?'} lack the "
                                f"{MANAGED_LABEL} label, though a record says it was ours)")
        res = tools.kubectl("get", "configmap", MARK_CONFIGMAP, "-n", MARK_NAMESPACE, "-o",
                            "json", check=False, timeout=30)
        if not res.ok:
            if "NotFound" in res.stderr:
                return None
            raise CommandError(res.argv, res.returncode, res.stdout, res.stderr)
        try:
            return ClusterProfile.from_dict(json.loads(json.loads(res.stdout)["data"]["profile"]))
        except (ValueError, KeyError, TypeError):
            return None

    def _tools_for(self, name: str) -> Tools:
        kubeconfig = self.state.kubeconfig(name)
        if not kubeconfig.exists():
            self.kind.export_kubeconfig(name, kubeconfig)
        return self.tools.with_target(kubeconfig, context_of(name))

    def _remove(self, name: str) -> None:
        """Delete our cluster ``name`` (if kind lists it) and forget it."""
        if name in self.kind.clusters():
            self.kind.delete_cluster(name, kubeconfig=self.state.kubeconfig(name))
        self.state.remove(name)

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """One create/delete of ``name`` at a time on this machine (per state root)."""
        self.state.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state.dir / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def connect(self, name: str) -> KubeCluster:
        record = self.state.read(name)
        running = self.kind.clusters()
        if record is None:
            if name in running:
                raise foreign(name)
            raise ClusterNotFound(f"no kind cluster named {name!r} made by kube-netlab (create "
                                  f"one with `lab start NN` or `lab cluster create --name {name}`)")
        if name not in running:
            raise ClusterNotFound(f"kind cluster {name} is recorded but kind does not list it; "
                                  f"forget it with `lab cluster delete --name {name}`")
        kubeconfig = self.state.kubeconfig(name)
        self._tools_for(name)
        node_exec = NodeExec(self.tools, name, tuple(self.kind.nodes(name)))
        return make_cluster(kubeconfig, context_of(name), name, capabilities(record.profile),
                            node_exec)

    def delete(self, name: str) -> bool:
        self._require()
        with self._lock(name):
            if self.state.read(name) is None:
                if name in self.kind.clusters():
                    raise foreign(name)
                return False
            self._remove(name)
            return True

    def list(self) -> list[ClusterInfo]:
        try:
            running: set[str] | None = set(self.kind.clusters())
        except CommandError:
            running = None  # kind missing or broken: report the records alone
        names = sorted(set(self.state.names()) | (running or set()))
        return [self._info(n, running) for n in names]

    def info(self, name: str) -> ClusterInfo | None:
        try:
            running: set[str] | None = set(self.kind.clusters())
        except CommandError:
            running = None
        if self.state.read(name) is None and name not in (running or set()):
            return None
        return self._info(name, running)

    def _info(self, name: str, running: set[str] | None) -> ClusterInfo:
        record = self.state.read(name)
        up = running is not None and name in running
        nodes = tuple(self.kind.nodes(name)) if up else ()
        if record is None:
            return ClusterInfo(name, "kind", ClusterProfile(), up, nodes=nodes, detail=(
                "not created by kube-netlab (profile unknown): left alone; remove it yourself "
                f"with `kind delete cluster --name {name}`"))
        if running is None:
            detail = "kind is not installed here: cannot tell whether it runs"
        elif not up:
            detail = f"recorded but not running; forget it with `lab cluster delete --name {name}`"
        elif record.status == CREATING:
            detail = "made by kube-netlab; its creation is running or did not finish"
        else:
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created_at))
            detail = f"made by kube-netlab on {created} ({record.node_image or 'node image ?'})"
        return ClusterInfo(name, "kind", record.profile, up, detail=detail, nodes=nodes)


def describe(profile: ClusterProfile) -> str:
    addons = ", ".join(profile.addons) or "no add-ons"
    return f"{profile.workers} workers, CNI {profile.cni_label}, {addons}"


def mark_configmap(record: KindRecord) -> dict[str, Any]:
    """``kube-system/kube-netlab``: the in-cluster mark, holding the profile it was made with."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": MARK_CONFIGMAP, "namespace": MARK_NAMESPACE,
                     "labels": {MANAGED_LABEL: "true"}},
        "data": {"profile": json.dumps(record.profile.to_dict(), sort_keys=True),
                 "created-at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created_at)),
                 "kind-version": record.kind_version, "node-image": record.node_image},
    }


def explain_create_failure(err: CommandError) -> ClusterError:
    """Say which image kind could not pull, and how to check; other failures pass through."""
    found = _PULL_FAILED.search(output_of(err))
    if found is None:
        return err
    image = found.group(1)
    return ClusterError(
        f"kind could not pull the node image {image}: {first_line(err.stderr) or 'see above'}. "
        f"Check the network (and any proxy: HTTPS_PROXY for the Docker daemon), then try "
        f"`docker pull {image}` yourself.\n{err}")
