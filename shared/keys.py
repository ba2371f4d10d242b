"""Redis key names. Every key carries the cluster name as its hash tag, so the keys one Lua
script touches live in one Redis Cluster slot."""

from __future__ import annotations

from shared.models import Priority

LANES = (Priority.HIGH, Priority.NORMAL)


class Keys:
    def __init__(self, cluster: str) -> None:
        self.prefix = f"herald:{{{cluster}}}"
        self.leader = f"{self.prefix}:leader"
        self.wake = f"{self.prefix}:wake"
        self.events = f"{self.prefix}:events"
        self.generation = f"{self.prefix}:generation"
        #: Jobs whose content is to be generated, scored by when (DESIGN §10).
        self.generate_lane = f"{self.prefix}:generate"
        self.sweep_lock = f"{self.prefix}:lock:sweep"

    def lane(self, priority: Priority | str) -> str:
        return f"{self.prefix}:due:{Priority(priority).value}"

    @property
    def lanes(self) -> list[str]:
        return [self.lane(p) for p in LANES]

    def job_lock(self, job_id: str) -> str:
        return f"{self.prefix}:lock:job:{job_id}"

    def refresh_lock(self, account_id: str) -> str:
        return f"{self.prefix}:lock:refresh:{account_id}"

    def budget(self, scope: str) -> str:
        return f"{self.prefix}:budget:{scope}"
