"""Manifest validation for the local engine, as strict as ``kubectl apply --validate=strict``.

Two passes per document. The *schema pass* walks the document along the official
``kubernetes`` Python client's models (each has ``openapi_types`` and ``attribute_map``), so
the whole Kubernetes schema comes for free: unknown fields (with a "did you mean"), wrong
types and missing required fields are reported with their full path. The *rules pass*
(only when the schema pass found nothing, so it can trust types) checks what the API
server checks beyond the schema: names, labels, ports, enums, selectors matching
templates. Then defaults are filled in on a copy, so every later layer reads one shape.
Those per-kind rules and defaults live in :mod:`clusters.local.rules`; this module loads
YAML, runs the schema pass, resolves the kind and reports.

Every problem is a ``(path, message)`` pair; :func:`validate` raises one
:class:`~clusters.errors.ManifestError` naming the first path and listing the rest.
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from kubernetes.client import models as k8s_models

from clusters.errors import ManifestError
from clusters.local import kinds as kinds_mod
from clusters.local.kinds import KindInfo
from clusters.local.rules import Problem, apply_defaults, check_kind, join_path

# Fields typed as strings in the schema that carry resource quantities: YAML numbers are fine.
_QUANTITY_FIELDS = frozenset({"limits", "requests", "overhead", "sizeLimit", "capacity",
                              "allocatable", "hard"})


# ---------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, as kubectl's YAML-to-JSON step does."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Parse multi-document YAML into mappings; empty documents are skipped, ``List`` expanded.

    A YAML syntax error names its line; a document that is not a mapping names its index.
    """
    try:
        raw = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ManifestError(f"YAML syntax error{line}: {problem}", source=source) from err
    docs: list[dict[str, Any]] = []
    for index, doc in enumerate(raw):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(
                f"a document must be a mapping (apiVersion, kind, metadata, ...), "
                f"not {_type_name(doc)}", source=source, index=index)
        if doc.get("kind") == "List" or (
            isinstance(doc.get("kind"), str) and doc["kind"].endswith("List")
            and isinstance(doc.get("items"), list)
        ):
            for item_no, item in enumerate(doc.get("items") or []):
                if not isinstance(item, dict):
                    raise ManifestError(f"items[{item_no}] must be a mapping",
                                        source=source, index=index)
                docs.append(item)
        else:
            docs.append(doc)
    return docs


# ---------------------------------------------------------------- schema pass


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _model(name: str) -> Any:
    cls = getattr(k8s_models, name, None)
    return cls if isinstance(getattr(cls, "openapi_types", None), dict) else None


@functools.cache
def required_attrs(cls: type) -> frozenset[str]:
    """The attributes a client model requires, discovered once per model and cached.

    Pydantic-generated clients (v32+) say so per field; older clients raise ``ValueError``
    from a setter given ``None`` while client-side validation is on.
    """
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):
        return frozenset(a for a, f in fields.items() if f.is_required())
    from kubernetes.client import Configuration

    config = Configuration()
    config.client_side_validation = True
    probe: Any = object.__new__(cls)
    probe.local_vars_configuration = config
    required = set()
    for attr in cls.openapi_types:  # type: ignore[attr-defined]
        try:
            setattr(probe, attr, None)
        except ValueError:
            required.add(attr)
    return frozenset(required)


@functools.cache
def _json_fields(cls: type) -> dict[str, tuple[str, str]]:
    """jsonName -> (attribute, type string) for a model."""
    amap: dict[str, str] = cls.attribute_map  # type: ignore[attr-defined]
    return {amap[a]: (a, t) for a, t in cls.openapi_types.items()}  # type: ignore[attr-defined]


_LIST_RE = re.compile(r"^(?:list|List)\[(.+)\]$")
_DICT_RE = re.compile(r"^(?:dict\(str, (.+)\)|Dict\[str, (.+)\])$")
_EXPECTED = {"str": "string", "int": "integer", "bool": "boolean", "float": "number",
             "object": "integer or string", "datetime": "RFC 3339 time string",
             "date": "date string", "bytes": "base64 string"}


def _walk(value: Any, type_str: str, path: str, field: str, out: list[Problem]) -> None:
    """Check ``value`` against a client type string, appending problems to ``out``."""
    if m := _LIST_RE.match(type_str):
        if not isinstance(value, list):
            out.append((path, f"expected a list, got {_type_name(value)}"))
            return
        for i, item in enumerate(value):
            _walk(item, m.group(1), f"{path}[{i}]", field, out)
        return
    if m := _DICT_RE.match(type_str):
        if not isinstance(value, dict):
            out.append((path, f"expected a mapping, got {_type_name(value)}"))
            return
        for key, item in value.items():
            if not isinstance(key, str):
                out.append((path, f"key {key!r} must be a string"))
            elif item is not None:
                _walk(item, m.group(1) or m.group(2), f"{path}[{key}]", field, out)
        return
    cls = _model(type_str)
    if cls is not None:
        _walk_model(value, cls, path, out)
        return
    ok = {
        "str": lambda v: isinstance(v, str) or (
            field in _QUANTITY_FIELDS and isinstance(v, int | float) and not isinstance(v, bool)),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "object": lambda v: isinstance(v, int | str) and not isinstance(v, bool),
        "bytes": lambda v: isinstance(v, str),
    }.get(type_str, lambda v: isinstance(v, str))
    if not ok(value):
        expected = _EXPECTED.get(type_str, type_str)
        out.append((path, f"expected {expected}, got {_type_name(value)} {value!r}"))
    elif type_str == "bytes":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            out.append((path, "illegal base64 data (use stringData for plain text)"))


def _walk_model(value: Any, cls: type, path: str, out: list[Problem]) -> None:
    if not isinstance(value, dict):
        out.append((path, f"expected a mapping ({cls.__name__}), got {_type_name(value)}"))
        return
    fields = _json_fields(cls)
    for key, item in value.items():
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            suggestion = f"; did you mean {hint[0]}?" if hint else ""
            out.append((join_path(path, str(key)), f"unknown field {key!r}{suggestion}"))
        elif item is not None:
            _walk(item, fields[key][1], join_path(path, key), key, out)
    attr_json = {a: j for j, (a, _t) in fields.items()}
    for attr in sorted(required_attrs(cls)):
        name = attr_json[attr]
        if value.get(name) is None and name not in ("apiVersion", "kind"):
            out.append((join_path(path, name), "required value is missing"))


def drop_nulls(value: Any) -> Any:
    """Remove null fields: kubectl treats ``field: null`` in a manifest as absent."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


# ---------------------------------------------------------------- kinds


def _known_upstream(kind: str) -> str | None:
    """The apiVersion hint for a real Kubernetes kind the engine does not support, if any."""
    for prefix in ("V1", "V2", "V1beta1", "V1beta2", "V1alpha1"):
        cls = _model(prefix + kind)
        if cls is not None and "kind" in cls.openapi_types and "metadata" in cls.openapi_types:
            return prefix[1:].lower()
    return None


def _kind_of(doc: Mapping[str, Any]) -> tuple[KindInfo | None, Problem | None]:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(kind, str) or not kind:
        return None, ("kind", "required value is missing (a string such as Pod)")
    if not isinstance(api_version, str) or not api_version:
        return None, ("apiVersion", "required value is missing")
    info = kinds_mod.find_kind(kind)
    if info is None:
        supported = ", ".join(k.kind for k in kinds_mod.KINDS if k.appliable)
        if _known_upstream(kind):
            return None, ("kind", f"{kind} ({api_version}) is not supported by the local "
                                  f"engine yet; it supports {supported}")
        return None, ("kind", f"unknown kind {kind!r}; the local engine supports {supported}")
    if api_version != info.api_version:
        return None, ("apiVersion", f"{kind} is served as apiVersion {info.api_version!r}, "
                                    f"not {api_version!r}")
    if not info.appliable:
        return None, ("kind", f"{kind} objects are created by the local engine and cannot be "
                              "applied; use 'label' to change their labels")
    return info, None


def check(doc: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Validate one document: (defaulted copy, []) or (None, problems)."""
    info, problem = _kind_of(doc)
    if info is None:
        return None, [problem] if problem else []
    cls = _model(info.model)
    assert cls is not None, f"kinds table names an unknown model {info.model}"
    body = drop_nulls(copy.deepcopy(dict(doc)))
    body.pop("status", None)  # the server ignores status written in a manifest
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    problems: list[Problem] = []
    if "metadata" not in body:
        problems.append(("metadata", "required value is missing"))
    _walk_model(body, cls, "", problems)
    if problems:
        return None, problems
    check_kind(info, body, problems)
    if problems:
        return None, problems
    apply_defaults(info, body)
    return body, []


def _describe(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{doc.get('kind', '?')} {name}" if name else str(doc.get("kind", "?"))


def _error(doc: Mapping[str, Any], problems: list[Problem], source: str,
           index: int) -> ManifestError:
    path, message = problems[0]
    if len(problems) > 1:
        rest = "\n".join(f"  - field {p}: {m}" if p else f"  - {m}" for p, m in problems[1:])
        more = len(problems) - 1
        message = f"{message}\n  and {more} more problem(s) in {_describe(doc)}:\n{rest}"
    return ManifestError(message, source=source, index=index, path=path)


def validate(doc: Mapping[str, Any], *, source: str, index: int) -> dict[str, Any]:
    """A validated, defaulted deep copy of ``doc``; ``ManifestError`` when it is refused."""
    result, problems = check(doc)
    if result is None:
        raise _error(doc, problems, source, index)
    return result


def validate_all(docs: Iterable[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    """Validate every document before any is applied; one ``ManifestError`` lists them all."""
    results: list[dict[str, Any]] = []
    errors: list[ManifestError] = []
    for index, doc in enumerate(docs):
        try:
            results.append(validate(doc, source=source, index=index))
        except ManifestError as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        listing = "\n".join(f"- {err}" for err in errors)
        raise ManifestError(f"{len(errors)} documents were refused; nothing was applied:\n"
                            f"{listing}", source=source)
    return results
