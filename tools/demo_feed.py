"""The `make run` demo's own RSS feed on 127.0.0.1, so the feed-driven demo post has something
new to publish with no network: a few items at start, one more each `every` seconds (added by
`add_due_items`, which the demo's loop calls), and a small page per item for its link. Served by
the standard library's HTTP server from a thread of the demo process, with an ETag so Herald's
conditional requests get 304 while nothing changed."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Item:
    number: int
    title: str
    link: str
    published: datetime


class DemoFeed:
    """`start()` serves `/feed.xml` and `/items/N`; `stop()` ends the server thread."""

    def __init__(self, port: int = 0, *, initial: int = 3, every: float = 120,
                 clock: Callable[[], float] = time.time) -> None:
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-feed",
                                        daemon=True)
        self._next_at = clock() + every
        for _ in range(initial):
            self._add()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base_url + "/feed.xml"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def items(self) -> list[Item]:
        with self._lock:
            return list(self._items)

    def add_due_items(self) -> list[Item]:
        """The items whose time came since the last call (one per `every` seconds)."""
        added = []
        while self._clock() >= self._next_at:
            added.append(self._add())
            self._next_at += self.every
        return added

    def _add(self) -> Item:
        with self._lock:
            number = len(self._items) + 1
            # Short: the demo's receiver prints the first 60 characters of a post.
            item = Item(number, f"Demo news #{number}", f"{self.base_url}/items/{number}",
                        datetime.fromtimestamp(self._clock(), UTC))
            self._items.append(item)
            return item

    def rss(self) -> bytes:
        """RSS 2.0, newest item first, as most feeds list them."""
        entries = "".join(
            f"<item><title>{escape(i.title)}</title><link>{escape(i.link)}</link>"
            f'<guid isPermaLink="true">{escape(i.link)}</guid>'
            f"<pubDate>{format_datetime(i.published, usegmt=True)}</pubDate>"
            f"<description>{escape(i.title)}, from the demo's own feed.</description></item>"
            for i in reversed(self.items()))
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Herald demo feed</title><link>{escape(self.base_url)}/</link>"
                f"<description>A new item every {self.every:g} s</description>{entries}"
                f"</channel></rss>").encode()

    def page(self, number: int) -> bytes | None:
        item = next((i for i in self.items() if i.number == number), None)
        if item is None:
            return None
        return (f"<!doctype html><meta charset=utf-8><title>{escape(item.title)}</title>"
                f"<h1>{escape(item.title)}</h1><p>Published {item.published:%Y-%m-%d %H:%M:%S} "
                f"UTC in the Herald demo feed.</p>").encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/feed.xml":
                    body = feed.rss()
                    etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
                    if self.headers.get("If-None-Match") == etag:
                        self._answer(304, b"", "application/rss+xml", etag)
                    else:
                        self._answer(200, body, "application/rss+xml; charset=utf-8", etag)
                    return
                number = self.path.removeprefix("/items/")
                page = feed.page(int(number)) if number.isdigit() else None
                if page is None:
                    self._answer(404, b"not found\n", "text/plain; charset=utf-8")
                else:
                    self._answer(200, page, "text/html; charset=utf-8")

            def _answer(self, status: int, body: bytes, content_type: str,
                        etag: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if etag is not None:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the demo's terminal shows deliveries, not feed requests."""

        return Handler
