"""Announces final failures and `unconfirmed` jobs to the operator's admin webhook
(HERALD_NOTIFY_WEBHOOK_URL). Best effort: a notification must never break the job path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from shared.logging import get_logger, redact

log = get_logger(__name__)


def _iso_z(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: Any) -> str:
    return _iso_z(value) if isinstance(value, datetime) else str(value)


class Notifier:
    """POSTs `{"event", "at", **payload}`; tries up to `attempts` times on 5xx, 429, timeouts
    and connection errors, with doubling backoff; other 4xx are not retried. With the
    console's base URL (HERALD_CONSOLE_URL), a job's notification links to its console page
    (`console_url`), so the operator goes from the alert to the fix."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str | None,
        *,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 5.0,
        console_url: str | None = None,
    ) -> None:
        self._session = session
        self._url = url
        self._console_url = console_url
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        """Never raises (cancellation aside); the URL is never logged, it may embed a token."""
        if self._url is None:
            return
        links = {"console_url": f"{self._console_url}/jobs/{payload['job_id']}"} \
            if self._console_url and "job_id" in payload else {}
        document = redact({"event": event, "at": _iso_z(datetime.now(UTC)), **payload, **links})
        try:
            body = json.dumps(document, default=_json_default).encode("utf-8")
        except (TypeError, ValueError) as exc:
            log.warning("notify_failed", notify_event=event, reason=f"unserialisable: {exc}")
            return
        reason, attempt = "", 0
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 2))
            try:
                async with self._session.post(
                    self._url,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    status = response.status
            except TimeoutError:
                reason = "timeout"
                continue
            except aiohttp.ClientError as exc:
                reason = type(exc).__name__
                continue
            except Exception as exc:  # e.g. a closed session: not worth retrying, never raised
                reason = type(exc).__name__
                break
            if 200 <= status < 300:
                return
            reason = f"status {status}"
            if status != 429 and status < 500:
                break
        log.warning("notify_failed", notify_event=event, attempts=attempt, reason=reason)
