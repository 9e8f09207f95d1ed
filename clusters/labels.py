"""Label syntax and LabelSelector semantics: engine-neutral, used by every engine and the grader.

Every query by label and every label a manifest carries goes through these rules, so they
live in one place outside any engine: :func:`label_key_error` / :func:`label_value_error`
say why a key or value is refused, :func:`matches_selector` evaluates a LabelSelector
against labels, :func:`parse_selector` turns a kubectl-style ``-l`` string into one and
:func:`format_selector` writes one back in that syntax (for messages people read).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "format_labels",
    "format_selector",
    "label_key_error",
    "label_value_error",
    "matches_selector",
    "parse_selector",
]

# ---------------------------------------------------------------- label syntax

_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_error(key: object) -> str | None:
    """Why ``key`` is not a valid label (or annotation) key, or None when it is.

    A key is ``[prefix/]name``: name at most 63 characters of alphanumerics, '-', '_' and
    '.', starting and ending alphanumeric; prefix a DNS subdomain of at most 253.
    """
    if not isinstance(key, str):
        return f"key {key!r} must be a string"
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return f"key {key!r}: prefix part must not be empty"
    if slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return (f"key {key!r}: prefix part must be a lowercase DNS subdomain of at most 253 "
                "characters (lowercase alphanumerics, '-' and '.')")
    if not name:
        return f"key {key!r}: name part must not be empty"
    if len(name) > 63:
        return f"key {key!r}: name part must be no more than 63 characters"
    if not _NAME_PART.match(name):
        return (f"key {key!r}: name part must consist of alphanumeric characters, '-', '_' or "
                "'.', and must start and end with an alphanumeric character")
    return None


def label_value_error(value: object) -> str | None:
    """Why ``value`` is not a valid label value (empty is valid), or None when it is."""
    if not isinstance(value, str):
        return f"value {value!r} must be a string (quote it in YAML)"
    if len(value) > 63:
        return f"value {value!r} must be no more than 63 characters"
    if value and not _NAME_PART.match(value):
        return (f"value {value!r} must consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character")
    return None


# ---------------------------------------------------------------- selectors

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def matches_selector(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    """LabelSelector semantics: every matchLabels pair AND every matchExpressions entry.

    ``{}`` matches everything. ``NotIn`` and ``DoesNotExist`` match objects without the key.
    An unknown operator raises ``ValueError``.
    """
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or ()
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            raise ValueError(f"unknown selector operator {op!r}; expected one of {_OPERATORS}")
        if not ok:
            return False
    return True


def _split_top_level(text: str) -> Iterator[str]:
    """Split on commas that are not inside parentheses."""
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in selector {text!r}")
        elif ch == "," and depth == 0:
            yield text[start:i]
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced '(' in selector {text!r}")
    yield text[start:]


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")


def parse_selector(text: str) -> dict[str, Any]:
    """Parse a kubectl-style selector (``a=b,c!=d,e in (x,y),!f,g``) into a LabelSelector.

    ``k=v`` / ``k==v`` become matchLabels; ``k!=v`` NotIn; ``k in (..)`` In; ``k notin (..)``
    NotIn; ``k`` Exists; ``!k`` DoesNotExist. Raises ``ValueError`` naming the bad part.
    """
    match_labels: dict[str, str] = {}
    exprs: list[dict[str, Any]] = []
    if not text.strip():
        return {}
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise ValueError(f"empty requirement in selector {text!r}")
        key: str
        if m := _SET_RE.match(part):
            key, op = m.group(1), "In" if m.group(2) == "in" else "NotIn"
            values = [v.strip() for v in m.group(3).split(",")]
            if values == [""]:
                raise ValueError(f"{part!r}: '{m.group(2)}' needs at least one value")
            exprs.append({"key": key, "operator": op, "values": values})
        elif "!=" in part:
            key, _, value = (s.strip() for s in part.partition("!="))
            values = [value]
            exprs.append({"key": key, "operator": "NotIn", "values": values})
        elif "=" in part:
            key, _, value = (s.strip() for s in part.replace("==", "=", 1).partition("="))
            values = [value]
            if key in match_labels and match_labels[key] != value:
                exprs.append({"key": key, "operator": "In", "values": values})
            else:
                match_labels[key] = value
        elif part.startswith("!"):
            key, values = part[1:].strip(), []
            exprs.append({"key": key, "operator": "DoesNotExist"})
        else:
            key, values = part, []
            exprs.append({"key": key, "operator": "Exists"})
        if " " in key or any(c in key for c in "()=!"):
            raise ValueError(f"cannot parse selector requirement {part!r}")
        problem = label_key_error(key) or next(
            (e for e in map(label_value_error, values) if e), None)
        if problem:
            raise ValueError(f"bad selector requirement {part!r}: {problem}")
    selector: dict[str, Any] = {}
    if match_labels:
        selector["matchLabels"] = match_labels
    if exprs:
        selector["matchExpressions"] = exprs
    return selector


def format_selector(selector: Mapping[str, Any]) -> str:
    """Write a LabelSelector in kubectl syntax (``app=api,tier in (a,b),!legacy``).

    The inverse of :func:`parse_selector` for display: ``{}`` (which matches everything)
    gives ``""``; callers word that case themselves ("every pod").
    """
    parts = [f"{key}={value}" for key, value in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or ():
        key, op = expr.get("key"), expr.get("operator")
        values = ",".join(str(v) for v in expr.get("values") or ())
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {op} ({values})")
    return ",".join(parts)


def format_labels(labels: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` sorted by key, or ``(no labels)``: how messages show an object's labels."""
    if not labels:
        return "(no labels)"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))
