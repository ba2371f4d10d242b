"""deploy/compose.yaml, the Dockerfile, its build context and the environment file: what the
compose schema and hadolint (make deploy-check) do not say."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def services() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"])


def test_every_service_has_a_health_check() -> None:
    assert all("healthcheck" in spec for spec in services().values())


def test_services_start_once_what_they_need_is_healthy_and_mongodb_is_a_primary() -> None:
    specs = services()
    for name, spec in specs.items():
        for dependency, condition in spec.get("depends_on", {}).items():
            expected = ("service_completed_successfully" if dependency == "mongo-init"
                        else "service_healthy")
            assert condition == {"condition": expected}, (name, dependency)
    for role in ("scheduler", "executor", "recovery"):
        assert set(specs[role]["depends_on"]) == {"mongo-init", "redis"}
    init = " ".join(specs["mongo-init"]["command"])
    assert 'rs.initiate({_id: "rs0", members: [{_id: 0, host: "mongo:27017"}]})' in init
    assert "isWritablePrimary" in init
    assert "replicaSet=rs0" in (DEPLOY / "herald.env.example").read_text()


def test_the_environment_file_documents_every_setting() -> None:
    text = (DEPLOY / "herald.env.example").read_text()
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        name = str(getattr(alias, "choices", [alias])[0])
        if name.isupper():  # not oauth_clients: HERALD_<PLATFORM>_CLIENT_ID/_SECRET, shown for X
            names.add(name)
    assert "HERALD_X_CLIENT_ID=" in text
    missing = {name for name in names if not re.search(rf"\b{name}=", text)}
    assert missing == set()


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = {source for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M)
              for source in line.split()[:-1]}
    allowed = {line.removeprefix("!").rstrip("/")
               for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    assert "*" in (ROOT / ".dockerignore").read_text().splitlines()
    assert copied == allowed


def test_the_image_pins_its_tools_checks_its_health_and_runs_as_the_manifests_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"pip install --no-cache-dir uv==\d", dockerfile)
    assert all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image)
               for image in re.findall(r"^FROM (\S+)", dockerfile, re.M))
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert "runAsUser: 10001" in (DEPLOY / "k8s" / "base" / "scheduler.yaml").read_text()
