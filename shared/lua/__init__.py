"""Lua scripts, each in its own file, registered once per Redis client."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


@cache
def source(name: str) -> str:
    return files(__package__).joinpath(f"{name}.lua").read_text()


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.pop_due: AsyncScript = redis.register_script(source("pop_due"))
        self.stage: AsyncScript = redis.register_script(source("stage"))
        self.gcra: AsyncScript = redis.register_script(source("gcra"))
        self.daily_quota: AsyncScript = redis.register_script(source("daily_quota"))
