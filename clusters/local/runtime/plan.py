"""What each container of a pod "runs" on the local engine, decided from its image and args.

The local engine has no container runtime and never executes commands from manifests.
Instead it recognises the images courses use (agnhost, nginx, http-echo, shell images) and
reproduces the network behaviour they would have: which ports answer, on which protocol,
with what. This module only *decides*; it is pure (a pod dict in, a :class:`PodPlan`
out), so every decision can be printed and unit-tested without root or sockets.

Anything the engine cannot reproduce faithfully becomes a warning that the CLI shows to
the learner, never a silent guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Protocol = Literal["TCP", "UDP", "SCTP"]

SCTP_WARNING = "SCTP is unsupported on the local engine (the kernel has no SCTP)"

# Behaviours a container plan can have.
NETEXEC = "netexec"
SERVE_HOSTNAME = "serve-hostname"
PAUSE = "pause"
NGINX = "nginx"
HTTP_ECHO = "http-echo"
IDLE = "idle"
GENERIC = "generic"
CRASH = "crash"  # the real container would exit at once (bad flags): CrashLoopBackOff
COREDNS = "coredns"

# Handlers (implemented in servers.py).
H_NETEXEC_HTTP = "netexec-http"
H_NETEXEC_UDP = "netexec-udp"
H_HOSTNAME_TCP = "serve-hostname-tcp"
H_HOSTNAME_UDP = "serve-hostname-udp"
H_HOSTNAME_HTTP = "serve-hostname-http"
H_NGINX = "nginx-http"
H_HTTP_ECHO = "http-echo"
H_ECHO_TCP = "echo-tcp"
H_ECHO_UDP = "echo-udp"
H_DNS_UDP = "dns-udp"
H_DNS_TCP = "dns-tcp"
H_COREDNS_HTTP = "coredns-http"  # /health, /ready and /metrics

# Images whose default process is a shell or a sleep: they serve nothing, exec works.
IDLE_IMAGES = frozenset(
    {
        "busybox", "alpine", "curl", "netshoot", "ubuntu", "debian", "fedora", "centos",
        "rockylinux", "almalinux", "amazonlinux", "archlinux", "ubi", "ubi-minimal", "ubi8",
        "ubi9", "dnsutils", "jessie-dnsutils", "toolbox", "bash", "python", "node",
    }
)  # fmt: skip
# Words a "just keep the container alive" command is made of: no warning for those.
_KEEPALIVE_WORDS = frozenset(
    {"sh", "/bin/sh", "bash", "/bin/bash", "-c", "sleep", "infinity", "tail", "-f",
     "/dev/null", "while", "true", "do", "done", ";", "trap", ":", "wait", "exec"}
)  # fmt: skip


@dataclass(frozen=True)
class ServerSpec:
    """One listening socket: protocol, port, which handler answers, handler options."""

    protocol: Protocol
    port: int
    handler: str
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol} ({self.handler})"


@dataclass(frozen=True)
class ContainerPlan:
    """What one container does. ``note`` is a one-line explanation for people."""

    name: str
    image: str
    behaviour: str
    servers: list[ServerSpec] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class PodPlan:
    """Every container's plan, warnings for the learner, and the pod's hostname.

    ``hostname`` is what the pod's processes see as their hostname: ``spec.hostname`` when
    set, else the pod name (as the kubelet sets the UTS namespace).
    """

    containers: list[ContainerPlan]
    warnings: list[str] = field(default_factory=list)
    hostname: str = ""


@dataclass(frozen=True)
class ImageRef:
    """``registry/path:tag@digest`` split up; ``repository`` drops docker.io/library."""

    registry: str
    repository: str
    tag: str

    @property
    def last(self) -> str:
        return self.repository.rsplit("/", 1)[-1]


def parse_image(ref: str) -> ImageRef:
    """Split an image reference the way the container runtimes do."""
    ref = ref.strip().split("@", 1)[0]
    registry = ""
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, ref = first, rest
    tag = ""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
    repo = ref.lower()
    if registry in ("", "docker.io", "index.docker.io", "registry-1.docker.io"):
        registry = "docker.io"
        repo = repo.removeprefix("library/")
    return ImageRef(registry, repo, tag)


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Expand ``$(VAR)`` in args like the kubelet does; ``$$`` escapes, unknown stays."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


def parse_flags(argv: list[str], bools: set[str]) -> tuple[dict[str, str], list[str]]:
    """Parse ``--x=v``, ``--x v``, ``-x=v``, ``-x v`` and bare boolean ``--x``.

    Returns (flags, positionals). Booleans take a value only through ``=`` (as in both Go
    flag libraries), so ``--tcp`` is ``"true"`` and ``--http=false`` is ``"false"``.
    """
    flags: dict[str, str] = {}
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq:
            if name in bools:
                value = "true"
            elif i < len(argv):
                value = argv[i]
                i += 1
        flags[name] = value
    return flags, positionals


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "t", "true", "yes")


def _int(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        return default


@dataclass(frozen=True)
class _Port:
    port: int
    protocol: Protocol
    name: str


def _declared_ports(container: dict[str, Any]) -> list[_Port]:
    out: list[_Port] = []
    for p in container.get("ports") or []:
        if isinstance(p, dict) and isinstance(p.get("containerPort"), int):
            proto = str(p.get("protocol") or "TCP").upper()
            if proto in ("TCP", "UDP", "SCTP"):
                out.append(_Port(p["containerPort"], proto, str(p.get("name") or "")))  # type: ignore[arg-type]
    return out


def _env(container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in container.get("env") or []:
        if isinstance(e, dict) and "name" in e and isinstance(e.get("value"), str):
            env[str(e["name"])] = expand_vars(e["value"], env)
    return env


class _Planner:
    """Plans one container; collects warnings prefixed with the container's name."""

    def __init__(self, container: dict[str, Any]) -> None:
        self.name = str(container.get("name") or "")
        self.image = str(container.get("image") or "")
        self.ref = parse_image(self.image)
        env = _env(container)
        self.command = [expand_vars(str(a), env) for a in container.get("command") or []]
        self.args = [expand_vars(str(a), env) for a in container.get("args") or []]
        self.env = env
        self.ports = _declared_ports(container)
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(f"container {self.name}: {text}")

    def plan(self) -> ContainerPlan:
        last, repo = self.ref.last, self.ref.repository
        if last == "agnhost":
            return self._agnhost()
        if last == "http-echo":
            return self._http_echo()
        if last == "network-multitool":
            port = _int(self.env.get("HTTP_PORT", "80"), 80)
            return self._nginx(port, "network-multitool (nginx)")
        if last in ("nginx", "nginx-unprivileged") or repo.startswith("nginxinc/"):
            # The unprivileged variants and bitnami's image run as non-root on 8080.
            unpriv = "unprivileged" in repo or repo == "bitnami/nginx"
            return self._nginx(8080 if unpriv else 80, "nginx")
        if last == "coredns":
            return self._coredns()
        if last == "pause" and not self.args:
            return self._made(PAUSE, [], "the pause process: serves nothing")
        if last in IDLE_IMAGES:
            return self._idle()
        return self._generic(f"image {self.image} is not known to the local engine")

    # -- helpers -----------------------------------------------------------------------

    def _made(self, behaviour: str, servers: list[ServerSpec], note: str) -> ContainerPlan:
        served = {(s.protocol, s.port) for s in servers}
        listing = ", ".join(f"{s.port}/{s.protocol}" for s in servers) or "nothing"
        for p in self.ports:
            if p.protocol != "SCTP" and (p.protocol, p.port) not in served:
                self.warn(
                    f"containerPort {p.port}/{p.protocol} is declared but {behaviour} does "
                    f"not listen on it (it serves {listing})"
                )
        return ContainerPlan(self.name, self.image, behaviour, servers, note)

    def _echo_servers(self) -> list[ServerSpec]:
        servers: list[ServerSpec] = []
        for p in self.ports:
            if p.protocol == "SCTP":
                self.warn(f"{SCTP_WARNING}: containerPort {p.port}/SCTP is not served")
                continue
            handler = H_ECHO_TCP if p.protocol == "TCP" else H_ECHO_UDP
            spec = ServerSpec(p.protocol, p.port, handler)
            if spec not in servers:
                servers.append(spec)
        return servers

    def _generic(self, why: str) -> ContainerPlan:
        servers = self._echo_servers()
        if servers:
            listing = ", ".join(f"{s.port}/{s.protocol}" for s in servers)
            self.warn(f"{why}: serving a generic echo on ports {listing}")
            note = f"generic echo on {listing}"
        else:
            self.warn(f"{why}: no containerPorts declared, so nothing is served")
            note = "nothing served (no containerPorts declared)"
        return ContainerPlan(self.name, self.image, GENERIC, servers, note)

    def _idle(self) -> ContainerPlan:
        argv = self.command + self.args
        if self.ports:
            return self._generic(
                f"the command of {self.ref.repository} is not run on the local engine"
            )
        words = {w for a in argv for w in re.split(r"[\s;]+", a) if w}
        if words and not all(w in _KEEPALIVE_WORDS or w.isdigit() for w in words):
            self.warn(
                "the container's command is not run on the local engine; it idles "
                "(exec works, nothing listens)"
            )
        return ContainerPlan(self.name, self.image, IDLE, [], "idles; exec works")

    # -- coredns -----------------------------------------------------------------------

    def _coredns(self) -> ContainerPlan:
        """The cluster DNS server: the engine answers from its own view of Services,
        EndpointSlices and Pods (what CoreDNS's kubernetes plugin reads from the API).

        The Corefile is not read: the server behaves like the kubeadm/kind default one
        (``kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure }``, ``ttl`` 5,
        health on 8080, ready on 8181, prometheus on 9153) and, with no internet here,
        answers names outside the cluster at once instead of forwarding them.
        """
        argv = self.command + self.args
        if argv and argv[0].rsplit("/", 1)[-1] == "coredns":
            argv = argv[1:]
        flags, _ = parse_flags(argv, {"version", "plugins", "quiet"})
        port = _int(flags.get("dns.port", "53"), 53)
        servers = [
            ServerSpec("UDP", port, H_DNS_UDP),
            ServerSpec("TCP", port, H_DNS_TCP),
            ServerSpec("TCP", 8080, H_COREDNS_HTTP, {"paths": ["/health"]}),
            ServerSpec("TCP", 8181, H_COREDNS_HTTP, {"paths": ["/ready"]}),
            ServerSpec("TCP", 9153, H_COREDNS_HTTP, {"paths": ["/metrics"]}),
        ]
        if "conf" in flags and not flags["conf"].startswith("/etc/coredns/"):
            self.warn(f"the Corefile {flags['conf']} is not read; the engine's built-in "
                      "cluster DNS behaviour applies")
        return self._made(COREDNS, servers, f"cluster DNS on {port}/UDP and {port}/TCP")

    # -- agnhost -----------------------------------------------------------------------

    def _agnhost(self) -> ContainerPlan:
        argv = self.command + self.args
        if argv and argv[0].rsplit("/", 1)[-1] == "agnhost":
            argv = argv[1:]
        elif self.command:
            return self._generic(f"command {self.command[0]!r} of agnhost is not run")
        if not argv:
            return ContainerPlan(
                self.name,
                self.image,
                CRASH,
                [],
                "agnhost without a subcommand prints help and exits",
            )
        sub, rest = argv[0], argv[1:]
        if sub == "netexec":
            return self._netexec(rest)
        if sub == "serve-hostname":
            return self._serve_hostname(rest)
        if sub == "pause":
            return self._made(PAUSE, [], "agnhost pause: serves nothing")
        return self._generic(f"agnhost {sub} is not reproduced by the local engine")

    def _netexec(self, argv: list[str]) -> ContainerPlan:
        flags, _ = parse_flags(argv, set())
        http_port = _int(flags.get("http-port", "8080"), 8080)
        udp_port = _int(flags.get("udp-port", "8081"), 8081)
        sctp_port = _int(flags.get("sctp-port", "-1"), -1)
        servers = [ServerSpec("TCP", http_port, H_NETEXEC_HTTP)]
        if udp_port != -1:
            servers.append(ServerSpec("UDP", udp_port, H_NETEXEC_UDP))
        if sctp_port != -1:
            self.warn(f"{SCTP_WARNING}: netexec --sctp-port={sctp_port} is not served")
        for unsupported in ("tls-cert-file", "http-override", "udp-listen-addresses"):
            if unsupported in flags:
                self.warn(f"netexec --{unsupported} is ignored by the local engine")
        return self._made(NETEXEC, servers, "agnhost netexec")

    def _serve_hostname(self, argv: list[str]) -> ContainerPlan:
        flags, _ = parse_flags(argv, {"tcp", "udp", "http", "close"})
        tcp = _truthy(flags.get("tcp", "false"))
        udp = _truthy(flags.get("udp", "false"))
        http = _truthy(flags.get("http", "true"))
        port = _int(flags.get("port", "9376"), 9376)
        if http and (tcp or udp):
            return ContainerPlan(
                self.name, self.image, CRASH, [],
                "serve-hostname cannot serve TCP/UDP and HTTP at once (add --http=false)",
            )  # fmt: skip
        servers: list[ServerSpec] = []
        if tcp:
            servers.append(ServerSpec("TCP", port, H_HOSTNAME_TCP))
        if udp:
            servers.append(ServerSpec("UDP", port, H_HOSTNAME_UDP))
        if http:
            close = _truthy(flags.get("close", "false"))
            servers.append(ServerSpec("TCP", port, H_HOSTNAME_HTTP, {"close": close}))
        return self._made(SERVE_HOSTNAME, servers, "agnhost serve-hostname")

    # -- nginx and http-echo ------------------------------------------------------------

    def _nginx(self, port: int, flavour: str) -> ContainerPlan:
        if self.command or self.args:
            self.warn(
                f"the container's command is not run on the local engine; serving {flavour}'s "
                f"default page on {port}/TCP"
            )
        servers = [ServerSpec("TCP", port, H_NGINX, {"flavour": flavour})]
        return self._made(NGINX, servers, f"{flavour} default page")

    def _http_echo(self) -> ContainerPlan:
        argv = self.args if not self.command else self.command[1:] + self.args
        flags, _ = parse_flags(argv, set())
        text = flags.get("text", self.env.get("ECHO_TEXT"))
        if text is None:
            return ContainerPlan(
                self.name, self.image, CRASH, [], "http-echo exits: missing -text option"
            )
        listen = flags.get("listen", self.env.get("ECHO_LISTEN", ":5678"))
        host, _, port_text = listen.rpartition(":")
        port = _int(port_text, -1)
        if not 0 < port < 65536:
            return ContainerPlan(
                self.name, self.image, CRASH, [], f"http-echo exits: bad -listen {listen!r}"
            )
        options: dict[str, Any] = {
            "text": text,
            "status": _int(flags.get("status-code", "200"), 200),
        }
        host = host.strip("[]")
        if host in ("localhost", "127.0.0.1", "::1"):
            options["bind"] = "127.0.0.1"
        servers = [ServerSpec("TCP", port, H_HTTP_ECHO, options)]
        return self._made(HTTP_ECHO, servers, "hashicorp http-echo")


def plan_pod(pod: dict[str, Any]) -> PodPlan:
    """Decide what every container of ``pod`` (a Pod manifest as a dict) serves.

    Two containers of one pod share its network namespace, so a (protocol, port) claimed
    by an earlier container cannot be served by a later one; the runtime reports that
    container as failed, and the plan warns about it here already.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    hostname = str(spec.get("hostname") or meta.get("name") or "")
    containers: list[ContainerPlan] = []
    warnings: list[str] = []
    claimed: dict[tuple[str, int], str] = {}
    for c in spec.get("containers") or []:
        if not isinstance(c, dict):
            continue
        planner = _Planner(c)
        plan = planner.plan()
        warnings.extend(planner.warnings)
        if plan.behaviour == CRASH:
            warnings.append(f"container {plan.name}: {plan.note} (it would crash-loop)")
        for s in plan.servers:
            owner = claimed.setdefault((s.protocol, s.port), plan.name)
            if owner != plan.name:
                warnings.append(
                    f"container {plan.name}: port {s.port}/{s.protocol} is already used by "
                    f"container {owner} of the same pod; {plan.name} will fail to start"
                )
        containers.append(plan)
    return PodPlan(containers, warnings, hostname)
