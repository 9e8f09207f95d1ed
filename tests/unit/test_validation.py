"""Manifest validation: every refusal names its path, every default is filled in."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusters.errors import ManifestError
from clusters.local import validation
from clusters.local.kinds import resolve_kind
from clusters.local.validation import load_documents, validate, validate_all

ACCEPTANCE = Path(__file__).resolve().parents[2] / "acceptance"  # shipped with the repo


def pod(**spec_extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
                                 "ports": [{"containerPort": 80, "name": "http"}]}],
                 **spec_extra},
    }


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }


def service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}


def refused(doc: dict[str, Any]) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        validate(doc, source="t.yaml", index=3)
    err = info.value
    assert err.source == "t.yaml" and err.index == 3
    return err


# ---------------------------------------------------------------- loading


def test_load_skips_empty_documents_and_expands_lists() -> None:
    text = """
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
---
---
apiVersion: v1
kind: Namespace
metadata: {name: n}
"""
    docs = load_documents(text, "f.yaml")
    assert [d["metadata"]["name"] for d in docs] == ["a", "b", "n"]


def test_yaml_syntax_error_names_the_line() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n"
    with pytest.raises(ManifestError) as info:
        load_documents(text, "bad.yaml")
    assert info.value.source == "bad.yaml"
    assert re.search(r"line \d+", str(info.value))
    text = "a: 1\nb: 2\n c: 3\n"
    with pytest.raises(ManifestError, match="line 3"):
        load_documents(text, "bad.yaml")


def test_a_document_that_is_not_a_mapping_names_its_index() -> None:
    with pytest.raises(ManifestError) as info:
        load_documents("apiVersion: v1\nkind: Pod\n---\n- just\n- a list\n", "f.yaml")
    assert info.value.index == 1
    assert "mapping" in info.value.message


def test_timestamps_stay_strings() -> None:
    (doc,) = load_documents(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {day: 2024-01-02}\n", "f")
    assert doc["data"]["day"] == "2024-01-02"
    assert validate(doc, source="f", index=0)["data"]["day"] == "2024-01-02"


# ---------------------------------------------------------------- kinds and versions


def test_wrong_api_version_says_which_is_expected() -> None:
    doc = deployment()
    doc["apiVersion"] = "v1"
    err = refused(doc)
    assert err.path == "apiVersion"
    assert "'apps/v1'" in err.message


def test_unsupported_upstream_kind_is_refused_clearly() -> None:
    err = refused({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": "i"}})
    assert "not supported by the local engine yet" in err.message


def test_unknown_kind_and_missing_kind() -> None:
    assert "unknown kind" in refused({"apiVersion": "v1", "kind": "Pdo",
                                      "metadata": {"name": "x"}}).message
    assert refused({"apiVersion": "v1", "metadata": {"name": "x"}}).path == "kind"
    assert refused({"kind": "Pod", "metadata": {"name": "x"}}).path == "apiVersion"


def test_nodes_cannot_be_applied() -> None:
    err = refused({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    assert "cannot be applied" in err.message


def test_resolve_kind_accepts_kubectl_names() -> None:
    for text, kind in [("po", "Pod"), ("pods", "Pod"), ("Pod", "Pod"), ("deploy", "Deployment"),
                       ("deployments.apps", "Deployment"), ("deployments.v1.apps", "Deployment"),
                       ("rs", "ReplicaSet"), ("ds", "DaemonSet"), ("sts", "StatefulSet"),
                       ("ns", "Namespace"), ("no", "Node"), ("nodes", "Node"),
                       ("cm", "ConfigMap"), ("secret", "Secret"), ("secrets", "Secret"),
                       ("svc", "Service"), ("netpol", "NetworkPolicy"),
                       ("networkpolicies.networking.k8s.io", "NetworkPolicy"),
                       ("endpointslices", "EndpointSlice")]:
        assert resolve_kind(text).kind == kind, text
    with pytest.raises(ValueError, match=r"accepted names: .*deploy"):
        resolve_kind("ingress")


def test_nodes_are_made_by_the_engine_not_applied() -> None:
    assert not resolve_kind("node").appliable and not resolve_kind("node").namespaced


# ---------------------------------------------------------------- schema pass


def test_unknown_field_has_full_path_and_suggestion() -> None:
    doc = pod()
    doc["spec"]["containers"][0]["portz"] = doc["spec"]["containers"][0].pop("ports")
    err = refused(doc)
    assert err.path == "spec.containers[0].portz"
    assert "did you mean ports?" in err.message


def test_unknown_top_level_and_metadata_fields() -> None:
    doc = pod()
    doc["specs"] = doc.pop("spec")
    assert "did you mean spec?" in str(refused(doc))
    doc = pod()
    doc["metadata"]["label"] = {"a": "b"}
    err = refused(doc)
    assert err.path == "metadata.label" and "did you mean labels?" in err.message


def test_unknown_field_without_close_match_has_no_suggestion() -> None:
    doc = pod()
    doc["spec"]["containers"][0]["zzzqqq"] = 1
    err = refused(doc)
    assert err.path == "spec.containers[0].zzzqqq" and "did you mean" not in err.message


@pytest.mark.parametrize(
    ("mutate", "path", "expected"),
    [
        (lambda d: d["spec"]["containers"][0]["ports"][0].update(containerPort="80"),
         "spec.containers[0].ports[0].containerPort", "expected integer"),
        (lambda d: d["spec"]["containers"][0].update(stdin="yes please"),
         "spec.containers[0].stdin", "expected boolean"),
        (lambda d: d["spec"]["containers"][0].update(args="serve"),
         "spec.containers[0].args", "expected a list"),
        (lambda d: d["metadata"].update(labels={"app": 3}),
         "metadata.labels[app]", "expected string"),
        (lambda d: d["spec"].update(containers={"name": "c"}),
         "spec.containers", "expected a list"),
        (lambda d: d["spec"]["containers"][0].update(env=[{"name": "A", "value": 8080}]),
         "spec.containers[0].env[0].value", "expected string"),
        (lambda d: d["spec"].update(terminationGracePeriodSeconds=True),
         "spec.terminationGracePeriodSeconds", "expected integer"),
    ],
)
def test_type_mismatches(mutate: Any, path: str, expected: str) -> None:
    doc = pod()
    mutate(doc)
    err = refused(doc)
    assert err.path == path
    assert expected in err.message


def test_int_or_string_and_quantities_accept_both() -> None:
    dep = deployment()
    dep["spec"]["strategy"] = {"type": "RollingUpdate",
                               "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "50%"}}
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": 1, "memory": "64Mi"}, "requests": {"cpu": 0.5}}
    validate(dep, source="t", index=0)
    svc = service()
    svc["spec"]["ports"][0]["targetPort"] = "http"
    assert validate(svc, source="t", index=0)["spec"]["ports"][0]["targetPort"] == "http"
    svc["spec"]["ports"][0]["targetPort"] = [80]
    assert refused(svc).path == "spec.ports[0].targetPort"


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["spec"].pop("containers"), "spec.containers"),
        (lambda d: d["spec"]["containers"][0].pop("name"), "spec.containers[0].name"),
        (lambda d: d["spec"]["containers"][0]["ports"][0].pop("containerPort"),
         "spec.containers[0].ports[0].containerPort"),
        (lambda d: d["spec"]["containers"][0].pop("image"), "spec.containers[0].image"),
        (lambda d: d["metadata"].pop("name"), "metadata.name"),
        (lambda d: d.pop("spec"), "spec"),
    ],
)
def test_required_fields(mutate: Any, path: str) -> None:
    doc = pod()
    mutate(doc)
    err = refused(doc)
    assert err.path == path
    assert "required" in err.message


def test_deployment_requires_selector() -> None:
    dep = deployment()
    del dep["spec"]["selector"]
    err = refused(dep)
    assert err.path == "spec.selector" and "required" in err.message


def test_required_attrs_from_old_style_setters() -> None:
    """Clients before the pydantic rewrite signal required attributes from their setters."""

    class OldStyle:
        openapi_types = {"name": "str", "image": "str"}
        attribute_map = {"name": "name", "image": "image"}

        @property
        def name(self) -> str:
            return ""

        @name.setter
        def name(self, value: str | None) -> None:
            if self.local_vars_configuration.client_side_validation and value is None:
                raise ValueError("Invalid value for `name`, must not be `None`")

        @property
        def image(self) -> str:
            return ""

        @image.setter
        def image(self, value: str | None) -> None:
            pass

        local_vars_configuration: Any

    assert validation.required_attrs(OldStyle) == frozenset({"name"})


def test_nulls_count_as_absent() -> None:
    doc = pod()
    doc["metadata"]["creationTimestamp"] = None
    doc["status"] = {}
    doc["spec"]["containers"][0]["resources"] = None
    out = validate(doc, source="t", index=0)
    assert "resources" not in out["spec"]["containers"][0] and "status" not in out


# ---------------------------------------------------------------- rules pass


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d["metadata"].update(name="Web_1"), "metadata.name", "DNS-1123 subdomain"),
        (lambda d: d["metadata"].update(name="a" * 254), "metadata.name", "253"),
        (lambda d: d["metadata"].update(namespace="My.NS"), "metadata.namespace", "DNS-1123 label"),
        (lambda d: d["metadata"].update(labels={"app": "-bad"}), "metadata.labels",
         "start and end"),
        (lambda d: d["metadata"].update(labels={"a" * 64: "x"}), "metadata.labels", "63"),
        (lambda d: d["metadata"].update(labels={"Bad.Prefix/k": "x"}), "metadata.labels", "prefix"),
        (lambda d: d["metadata"].update(labels={"k": "v" * 64}), "metadata.labels", "63"),
        (lambda d: d["metadata"].update(annotations={"bad key": "x"}),
         "metadata.annotations", "name part"),
        (lambda d: d["metadata"].update(generateName="web-", name=None),
         "metadata.generateName", "not supported"),
        (lambda d: d["spec"]["containers"][0].update(name="Web"),
         "spec.containers[0].name", "DNS-1123 label"),
        (lambda d: d["spec"]["containers"].append({"name": "c", "image": "x"}),
         "spec.containers[1].name", "duplicate"),
        (lambda d: d["spec"]["containers"][0]["ports"][0].update(containerPort=0),
         "spec.containers[0].ports[0].containerPort", "between 1 and 65535"),
        (lambda d: d["spec"]["containers"][0]["ports"][0].update(containerPort=70000),
         "spec.containers[0].ports[0].containerPort", "between 1 and 65535"),
        (lambda d: d["spec"]["containers"][0]["ports"][0].update(protocol="ICMP"),
         "spec.containers[0].ports[0].protocol", "'TCP', 'UDP', 'SCTP'"),
        (lambda d: d["spec"]["containers"][0]["ports"][0].update(name="a-very-long-port-name"),
         "spec.containers[0].ports[0].name", "15"),
        (lambda d: d["spec"]["containers"][0]["ports"][0].update(name="8080"),
         "spec.containers[0].ports[0].name", "at least one letter"),
        (lambda d: d["spec"]["containers"][0]["ports"][0].update(name="HTTP"),
         "spec.containers[0].ports[0].name", "lowercase"),
        (lambda d: d["spec"].update(restartPolicy="Sometimes"), "spec.restartPolicy", "Always"),
        (lambda d: d["spec"].update(dnsPolicy="Google"), "spec.dnsPolicy", "ClusterFirst"),
        (lambda d: d["spec"].update(containers=[]), "spec.containers", "at least one"),
        (lambda d: d["spec"]["containers"][0].update(volumeMounts=[{"name": "v",
                                                                    "mountPath": "/x"}]),
         "spec.containers[0].volumeMounts[0].name", "no volume named"),
        (lambda d: d["spec"].update(nodeSelector={"zone": "a b"}), "spec.nodeSelector", "zone"),
    ],
)
def test_pod_rules(mutate: Any, path: str, fragment: str) -> None:
    doc = pod()
    mutate(doc)
    if doc["metadata"].get("name") is None:
        doc["metadata"].pop("name", None)
    err = refused(doc)
    assert err.path == path, str(err)
    assert fragment in err.message


def test_namespace_and_service_names_are_labels() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}
    assert "DNS-1123 label" in refused(ns).message
    svc = service()
    svc["metadata"]["name"] = "1web"
    assert "DNS-1035" in refused(svc).message
    svc["metadata"]["name"] = "w" * 64
    assert refused(svc).path == "metadata.name"


def test_selector_must_match_template_labels() -> None:
    dep = deployment()
    dep["spec"]["selector"] = {"matchLabels": {"app": "api"}}
    err = refused(dep)
    assert err.path == "spec.template.metadata.labels"
    assert "does not match" in err.message
    dep["spec"]["selector"] = {"matchExpressions": [{"key": "tier", "operator": "In",
                                                     "values": ["fe"]}]}
    validate(dep, source="t", index=0)


def test_workload_rules() -> None:
    dep = deployment()
    dep["spec"]["selector"] = {}
    assert "empty selector" in refused(dep).message
    dep = deployment()
    dep["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert refused(dep).path == "spec.template.spec.restartPolicy"
    dep = deployment()
    dep["spec"]["replicas"] = -1
    assert refused(dep).path == "spec.replicas"
    dep = deployment()
    dep["spec"]["selector"]["matchExpressions"] = [{"key": "app", "operator": "In"}]
    assert refused(dep).path == "spec.selector.matchExpressions[0].values"
    dep["spec"]["selector"]["matchExpressions"] = [{"key": "app", "operator": "Has"}]
    assert refused(dep).path == "spec.selector.matchExpressions[0].operator"
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    err = refused(dep)
    assert err.path == "spec.template.spec.containers[0].imagee"
    assert "did you mean image?" in err.message


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda s: s["spec"].update(type="Internal"), "spec.type"),
        (lambda s: s["spec"].update(ports=[]), "spec.ports"),
        (lambda s: s["spec"].update(ports=[{"port": 80, "name": "a"}, {"port": 81}]),
         "spec.ports[1].name"),
        (lambda s: s["spec"].update(ports=[{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]),
         "spec.ports[1].name"),
        (lambda s: s["spec"]["ports"][0].update(port=0), "spec.ports[0].port"),
        (lambda s: s["spec"]["ports"][0].update(protocol="tcp"), "spec.ports[0].protocol"),
        (lambda s: s["spec"]["ports"][0].update(targetPort=70000), "spec.ports[0].targetPort"),
        (lambda s: s["spec"]["ports"][0].update(nodePort=30080), "spec.ports[0].nodePort"),
        (lambda s: s["spec"].update(type="NodePort", ports=[{"port": 80, "nodePort": 80}]),
         "spec.ports[0].nodePort"),
        (lambda s: s["spec"].update(sessionAffinity="Sticky"), "spec.sessionAffinity"),
        (lambda s: s["spec"].update(type="ExternalName"), "spec.externalName"),
    ],
)
def test_service_rules(mutate: Any, path: str) -> None:
    svc = service()
    mutate(svc)
    assert refused(svc).path == path


def test_networkpolicy_rules() -> None:
    base: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "np", "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                 "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                    "except": ["10.1.0.0/16"]}}],
                              "ports": [{"port": 80}]}]},
    }
    out = validate(base, source="t", index=0)
    assert out["spec"]["policyTypes"] == ["Ingress"]
    assert out["spec"]["ingress"][0]["ports"][0]["protocol"] == "TCP"
    bad = copy.deepcopy(base)
    bad["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] = "10.0.0.0/33"
    assert refused(bad).path == "spec.ingress[0].from[0].ipBlock.cidr"
    bad = copy.deepcopy(base)
    bad["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"] = ["192.168.0.0/24"]
    assert refused(bad).path == "spec.ingress[0].from[0].ipBlock.except[0]"
    bad = copy.deepcopy(base)
    bad["spec"]["ingress"][0]["from"][0]["podSelector"] = {}
    assert "may not be combined" in refused(bad).message
    bad = copy.deepcopy(base)
    bad["spec"]["policyTypes"] = ["Inbound"]
    assert refused(bad).path == "spec.policyTypes[0]"
    bad = copy.deepcopy(base)
    bad["spec"]["ingress"][0]["ports"][0].update(port="http", endPort=90)
    assert refused(bad).path == "spec.ingress[0].ports[0].endPort"
    bad = copy.deepcopy(base)
    bad["spec"]["egress"] = [{"to": [{"namespaceSelector": {}}]}]
    assert validate(bad, source="t", index=0)["spec"]["policyTypes"] == ["Ingress", "Egress"]
    bad["spec"]["policyTypes"] = []  # empty is defaulted like missing, as the API server does
    assert validate(bad, source="t", index=0)["spec"]["policyTypes"] == ["Ingress", "Egress"]
    bad = copy.deepcopy(base)
    bad["spec"]["ingress"][0]["from"][0]["ipBlock"] = {"cidr": "fd00::/64"}
    err = refused(bad)
    assert err.path == "spec.ingress[0].from[0].ipBlock.cidr" and "IPv4-only" in err.message


def test_secret_and_configmap_rules() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"a": "aGVsbG8="}, "stringData": {"b": "world"}}
    out = validate(secret, source="t", index=0)
    assert out["data"] == {"a": "aGVsbG8=", "b": "d29ybGQ="} and out["type"] == "Opaque"
    assert "stringData" not in out
    secret["data"] = {"a": "not base64!"}
    assert refused(secret).path == "data[a]"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"bad key": "x"}}
    assert refused(cm).path == "data[bad key]"


def test_several_problems_are_listed_in_one_error() -> None:
    doc = pod()
    doc["spec"]["containers"][0]["portz"] = []
    doc["spec"]["hostnetwork"] = True
    err = refused(doc)
    assert err.path == "spec.containers[0].portz"
    assert "spec.hostnetwork" in err.message and "did you mean hostNetwork?" in err.message


# ---------------------------------------------------------------- defaults


def test_defaults() -> None:
    out = validate(pod(), source="t", index=0)
    assert out["metadata"]["namespace"] == "default"
    spec = out["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["containers"][0]["ports"][0]["protocol"] == "TCP"
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"

    dep = validate(deployment(), source="t", index=0)
    assert dep["metadata"]["namespace"] == "shop"
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%",
                                                        "maxSurge": "25%"}
    assert dep["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    no_replicas = deployment()
    del no_replicas["spec"]["replicas"]
    assert validate(no_replicas, source="t", index=0)["spec"]["replicas"] == 1

    svc = validate(service(), source="t", index=0)["spec"]
    assert svc["type"] == "ClusterIP" and svc["sessionAffinity"] == "None"
    assert svc["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}

    ns = validate({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "x", "namespace": "ignored"}}, source="t", index=0)
    assert ns["metadata"] == {"name": "x", "labels": {"kubernetes.io/metadata.name": "x"}}


def test_validate_does_not_touch_its_input() -> None:
    doc = pod()
    before = copy.deepcopy(doc)
    validate(doc, source="t", index=0)
    assert doc == before


def test_validate_all_lists_every_bad_document() -> None:
    good, bad1, bad2 = pod(), pod(), service()
    bad1["spec"]["containers"][0]["imag"] = "x"
    bad2["spec"]["ports"][0]["port"] = "80"
    assert len(validate_all([good, service()], "f.yaml")) == 2
    with pytest.raises(ManifestError) as info:
        validate_all([good, bad1, bad2], "f.yaml")
    text = str(info.value)
    assert "2 documents were refused" in text
    assert "(document 2): field spec.containers[0].imag" in text
    assert "(document 3): field spec.ports[0].port" in text
    with pytest.raises(ManifestError) as single:
        validate_all([good, bad1], "f.yaml")
    assert single.value.index == 1 and single.value.path == "spec.containers[0].imag"


# ---------------------------------------------------------------- acceptance fixtures


def _acceptance_manifests() -> list[tuple[str, str]]:
    if not ACCEPTANCE.is_dir():
        return []
    found = []
    for path in sorted(ACCEPTANCE.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for name, fixture in (data.get("fixtures") or {}).items():
            found.append((f"{path.name}:{name}", fixture["objects"]))
        for case in data.get("cases") or []:
            for step in case.get("steps") or []:
                if "apply" in step:
                    found.append((f"{path.name}:{case['id']}", step["apply"]))
    return found


def _resolve_placeholders(text: str) -> str:
    """Stand-in values for run-time placeholders, of the type each one yields."""
    text = re.sub(r"\{\{podNet [^}]*\}\}", "10.244.0.0/16", text)
    return re.sub(r"\{\{[^}]*\}\}", "10.244.1.5", text)


@pytest.mark.parametrize(("where", "text"), _acceptance_manifests())
def test_acceptance_manifests(where: str, text: str) -> None:
    docs = load_documents(_resolve_placeholders(text), where)
    assert docs
    for index, doc in enumerate(docs):
        if doc["kind"] in ("Ingress", "IngressClass"):
            with pytest.raises(ManifestError, match="not supported by the local engine yet"):
                validate(doc, source=where, index=index)
        else:
            out = validate(doc, source=where, index=index)
            assert out["metadata"]["name"] == doc["metadata"]["name"]
