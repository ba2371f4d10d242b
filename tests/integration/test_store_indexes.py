"""The indexes Herald keeps: created on start, and those of earlier versions that a current one
serves dropped, so an upgraded deployment stops paying for them on every job write."""

from __future__ import annotations

from shared.runtime import Runtime
from shared.store import RETIRED_JOB_INDEXES


async def test_an_upgrade_drops_the_retired_job_indexes(runtime: Runtime) -> None:
    jobs = runtime.store.jobs
    await jobs.create_index([("account_id", 1), ("state", 1)], name="account_state")
    assert "account_state" in await jobs.index_information()
    await runtime.store.ensure_indexes()
    names = set(await jobs.index_information())
    assert names.isdisjoint(RETIRED_JOB_INDEXES)
    assert {"list_by_account_state", "state_due", "one_job_per_occurrence"} <= names
    await runtime.store.ensure_indexes()
    assert set(await jobs.index_information()) == names
