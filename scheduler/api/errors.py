"""The API's one error format, and the middleware that puts every failure into it.

A request that fails gets `{"error": {"code", "message", "details"}}`. A lost MongoDB or Redis
connection is a 503 the client may retry, never a 500 blamed on its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scheduler.api.schemas import UNION_TAGS, ErrorBody, ErrorDetail, ErrorInfo
from shared.logging import get_logger

log = get_logger(__name__)

Problem = tuple[str, str]
"""(field path, message), the form providers report problems in."""

UNAVAILABLE = (ConnectionFailure, RedisConnectionError, RedisTimeoutError)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, details: Iterable[Problem] = (), code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _HTTP_CODES.get(status, "error")
        self.message = message
        self.details = list(dict.fromkeys(details))  # ordered, without repeats

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.details)


def error_response(
    status: int, code: str, message: str, details: Sequence[Problem] = (),
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = ErrorBody(error=ErrorInfo(
        code=code, message=message,
        details=[ErrorDetail(field=f, message=m) for f, m in details],
    ))
    return web.json_response(text=body.model_dump_json(), status=status, headers=headers)


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"no {kind} with id {ident!r}")


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def invalid(problems: Iterable[Problem]) -> ApiError:
    return ApiError(422, "the request is invalid", problems)


def unavailable(message: str) -> ApiError:
    """A platform Herald must ask could not be reached: retry later, nothing was stored."""
    return ApiError(503, message, code="platform_unavailable")


def bad_request(message: str, details: Iterable[Problem] = (), code: str | None = None
                ) -> ApiError:
    return ApiError(400, message, details, code=code)


def field_path(loc: Sequence[int | str]) -> str:
    """`("account_ids", 0)` → `account_ids.0`; union tags are not part of what the client sent."""
    return ".".join(str(part) for part in loc if part not in UNION_TAGS) or "body"


def from_validation(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    for e in errors:
        if e["type"] == "json_invalid":
            reason = e["msg"].removeprefix("Invalid JSON: ")
            return ApiError(400, f"the body is not valid JSON: {reason}", code="invalid_json")
    return invalid(
        (field_path(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in errors
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
        return error_response(exc.status, _HTTP_CODES.get(exc.status, "error"), exc.reason,
                              headers=headers)
    except UNAVAILABLE as exc:
        log.warning("api_backend_unavailable", path=request.path, error=type(exc).__name__)
        return error_response(503, "unavailable", "MongoDB or Redis is unreachable; retry later")
    except Exception:
        log.exception("api_internal_error", method=request.method, path=request.path)
        return error_response(500, "internal_error", "internal error; see the server log")
