"""Where a value sits in a YAML file, so that errors can say ``lab.yaml:14: tasks[0].title``.

``yaml.safe_load`` throws positions away. We compose the document into PyYAML's node tree
instead (which keeps a ``start_mark`` on every node), construct the plain data from that
same tree, and keep the tree to answer "which line holds ``tasks[0].checks[1]``?" later,
when pydantic or a cross-check reports a problem at that path.

Paths are tuples of mapping keys (``str``) and sequence indexes (``int``), the same shape
as pydantic's error ``loc``. Line numbers are 1-based, like every editor shows them.
This module knows YAML and pydantic, not labs: :class:`Problem` is any located complaint.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PathPart = str | int
YamlPath = tuple[PathPart, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, located as precisely as we can."""

    file: Path
    line: int | None
    path: str  # a field path such as ``tasks[0].checks[1]``; empty when not about a field
    message: str

    def __str__(self) -> str:
        where = display_path(self.file) + (f":{self.line}" if self.line else "")
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def display_path(path: Path) -> str:
    """A path as a person wants to read it: relative to the working directory when inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ---- parsing -----------------------------------------------------------------------------


class DuplicateKey(yaml.YAMLError):
    """A mapping repeats a key; ``line`` is the (1-based) line of the second occurrence."""

    def __init__(self, path: YamlPath, key: str, line: int) -> None:
        self.path = (*path, key)
        self.key = key
        self.line = line
        super().__init__(f"duplicate key {key!r}")


def parse(text: str) -> tuple[Node | None, Any]:
    """Parse one YAML document; return its node tree and the plain data built from it.

    Raises ``yaml.YAMLError`` (with a ``problem_mark``) on a syntax error, and
    :class:`DuplicateKey` when a mapping repeats a key, which ``safe_load`` would silently
    resolve by keeping the last value.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _refuse_duplicate_keys(node, ())
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_duplicate_keys(node: Node, path: YamlPath) -> None:
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
            if key in seen:
                raise DuplicateKey(path, key, key_node.start_mark.line + 1)
            seen.add(key)
            _refuse_duplicate_keys(value_node, (*path, key))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, (*path, index))


def yaml_error_problem(file: Path, err: yaml.YAMLError) -> Problem:
    """A parse error of ``file`` as a located problem."""
    if isinstance(err, DuplicateKey):
        message = f"duplicate key {err.key!r} (each field may appear once)"
        return Problem(file, err.line, format_path(err.path), message)
    if isinstance(err, yaml.MarkedYAMLError):
        line = err.problem_mark.line + 1 if err.problem_mark else None
        message = " ".join(p for p in (err.context, err.problem) if p)
        return Problem(file, line, "", f"invalid YAML: {message}")
    return Problem(file, None, "", f"invalid YAML: {err}")


# ---- locating ----------------------------------------------------------------------------


def line_of(tree: Node | None, path: Sequence[PathPart], *, nearest: bool = False) -> int | None:
    """The 1-based line of the value at ``path``, or None when the path is not in the tree.

    For a mapping key the line of the *key* is given (``tasks:`` rather than the first item
    below it). With ``nearest=True`` a missing path answers with the line of its deepest
    existing ancestor, which is where a missing field belongs.
    """
    if tree is None:
        return None
    line = tree.start_mark.line + 1
    node: Node = tree
    for part in path:
        found = _child(node, part)
        if found is None:
            return line if nearest else None
        line, node = found
    return line


def node_at(tree: Node | None, path: Sequence[PathPart]) -> Node | None:
    """The node at ``path``, or None."""
    node = tree
    for part in path:
        found = _child(node, part) if node is not None else None
        node = found[1] if found else None
    return node


def _child(node: Node, part: PathPart) -> tuple[int, Node] | None:
    """(line to report, child node) for one step of a path, or None."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                return key_node.start_mark.line + 1, value_node
        return None
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item: Node = node.value[part]
        return item.start_mark.line + 1, item
    return None


def format_path(path: Sequence[PathPart]) -> str:
    """``("tasks", 0, "checks", 1)`` → ``tasks[0].checks[1]``; the empty path is ``(top level)``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


# ---- pydantic errors as located problems ---------------------------------------------------

_EXPECTED = {
    "string_type": "text", "int_type": "a whole number", "list_type": "a list",
    "model_type": "a mapping", "dict_type": "a mapping", "bool_type": "true or false",
}


def validation_problems(
    err: ValidationError, file: Path, tree: Node | None, model: type[BaseModel]
) -> list[Problem]:
    """Each pydantic error of validating ``model`` against ``file`` as a located problem."""
    return [_problem(error, file, tree, model) for error in err.errors()]


def _problem(error: Any, file: Path, tree: Node | None, model: type[BaseModel]) -> Problem:
    loc: YamlPath = tuple(error["loc"])
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        field = str(loc[-1])
        known = sorted(_model_at(model, loc[:-1]).model_fields)
        guess = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
        tip = f"did you mean {guess[0]!r}?" if guess else f"known fields: {', '.join(known)}"
        message = f"unknown field {field!r} ({tip})"
    elif kind == "missing":
        message = "required field is missing"
    elif kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {describe(value)}"
        scalar = node_at(tree, loc)
        if kind == "string_type" and isinstance(scalar, ScalarNode) and value is not None:
            message += f' (put it in quotes: "{scalar.value}")'  # id: 01 is the number 1
    elif kind == "too_short" and error.get("ctx", {}).get("min_length") == 1:
        message = "must not be empty"
    elif kind == "value_error":
        message = str(error["ctx"]["error"])
    else:
        message = f"{error['msg']} (got {_show(value)})"
    return Problem(file, line_of(tree, loc, nearest=True), format_path(loc), message)


def _model_at(model: type[BaseModel], loc: YamlPath) -> type[BaseModel]:
    """The model class that validates the mapping at ``loc`` (ints are list items)."""
    for part in loc:
        if isinstance(part, str) and part in model.model_fields:
            model = _find_model(model.model_fields[part].annotation) or model
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if (found := _find_model(arg)) is not None:
            return found
    return None


def describe(value: Any) -> str:
    """What a YAML value is, in words: ``the number 1``, ``a list``, ``an empty value``."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {_show(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list) else type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
