"""`make services` / `make services-down`: the servers answer at the URLs written to the env
file, starting or stopping twice is harmless, and stopping leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[2]


def services(action: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HERALD_STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "tools.devservers", action], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=True)


def read_env(state: Path) -> dict[str, str]:
    lines = (state / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent, the launcher, has exited).
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.timeout(300)
def test_services_up_and_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    services("up", state)
    env = read_env(state)
    pids = [int(env["REDIS_PID"]), int(env["MONGO_PID"])]
    try:
        with MongoClient(env["MONGODB_URI"], serverSelectionTimeoutMS=5000) as client:
            client.get_default_database()["probe"].insert_one({"_id": 1})
            assert client.server_info()["version"].startswith("4.4")
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        again = services("up", state)
        assert "already running" in again.stdout
        assert read_env(state) == env
    finally:
        services("down", state)
    assert not any(alive(pid) for pid in pids)
    assert not (state / "env").exists()
    services("down", state)
    assert (state / "herald.h2").exists(), "the H2 data file is kept for the next start"
