"""Label syntax and LabelSelector semantics for the local engine: a re-export.

The pure label rules moved to :mod:`clusters.labels` so that engine-neutral code (the
NetworkPolicy engine in :mod:`clusters.netpol`, the grader) can use them without importing
the local engine. This module keeps the old import path working for the store, validation
and the scheduler.
"""

from __future__ import annotations

from clusters.labels import (
    format_labels,
    format_selector,
    label_key_error,
    label_value_error,
    matches_selector,
    parse_selector,
)

__all__ = [
    "format_labels",
    "format_selector",
    "label_key_error",
    "label_value_error",
    "matches_selector",
    "parse_selector",
]
