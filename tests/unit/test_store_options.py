"""The bounds Herald puts on MongoDB calls apply unless the connection string sets its own."""

from __future__ import annotations

import pytest

from shared.store import Store


@pytest.mark.parametrize(("uri", "selection", "socket"), [
    ("mongodb://127.0.0.1:1/herald", 5.0, 20.0),
    ("mongodb://127.0.0.1:1/herald?serverSelectionTimeoutMS=1000&socketTimeoutMS=3000", 1.0, 3.0),
])
async def test_the_uri_overrides_the_store_timeouts(uri: str, selection: float,
                                                    socket: float) -> None:
    store = Store(uri, "herald")
    try:
        options = store.client.options
        assert options.server_selection_timeout == selection
        assert options.pool_options.socket_timeout == socket
    finally:
        await store.client.close()
