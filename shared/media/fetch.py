"""Media named by URL, fetched by Herald at publish time (and feeds, shared/generation/feeds.py):
bounded in time, refused from private, loopback, link-local and other non-public addresses
unless HERALD_ALLOW_PRIVATE_URLS is set.

The check is on the addresses a connection is made to, not on the host's name: a resolver
refuses a name with any non-public address among its answers, and the connection then uses
the very addresses it checked (no second lookup a rebinding name could answer otherwise). An
address written in the URL skips resolvers, so each hop's host is checked here too, and
redirects are followed one by one for that reason.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from shared.providers.base import Permanent, Transient

#: Connect, per read, and whole-download bounds: a slow origin fails the attempt (Transient)
#: rather than holding an executor slot; a gigabyte at 2 MB/s fits the total.
CONNECT_SECONDS = 10.0
READ_SECONDS = 30.0
TOTAL_SECONDS = 15 * 60.0
MAX_REDIRECTS = 5
READ_CHUNK = 256 * 1024


class PrivateAddress(Permanent):
    """The URL leads to an address that is not public."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicResolver(AbstractResolver):
    """The system's answers for a name, refused whole when any of them is not public."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        if not answers or not all(is_public(a["host"]) for a in answers):
            raise PrivateAddress(f"host {host} resolves to a non-public address")
        return answers

    async def close(self) -> None:
        await self._inner.close()


def fetch_session(allow_private: bool) -> aiohttp.ClientSession:
    """The session media URLs are fetched with, kept apart from the platforms' session. It
    keeps no cookies: the URLs of one post must not be fetched with cookies another's set."""
    connector = aiohttp.TCPConnector(
        resolver=None if allow_private else PublicResolver(), use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(
                                     total=TOTAL_SECONDS, sock_connect=CONNECT_SECONDS,
                                     sock_read=READ_SECONDS))


def _checked(url: URL, allow_private: bool, what: str) -> URL:
    if url.scheme not in ("http", "https") or not url.host:
        raise Permanent(f"{what} {url.scheme}://… is not an http(s) URL")
    if not allow_private:
        try:
            literal = is_public(url.host)
        except ValueError:  # a name: the resolver checks its addresses
            return url
        if not literal:
            raise PrivateAddress(f"{what} host {url.host} is not a public address")
    return url


@asynccontextmanager
async def opened(session: aiohttp.ClientSession, url: str, allow_private: bool, *,
                 headers: Mapping[str, str] | None = None,
                 what: str = "media URL") -> AsyncIterator[aiohttp.ClientResponse]:
    """The response of `url` after its redirects, with a 2xx status (or a 304 when `headers`
    make the request conditional): Permanent for a refused address or a 4xx, Transient for a
    5xx, a timeout or a failed connection. The URL itself is left out of the messages: a signed
    URL carries its credential in the query. `what` names the URL's use in them."""
    conditional = bool(headers) and any(
        name.lower() in ("if-none-match", "if-modified-since") for name in headers or {})
    target = _checked(URL(url), allow_private, what)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response = await session.get(target, allow_redirects=False, headers=headers)
        except PrivateAddress as exc:
            raise PrivateAddress(f"{what} {exc}") from None
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.__cause__, PrivateAddress):
                raise PrivateAddress(f"{what} {exc.__cause__}") from None
            raise Transient(f"{what} host {target.host} could not be resolved") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Transient(f"{what} on {target.host} failed: {type(exc).__name__}") from None
        if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
            location = response.headers["Location"]
            response.release()
            target = _checked(target.join(URL(location)), allow_private, what)
            continue
        try:
            if response.status >= 500 or response.status == 429:
                raise Transient(f"{what} on {target.host} answered {response.status}")
            if response.status >= 300 and not (conditional and response.status == 304):
                raise Permanent(f"{what} on {target.host} answered {response.status}")
            yield response
        finally:
            response.release()
        return
    raise Permanent(f"{what} redirects more than {MAX_REDIRECTS} times")


async def body(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The response's bytes as they arrive; a stalled or broken download is Transient."""
    try:
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Transient(f"media download broke off: {type(exc).__name__}") from None
