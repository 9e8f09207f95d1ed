"""Run-time values in acceptance files: ``{{clusterIP ns/svc}}``, ``{{nodeIP *}}``, ...

A placeholder is resolved from the cluster just before it is used (an ``apply`` just before
that apply; ``probe`` and ``expect`` after convergence), so it always names what exists
now. Two placeholders are special:

- ``{{podIPs ns selector}}`` is several values: as a whole list item it becomes all of
  them (``answers: ['{{podIPs n app=web}}']``).
- ``{{nodeIP *}}`` is a fan-out: the step runs once per Ready node, each run with this
  replaced by that node's InternalIP. :meth:`Resolver.fanout` lists the values; the
  caller passes one of them as ``star``.

Certificates for ``{{tlsCertB64 NAME}}`` / ``{{tlsKeyB64 NAME}}`` are made with the
``openssl`` tool (the ``cryptography`` package is not a dependency): self-signed, CN and
SAN ``NAME``, valid from now for two days, the same pair for the same NAME during a run.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clusters.engine import Cluster
from clusters.errors import CommandError
from clusters.proc import run
from grader.conformance import readers

TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9]+)((?:\s+[^\s{}]+)*)\s*\}\}")
STAR = "*"

#: Each placeholder and how many arguments it takes.
ARITY: dict[str, int] = {
    "podIP": 1, "podIPDashed": 1, "podNet": 2, "podIPs": 2, "clusterIP": 1,
    "clusterIPArpa": 1, "nodePort": 2, "nodeIP": 1, "hostIP": 0, "ingressAddress": 1,
    "tlsCertB64": 1, "tlsKeyB64": 1,
}


class PlaceholderError(Exception):
    """A placeholder cannot be resolved now (what it names does not exist)."""


class NoHostSource(Exception):
    """``{{hostIP}}`` on an engine without a host probe source: the step is not applicable."""


def problems_in(text: str) -> list[str]:
    """What is wrong with the placeholders of ``text`` (unknown names, wrong arity)."""
    found = []
    for match in TOKEN.finditer(text):
        name, args = match.group(1), match.group(2).split()
        if name not in ARITY:
            found.append(f"unknown placeholder {{{{{name}}}}} (known: {', '.join(ARITY)})")
        elif len(args) != ARITY[name]:
            found.append(f"{{{{{name}}}}} takes {ARITY[name]} argument(s), got {len(args)}")
    if "{{" in TOKEN.sub("", text):
        found.append(f"malformed placeholder in {text!r}")
    return found


def uses_fanout(value: Any) -> bool:
    """Whether ``value`` (any nesting of lists and mappings) holds ``{{nodeIP *}}``."""
    if isinstance(value, str):
        return any(m.group(1) == "nodeIP" and m.group(2).split() == [STAR]
                   for m in TOKEN.finditer(value))
    if isinstance(value, dict):
        return any(uses_fanout(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(uses_fanout(v) for v in value)
    return False


class TlsPairs:
    """Self-signed certificate and key per NAME, made once per run."""

    def __init__(self, make: Callable[[str], tuple[bytes, bytes]] | None = None) -> None:
        self._pairs: dict[str, tuple[bytes, bytes]] = {}
        self._make = make or openssl_pair

    def pair(self, name: str) -> tuple[bytes, bytes]:
        if name not in self._pairs:
            self._pairs[name] = self._make(name)
        return self._pairs[name]


def openssl_pair(name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for ``name``, made by ``openssl req -x509``."""
    with tempfile.TemporaryDirectory(prefix="knl-tls-") as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        try:
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
                 "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                timeout=30)
        except CommandError as err:
            raise PlaceholderError(f"cannot make a certificate for {name}: {err}") from err
        return cert.read_bytes(), key.read_bytes()


class Resolver:
    """Resolves placeholders against one cluster."""

    def __init__(self, cluster: Cluster, tls: TlsPairs | None = None, host_ip: str = "") -> None:
        self.cluster = cluster
        self.tls = tls or TlsPairs()
        self.host_ip = host_ip

    def fanout(self) -> list[str]:
        """The InternalIPs of the Ready nodes, one run of a ``{{nodeIP *}}`` step each."""
        ips = [readers.internal_ip(n) for n in readers.ready_nodes(self.cluster)]
        return sorted(ip for ip in ips if ip)

    def resolve(self, value: Any, star: str | None = None) -> Any:
        """``value`` with every placeholder replaced; list items may expand (``podIPs``)."""
        if isinstance(value, str):
            return self.text(value, star)
        if isinstance(value, dict):
            return {k: self.resolve(v, star) for k, v in value.items()}
        if isinstance(value, list | tuple):
            items: list[Any] = []
            for item in value:
                if isinstance(item, str) and (m := TOKEN.fullmatch(item.strip())) \
                        and m.group(1) == "podIPs":
                    items.extend(self._pod_ips(*m.group(2).split()))
                else:
                    items.append(self.resolve(item, star))
            return items
        return value

    def text(self, text: str, star: str | None = None) -> str:
        def one(match: re.Match[str]) -> str:
            return self.value(match.group(1), match.group(2).split(), star)
        return TOKEN.sub(one, text)

    def value(self, name: str, args: list[str], star: str | None = None) -> str:
        try:
            return self._value(name, args, star)
        except readers.Missing as err:
            raise PlaceholderError(f"{{{{{' '.join([name, *args])}}}}}: {err}") from err

    def _value(self, name: str, args: list[str], star: str | None) -> str:
        c = self.cluster
        if name == "podIP":
            return readers.pod_ip(c, args[0])
        if name == "podIPDashed":
            return readers.pod_ip(c, args[0]).replace(".", "-").replace(":", "-")
        if name == "podNet":
            net = ipaddress.ip_network(f"{readers.pod_ip(c, args[0])}/{int(args[1])}", strict=False)
            return str(net)
        if name == "podIPs":
            raise PlaceholderError(f"{{{{podIPs {' '.join(args)}}}}} stands for several values: "
                                   "use it as a whole list item")
        if name == "clusterIP":
            return readers.cluster_ip(c, args[0])
        if name == "clusterIPArpa":
            return ipaddress.ip_address(readers.cluster_ip(c, args[0])).reverse_pointer + "."
        if name == "nodePort":
            return str(readers.node_port(c, args[0], args[1]))
        if name == "nodeIP":
            if args[0] == STAR:
                if star is None:
                    raise PlaceholderError("{{nodeIP *}} is only resolved per fan-out run")
                return star
            return readers.node_ip_of_pod(c, args[0])
        if name == "hostIP":
            if not self.host_ip:
                raise NoHostSource("the engine has no `host` probe source "
                                   "(Capabilities.host_ip is empty)")
            return self.host_ip
        if name == "ingressAddress":
            found = readers.ingress_addresses(readers.one(c, "Ingress", *readers.split_ref(
                args[0], "ingress")))
            if not found:
                raise readers.Missing(f"Ingress {args[0]} has no address in "
                                      "status.loadBalancer.ingress")
            return found[0]
        if name in ("tlsCertB64", "tlsKeyB64"):
            cert, key = self.tls.pair(args[0])
            return base64.b64encode(cert if name == "tlsCertB64" else key).decode()
        raise PlaceholderError(f"unknown placeholder {{{{{name}}}}}")

    def _pod_ips(self, namespace: str, selector: str) -> list[str]:
        pods = readers.ready_pods(self.cluster, namespace, selector)
        return sorted(str((p.get("status") or {}).get("podIP")) for p in pods
                      if (p.get("status") or {}).get("podIP"))
