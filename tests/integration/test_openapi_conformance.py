"""Schemathesis against the served OpenAPI document, for the accounts, posts and jobs
operations: a request the document calls valid is not refused, none is a server error, and every
answer has a documented status, content type and shape. Each operation gets schemathesis'
coverage cases (every schema's boundaries, in a fixed order), then derandomized generated ones.

What no schema can state is arranged, or allowed for, here and nowhere else:
- posts go to an account this test made (`account_ids` must name existing accounts);
- generated accounts are on platforms whose provider does not call the platform at creation
  (Bluesky trades the app password for a session, LinkedIn looks the member up), since no
  platform is reachable here and that would be a 503, not a refusal;
- the formats the document names for a cron schedule, `cron` and `time-zone`, are drawn from
  valid values;
- a 422 is accepted when each of its details is a rule of time or of the target platform: a
  schedule already missed or that cannot fire, a time whose offset carries it outside the years
  1 to 9999 in UTC (the document says so in words: JSON Schema compares no instants), content
  beyond that platform's limits (API.md: the details name the field and the platform), media
  ids that name no uploaded item (generated ids name nothing), and generated content that the
  server can only judge by rendering, fetching or calling it (GENERATED_FIELDS);
- generated ids name nothing (404 once the body is checked), so `PATCH /accounts/{id}` also
  runs against an existing account, with that account's platform's keys: the document offers
  every platform's, since it cannot know the account's.
`POST /accounts/connect` is left out: it needs the installation's OAuth client for the platform
(`HERALD_<PLATFORM>_CLIENT_ID`), which is configuration, not the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import available_timezones

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import unregister_string_format
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.models import OUT_OF_RANGE
from shared.providers.base import Provider
from shared.providers.registry import PROVIDERS
from shared.runtime import Runtime
from tests.integration.api_support import serve_api

#: Generated examples per operation, after its coverage cases: the test takes about 20 s.
EXAMPLES = 25
CALLS_OUT = frozenset(p for p, cls in PROVIDERS.items() if cls.connect is not Provider.connect)
CRONS = ["0 9 * * 1-5", "*/15 * * * *", "30 6 1 * *", "0 0 * * 0", "5 4 * * *"]
#: Rules of time a 422 on a schedule may name (scheduler.api.checks, CronSchedule), which a
#: schema cannot state: it knows neither the clock nor how two times compare.
TIME_RULES = ("in the past", "never fires", "does not fire before end_at",
              "end_at must be after start_at")
Check = Callable[[CheckContext, Response, Case], bool | None]
#: Generated content is known only by trying it: a template or prompt by rendering it against
#: sample data (a syntax error, an undefined name), a feed by fetching it (none is reachable
#: here), a model by its configuration (none here).
GENERATED_FIELDS = frozenset({"content.template", "content.generate.prompt",
                              "content.generate.image", "content.source.feed",
                              "content.generate"})


def _within_rules(body: Any, platform: str) -> bool:
    """Every detail is a schedule missed or that cannot fire, a time out of range in UTC, a
    limit of `platform`, a media id that names no uploaded item, or generated content the
    server must try to know (GENERATED_FIELDS)."""
    details = body["error"]["details"]
    return bool(details) and all(
        (d["field"].startswith("schedule") and any(r in d["message"] for r in TIME_RULES))
        or d["message"] == OUT_OF_RANGE
        or (d["field"].startswith("content") and d["message"].startswith(f"{platform}: "))
        or (d["field"].startswith("content") and d["message"].startswith("no media with id"))
        or d["field"] in GENERATED_FIELDS
        for d in details
    )


def _accepted(platform: str) -> Check:
    def positive_data_accepted(ctx: CheckContext, response: Response, case: Case) -> bool | None:
        """Schemathesis' positive data acceptance, but for the 422s described above."""
        if response.status_code == 422 and _within_rules(response.json(), platform):
            return None
        result: bool | None = positive_data_acceptance(ctx, response, case)
        return result

    return positive_data_accepted


def _stays_off_the_network(case: Case) -> bool:
    return not isinstance(case.body, dict) or case.body.get("platform") not in CALLS_OUT


def _to_account(account_id: str) -> Callable[[Case], Case]:
    def addressed(case: Case) -> Case:
        if isinstance(case.body, dict) and "account_ids" in case.body:
            case.body["account_ids"] = [account_id]
        return case

    return addressed


def _keys_of(platform: str) -> Callable[[Case], bool]:
    provider = PROVIDERS[platform]

    def only_its_keys(case: Case) -> bool:
        body = case.body if isinstance(case.body, dict) else {}
        return (set(body.get("config", {})) <= set(provider.Config.model_fields)
                and set(body.get("credentials", {})) <= set(provider.Credentials.model_fields))

    return only_its_keys


def _at(account_id: str) -> Callable[[Case], Case]:
    def addressed(case: Case) -> Case:
        case.path_parameters = {"id": account_id}
        return case

    return addressed


@dataclass(frozen=True)
class Run:
    """An operation's cases, those `keep` refuses left out and the rest `arrange`d."""

    operation: APIOperation
    keep: Callable[[Case], bool]
    arrange: Callable[[Case], Case]

    def cases(self) -> Iterator[Case]:
        """Coverage cases: the shortest string a pattern takes, the smallest integer, each
        branch of a union, and so on."""
        schema = self.operation.schema
        for case in schema.iter_coverage_cases(
                self.operation, generation_modes=[GenerationMode.POSITIVE],
                generation_config=schema.config.generation_for(operation=self.operation)):
            if self.keep(case):
                yield self.arrange(case)

    def generated(self) -> st.SearchStrategy[Case]:
        return self.operation.as_strategy(GenerationMode.POSITIVE).filter(self.keep).map(
            self.arrange)


@contextmanager
def _formats() -> Iterator[None]:
    formats = {"cron": st.sampled_from(CRONS),
               "time-zone": st.sampled_from(sorted(available_timezones()))}
    for name, strategy in formats.items():
        schemathesis.openapi.format(name, strategy)
    try:
        yield
    finally:
        for name in formats:
            unregister_string_format(name)


def _failure(run: Run, root: str, headers: dict[str, str], checks: list[Check]) -> str | None:
    """The first case that fails a check, or None; generated cases are not shrunk, since each
    step is a request."""

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=run.generated())
    def conforms(case: Case) -> None:
        case.call_and_validate(base_url=root, headers=headers, checks=checks)

    try:
        for case in run.cases():
            case.call_and_validate(base_url=root, headers=headers, checks=checks)
        conforms()
    except (AssertionError, BaseExceptionGroup) as failure:
        return f"{run.operation.label}: {failure}"
    return None


def _run(root: str, token: str, target: dict[str, Any], patched: dict[str, Any]) -> list[str]:
    """Every operation in turn, then the PATCH of `patched`; in a thread, since the server
    runs on the test's event loop."""
    schema = schemathesis.openapi.from_url(f"{root}/api/v1/openapi.json").include(
        tag=["accounts", "posts", "jobs"]).exclude(path="/api/v1/accounts/connect")
    headers = {"Authorization": f"Bearer {token}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance, _accepted(target["platform"])]
    runs = [Run(result.ok(), _stays_off_the_network, _to_account(target["id"]))
            for result in schema.get_all_operations()]
    runs.append(Run(schema["/api/v1/accounts/{id}"]["PATCH"], _keys_of(patched["platform"]),
                    _at(patched["id"])))
    failures = (_failure(run, root, headers, checks) for run in runs)
    return [f for f in failures if f is not None]


async def test_the_server_accepts_what_the_document_describes(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        target = await api.account()
        patched = await api.account(name="patched-hook")
        root = str(api.client.make_url("/")).rstrip("/")
        with _formats():
            found = await asyncio.to_thread(_run, root, api.token, target, patched)
    assert not found, "\n\n".join(found)
