"""Structured JSON logs with node and job context, and secrets redacted before rendering."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEYS = re.compile(
    r"(secret|token|password|app_password|authorization|credentials|api_key|signature|cookie)",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
REDACTED = "[redacted]"


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    """Keys are few (field names), so each is matched once: every log line is redacted."""
    return SECRET_KEYS.search(key) is not None


def redact(value: Any) -> Any:
    """Mask secret-looking keys at any depth and passwords embedded in URLs."""
    if isinstance(value, str):
        # A URL's password comes before an `@`: most strings have none and skip the pattern.
        return _URL_PASSWORD.sub(rf"\g<scheme>\g<user>:{REDACTED}@", value) if "@" in value \
            else value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _secret_key(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    redacted: dict[str, Any] = redact(event_dict)  # a new dict: the input is a mapping
    return redacted


def configure_logging(
    level: str = "info", node_id: str | None = None, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to one JSON line per event on stderr."""
    out = stream or sys.stderr
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text before redaction, which would otherwise mangle exc_info.
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    structlog.configure(
        processors=[
            *shared, structlog.processors.JSONRenderer()
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    if node_id is not None:
        structlog.contextvars.bind_contextvars(node_id=node_id)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
