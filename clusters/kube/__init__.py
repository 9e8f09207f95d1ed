"""Engine-neutral access to a real Kubernetes API server (used by the kind and context engines).

``KubeApi`` (transport) sends REST requests through the ``kubernetes`` client; ``resources``
maps kinds to paths by discovery; ``objects`` applies (server-side), gets, deletes and labels;
``waits`` waits for convergence and namespace resets; ``KubeCluster`` puts them together as a
:class:`clusters.engine.Cluster`.
"""

from __future__ import annotations

from clusters.kube.cluster import KubeCluster
from clusters.kube.transport import (
    ApiConflict,
    ApiError,
    ApiForbidden,
    ApiInvalid,
    ApiNotFound,
    ApiUnauthorized,
    ApiUnreachable,
    KubeApi,
    KubeconfigError,
)

__all__ = [
    "ApiConflict",
    "ApiError",
    "ApiForbidden",
    "ApiInvalid",
    "ApiNotFound",
    "ApiUnauthorized",
    "ApiUnreachable",
    "KubeApi",
    "KubeCluster",
    "KubeconfigError",
]
