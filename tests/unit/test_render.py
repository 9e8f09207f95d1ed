"""kubectl-like tables of ``lab get``: Services, EndpointSlices (with why endpoints are
missing) and the LABELS column."""

from __future__ import annotations

import pytest

from labs.cli import render


def svc(name: str, spec: dict, status: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "n", "labels": {"app": name}},
            "spec": spec, "status": status or {}}


def test_service_columns_read_like_kubectl(capsys: pytest.CaptureFixture[str]) -> None:
    render.objects("Service", [
        svc("web", {"type": "NodePort", "clusterIP": "10.96.0.5",
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
        svc("lb", {"type": "LoadBalancer", "clusterIP": "10.96.0.6", "ports": [{"port": 443}]},
            {"loadBalancer": {"ingress": [{"ip": "172.30.0.200"}]}}),
        svc("alias", {"type": "ExternalName", "externalName": "api.n.svc.cluster.local"}),
    ], wide=False, show_ns=False, show_labels=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                                "LABELS"]
    assert lines[1].split()[:5] == ["web", "NodePort", "10.96.0.5", "<none>", "80:30080/TCP"]
    assert lines[1].split()[-1] == "app=web"
    assert lines[2].split()[3] == "172.30.0.200"
    assert lines[3].split()[:4] == ["alias", "ExternalName", "<none>", "api.n.svc.cluster.local"]


def test_endpointslice_table_says_why_endpoints_are_missing(
        capsys: pytest.CaptureFixture[str]) -> None:
    why = 'port "http": targetPort "web" is not declared by pod api-1'
    render.objects("EndpointSlice", [{
        "metadata": {"name": "api-abcde", "annotations": {render.UNRESOLVED_ANNOTATION: why}},
        "addressType": "IPv4", "ports": [], "endpoints": [],
    }], wide=False, show_ns=False)
    out = capsys.readouterr().out
    assert "<unset>" in out and "Why endpoints are missing:" in out and why in out


def test_networkpolicy_columns_read_like_kubectl(capsys: pytest.CaptureFixture[str]) -> None:
    def netpol(name: str, spec: dict) -> dict:
        return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "lab"},
                "spec": spec}

    render.objects("NetworkPolicy", [
        netpol("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        netpol("api", {"podSelector": {"matchLabels": {"tier": "b", "app": "api"},
                                       "matchExpressions": [
                                           {"key": "env", "operator": "In",
                                            "values": ["dev", "prod"]}]},
                       "policyTypes": ["Ingress"]}),
    ], wide=True, show_ns=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "POD-SELECTOR", "AGE", "POLICY-TYPES"]
    assert lines[1].split()[:2] == ["deny", "<none>"]
    assert lines[1].split()[-1] == "Ingress,Egress"
    assert lines[2].split()[:2] == ["api", "app=api,tier=b,env"]
    assert "env in (dev,prod)" in lines[2]
