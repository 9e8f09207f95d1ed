"""Does a kubeconfig context look like production? Then the context engine refuses it.

Labs create and delete namespaces, pods and policies, and their probes send traffic; none of
that belongs on a production cluster. Nothing in a kubeconfig says "production" for sure, so
the check reads the names people give production clusters: the context, its cluster and
user entries, and the API server's host name, split into words. A word such as ``prod``,
``production``, ``prd`` or ``live`` is a signal; ``--allow-production`` overrides it (and
is recorded, so the learner saw the warning once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Words that mark production in names (compared whole, case-insensitive).
PRODUCTION_WORDS = frozenset({"prod", "production", "prd", "live"})


@dataclass(frozen=True)
class ContextInfo:
    """One kubeconfig context, as the file describes it."""

    name: str
    cluster: str = ""
    user: str = ""
    server: str = ""
    namespace: str = ""


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def production_signals(info: ContextInfo) -> list[str]:
    """Why ``info`` looks like production, one phrase per signal (empty: it does not)."""
    host = urlsplit(info.server).hostname or "" if info.server else ""
    found = []
    for what, text in (("context name", info.name), ("cluster name", info.cluster),
                       ("user name", info.user), ("API server host", host)):
        hits = sorted({w for w in _words(text) if w in PRODUCTION_WORDS})
        if hits:
            found.append(f"the {what} {text!r} contains {', '.join(repr(h) for h in hits)}")
    return found
