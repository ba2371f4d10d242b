"""A receiver that follows API.md's webhook contract, for tests, the demo and the benchmark.

It checks what a careful real endpoint checks (HMAC signature, timestamp freshness, body
shape, `Idempotency-Key` equal to `job_id`) and deduplicates on the key: a repeat of an
accepted key gets the first answer again. The signature check is written independently of
`shared.providers.webhook`, so a provider bug cannot hide behind a shared helper.

In-process: `url = await WebhookReceiver("s3cr3t").start()`, then POST to `url + "/hook"`.
Separate process:
`python -m tests.emulators.webhook --port N --secret S [--print] [--delay S] [--state-file P]`.

Scripting, `POST /_control` with any of `{"fail_next": 2, "fail_status": 500}`,
`{"rate_limit_next": 1, "retry_after": 2}` (a number, a raw header string or null for none),
`{"permanent_next": 1}` (400), `{"delay": 2.0}` (seconds before each answer),
`{"reset": true}` (forget deliveries and script). `GET /_deliveries` reports what arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import IO, Any

from aiohttp import web

from tests.emulators.platform import listen, until_signalled

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
BODY_FIELDS: dict[str, type] = {
    "post_id": str, "job_id": str, "account_id": str, "scheduled_for": str, "text": str,
    "media": list,
}


@dataclass
class Script:
    """Scripted misbehaviour; each `*_next` counter is spent by one authenticated request."""

    fail_next: int = 0
    fail_status: int = 500
    rate_limit_next: int = 0
    retry_after: str | None = "1"
    permanent_next: int = 0
    delay: float = 0.0


CONTROL_TYPES: dict[str, Any] = {
    "fail_next": int, "fail_status": int, "rate_limit_next": int, "permanent_next": int,
    "delay": float, "retry_after": lambda v: None if v is None else str(v), "reset": bool,
}


@dataclass
class Delivery:
    arrived_at: float
    path: str
    key: str
    status: int
    #: accepted | repeat | failed | rate_limited | rejected | invalid | bad_signature
    outcome: str
    response: dict[str, Any]
    body: dict[str, Any] | None = None
    post_id: str | None = None
    job_id: str | None = None
    scheduled_for: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _body_problems(body: Any, key: str) -> list[str]:
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    problems = [
        f"{name} must be a {kind.__name__}"
        for name, kind in BODY_FIELDS.items()
        if not isinstance(body.get(name), kind)
    ]
    if isinstance(body.get("scheduled_for"), str) and not RFC3339_UTC.match(body["scheduled_for"]):
        problems.append("scheduled_for must be RFC 3339 UTC ending in Z")
    for i, item in enumerate(body.get("media") or []):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("url"), str)
            and isinstance(item.get("alt"), str)
            and (item.get("mime_type") is None or isinstance(item.get("mime_type"), str))
        ):
            problems.append(f"media[{i}] must be {{url, alt, mime_type}}")
    if body.get("job_id") != key:
        problems.append("Idempotency-Key must equal job_id")
    return problems


def _describe(d: Delivery) -> str:
    """One line for a human watching the demo."""
    who = f"job={d.job_id} post={d.post_id}"
    if d.outcome == "accepted" and d.body is not None and d.scheduled_for:
        scheduled = datetime.fromisoformat(d.scheduled_for)
        text = d.body["text"] if len(d.body["text"]) <= 60 else d.body["text"][:57] + "..."
        return (
            f"received  {who} {json.dumps(text, ensure_ascii=False)} "
            f"(scheduled {scheduled:%H:%M:%S}.{scheduled.microsecond // 1000:03d}, "
            f"arrived {d.arrived_at - scheduled.timestamp():+.3f}s)"
        )
    if d.outcome == "repeat":
        return f"repeat    {who} (same Idempotency-Key, answered as before)"
    return f"{d.outcome:<9} {who} -> {d.status}"


class WebhookReceiver:
    def __init__(
        self,
        secret: str,
        *,
        delay: float = 0.0,
        tolerance_seconds: float = 300.0,
        print_deliveries: bool = False,
        state_file: str | None = None,
    ) -> None:
        self.secret = secret
        self.tolerance_seconds = tolerance_seconds
        self.print_deliveries = print_deliveries
        self.state_file = state_file
        self.script = Script(delay=delay)
        self.deliveries: list[Delivery] = []
        self.counts: dict[str, int] = {}
        self.accepted: dict[str, dict[str, Any]] = {}
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._state: IO[str] | None = None

    @property
    def hook_url(self) -> str:
        return self.base_url + "/hook"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_control", self._control)
        app.router.add_get("/_deliveries", self._deliveries)
        app.router.add_get("/posts/{id}", self._post)
        app.router.add_post("/{path:.*}", self._hook)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self.state_file:
            # Kept open for the run; appending one short line per delivery does not stall.
            self._state = open(self.state_file, "a", encoding="utf-8")  # noqa: ASYNC230, SIM115
        self._runner, self.base_url = await listen(self.app(), host, port)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._state is not None:
            self._state.close()
            self._state = None

    def _authenticate(self, request: web.Request, raw: bytes, now: float) -> str | None:
        timestamp = request.headers.get("X-Herald-Timestamp", "")
        signature = request.headers.get("X-Herald-Signature", "")
        if not (timestamp.isascii() and timestamp.isdigit()):
            return "missing or malformed X-Herald-Timestamp"
        if abs(now - int(timestamp)) > self.tolerance_seconds:
            return "stale X-Herald-Timestamp"
        if not hmac.compare_digest(signature, _expected_signature(self.secret, timestamp, raw)):
            return "bad X-Herald-Signature"
        return None

    def _decide(
        self, key: str, body: dict[str, Any]
    ) -> tuple[int, str, dict[str, Any], dict[str, str]]:
        """Status, outcome, answer and headers for an authenticated, well-formed request."""
        self.counts[key] = self.counts.get(key, 0) + 1
        s = self.script
        if s.rate_limit_next > 0:
            s.rate_limit_next -= 1
            headers = {} if s.retry_after is None else {"Retry-After": s.retry_after}
            return 429, "rate_limited", {"error": "rate limited"}, headers
        if s.fail_next > 0:
            s.fail_next -= 1
            return s.fail_status, "failed", {"error": "scripted failure"}, {}
        if s.permanent_next > 0:
            s.permanent_next -= 1
            return 400, "rejected", {"error": "scripted rejection"}, {}
        if key in self.accepted:
            return 201, "repeat", self.accepted[key], {}
        post_id = str(uuid.uuid4())
        answer = {"id": post_id, "url": f"{self.base_url}/posts/{post_id}"}
        self.accepted[key] = answer
        return 201, "accepted", answer, {}

    async def _hook(self, request: web.Request) -> web.Response:
        arrived = time.time()
        raw = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        delivery = Delivery(arrived, request.path, key, 0, "", {},
                            headers={k: v for k, v in request.headers.items()
                                     if k.lower().startswith(("x-herald-", "idempotency-"))})
        headers: dict[str, str] = {}
        problem = self._authenticate(request, raw, arrived)
        if problem:
            delivery.status, delivery.outcome, delivery.response = (
                401, "bad_signature", {"error": problem})
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            problems = _body_problems(body, key)
            if problems or not isinstance(body, dict):
                delivery.status, delivery.outcome, delivery.response = (
                    400, "invalid", {"error": "invalid body", "details": problems})
            else:
                delivery.body = body
                delivery.post_id, delivery.job_id = body["post_id"], body["job_id"]
                delivery.scheduled_for = body["scheduled_for"]
                delivery.status, delivery.outcome, delivery.response, headers = self._decide(
                    key, body)
        self._record(delivery)
        if self.script.delay > 0:
            await asyncio.sleep(self.script.delay)
        return web.json_response(delivery.response, status=delivery.status, headers=headers)

    def _record(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if self.print_deliveries:
            print(_describe(delivery), flush=True)
        if self._state is not None:
            line = {name: getattr(delivery, name) for name in (
                "arrived_at", "key", "post_id", "job_id", "scheduled_for", "status", "outcome")}
            self._state.write(json.dumps(line) + "\n")
            self._state.flush()

    async def _control(self, request: web.Request) -> web.Response:
        try:
            change = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(change, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        script = asdict(self.script)
        unknown = set(change) - set(CONTROL_TYPES)
        if unknown:
            return web.json_response({"error": f"unknown keys {sorted(unknown)}"}, status=400)
        try:
            change = {k: CONTROL_TYPES[k](v) for k, v in change.items()}
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if change.pop("reset", False):
            self.deliveries.clear()
            self.counts.clear()
            self.accepted.clear()
            script = asdict(Script())
        self.script = Script(**{**script, **change})
        return web.json_response(asdict(self.script))

    async def _deliveries(self, _request: web.Request) -> web.Response:
        return web.json_response({
            "deliveries": [asdict(d) for d in self.deliveries],
            "counts": self.counts,
            "accepted": self.accepted,
        })

    async def _post(self, request: web.Request) -> web.Response:
        for d in self.deliveries:
            if d.outcome == "accepted" and d.response["id"] == request.match_info["id"]:
                return web.json_response({**d.response, "body": d.body})
        return web.json_response({"error": "not found"}, status=404)


async def _serve(args: argparse.Namespace) -> None:
    receiver = WebhookReceiver(
        args.secret, delay=args.delay, print_deliveries=args.print, state_file=args.state_file
    )
    await receiver.start(args.host, args.port)
    print(f"webhook receiver listening on {receiver.hook_url}", file=sys.stderr, flush=True)
    try:
        await until_signalled()
    finally:
        await receiver.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--print", action="store_true", help="one line per delivery on stdout")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--state-file", help="append each delivery as a JSON line")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
