"""The Kubernetes manifests as written (make deploy-check renders and validates them): what a
schema cannot say — restricted pods, probes that fit the node's bounds, a grace period that
covers the preStop pause and the stop window, a budget and a policy for every role."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from shared.config import load_settings
from shared.metrics import REGISTRY
from shared.runtime import CLOSE_TIMEOUT_SECONDS, READY_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
ROLES = ("scheduler", "executor", "recovery")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def base(kind: str) -> list[dict[str, Any]]:
    return [doc for path in sorted((K8S / "base").glob("*.yaml")) for doc in documents(path)
            if doc.get("kind") == kind]


def deployments() -> dict[str, dict[str, Any]]:
    found = {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: d
             for d in base("Deployment")}
    assert set(found) == set(ROLES)
    return found


@pytest.mark.parametrize("role", ROLES)
def test_pods_meet_the_restricted_pod_security_level(role: str) -> None:
    pod = deployments()[role]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsUser"] >= 10000
        assert "secretRef" not in str(container.get("envFrom")), "secrets are mounted as files"


@pytest.mark.parametrize("role", ROLES)
def test_probes_fit_the_nodes_bounds(role: str) -> None:
    """/readyz answers within READY_TIMEOUT_SECONDS: its probe must wait longer. Liveness is
    /healthz, which answers while the databases do not (an outage must not restart pods)."""
    container = deployments()[role]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["timeoutSeconds"] > READY_TIMEOUT_SECONDS
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"


def prestop_seconds(container: dict[str, Any]) -> int:
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    return int(command[1]) if command else 0


@pytest.mark.parametrize("role", ROLES)
def test_the_grace_period_covers_the_prestop_pause_and_the_stop_window(
        role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubernetes counts the preStop hook against the grace period: SIGTERM comes after it."""
    for name, value in {"MONGODB_URI": "mongodb://127.0.0.1/herald",
                        "REDIS_URL": "redis://127.0.0.1/0", "HERALD_ADMIN_TOKEN": "12345678",
                        "HERALD_SECRET_KEY": Fernet.generate_key().decode()}.items():
        monkeypatch.setenv(name, value)
    lease = next(line.split("=")[1] for line in
                 yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
                 ["configMapGenerator"][0]["literals"] if line.startswith("HERALD_LEASE_TTL"))
    monkeypatch.setenv("HERALD_LEASE_TTL_SECONDS", lease)
    settings = load_settings()
    pod = deployments()[role]["spec"]["template"]["spec"]
    needed = prestop_seconds(pod["containers"][0]) + settings.stop_seconds + CLOSE_TIMEOUT_SECONDS
    assert pod["terminationGracePeriodSeconds"] >= needed


def test_the_api_service_keeps_answering_while_endpoints_drop_a_stopping_scheduler() -> None:
    assert prestop_seconds(deployments()["scheduler"]["spec"]["template"]["spec"]
                           ["containers"][0]) > 0


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])
               if e["operator"] == "In")


def pod_labels(role: str) -> dict[str, str]:
    """What kustomize's includeSelectors labels add to the template's own."""
    return {**deployments()[role]["spec"]["template"]["metadata"]["labels"],
            "app.kubernetes.io/name": "herald", "app.kubernetes.io/part-of": "herald"}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_disruption_budget_and_spreads_over_zones_and_nodes(role: str) -> None:
    assert [p for p in base("PodDisruptionBudget")
            if matches(p["spec"]["selector"], pod_labels(role))]
    spread = deployments()[role]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone",
                                                  "kubernetes.io/hostname"}


@pytest.mark.parametrize("role", ROLES)
def test_network_policies_deny_by_default_and_name_who_may_come_in(role: str) -> None:
    policies = [p for p in base("NetworkPolicy")
                if matches(p["spec"]["podSelector"], pod_labels(role))]
    deny = [p for p in policies if not p.get("spec", {}).get("ingress")
            and "Ingress" in p["spec"]["policyTypes"]]
    assert deny, "a default deny"
    sources = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for p in policies for rule in p["spec"].get("ingress", [])
               for peer in rule["from"]}
    assert sources == ({"operations", "monitoring"} if role == "scheduler" else {"monitoring"})
    egress_ports = {port["port"] for p in policies for rule in p["spec"].get("egress", [])
                    for port in rule["ports"]}
    assert egress_ports == {53, 27017, 6379, 443}


def test_includeselectors_keeps_selectors_to_heralds_own_pods() -> None:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    labels = kustomization["labels"][0]
    assert labels["includeSelectors"] is True
    assert labels["pairs"]["app.kubernetes.io/name"] == "herald"


def test_executors_autoscale_on_cpu_and_the_keda_overlay_replaces_that_with_the_backlog() -> None:
    (hpa,) = base("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "herald-executor"
    keda = K8S / "overlays" / "keda"
    kustomization = (keda / "kustomization.yaml").read_text()
    assert "$patch: delete" in kustomization and "HorizontalPodAutoscaler" in kustomization
    (scaled,) = documents(keda / "scaledobject.yaml")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "herald-executor"
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    exported = {family.name for family in REGISTRY.collect()}
    used = set(re.findall(r"\bherald_[a-z_]+", query))
    assert used and used <= exported


def test_production_pins_the_image_to_the_released_version_in_its_own_namespace() -> None:
    overlay = yaml.safe_load((K8S / "overlays" / "production" / "kustomization.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert overlay["images"] == [{"name": "herald", "newTag": version}]
    assert overlay["namespace"] == "herald"
    (namespace,) = documents(K8S / "overlays" / "production" / "namespace.yaml")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_checkov_exception_says_why() -> None:
    for path in K8S.rglob("*.yaml"):
        for skip in re.findall(r"checkov\.io/skip\d+: \"?([^\n]*)", path.read_text()):
            check, _, reason = skip.partition("=")
            assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason) > 20, (path, skip)
