"""JSON schemas for kubeconform from the CustomResourceDefinitions Herald's manifests use,
written into deploy/schemas/ (kept in the repository: `make deploy-check` needs no download).

Regenerate after a version bump: `go mod download` the modules below (the Go module proxy
carries the operators' CRDs with their Go code), then `python -m tools.deploy_check.crd_schemas`.
Like kubeconform's openapi2jsonschema, objects that list their properties refuse others (strict),
unless the CRD preserves unknown fields there, and int-or-string fields take either."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

SCHEMAS = Path(__file__).resolve().parents[2] / "deploy" / "schemas"
CRDS = {
    "github.com/prometheus-operator/prometheus-operator@v0.85.0": [
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ],
    "github.com/kedacore/keda/v2@v2.18.0": ["config/crd/bases/keda.sh_scaledobjects.yaml"],
}


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: strict(value) for key, value in node.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node.setdefault("additionalProperties", False)
    return node


def module_dir(module: str) -> Path:
    out = subprocess.run(["go", "mod", "download", "-json", module], check=True,
                         capture_output=True, text=True).stdout
    return Path(json.loads(out)["Dir"])


def main() -> int:
    for module, files in CRDS.items():
        root = module_dir(module)
        for name in files:
            crd = yaml.safe_load((root / name).read_text())
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
            for version in crd["spec"]["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                target = SCHEMAS / group / f"{kind}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
                print(target.relative_to(SCHEMAS.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
