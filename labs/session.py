"""What every ``lab`` command needs: the catalogue, the learner's workspace and progress, and
the cluster the learner works on (engine chosen explicitly and explained)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from clusters import Cluster, Engine, choose_engine, get_engine
from clusters.context.engine import ContextSettings
from clusters.selection import Choice
from labs.catalogue import Catalogue, default_catalogue
from labs.progress import Progress
from labs.workspace import Workspace

DEFAULT_CLUSTER = "netlab"


@dataclass
class Session:
    engine_flag: str | None = None
    cluster_flag: str | None = None
    #: The context engine's settings (``--context``, ``--learner``, ...); None: from the
    #: environment.
    context: ContextSettings | None = None

    @cached_property
    def catalogue(self) -> Catalogue:
        return default_catalogue()

    @cached_property
    def workspace(self) -> Workspace:
        return Workspace()

    @cached_property
    def progress(self) -> Progress:
        return Progress(self.workspace.root / ".progress.json")

    @property
    def cluster_name(self) -> str:
        recorded = self.progress.as_dict().get("cluster")
        return self.cluster_flag or os.environ.get("LAB_CLUSTER") or recorded or DEFAULT_CLUSTER

    def choice(self) -> Choice:
        """The engine: --engine, LAB_ENGINE, the one the current lab was started on, detection."""
        if not self.engine_flag and not os.environ.get("LAB_ENGINE"):
            recorded = self.progress.as_dict().get("engine")
            if recorded:
                return Choice(recorded, f"the engine `lab start` used ({recorded})")
        return choose_engine(self.engine_flag)

    def engine(self) -> Engine:
        return get_engine(self.choice().name, context=self.context)

    def cluster(self) -> Cluster:
        return self.engine().connect(self.cluster_name)
