"""Logs are JSON with node and job context, and never carry secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from shared.logging import configure_logging, get_logger, redact


def test_secret_keys_are_masked_at_any_depth() -> None:
    event = {"account": {"credentials": {"secret": "s3cr3t"}, "name": "ops"},
             "headers": [{"Authorization": "Bearer abc"}], "app_password": "pw"}
    masked = redact(event)
    text = json.dumps(masked)
    assert "s3cr3t" not in text and "abc" not in text and "pw\"" not in text
    assert masked["account"]["name"] == "ops"


def test_passwords_in_urls_are_masked() -> None:
    assert redact("mongodb://herald:hunter2@db:27017/x") == "mongodb://herald:[redacted]@db:27017/x"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging is process-wide: put structlog and the root logger back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_node_and_job(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("info", node_id="node-a", stream=out)
    with structlog.contextvars.bound_contextvars(job_id="job-1"):
        get_logger("t").info("published", token="tok-123")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["node_id"] == "node-a" and line["job_id"] == "job-1"
    assert line["event"] == "published" and line["token"] == "[redacted]"
