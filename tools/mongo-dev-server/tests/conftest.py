"""Dev servers for the index tests: each backend, started through tools/mongo-dev-server.sh
(which rebuilds the jar when the sources changed) and stopped by the PID we started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tools import devservers


@pytest.fixture(scope="module", params=["memory", "h2"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[MongoClient[dict[str, Any]]]:
    data: Path | None = None
    if request.param == "h2":
        data = tmp_path_factory.mktemp("h2") / "store.h2"
    server = devservers.start_mongo(backend=request.param, data=data)
    try:
        mongo: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://127.0.0.1:{server.port}/",
                                                         tz_aware=True)
        with mongo:
            yield mongo
    finally:
        server.stop()
