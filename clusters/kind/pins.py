"""Every version the kind engine installs, in one place, with the checksum or digest that pins it.

An upgrade is one line: change a version in :data:`VERSIONS`. Each download URL and image
reference is a template filled from that version (and, for binaries, this machine's OS and
CPU), so nothing else names a version. Checksums are kept apart in :data:`SHA256`, keyed by
the exact URL, and image digests in :data:`DIGESTS`, keyed by the exact ``repo:tag``: after
an upgrade the old values simply stop matching anything (a stale digest would otherwise make
Docker pull the *old* image while the tag claims the new one). ``fetch`` then falls back to
the checksum file upstream publishes, or refuses the file until ``scripts/pin_checksums.py``
has recorded a value.

Only values read from an authoritative source are recorded; see the comment above each table.
"""

from __future__ import annotations

import platform as _platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

PinKind = Literal["binary", "archive", "manifest", "chart", "image"]
KINDS: tuple[str, ...] = ("binary", "archive", "manifest", "chart", "image")
#: Pins that are downloaded as files (and so carry a sha256).
FILE_KINDS: frozenset[str] = frozenset({"binary", "archive", "manifest"})
#: Where the course runs: Linux and macOS on x86-64 and ARM (kind's nodes are always Linux).
PLATFORMS: tuple[tuple[str, str], ...] = (
    ("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64"))

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
#: ``v1.35.8``, ``1.30.4``, ``2.53`` (agnhost has two parts), with an optional ``-rc.1``.
VERSION_RE = re.compile(r"^v?\d+\.\d+(\.\d+)?(-[0-9A-Za-z.]+)?$")

# ---- versions: the one line to change per upgrade -------------------------------------------

VERSIONS: dict[str, str] = {
    # kind v0.33.0 (2026-08): newest release; its notes publish node images for 1.34-1.37 by digest.
    "kind": "v0.33.0",
    # Kubernetes 1.35.8 (node image and kubectl, zero skew): the newest minor every CNI and add-on
    # below tests against; 1.36/1.37 kubelets crash-loop where /var/lib/docker is on ZFS (kind#4229).
    "kubernetes": "v1.35.8",
    # Helm 4.3.0: current major (Helm 3 only gets security fixes); installs OCI charts directly.
    "helm": "v4.3.0",
    # Istio 1.30.4 (istioctl and the control plane it installs): supports Kubernetes 1.32-1.36.
    "istio": "1.30.4",
    # Calico 3.32.2: operator install with the CRDs in their own manifest; built against k8s 1.35.
    "calico": "v3.32.2",
    # Cilium 1.20.2 (Helm chart): the 1.20 line runs its e2e on Kubernetes 1.33-1.36.
    "cilium": "1.20.2",
    # cilium-cli 0.20.1: the CLI release for Cilium 1.20, for `cilium status --wait`.
    "cilium-cli": "v0.20.1",
    # Flannel 0.28.9: newest release; its kube-flannel.yml defaults to the 10.244.0.0/16 pod network.
    "flannel": "v0.28.9",
    # CNI plugins 1.9.1: provides the `bridge` binary flannel delegates to (kind nodes lack it).
    "cni-plugins": "v1.9.1",
    # MetalLB 0.16.1: newest release; L2 mode from the native (no FRR) manifest.
    "metallb": "v0.16.1",
    # Gateway API 1.6.1 standard channel: the version Envoy Gateway 1.9 is built and tested with.
    "gateway-api": "v1.6.1",
    # Envoy Gateway 1.9.2 (OCI chart): supports Kubernetes 1.33-1.36 and Gateway API 1.6.
    "envoy-gateway": "v1.9.2",
    # F5 NGINX Ingress Controller chart 2.6.4 (controller 5.5.4): tested on Kubernetes 1.29-1.36;
    # replaces the retired ingress-nginx.
    "nginx-ingress": "2.6.4",
    # agnhost 2.53: has `connect` (exit classes for timeout/refused/DNS), `pause` and `netexec`.
    "agnhost": "2.53",
}


@dataclass(frozen=True)
class _Spec:
    """How one pin is derived: its version group, kind and URL templates.

    Templates use ``{v}`` (the version), ``{os}``/``{arch}`` (this machine: ``linux``/``amd64``),
    ``{istio}`` (Istio's own platform names) and, in ``checksum``, ``{url}`` (the built URL).
    """

    name: str
    group: str
    kind: PinKind
    url: str
    checksum: str = ""
    chart: str = ""


_GH = "https://github.com"
_RAW = "https://raw.githubusercontent.com"

SPECS: tuple[_Spec, ...] = (
    _Spec("kind", "kind", "binary",
          _GH + "/kubernetes-sigs/kind/releases/download/{v}/kind-{os}-{arch}",
          checksum="{url}.sha256sum"),
    _Spec("kubectl", "kubernetes", "binary", "https://dl.k8s.io/release/{v}/bin/{os}/{arch}/kubectl",
          checksum="{url}.sha256"),
    _Spec("helm", "helm", "archive", "https://get.helm.sh/helm-{v}-{os}-{arch}.tar.gz",
          checksum="{url}.sha256sum"),
    _Spec("istioctl", "istio", "archive",
          _GH + "/istio/istio/releases/download/{v}/istioctl-{v}-{istio}.tar.gz",
          checksum="{url}.sha256"),
    _Spec("cilium-cli", "cilium-cli", "archive",
          _GH + "/cilium/cilium-cli/releases/download/{v}/cilium-{os}-{arch}.tar.gz",
          checksum="{url}.sha256sum"),
    _Spec("node-image", "kubernetes", "image", "kindest/node:{v}"),
    # Calico's operator install: its CRDs first (kubectl create or server-side apply: they are too
    # big for a client-side apply's annotation), then the operator.
    _Spec("calico-crds", "calico", "manifest",
          _RAW + "/projectcalico/calico/{v}/manifests/operator-crds.yaml"),
    _Spec("calico", "calico", "manifest",
          _RAW + "/projectcalico/calico/{v}/manifests/tigera-operator.yaml"),
    _Spec("cilium", "cilium", "chart", "https://helm.cilium.io/", chart="cilium"),
    _Spec("flannel", "flannel", "manifest",
          _GH + "/flannel-io/flannel/releases/download/{v}/kube-flannel.yml"),
    # Installed on the nodes, so always the Linux build for this machine's CPU (Docker's VM on macOS).
    _Spec("cni-plugins", "cni-plugins", "archive",
          _GH + "/containernetworking/plugins/releases/download/{v}/cni-plugins-linux-{arch}-{v}.tgz",
          checksum="{url}.sha256"),
    _Spec("metallb", "metallb", "manifest",
          _RAW + "/metallb/metallb/{v}/config/manifests/metallb-native.yaml"),
    _Spec("gateway-api", "gateway-api", "manifest",
          _GH + "/kubernetes-sigs/gateway-api/releases/download/{v}/standard-install.yaml"),
    _Spec("envoy-gateway", "envoy-gateway", "chart", "oci://docker.io/envoyproxy/gateway-helm"),
    _Spec("nginx-ingress", "nginx-ingress", "chart", "oci://ghcr.io/nginx/charts/nginx-ingress"),
    # The istiod image istioctl installs at its own version: lets the engine check what runs.
    _Spec("istio", "istio", "image", "docker.io/istio/pilot:{v}"),
    _Spec("agnhost", "agnhost", "image", "registry.k8s.io/e2e-test-images/agnhost:{v}"),
)

# ---- checksums and digests --------------------------------------------------------------------

# Image digests, keyed by the exact image reference. node-image: the kind v0.33.0 release notes
# ("Images pre-built for this release", v1.35.8), as quoted verbatim in renovate's update PRs
# (e.g. polarsquad/krops#112). agnhost and istio: no authoritative digest read yet.
DIGESTS: dict[str, str] = {
    "kindest/node:v1.35.8": "sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
}

# File checksums, keyed by the exact download URL. The helm values are the ones Helm's v4.3.0
# release notes list next to each archive. Everything else is written by scripts/pin_checksums.py
# from the downloaded files; until then fetch() uses the project's published checksum file, or
# refuses the download when there is none (the manifests).
# BEGIN SHA256 (scripts/pin_checksums.py rewrites this block)
SHA256: dict[str, str] = {
    "https://get.helm.sh/helm-v4.3.0-darwin-amd64.tar.gz":
        "347a784877e0e20eac865e8d1c36a80f6bb0861d6f29abd34defb6570ef95d92",
    "https://get.helm.sh/helm-v4.3.0-darwin-arm64.tar.gz":
        "d3870437e1e95b67f8edbde964156c84a26503f560821d40c542441658934fba",
    "https://get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz":
        "86584a54def73570558f66f5111cc53dfed56689637ae32c1201205d494f54fb",
    "https://get.helm.sh/helm-v4.3.0-linux-arm64.tar.gz":
        "31c5794dd55c66a51e6b7d2e2ac7a114ae8b1de41ff1d9ba51748ac973b06a08",
}
# END SHA256


@dataclass(frozen=True)
class Pin:
    """One pinned artefact: a file to download, a Helm chart, or a container image.

    ``url`` is the download URL (files), the chart repository URL or ``oci://`` reference
    (charts, installed with ``--version``), or the ``repo:tag`` reference (images).
    """

    name: str
    version: str
    kind: PinKind
    url: str
    sha256: str = ""
    checksum_url: str = ""
    chart: str = ""
    digest: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not VERSION_RE.match(self.version):
            problems.append(f"version {self.version!r} is not like 1.2.3 or v1.2.3")
        if self.sha256 and not SHA256_RE.match(self.sha256):
            problems.append(f"sha256 {self.sha256!r} is not 64 lowercase hex digits")
        if self.sha256 and self.kind not in FILE_KINDS:
            problems.append(f"sha256 is only for files, not a {self.kind}")
        if self.digest and not DIGEST_RE.match(self.digest):
            problems.append(f"digest {self.digest!r} is not 'sha256:' and 64 lowercase hex digits")
        if self.digest and self.kind != "image":
            problems.append(f"digest is only for images, not a {self.kind}")
        if problems:
            raise ValueError(f"bad pin {self.name!r}: " + "; ".join(problems))

    @property
    def is_file(self) -> bool:
        return self.kind in FILE_KINDS

    @property
    def filename(self) -> str:
        """The last path segment of the URL (``kube-flannel.yml``), for caches and messages."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def image(self) -> str:
        """``repo:tag@sha256:...`` when the digest is known, else ``repo:tag``."""
        if self.kind != "image":
            raise ValueError(f"pin {self.name!r} is a {self.kind}, not an image")
        return f"{self.url}@{self.digest}" if self.digest else self.url


def host_platform() -> tuple[str, str]:
    """This machine as release files name it: ``("linux", "amd64")``, ``("darwin", "arm64")``.

    Unknown systems keep their own names, so their URLs fail loudly on download rather than
    quietly fetching another platform's build.
    """
    system = _platform.system().lower()
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return system, arch


def _istio_platform(os_name: str, arch: str) -> str:
    """Istio names its macOS builds ``osx`` (x86-64) and ``osx-arm64``."""
    if os_name == "darwin":
        return "osx" if arch == "amd64" else f"osx-{arch}"
    return f"{os_name}-{arch}"


def build_pins(
    versions: Mapping[str, str] | None = None,
    *,
    platform: tuple[str, str] | None = None,
    sha256: Mapping[str, str] | None = None,
    digests: Mapping[str, str] | None = None,
) -> dict[str, Pin]:
    """Every pin, derived from ``versions`` (default :data:`VERSIONS`) for ``platform``.

    The tables default to the module's; tests and ``scripts/pin_checksums.py`` pass their own
    versions or platforms to see what an upgrade or another machine would download.
    """
    groups = {**VERSIONS, **(versions or {})}
    os_name, arch = platform or host_platform()
    sums = SHA256 if sha256 is None else sha256
    digs = DIGESTS if digests is None else digests
    pins: dict[str, Pin] = {}
    for spec in SPECS:
        version = groups[spec.group]
        url = spec.url.format(v=version, os=os_name, arch=arch, istio=_istio_platform(os_name, arch))
        pins[spec.name] = Pin(
            name=spec.name, version=version, kind=spec.kind, url=url,
            sha256=sums.get(url, "") if spec.kind in FILE_KINDS else "",
            checksum_url=spec.checksum.format(url=url) if spec.checksum else "",
            chart=spec.chart,
            digest=digs.get(url, "") if spec.kind == "image" else "",
        )
    return pins


#: The pins for this machine.
PINS: dict[str, Pin] = build_pins()


def pin(name: str) -> Pin:
    """The pin called ``name``; ValueError listing the names when there is none."""
    try:
        return PINS[name]
    except KeyError:
        raise ValueError(f"no pin named {name!r}; pins: {', '.join(sorted(PINS))}") from None


def file_urls(platforms: tuple[tuple[str, str], ...] = PLATFORMS) -> dict[str, Pin]:
    """Every file download of every platform, by URL (what ``pin_checksums`` must record)."""
    found: dict[str, Pin] = {}
    for plat in platforms:
        for p in build_pins(platform=plat).values():
            if p.is_file:
                found.setdefault(p.url, p)
    return found
