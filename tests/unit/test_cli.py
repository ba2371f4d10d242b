"""The console script: help text and refusing bad settings with exit code 2 and one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

GOOD = {
    "MONGODB_URI": "mongodb://127.0.0.1:1/herald",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "HERALD_ADMIN_TOKEN": "a-long-enough-token",
    "HERALD_SECRET_KEY": Fernet.generate_key().decode(),
}


def herald(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=60)


def test_help_lists_roles_and_environment() -> None:
    result = herald("--help")
    assert result.returncode == 0
    for word in ("scheduler", "executor", "recovery", "all", "HERALD_ADMIN_TOKEN", "MONGODB_URI"):
        assert word in result.stdout


def test_role_help_describes_every_option() -> None:
    result = herald("all", "--help")
    assert result.returncode == 0
    for option in ("--http-port", "--host", "--concurrency", "HERALD_LEASE_TTL_SECONDS"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"MONGODB_URI": ""}, "MONGODB_URI"),
        ({"REDIS_URL": "http://nope"}, "REDIS_URL"),
        ({"HERALD_SECRET_KEY": "not-a-fernet-key"}, "HERALD_SECRET_KEY"),
        ({"HERALD_LEADER_TTL_SECONDS": "-1"}, "HERALD_LEADER_TTL_SECONDS"),
        ({"HERALD_EXECUTOR_CONCURRENCY": "many"}, "HERALD_EXECUTOR_CONCURRENCY"),
        ({"HERALD_FULL_SWEEP_CRON": "every day"}, "HERALD_FULL_SWEEP_CRON"),
        ({"HERALD_LOG_LEVEL": "loud"}, "HERALD_LOG_LEVEL"),
        ({"HERALD_NOTIFY_WEBHOOK_URL": "ftp://x"}, "HERALD_NOTIFY_WEBHOOK_URL"),
    ],
)
def test_bad_setting_stops_with_one_line_naming_it(change: dict[str, str], named: str) -> None:
    env = {**GOOD, **change}
    env = {k: v for k, v in env.items() if v}
    result = herald("all", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr


def test_missing_required_setting() -> None:
    env = {k: v for k, v in GOOD.items() if k != "HERALD_ADMIN_TOKEN"}
    result = herald("scheduler", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "herald: HERALD_ADMIN_TOKEN: is required"


def test_bad_port_is_a_usage_error() -> None:
    result = herald("all", "--http-port", "70000", env=GOOD)
    assert result.returncode == 2 and "--http-port" in result.stderr


def test_rotate_keys_help() -> None:
    result = herald("rotate-keys", "--help")
    assert result.returncode == 0 and "HERALD_SECRET_KEY" in result.stdout


def test_rotate_keys_needs_only_mongodb_and_the_key() -> None:
    env = {"HERALD_SECRET_KEY": GOOD["HERALD_SECRET_KEY"]}
    result = herald("rotate-keys", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "herald: MONGODB_URI: is required"
