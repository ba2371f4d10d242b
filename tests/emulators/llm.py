"""An OpenAI-compatible endpoint: `POST /v1/chat/completions` and `POST /v1/images/generations`,
answering and refusing as OpenAI's API documents (bearer key, known model, well-formed
messages; errors as `{"error": {"message", "type", "param", "code"}}`).

Each request spends the next scripted answer, or gets the default one. Control,
`POST /_control` with any of:
`{"script": [answer, ...]}` (appended), `{"default": "text"}`, `{"reset": true}`, where an
answer is one of
`{"kind": "text", "text": "..."}`, `{"kind": "refusal", "text": "..."}` (a chat refusal; an
image request gets a 400 content_policy_violation), `{"kind": "empty"}`,
`{"kind": "length", "text": "cut sh"}` (`finish_reason: "length"`),
`{"kind": "content_filter"}`, `{"kind": "rate_limit", "retry_after": 0.2}` (a 429),
`{"kind": "error", "status": 503}`, `{"kind": "slow", "delay": 2.0, "text": "..."}`.
`GET /_state` → `{"requests": [{"path", "body"}], "script": [...]}`.
Run alone: `python -m tests.emulators llm`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import time
from typing import Any

from aiohttp import web
from PIL import Image

from tests.emulators.platform import bearer, json_object, listen

API_KEY = "sk-emulator"
MODELS = frozenset({"herald-test-model", "dall-e-2", "gpt-image-1"})
KINDS = frozenset({"text", "refusal", "empty", "length", "content_filter", "rate_limit",
                   "error", "slow"})
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


def error(status: int, message: str, kind: str, code: str | None = None,
          param: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
        status=status, headers=headers)


class LlmEmulator:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.script: list[dict[str, Any]] = []
        self.default = "A generated post."
        self.requests: list[dict[str, Any]] = []
        self.base_url = ""
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # --- serving ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_post("/_control", self._control)
        app.router.add_get("/_state", self._state)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner, self.base_url = await listen(self.app(), host, port)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the API ------------------------------------------------------------------------------

    async def _admitted(self, request: web.Request) -> tuple[dict[str, Any] | None,
                                                             web.Response | None]:
        """The request's body, or the API's refusal of it (key, JSON, model). Every request is
        kept, refused or not."""
        body = await json_object(request)
        self.requests.append({"path": request.path, "body": body})
        if bearer(request) != self.api_key:
            return None, error(401, "Incorrect API key provided.", "invalid_request_error",
                               "invalid_api_key")
        if body is None:
            return None, error(400, "We could not parse the JSON body of your request.",
                               "invalid_request_error")
        model = body.get("model")
        if request.path.endswith("/images/generations") and model is None:
            model = "dall-e-2"
        if not isinstance(model, str) or model not in MODELS:
            return None, error(404, f"The model `{model}` does not exist.",
                               "invalid_request_error", "model_not_found", "model")
        return body, None

    async def _scripted(self) -> tuple[dict[str, Any], web.Response | None]:
        """The next answer, after its delay; a response when it is a failure."""
        answer = self.script.pop(0) if self.script else {"kind": "text", "text": self.default}
        if answer["kind"] == "slow":
            await asyncio.sleep(float(answer.get("delay", 2.0)))
        if answer["kind"] == "rate_limit":
            retry_after = str(answer.get("retry_after", 1))
            return answer, error(429, "Rate limit reached for requests.", "requests",
                                 "rate_limit_exceeded", headers={"Retry-After": retry_after})
        if answer["kind"] == "error":
            return answer, error(int(answer.get("status", 500)),
                                 "The server had an error while processing your request.",
                                 "server_error")
        return answer, None

    async def _chat(self, request: web.Request) -> web.Response:
        body, refused = await self._admitted(request)
        if refused is not None or body is None:
            return refused or web.Response(status=500)
        messages = body.get("messages")
        if (not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and m.get("role") in ROLES
                and isinstance(m.get("content"), str) for m in messages)):
            return error(400, "Invalid 'messages': expected a non-empty array of messages "
                              "with a role and string content.", "invalid_request_error",
                         "invalid_value", "messages")
        answer, failed = await self._scripted()
        if failed is not None:
            return failed
        kind = answer["kind"]
        content: str | None = answer.get("text", self.default)
        refusal = None
        finish = "stop"
        if kind == "refusal":
            content, refusal = None, answer.get("text", "I'm sorry, I can't help with that.")
        elif kind == "empty":
            content = ""
        elif kind == "length":
            finish = "length"
        elif kind == "content_filter":
            content, finish = None, "content_filter"
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        completion_tokens = len((content or refusal or "").split())
        return web.json_response({
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion",
            "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content,
                                     "refusal": refusal, "annotations": []}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    async def _images(self, request: web.Request) -> web.Response:
        body, refused = await self._admitted(request)
        if refused is not None or body is None:
            return refused or web.Response(status=500)
        model = str(body.get("model", "dall-e-2"))
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            return error(400, "Missing required parameter: 'prompt'.", "invalid_request_error",
                         "missing_required_parameter", "prompt")
        response_format = body.get("response_format")
        if model.startswith("gpt-image") and response_format is not None:
            return error(400, "Unknown parameter: 'response_format'.", "invalid_request_error",
                         "unknown_parameter", "response_format")
        if response_format not in (None, "url", "b64_json"):
            return error(400, f"Invalid value: '{response_format}'.", "invalid_request_error",
                         "invalid_value", "response_format")
        answer, failed = await self._scripted()
        if failed is not None:
            return failed
        if answer["kind"] == "refusal":
            return error(400, "Your request was rejected as a result of our safety system.",
                         "image_generation_user_error", "content_policy_violation")
        data: list[dict[str, Any]] = []
        if answer["kind"] != "empty":
            if response_format == "b64_json" or model.startswith("gpt-image"):
                data.append({"b64_json": base64.b64encode(PNG).decode("ascii")})
            else:
                data.append({"url": f"{self.base_url}/_images/{next(self._ids)}.png"})
        return web.json_response({"created": int(time.time()), "data": data})

    # --- control ------------------------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.Response:
        change = await json_object(request)
        if change is None:
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        unknown = set(change) - {"script", "default", "reset"}
        if unknown:
            return web.json_response({"error": f"unknown keys {sorted(unknown)}"}, status=400)
        script = change.get("script", [])
        if not isinstance(script, list) or not all(
                isinstance(a, dict) and a.get("kind") in KINDS for a in script):
            return web.json_response({"error": f"script: answers of kinds {sorted(KINDS)}"},
                                     status=400)
        if change.get("reset"):
            self.script.clear()
            self.requests.clear()
            self.default = "A generated post."
        if "default" in change:
            self.default = str(change["default"])
        self.script.extend(script)
        return web.json_response(self.state())

    def state(self) -> dict[str, Any]:
        return {"requests": self.requests, "script": self.script}

    async def _state(self, _request: web.Request) -> web.Response:
        return web.json_response(self.state())


EMULATOR = LlmEmulator
