"""deploy/monitoring/prometheusrule.yaml is rules.yaml wrapped for the Prometheus Operator: one
rule file, tested by promtool, deployed by Kubernetes. `--check` fails when it is stale."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
SOURCE = MONITORING / "rules.yaml"
TARGET = MONITORING / "prometheusrule.yaml"
HEADER = "# Generated from rules.yaml by `python -m tools.deploy_check.prometheusrule`.\n"


def render() -> str:
    rules = yaml.safe_load(SOURCE.read_text())
    resource = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": {"name": "herald"}, "spec": {"groups": rules["groups"]}}
    return HEADER + yaml.safe_dump(resource, sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python -m tools.deploy_check.prometheusrule")
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
