"""Fetch feeds: conditional GETs over http(s) within limits, or reads of local files.

The only module that imports aiohttp (the HTTP client) and httpx (whose URL parser checks
every URL before aiohttp gets its exact text, and which makes the TLS context).
``Fetcher.fetch`` and ``Fetcher.fetch_many`` never raise for network, HTTP or policy
trouble: each returns FetchResults whose ``error`` says what happened.

Guards (the security notes, §2): http/https only and no user
info; redirects followed here, hop by hop, each hop checked again and never to file:;
every address a host resolves to must be public unless the feed allows private networks
(also when a proxy carries the request), and a direct connection goes only to an address
checked where it connects (_PinningResolver with netguard's policy, against DNS
rebinding); one deadline for the whole fetch; the body is counted as it streams, after
decompression, which is done here with bounded output (aiohttp's own decoding is off).
Credentials (basic auth, Authorization and Cookie headers) go to the feed's own origin
only, never across a redirect to another one; aiohttp keeps no cookies.

Concurrency: an event loop on a thread the Fetcher owns runs the fetches. At most
``max_in_flight`` requests are out at once and ``max_per_host`` to one host; a request
waits for its host's slot before it takes a global one, so a slow host holds only its own
slots. ``fetch_many`` hands results to the caller's thread in completion order and starts
a fetch only while fewer than ``max_in_flight + max_ready`` of its results are fetched or
waiting to be taken, which bounds the bodies held in memory. Connections live in lanes
(_Lanes): aiohttp sessions of one connection each, at most ``max_in_flight`` of them, so
idle connections are bounded too. aiohttp replaced httpx's client here for CPU: a 304
cost about 0.65 ms of CPU with httpx and 0.1 ms with aiohttp (benchmarks/ingest/README.md).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import ipaddress
import os
import queue
import re
import socket
import ssl
import stat
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from email.utils import formatdate, parsedate_to_datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import aiohttp
import aiohttp.abc
import httpx
from yarl import URL as _WireURL

from watcher import netguard
from watcher.models import FetchRequest, FetchResult, FetchSettings

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
ACCEPT_ENCODING = "gzip, deflate"  # only what _Inflater decodes with bounded output
ENV_PROXY = "env"  # FetchSettings.proxy: take HTTP(S)_PROXY / NO_PROXY from the environment
GONE = "gone (HTTP 410): the feed was removed"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
# Never sent to another origin than the feed's after a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})
# Set by watcher, or they would break the bounded decoding or the framing.
_RESERVED_HEADERS = frozenset(
    {
        "accept-encoding",
        "connection",
        "content-length",
        "host",
        "if-modified-since",
        "if-none-match",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}

_T = TypeVar("_T")


class _Failure(Exception):
    """Ends a fetch early; _fetch() turns it into a FetchResult."""

    def __init__(
        self, message: str, *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


@dataclass(slots=True)
class _Trip:
    """The hops of one fetch so far."""

    urls: list[str]
    statuses: list[int] = field(default_factory=list)
    proxy: str | None = None  # what carried the latest hop

    @property
    def url(self) -> str:
        return self.urls[-1]

    def permanent_redirect(self) -> str | None:
        moved = self.statuses and all(s in _PERMANENT_REDIRECTS for s in self.statuses)
        return self.url if moved else None


class _Ticket:
    """A fetch's place in its batch's budget of results fetched but not yet taken.

    Taken once the fetch has its host slot; given back when the caller takes the result.
    Without a budget (a single fetch()) it is free.
    """

    __slots__ = ("_budget", "_held")

    def __init__(self, budget: asyncio.Semaphore | None) -> None:
        self._budget = budget
        self._held = False

    async def take(self) -> None:
        if self._budget is not None and not self._held:
            await self._budget.acquire()
            self._held = True

    def give_back(self) -> None:
        if self._budget is not None and self._held:
            self._held = False
            self._budget.release()


@dataclass(slots=True)
class _HostSlots:
    semaphore: asyncio.Semaphore
    users: int = 0


class _Limits:
    """The global and per-host slots. Used on the event loop's thread only."""

    def __init__(self, max_in_flight: int, max_per_host: int) -> None:
        self.in_flight = asyncio.Semaphore(max_in_flight)
        self._max_per_host = max_per_host
        self._hosts: dict[str, _HostSlots] = {}

    @asynccontextmanager
    async def host(self, host: str) -> AsyncIterator[None]:
        slots = self._hosts.get(host)
        if slots is None:
            slots = self._hosts[host] = _HostSlots(asyncio.Semaphore(self._max_per_host))
        slots.users += 1
        try:
            async with slots.semaphore:
                yield
        finally:
            slots.users -= 1
            if slots.users == 0:
                del self._hosts[host]


# scheme, host, port, proxy, and whether the request may go to private addresses (netguard
# keeps those connections apart)
_Origin = tuple[str, str, int, str | None, bool]


class _Lanes:
    """Sessions of one connection each ("lanes"), at most ``size`` of them.

    A request borrows an idle lane that last went to its origin, so its connection is
    reused; else a new lane while fewer than ``size`` exist; else the lane idle the longest
    is closed, with its connection, and a new one takes its place. So the Fetcher holds at
    most max_in_flight connections, idle ones included. Used on the event loop's thread only.
    """

    def __init__(self, size: int, make: Callable[[_Origin], aiohttp.ClientSession]) -> None:
        self._size = size
        self._make = make
        self._lanes: set[aiohttp.ClientSession] = set()
        self._idle: OrderedDict[aiohttp.ClientSession, _Origin] = OrderedDict()  # oldest first
        self._by_origin: dict[_Origin, list[aiohttp.ClientSession]] = {}

    async def take(self, origin: _Origin) -> aiohttp.ClientSession:
        same = self._by_origin.get(origin)
        if same:
            lane = same.pop()
            del self._idle[lane]
            return lane
        old = None
        if len(self._lanes) >= self._size and self._idle:
            old, old_origin = self._idle.popitem(last=False)
            self._by_origin[old_origin].remove(old)
            self._lanes.discard(old)
        # None idle (max_in_flight bounds the lanes in use, so only past that): a new one.
        lane = self._make(origin)
        self._lanes.add(lane)  # counted before the await below, where others may take
        if old is not None:
            try:
                await old.close()
            except BaseException:
                self.give_back(origin, lane)
                raise
        return lane

    def give_back(self, origin: _Origin, lane: aiohttp.ClientSession) -> None:
        if lane in self._idle or lane not in self._lanes:  # twice, or after close()
            return
        self._by_origin.setdefault(origin, []).append(lane)
        self._idle[lane] = origin

    async def close(self) -> None:
        lanes, self._lanes = self._lanes, set()
        self._idle.clear()
        self._by_origin.clear()
        for lane in lanes:
            await lane.close()


class _PinningResolver(aiohttp.abc.AbstractResolver):
    """Where aiohttp connects: the addresses of a name, checked (netguard), and only those.

    aiohttp asks for every new direct connection (no DNS cache) and connects to the
    addresses given, keeping the name for TLS (SNI, certificate) and the Host header. A name
    with any address the policy refuses raises netguard.AddressRefused; one without any,
    netguard.Unresolvable. An IP literal is its own address; fetch.py checked it already.
    """

    def __init__(self, resolver: netguard.Resolver, *, allow_private: bool) -> None:
        self._resolver = resolver
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        addresses = await netguard.resolve(self._resolver, host, port)
        if not self._allow_private:
            refused = netguard.refusal(host, addresses)
            if refused is not None:
                raise netguard.AddressRefused(refused)
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


@dataclass(eq=False, slots=True)
class _Batch:
    """One fetch_many call. ``results`` is bounded by ``budget``, not by the queue itself."""

    requests: list[FetchRequest]
    size: int  # of the budget
    results: queue.SimpleQueue[FetchResult | None] = field(default_factory=queue.SimpleQueue)
    finished: threading.Event = field(default_factory=threading.Event)
    budget: asyncio.Semaphore | None = None
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    interrupted: bool = False  # set from another thread by Fetcher.interrupt()

    def cancel(self) -> None:
        """On the loop's thread: stop the batch, whether it has started or not."""
        self.cancelled = True
        if self.task is None:
            self.finished.set()
        else:
            self.task.cancel()

    def give_back(self) -> None:
        if self.budget is not None:
            self.budget.release()


class Fetcher:
    """Owns an event loop thread and its aiohttp sessions; a context manager, or close()."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_in_flight: int = 32,
        max_per_host: int = 2,
        max_ready: int | None = None,
        resolver: netguard.Resolver = netguard.system_resolver,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``max_ready``: results fetch_many may hold for its caller (default: max_in_flight).

        ``resolver`` answers for host names (tests hand in their own); direct connections go
        only to the addresses it gave and that were checked (netguard). ``tls``: the context
        that verifies servers (default: the certifi CA bundle).
        """
        if max_in_flight < 1 or max_per_host < 1 or (max_ready is not None and max_ready < 0):
            raise ValueError(
                "max_in_flight and max_per_host must be 1 or more, max_ready 0 or more"
            )
        self._clock = clock
        self._resolver = resolver
        self._limits = _Limits(max_in_flight, max_per_host)
        self._batch_size = max_in_flight + (max_in_flight if max_ready is None else max_ready)
        self._ssl = tls  # made once when None: loading the CA bundle is slow
        self._lanes = _Lanes(max_in_flight, self._session)  # loop thread only
        self._lock = threading.Lock()
        self._closed = False
        self._active: set[_Batch] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="watcher-fetch", daemon=True)
        self._thread.start()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel whatever is still fetching, close the connections, stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def fetch(self, request: FetchRequest) -> FetchResult:
        future = self._submit(lambda: self._fetch(request, _Ticket(None)))
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def fetch_many(self, requests: Iterable[FetchRequest]) -> Generator[FetchResult, None, None]:
        """Fetch concurrently; yield each result as it completes, its ``index`` set.

        Nothing starts before the first next(). Closing the iterator early (or dropping
        it) cancels the fetches still running and waits until they have let go.
        """
        batch = _Batch(list(requests), self._batch_size)
        if not batch.requests:
            return
        future = self._submit(lambda: self._run_batch(batch))
        future.add_done_callback(lambda _: batch.results.put(None))
        with self._lock:
            self._active.add(batch)
        try:
            for _ in batch.requests:
                result = batch.results.get()
                if result is None and batch.interrupted:
                    return  # interrupt(): the caller is stopping; the rest is cancelled below
                if result is None:
                    if future.cancelled() or self._closed:
                        raise RuntimeError("the Fetcher was closed while fetching")
                    future.result()  # raises what ended the batch
                    raise RuntimeError("the batch ended before every result was in")
                self._call_soon(batch.give_back)
                yield result
        finally:
            with self._lock:
                self._active.discard(batch)
            if not future.done() and self._call_soon(batch.cancel):
                batch.finished.wait()

    def interrupt(self) -> None:
        """From any thread (a signal handler): end every running fetch_many at once; its
        caller's loop sees the iteration end, and the fetches still running are cancelled."""
        with self._lock:
            active = list(self._active)
        for batch in active:
            batch.interrupted = True
            batch.results.put(None)

    # On the caller's thread.

    def _submit(
        self, coroutine: Callable[[], Coroutine[Any, Any, _T]]
    ) -> concurrent.futures.Future[_T]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the Fetcher is closed")
            return asyncio.run_coroutine_threadsafe(coroutine(), self._loop)

    def _call_soon(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._loop.call_soon_threadsafe(callback)
            return True

    # On the loop's thread.

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._lanes.close()
        await self._loop.shutdown_asyncgens()
        await self._loop.shutdown_default_executor()

    async def _run_batch(self, batch: _Batch) -> None:
        batch.task = asyncio.current_task()
        try:
            if batch.cancelled:
                return
            batch.budget = asyncio.Semaphore(batch.size)
            async with asyncio.TaskGroup() as group:
                for index, request in enumerate(batch.requests):
                    group.create_task(self._fetch_into(batch, index, request))
        finally:
            batch.finished.set()

    async def _fetch_into(self, batch: _Batch, index: int, request: FetchRequest) -> None:
        ticket = _Ticket(batch.budget)
        try:
            result = await self._fetch(request, ticket)
            await ticket.take()  # a fetch refused before it started has none yet
        except BaseException:
            ticket.give_back()
            raise
        batch.results.put(replace(result, index=index))  # the caller gives the ticket back

    async def _fetch(self, request: FetchRequest, ticket: _Ticket) -> FetchResult:
        if _scheme(request.url) == "file":
            await ticket.take()
            return await asyncio.to_thread(_fetch_file, request)
        trip = _Trip([request.url.strip()])
        try:
            return await self._fetch_http(request, trip, ticket)
        except _Failure as failure:
            error, status, headers = failure.message, failure.status, failure.headers
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
            error, status, headers = _timed_out(request.settings), None, {}
        except netguard.GuardError as exc:  # refused where it connects, or no address
            error, status, headers = str(exc), None, {}
        except aiohttp.ClientHttpProxyError as exc:
            error, status, headers = f"proxy {_redact(trip.proxy)} failed: {exc}", None, {}
        except aiohttp.ClientConnectorError as exc:
            via = f" via proxy {_redact(trip.proxy)}" if trip.proxy else ""
            error, status, headers = f"cannot connect to {trip.url}{via}: {exc}", None, {}
        except aiohttp.ClientError as exc:
            error, status, headers = f"{trip.url}: {type(exc).__name__}: {exc}", None, {}
        except (httpx.InvalidURL, ValueError) as exc:
            error, status, headers = f"invalid request for {trip.url!r}: {exc}", None, {}
        return FetchResult(
            url=request.url, final_url=trip.url, status=status, headers=headers, error=error
        )

    async def _fetch_http(self, request: FetchRequest, trip: _Trip, ticket: _Ticket) -> FetchResult:
        settings = request.settings
        problem = settings_problem(settings)
        if problem is not None:
            raise _Failure(problem)
        url = _http_url(trip.url)
        origin = _origin(url)
        deadline: float | None = None
        # The clock decides between steps; this catches a step that would outlast it.
        async with asyncio.timeout(None) as backstop:
            while True:
                async with self._limits.host(url.host.lower()):
                    await ticket.take()
                    async with self._limits.in_flight:
                        if deadline is None:  # waiting for slots is not part of the fetch
                            deadline = self._clock() + settings.timeout
                            loop_time = asyncio.get_running_loop().time()
                            backstop.reschedule(loop_time + settings.timeout)
                        hop = await self._hop(request, trip, url, origin, deadline)
                if isinstance(hop, FetchResult):
                    return hop
                url = hop

    async def _hop(
        self,
        request: FetchRequest,
        trip: _Trip,
        url: httpx.URL,
        origin: tuple[str, str, int],
        deadline: float,
    ) -> FetchResult | httpx.URL:
        """One request: the result, or where a redirect points."""
        settings = request.settings
        await self._check_address(url, settings, deadline)
        trip.proxy = _proxy_for(url, settings)
        proxy, proxy_headers = _proxy_parts(trip.proxy)
        # A strict feed never reuses a connection made for one allowing private addresses.
        lane_key: _Origin = (
            url.scheme,
            url.host.lower(),
            url.port or _DEFAULT_PORTS[url.scheme],
            trip.proxy,
            settings.allow_private_networks,
        )
        lane = await self._lanes.take(lane_key)
        try:
            # httpx parsed and checked the URL; aiohttp gets exactly that text, not
            # re-encoded, so it connects to the host that was checked.
            response = await lane.get(
                _WireURL(str(url), encoded=True),
                headers=_request_headers(request, url, origin),
                allow_redirects=False,
                proxy=proxy,
                proxy_headers=proxy_headers,
                timeout=aiohttp.ClientTimeout(total=self._remaining(deadline, settings)),
            )
        except BaseException:
            self._lanes.give_back(lane_key, lane)
            raise
        try:
            self._remaining(deadline, settings)
            location = response.headers.get("location")
            if response.status in _REDIRECTS and location is not None:
                return _next_hop(url, response.status, location, trip, settings)
            return await self._result(request, trip, response, deadline)
        except BaseException:
            response.close()  # the connection may be mid-body: never reused
            raise
        finally:
            response.release()
            self._lanes.give_back(lane_key, lane)

    def _session(self, origin: _Origin) -> aiohttp.ClientSession:
        """A lane: a session for a proxy, or for direct connections to checked addresses."""
        *_, proxy, allow_private = origin
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(trust_env=False)  # loading CAs is slow
        resolver = None
        if proxy is None:
            resolver = _PinningResolver(self._resolver, allow_private=allow_private)
        connector = aiohttp.TCPConnector(
            ssl=self._ssl,
            resolver=resolver,  # None: the proxy's own address, resolved as usual
            use_dns_cache=False,  # every new connection is checked again
            limit=1,  # one connection: a lane
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookies but the feed's own header
            auto_decompress=False,  # _Inflater decodes, with bounded output
            trust_env=False,  # the environment's proxies only when a feed says "env"
        )

    async def _check_address(
        self, url: httpx.URL, settings: FetchSettings, deadline: float
    ) -> None:
        """Refuse a host if any address it resolves to is not public.

        Checked before the request, also when a proxy carries it. A direct connection is
        checked again where it is made (netguard), on the addresses it really goes to, so
        an answer that changes in between (DNS rebinding) is refused there.
        """
        if settings.allow_private_networks:
            return
        host = url.raw_host.decode("ascii")
        port = url.port or _DEFAULT_PORTS[url.scheme]
        try:
            async with asyncio.timeout(self._remaining(deadline, settings)):
                addresses = await netguard.resolve(self._resolver, host, port)
        except TimeoutError:
            raise _Failure(_timed_out(settings)) from None
        except netguard.Unresolvable as exc:
            raise _Failure(str(exc).replace(host, url.host, 1)) from None
        refused = netguard.refusal(url.host, addresses)
        if refused is not None:
            raise _Failure(refused)

    async def _result(
        self,
        request: FetchRequest,
        trip: _Trip,
        response: aiohttp.ClientResponse,
        deadline: float,
    ) -> FetchResult:
        status = response.status
        headers = _response_headers(response)
        if status == 304:
            return FetchResult(
                url=request.url,
                final_url=trip.url,
                status=status,
                headers=headers,
                etag=headers.get("etag", request.etag),
                last_modified=headers.get("last-modified", request.last_modified),
                permanent_redirect=trip.permanent_redirect(),
            )
        if status == 410:
            raise _Failure(GONE, status=status, headers=headers)
        if not 200 <= status < 300:
            reason = response.reason or httpx.codes.get_reason_phrase(status)
            problem = f"HTTP {status} {reason}".strip()
            if status in _REDIRECTS:
                problem += " without a Location header"
            raise _Failure(problem, status=status, headers=headers)
        body = await self._read_body(response, headers, request.settings, deadline)
        return FetchResult(
            url=request.url,
            final_url=trip.url,
            status=status,
            headers=headers,
            body=body,
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            permanent_redirect=trip.permanent_redirect(),
        )

    async def _read_body(
        self,
        response: aiohttp.ClientResponse,
        headers: Mapping[str, str],
        settings: FetchSettings,
        deadline: float,
    ) -> bytes:
        limit = settings.max_bytes
        too_large = _Failure(
            f"response larger than {limit} bytes", status=response.status, headers=headers
        )
        length = headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > limit:
            raise too_large
        inflater = _Inflater.for_encoding(headers.get("content-encoding", ""))
        if inflater is None:
            encoding = headers.get("content-encoding", "")
            raise _Failure(
                f"unsupported Content-Encoding: {encoding}",
                status=response.status,
                headers=headers,
            )
        body = bytearray()
        # The request's timeout is what was left when it went out; between chunks the clock
        # decides too, so a server dripping bytes cannot stretch the fetch.
        try:
            async for raw in response.content.iter_any():
                self._remaining(deadline, settings)
                if not inflater.feed(raw, body, limit):
                    raise too_large
            if not inflater.finish(body, limit):
                raise too_large
        except zlib.error as exc:
            raise _Failure(
                f"cannot decompress the response: {exc}",
                status=response.status,
                headers=headers,
            ) from None
        return bytes(body)

    def _remaining(self, deadline: float, settings: FetchSettings) -> float:
        left = deadline - self._clock()
        if left <= 0:
            raise _Failure(_timed_out(settings))
        return left


def settings_problem(settings: FetchSettings) -> str | None:
    """What is wrong with a feed's proxy, headers or auth (for config checks too), or None."""
    if settings.proxy is not None and settings.proxy != ENV_PROXY:
        problem = _proxy_problem(settings.proxy)
        if problem is not None:
            return problem
    names = set()
    for name, value in settings.headers:
        lower = name.lower()
        if not _TOKEN.fullmatch(name):
            return f"invalid header name {name!r}"
        if lower in _RESERVED_HEADERS:
            return f"header {name} is set by watcher and cannot be configured"
        if any(ch in value for ch in "\r\n\0"):
            return f"header {name}: line breaks and NUL are not allowed in a value"
        names.add(lower)
    if settings.auth is not None:
        user, _password = settings.auth
        if ":" in user:
            return "basic auth: the user name cannot contain ':'"
        if "authorization" in names:
            return "basic auth and an Authorization header cannot both be set"
    return None


def _proxy_problem(proxy: str) -> str | None:
    try:
        url = httpx.URL(proxy)
    except httpx.InvalidURL:
        return "invalid proxy URL"
    if url.scheme not in ("http", "https") or not url.host:
        return f"unsupported proxy {_redact(proxy)} (an http:// or https:// URL, or env)"
    return None


def _proxy_for(url: httpx.URL, settings: FetchSettings) -> str | None:
    if settings.proxy != ENV_PROXY:
        return settings.proxy

    def env(name: str) -> str | None:
        return os.environ.get(name) or os.environ.get(name.upper()) or None

    if _bypasses_proxy(url.host, env("no_proxy") or ""):
        return None
    proxy = env(f"{url.scheme}_proxy") or env("all_proxy")
    problem = None if proxy is None else _proxy_problem(proxy)
    if problem is not None:
        raise _Failure(f"{problem} in the environment")
    return proxy


def _proxy_parts(proxy: str | None) -> tuple[_WireURL | None, dict[str, str] | None]:
    """The proxy URL without its user info, and the Proxy-Authorization that carries it."""
    if proxy is None:
        return None, None
    url = _WireURL(proxy)
    if url.user is None and url.password is None:
        return url, None
    token = base64.b64encode(f"{url.user or ''}:{url.password or ''}".encode()).decode("ascii")
    return url.with_user(None), {"Proxy-Authorization": f"Basic {token}"}


def _response_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ", " (RFC 9110, 5.3)."""
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _bypasses_proxy(host: str, no_proxy: str) -> bool:
    """NO_PROXY: "*", host names (a domain covers its subdomains), IP addresses, networks."""
    host = host.lower()
    address = netguard.ip_literal(host)
    for entry in (part.strip().lower() for part in no_proxy.split(",")):
        if entry == "*":
            return True
        if not entry:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip("*").lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def _redact(proxy: str | None) -> str:
    """A proxy URL without its credentials, for messages."""
    if proxy is None:
        return "(none)"
    parts = urlsplit(proxy)
    if parts.username is None and parts.password is None:
        return proxy
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"***@{host}").geturl()


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS[url.scheme]


def _may_get_credentials(url: httpx.URL, origin: tuple[str, str, int]) -> bool:
    """The feed's own origin, or its upgrade from http to https on the default ports."""
    here = _origin(url)
    return here == origin or (origin == ("http", here[1], 80) and here == ("https", here[1], 443))


def _request_headers(
    request: FetchRequest, url: httpx.URL, origin: tuple[str, str, int]
) -> dict[str, str]:
    settings = request.settings
    credentials = _may_get_credentials(url, origin)
    headers = {
        "User-Agent": request.user_agent,
        "Accept": ACCEPT,
    }
    for name, value in settings.headers:
        if credentials or name.lower() not in _CREDENTIAL_HEADERS:
            headers[name] = value
    headers["Accept-Encoding"] = ACCEPT_ENCODING
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    if settings.auth is not None and credentials:
        user, password = settings.auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    return headers


def _next_hop(
    url: httpx.URL, status: int, location: str, trip: _Trip, settings: FetchSettings
) -> httpx.URL:
    if len(trip.statuses) >= settings.max_redirects:
        raise _Failure(f"too many redirects (more than {settings.max_redirects})", status=status)
    location = location.strip()
    try:
        target = url.join(location)
    except httpx.InvalidURL as exc:
        raise _Failure(f"invalid redirect to {location!r}: {exc}", status=status) from None
    if target.scheme not in ("http", "https"):
        raise _Failure(
            f"refused: redirect to {location!r} (only http and https redirects are followed)",
            status=status,
        )
    target_text = str(target)
    if target_text in trip.urls:
        raise _Failure("redirect loop: " + " -> ".join([*trip.urls, target_text]), status=status)
    trip.urls.append(target_text)
    trip.statuses.append(status)
    return _http_url(target_text)


@functools.lru_cache(maxsize=4096)  # a feed's URL comes back every poll; parsing is ~25 µs
def _http_url(text: str) -> httpx.URL:
    """Parse and check a URL: aiohttp gets this parse's text, so what is checked is what
    gets connected to. httpx.URL is immutable, so a cached one is safe to share."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in text):
        raise _Failure(f"invalid URL {text!r}: whitespace, control characters or backslashes")
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise _Failure(f"invalid URL {text!r}: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise _Failure(f"refused: {text!r} (only http, https and file URLs are fetched)")
    if url.userinfo:
        raise _Failure(f"refused: a URL for {url.host} with user info (credentials in URLs)")
    if not url.host:
        raise _Failure(f"invalid URL {text!r}: no host")
    if url.host.endswith("."):
        raise _Failure(f"invalid URL {text!r}: the host ends with a dot")
    return url


class _Inflater:
    """Decodes a Content-Encoding with output bounded by the size limit.

    The client's own decoding is off: decoders that call decompress() without a max_length
    let one small compressed chunk inflate to gigabytes before anything counts it.
    """

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        self._decompressor = zlib.decompressobj(self._wbits) if encoding else None
        self._started = False

    @classmethod
    def for_encoding(cls, header: str) -> _Inflater | None:
        codings = [c.strip().lower() for c in header.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if not codings:
            return cls("")
        if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
            return cls("deflate" if codings[0] == "deflate" else "gzip")
        return None

    def feed(self, data: bytes, out: bytearray, limit: int) -> bool:
        """Append the decoded data to out; False when out grew past limit."""
        if self._decompressor is None:
            out += data[: limit - len(out) + 1]
            return len(out) <= limit
        while data and not self._decompressor.eof:
            try:
                piece = self._decompressor.decompress(data, limit - len(out) + 1)
            except zlib.error:
                if self._encoding != "deflate" or self._started:
                    raise
                # "deflate" should be zlib-wrapped, but some servers send raw deflate.
                self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                continue
            self._started = True
            out += piece
            if len(out) > limit:
                return False
            data = self._decompressor.unconsumed_tail
        return True

    def finish(self, out: bytearray, limit: int) -> bool:
        if self._decompressor is not None:
            out += self._decompressor.flush()
        return len(out) <= limit


def _fetch_file(request: FetchRequest) -> FetchResult:
    url = request.url.strip()

    def failed(error: str) -> FetchResult:
        return FetchResult(url=request.url, final_url=url, status=None, error=error)

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return failed(f"file URL must name a local path: {url}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        return failed(f"file URL needs an absolute path: {url}")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return failed(f"file not found: {path}")
    except OSError as exc:
        return failed(f"cannot read {path}: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return failed(f"not a regular file: {path}")
    if request.last_modified and _unchanged_since(info.st_mtime, request.last_modified):
        return FetchResult(
            url=request.url,
            final_url=url,
            status=304,
            etag=request.etag,
            last_modified=request.last_modified,
        )
    limit = request.settings.max_bytes
    try:
        with open(path, "rb") as file:
            body = file.read(limit + 1)
    except OSError as exc:
        return failed(f"cannot read {path}: {exc.strerror or exc}")
    if len(body) > limit:
        return failed(f"file larger than {limit} bytes: {path}")
    last_modified = formatdate(info.st_mtime, usegmt=True)
    return FetchResult(
        url=request.url,
        final_url=url,
        status=200,
        headers={"last-modified": last_modified},
        body=body,
        last_modified=last_modified,
    )


def _unchanged_since(mtime: float, if_modified_since: str) -> bool:
    """If-Modified-Since semantics: unchanged when the mtime (whole seconds) is not later."""
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return int(mtime) <= since.timestamp()


def _scheme(url: str) -> str:
    try:
        return urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return ""


def _timed_out(settings: FetchSettings) -> str:
    return f"timed out after {settings.timeout:g}s"
