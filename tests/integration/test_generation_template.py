"""`content.template` in the sandbox: checked against sample data, rendered with feed and model
text as data, bounded in output and work."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.generation.template import (
    MAX_OUTPUT_CHARS,
    SAMPLE,
    TemplateProblem,
    check,
    render,
)


def test_a_template_using_every_variable_checks_clean() -> None:
    template = ("{{ occurrence.strftime('%Y-%m-%d %H:%M') }} {{ account.name }} on "
                "{{ account.platform }}: {{ item.title }} {{ item.link }} {{ item.summary }} "
                "{{ item.published.date() }} {{ generated }}")
    assert check(template) == []


def test_an_undefined_name_is_named_with_its_line() -> None:
    assert check("New: {{ itme.title }}") == [
        ("content.template", "line 1: 'itme' is undefined")]
    assert check("first\n{{ item.titel }}") == [
        ("content.template", "line 2: 'dict object' has no attribute 'titel'")]


def test_a_syntax_error_is_named_with_its_line() -> None:
    problems = check("ok\n{% for x in %}{% endfor %}", field="content.generate.prompt")
    assert len(problems) == 1
    field, message = problems[0]
    assert field == "content.generate.prompt"
    assert message.startswith("line 2: ")


def test_variables_the_post_lacks_are_undefined() -> None:
    """A post without a feed has no `item`; a prompt has no `generated`."""
    assert check("{{ item.title }}", available=("occurrence", "account")) == [
        ("content.template", "line 1: 'item' is undefined")]
    assert check("{{ generated }}", available=("occurrence", "account", "item")) != []
    assert check("{{ account.name }}", available=("occurrence", "account")) == []


def test_feed_text_is_data_never_a_template() -> None:
    item = {**SAMPLE["item"], "title": "{{ 7*7 }} {% for x in range(9) %}x{% endfor %}",
            "summary": "{{ ''.__class__ }}"}
    text = render("{{ item.title }} | {{ item.summary }} | {{ generated }}",
                  {"item": item, "generated": "{{ account.name }}"})
    assert text == ("{{ 7*7 }} {% for x in range(9) %}x{% endfor %} | {{ ''.__class__ }} | "
                    "{{ account.name }}")


def test_the_occurrence_renders_in_the_posts_zone() -> None:
    occurrence = datetime(2026, 3, 1, 8, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert render("{{ occurrence.strftime('%H:%M %Z') }}", {"occurrence": occurrence}) == (
        "09:00 CET")


def test_output_is_plain_text_not_escaped() -> None:
    assert render("{{ item.title }}", {"item": {"title": "Fish & <Chips>"}}) == "Fish & <Chips>"


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ account.__init__ }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ '{0.__class__}'.format(account) }}",
])
def test_the_sandbox_refuses_escapes_and_mutation(template: str) -> None:
    problems = check(template)
    assert problems and "unsafe" in problems[0][1]


@pytest.mark.parametrize("template, words", [
    ("{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}x",
     "iterations"),
    ("{% set r = range(100) | list %}{% for i in r %}{% for j in r %}{% for k in r %}"
     "{% endfor %}{% endfor %}{% endfor %}x", "iterations"),
    ("{% for c in item.summary * 1000 %}{% for d in item.summary * 1000 %}{% endfor %}"
     "{% endfor %}x", "iterations"),
    ("{% macro f(d) %}{% if d < 40 %}{{ f(d + 1) }}{{ f(d + 1) }}{% endif %}{% endmacro %}"
     "{{ f(0) }}x", "calls"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "line 1"),
    ("{{ 'x' * 10000000 }}", "'\\*' building"),
    ("{{ [0] * 10000000 }}", "'\\*' building"),
    ("{{ 9 ** 99999999 }}", "'\\*\\*' with an exponent"),
    (f"{{% for i in range(11) %}}{{{{ 'x' * {MAX_OUTPUT_CHARS // 10} }}}}{{% endfor %}}",
     "more than"),
])
def test_the_sandboxs_work_and_output_are_bounded(template: str, words: str) -> None:
    with pytest.raises(TemplateProblem, match=words):
        render(template, SAMPLE)


@pytest.mark.parametrize("template", [
    "{{ '%999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:>{w}}'.format(1, w=999999999) }}",
    "{{ 'x'.center(999999999) }}",
    "{{ 'x'.zfill(999999999) }}",
    "{{ 'x' | center(999999999) }}",
    "{{ '%999999999d' | format(1) }}",
    "{{ range(10) | slice(999999999) | list }}",
    "{{ ('a' * 100000).replace('a', 'b' * 100000) }}",
    "{{ ('a' * 100000) | replace('a', 'b' * 100000) }}",
    "{{ ('b' * 100000).join(range(100000) | map('string')) }}",
    "{{ range(100000) | map('string') | join('b' * 100000) }}",
])
def test_builtins_and_filters_cannot_build_huge_values(template: str) -> None:
    with pytest.raises(TemplateProblem, match=r"above 100000|could build more than"):
        render(template, SAMPLE)


def test_ordinary_formatting_still_works() -> None:
    template = ("{{ '%05.1f' % 3.14159 }}|{{ '{:>6}'.format('ab') }}|{{ 'ab' | center(6) }}|"
                "{{ item.title | replace(' ', '-') | upper }}|{{ [1, 2] | join(', ') }}|"
                "{{ '%s and %s' | format('a', 'b') }}|{{ item.summary | truncate(9) }}")
    assert render(template, SAMPLE) == (
        "003.1|    ab|  ab  |SAMPLE-TITLE|1, 2|a and b|Sample...")


def test_each_rendering_has_its_own_budget() -> None:
    template = "{% for i in range(90000) %}{% endfor %}ok"
    assert render(template, SAMPLE) == "ok"
    assert render(template, SAMPLE) == "ok"


def test_an_empty_rendering_is_a_problem() -> None:
    assert check("{% if false %}x{% endif %}  ") == [
        ("content.template", "renders to empty text")]
    with pytest.raises(TemplateProblem) as raised:
        render("{{ generated }}", {"generated": "   "})
    assert raised.value.permanent


def test_a_runtime_error_is_a_permanent_problem() -> None:
    """An item without a date breaks a template that formats it: this job fails for good."""
    with pytest.raises(TemplateProblem, match="line 1") as raised:
        render("{{ item.published.strftime('%d') }}", {"item": {"published": None}})
    assert raised.value.permanent
