"""`content.template` and `content.generate.prompt`: Jinja2 in its immutable sandbox with strict
undefined names and no autoescaping (the output is plain text, not HTML).

Only the operator's template is ever compiled; feed and model text arrive as variables, so a
title holding `{{ 7*7 }}` is printed as written. The sandbox already refuses attribute tricks
and mutation; here its work is bounded too: every loop iteration and every call of one
rendering draws on one budget (WORK_BUDGET); `*`, `**`, `%`, and the builtins and filters
called cannot build huge values (widths, counts and products of sizes are checked first);
the output stops at MAX_OUTPUT_CHARS.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    nodes,
    pass_context,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shared.generation.errors import GenerationFailed

#: Far above any platform's text limit; the platforms' own checks apply after.
MAX_OUTPUT_CHARS = 100_000
#: Loop iterations and calls (macros included) one rendering may make together: a few
#: milliseconds of work, far more than any post needs.
WORK_BUDGET = 100_000
#: What a builtin called from a template may build before its result is seen.
MAX_WORK_CHARS = 10 * MAX_OUTPUT_CHARS
#: Largest exponent `**` takes, and largest value `*` may build (characters or items).
MAX_EXPONENT = 100
#: The variables API.md names; a post without a feed or a model has fewer (see `check`).
VARIABLES = ("occurrence", "account", "item", "generated")

#: What `check` renders against: one value of every kind a real rendering passes.
SAMPLE: Mapping[str, Any] = {
    "occurrence": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
    "account": {"name": "Sample account", "platform": "mastodon"},
    "item": {"title": "Sample title", "link": "https://example.org/sample",
             "summary": "Sample summary.", "published": datetime(2026, 1, 4, 18, 0, tzinfo=UTC)},
    "generated": "Sample generated text.",
}


class TemplateProblem(GenerationFailed):
    """The template does not compile or render; the message names the line."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


_BUDGET = "__herald_work_budget"


class _Budget:
    def __init__(self, units: int) -> None:
        self.left = units

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise SecurityError(f"more than {WORK_BUDGET} loop iterations and calls")


@pass_context
def _budgeted(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    """What every `for` loop iterates through (see `_compile`): one unit per item."""
    budget: _Budget = context[_BUDGET]
    for value in iterable:
        budget.spend()
        yield value


#: A width or precision of a million characters or more, in a %-format or a str.format spec.
_HUGE_SPEC = re.compile(r"%[^%a-zA-Z]*\d{6,}|\{[^{}]*:[^{}]*\d{6,}[^{}]*\}")


def _bounded(args: Iterable[Any], what: str) -> None:
    """Refuse a number that would make a builtin build a huge value or loop long: a width
    (`center`, `ljust`, `indent`, `format`), a count (`slice`), anything above the output."""
    for value in args:
        if isinstance(value, int) and not isinstance(value, bool) and abs(
                value) > MAX_OUTPUT_CHARS:
            raise SecurityError(f"{what}: {value} is above {MAX_OUTPUT_CHARS}")
        if isinstance(value, str) and _HUGE_SPEC.search(value):
            raise SecurityError(f"{what}: a format width or precision above {MAX_OUTPUT_CHARS}")


def _multiplied(base: Any, args: Iterable[Any], what: str) -> None:
    """Refuse a builtin whose result may be its subject's size times an argument's (`replace`,
    `join`, `indent`) when that product is above MAX_WORK_CHARS."""
    if not isinstance(base, str | list | tuple):
        return
    longest = max((len(a) for a in args if isinstance(a, str | list | tuple)), default=0)
    if len(base) * longest > MAX_WORK_CHARS:
        raise SecurityError(f"{what}: could build more than {MAX_WORK_CHARS} characters")


def _sized(value: Any) -> Any:
    """A lazy iterable as a list, so that `_multiplied` can weigh what `join` would join."""
    if isinstance(value, Iterable) and not isinstance(value, str | list | tuple | Mapping):
        return list(value)
    return value


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, its arguments checked by `_bounded` and `_multiplied`."""
    skip = 2 if getattr(function, "jinja_pass_arg", None) else 1

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if name == "join" and len(args) >= skip:
            args = (*args[:skip - 1], _sized(args[skip - 1]), *args[skip:])
        arguments = [*args[skip:], *kwargs.values()]
        _bounded(arguments, f"filter {name}")
        if len(args) >= skip:
            _multiplied(args[skip - 1], arguments, f"filter {name}")
            if name == "format":
                _bounded([args[skip - 1]], "filter format")
        return function(*args, **kwargs)

    return guarded


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call(__self, __context: Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        __context[_BUDGET].spend()
        if isinstance(__obj, types.BuiltinMethodType):  # str.center, str.format, ...
            what = f"{getattr(__obj, '__name__', 'call')}()"
            subject = getattr(__obj, "__self__", None)
            if __obj.__name__ == "join" and args:
                args = (_sized(args[0]), *args[1:])
            _bounded([*args, *kwargs.values(), subject], what)
            _multiplied(subject, [*args, *kwargs.values()], what)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map`, which the sandbox runs through its own function
        rather than `call`, with their format and arguments checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        spec = value.__self__

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            arguments = [*args, *kwargs.values()]
            if value.__name__ == "format_map" and args and isinstance(args[0], Mapping):
                arguments = list(args[0].values())
            _bounded([spec, *arguments], f"{value.__name__}()")
            return wrapped(*args, **kwargs)

        return checked

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str):
                _bounded([left, *(right if isinstance(right, tuple) else (right,))], "'%'")
            return left % right
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"'**' with an exponent above {MAX_EXPONENT}")
            return left ** right
        for sized, count in ((left, right), (right, left)):
            if (isinstance(sized, str | list | tuple) and isinstance(count, int)
                    and len(sized) * count > MAX_OUTPUT_CHARS):
                raise SecurityError(f"'*' building more than {MAX_OUTPUT_CHARS} items")
        return left * right


_ENV = _Environment(undefined=StrictUndefined, autoescape=False)
_ENV.filters = {name: _guarded_filter(name, f) for name, f in _ENV.filters.items()}
_ENV.filters[_BUDGET] = _budgeted


def _compile(template: str) -> Template:
    """The template with every loop's iterable passed through `_budgeted`, whatever it is (a
    range, a list built by a filter, a string): nested loops cannot multiply the work."""
    tree = _ENV.parse(template)
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _BUDGET, [], [], None, None, lineno=loop.lineno)
    return _ENV.from_string(tree)


def _line(tb: TracebackType | None) -> int | None:
    """The template line of an error raised while rendering (Jinja rewrites the traceback so
    that the template's frames carry its line numbers)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _problem(exc: Exception) -> TemplateProblem:
    line = exc.lineno if isinstance(exc, TemplateSyntaxError) else _line(exc.__traceback__)
    message = exc.message if isinstance(exc, TemplateError) and exc.message else str(exc)
    return TemplateProblem(f"line {line}: {message}" if line else message)


def render(template: str, variables: Mapping[str, Any]) -> str:
    """The template's text for `variables`, stripped; TemplateProblem when it does not compile,
    names something undefined, breaks the sandbox's bounds, or comes out empty."""
    try:
        compiled = _compile(template)
        context = {**variables, _BUDGET: _Budget(WORK_BUDGET)}
        parts: list[str] = []
        size = 0
        for chunk in compiled.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateProblem(f"renders more than {MAX_OUTPUT_CHARS} characters")
            parts.append(chunk)
    except TemplateProblem:
        raise
    except Exception as exc:  # whatever the template's own code raised, recursion included
        raise _problem(exc) from None
    text = "".join(parts).strip()
    if not text:
        raise TemplateProblem("renders to empty text")
    return text


def check(template: str, *, field: str = "content.template",
          available: Collection[str] = VARIABLES) -> list[tuple[str, str]]:
    """The problems of `template` as (field, message), found by rendering it against sample
    data holding only the `available` variables (no `item` without a feed, no `generated`
    without a model, none of the two in a prompt); empty when it renders."""
    try:
        render(template, {name: SAMPLE[name] for name in available})
    except TemplateProblem as exc:
        return [(field, str(exc))]
    return []
