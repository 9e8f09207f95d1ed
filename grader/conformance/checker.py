"""Walking a YAML file's data alongside its node tree, collecting located problems.

PyYAML's node tree keeps a ``start_mark`` on every node; :class:`Checker` uses it to say
``services.yaml:142: cases[3].steps[0].probe: ...`` for any path into the data. Embedded
manifests (YAML in a YAML string) are located relative to the block that holds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class Checker:
    """Collects located problems while walking the data alongside its node tree."""

    def __init__(self, file: Path, tree: Node | None) -> None:
        self.file = file
        self.tree = tree
        self.problems: list[str] = []

    def line(self, path: Sequence[str | int]) -> int:
        node = self.tree
        line = node.start_mark.line + 1 if node is not None else 1
        for part in path:
            child: Node | None = None
            if isinstance(node, MappingNode):
                for key, value in node.value:
                    if isinstance(key, ScalarNode) and key.value == str(part):
                        child, line = value, key.start_mark.line + 1
            elif isinstance(node, SequenceNode) and isinstance(part, int) \
                    and part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line

    def node(self, path: Sequence[str | int]) -> Node | None:
        node = self.tree
        for part in path:
            if isinstance(node, MappingNode):
                node = next((v for k, v in node.value
                             if isinstance(k, ScalarNode) and k.value == str(part)), None)
            elif isinstance(node, SequenceNode) and isinstance(part, int) \
                    and part < len(node.value):
                node = node.value[part]
            else:
                return None
        return node

    def add(self, path: Sequence[str | int], message: str, line: int | None = None) -> None:
        where = f"{self.file.name}:{line or self.line(path)}"
        self.problems.append(f"{where}: {_path_text(path)}: {message}")

    def mapping(self, value: Any, path: Sequence[str | int], allowed: Sequence[str],
                required: Sequence[str] = ()) -> bool:
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping, got {type(value).__name__}")
            return False
        for key in value:
            if key not in allowed:
                self.add([*path, str(key)], f"unknown field {key!r} "
                                            f"(expected one of {', '.join(allowed)})")
        for key in required:
            if key not in value:
                self.add(path, f"required field {key!r} is missing")
        return True

    def typed(self, value: Any, path: Sequence[str | int], kind: type | tuple[type, ...],
              what: str) -> bool:
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            ok = False
        else:
            ok = isinstance(value, kind)
        if not ok:
            self.add(path, f"expected {what}, got {value!r}")
        return ok

    def manifests(self, text: Any, path: Sequence[str | int]) -> list[dict[str, Any]]:
        """The documents of an embedded multi-document YAML string, each checked."""
        if not isinstance(text, str):
            self.add(path, "expected multi-document YAML text (use a `|` block)")
            return []
        holder = self.node(path)
        first = holder.start_mark.line + 1 if holder is not None else self.line(path)
        # A block scalar's content starts on the line after its `|` indicator.
        offset = first if isinstance(holder, ScalarNode) and holder.style in ("|", ">") else first - 1
        docs: list[dict[str, Any]] = []
        try:
            nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = offset + mark.line + 1 if mark is not None else first
            self.add(path, f"embedded manifest is not valid YAML: {getattr(err, 'problem', err)}",
                     line=line)
            return []
        for index, node in enumerate(nodes):
            if node is None:
                continue
            line = offset + node.start_mark.line + 1
            doc = yaml.SafeLoader("").construct_document(node)
            if not isinstance(doc, dict):
                self.add(path, f"document {index + 1} is not a mapping", line=line)
                continue
            meta = doc.get("metadata")
            missing = [k for k in ("apiVersion", "kind") if not doc.get(k)]
            if not isinstance(meta, dict) or not meta.get("name"):
                missing.append("metadata.name")
            if missing:
                self.add(path, f"document {index + 1} lacks {', '.join(missing)}", line=line)
                continue
            docs.append(doc)
        return docs
