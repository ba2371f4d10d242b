"""Every Prometheus metric Herald exports, in one registry; base units, no per-job labels.

Labelled series are created at 0 for every label value known in advance: a counter's first
increment is then a rise `increase()` sees, so an alert fires on a pod's first event too."""

from __future__ import annotations

from typing import get_args

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from shared.models import PlatformName, Priority

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

OUTCOMES = ("succeeded", "failed", "retried", "deferred", "missed", "unconfirmed", "cancelled",
            "skipped")
#: `ProviderError.error_class` of every class in the provider taxonomy.
ERROR_CLASSES = ("error", "rate_limited", "transient", "outcome_unknown", "auth_expired",
                 "permanent", "auth_revoked")
DEFERRAL_SOURCES = ("hold", "budget", "platform")
STAGING_SOURCES = ("api", "window", "sweep", "generation")
SWEEP_KINDS = ("light", "full")

LATENESS_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600,
)

JOBS = Counter(
    "herald_jobs",
    f"Job outcomes ({', '.join(OUTCOMES)}).",
    ["outcome"],
    registry=REGISTRY,
)
LATENESS = Histogram(
    "herald_job_lateness_seconds",
    "Platform call start minus scheduled time, for each publish attempt's first try.",
    buckets=LATENESS_BUCKETS,
    registry=REGISTRY,
)
PUBLISH_DURATION = Histogram(
    "herald_publish_duration_seconds",
    "Duration of the platform call.",
    ["platform"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "herald_due_queue_depth", "Jobs staged in the Redis due queue.", ["lane"], registry=REGISTRY
)
OVERDUE = Gauge(
    "herald_overdue_jobs", "Staged jobs whose due time has passed.", registry=REGISTRY
)
OLDEST_PENDING_AGE = Gauge(
    "herald_oldest_pending_age_seconds",
    "Age past due of the oldest job not yet started.",
    registry=REGISTRY,
)
LEADER = Gauge("herald_leader", "1 while this node is the scheduler leader.", registry=REGISTRY)
LEADER_TRANSITIONS = Counter(
    "herald_leader_transitions",
    "Times this node gained or lost leadership.",
    ["direction"],
    registry=REGISTRY,
)
LEASE_LOSSES = Counter(
    "herald_lease_losses", "Fenced writes that matched nothing: the lease was lost.",
    registry=REGISTRY,
)
SWEEP_REPAIRS = Counter(
    "herald_sweep_repairs", "Repairs made by recovery sweeps.", ["reason"], registry=REGISTRY
)
SWEEP_DURATION = Histogram(
    "herald_sweep_duration_seconds", "Duration of recovery sweeps.", ["kind"], registry=REGISTRY
)
SWEEP_LAST_SUCCESS = Gauge(
    "herald_sweep_last_success_timestamp_seconds",
    "Unix time of the last successful sweep; 0 until one succeeds.",
    ["kind"],
    registry=REGISTRY,
)
RATE_LIMIT_DEFERRALS = Counter(
    "herald_rate_limit_deferrals",
    "Jobs deferred by a local budget or a platform 429.",
    ["platform", "source"],
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "herald_provider_errors",
    "Provider errors by class.",
    ["platform", "error_class"],
    registry=REGISTRY,
)
REDIS_RESETS = Counter(
    "herald_redis_resets",
    "Times the leader found Redis had lost its data (generation marker gone) and rebuilt it.",
    registry=REGISTRY,
)
WINDOW_CHECKS = Counter(
    "herald_window_checks", "Window checks run by the leader.", registry=REGISTRY
)
JOBS_STAGED = Counter(
    "herald_jobs_staged", "Jobs put into the due queue.", ["source"], registry=REGISTRY
)
JOBS_IN_FLIGHT = Gauge(
    "herald_jobs_in_flight", "Jobs this executor is running now.", registry=REGISTRY
)
EXECUTOR_BATCH_SIZE = Histogram(
    "herald_executor_batch_size",
    "Jobs per round trip of the executor's batched steps (lock, claim, move, release).",
    ["step"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)


def _create_known_series() -> None:
    platforms = get_args(PlatformName)
    for outcome in OUTCOMES:
        JOBS.labels(outcome=outcome)
    for direction in ("up", "down"):
        LEADER_TRANSITIONS.labels(direction=direction)
    for lane in Priority:
        QUEUE_DEPTH.labels(lane=lane.value)
    for kind in SWEEP_KINDS:
        SWEEP_LAST_SUCCESS.labels(kind=kind)
    for source in STAGING_SOURCES:
        JOBS_STAGED.labels(source=source)
    for platform in platforms:
        for error_class in ERROR_CLASSES:
            PROVIDER_ERRORS.labels(platform=platform, error_class=error_class)
        for source in DEFERRAL_SOURCES:
            RATE_LIMIT_DEFERRALS.labels(platform=platform, source=source)


_create_known_series()

#: What became of each content generation (issue 13), recorded by the generation lane:
#: `generated`, `skipped` (no new feed item), `retried` (a transient failure), `failed` (for good).
GENERATION_OUTCOMES = ("generated", "skipped", "retried", "failed")
GENERATIONS = Counter(
    "herald_generations", "Content generations by outcome.", ["outcome"], registry=REGISTRY
)
#: The slow steps of a generation, timed where they happen (shared/generation).
GENERATION_STEPS = ("feed", "model", "image")
GENERATION_STEP_DURATION = Histogram(
    "herald_generation_step_seconds",
    "Duration of a generation's steps: fetching the feed, the model's answer, an image.",
    ["step"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120),
    registry=REGISTRY,
)
for _outcome in GENERATION_OUTCOMES:
    GENERATIONS.labels(outcome=_outcome)
for _step in GENERATION_STEPS:
    GENERATION_STEP_DURATION.labels(step=_step)
