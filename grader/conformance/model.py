"""An acceptance file as data, checked before anything touches a cluster.

The format is the one of ``shared/acceptance/README.md``: a fixture (Kubernetes objects)
and cases made of steps, each with at most one ``apply``/``delete``/``label`` change and
exactly one probe with its expectation. Every problem is reported with the file, the line
and the field (``services.yaml:142: cases[3].steps[0].probe: unknown probe kind ...``), all
of them at once, because a person fixing a file wants the whole list.

Positions come from PyYAML's node tree (every node keeps a ``start_mark``); the plain data
is built from that same tree. Embedded manifests (``objects``, ``apply``) are YAML inside a
YAML string: their documents are located relative to the block that holds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grader.conformance import placeholders
from grader.conformance.checker import Checker

PROBE_KINDS = ("matrix", "requests", "http", "dns", "read_file", "ingress_status")

#: For each probe kind: its fields (required ones marked True) and its expect keys.
PROBE_FIELDS: dict[str, dict[str, bool]] = {
    "matrix": {"ports": True, "protocols": False, "via": False, "timeout_seconds": False},
    "requests": {"from": True, "to": True, "count": True, "protocol": True,
                 "host_header": False, "timeout_seconds": False},
    "http": {"from": True, "url": True, "host_header": False, "method": False, "tls": False},
    "dns": {"from": True, "name": True, "type": False, "transport": False, "search": False},
    "read_file": {"pod": True, "path": True},
    "ingress_status": {"namespace": True, "name": True, "observe_seconds": False},
}
EXPECT_KEYS: dict[str, tuple[str, ...]] = {
    "matrix": ("blocked",),
    "requests": ("all_succeed", "outcome", "distinct_backends", "share_each",
                 "backends_equal_ready_pods", "dialed_address_in"),
    "http": ("status", "backend", "client_ip"),
    "dns": ("answers", "rcode"),
    "read_file": ("lines_include", "no_other_lines", "equals"),
    "ingress_status": ("address_assigned",),
}
STEP_KEYS = ("apply", "delete", "label", "wait_seconds", "probe", "expect")
CASE_KEYS = ("id", "title", "derived_from", "notes", "steps")
TOP_KEYS = ("suite", "version", "fixture", "fixtures", "cases")
OUTCOMES = ("connected", "refused", "timeout", "error")
DNS_TYPES = ("A", "AAAA", "SRV", "PTR", "CNAME", "TXT")
RCODES = ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP")


class ConformanceFileError(Exception):
    """A file is not a valid acceptance file; ``problems`` lists every located complaint."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ObjectRef:
    """One API object by kind, namespace (None: cluster-scoped) and name."""

    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace + '/' if self.namespace else ''}{self.name}"

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ObjectRef:
        meta = doc.get("metadata") or {}
        return cls(str(doc["kind"]), meta.get("namespace"), str(meta["name"]))


@dataclass(frozen=True)
class LabelChange:
    ref: ObjectRef
    set: Mapping[str, str]
    remove: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    index: int
    line: int
    probe_kind: str
    probe: Mapping[str, Any]
    expect: Mapping[str, Any]
    apply: str | None = None
    delete: tuple[ObjectRef, ...] = ()
    label: tuple[LabelChange, ...] = ()
    wait_seconds: float = 0.0


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    derived_from: str
    notes: str
    line: int
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Suite:
    """One parsed acceptance file."""

    path: Path
    suite: str
    version: int
    fixture: str
    description: str
    objects: tuple[Mapping[str, Any], ...]
    cases: tuple[Case, ...]
    namespaces: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.path.name

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise KeyError(case_id)


def fixture_namespaces(objects: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The namespaces a fixture builds or fills, in first-seen order."""
    seen: dict[str, None] = {}
    for doc in objects:
        meta = doc.get("metadata") or {}
        if doc.get("kind") == "Namespace":
            seen.setdefault(str(meta["name"]), None)
        elif meta.get("namespace"):
            seen.setdefault(str(meta["namespace"]), None)
    return tuple(seen)


# ---- loading ----------------------------------------------------------------------------


def load(path: str | Path) -> Suite:
    """Read and validate one acceptance file; ConformanceFileError lists every problem."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as err:
        raise ConformanceFileError([f"{file}: cannot read: {err.strerror or err}"]) from err
    return parse(text, file)


def parse(text: str, file: Path) -> Suite:
    loader = yaml.SafeLoader(text)
    try:
        tree = loader.get_single_node()
        data = loader.construct_document(tree) if tree is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConformanceFileError(
            [f"{file.name}{line}: invalid YAML: {getattr(err, 'problem', None) or err}"]) from err
    finally:
        loader.dispose()
    check = Checker(file, tree)
    if not check.mapping(data, [], TOP_KEYS, required=("fixture", "fixtures", "cases")):
        raise ConformanceFileError(check.problems)
    assert isinstance(data, Mapping)
    version = data.get("version", 1)
    if version != 1:
        check.add(["version"], f"unsupported format version {version!r} (this runner reads 1)")
    fixture = str(data.get("fixture"))
    fixtures = data.get("fixtures") or {}
    objects: list[dict[str, Any]] = []
    description = ""
    if not isinstance(fixtures, Mapping) or fixture not in fixtures:
        check.add(["fixture"], f"fixture {fixture!r} is not defined under fixtures")
    else:
        spec = fixtures[fixture]
        if check.mapping(spec, ["fixtures", fixture], ("description", "objects"),
                         required=("objects",)):
            objects = check.manifests(spec.get("objects"), ["fixtures", fixture, "objects"])
            description = str(spec.get("description") or "")
    cases: list[Case] = []
    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        check.add(["cases"], "expected a non-empty list of cases")
        raw_cases = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_cases):
        case = _case(check, raw, ["cases", i])
        if case is None:
            continue
        if case.id in seen:
            check.add(["cases", i, "id"], f"duplicate case id {case.id!r} "
                                          f"(first at cases[{seen[case.id]}])")
        seen.setdefault(case.id, i)
        cases.append(case)
    if check.problems:
        raise ConformanceFileError(check.problems)
    return Suite(file, str(data.get("suite") or file.stem), int(version), str(fixture),
                 description, tuple(objects), tuple(cases), fixture_namespaces(objects))


def _case(check: Checker, raw: Any, path: list[str | int]) -> Case | None:
    if not check.mapping(raw, path, CASE_KEYS, required=("id", "title", "steps")):
        return None
    steps: list[Step] = []
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        check.add([*path, "steps"], "expected a non-empty list of steps")
        raw_steps = []
    for j, step in enumerate(raw_steps):
        parsed = _step(check, step, [*path, "steps", j], j)
        if parsed is not None:
            steps.append(parsed)
    return Case(str(raw.get("id")), str(raw.get("title", "")), str(raw.get("derived_from") or ""),
                str(raw.get("notes") or ""), check.line(path), tuple(steps))


def _step(check: Checker, raw: Any, path: list[str | int], index: int) -> Step | None:
    if not check.mapping(raw, path, STEP_KEYS, required=("probe", "expect")):
        return None
    ok = True
    if "apply" in raw:
        check.manifests(raw["apply"], [*path, "apply"])
    deletes = tuple(_refs(check, raw.get("delete", []), [*path, "delete"]))
    labels = tuple(_labels(check, raw.get("label", []), [*path, "label"]))
    wait = raw.get("wait_seconds", 0)
    if not check.typed(wait, [*path, "wait_seconds"], (int, float), "a number of seconds") \
            or wait < 0:
        ok, wait = False, 0
    probe = raw.get("probe")
    kind = _probe(check, probe, [*path, "probe"])
    expect = raw.get("expect")
    if kind is not None and check.mapping(expect, [*path, "expect"], EXPECT_KEYS[kind]):
        if not expect:
            check.add([*path, "expect"], "must state at least one expectation")
        _expect(check, kind, expect, [*path, "expect"])
    for key in ("apply", "probe", "expect"):
        for where, text in _strings(raw.get(key), [*path, key]):
            for problem in placeholders.problems_in(text):
                check.add(where, problem)
    if kind is None or not ok or not isinstance(expect, Mapping):
        return None
    return Step(index, check.line(path), kind, dict(probe[kind]), dict(expect),
                raw.get("apply"), deletes, labels, float(wait))


def _strings(value: Any, path: list[str | int]) -> list[tuple[list[str | int], str]]:
    """Every string inside ``value`` with its path."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in _strings(v, [*path, str(k)])]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, [*path, i])]
    return []


def _probe(check: Checker, probe: Any, path: list[str | int]) -> str | None:
    if not isinstance(probe, Mapping) or len(probe) != 1:
        check.add(path, "expected exactly one probe, e.g. `dns: {...}` "
                        f"(one of {', '.join(PROBE_KINDS)})")
        return None
    kind = str(next(iter(probe)))
    if kind not in PROBE_KINDS:
        check.add(path, f"unknown probe kind {kind!r} (expected one of {', '.join(PROBE_KINDS)})",
                  line=check.line([*path, kind]))
        return None
    fields = PROBE_FIELDS[kind]
    body = probe[kind]
    if not check.mapping(body, [*path, kind], tuple(fields),
                         required=tuple(k for k, req in fields.items() if req)):
        return None
    where = [*path, kind]
    if kind == "matrix":
        ports = body.get("ports")
        if not isinstance(ports, list) or not ports or not all(
                isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports):
            check.add([*where, "ports"], f"expected a list of ports 1-65535, got {ports!r}")
        for p in body.get("protocols", []):
            if p not in ("TCP", "UDP", "SCTP"):
                check.add([*where, "protocols"], f"unknown protocol {p!r} (TCP, UDP or SCTP)")
        for v in body.get("via", []):
            if v not in ("pod-ip", "service-ip", "service-name"):
                check.add([*where, "via"], f"unknown via {v!r} (pod-ip, service-ip or service-name)")
    elif kind == "requests":
        count = body.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            check.add([*where, "count"], f"expected a whole number >= 1, got {count!r}")
        if body.get("protocol") not in ("tcp", "http"):
            check.add([*where, "protocol"], f"expected tcp or http, got {body.get('protocol')!r}")
        if str(body.get("to", "")).startswith(("http://", "https://")) \
                and body.get("protocol") != "http":
            check.add([*where, "to"], "a URL target needs protocol: http")
    elif kind == "http":
        if not str(body.get("url", "")).startswith(("http://", "https://")):
            check.add([*where, "url"], f"expected an http:// or https:// URL, got {body.get('url')!r}")
        tls = body.get("tls")
        if tls is not None and check.mapping(tls, [*where, "tls"], ("sni", "verify_against"),
                                             required=("sni", "verify_against")):
            target = str(tls.get("verify_against", ""))
            if not target.startswith("secret ") or "/" not in target:
                check.add([*where, "tls", "verify_against"],
                          f"expected 'secret NS/NAME', got {target!r}")
    elif kind == "dns":
        if body.get("type", "A") not in DNS_TYPES:
            check.add([*where, "type"], f"unknown type {body.get('type')!r} "
                                        f"(one of {', '.join(DNS_TYPES)})")
        if body.get("transport", "udp") not in ("udp", "tcp"):
            check.add([*where, "transport"], "expected udp or tcp")
        if not isinstance(body.get("search", False), bool):
            check.add([*where, "search"], "expected true or false")
    for key in ("timeout_seconds", "observe_seconds"):
        if key in body:
            check.typed(body[key], [*where, key], (int, float), "a number of seconds")
    return kind


def _expect(check: Checker, kind: str, expect: Mapping[str, Any], path: list[str | int]) -> None:
    for key, value in expect.items():
        where = [*path, key]
        if key == "blocked":
            if not isinstance(value, list):
                check.add(where, "expected a list of {from, to} patterns")
                continue
            for i, item in enumerate(value):
                check.mapping(item, [*where, i], ("from", "to"), required=("from", "to"))
        elif key == "outcome":
            values = value if isinstance(value, list) else [value]
            for v in values:
                if str(v).lower() not in OUTCOMES:
                    check.add(where, f"unknown outcome {v!r} (one of {', '.join(OUTCOMES)})")
        elif key in ("distinct_backends",):
            check.mapping(value, where, ("min", "max"))
        elif key == "share_each":
            check.mapping(value, where, ("approx", "tolerance"), required=("approx", "tolerance"))
        elif key == "backends_equal_ready_pods":
            check.mapping(value, where, ("namespace", "selector"),
                          required=("namespace", "selector"))
        elif key in ("dialed_address_in", "answers", "lines_include"):
            check.typed(value, where, list, "a list")
        elif key in ("all_succeed", "no_other_lines", "address_assigned"):
            check.typed(value, where, bool, "true or false")
        elif key == "status":
            check.typed(value, where, int, "an HTTP status code")
        elif key == "rcode" and str(value).upper() not in RCODES:
            check.add(where, f"unknown rcode {value!r} (one of {', '.join(RCODES)})")


def _refs(check: Checker, raw: Any, path: list[str | int]) -> list[ObjectRef]:
    if not isinstance(raw, list):
        check.add(path, "expected a list of {kind, namespace, name}")
        return []
    refs = []
    for i, item in enumerate(raw):
        if check.mapping(item, [*path, i], ("kind", "namespace", "name"),
                         required=("kind", "name")):
            refs.append(ObjectRef(str(item["kind"]), item.get("namespace"), str(item["name"])))
    return refs


def _labels(check: Checker, raw: Any, path: list[str | int]) -> list[LabelChange]:
    if not isinstance(raw, list):
        check.add(path, "expected a list of {kind, namespace, name, set, remove}")
        return []
    changes = []
    for i, item in enumerate(raw):
        if not check.mapping(item, [*path, i], ("kind", "namespace", "name", "set", "remove"),
                             required=("kind", "name")):
            continue
        sets, remove = item.get("set") or {}, item.get("remove") or []
        if not isinstance(sets, Mapping) or not isinstance(remove, list):
            check.add([*path, i], "set must be a mapping and remove a list of keys")
            continue
        changes.append(LabelChange(
            ObjectRef(str(item["kind"]), item.get("namespace"), str(item["name"])),
            {str(k): str(v) for k, v in sets.items()}, tuple(str(k) for k in remove)))
    return changes
