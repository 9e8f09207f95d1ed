"""plan_pod: what the local engine serves for each image and args (pure, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.local.runtime import SCTP_WARNING, ServerSpec, parse_image, plan_pod
from clusters.local.runtime import plan as P

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def pod(*containers: dict[str, Any], name: str = "web-1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"containers": list(containers), **spec},
    }


def c(image: str, name: str = "main", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


def only(p: P.PodPlan) -> P.ContainerPlan:
    assert len(p.containers) == 1
    return p.containers[0]


def ports(cp: P.ContainerPlan) -> set[tuple[str, int, str]]:
    return {(s.protocol, s.port, s.handler) for s in cp.servers}


@pytest.mark.parametrize(
    ("ref", "registry", "repository", "tag"),
    [
        ("nginx", "docker.io", "nginx", ""),
        ("nginx:1.25-alpine", "docker.io", "nginx", "1.25-alpine"),
        ("docker.io/library/nginx:1.25", "docker.io", "nginx", "1.25"),
        (AGNHOST + "@sha256:" + "a" * 64, "registry.k8s.io", "e2e-test-images/agnhost", "2.53"),
        ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1"),
        ("my.reg:5000/team/app", "my.reg:5000", "team/app", ""),
        ("bitnami/nginx:latest", "docker.io", "bitnami/nginx", "latest"),
    ],
)
def test_parse_image(ref: str, registry: str, repository: str, tag: str) -> None:
    img = parse_image(ref)
    assert (img.registry, img.repository, img.tag) == (registry, repository, tag)


@pytest.mark.parametrize(
    "image",
    [
        AGNHOST,
        "k8s.gcr.io/e2e-test-images/agnhost:2.20",
        "mirror.example.com/k8s/agnhost:2.53",
        AGNHOST + "@sha256:" + "b" * 64,
    ],
)
def test_netexec_defaults_on_every_agnhost_reference(image: str) -> None:
    cp = only(plan_pod(pod(c(image, args=["netexec"]))))
    assert cp.behaviour == P.NETEXEC
    assert ports(cp) == {("TCP", 8080, P.H_NETEXEC_HTTP), ("UDP", 8081, P.H_NETEXEC_UDP)}


@pytest.mark.parametrize(
    "argv",
    [
        {"args": ["netexec", "--http-port=9376", "--udp-port=-1"]},
        {"args": ["netexec", "--http-port", "9376", "--udp-port", "-1"]},
        {"command": ["/agnhost", "netexec", "--http-port=9376"], "args": ["--udp-port=-1"]},
        {"command": ["/agnhost"], "args": ["netexec", "--udp-port=-1", "--http-port=9376"]},
    ],
)
def test_netexec_flag_forms(argv: dict[str, list[str]]) -> None:
    p = plan_pod(pod({"name": "main", "image": AGNHOST, **argv}))
    assert ports(only(p)) == {("TCP", 9376, P.H_NETEXEC_HTTP)}
    assert p.warnings == []


def test_netexec_sctp_is_warned_and_not_served() -> None:
    p = plan_pod(pod(c(AGNHOST, args=["netexec", "--sctp-port=9000"])))
    assert all(s.protocol != "SCTP" for s in only(p).servers)
    assert any(SCTP_WARNING in w and "9000" in w for w in p.warnings)


def test_netexec_args_expand_env_vars() -> None:
    env = [{"name": "PORT", "value": "7000"}]
    cp = only(plan_pod(pod(c(AGNHOST, args=["netexec", "--http-port=$(PORT)"], env=env))))
    assert ("TCP", 7000, P.H_NETEXEC_HTTP) in ports(cp)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve-hostname", "--tcp", "--http=false", "--port=80"], {("TCP", 80, P.H_HOSTNAME_TCP)}),
        (
            ["serve-hostname", "--udp", "--http=false", "--port", "81"],
            {("UDP", 81, P.H_HOSTNAME_UDP)},
        ),
        (
            ["serve-hostname", "--tcp", "--udp", "--http=false"],
            {("TCP", 9376, P.H_HOSTNAME_TCP), ("UDP", 9376, P.H_HOSTNAME_UDP)},
        ),
        (["serve-hostname"], {("TCP", 9376, P.H_HOSTNAME_HTTP)}),
        (["serve-hostname", "--http=true", "--port=8080"], {("TCP", 8080, P.H_HOSTNAME_HTTP)}),
    ],
)
def test_serve_hostname(args: list[str], expected: set[tuple[str, int, str]]) -> None:
    cp = only(plan_pod(pod(c(AGNHOST, args=args))))
    assert cp.behaviour == P.SERVE_HOSTNAME
    assert ports(cp) == expected


def test_serve_hostname_tcp_with_http_crashes_like_agnhost() -> None:
    p = plan_pod(pod(c(AGNHOST, args=["serve-hostname", "--tcp", "--port=80"])))
    assert only(p).behaviour == P.CRASH
    assert only(p).servers == []
    assert any("--http=false" in w for w in p.warnings)


def test_agnhost_pause_serves_nothing_quietly() -> None:
    p = plan_pod(pod(c(AGNHOST, args=["pause"])))
    assert only(p).behaviour == P.PAUSE
    assert only(p).servers == []
    assert p.warnings == []


def test_agnhost_unknown_subcommand_is_generic_with_warning() -> None:
    p = plan_pod(pod(c(AGNHOST, args=["porter"], ports=[{"containerPort": 8080}])))
    assert only(p).behaviour == P.GENERIC
    assert ports(only(p)) == {("TCP", 8080, P.H_ECHO_TCP)}
    assert any("agnhost porter" in w for w in p.warnings)


@pytest.mark.parametrize(
    ("image", "port"),
    [
        ("nginx", 80),
        ("nginx:1.25", 80),
        ("docker.io/library/nginx@sha256:" + "c" * 64, 80),
        ("nginxinc/nginx-unprivileged:1.25", 8080),
        ("bitnami/nginx:1.25", 8080),
        ("quay.io/myorg/nginx-unprivileged", 8080),
        ("praqma/network-multitool", 80),
        ("wbitt/network-multitool:latest", 80),
    ],
)
def test_nginx_family(image: str, port: int) -> None:
    p = plan_pod(pod(c(image)))
    assert only(p).behaviour == P.NGINX
    assert [(s.protocol, s.port, s.handler) for s in only(p).servers] == [("TCP", port, P.H_NGINX)]
    assert p.warnings == []


def test_nginx_warns_about_a_declared_port_it_does_not_listen_on() -> None:
    p = plan_pod(pod(c("nginx", ports=[{"containerPort": 8080}])))
    assert any("8080/TCP is declared" in w for w in p.warnings)


@pytest.mark.parametrize(
    ("fields", "port", "text", "status"),
    [
        ({"args": ["-text=hello"]}, 5678, "hello", 200),
        ({"args": ["-text", "hi there", "-listen=:8080"]}, 8080, "hi there", 200),
        ({"args": ["--text=x", "-status-code=503"]}, 5678, "x", 503),
        (
            {"args": ["-listen", ":9000"], "env": [{"name": "ECHO_TEXT", "value": "e"}]},
            9000,
            "e",
            200,
        ),
    ],
)
def test_http_echo(fields: dict[str, Any], port: int, text: str, status: int) -> None:
    cp = only(plan_pod(pod(c("hashicorp/http-echo:1.0", **fields))))
    assert cp.behaviour == P.HTTP_ECHO
    assert cp.servers == [ServerSpec("TCP", port, P.H_HTTP_ECHO, {"text": text, "status": status})]


def test_http_echo_without_text_crashes() -> None:
    p = plan_pod(pod(c("hashicorp/http-echo")))
    assert only(p).behaviour == P.CRASH
    assert "-text" in only(p).note


@pytest.mark.parametrize(
    "image",
    ["busybox:1.36", "alpine", "curlimages/curl:8.5.0", "nicolaka/netshoot", "ubuntu:22.04"],
)
def test_idle_images_with_keepalive_commands(image: str) -> None:
    p = plan_pod(pod(c(image, command=["sh", "-c", "sleep 3600"])))
    assert only(p).behaviour == P.IDLE
    assert only(p).servers == []
    assert p.warnings == []


def test_idle_image_with_a_real_command_warns_that_it_is_not_run() -> None:
    p = plan_pod(pod(c("busybox", command=["httpd", "-f", "-p", "8080"])))
    assert only(p).behaviour == P.IDLE
    assert any("not run" in w for w in p.warnings)


def test_idle_image_with_ports_serves_generic_echo_and_warns() -> None:
    p = plan_pod(
        pod(c("busybox", command=["nc", "-lk", "-p", "8080"], ports=[{"containerPort": 8080}]))
    )
    assert only(p).behaviour == P.GENERIC
    assert ports(only(p)) == {("TCP", 8080, P.H_ECHO_TCP)}
    assert any("command of busybox is not run" in w for w in p.warnings)


def test_unknown_image_serves_generic_echo_on_declared_ports() -> None:
    ports_ = [
        {"containerPort": 8080},
        {"containerPort": 53, "protocol": "UDP"},
        {"containerPort": 9000, "protocol": "SCTP"},
    ]
    p = plan_pod(pod(c("example.com/team/api:3", ports=ports_)))
    cp = only(p)
    assert cp.behaviour == P.GENERIC
    assert ports(cp) == {("TCP", 8080, P.H_ECHO_TCP), ("UDP", 53, P.H_ECHO_UDP)}
    assert any(
        "image example.com/team/api:3 is not known to the local engine: serving a generic echo "
        "on ports 8080/TCP, 53/UDP" in w
        for w in p.warnings
    )
    assert any(SCTP_WARNING in w for w in p.warnings)


def test_unknown_image_without_ports_serves_nothing_and_warns() -> None:
    p = plan_pod(pod(c("example.com/team/api:3")))
    assert only(p).servers == []
    assert any("nothing is served" in w for w in p.warnings)


def test_port_clash_between_containers_is_warned() -> None:
    p = plan_pod(
        pod(
            c(AGNHOST, "a", args=["netexec", "--http-port=8080", "--udp-port=-1"]),
            c("nginxinc/nginx-unprivileged", "b"),
        )
    )
    assert any("container b" in w and "8080/TCP" in w and "container a" in w for w in p.warnings)


def test_same_port_different_protocols_is_no_clash() -> None:
    p = plan_pod(
        pod(
            c(AGNHOST, "a", args=["serve-hostname", "--tcp", "--http=false", "--port=80"]),
            c(AGNHOST, "b", args=["serve-hostname", "--udp", "--http=false", "--port=80"]),
        )
    )
    assert p.warnings == []


def test_hostname_is_spec_hostname_else_pod_name() -> None:
    assert plan_pod(pod(c("busybox"))).hostname == "web-1"
    assert plan_pod(pod(c("busybox"), hostname="p1", subdomain="h")).hostname == "p1"


def test_parse_flags_booleans_only_take_values_with_equals() -> None:
    flags, rest = P.parse_flags(["--tcp", "--http=false", "--port", "80", "extra"], {"tcp", "http"})
    assert flags == {"tcp": "true", "http": "false", "port": "80"}
    assert rest == ["extra"]
