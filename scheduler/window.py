"""The window check (DESIGN §4): materialise cron occurrences up to the horizon, then make sure
every job due before the horizon is in the due queue. Runs on the leader only.

Both passes stream with cursors in batches; nothing loads the whole collection. The second pass
also rebuilds the queue after Redis lost it (shared.staging).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from scheduler.planning import materialise
from shared.logging import get_logger
from shared.metrics import WINDOW_CHECKS
from shared.models import PostStatus, generate_ahead
from shared.runtime import Runtime
from shared.staging import always, stage_due
from shared.store import Doc

log = get_logger(__name__)

BATCH = 500


async def window_check(
    rt: Runtime, epoch: int, active: Callable[[], bool] = always
) -> dict[str, int]:
    """One check; `active` is asked between batches, so a deposed leader stops within one."""
    now = rt.clock.now_dt()
    until = now + timedelta(seconds=rt.settings.horizon_seconds)
    materialised = await _materialise_recurring(rt, until, active)
    staged = await stage_due(rt, until, source="window", epoch=epoch, active=active)
    WINDOW_CHECKS.inc()
    # The console's overview shows when the leader last checked, whichever node serves it.
    await rt.store.cluster.update_one(
        {"_id": "window"}, {"$set": {"at": now, "epoch": epoch, "node_id": rt.settings.node_id,
                                     "materialised": materialised, "staged": staged}},
        upsert=True)
    log.info("window_check", epoch=epoch, materialised=materialised, staged=staged)
    return {"materialised": materialised, "staged": staged}


async def _materialise_recurring(rt: Runtime, until: Any, active: Callable[[], bool]) -> int:
    created = 0
    accounts: dict[str, Doc] = {}
    async with rt.store.posts.find(
        {"status": str(PostStatus.SCHEDULED), "recurring": True}, batch_size=BATCH
    ) as cursor:
        async for post in cursor:
            if not active():
                break
            if post.get("materialised_until") and (
                    post["materialised_until"] >= until + generate_ahead(post)):
                continue
            missing = [a for a in post["account_ids"] if a not in accounts]
            if missing:
                async for account in rt.store.accounts.find({"_id": {"$in": missing}}):
                    accounts[account["_id"]] = account
            targets = [accounts[a] for a in post["account_ids"] if a in accounts]
            created += len(await materialise(rt, post, targets, until))
    return created
