"""The grading clusters of one batch: named, created and removed by this run alone.

Names are ``grd<lab id>-<tag>-<k>`` (``grd01-3fa9-1``), at most 20 characters (the local
engine's limit). The tag is random and picked so that no cluster of that name exists yet;
the pool records a name before it asks the engine to create it, and deletes only the names
it recorded, in reverse order, so a batch never removes a cluster it did not make, and
Ctrl-C while a cluster is being built still removes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from clusters import Cluster, ClusterExists, ClusterProfile, Engine

MAX_NAME = 20
PREFIX = "grd"
TAG_ATTEMPTS = 64


class PoolError(Exception):
    """No usable name or cluster for the batch."""


def cluster_names(lab_id: str, tag: str, jobs: int) -> list[str]:
    names = [f"{PREFIX}{lab_id}-{tag}-{k}" for k in range(1, jobs + 1)]
    too_long = [n for n in names if len(n) > MAX_NAME]
    if too_long:
        raise PoolError(f"cluster name {too_long[0]!r} is longer than {MAX_NAME} characters")
    return names


def pick_names(engine: Engine, lab_id: str, jobs: int,
               new_tag: Callable[[], str] = lambda: secrets.token_hex(2)) -> list[str]:
    """``jobs`` names of which none exists on ``engine`` (nor any other ``grd…-<tag>-*``)."""
    existing = {info.name for info in engine.list()}
    for _ in range(TAG_ATTEMPTS):
        tag = new_tag()
        names = cluster_names(lab_id, tag, jobs)
        prefix = f"{PREFIX}{lab_id}-{tag}-"
        if not any(e.startswith(prefix) for e in existing) and \
                all(engine.info(n) is None for n in names):
            return names
    raise PoolError(f"no free cluster name after {TAG_ATTEMPTS} tags; remove old "
                    f"{PREFIX}{lab_id}-* clusters (lab cluster list)")


class ClusterPool:
    """The clusters a batch made; :meth:`close` deletes exactly those, newest first."""

    def __init__(self, engine: Engine, profile: ClusterProfile,
                 say: Callable[[str], None] = lambda s: None) -> None:
        self.engine = engine
        self.profile = profile
        self.say = say
        self.created: list[str] = []  # recorded before create: ours even when half-built
        self.failed: list[str] = []  # "name: why" for clusters that could not be made

    def create(self, name: str) -> Cluster:
        """Create ``name``; it must not exist (it is then ours to delete, whatever happens)."""
        if self.engine.info(name) is not None:
            raise ClusterExists(f"cluster {name} exists already; a batch only uses its own")
        self.created.append(name)
        try:
            return self.engine.create(name, self.profile)
        except ClusterExists:
            self.created.remove(name)  # someone else made it meanwhile: never ours to delete
            raise

    def recreate(self, name: str) -> Cluster:
        """Delete and create again one of this pool's clusters (``--fresh``)."""
        if name not in self.created:
            raise PoolError(f"cluster {name} was not made by this batch; not touching it")
        self.engine.delete(name)
        return self.engine.create(name, self.profile)

    def close(self, keep: bool = False) -> list[str]:
        """Delete this pool's clusters in reverse order (all of them, even if one fails);
        with ``keep`` leave them. Returns the names deleted (or kept)."""
        names = list(reversed(self.created))
        if keep:
            return names
        errors = []
        for name in names:
            try:
                self.say(f"Deleting cluster {name}")
                self.engine.delete(name)
            except Exception as err:  # keep going: the other clusters must go too
                errors.append(f"{name}: {err}")
        self.created = []
        if errors:
            raise PoolError("could not delete every grading cluster:\n" + "\n".join(errors))
        return names
