"""Add-ons a lab may ask for in ``lab.yaml`` (``cluster.addons``), and what each provides.

The names are engine-neutral. The kind engine installs them (:mod:`clusters.kind.addons`);
the local engine has none of them and says so before creating anything; on a shared
cluster (the context engine) nothing is installed, so what an add-on provides must already
be there, and detection says whether it is. Each add-on provides one capability, the field
of :class:`clusters.engine.Capabilities` a lab can rely on once the cluster is up.
"""

from __future__ import annotations

from collections.abc import Sequence

#: name -> (what it gives a lab, the Capabilities field it provides)
ADDONS: dict[str, tuple[str, str]] = {
    "ingress": ("an Ingress controller with IngressClass nginx", "ingress"),
    "gateway": ("Gateway API CRDs and an implementation (GatewayClass netlab)", "gateway"),
    "load-balancer": ("LoadBalancer Services get an external address", "load_balancer"),
    "istio": ("the Istio service mesh in sidecar mode", "istio"),
}


def check_addons(addons: Sequence[str]) -> None:
    """ValueError naming the choices when ``addons`` holds a name that does not exist."""
    unknown = [a for a in addons if a not in ADDONS]
    if unknown:
        raise ValueError(f"unknown add-on{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; choose from: {', '.join(ADDONS)}")


def provided(addon: str) -> str:
    """The Capabilities field ``addon`` provides."""
    return ADDONS[addon][1]
