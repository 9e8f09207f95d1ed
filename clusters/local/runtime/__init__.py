"""What runs "in" a local-engine pod: behaviours chosen by image and args, never commands.

``plan_pod`` decides (pure), :class:`PodRuntime` serves the plan on sockets inside the pod's
network namespace, :class:`ReadinessProber` probes it from the node like the kubelet.
"""

from __future__ import annotations

from clusters.local.runtime.plan import (
    SCTP_WARNING,
    ContainerPlan,
    ImageRef,
    PodPlan,
    ServerSpec,
    parse_image,
    plan_pod,
)
from clusters.local.runtime.pods import ContainerState, PodRuntime
from clusters.local.runtime.readiness import ProbeTiming, ReadinessProber
from clusters.local.runtime.servers import PodIdentity, RunningServer, start_server

__all__ = [
    "SCTP_WARNING",
    "ContainerPlan",
    "ContainerState",
    "ImageRef",
    "PodIdentity",
    "PodPlan",
    "PodRuntime",
    "ProbeTiming",
    "ReadinessProber",
    "RunningServer",
    "ServerSpec",
    "parse_image",
    "plan_pod",
    "start_server",
]
