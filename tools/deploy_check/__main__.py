"""`make deploy-check`: everything under deploy/ rendered, validated and linted offline, with the
validators `make deploy-tools` pinned and cached in .herald/tools/. Every check runs; the exit
code is 1 when any failed, and each failure is printed with the validator's own words.

    .venv/bin/python -m tools.deploy_check [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml
from cryptography.fernet import Fernet

from tools import devservers
from tools.deploy_check import prometheusrule

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TOOLS = ROOT / ".herald" / "tools"
BIN, VENV_BIN = TOOLS / "bin", TOOLS / "venv" / "bin"
OUT = ROOT / ".herald" / "deploy-check"
KUBERNETES_VERSION = "1.33.0"
#: Series the alerts need from the first scrape of a node, before anything happened.
SERIES_AT_START = (
    'herald_leader ', 'herald_jobs_total{outcome="unconfirmed"} 0.0',
    'herald_jobs_total{outcome="failed"} 0.0', 'herald_generations_total{outcome="failed"} 0.0',
    'herald_lease_losses_total 0.0',
    'herald_redis_resets_total 0.0',
    'herald_provider_errors_total{error_class="auth_revoked",platform="x"} 0.0',
    'herald_sweep_last_success_timestamp_seconds{kind="light"}',
    "process_start_time_seconds ", "process_resident_memory_bytes ", "python_info{",
)


class CheckFailed(Exception):
    pass


def run(*args: str | Path, stdin: str | None = None) -> str:
    """Run a validator; its output is the failure's text when it exits non-zero."""
    proc = subprocess.run([str(a) for a in args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise CheckFailed((proc.stdout + proc.stderr).strip() or f"exit {proc.returncode}")
    return proc.stdout


def overlays() -> list[Path]:
    return sorted(p.parent for p in (DEPLOY / "k8s" / "overlays").glob("*/kustomization.yaml"))


def rendered(overlay: Path) -> Path:
    return OUT / f"{overlay.name}.yaml"


def check_render() -> None:
    """Every overlay renders, and puts every resource in its namespace (not `default`)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for overlay in overlays():
        text = run(BIN / "kustomize", "build", overlay)
        rendered(overlay).write_text(text)
        homeless = [f"{doc['kind']}/{doc['metadata']['name']}"
                    for doc in yaml.safe_load_all(text)
                    if doc["kind"] != "Namespace" and not doc["metadata"].get("namespace")]
        if homeless:
            raise CheckFailed(f"{overlay.name}: no namespace for {homeless}")


def check_kubeconform() -> None:
    """Strict: a misspelt field is an error. Built-in kinds, then the CRDs' schemas that
    tools.deploy_check.crd_schemas wrote into deploy/schemas."""
    builtin = f"{standalone_schemas()}/" + "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    crds = f"{DEPLOY}/schemas/" + "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
    for overlay in overlays():
        run(BIN / "kubeconform", "-strict", "-summary", "-kubernetes-version", KUBERNETES_VERSION,
            "-schema-location", builtin, "-schema-location", crds, rendered(overlay))


def standalone_schemas() -> Path:
    """kubeconform's schemas for the built-in kinds, from the ones kubernetes-validate ships:
    their `$ref`s point at a shared definitions file kubeconform cannot resolve, so each kind
    used is written out standalone, the definitions embedded."""
    source = next((TOOLS / "venv" / "lib").glob(
        f"python*/site-packages/kubernetes_validate/kubernetes-json-schema/"
        f"v{KUBERNETES_VERSION}-local-strict"))
    target = OUT / "schemas" / f"v{KUBERNETES_VERSION}"
    target.mkdir(parents=True, exist_ok=True)
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    ref = '"/api/_definitions.json#/$defs/'
    for overlay in overlays():
        for doc in yaml.safe_load_all(rendered(overlay).read_text()):
            group_version = doc["apiVersion"]
            group = group_version.split("/")[0].split(".")[0] if "/" in group_version else ""
            version = group_version.split("/")[-1]
            name = f"{doc['kind'].lower()}{'-' + group if group else ''}-{version}.json"
            if (target / name).exists() or not (source / name).exists():
                continue
            schema = json.loads((source / name).read_text().replace(ref, '"#/$defs/'))
            schema["$defs"] = json.loads(json.dumps(definitions).replace(ref, '"#/$defs/'))
            (target / name).write_text(json.dumps(schema))
    return target


def check_kubernetes_validate() -> None:
    for overlay in overlays():
        run(VENV_BIN / "kubernetes-validate", "--strict", "--quiet", "--no-warn",
            "-k", KUBERNETES_VERSION, rendered(overlay))


def check_checkov() -> None:
    """No failed check on any overlay; an exception is a `checkov.io/skip` annotation that says
    why, in the manifests."""
    for overlay in overlays():
        run(VENV_BIN / "checkov", "--quiet", "--compact", "--skip-download",
            "--framework", "kubernetes", "-f", rendered(overlay))


def check_hadolint() -> None:
    run(VENV_BIN / "hadolint", DEPLOY / "Dockerfile")


def check_prometheusrule() -> None:
    if prometheusrule.main(["--check"]) != 0:
        raise CheckFailed("deploy/monitoring/prometheusrule.yaml differs from rules.yaml")


def check_rules() -> None:
    monitoring = DEPLOY / "monitoring"
    run(BIN / "promtool", "check", "rules", monitoring / "rules.yaml")
    run(BIN / "promtool", "test", "rules", monitoring / "rules_test.yaml")


def check_compose() -> None:
    run(VENV_BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
        DEPLOY / "compose.yaml")


@contextmanager
def live_node() -> Iterator[str]:
    """A real node (`herald all`) on real MongoDB and Redis on loopback; yields its base URL."""
    with ExitStack() as stack:
        mongo = devservers.start_mongo()
        stack.callback(mongo.stop)
        redis = devservers.start_redis()
        stack.callback(redis.stop)
        log = stack.enter_context(tempfile.TemporaryFile())
        port = devservers.free_port()
        env = {**os.environ, "MONGODB_URI": f"mongodb://127.0.0.1:{mongo.port}/deploycheck",
               "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
               "HERALD_ADMIN_TOKEN": "deploy-check",
               "HERALD_SECRET_KEY": Fernet.generate_key().decode(), "HERALD_LOG_LEVEL": "warning"}
        node = subprocess.Popen(
            [ROOT / ".venv" / "bin" / "herald", "all", "--host", "127.0.0.1", "--http-port",
             str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(stop, node)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not ready(url):
            if node.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise CheckFailed(f"node not ready: {log.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield url


def stop(node: subprocess.Popen[bytes]) -> None:
    node.terminate()
    try:
        node.wait(60)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait()


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=3) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def check_metrics() -> None:
    """`promtool check metrics` on a live scrape, and the series the alerts need there from the
    first scrape (labelled counters at 0, process and Python metrics)."""
    with live_node() as url, urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    run(BIN / "promtool", "check", "metrics", stdin=text)
    missing = [series for series in SERIES_AT_START if series not in text]
    if missing:
        raise CheckFailed(f"missing from the first scrape: {missing}")


CHECKS: dict[str, Callable[[], None]] = {
    "render": check_render, "kubeconform": check_kubeconform,
    "kubernetes-validate": check_kubernetes_validate, "checkov": check_checkov,
    "hadolint": check_hadolint, "prometheusrule": check_prometheusrule, "rules": check_rules,
    "compose": check_compose, "metrics": check_metrics,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="deploy-check")
    parser.add_argument("--only", nargs="*", choices=sorted(CHECKS), default=[])
    names = parser.parse_args(argv).only or list(CHECKS)
    if any(name in names for name in ("kubeconform", "kubernetes-validate", "checkov")):
        names = ["render", *[n for n in names if n != "render"]]
    failed = []
    for name in names:
        started = time.monotonic()
        try:
            CHECKS[name]()
        except (CheckFailed, OSError, RuntimeError) as exc:
            failed.append(name)
            print(f"FAIL {name} ({time.monotonic() - started:.1f}s)\n{exc}\n", flush=True)
        else:
            print(f"ok   {name} ({time.monotonic() - started:.1f}s)", flush=True)
    print(f"deploy-check: {len(names) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
