"""The shipped alert rules and dashboard query only series Herald exports: a renamed metric
must not leave an alert that can never fire or a panel that stays empty at 3 a.m."""

from __future__ import annotations

import re
from pathlib import Path

from shared.metrics import REGISTRY

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",), "summary": ("", "_count", "_sum")}


def exported_series() -> set[str]:
    return {family.name + suffix for family in REGISTRY.collect()
            for suffix in SUFFIXES.get(family.type, ("",))}


def test_rules_and_dashboards_use_exported_series() -> None:
    files = [MONITORING / "rules.yaml", *sorted((MONITORING / "dashboards").glob("*.json"))]
    used = {name for f in files for name in re.findall(r"\bherald_[a-z_]+", f.read_text())}
    assert len(used) >= 10
    assert used - exported_series() == set()


def test_every_exported_series_is_on_the_dashboard_or_in_an_alert() -> None:
    """Metrics nobody looks at are as good as missing."""
    text = "".join(f.read_text() for f in MONITORING.rglob("*") if f.is_file())
    families = {family.name for family in REGISTRY.collect() if family.name.startswith("herald_")}
    assert {name for name in families if name not in text} == set()
