"""The stop window adds up: an executor's drain fits in the time a stopping node gives its
roles, and that plus closing the connections fits in the grace period the manifests give a pod
between SIGTERM and SIGKILL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shared.config import Settings, load_settings
from shared.runtime import CLOSE_TIMEOUT_SECONDS

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in {"MONGODB_URI": "mongodb://127.0.0.1/herald",
                        "REDIS_URL": "redis://127.0.0.1/0", "HERALD_ADMIN_TOKEN": "12345678",
                        "HERALD_SECRET_KEY": Fernet.generate_key().decode()}.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_a_stopping_node_waits_for_the_executors_whole_drain(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = defaults(monkeypatch)
    assert settings.drain_seconds == settings.lease_ttl_seconds / 2
    assert settings.stop_seconds > settings.drain_seconds


def test_the_grace_period_covers_the_stop_and_the_close(
        monkeypatch: pytest.MonkeyPatch) -> None:
    needed = defaults(monkeypatch).stop_seconds + CLOSE_TIMEOUT_SECONDS
    manifests = sorted(K8S.rglob("*.yaml"))
    graces = {m.name: int(g) for m in manifests
              for g in re.findall(r"terminationGracePeriodSeconds:\s*(\d+)", m.read_text())}
    assert len(graces) >= 3, graces
    assert all(grace >= needed for grace in graces.values()), (needed, graces)
