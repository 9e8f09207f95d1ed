"""Which cells of a matrix a policy check talks about: ``cells("lab04/app=frontend", "lab04/app=api", 8080)``.

A check names cells the way the task reads, by pod patterns rather than by the generated
pod names a Deployment makes:

===================  ===============================================================
``*``                every pod of the matrix
``NS/*``             every pod in namespace ``NS`` (``*/...`` means any namespace)
``NS/NAME``          the pod ``NAME`` in ``NS``
``NS/KEY=VALUE,...`` pods in ``NS`` carrying every one of these labels (comma = AND)
===================  ===============================================================

``port`` and ``protocol`` left out mean every port and protocol of the matrix. A bad
pattern is the check author's mistake, so it raises CellSpecError (a ValueError) at once, saying what a
pattern looks like.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from grader.matrix import MatrixCell, check_via

PROTOCOLS = ("TCP", "UDP", "SCTP")
USAGE = "use '*', 'NS/*', 'NS/POD' or 'NS/KEY=VALUE[,KEY=VALUE...]'"
# A namespace or pod name (DNS subdomain characters), a label key (optional DNS prefix and
# a name part), a label value (possibly empty).
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class CellSpecError(ValueError):
    """A check names cells the matrix cannot judge (a bad pattern, a port, protocol or via
    the matrix was not probed on, a pattern matching no probed cell): the lab author's
    mistake, reported as an error of the check rather than as the learner's failure."""


@dataclass(frozen=True)
class PodPattern:
    """One side of a cell: a namespace (``None`` = any) and a pod name or labels (neither = any)."""

    text: str
    namespace: str | None = None
    name: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> PodPattern:
        if not isinstance(text, str):
            raise CellSpecError(f"cell pattern {text!r}: a pattern is a string; {USAGE}")
        raw = text.strip()
        if raw == "*":
            return cls(raw)
        ns, sep, rest = raw.partition("/")
        if not sep or not ns or not rest:
            raise CellSpecError(f"cell pattern {text!r}: {USAGE}")
        if ns != "*" and not _NAME.match(ns):
            raise CellSpecError(f"cell pattern {text!r}: {ns!r} is not a namespace name; {USAGE}")
        namespace = None if ns == "*" else ns
        if rest == "*":
            return cls(raw, namespace)
        if "=" not in rest:
            if not _NAME.match(rest):
                raise CellSpecError(f"cell pattern {text!r}: {rest!r} is not a pod name "
                                 f"(for labels write KEY=VALUE); {USAGE}")
            return cls(raw, namespace, name=rest)
        return cls(raw, namespace, labels=_labels(text, rest))

    def matches(self, label: str, labels: Mapping[str, str]) -> bool:
        """Whether the pod ``"ns/name"`` with ``labels`` is one of this pattern's."""
        ns, _, name = label.partition("/")
        if self.namespace is not None and ns != self.namespace:
            return False
        if self.name is not None and name != self.name:
            return False
        return all(labels.get(k) == v for k, v in self.labels)

    def __str__(self) -> str:
        return self.text


def _labels(text: str, selector: str) -> tuple[tuple[str, str], ...]:
    pairs: dict[str, str] = {}
    for part in selector.split(","):
        key, sep, value = part.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or value.startswith("=") or "!" in key:
            raise CellSpecError(f"cell pattern {text!r}: {part.strip()!r} is not KEY=VALUE "
                             f"(only equality, comma = AND); {USAGE}")
        if not _KEY.match(key) or not _VALUE.match(value):
            raise CellSpecError(f"cell pattern {text!r}: {part.strip()!r} is not a valid label "
                             f"KEY=VALUE; {USAGE}")
        if key in pairs and pairs[key] != value:
            raise CellSpecError(f"cell pattern {text!r}: label {key} is given twice with "
                             "different values, so no pod can match")
        pairs[key] = value
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class CellSpec:
    """Cells from ``src`` pods to ``dst`` pods on ``port``/``protocol`` (None = every one)."""

    src: PodPattern
    dst: PodPattern
    port: int | None = None
    protocol: str | None = None
    via: tuple[str, ...] = field(default=())  # empty = every via of the matrix

    def matches(self, cell: MatrixCell, labels: Mapping[str, Mapping[str, str]]) -> bool:
        """Whether ``cell`` is one of these; ``labels`` maps ``"ns/pod"`` to its labels."""
        if self.port is not None and cell.port != self.port:
            return False
        if self.protocol is not None and cell.protocol != self.protocol:
            return False
        if self.via and cell.via not in self.via:
            return False
        return (self.src.matches(cell.source, labels.get(cell.source, {}))
                and self.dst.matches(cell.dest, labels.get(cell.dest, {})))

    def describe(self) -> str:
        """``lab04/app=frontend -> lab04/app=api port 8080`` (``TCP/8080`` with a protocol)."""
        if self.port is not None:
            where = f"{self.protocol}/{self.port}" if self.protocol else f"port {self.port}"
        else:
            where = f"{self.protocol} (any port)" if self.protocol else "any port"
        via = f" via {','.join(self.via)}" if self.via else ""
        return f"{self.src} -> {self.dst} {where}{via}"

    def __str__(self) -> str:
        return self.describe()


def cells(src: str, dst: str, port: int | None = None, protocol: str | None = None,
          via: str | Iterable[str] = ()) -> CellSpec:
    """The cells from ``src`` pods to ``dst`` pods (patterns: see the module docstring).

    CellSpecError (a ValueError) for a bad pattern, a port outside 1-65535 or an unknown protocol.
    """
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 1 <= port <= 65535):
        raise CellSpecError(f"port {port!r}: a port is a number from 1 to 65535 (or None for any)")
    proto = None
    if protocol is not None:
        proto = str(protocol).strip().upper()
        if proto not in PROTOCOLS:
            raise CellSpecError(f"protocol {protocol!r}: use one of {', '.join(PROTOCOLS)} "
                             "(or None for any)")
    vias = (via,) if isinstance(via, str) else tuple(via)
    return CellSpec(PodPattern.parse(src), PodPattern.parse(dst), port, proto,
                    tuple(check_via(v for v in vias if v.strip())))


def as_specs(value: CellSpec | Iterable[CellSpec], what: str) -> list[CellSpec]:
    """A list of CellSpecs from one spec or several (a single spec need not be wrapped)."""
    if isinstance(value, CellSpec):
        return [value]
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what}: give cells(...) specs, not the string {value!r}")
    specs = list(value)
    for spec in specs:
        if not isinstance(spec, CellSpec):
            raise TypeError(f"{what}: {spec!r} is not a cells(...) spec")
    return specs
