"""A node started before its databases: alive at once (a liveness probe must not restart it
while it waits out an outage), not ready and its API 503 until MongoDB and Redis answer, then
up as usual; and a SIGTERM while it waits stops it cleanly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN
from tools import devservers
from tools.localcluster import Node, http_json

#: Hang guards only: how fast the node gets there is not what these tests measure.
DEADLINE_SECONDS = 60.0


@pytest.fixture
def waiting_node(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Node, int, int]]:
    """A `herald all` node pointed at a MongoDB port and a Redis port nothing listens on; the
    node and those ports. Stopped (killed if it does not exit) after the test."""
    mongo_port, redis_port = devservers.free_port(), devservers.free_port()
    node = Node("all", env["HERALD_NODE_ID"], {
        **env,
        "MONGODB_URI": f"mongodb://127.0.0.1:{mongo_port}/herald_startup",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }, tmp_path / "node.log")
    node.start()
    try:
        yield node, mongo_port, redis_port
    finally:
        node.stop()


def until(check: Callable[[], tuple[int, Any] | None], node: Node) -> tuple[int, Any]:
    """Poll `check` until it returns an answer; fails with the node's log at the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert node.alive, node.log_tail()
        answer = check()
        if answer is not None:
            return answer
        time.sleep(0.1)
    raise AssertionError(f"no answer within {DEADLINE_SECONDS:.0f}s\n{node.log_tail()}")


def answers(node: Node, path: str, status: int | None = None) -> tuple[int, Any] | None:
    """GET `path`: the answer (with `status` only, when given), or None while not listening."""
    try:
        answer = http_json("GET", node.url + path, token=ADMIN_TOKEN, timeout=5)
    except OSError:
        return None
    return answer if status is None or answer[0] == status else None


def test_serves_health_before_the_databases_then_comes_up(
    waiting_node: tuple[Node, int, int],
) -> None:
    node, mongo_port, redis_port = waiting_node
    assert until(lambda: answers(node, "/healthz"), node) == (200, {"status": "ok"})
    status, body = http_json("GET", node.url + "/readyz")
    assert status == 503 and body["status"] == "starting"
    assert body["mongodb"] != "ok" and body["redis"] != "ok"
    status, body = http_json("GET", node.url + "/api/v1/cluster", token=ADMIN_TOKEN)
    assert status == 503 and body["error"]["code"] == "unavailable"
    assert set(body["error"]) == {"code", "message", "details"}

    servers = [devservers.start_redis(redis_port)]
    try:
        servers.append(devservers.start_mongo(mongo_port))
        status, body = until(lambda: answers(node, "/readyz", 200), node)
        assert body == {"status": "ok", "mongodb": "ok", "redis": "ok"}
        status, body = until(lambda: answers(node, "/api/v1/cluster", 200), node)
        assert status == 200 and body
        assert http_json("GET", node.url + "/healthz") == (200, {"status": "ok"})
        assert node.terminate(DEADLINE_SECONDS) == 0, node.log_tail()
    finally:
        for server in servers:
            server.stop()


def test_sigterm_while_waiting_for_the_databases_exits_cleanly(
    waiting_node: tuple[Node, int, int],
) -> None:
    node, _, _ = waiting_node
    until(lambda: answers(node, "/readyz", 503), node)
    assert node.terminate(DEADLINE_SECONDS) == 0, node.log_tail()
