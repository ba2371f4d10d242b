"""The shipped alert rules and dashboard query only series Herald exports: a renamed metric
must not leave an alert that can never fire or a panel that stays empty at 3 a.m."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import yaml
from prometheus_client import generate_latest

from shared.metrics import (
    DEFERRAL_SOURCES,
    ERROR_CLASSES,
    OUTCOMES,
    REGISTRY,
    STAGING_SOURCES,
)
from shared.models import PlatformName
from shared.providers.base import ProviderError
from tools.deploy_check import prometheusrule

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
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


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_severity_a_text_and_a_runbook_section() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", runbooks, flags=re.MULTILINE)}
    assert len(alerts()) >= 12
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/runbooks.md" and anchor == name.lower() in anchors, name


def test_alerts_group_by_namespace_so_installations_sharing_a_prometheus_stay_apart() -> None:
    """An aggregation without `namespace` adds one installation's leader to another's."""
    for rule in alerts():
        expr = rule["expr"]
        per_target = expr.startswith(("up{", "absent("))
        aggregations = re.findall(r"\b(sum|max|min|count|avg)\b\s*(by\s*\(([^)]*)\))?", expr)
        assert per_target or aggregations, rule["alert"]
        for _, _, by in aggregations:
            assert "namespace" in by, (rule["alert"], expr)


def test_every_alert_has_promtool_tests_that_fire_it_and_keep_it_silent() -> None:
    """`promtool test rules` runs them (make deploy-check); here: none is left out."""
    tests = yaml.safe_load((MONITORING / "rules_test.yaml").read_text())
    fired: set[str] = set()
    silent: set[str] = set()
    for test in tests["tests"]:
        for case in test["alert_rule_test"]:
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set()
    assert names - silent == set()


def test_the_prometheusrule_is_the_rule_file() -> None:
    assert prometheusrule.TARGET.read_text() == prometheusrule.render()


def scrape() -> str:
    return generate_latest(REGISTRY).decode()


def test_labelled_counters_exist_at_zero_before_their_first_event() -> None:
    """`increase()` needs a sample before the first increment: a counter that appears at 1
    never fires an alert on a pod's first unconfirmed job or revoked account."""
    text = scrape()
    for outcome in OUTCOMES:
        assert re.search(rf'^herald_jobs_total\{{outcome="{outcome}"\}} \d', text, re.M), outcome
    for platform in get_args(PlatformName):
        for error_class in ERROR_CLASSES:
            series = (f'herald_provider_errors_total{{error_class="{error_class}",'
                      f'platform="{platform}"}}')
            assert series in text, series
    assert 'herald_sweep_last_success_timestamp_seconds{kind="light"}' in text
    assert 'herald_generations_total{outcome="failed"} 0.0' in text


def test_process_and_python_metrics_are_exported() -> None:
    text = scrape()
    for name in ("process_start_time_seconds", "process_resident_memory_bytes",
                 "process_cpu_seconds_total", "process_open_fds", "python_info",
                 "python_gc_collections_total"):
        assert re.search(rf"^{name}[{{ ]", text, re.M), name


def test_the_known_label_values_are_the_ones_the_code_uses() -> None:
    """A new outcome or error class must join the lists, or its series starts at 1."""
    def subclasses(cls: type[ProviderError]) -> set[type[ProviderError]]:
        return {cls}.union(*(subclasses(sub) for sub in cls.__subclasses__()))

    assert {cls.error_class for cls in subclasses(ProviderError)} == set(ERROR_CLASSES)
    source = "\n".join(p.read_text() for package in ("shared", "scheduler", "executor", "recovery")
                       for p in (ROOT / package).rglob("*.py"))
    assert set(re.findall(r'JOBS\.labels\(outcome="(\w+)"', source)) <= set(OUTCOMES)
    assert set(re.findall(r'outcome="(\w+)" if', source)) <= set(OUTCOMES)
    assert set(re.findall(r'RATE_LIMIT_DEFERRALS\.labels\([^)]*source="(\w+)"', source)) == set(
        DEFERRAL_SOURCES)
    assert set(re.findall(r'stage\w*\([^)]*source="(\w+)"', source)) == set(STAGING_SOURCES)


async def test_alerts_about_jobs_and_accounts_link_to_a_console_page_that_exists() -> None:
    """An operator follows the alert to the console's filtered page (issue 12): the path must
    be one the console serves."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from scheduler.console import add_console_routes

    app = web.Application()
    add_console_routes(app)
    linked = {rule["alert"]: rule["annotations"]["console_path"] for rule in alerts()
              if "console_path" in rule["annotations"]}
    assert set(linked) == {"HeraldUnconfirmedJobs", "HeraldJobsFailing",
                           "HeraldGenerationFailing", "HeraldAccountNeedsReauth"}
    for name, path in linked.items():
        match = await app.router.resolve(make_mocked_request("GET", path))
        assert match.http_exception is None, (name, path)
